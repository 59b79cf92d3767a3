//! The crash storm: four `errand worker` processes drain 20,000 jobs while one of them,
//! chosen at random, is killed with SIGKILL and started again every second or so. Every job
//! ends succeeded, none is lost, and none ran twice at once.
//!
//! Most jobs are HTTP tasks against the test's [`Sink`], which keeps each request as a run
//! (job, attempt, arrival, answer): a job whose attempt died with its worker runs again (at
//! least once), but two runs of one job never overlap, later attempts come after earlier
//! ones, and the attempt that succeeded is the job's last run. A run takes a few
//! milliseconds, so that an overlap would show. A few hundred are commands of a queue of
//! their own that take 3 s and log their start and end with the life of the worker process
//! that ran them (each start of a worker is a new life, named in an environment variable its
//! commands inherit): an attempt whose worker was killed must not log its end more than a
//! second after the kill (it would, were it left running beside the retry), nor after the next
//! attempt's start. The kills stop once 90 % of the jobs have succeeded and at least
//! [`MIN_KILLS`] were made, so that the drain ends within the bound however the dice fall.

use crate::common::{e2e, Env, Proc};
use crate::sink::{Run, Sink};
use errand::{JobId, JobStatus, NewJob};
use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, Instant};

e2e!(a_crash_storm_loses_no_job_and_runs_none_twice_at_once);

const JOBS: usize = 20_000;
/// Of which commands taking [`COMMAND_TIME`].
const COMMANDS: usize = 160;
const COMMAND_TIME: &str = "3";
/// How long a command may outlive the worker that started it.
const COMMAND_GRACE_NS: u128 = 1_000_000_000;
/// The environment variable that sets the storm's lease (default 5 s). With `2s` and both
/// storms at once on two cores, a live worker's heartbeat came more than 2/3 of a lease late
/// now and then, the job was rescued while its command still ran, and the overlap check
/// below failed: a worker does not yet stop a job whose lease it can no longer know it holds.
const LEASE: &str = "E2E_STORM_LEASE";
/// The environment variable naming a worker's life.
const LIFE: &str = "E2E_STORM_LIFE";
const WORKERS: usize = 4;
/// How long the whole drain may take (it bounds a hang; the figures are printed).
const BOUND: Duration = Duration::from_secs(240);
/// At least this many kills, or the storm did not test much.
const MIN_KILLS: u32 = 5;
/// How long each HTTP job's request takes at the sink.
const RUN_TIME: Duration = Duration::from_millis(5);

async fn a_crash_storm_loses_no_job_and_runs_none_twice_at_once(env: Env) {
    let sink = Sink::start(RUN_TIME).await;
    let script = env.script(
        "slow.sh",
        &format!(
            "echo \"$ERRAND_JOB_ID $ERRAND_ATTEMPT ${LIFE} start $(date +%s%N)\" >> runs.log\n\
             sleep {COMMAND_TIME}\n\
             echo \"$ERRAND_JOB_ID $ERRAND_ATTEMPT ${LIFE} end $(date +%s%N)\" >> runs.log"
        ),
    );
    // A short lease, so that the jobs of a killed worker come back within a few seconds, but
    // not so short that a heartbeat held up by the load of the storm loses a live worker's
    // lease (with 2 s, under the load of both storms at once, it did: see LEASE).
    let lease = std::env::var(LEASE).unwrap_or_else(|_| "5s".to_string());
    env.config(&format!(
        "[workers]\npoll_interval = \"200ms\"\nlease = \"{lease}\"\n\
         [queues.default]\nconcurrency = 16\n[queues.slow]\nconcurrency = 8\n\
         [tasks.ping]\nhttp = {{ url = \"{}/ping\" }}\n\
         [tasks.slow]\nqueue = \"slow\"\ncommand = [\"sh\", \"{script}\"]\n",
        sink.url
    ));
    let client = env.client().await;
    let started = Instant::now();
    let mut ids: Vec<JobId> = Vec::with_capacity(JOBS);
    let job = |kind: &str, queue: &str, n: usize| NewJob {
        queue: Some(queue.to_string()),
        // Room for many deaths: a job claimed by a worker that is then killed spends an
        // attempt each time.
        max_attempts: Some(50),
        ..NewJob::new(kind, serde_json::json!({ "n": n }))
    };
    let commands: Vec<NewJob> = (0..COMMANDS).map(|n| job("slow", "slow", n)).collect();
    let done = client.enqueue_many(&commands).await.unwrap();
    let command_ids: HashSet<JobId> = done.iter().map(|e| e.id).collect();
    ids.extend(&command_ids);
    let batch: Vec<NewJob> = (0..1000).map(|n| job("ping", "default", n)).collect();
    while ids.len() < JOBS {
        let take = batch.len().min(JOBS - ids.len());
        let done = client.enqueue_many(&batch[..take]).await.unwrap();
        ids.extend(done.iter().map(|e| e.id));
    }
    let enqueued = started.elapsed();

    let started = Instant::now();
    // When each life of a worker was killed (system clock, ns); a life is an index.
    let mut lives: Vec<Option<u128>> = Vec::new();
    let start_worker = |lives: &mut Vec<Option<u128>>| {
        lives.push(None);
        let life = (lives.len() - 1).to_string();
        (env.spawn(&["worker"], &[(LIFE, &life)]), lives.len() - 1)
    };
    let mut workers: Vec<(Proc, usize)> = (0..WORKERS).map(|_| start_worker(&mut lives)).collect();
    let mut dice = Dice::new();
    let mut kills = 0u32;
    loop {
        tokio::time::sleep(Duration::from_millis(500 + dice.below(1000))).await;
        let [queued, running, succeeded, failed, cancelled] = env.counts().await;
        if succeeded as usize == JOBS {
            break;
        }
        assert_eq!(
            (failed, cancelled),
            (0, 0),
            "jobs failed or were cancelled (seed {})\n{}",
            dice.seed,
            env.logs()
        );
        assert!(
            started.elapsed() < BOUND,
            "not drained within {BOUND:?}: {queued} queued, {running} running, {succeeded} \
             succeeded after {kills} kills (seed {})\n{}",
            dice.seed,
            env.logs()
        );
        // Kill until 90 % have succeeded, and at least MIN_KILLS times: on a quiet machine the
        // short jobs reach 90 % within seconds, while the commands (at least five rounds of
        // 3 s) keep the drain going long enough for the rest.
        if kills < MIN_KILLS || (succeeded as usize) < JOBS * 9 / 10 {
            let victim = dice.below(WORKERS as u64) as usize;
            let (proc, life) = &mut workers[victim];
            lives[*life] = Some(now_ns());
            proc.signal(libc::SIGKILL);
            proc.exit().await;
            workers[victim] = start_worker(&mut lives);
            kills += 1;
        }
    }
    let drained = started.elapsed();
    for (w, _) in workers {
        w.stop().await;
    }

    // The table: every job succeeded.
    let jobs = env.every_job().await;
    assert_eq!(jobs.len(), JOBS);
    let expected: HashSet<JobId> = ids.iter().copied().collect();
    assert_eq!(jobs.iter().map(|j| j.id).collect::<HashSet<_>>(), expected);
    assert!(jobs.iter().all(|j| j.status == JobStatus::Succeeded));

    // The side effects: every job ran; no two runs of a job overlapped; attempts in order;
    // the succeeded attempt is the last run.
    assert_eq!(sink.anonymous(), 0);
    let mut by_job: BTreeMap<JobId, Vec<Run>> = BTreeMap::new();
    for run in sink.runs() {
        by_job.entry(run.job).or_default().push(run);
    }
    let mut ran_again = 0;
    for job in jobs.iter().filter(|j| !command_ids.contains(&j.id)) {
        let runs = by_job
            .get_mut(&job.id)
            .unwrap_or_else(|| panic!("job {} never ran: {job:?}", job.id));
        runs.sort_by_key(|r| r.start);
        for pair in runs.windows(2) {
            assert!(
                pair[0].end <= pair[1].start,
                "job {} ran twice at once: {pair:?}",
                job.id
            );
            assert!(
                pair[0].attempt < pair[1].attempt,
                "job {}: {pair:?}",
                job.id
            );
        }
        let last = runs.last().unwrap();
        assert_eq!(
            i64::from(last.attempt),
            i64::from(job.attempt),
            "{job:?} {runs:?}"
        );
        assert!(runs.len() <= job.attempt as usize, "{job:?} {runs:?}");
        if runs.len() > 1 {
            ran_again += 1;
        }
    }
    let killed_commands = check_command_runs(&env, &jobs, &command_ids, &lives);
    let rescued = jobs.iter().filter(|j| j.attempt > 1).count();
    assert!(
        kills >= MIN_KILLS,
        "only {kills} kills: the drain was too quick to be a storm"
    );
    eprintln!(
        "crash storm: {JOBS} jobs enqueued in {enqueued:?}, drained by {WORKERS} workers in \
         {drained:?} with {kills} kills (seed {}); {rescued} jobs took more than one attempt, \
         {ran_again} HTTP jobs ran more than once, {killed_commands} command attempts were \
         killed with their worker",
        dice.seed
    );
}

/// Checks the command jobs' log: each attempt's worker life, start and end (in nanoseconds of
/// the system clock). No attempt ends more than [`COMMAND_GRACE_NS`] after its worker was
/// killed; every attempt ends before the next one starts, or never ends (it died with its
/// worker); the succeeded attempt ended. Returns how many attempts never ended, which must
/// be some, or the check checked nothing.
fn check_command_runs(
    env: &Env,
    jobs: &[errand::Job],
    commands: &HashSet<JobId>,
    lives: &[Option<u128>],
) -> usize {
    let log = std::fs::read_to_string(env.path("runs.log")).unwrap();
    // (job, attempt) -> (start, end)
    let mut runs: BTreeMap<(JobId, i32), (Option<u128>, Option<u128>)> = BTreeMap::new();
    for line in log.lines() {
        let fields: Vec<&str> = line.split(' ').collect();
        let [job, attempt, life, what, at] = fields[..] else {
            panic!("bad line in runs.log: {line:?}");
        };
        let key = (job.parse().unwrap(), attempt.parse().unwrap());
        let at: u128 = at.parse().unwrap();
        let life: usize = life.parse().unwrap();
        if let (Some(killed), "end") = (lives[life], what) {
            assert!(
                at <= killed + COMMAND_GRACE_NS,
                "job {} attempt {} ended {} ms after its worker (life {life}) was killed",
                key.0,
                key.1,
                (at - killed) / 1_000_000
            );
        }
        let run = runs.entry(key).or_default();
        let slot = if what == "start" {
            &mut run.0
        } else {
            &mut run.1
        };
        assert!(slot.is_none(), "{key:?} logged {what} twice");
        *slot = Some(at);
    }
    let mut killed = 0;
    for job in jobs.iter().filter(|j| commands.contains(&j.id)) {
        let mine: Vec<(i32, Option<u128>, Option<u128>)> = runs
            .range((job.id, 0)..=(job.id, i32::MAX))
            .map(|(&(_, attempt), &(start, end))| (attempt, start, end))
            .collect();
        let last = mine.last().unwrap_or_else(|| panic!("{job:?} never ran"));
        assert_eq!(last.0, job.attempt, "{job:?}: {mine:?}");
        assert!(
            last.2.is_some(),
            "the succeeded attempt logged no end: {mine:?}"
        );
        for pair in mine.windows(2) {
            let (next_start, end) = (pair[1].1, pair[0].2);
            assert!(next_start.is_some(), "job {}: {mine:?}", job.id);
            match end {
                None => killed += 1,
                Some(end) => assert!(
                    end <= next_start.unwrap(),
                    "job {}: attempt {} ran on beside attempt {}: {mine:?}\n\
                     what the workers said about leases:\n{}",
                    job.id,
                    pair[0].0,
                    pair[1].0,
                    lease_lines(env)
                ),
            }
        }
    }
    assert!(killed > 0, "no command attempt died with its worker");
    killed
}

/// The workers' log lines about leases, for a failure message.
fn lease_lines(env: &Env) -> String {
    env.logs()
        .lines()
        .filter(|l| l.contains("lease"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Now on the system clock (the clock of `date +%s%N`), in nanoseconds.
fn now_ns() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

/// A small random number generator (xorshift), seeded from the clock; the seed is printed
/// with every failure.
struct Dice {
    seed: u64,
    state: u64,
}

impl Dice {
    fn new() -> Dice {
        let seed = now_ns() as u64 | 1;
        Dice { seed, state: seed }
    }

    /// A number in `0..n`.
    fn below(&mut self, n: u64) -> u64 {
        self.state ^= self.state << 13;
        self.state ^= self.state >> 7;
        self.state ^= self.state << 17;
        self.state % n
    }
}
