//! HTTP handlers through `errand worker`, against a small HTTP server in the test.

use crate::common::{e2e, Env};
use errand::JobStatus;
use std::collections::HashMap;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

e2e!(http_responses_decide_success_retry_and_failure);

async fn http_responses_decide_success_retry_and_failure(env: Env) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(serve(stream));
        }
    });
    // A port with nothing behind it.
    let closed = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap()
        .port();

    let base = format!("http://127.0.0.1:{port}");
    env.config(&format!(
        r#"
[workers]
poll_interval = "100ms"
[tasks.ok]
http = {{ url = "{base}/ok?token=q", headers = {{ "X-Token" = "t0k3n" }} }}
[tasks.busy]
http = {{ url = "{base}/busy" }}
[tasks.bad]
http = {{ url = "{base}/bad" }}
[tasks.down]
http = {{ url = "http://127.0.0.1:{closed}/" }}
backoff = {{ base = "1h", cap = "1h", jitter = 0.0 }}
"#
    ));
    let client = env.client().await;
    let enqueue = |kind: &'static str| async move {
        client
            .enqueue_kind(kind, serde_json::json!({"user": 42}))
            .send()
            .await
            .unwrap()
            .id
    };
    let ok = enqueue("ok").await;
    let busy = enqueue("busy").await;
    let bad = enqueue("bad").await;
    let down = enqueue("down").await;
    let started = chrono::Utc::now();
    let worker = env.spawn(&["worker"], &[]);

    let job = env
        .wait_job(ok, "succeeded", |j| j.status == JobStatus::Succeeded)
        .await;
    assert_eq!(
        job.result,
        Some(serde_json::json!({
            "body": {"user": 42}, "job_id": ok.to_string(), "attempt": "1", "kind": "ok",
            "token": "t0k3n", "content_type": "application/json", "path": "/ok?token=q",
        }))
    );

    // 503 with Retry-After: 120 is retried in two minutes, whatever the backoff says.
    let job = env
        .wait_job(busy, "retrying", |j| {
            j.status == JobStatus::Queued && j.attempt == 1
        })
        .await;
    assert_eq!(
        job.last_error.as_deref(),
        Some("HTTP 503 Service Unavailable: overloaded")
    );
    let wait = job.run_at - started;
    assert!(
        wait >= chrono::Duration::seconds(115) && wait <= chrono::Duration::seconds(130),
        "{wait:?}"
    );

    // 400 fails for good, with the start of the body.
    let job = env
        .wait_job(bad, "failed", |j| j.status == JobStatus::Failed)
        .await;
    assert_eq!((job.attempt, job.max_attempts), (1, 4));
    assert_eq!(
        job.last_error.as_deref(),
        Some("HTTP 400 Bad Request: missing field `email`")
    );

    // No server: an ordinary failure, retried after the backoff.
    let job = env
        .wait_job(down, "retrying", |j| {
            j.status == JobStatus::Queued && j.attempt == 1
        })
        .await;
    let error = job.last_error.unwrap();
    assert!(
        error.starts_with(&format!(
            "POST http://127.0.0.1:{closed}/ could not connect"
        )),
        "{error}"
    );
    worker.stop().await;
}

/// One request, one response, then the connection closes.
async fn serve(mut stream: TcpStream) {
    let mut data = Vec::new();
    let mut buf = [0u8; 4096];
    let (head, body_start) = loop {
        let n = stream.read(&mut buf).await.unwrap_or(0);
        if n == 0 {
            return;
        }
        data.extend_from_slice(&buf[..n]);
        if let Some(i) = data.windows(4).position(|w| w == b"\r\n\r\n") {
            break (String::from_utf8_lossy(&data[..i]).into_owned(), i + 4);
        }
    };
    let mut lines = head.lines();
    let path = lines
        .next()
        .unwrap_or_default()
        .split(' ')
        .nth(1)
        .unwrap_or_default()
        .to_string();
    let headers: HashMap<String, String> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let length: usize = headers
        .get("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut body = data[body_start..].to_vec();
    while body.len() < length {
        let n = stream.read(&mut buf).await.unwrap_or(0);
        if n == 0 {
            break;
        }
        body.extend_from_slice(&buf[..n]);
    }
    let header = |name: &str| headers.get(name).cloned().unwrap_or_default();
    let (status, extra, reply) = if path.starts_with("/ok") {
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
        let reply = serde_json::json!({
            "body": body, "job_id": header("errand-job-id"), "attempt": header("errand-attempt"),
            "kind": header("errand-kind"), "token": header("x-token"),
            "content_type": header("content-type"), "path": path,
        });
        (
            "200 OK",
            "Content-Type: application/json\r\n",
            reply.to_string(),
        )
    } else if path == "/busy" {
        (
            "503 Service Unavailable",
            "Retry-After: 120\r\n",
            "overloaded".to_string(),
        )
    } else {
        ("400 Bad Request", "", "missing field `email`".to_string())
    };
    let response = format!(
        "HTTP/1.1 {status}\r\n{extra}Content-Length: {}\r\nConnection: close\r\n\r\n{reply}",
        reply.len()
    );
    let _ = stream.write_all(response.as_bytes()).await;
    let _ = stream.shutdown().await;
}
