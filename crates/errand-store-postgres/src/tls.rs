//! TLS to PostgreSQL: the `sslmode`, `sslrootcert`, `sslcert` and `sslkey` settings, given in
//! the URL as libpq users write them (`?sslmode=verify-full&sslrootcert=/etc/ca.pem`) or as
//! [`PgTls`] (errand.toml's `[database_tls]` table). The settings of a [`PgTls`] override the
//! URL's.
//!
//! The handshake is sqlx's, over rustls with the ring provider: the same TLS stack as the
//! HTTP client of the `errand` binary. Certificates are checked against the system's roots
//! (`rustls-native-certs`, which honours `SSL_CERT_FILE` and `SSL_CERT_DIR`) plus the
//! `sslrootcert` file.
//!
//! | `sslmode` | encrypted | server certificate checked | host name checked |
//! | --- | --- | --- | --- |
//! | `disable` | no | | |
//! | `prefer` (default) | if the server offers it | no | no |
//! | `require` | yes, or the connection fails | only with a root certificate (as libpq) | no |
//! | `verify-ca` | yes | yes | libpq: no; here yes, a limit of sqlx 0.8.6 (fails closed; see README) |
//! | `verify-full` | yes | yes | yes |

use errand_store::{StoreError, StoreResult};
use sqlx::postgres::{PgConnectOptions, PgSslMode};
use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

/// How much TLS a connection to PostgreSQL needs (libpq's `sslmode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    /// Plain TCP only.
    Disable,
    /// TLS when the server offers it, without checking its certificate.
    Prefer,
    /// TLS or no connection; the certificate is checked only when a root certificate is given.
    Require,
    /// TLS with a certificate signed by a trusted CA; any host name.
    VerifyCa,
    /// TLS with a certificate signed by a trusted CA and naming the host connected to.
    VerifyFull,
}

impl SslMode {
    /// The libpq spelling: `disable`, `prefer`, `require`, `verify-ca`, `verify-full`.
    pub fn as_str(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }

    fn to_sqlx(self) -> PgSslMode {
        match self {
            SslMode::Disable => PgSslMode::Disable,
            SslMode::Prefer => PgSslMode::Prefer,
            SslMode::Require => PgSslMode::Require,
            SslMode::VerifyCa => PgSslMode::VerifyCa,
            SslMode::VerifyFull => PgSslMode::VerifyFull,
        }
    }
}

impl fmt::Display for SslMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The error of parsing an unknown `sslmode`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownSslMode(pub String);

impl fmt::Display for UnknownSslMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unknown sslmode \"{}\" (expected one of: disable, prefer, require, verify-ca, verify-full)",
            self.0
        )
    }
}

impl std::error::Error for UnknownSslMode {}

impl FromStr for SslMode {
    type Err = UnknownSslMode;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "disable" => SslMode::Disable,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            other => return Err(UnknownSslMode(other.to_string())),
        })
    }
}

/// TLS settings for the connections of a [`crate::PgStore`], on top of the URL's own
/// `sslmode`, `sslrootcert`, `sslcert` and `sslkey` (each field that is set wins).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PgTls {
    /// `sslmode`.
    pub mode: Option<SslMode>,
    /// `sslrootcert`: a PEM file of CA certificates trusted besides the system's.
    pub root_cert: Option<PathBuf>,
    /// `sslcert`: the client's certificate (PEM), for servers that ask for one.
    pub client_cert: Option<PathBuf>,
    /// `sslkey`: the client certificate's private key (PEM).
    pub client_key: Option<PathBuf>,
}

impl PgTls {
    /// True when nothing is set (the URL alone decides).
    pub fn is_empty(&self) -> bool {
        *self == PgTls::default()
    }
}

/// Applies `tls` to options parsed from `url`. As libpq does, `require` with a root
/// certificate (from `tls`, the URL's `sslrootcert` or `PGSSLROOTCERT`) checks the server's
/// certificate against it (`verify-ca`): a root certificate given is meant to be used.
/// A file of `tls` that cannot be read is an error naming it, before any connection.
pub(crate) fn apply(
    mut options: PgConnectOptions,
    url: &str,
    tls: &PgTls,
) -> StoreResult<PgConnectOptions> {
    for (setting, path) in [
        ("sslrootcert", &tls.root_cert),
        ("sslcert", &tls.client_cert),
        ("sslkey", &tls.client_key),
    ] {
        if let Some(path) = path {
            if let Err(e) = std::fs::File::open(path) {
                return Err(StoreError::Database(format!(
                    "{setting} {}: cannot read it: {e}",
                    path.display()
                )));
            }
        }
    }
    if let Some(mode) = tls.mode {
        options = options.ssl_mode(mode.to_sqlx());
    }
    if let Some(path) = &tls.root_cert {
        options = options.ssl_root_cert(path);
    }
    if let Some(path) = &tls.client_cert {
        options = options.ssl_client_cert(path);
    }
    if let Some(path) = &tls.client_key {
        options = options.ssl_client_key(path);
    }
    let has_root = tls.root_cert.is_some()
        || url_has_param(url, "sslrootcert")
        || std::env::var_os("PGSSLROOTCERT").is_some();
    if matches!(options.get_ssl_mode(), PgSslMode::Require) && has_root {
        options = options.ssl_mode(PgSslMode::VerifyCa);
    }
    Ok(options)
}

/// True when the URL's query names `param`.
fn url_has_param(url: &str, param: &str) -> bool {
    url.split_once('?').is_some_and(|(_, query)| {
        query
            .split('&')
            .any(|pair| pair.split('=').next() == Some(param))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode_of(url: &str, tls: &PgTls) -> PgSslMode {
        let options = PgConnectOptions::from_str(url).unwrap();
        apply(options, url, tls).unwrap().get_ssl_mode()
    }

    #[test]
    fn modes_parse_in_their_libpq_spelling() {
        for mode in [
            SslMode::Disable,
            SslMode::Prefer,
            SslMode::Require,
            SslMode::VerifyCa,
            SslMode::VerifyFull,
        ] {
            assert_eq!(mode.as_str().parse::<SslMode>(), Ok(mode));
        }
        let err = "verify_full".parse::<SslMode>().unwrap_err().to_string();
        assert!(err.starts_with("unknown sslmode \"verify_full\""), "{err}");
    }

    #[test]
    fn settings_override_the_url_and_require_with_a_root_checks_the_ca() {
        let url = "postgres://u@h/db?sslmode=disable";
        assert!(matches!(
            mode_of(url, &PgTls::default()),
            PgSslMode::Disable
        ));
        let full = PgTls {
            mode: Some(SslMode::VerifyFull),
            ..PgTls::default()
        };
        assert!(matches!(mode_of(url, &full), PgSslMode::VerifyFull));
        assert!(matches!(
            mode_of("postgres://u@h/db?sslmode=require", &PgTls::default()),
            PgSslMode::Require
        ));
        assert!(matches!(
            mode_of(
                "postgres://u@h/db?sslmode=require&sslrootcert=/ca.pem",
                &PgTls::default()
            ),
            PgSslMode::VerifyCa
        ));
        let dir = std::env::temp_dir().join(format!("errand-tls-unit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let ca = dir.join("ca.pem");
        std::fs::write(&ca, "").unwrap();
        let require_with_root = PgTls {
            mode: Some(SslMode::Require),
            root_cert: Some(ca),
            ..PgTls::default()
        };
        assert!(matches!(
            mode_of("postgres://u@h/db", &require_with_root),
            PgSslMode::VerifyCa
        ));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_missing_file_is_named_before_connecting() {
        let tls = PgTls {
            client_key: Some("/nonexistent/errand/client.key".into()),
            ..PgTls::default()
        };
        let url = "postgres://u@h/db";
        let err = apply(PgConnectOptions::from_str(url).unwrap(), url, &tls).unwrap_err();
        assert!(
            err.to_string()
                .contains("sslkey /nonexistent/errand/client.key: cannot read it"),
            "{err}"
        );
    }
}
