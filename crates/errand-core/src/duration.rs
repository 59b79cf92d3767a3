//! Human durations as people write them in `errand.toml` and on the command line:
//! `500ms`, `30s`, `5m`, `2h`, `30d`, and sums like `1h30m`, whose units go from the largest
//! to the smallest, each at most once (`1s1s` and `30s1m` are refused: they are typos more
//! often than sums). A bare `0` is zero.

use std::time::Duration;

/// A duration that could not be read; says what was expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid duration `{input}`: {problem} (examples: 500ms, 30s, 5m, 2h, 30d, 1h30m)")]
pub struct DurationError {
    pub input: String,
    pub problem: String,
}

/// The units, from the largest to the smallest (the order the parts of a sum are written in).
pub const UNITS: [(&str, Duration); 6] = [
    ("w", Duration::from_secs(7 * 86_400)),
    ("d", Duration::from_secs(86_400)),
    ("h", Duration::from_secs(3600)),
    ("m", Duration::from_secs(60)),
    ("s", Duration::from_secs(1)),
    ("ms", Duration::from_millis(1)),
];

/// Parses a human duration. Units: `ms`, `s`, `m`, `h`, `d`, `w` ([`UNITS`]).
pub fn parse_duration(input: &str) -> Result<Duration, DurationError> {
    let err = |problem: &str| DurationError {
        input: input.to_string(),
        problem: problem.to_string(),
    };
    let s = input.trim();
    if s.is_empty() {
        return Err(err("it is empty"));
    }
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    let mut total = Duration::ZERO;
    let mut rest = s;
    // The previous part's unit (its rank and name): each part's must be smaller.
    let mut previous: Option<(usize, &str)> = None;
    while !rest.is_empty() {
        let digits = rest.len() - rest.trim_start_matches(|c: char| c.is_ascii_digit()).len();
        if digits == 0 {
            return Err(err("expected a number"));
        }
        let n: u64 = rest[..digits]
            .parse()
            .map_err(|_| err("the number is too large"))?;
        rest = &rest[digits..];
        let unit_len = rest.len()
            - rest
                .trim_start_matches(|c: char| c.is_ascii_alphabetic())
                .len();
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        if unit.is_empty() {
            return Err(err("a unit is missing after the number"));
        }
        // Rank: larger units come first, so a smaller index is a larger unit.
        let (rank, one) = match UNITS.iter().position(|(name, _)| *name == unit) {
            Some(i) => (UNITS.len() - i, UNITS[i].1),
            None => return Err(err(&format!("unknown unit `{unit}`"))),
        };
        match previous {
            Some((_, before)) if before == unit => {
                return Err(err(&format!("the unit `{unit}` appears twice")))
            }
            Some((higher, before)) if higher < rank => {
                return Err(err(&format!(
                "`{unit}` comes after `{before}`: write the units from the largest to the smallest"
            )))
            }
            _ => previous = Some((rank, unit)),
        }
        let part = one
            .checked_mul(u32::try_from(n).map_err(|_| err("the number is too large"))?)
            .ok_or_else(|| err("it is too long"))?;
        total = total
            .checked_add(part)
            .ok_or_else(|| err("it is too long"))?;
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_units_and_sums() {
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("30s").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_duration("5m").unwrap(), Duration::from_secs(300));
        assert_eq!(parse_duration("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(
            parse_duration(" 30d ").unwrap(),
            Duration::from_secs(30 * 86_400)
        );
        assert_eq!(
            parse_duration("2w").unwrap(),
            Duration::from_secs(14 * 86_400)
        );
        assert_eq!(parse_duration("0").unwrap(), Duration::ZERO);
        assert_eq!(
            parse_duration("1d2h3m4s5ms").unwrap(),
            Duration::from_millis(93_784_005)
        );
    }

    #[test]
    fn errors_say_what_is_wrong() {
        for (input, problem) in [
            ("", "it is empty"),
            ("30", "a unit is missing"),
            ("30x", "unknown unit `x`"),
            ("s", "expected a number"),
            ("-5s", "expected a number"),
            ("99999999999d", "too large"),
            ("1s1s", "the unit `s` appears twice"),
            ("1h30m1h", "`h` comes after `m`"),
            ("30s1m", "`m` comes after `s`"),
        ] {
            let e = parse_duration(input).unwrap_err().to_string();
            assert!(e.contains(problem), "{input}: {e}");
            assert!(e.contains(&format!("`{input}`")), "{e}");
        }
    }
}
