//! How every command prints: aligned tables and short reports for people, JSON for scripts.
//!
//! A command gets an [`Out`] and never writes to stdout by other means, so `--json`, colour and
//! time formatting are decided in one place:
//!
//! - **`--json`** (global): one JSON document on stdout, pretty-printed, in the stable shapes
//!   of `docs/cli-json.md`. Times are RFC 3339 in UTC, durations in milliseconds. Nothing else
//!   goes to stdout; messages and progress go to stderr.
//! - **Tables**: columns aligned to the widest cell, numbers right-aligned, a `-` for nothing.
//! - **Colour** only when stdout is a terminal and `NO_COLOR` is unset (or empty), so pipes and
//!   files get plain text (<https://no-color.org>).
//! - **Times** relative and absolute: `3m ago (2026-11-23 13:02:11Z)`, `in 5s (...)`, measured
//!   against one `now` per command so a table does not drift while it prints.
//!
//! ```ignore
//! let mut table = Table::new(["ID", "STATE", "CREATED"]);
//! table.row([Cell::num(42), Cell::state("failed"), Cell::time(out.now(), t)]);
//! out.table(&table);
//! ```

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use std::io::{IsTerminal, Write};

/// The printer a command writes through.
#[derive(Debug, Clone)]
pub struct Out {
    json: bool,
    color: bool,
    now: DateTime<Utc>,
}

impl Out {
    /// The printer for this process: colour decided from the terminal and `NO_COLOR`.
    pub fn detect(json: bool) -> Out {
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        Out {
            json,
            color: !json && !no_color && std::io::stdout().is_terminal(),
            now: Utc::now(),
        }
    }

    /// True when the command must print JSON.
    pub fn json(&self) -> bool {
        self.json
    }

    /// The instant relative times are measured against. Commands that read a store's "now"
    /// (queue stats) may move it there with [`Out::set_now`].
    pub fn now(&self) -> DateTime<Utc> {
        self.now
    }

    /// Measures relative times against `now` (e.g. the database's clock).
    pub fn set_now(&mut self, now: DateTime<Utc>) {
        self.now = now;
    }

    /// Prints a value as the command's JSON document.
    pub fn print_json<T: Serialize + ?Sized>(&self, value: &T) -> anyhow::Result<()> {
        let text = serde_json::to_string_pretty(value)?;
        self.line(&text);
        Ok(())
    }

    /// Prints a line to stdout (people's output).
    pub fn line(&self, text: &str) {
        let mut stdout = std::io::stdout().lock();
        // A closed pipe (`errand jobs list | head`) is not an error worth a panic.
        let _ = writeln!(stdout, "{text}");
    }

    /// Prints a table, or `empty` when it has no rows.
    pub fn table(&self, table: &Table, empty: &str) {
        if table.rows.is_empty() {
            self.line(empty);
        } else {
            self.line(table.render(self.color).trim_end_matches('\n'));
        }
    }

    /// `text` in a style, when colour is on.
    pub fn paint(&self, style: Style, text: &str) -> String {
        paint(self.color, style, text)
    }

    /// `label: value` lines with the labels aligned, for one record (`jobs show`).
    pub fn fields(&self, fields: &[(&str, Cell)]) {
        let width = fields.iter().map(|(l, _)| l.len() + 1).max().unwrap_or(0);
        for (label, cell) in fields {
            let label = format!("{label}:");
            let value = paint(self.color, cell.style, &cell.text);
            self.line(&format!("{label:<width$}  {value}"));
        }
    }
}

/// A text style; rendered as ANSI colour only when colour is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Style {
    #[default]
    Plain,
    Bold,
    Dim,
    Green,
    Red,
    Yellow,
    Cyan,
    Magenta,
}

impl Style {
    const fn code(self) -> Option<&'static str> {
        match self {
            Style::Plain => None,
            Style::Bold => Some("1"),
            Style::Dim => Some("2"),
            Style::Green => Some("32"),
            Style::Red => Some("31"),
            Style::Yellow => Some("33"),
            Style::Cyan => Some("36"),
            Style::Magenta => Some("35"),
        }
    }

    /// The colour of a state word (stored or derived), the same in every table.
    pub fn of_state(state: &str) -> Style {
        match state {
            "succeeded" => Style::Green,
            "failed" | "stuck" => Style::Red,
            "running" => Style::Cyan,
            "retrying" | "scheduled" => Style::Yellow,
            "cancelled" => Style::Dim,
            "paused" => Style::Magenta,
            _ => Style::Plain,
        }
    }
}

fn paint(color: bool, style: Style, text: &str) -> String {
    match style.code() {
        Some(code) if color && !text.is_empty() => format!("\x1b[{code}m{text}\x1b[0m"),
        _ => text.to_string(),
    }
}

/// How a column lines up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Align {
    Left,
    Right,
}

/// One cell of a table: its text, how it lines up, and its style.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cell {
    pub text: String,
    pub align: Align,
    pub style: Style,
}

impl Cell {
    /// Left-aligned text; empty text shows as `-`.
    pub fn text(text: impl Into<String>) -> Cell {
        let text = text.into();
        Cell {
            text: if text.is_empty() { "-".into() } else { text },
            align: Align::Left,
            style: Style::Plain,
        }
    }

    /// Text, or `-` for `None`.
    pub fn opt(text: Option<impl Into<String>>) -> Cell {
        match text {
            Some(t) => Cell::text(t),
            None => Cell::text(""),
        }
    }

    /// A right-aligned number.
    pub fn num(n: impl std::fmt::Display) -> Cell {
        Cell {
            text: n.to_string(),
            align: Align::Right,
            style: Style::Plain,
        }
    }

    /// A right-aligned number that is dimmed when zero, so the non-zero counts stand out.
    pub fn count(n: u64) -> Cell {
        Cell::num(n).styled(if n == 0 { Style::Dim } else { Style::Plain })
    }

    /// A state word in its colour.
    pub fn state(state: &str) -> Cell {
        Cell::text(state).styled(Style::of_state(state))
    }

    /// A time, relative to `now` and absolute: `3m ago (2026-11-23 13:02:11Z)`.
    pub fn time(now: DateTime<Utc>, at: DateTime<Utc>) -> Cell {
        Cell::text(when(now, at))
    }

    /// A time or `-`.
    pub fn opt_time(now: DateTime<Utc>, at: Option<DateTime<Utc>>) -> Cell {
        match at {
            Some(at) => Cell::time(now, at),
            None => Cell::text(""),
        }
    }

    /// A right-aligned duration such as `1.25s` or `3m12s`, or `-`.
    pub fn duration_ms(ms: Option<f64>) -> Cell {
        Cell {
            text: ms.map_or_else(|| "-".to_string(), format_duration_ms),
            align: Align::Right,
            style: Style::Plain,
        }
    }

    /// This cell in another style.
    pub fn styled(mut self, style: Style) -> Cell {
        self.style = style;
        self
    }
}

/// Rows under a header, printed with aligned columns.
#[derive(Debug, Clone, Default)]
pub struct Table {
    header: Vec<String>,
    rows: Vec<Vec<Cell>>,
}

impl Table {
    pub fn new<const N: usize>(header: [&str; N]) -> Table {
        Table {
            header: header.iter().map(|h| h.to_string()).collect(),
            rows: Vec::new(),
        }
    }

    /// Adds a row; it must have one cell per header column.
    pub fn row(&mut self, cells: impl IntoIterator<Item = Cell>) {
        let cells: Vec<Cell> = cells.into_iter().collect();
        debug_assert_eq!(cells.len(), self.header.len(), "one cell per column");
        self.rows.push(cells);
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The table as text: two spaces between columns, no trailing spaces, the header bold.
    pub fn render(&self, color: bool) -> String {
        let columns = self.header.len();
        let mut widths: Vec<usize> = self.header.iter().map(|h| width(h)).collect();
        for row in &self.rows {
            for (i, cell) in row.iter().enumerate().take(columns) {
                widths[i] = widths[i].max(width(&cell.text));
            }
        }
        // A column of right-aligned cells gets a right-aligned header too.
        let right: Vec<bool> = (0..columns)
            .map(|i| {
                self.rows
                    .first()
                    .and_then(|r| r.get(i))
                    .is_some_and(|c| c.align == Align::Right)
            })
            .collect();
        let mut out = String::new();
        let header: Vec<Cell> = self
            .header
            .iter()
            .zip(&right)
            .map(|(h, r)| Cell {
                text: h.clone(),
                align: if *r { Align::Right } else { Align::Left },
                style: Style::Bold,
            })
            .collect();
        for row in std::iter::once(&header).chain(&self.rows) {
            let mut line = String::new();
            for (i, cell) in row.iter().enumerate().take(columns) {
                let pad = widths[i] - width(&cell.text);
                let last = i + 1 == columns;
                if i > 0 {
                    line.push_str("  ");
                }
                if cell.align == Align::Right {
                    line.push_str(&" ".repeat(pad));
                }
                line.push_str(&paint(color, cell.style, &cell.text));
                if cell.align == Align::Left && !last {
                    line.push_str(&" ".repeat(pad));
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}

/// Display width: characters, which is right for the ASCII and Latin text Errand prints.
fn width(s: &str) -> usize {
    s.chars().count()
}

/// `2026-11-23 13:02:11Z`: absolute, UTC, to the second.
pub fn absolute(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%d %H:%M:%SZ").to_string()
}

/// A time relative to `now` and absolute: `3m ago (2026-11-23 13:02:11Z)`, `in 2h5m (...)`,
/// `now (...)` within a second.
pub fn when(now: DateTime<Utc>, at: DateTime<Utc>) -> String {
    let delta = at.signed_duration_since(now);
    let secs = delta.num_seconds();
    let rel = if secs == 0 {
        "now".to_string()
    } else if secs < 0 {
        format!("{} ago", age(now.signed_duration_since(at)))
    } else {
        format!("in {}", age(delta))
    };
    format!("{rel} ({})", absolute(at))
}

/// A span in the largest two units that matter: `45s`, `3m12s`, `2h5m`, `4d3h`.
pub fn age(span: chrono::TimeDelta) -> String {
    let s = span.num_seconds().max(0);
    let (d, h, m, sec) = (s / 86_400, s % 86_400 / 3600, s % 3600 / 60, s % 60);
    let two = |a: i64, ua: &str, b: i64, ub: &str| {
        if b == 0 {
            format!("{a}{ua}")
        } else {
            format!("{a}{ua}{b}{ub}")
        }
    };
    if d > 0 {
        two(d, "d", h, "h")
    } else if h > 0 {
        two(h, "h", m, "m")
    } else if m > 0 {
        two(m, "m", sec, "s")
    } else {
        format!("{sec}s")
    }
}

/// A duration given in milliseconds for people: `850ms`, `1.25s`, `3m12s`.
pub fn format_duration_ms(ms: f64) -> String {
    if ms < 1000.0 {
        format!("{}ms", ms.round() as i64)
    } else if ms < 60_000.0 {
        format!("{:.2}s", ms / 1000.0)
    } else {
        age(chrono::TimeDelta::milliseconds(ms as i64))
    }
}

/// RFC 3339 in UTC with microseconds, the one time format of the JSON output.
pub fn rfc3339(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// Writes progress of a long bulk operation on stderr, on one line rewritten in place, only
/// when stderr is a terminal (scripts and logs get nothing; the final report is on stdout).
#[derive(Debug)]
pub struct Progress {
    on: bool,
    label: String,
    drawn: bool,
}

impl Progress {
    pub fn new(label: impl Into<String>) -> Progress {
        Progress {
            on: std::io::stderr().is_terminal(),
            label: label.into(),
            drawn: false,
        }
    }

    /// Shows the running total.
    pub fn update(&mut self, done: u64) {
        if self.on {
            let mut err = std::io::stderr().lock();
            let _ = write!(err, "\r\x1b[2K{}: {done}", self.label);
            let _ = err.flush();
            self.drawn = true;
        }
    }

    /// Clears the line so the final report starts clean.
    pub fn finish(self) {
        if self.on && self.drawn {
            let mut err = std::io::stderr().lock();
            let _ = write!(err, "\r\x1b[2K");
            let _ = err.flush();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn t(h: u32, m: u32, s: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 23, h, m, s).unwrap()
    }

    #[test]
    fn times_are_relative_and_absolute() {
        let now = t(13, 5, 11);
        assert_eq!(when(now, t(13, 2, 11)), "3m ago (2026-11-23 13:02:11Z)");
        assert_eq!(when(now, t(13, 5, 11)), "now (2026-11-23 13:05:11Z)");
        assert_eq!(when(now, t(15, 10, 11)), "in 2h5m (2026-11-23 15:10:11Z)");
        assert_eq!(when(now, t(13, 4, 56)), "15s ago (2026-11-23 13:04:56Z)");
        let days = now - chrono::TimeDelta::hours(75);
        assert_eq!(when(now, days), "3d3h ago (2026-11-20 10:05:11Z)");
    }

    #[test]
    fn durations_read_at_a_glance() {
        assert_eq!(format_duration_ms(0.4), "0ms");
        assert_eq!(format_duration_ms(850.0), "850ms");
        assert_eq!(format_duration_ms(1250.0), "1.25s");
        assert_eq!(format_duration_ms(192_000.0), "3m12s");
        assert_eq!(age(chrono::TimeDelta::hours(2)), "2h");
    }

    #[test]
    fn tables_align_and_colour_only_when_asked() {
        let mut table = Table::new(["QUEUE", "QUEUED", "STATE"]);
        table.row([
            Cell::text("default"),
            Cell::count(12),
            Cell::state("failed"),
        ]);
        table.row([
            Cell::text("email"),
            Cell::count(0),
            Cell::opt(None::<String>),
        ]);
        assert_eq!(
            table.render(false),
            "QUEUE    QUEUED  STATE\n\
             default      12  failed\n\
             email         0  -\n"
        );
        let coloured = table.render(true);
        assert!(coloured.contains("\x1b[31mfailed\x1b[0m"), "{coloured:?}");
        assert!(coloured.contains("\x1b[1mQUEUE\x1b[0m"), "{coloured:?}");
        // Padding is computed on the text, not the escape codes: columns still line up.
        let plain: Vec<String> = coloured
            .lines()
            .map(|l| {
                let mut s = String::new();
                let mut skip = false;
                for c in l.chars() {
                    match (skip, c) {
                        (_, '\x1b') => skip = true,
                        (true, 'm') => skip = false,
                        (true, _) => {}
                        (false, c) => s.push(c),
                    }
                }
                s
            })
            .collect();
        assert_eq!(plain.join("\n") + "\n", table.render(false));
    }
}
