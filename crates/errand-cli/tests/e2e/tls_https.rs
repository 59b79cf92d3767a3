//! HTTP tasks over `https://`, against a TLS server in the test whose certificate (for
//! `localhost` only) comes from a CA the test makes: trusted through the task's `ca_file` or
//! `SSL_CERT_FILE`, refused without them or on a name the certificate lacks, accepted by
//! `insecure_skip_verify` with a warning naming the task.

use crate::certs::{Issued, TestCa};
use crate::common::{self, Backend, Env};
use errand::JobStatus;
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// Serves HTTPS on a free loopback port: every request gets `200 {"ok":true}`.
async fn https_server(issued: &Issued) -> u16 {
    use tokio_rustls::rustls::pki_types::pem::PemObject;
    use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs = vec![CertificateDer::from_pem_slice(issued.cert_pem.as_bytes()).unwrap()];
    let key = PrivateKeyDer::from_pem_slice(issued.key_pem.as_bytes()).unwrap();
    #[allow(deprecated)] // ring, as the binary
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let config = tokio_rustls::rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                // A client that refuses the certificate ends the handshake: nothing to do.
                let Ok(mut tls) = acceptor.accept(stream).await else {
                    return;
                };
                let mut request = Vec::new();
                let mut buf = [0u8; 4096];
                loop {
                    let Ok(n) = tls.read(&mut buf).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    request.extend_from_slice(&buf[..n]);
                    let text = String::from_utf8_lossy(&request);
                    if let Some(end) = text.find("\r\n\r\n") {
                        let length = text[..end]
                            .lines()
                            .find_map(|l| {
                                let (name, value) = l.split_once(':')?;
                                name.eq_ignore_ascii_case("content-length")
                                    .then(|| value.trim().parse::<usize>().ok())?
                            })
                            .unwrap_or(0);
                        if request.len() >= end + 4 + length {
                            break;
                        }
                    }
                }
                let body = r#"{"ok":true}"#;
                let answer = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = tls.write_all(answer.as_bytes()).await;
                let _ = tls.shutdown().await;
            });
        }
    });
    port
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_tasks_check_the_server_certificate() {
    common::run(Backend::Sqlite, https_cases).await;
}

async fn https_cases(env: Env) {
    let ca = TestCa::new("Errand test CA");
    let ca_file = ca.write(&env.dir.join("ca.pem")).display().to_string();
    let port = https_server(&ca.server(&["localhost"])).await;
    let by_name = format!("https://localhost:{port}/hook");
    let by_ip = format!("https://127.0.0.1:{port}/hook");
    env.config(&format!(
        r#"
[workers]
poll_interval = "100ms"
[tasks.trusted]
http = {{ url = "{by_name}", ca_file = "{ca_file}" }}
[tasks.untrusted]
http = {{ url = "{by_name}" }}
[tasks.wrong_name]
http = {{ url = "{by_ip}", ca_file = "{ca_file}" }}
[tasks.insecure]
http = {{ url = "{by_ip}", insecure_skip_verify = true }}
"#
    ));
    let client = env.client().await;
    let enqueue = |kind: &'static str| async move {
        client
            .enqueue_kind(kind, serde_json::json!({"n": 1}))
            .send()
            .await
            .unwrap()
            .id
    };
    let trusted = enqueue("trusted").await;
    let untrusted = enqueue("untrusted").await;
    let wrong_name = enqueue("wrong_name").await;
    let insecure = enqueue("insecure").await;
    let worker = env.spawn(&["worker"], &[]);

    let job = env
        .wait_job(trusted, "succeeded", |j| {
            matches!(j.status, JobStatus::Succeeded | JobStatus::Failed)
        })
        .await;
    assert_eq!(job.status, JobStatus::Succeeded, "{job:?}");
    assert_eq!(job.result, Some(serde_json::json!({"ok": true})));

    let job = env
        .wait_job(untrusted, "a failed attempt", |j| j.last_error.is_some())
        .await;
    assert_ne!(job.status, JobStatus::Succeeded, "{job:?}");
    let error = job.last_error.unwrap_or_default();
    assert!(error.contains("UnknownIssuer"), "{error}");

    let job = env
        .wait_job(wrong_name, "a failed attempt", |j| j.last_error.is_some())
        .await;
    assert_ne!(job.status, JobStatus::Succeeded, "{job:?}");
    let error = job.last_error.unwrap_or_default();
    assert!(
        error.contains("not valid for name") && error.contains("127.0.0.1"),
        "{error}"
    );

    let job = env
        .wait_job(insecure, "succeeded", |j| {
            matches!(j.status, JobStatus::Succeeded | JobStatus::Failed)
        })
        .await;
    assert_eq!(job.status, JobStatus::Succeeded, "{job:?}");
    let log = worker.stop().await;
    assert!(
        log.contains("INSECURE") && log.contains("tasks.insecure.http.insecure_skip_verify"),
        "no warning naming the task: {log}"
    );

    // The system's roots as OpenSSL tools read them: SSL_CERT_FILE makes the test's CA one.
    let again = enqueue("untrusted").await;
    let worker = env.spawn(&["worker"], &[("SSL_CERT_FILE", ca_file.as_str())]);
    let job = env
        .wait_job(again, "succeeded", |j| {
            matches!(j.status, JobStatus::Succeeded | JobStatus::Failed)
        })
        .await;
    assert_eq!(job.status, JobStatus::Succeeded, "{job:?}");
    worker.stop().await;
}
