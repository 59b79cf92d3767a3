//! Mapping `sqlx` errors to [`StoreError`]: connection trouble is `Unavailable` (safe to retry),
//! a missing table is a `Schema` problem, anything else is a `Database` error with its message.

use errand_store::StoreError;

/// SQLSTATE of a missing table (`undefined_table`).
const UNDEFINED_TABLE: &str = "42P01";
/// SQLSTATE of a missing schema (`invalid_schema_name`), e.g. `CREATE TABLE` with a
/// `search_path` naming a schema that does not exist yet.
const INVALID_SCHEMA_NAME: &str = "3F000";

/// SQLSTATE of `disk_full`: the server could not extend a file.
const DISK_FULL: &str = "53100";

/// True for SQLSTATEs that mean the connection or the server went away.
fn is_unavailable_code(code: &str) -> bool {
    code.starts_with("08") // connection_exception class
        || matches!(code, "57P01" | "57P02" | "57P03") // admin/crash shutdown, cannot connect now
}

/// Converts a driver error into the store's error vocabulary.
pub(crate) fn map(err: sqlx::Error) -> StoreError {
    match err {
        // A failed handshake reaches here as an I/O error carrying rustls's error.
        sqlx::Error::Io(e) => match e.get_ref().and_then(|inner| inner.downcast_ref()) {
            Some(tls) => StoreError::Unavailable(format!("TLS: {}", tls_message(tls))),
            None => StoreError::Unavailable(e.to_string()),
        },
        sqlx::Error::Tls(e) => StoreError::Unavailable(match e.downcast_ref() {
            Some(tls) => format!("TLS: {}", tls_message(tls)),
            None => format!("TLS: {e}"),
        }),
        sqlx::Error::PoolTimedOut => {
            StoreError::Unavailable("timed out waiting for a database connection".into())
        }
        sqlx::Error::PoolClosed => StoreError::Unavailable("the connection pool is closed".into()),
        sqlx::Error::WorkerCrashed => {
            StoreError::Unavailable("the connection's background worker crashed".into())
        }
        sqlx::Error::Database(db) => {
            let code = db.code().map(|c| c.into_owned()).unwrap_or_default();
            if code == DISK_FULL {
                StoreError::DiskFull(format!("{} (SQLSTATE {code})", db.message()))
            } else if is_unavailable_code(&code) {
                StoreError::Unavailable(format!("{} (SQLSTATE {code})", db.message()))
            } else if code == UNDEFINED_TABLE || code == INVALID_SCHEMA_NAME {
                StoreError::Schema(format!(
                    "{} (SQLSTATE {code}): the Errand tables are missing; run `errand migrate`",
                    db.message()
                ))
            } else if code.is_empty() {
                StoreError::Database(db.message().to_string())
            } else {
                StoreError::Database(format!("{} (SQLSTATE {code})", db.message()))
            }
        }
        other => StoreError::Database(other.to_string()),
    }
}

/// A failed TLS handshake in words that say what to fix: for a certificate the client does
/// not trust, why and which setting decides it, then rustls's own words.
fn tls_message(e: &rustls::Error) -> String {
    use rustls::CertificateError as C;
    let hint = match e {
        rustls::Error::InvalidCertificate(cert) => match cert {
            C::UnknownIssuer | C::BadSignature | C::UnhandledCriticalExtension => {
                "the server's certificate is not signed by a CA this client trusts \
                 (sslrootcert names the CA to trust besides the system's)"
            }
            C::NotValidForName | C::NotValidForNameContext { .. } => {
                "the server's certificate does not name the host connected to \
                 (sslmode=verify-full checks it; connect by a name the certificate holds)"
            }
            C::Expired
            | C::ExpiredContext { .. }
            | C::NotValidYet
            | C::NotValidYetContext { .. } => {
                "the server's certificate is outside its validity period"
            }
            _ => "the server's certificate is not trusted",
        },
        _ => return e.to_string(),
    };
    format!("{hint}: {e}")
}

/// The SQLSTATE of a database error, if it is one.
pub(crate) fn code_of(err: &sqlx::Error) -> Option<String> {
    match err {
        sqlx::Error::Database(db) => db.code().map(|c| c.into_owned()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_problems_are_unavailable() {
        let io = sqlx::Error::Io(std::io::Error::new(
            std::io::ErrorKind::ConnectionRefused,
            "x",
        ));
        assert!(map(io).is_transient());
        assert!(map(sqlx::Error::PoolTimedOut).is_transient());
        assert!(map(sqlx::Error::PoolClosed).is_transient());
        assert!(is_unavailable_code("08006"));
        assert!(is_unavailable_code("57P01"));
        assert!(!is_unavailable_code("23505"));
    }
}
