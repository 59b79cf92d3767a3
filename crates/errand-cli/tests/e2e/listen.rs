//! `errand serve --listen ADDR`, and a port already in use: the start fails, naming the
//! address, before any worker has claimed a job.

use crate::common::{e2e, enqueued_id, Env, PATIENCE};
use errand::JobStatus;

e2e!(serve_listens_where_told_and_fails_before_claiming_when_the_port_is_taken);

async fn serve_listens_where_told_and_fails_before_claiming_when_the_port_is_taken(env: Env) {
    env.config("[queues.default]\nconcurrency = 2\n[tasks.touch]\ncommand = [\"sleep\", \"1\"]\n");
    let id = enqueued_id(&env.run(&["enqueue", "touch"]).await);

    // Taken: another program holds the port.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let mut cmd = env.errand(&["serve", "--listen", &addr]);
    let out = tokio::time::timeout(PATIENCE, cmd.output())
        .await
        .expect("serve gives up")
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&addr),
        "the error names the address: {stderr}"
    );
    assert!(stderr.to_lowercase().contains("in use"), "{stderr}");
    let job = env.job(id).await;
    assert_eq!(job.status, JobStatus::Queued, "{job:?}");
    assert_eq!(job.attempt, 0, "no worker claimed it: {job:?}");
    // Not even claimed and handed back at the stop (that leaves a `released` event).
    let events = env.events(id).await;
    assert!(events.is_empty(), "{events:?}");
    assert!(job.started_at.is_none(), "{job:?}");

    // Free: the flag beats the environment (the test harness sets ERRAND_SERVER_LISTEN).
    drop(taken);
    let serve = env.spawn(&["serve", "--listen", &addr], &[]);
    let line = serve.wait_for_line("HTTP API listening on").await;
    assert!(line.contains(&format!("http://{addr}")), "{line}");
    let health = crate::common::http_client()
        .get(format!("http://{addr}/health"))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    env.wait_job(id, "succeeded", |j| j.status == JobStatus::Succeeded)
        .await;
    serve.stop().await;

    // A public address without a token is refused before anything starts.
    let out = env.run(&["serve", "--listen", "0.0.0.0:0"]).await;
    assert_eq!(out.code, Some(2), "{out:?}");
    assert!(out.stderr.contains("token"), "{out:?}");
}
