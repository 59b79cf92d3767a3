//! Schedules through the real binary: `errand serve` reconciles `[schedules]` with the stored
//! schedules and logs what changed; `errand worker` does not schedule; three `errand serve`
//! processes on one PostgreSQL database enqueue each fire of a per-second schedule exactly
//! once, also when one of them is killed with SIGKILL half way.

use crate::common::{self, e2e, Env, Proc, PATIENCE};
use chrono::{DateTime, Utc};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

e2e!(
    serve_reconciles_configured_schedules_and_logs_the_changes,
    worker_does_not_fire_schedules,
    serve_reports_scheduler_health,
);

/// The API's base URL, from `serve`'s log line.
fn base_url(line: &str) -> String {
    let start = line.find("http://").expect("a URL in the line");
    line[start..].split_whitespace().next().unwrap().to_string()
}

/// The fires to count in the three-process tests.
const FIRES: usize = 20;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_serve_processes_enqueue_each_fire_exactly_once() {
    common::run(common::Backend::Postgres, |env| three_serve(env, false)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_serve_processes_one_killed_half_way_enqueue_each_fire_exactly_once() {
    common::run(common::Backend::Postgres, |env| three_serve(env, true)).await;
}

/// The fire time in a job's unique key (`schedule:tick:2030-01-01T00:00:01Z`).
fn fire_time(job: &errand::Job) -> Option<DateTime<Utc>> {
    let key = job.unique_key.as_deref()?;
    key.strip_prefix("schedule:tick:")?.parse().ok()
}

/// Jobs per fire time of the `tick` schedule.
async fn fires(env: &Env) -> BTreeMap<DateTime<Utc>, usize> {
    let mut per_fire = BTreeMap::new();
    for job in env.every_job().await {
        if let Some(t) = fire_time(&job) {
            *per_fire.entry(t).or_insert(0) += 1;
        }
    }
    per_fire
}

async fn wait_fires(env: &Env, n: usize) -> BTreeMap<DateTime<Utc>, usize> {
    let deadline = Instant::now() + 2 * PATIENCE;
    loop {
        let f = fires(env).await;
        if f.len() >= n {
            return f;
        }
        assert!(
            Instant::now() < deadline,
            "only {} fires after {:?}\n{}",
            f.len(),
            2 * PATIENCE,
            env.logs()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn three_serve(env: Env, kill_one: bool) {
    // No tasks (nothing claims the jobs) and no HTTP API (three processes, one port).
    // `allow`: the queued jobs of earlier fires must not make later fires skip.
    env.config(
        "[server]\nenabled = false\n\
         [schedules.tick]\nevery = \"1s\"\nkind = \"tick\"\noverlap = \"allow\"\n",
    );
    assert_eq!(env.run(&["migrate"]).await.code, Some(0));
    let mut procs: Vec<Proc> = (0..3).map(|_| env.spawn(&["serve"], &[])).collect();
    for p in &procs {
        p.ready().await;
    }
    let first = wait_fires(&env, 1).await;
    let start = *first.keys().next().unwrap();
    if kill_one {
        wait_fires(&env, FIRES / 2).await;
        let victim = procs.remove(0);
        victim.signal(libc::SIGKILL);
        let mut victim = victim;
        victim.exit().await;
    }
    let seen = wait_fires(&env, FIRES + 1).await;
    for p in procs {
        p.stop().await;
    }
    // The first FIRES fire times from the first one: one second apart, one job each.
    let window: Vec<(DateTime<Utc>, usize)> = seen
        .iter()
        .filter(|(t, _)| **t >= start)
        .take(FIRES)
        .map(|(t, n)| (*t, *n))
        .collect();
    let expected: Vec<(DateTime<Utc>, usize)> = (0..FIRES as i64)
        .map(|i| (start + chrono::Duration::seconds(i), 1))
        .collect();
    assert_eq!(window, expected, "\n{}", env.logs());
    // Nothing was skipped: every fire was on time somewhere.
    let detail = env.client().await.schedule("tick", 0).await.unwrap();
    assert!(detail.skipped.is_empty(), "{:?}", detail.skipped);
    // Each process fired some (no leader), unless one was killed before its turn came.
    let logs = env.logs();
    assert!(logs.contains("schedule fired"), "{logs}");
}

async fn serve_reconciles_configured_schedules_and_logs_the_changes(env: Env) {
    let base = "[server]\nenabled = false\n";
    env.config(&format!(
        "{base}[schedules.a]\ncron = \"0 2 * * *\"\nkind = \"report\"\n\
         [schedules.b]\nevery = \"1h\"\nkind = \"tick\"\n"
    ));
    assert_eq!(env.run(&["migrate"]).await.code, Some(0));
    let client = env.client().await;
    let api = errand::ScheduleSpec {
        every: Some("1h".into()),
        kind: "api".into(),
        args: serde_json::json!({}),
        coalesce: true,
        ..Default::default()
    };
    client.schedule_create("from_api", &api).await.unwrap();

    let serve = env.spawn(&["serve"], &[]);
    serve
        .wait_for_line("schedule added from the configuration schedule=a")
        .await;
    serve
        .wait_for_line("schedule added from the configuration schedule=b")
        .await;
    let ready = serve.ready().await;
    assert!(ready.contains("schedules=a,b"), "{ready}");
    assert!(ready.contains("scheduling=true"), "{ready}");
    serve.stop().await;

    env.config(&format!(
        "{base}[schedules.b]\nevery = \"2h\"\nkind = \"tick\"\n\
         [schedules.c]\ncron = \"*/5 * * * *\"\ntimezone = \"Europe/London\"\nkind = \"c\"\n\
         [scheduler]\nenabled = false\n"
    ));
    let serve = env.spawn(&["serve"], &[]);
    serve
        .wait_for_line("schedule added from the configuration schedule=c")
        .await;
    serve
        .wait_for_line("schedule changed from the configuration schedule=b")
        .await;
    serve
        .wait_for_line("schedule removed: no longer in the configuration schedule=a")
        .await;
    let ready = serve.ready().await;
    assert!(ready.contains("scheduling=false"), "{ready}");
    let log = serve.stop().await;
    assert!(log.contains("scheduler off"), "{log}");
    let names: Vec<String> = client
        .schedules()
        .await
        .unwrap()
        .into_iter()
        .map(|s| format!("{}:{}", s.name, s.source.as_str()))
        .collect();
    assert_eq!(names, ["b:config", "c:config", "from_api:api"]);

    // A bad schedule stops the start with the key named, and changes nothing.
    env.config(&format!(
        "{base}[schedules.b]\nevery = \"2h\"\nkind = \"tick\"\ncoalesce = \"yes\"\n"
    ));
    let out = env.run(&["serve"]).await;
    assert_eq!(out.code, Some(2), "{out:?}");
    assert!(out.stderr.contains("schedules.b"), "{out:?}");
    assert_eq!(client.schedules().await.unwrap().len(), 3);

    // So does a cron expression that can never fire, naming the schedule and the field.
    env.config(&format!(
        "{base}[schedules.b]\ncron = \"0 0 30 2 *\"\nkind = \"tick\"\n"
    ));
    let out = env.run(&["serve"]).await;
    assert_eq!(out.code, Some(2), "{out:?}");
    assert!(
        out.stderr
            .contains(r#"schedules.b.cron: invalid expression "0 0 30 2 *": field "day of month""#)
            && out.stderr.contains("never fires"),
        "{out:?}"
    );
    assert_eq!(client.schedules().await.unwrap().len(), 3);
}

/// `/health/scheduler` of the real `serve`: degraded (503) with the reason while the
/// scheduler is switched off; healthy once its loop runs and passes.
async fn serve_reports_scheduler_health(env: Env) {
    env.config("[scheduler]\nenabled = false\n[schedules.tick]\nevery = \"1h\"\nkind = \"tick\"\n");
    assert_eq!(env.run(&["migrate"]).await.code, Some(0));
    let get = |base: String| async move {
        let r = crate::common::http_client()
            .get(format!("{base}/health/scheduler"))
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json::<serde_json::Value>().await.unwrap())
    };
    let serve = env.spawn(&["serve"], &[]);
    let base = base_url(&serve.wait_for_line("HTTP API listening on").await);
    serve.ready().await;
    let (status, v) = get(base.clone()).await;
    assert_eq!(status, 503, "{v}");
    assert_eq!(v["status"], "degraded");
    assert_eq!(v["scheduler"]["state"], "disabled");
    assert_eq!(v["problems"][0]["code"], "scheduler_disabled", "{v}");
    assert!(
        v["problems"][0]["message"]
            .as_str()
            .unwrap()
            .contains("[scheduler] enabled = false"),
        "{v}"
    );
    serve.stop().await;

    env.config("[schedules.tick]\nevery = \"1h\"\nkind = \"tick\"\n");
    let serve = env.spawn(&["serve"], &[]);
    let base = base_url(&serve.wait_for_line("HTTP API listening on").await);
    serve.ready().await;
    let deadline = Instant::now() + PATIENCE;
    loop {
        let (status, v) = get(base.clone()).await;
        assert_eq!(status, 200, "{v}");
        assert_eq!(v["status"], "healthy", "{v}");
        assert_eq!(v["problems"], serde_json::json!([]));
        assert_eq!(v["scheduler"]["state"], "running");
        assert_eq!(v["next_run"]["schedule"], "tick");
        // Once the loop's first pass has ended.
        if v["scheduler"]["last_pass_at"].is_string() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no pass within {PATIENCE:?}: {v}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    serve.stop().await;
}

async fn worker_does_not_fire_schedules(env: Env) {
    env.config("[server]\nenabled = false\n[schedules.tick]\nevery = \"1s\"\nkind = \"tick\"\n");
    assert_eq!(env.run(&["migrate"]).await.code, Some(0));
    let worker = env.spawn(&["worker"], &[]);
    worker.ready().await;
    // The schedule was never stored: only `errand serve` reconciles and fires.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(env.client().await.schedules().await.unwrap().is_empty());
    assert!(env.all_jobs().await.is_empty());
    let log = worker.stop().await;
    assert!(!log.contains("scheduler started"), "{log}");
}
