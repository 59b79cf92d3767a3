//! `[database_tls]`: TLS to PostgreSQL beside `database_url`, in libpq's terms (`mode` is
//! `sslmode`, `ca_file` is `sslrootcert`, `cert_file` and `key_file` are `sslcert` and
//! `sslkey`). Each key set here overrides the same setting in the URL's query; the store
//! applies them (`errand_store_postgres`, module `tls`), so the rules (what each mode checks)
//! have one home.

use super::keys::Kind;
use super::raw::RawDatabaseTls;
use super::read::Reader;
use super::ConfigError;
use errand::postgres::{PgTls, SslMode};
use std::path::PathBuf;
use toml::Value;

pub(super) const DATABASE_TLS_KEYS: &[(&str, Kind)] = &[
    ("mode", Kind::Str),
    ("ca_file", Kind::Str),
    ("cert_file", Kind::Str),
    ("key_file", Kind::Str),
];

impl Reader<'_> {
    pub(super) fn database_tls(&self, t: RawDatabaseTls) -> Result<PgTls, ConfigError> {
        let mut tls = PgTls::default();
        if let Some(v) = t.mode {
            let raw = self.string("database_tls.mode", v)?;
            let mode = raw
                .parse::<SslMode>()
                .map_err(|e| self.error("database_tls.mode", e.to_string()))?;
            tls.mode = Some(mode);
        }
        for (key, value, slot) in [
            ("ca_file", t.ca_file, &mut tls.root_cert),
            ("cert_file", t.cert_file, &mut tls.client_cert),
            ("key_file", t.key_file, &mut tls.client_key),
        ] {
            if let Some(v) = value {
                *slot = Some(self.path(&format!("database_tls.{key}"), v)?);
            }
        }
        if tls.client_cert.is_some() != tls.client_key.is_some() {
            return Err(self.error(
                "database_tls",
                "set both cert_file and key_file (a client certificate needs its key), or neither",
            ));
        }
        Ok(tls)
    }

    /// A file path: a non-empty string.
    pub(super) fn path(&self, key: &str, v: Value) -> Result<PathBuf, ConfigError> {
        let raw = self.string(key, v)?;
        if raw.trim().is_empty() {
            return Err(self.error(key, "must not be empty"));
        }
        Ok(PathBuf::from(raw))
    }
}

#[cfg(test)]
mod tests {
    use super::super::{parse, Config, ConfigError};
    use errand::postgres::{PgTls, SslMode};

    fn read(text: &str, env: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        parse("errand.toml", Some(text), &move |name| {
            env.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
        })
    }

    #[test]
    fn database_tls_reads_its_keys_and_the_environment_overrides_them() {
        let c = read(
            "[database_tls]\nmode = \"verify-full\"\nca_file = \"/etc/ca.pem\"\n\
             cert_file = \"/etc/c.crt\"\nkey_file = \"/etc/c.key\"\n",
            &[],
        )
        .unwrap();
        assert_eq!(
            c.database_tls,
            PgTls {
                mode: Some(SslMode::VerifyFull),
                root_cert: Some("/etc/ca.pem".into()),
                client_cert: Some("/etc/c.crt".into()),
                client_key: Some("/etc/c.key".into()),
            }
        );
        let c = read(
            "[database_tls]\nmode = \"verify-full\"\n",
            &[
                ("ERRAND_DATABASE_TLS_MODE", "require"),
                ("ERRAND_DATABASE_TLS_CA_FILE", "/env/ca.pem"),
            ],
        )
        .unwrap();
        assert_eq!(c.database_tls.mode, Some(SslMode::Require));
        assert_eq!(c.database_tls.root_cert, Some("/env/ca.pem".into()));
        assert!(read("", &[]).unwrap().database_tls.is_empty());
    }

    #[test]
    fn http_ca_files_come_from_http_and_the_task_and_insecure_is_per_task() {
        use errand_runtime::{Handler, HttpTls};
        let c = read(
            "[http]\nca_file = \"/etc/company.pem\"\n\
             [tasks.a]\nhttp = { url = \"https://a.example/\", ca_file = \"/etc/a.pem\" }\n\
             [tasks.b]\nhttp = { url = \"https://b.example/\", insecure_skip_verify = true }\n",
            &[("ERRAND_TASKS_B_HTTP_CA_FILE", "/env/b.pem")],
        )
        .unwrap();
        let tls_of = |kind: &str| match &c.tasks[kind].handler {
            Handler::Http { tls, .. } => tls.clone(),
            other => panic!("{other:?}"),
        };
        assert_eq!(
            tls_of("a"),
            HttpTls {
                ca_files: vec!["/etc/company.pem".into(), "/etc/a.pem".into()],
                insecure_skip_verify: false,
            }
        );
        assert_eq!(
            tls_of("b"),
            HttpTls {
                ca_files: vec!["/etc/company.pem".into(), "/env/b.pem".into()],
                insecure_skip_verify: true,
            }
        );
    }

    #[test]
    fn database_tls_mistakes_name_the_key() {
        for (text, env, expected) in [
            (
                "[database_tls]\nmode = \"verify_full\"\n",
                &[][..],
                "database_tls.mode: unknown sslmode \"verify_full\" (expected one of: disable, prefer, require, verify-ca, verify-full)",
            ),
            (
                "[database_tls]\nsslmode = \"require\"\n",
                &[],
                "database_tls: unknown key \"sslmode\"",
            ),
            (
                "[database_tls]\ncert_file = \"/c.crt\"\n",
                &[],
                "database_tls: set both cert_file and key_file",
            ),
            ("[database_tls]\nca_file = \"\"\n", &[], "database_tls.ca_file: must not be empty"),
            (
                "",
                &[("ERRAND_DATABASE_TLS_MODE", "strict")],
                "ERRAND_DATABASE_TLS_MODE: database_tls.mode: unknown sslmode \"strict\"",
            ),
        ] {
            let err = read(text, env).unwrap_err().to_string();
            assert!(err.contains(expected), "{text:?}: {err}");
        }
    }
}
