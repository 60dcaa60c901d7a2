//! Engine tests against `Fake`, an in-memory target: a table of integer keys 1..=N with a
//! fill count per key, a state row with a guarded checkpoint, scripted failures, and a log of
//! every call. Time is a `ManualClock`, so no test sleeps for real.

use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use super::clock::{Clock, ManualClock};
use super::{
    Command, Engine, EngineError, Event, EventKind, RunOutcome, SizeSource, State, Status,
};
use crate::plan::{Hold, MAX_BATCH_SIZE, Phase, PhasePlan, Plan, Step};
use crate::target::{
    BackfillStart, BatchOutcome, Blocker, DdlStep, JobState, Key, KeyColumn, KeyRange, Outcome,
    Preflight, StepOutcome, TableInfo, Target, TargetError, TargetResult, VerifyChunk,
    VerifyCursor,
};
use std::time::Instant;

/// Longest a run may take before a test calls it hung (only reached on a hang).
const HANG: Duration = Duration::from_secs(10);
const JOB: &str = "public.t.c";
/// More calls than any test needs: the engine is looping (and would hang the test, since a
/// loop over futures that are always ready never lets a timeout fire).
const MAX_CALLS: usize = 1_000;
/// How long a committed batch of the fake takes on the manual clock.
const BATCH_TIME: Duration = Duration::from_millis(100);

// ---------------------------------------------------------------------------------------------
// The fake target

/// A replica that replays `rate` bytes of WAL per second of the engine's clock; each committed
/// batch writes `wal_per_key` bytes per key. It knows when each byte was written, so it can
/// tell its true lag (now minus the write time of the oldest WAL it has not replayed) and
/// report PostgreSQL's `replay_lag` (the age of the WAL it last replayed, at that moment).
#[derive(Debug, Clone)]
struct SlowReplica {
    rate: f64,
    wal_per_key: u64,
    /// (WAL end position, when it was written), in order.
    writes: Vec<(u64, Instant)>,
    written: u64,
    replayed: u64,
    at: Option<Instant>,
    origin: Instant,
    /// The last reply: when, (replay position, replay lag) it carried, WAL written by then.
    reply: Option<(Instant, (u64, Option<f64>), u64)>,
    /// The worst true lag seen so far, seconds.
    worst_lag_s: f64,
}

impl SlowReplica {
    fn new(rate: f64, wal_per_key: u64) -> SlowReplica {
        SlowReplica {
            rate,
            wal_per_key,
            writes: Vec::new(),
            written: 0,
            replayed: 0,
            at: None,
            origin: Instant::now(),
            reply: None,
            worst_lag_s: 0.0,
        }
    }

    /// When the WAL at `pos` was written.
    fn written_at(&self, pos: u64) -> Option<Instant> {
        self.writes
            .iter()
            .find(|(end, _)| *end > pos)
            .map(|(_, t)| *t)
    }

    fn replay_until(&mut self, now: Instant) {
        if let Some(at) = self.at {
            let dt = now.saturating_duration_since(at).as_secs_f64();
            // Replaying takes time: the true lag peaks just before each stretch ends.
            if let Some(t) = self.written_at(self.replayed) {
                let lag = now.saturating_duration_since(t).as_secs_f64();
                self.worst_lag_s = self.worst_lag_s.max(lag);
            }
            self.replayed = (self.replayed + (self.rate * dt) as u64).min(self.written);
        }
        self.at = Some(now);
    }

    fn write(&mut self, now: Instant, bytes: u64) {
        self.replay_until(now);
        self.written += bytes;
        self.writes.push((self.written, now));
    }

    /// What the primary shows: the replica replies when WAL reaches it, else once a second
    /// (its status interval), and the primary knows its position only from those replies.
    fn position(&mut self, now: Instant) -> crate::target::postgres::lag::ReplicaPosition {
        self.replay_until(now);
        let due = match self.reply {
            None => true,
            Some((at, _, written)) => {
                written < self.written
                    || now.saturating_duration_since(at) >= Duration::from_secs(1)
            }
        };
        if due {
            let lag = self
                .written_at(self.replayed.saturating_sub(1))
                .filter(|_| self.replayed < self.written)
                .map(|t| now.saturating_duration_since(t).as_secs_f64());
            self.reply = Some((now, (self.replayed, lag), self.written));
        }
        let (at, (replayed, replay_lag_s), _) = self.reply.expect("set above");
        crate::target::postgres::lag::ReplicaPosition {
            name: "replica".into(),
            replay_lag_s,
            backlog_bytes: Some(self.written - replayed),
            replayed_bytes: Some(replayed),
            reply_at: Some(at.saturating_duration_since(self.origin).as_secs_f64()),
        }
    }
}

/// One call the engine made, with the arguments that matter.
#[derive(Debug, Clone, PartialEq)]
enum Call {
    Preflight,
    LoadJob,
    OpenJob,
    Ddl(DdlStep),
    CompletePhase(Phase, Option<Phase>),
    BackfillStart,
    RunBatch { after: Option<u64>, size: u64 },
    VerifyChunk { after: Option<u64>, size: u64 },
    Finish(Outcome),
    Reconnect,
}

/// When a scripted connection loss hits a batch.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Loss {
    /// The batch rolls back: nothing changes.
    BeforeCommit,
    /// The batch and its checkpoint commit, then the answer is lost.
    AfterCommit,
}

/// The fake database: table, state row, script, call log.
struct Db {
    /// How many times each key was filled (index = key - 1).
    fills: Vec<u32>,
    /// Whether the state row exists (open_job or an earlier run made it).
    job_exists: bool,
    outcome: Outcome,
    phases_done: Vec<Phase>,
    /// Every key up to and including this one is filled.
    checkpoint: Option<u64>,
    /// The backfill range end, once fixed (`Some(None)`: fixed on an empty table).
    range: Option<Option<u64>>,
    rows_done: u64,
    rows_updated: u64,
    batches: u64,
    connected: bool,
    calls: Vec<Call>,

    // The script.
    /// Preflight answers with this error.
    preflight_error: Option<TargetError>,
    /// Errors DDL steps return, first match first; each is used once.
    ddl_errors: Vec<(DdlStep, TargetError)>,
    /// How many reconnects fail before one succeeds.
    reconnect_failures: u32,
    /// Batches of more keys than this reach statement_timeout.
    timeout_above: Option<u64>,
    /// The connection is lost during batch number .0 (counting committed batches + 1).
    lose_connection: Option<(u64, Loss)>,
    /// Commands sent to the engine right after batch number .0 commits.
    commands_after_batch: Vec<(u64, Command)>,
    /// What the throttle query answers.
    throttle_value: f64,
    /// A streaming replica that replays slower than the batches write, if any.
    replica: Option<SlowReplica>,
    /// The engine's command channel, while scripted commands remain.
    commands: Option<mpsc::UnboundedSender<Command>>,
    /// The engine's clock: each committed batch takes `BATCH_TIME` on it.
    clock: Option<Arc<ManualClock>>,
    /// The slow replica's lag forecast, as the PostgreSQL target makes it.
    forecast: crate::target::postgres::lag::LagForecast,
    /// The plan, from preflight on (its DDL steps are PostgreSQL's).
    plan: Option<Plan>,
    /// A foreground probe, if the test gives the target one.
    probe: Option<FakeProbe>,
}

/// A foreground probe on the engine's clock: its samples are made when the engine reads the
/// log, one per interval since the last, slow while the batch count is in `slow`, failing for
/// `failing.1` of the clock from the first read after batch `failing.0`.
#[derive(Debug, Clone)]
struct FakeProbe {
    log: crate::probe::ProbeLog,
    next: Option<Instant>,
    slow: std::ops::Range<u64>,
    failing: Option<(u64, Duration)>,
    failing_since: Option<Instant>,
}

impl Db {
    fn n(&self) -> u64 {
        self.fills.len() as u64
    }

    fn job_state(&self) -> Option<JobState> {
        self.job_exists.then(|| JobState {
            job: JOB.into(),
            plan_digest: String::new(),
            outcome: self.outcome,
            phase: String::new(),
            phases_done: self.phases_done.clone(),
            column_created: self.phases_done.contains(&Phase::AddColumn),
            last_key: self.checkpoint.map(key),
            range_end: self.range.flatten().map(key),
            rows_done: self.rows_done,
            rows_updated: self.rows_updated,
            rows_total: Some(self.n()),
            batches: self.batches,
            runner: Some("fake".into()),
            message: None,
            started_at: String::new(),
            updated_at: String::new(),
            finished_at: None,
        })
    }

    /// The sizes the engine asked for, batch by batch.
    fn batch_sizes(&self) -> Vec<u64> {
        self.calls
            .iter()
            .filter_map(|c| match c {
                Call::RunBatch { size, .. } => Some(*size),
                _ => None,
            })
            .collect()
    }

    fn count(&self, call: &Call) -> usize {
        self.calls.iter().filter(|c| *c == call).count()
    }

    fn ddl_calls(&self) -> Vec<DdlStep> {
        self.calls
            .iter()
            .filter_map(|c| match c {
                Call::Ddl(s) => Some(*s),
                _ => None,
            })
            .collect()
    }

    fn finishes(&self) -> Vec<Outcome> {
        self.calls
            .iter()
            .filter_map(|c| match c {
                Call::Finish(o) => Some(*o),
                _ => None,
            })
            .collect()
    }

    #[track_caller]
    fn assert_every_key_filled_once(&self) {
        for (i, &f) in self.fills.iter().enumerate() {
            assert_eq!(f, 1, "key {} was filled {f} times", i + 1);
        }
    }

    /// Every key up to the checkpoint is filled exactly once, none after it.
    #[track_caller]
    fn assert_consistent_checkpoint(&self) {
        let cp = self.checkpoint.unwrap_or(0);
        for (i, &f) in self.fills.iter().enumerate() {
            let k = i as u64 + 1;
            let want = u32::from(k <= cp);
            assert_eq!(
                f, want,
                "key {k} filled {f} times with the checkpoint at {cp}"
            );
        }
    }
}

/// The target the engine drives; clones share one `Db`, so tests keep a handle on it.
#[derive(Clone)]
struct Fake(Arc<Mutex<Db>>);

impl Fake {
    /// A table of keys 1..=n, never migrated.
    fn new(n: u64) -> Fake {
        Fake(Arc::new(Mutex::new(Db {
            fills: vec![0; n as usize],
            job_exists: false,
            outcome: Outcome::Running,
            phases_done: Vec::new(),
            checkpoint: None,
            range: None,
            rows_done: 0,
            rows_updated: 0,
            batches: 0,
            connected: true,
            calls: Vec::new(),
            preflight_error: None,
            ddl_errors: Vec::new(),
            reconnect_failures: 0,
            timeout_above: None,
            lose_connection: None,
            commands_after_batch: Vec::new(),
            throttle_value: 0.0,
            replica: None,
            commands: None,
            clock: None,
            plan: None,
            forecast: crate::target::postgres::lag::LagForecast::new(crate::engine::LAG_POLL),
            probe: None,
        })))
    }

    /// The same, with a foreground probe (1 ms; 20 ms while the batch count is in `slow`;
    /// failing for a while from a batch on, see [`FakeProbe`]).
    fn with_probe(self, slow: std::ops::Range<u64>, failing: Option<(u64, Duration)>) -> Fake {
        self.db().probe = Some(FakeProbe {
            log: crate::probe::ProbeLog::new(),
            next: None,
            slow,
            failing,
            failing_since: None,
        });
        self
    }

    /// A table an earlier run left with `phases_done` and the backfill checkpoint at `cp`.
    fn resumed(n: u64, phases_done: &[Phase], cp: Option<u64>, outcome: Outcome) -> Fake {
        let fake = Fake::new(n);
        {
            let mut db = fake.db();
            db.job_exists = true;
            db.outcome = outcome;
            db.phases_done = phases_done.to_vec();
            if let Some(cp) = cp {
                db.range = Some(Some(n));
                db.checkpoint = Some(cp);
                db.rows_done = cp;
                db.rows_updated = cp;
                db.batches = 1;
                for f in &mut db.fills[..cp as usize] {
                    *f = 1;
                }
            }
        }
        fake
    }

    fn db(&self) -> MutexGuard<'_, Db> {
        self.0.lock().unwrap()
    }

    /// Records `call` (failing the test when the engine loops).
    fn log(&self, call: Call) -> MutexGuard<'_, Db> {
        let mut db = self.db();
        db.calls.push(call);
        assert!(
            db.calls.len() <= MAX_CALLS,
            "the engine is looping; last calls: {:?}",
            &db.calls[MAX_CALLS - 5..]
        );
        db
    }

    /// Records `call`; fails as a dead connection would until the engine reconnects.
    fn enter(&self, call: Call) -> TargetResult<MutexGuard<'_, Db>> {
        let db = self.log(call);
        if db.connected {
            Ok(db)
        } else {
            Err(TargetError::ConnectionLost(
                "no connection to the server".into(),
            ))
        }
    }
}

fn key(k: u64) -> Key {
    Key(vec![k.to_string()])
}

fn num(k: &Key) -> u64 {
    k.0[0].parse().expect("fake keys are integers")
}

fn blocker() -> Blocker {
    Blocker {
        pacer: false,
        pid: 4242,
        application: "psql".into(),
        user: "alice".into(),
        state: "idle in transaction".into(),
        xact_age_s: Some(12.5),
        query: "SELECT * FROM t FOR UPDATE".into(),
        family: crate::target::family::Family::Postgres,
    }
}

fn lock_timeout() -> TargetError {
    TargetError::LockTimeout {
        blockers: vec![blocker()],
        detail: "canceling statement due to lock timeout".into(),
        skipped: false,
    }
}

fn connection_lost() -> TargetError {
    TargetError::ConnectionLost("server closed the connection unexpectedly".into())
}

/// The fake database has no monitoring views: every round is a gap.
struct NoSamples;

impl crate::sampler::MetricSource for NoSamples {
    async fn sample(&mut self) -> crate::sampler::DbSample {
        crate::sampler::DbSample::failed("the fake database is not sampled")
    }
}

impl Target for Fake {
    type Source = NoSamples;

    fn metric_source(&self, _: Duration, _: crate::audit::Audit) -> NoSamples {
        NoSamples
    }

    fn describe(&self) -> String {
        "fake database".into()
    }

    fn job_id(&self) -> String {
        JOB.into()
    }

    async fn preflight(&mut self, plan: &Plan) -> TargetResult<Preflight> {
        let mut db = self.enter(Call::Preflight)?;
        db.plan = Some(plan.clone());
        if let Some(e) = db.preflight_error.take() {
            return Err(e);
        }
        Ok(Preflight {
            info: TableInfo {
                table: "public.t".into(),
                key: vec![KeyColumn {
                    name: "id".into(),
                    sql_type: "bigint".into(),
                }],
                key_source: "primary key t_pkey".into(),
                estimated_rows: Some(db.n()),
                table_bytes: 0,
                index_bytes: 0,
                server_version: "fake".into(),
                server_product: "PostgreSQL".into(),
                findings: Vec::new(),
            },
            job: db.job_state(),
        })
    }

    /// Only not_null has statements here: enough for a gate to name the locks of its phase.
    fn render(&self, plan: &Plan) -> Vec<PhasePlan> {
        plan.phases()
            .into_iter()
            .map(|phase| PhasePlan {
                phase,
                summary: String::new(),
                steps: if phase == Phase::NotNull {
                    vec![Step {
                        title: "set NOT NULL".into(),
                        sql: String::new(),
                        lock: "ACCESS EXCLUSIVE".into(),
                        hold: Hold::Brief,
                        rewrites: false,
                        scans: false,
                        note: String::new(),
                        replicas: String::new(),
                    }]
                } else {
                    Vec::new()
                },
            })
            .collect()
    }

    async fn load_job(&mut self) -> TargetResult<Option<JobState>> {
        Ok(self.enter(Call::LoadJob)?.job_state())
    }

    async fn open_job(&mut self) -> TargetResult<JobState> {
        let mut db = self.enter(Call::OpenJob)?;
        db.job_exists = true;
        if db.outcome != Outcome::Done {
            db.outcome = Outcome::Running;
        }
        Ok(db.job_state().expect("the job was just opened"))
    }

    /// The fake database does each phase the way PostgreSQL does.
    async fn locate(&mut self) -> TargetResult<()> {
        Ok(())
    }

    fn ddl_steps(&self, phase: Phase) -> Vec<DdlStep> {
        match &self.db().plan {
            Some(plan) => crate::target::postgres::ddl_steps(plan, phase),
            None => Vec::new(),
        }
    }

    async fn ddl(&mut self, step: DdlStep) -> TargetResult<StepOutcome> {
        let mut db = self.enter(Call::Ddl(step))?;
        if let Some(i) = db.ddl_errors.iter().position(|(s, _)| *s == step) {
            let (_, e) = db.ddl_errors.remove(i);
            if matches!(e, TargetError::ConnectionLost(_)) {
                db.connected = false;
            }
            return Err(e);
        }
        Ok(StepOutcome::Done)
    }

    async fn complete_phase(&mut self, phase: Phase, next: Option<Phase>) -> TargetResult<()> {
        self.enter(Call::CompletePhase(phase, next))?
            .phases_done
            .push(phase);
        Ok(())
    }

    async fn backfill_start(&mut self) -> TargetResult<BackfillStart> {
        let mut db = self.enter(Call::BackfillStart)?;
        if db.range.is_none() {
            let n = db.n();
            db.range = Some((n > 0).then_some(n));
            db.checkpoint = None;
            db.rows_done = 0;
            db.rows_updated = 0;
        }
        Ok(BackfillStart {
            after: db.checkpoint.map(key),
            end: db.range.flatten().map(key),
            rows_done: db.rows_done,
            rows_updated: db.rows_updated,
            rows_total: Some(db.n()),
        })
    }

    async fn run_batch(
        &mut self,
        after: Option<&Key>,
        end: &Key,
        size: u64,
    ) -> TargetResult<BatchOutcome> {
        let after = after.map(num);
        let mut db = self.enter(Call::RunBatch { after, size })?;
        if db.timeout_above.is_some_and(|limit| size > limit) {
            return Err(TargetError::StatementTimeout(
                "canceling statement due to statement timeout".into(),
            ));
        }
        let this_batch = db.batches + 1;
        let loss = match db.lose_connection {
            Some((b, loss)) if b == this_batch => {
                db.lose_connection = None;
                db.connected = false;
                Some(loss)
            }
            _ => None,
        };
        if loss == Some(Loss::BeforeCommit) {
            return Err(connection_lost());
        }
        // The guard of the real target: the checkpoint must still be where the engine thinks.
        if after != db.checkpoint {
            return Err(TargetError::CheckpointMoved(format!(
                "the checkpoint is at {:?}, not at {after:?}",
                db.checkpoint
            )));
        }
        let lo = after.unwrap_or(0);
        let end = num(end);
        let hi = (lo + size).min(end);
        let mut rows_updated = 0;
        for f in &mut db.fills[lo as usize..hi as usize] {
            if *f == 0 {
                rows_updated += 1;
            }
            *f += 1;
        }
        if let Some(clock) = db.clock.clone() {
            clock.advance(BATCH_TIME);
            if let Some(r) = &mut db.replica {
                r.write(clock.now(), (hi - lo) * r.wal_per_key);
            }
        }
        db.checkpoint = Some(hi);
        db.rows_done += hi - lo;
        db.rows_updated += rows_updated;
        db.batches += 1;

        let done = db.batches;
        let due: Vec<Command> = db
            .commands_after_batch
            .iter()
            .filter(|(b, _)| *b == done)
            .map(|(_, c)| c.clone())
            .collect();
        db.commands_after_batch.retain(|(b, _)| *b != done);
        if let Some(tx) = &db.commands {
            for c in due {
                tx.send(c).expect("the engine takes commands");
            }
        }
        if db.commands_after_batch.is_empty() {
            db.commands = None; // hold no sender longer than the script needs
        }

        if loss == Some(Loss::AfterCommit) {
            return Err(connection_lost());
        }
        Ok(BatchOutcome {
            range: KeyRange {
                lo: after.map(key),
                hi: key(hi),
            },
            keys: hi - lo,
            rows_updated,
            last: hi == end,
        })
    }

    async fn verify_chunk(
        &mut self,
        after: Option<&VerifyCursor>,
        size: u64,
    ) -> TargetResult<VerifyChunk> {
        let after = after.map(|c| match c {
            VerifyCursor::Key(k) => num(k),
            VerifyCursor::Page(p) => *p,
        });
        let db = self.enter(Call::VerifyChunk { after, size })?;
        let lo = after.unwrap_or(0);
        let hi = (lo + size).min(db.n());
        if lo >= hi {
            return Ok(VerifyChunk {
                next: None,
                rows: 0,
            });
        }
        if let Some(i) = (lo..hi).find(|&i| db.fills[i as usize] == 0) {
            return Err(TargetError::Failed(format!(
                "verify: key {} unfilled",
                i + 1
            )));
        }
        Ok(VerifyChunk {
            next: Some(VerifyCursor::Key(key(hi))),
            rows: hi - lo,
        })
    }

    async fn finish(&mut self, outcome: Outcome, _message: &str) -> TargetResult<()> {
        self.enter(Call::Finish(outcome))?.outcome = outcome;
        Ok(())
    }

    async fn throttle_query(&mut self, _sql: &str) -> TargetResult<f64> {
        Ok(self.db().throttle_value)
    }

    /// A target that forecasts like PostgreSQL's, from the slow replica's positions on the
    /// engine's clock.
    async fn replica_lags(&mut self) -> TargetResult<Vec<crate::engine::throttle::ReplicaReading>> {
        let mut db = self.db();
        let now = db.clock.as_ref().map(|c| c.now());
        let positions = match (&mut db.replica, now) {
            (Some(r), Some(now)) => vec![r.position(now)],
            _ => Vec::new(),
        };
        Ok(match now {
            Some(now) => db.forecast.observe(now, &positions),
            None => Vec::new(),
        })
    }

    fn probe_log(&self) -> Option<crate::probe::ProbeLog> {
        let mut db = self.db();
        let now = db.clock.as_ref()?.now();
        let batches = db.batches;
        let probe = db.probe.as_mut()?;
        let mut at = probe.next.unwrap_or(now);
        if let Some((from, _)) = probe.failing
            && batches >= from
            && probe.failing_since.is_none()
        {
            probe.failing_since = Some(at);
        }
        while at <= now {
            let failing = match (probe.failing, probe.failing_since) {
                (Some((_, span)), Some(since)) => at >= since && at < since + span,
                _ => false,
            };
            let sample = if failing {
                crate::probe::ProbeSample::failed(at, Duration::from_secs(1), "statement timeout")
            } else if probe.slow.contains(&batches) {
                crate::probe::ProbeSample::answered(at, Duration::from_millis(20))
            } else {
                crate::probe::ProbeSample::answered(at, Duration::from_millis(1))
            };
            probe.log.push(sample);
            at += probe.log.every();
        }
        probe.next = Some(at);
        Some(probe.log.clone())
    }

    async fn reconnect(&mut self) -> TargetResult<()> {
        let mut db = self.log(Call::Reconnect);
        if db.reconnect_failures > 0 {
            db.reconnect_failures -= 1;
            return Err(TargetError::ConnectionLost("connection refused".into()));
        }
        db.connected = true;
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Running the engine

const PLAN: &str = r#"
table = "public.t"

[column]
name = "c"
type = "bigint"
backfill = "id * 2"
not_null = true
index = true
"#;

/// The test plan (every phase) with extra `[backfill]` and `[safety]` keys.
/// The adaptive sizer is off unless a test turns it on (`adaptive = true`), so sizes are exact.
fn plan(backfill: &str, safety: &str) -> Plan {
    let adaptive = if backfill.contains("adaptive") {
        ""
    } else {
        "adaptive = false"
    };
    let text = format!("{PLAN}\n[backfill]\n{adaptive}\n{backfill}\n\n[safety]\n{safety}\n");
    Plan::parse(Path::new("t.toml"), &text).expect("the test plan parses")
}

/// What a finished run left behind.
struct Finished {
    result: Result<RunOutcome, EngineError>,
    events: Vec<EventKind>,
    sleeps: Vec<Duration>,
    state: State,
}

/// Runs the engine to its end, with `before` queued on the command channel.
async fn run(fake: &Fake, plan: Plan, before: &[Command]) -> Finished {
    let mut live = start(fake, plan, before);
    let result = tokio::time::timeout(HANG, &mut live.run)
        .await
        .expect("the run hung")
        .expect("the engine task panicked");
    let state = live.state.borrow().clone();
    let sleeps = live.clock.sleeps();
    let events = live.rest_of_events().await;
    Finished {
        result,
        events,
        sleeps,
        state,
    }
}

/// A run on its own task, driven by the test.
struct Live {
    run: JoinHandle<Result<RunOutcome, EngineError>>,
    commands: Option<mpsc::UnboundedSender<Command>>,
    events: mpsc::UnboundedReceiver<Event>,
    state: watch::Receiver<State>,
    clock: Arc<ManualClock>,
    seen: Vec<EventKind>,
}

fn start(fake: &Fake, plan: Plan, before: &[Command]) -> Live {
    let clock = Arc::new(ManualClock::new());
    let (engine, handles) = Engine::new(fake.clone(), plan, clock.clone());
    fake.db().clock = Some(clock.clone());
    let scripted = !fake.db().commands_after_batch.is_empty();
    if scripted {
        fake.db().commands = Some(handles.commands.clone());
    }
    for c in before {
        handles.commands.send(c.clone()).unwrap();
    }
    Live {
        run: tokio::spawn(engine.run()),
        commands: Some(handles.commands),
        events: handles.events,
        state: handles.state,
        clock,
        seen: Vec::new(),
    }
}

impl Live {
    /// Reads events until one matches `until` (which is returned).
    async fn wait_for(&mut self, until: impl Fn(&EventKind) -> bool) -> EventKind {
        loop {
            let event = tokio::time::timeout(HANG, self.events.recv())
                .await
                .expect("no event came")
                .expect("the engine ended before the awaited event")
                .kind;
            self.seen.push(event.clone());
            if until(&event) {
                return event;
            }
        }
    }

    fn send(&self, c: Command) {
        self.commands.as_ref().unwrap().send(c).unwrap();
    }

    /// Lets the engine task run as far as it can.
    async fn let_it_run(&self) {
        for _ in 0..50 {
            tokio::task::yield_now().await;
        }
    }

    /// Every event so far and until the engine is gone.
    async fn rest_of_events(mut self) -> Vec<EventKind> {
        while let Some(e) = tokio::time::timeout(HANG, self.events.recv())
            .await
            .expect("the event channel stayed open")
        {
            self.seen.push(e.kind);
        }
        self.seen
    }

    async fn end(mut self) -> (Result<RunOutcome, EngineError>, Vec<EventKind>) {
        let result = tokio::time::timeout(HANG, &mut self.run)
            .await
            .expect("the run hung")
            .expect("the engine task panicked");
        (result, self.rest_of_events().await)
    }
}

/// Phase events and the final event as short words, for comparing sequences.
fn phase_marks(events: &[EventKind]) -> Vec<String> {
    events
        .iter()
        .filter_map(|e| match e {
            EventKind::PhaseStarted { phase } => Some(format!("start {phase}")),
            EventKind::PhaseDone { phase, .. } => Some(format!("done {phase}")),
            EventKind::PhaseSkipped { phase, .. } => Some(format!("skip {phase}")),
            EventKind::Done { .. } => Some("DONE".into()),
            EventKind::AlreadyDone => Some("ALREADY DONE".into()),
            EventKind::Aborted { .. } => Some("ABORTED".into()),
            EventKind::Failed { .. } => Some("FAILED".into()),
            _ => None,
        })
        .collect()
}

/// Command-related events (and batches) as short words.
fn command_marks(events: &[EventKind]) -> Vec<String> {
    events
        .iter()
        .filter_map(|e| match e {
            EventKind::BatchDone { batch, .. } => Some(format!("batch {batch}")),
            EventKind::PauseRequested => Some("pause requested".into()),
            EventKind::Paused { phase } => Some(format!("paused in {phase}")),
            EventKind::Resumed => Some("resumed".into()),
            EventKind::AbortRequested => Some("abort requested".into()),
            EventKind::Aborted { .. } => Some("aborted".into()),
            EventKind::BatchSizeChanged { from, to, by, .. } => {
                Some(format!("size {from} -> {to} by {by:?}"))
            }
            EventKind::Done { .. } => Some("done".into()),
            _ => None,
        })
        .collect()
}

fn marks(words: &[&str]) -> Vec<String> {
    words.iter().map(|w| w.to_string()).collect()
}

/// `d` is `nominal_ms` ± 20 % (the jitter), give or take rounding.
#[track_caller]
fn assert_jittered(d: Duration, nominal_ms: u64) {
    let ms = d.as_secs_f64() * 1000.0;
    let nominal = nominal_ms as f64;
    assert!(
        (nominal * 0.8 - 0.001..=nominal * 1.2 + 0.001).contains(&ms),
        "{d:?} is not {nominal_ms} ms ± 20 %"
    );
}

fn batches_done(events: &[EventKind]) -> Vec<(u64, Option<u64>, u64)> {
    events
        .iter()
        .filter_map(|e| match e {
            EventKind::BatchDone { batch, lo, hi, .. } => {
                Some((*batch, lo.as_ref().map(num), num(hi)))
            }
            _ => None,
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// A whole run

#[tokio::test]
async fn a_full_run_calls_every_phase_in_order_and_fills_every_key_exactly_once() {
    let fake = Fake::new(10);
    let run = run(&fake, plan("batch_size = 3", ""), &[]).await;

    assert_eq!(run.result.unwrap(), RunOutcome::Done);
    let db = fake.db();
    use Call::*;
    use Phase as P;
    let batch = |after, size| RunBatch { after, size };
    let verify = |after| VerifyChunk {
        after,
        size: 10_000,
    };
    assert_eq!(
        db.calls,
        vec![
            Preflight,
            OpenJob,
            Ddl(DdlStep::AddColumn),
            CompletePhase(P::AddColumn, Some(P::Sync)),
            Ddl(DdlStep::InstallSync),
            CompletePhase(P::Sync, Some(P::Backfill)),
            BackfillStart,
            LoadJob,
            batch(None, 3),
            batch(Some(3), 3),
            batch(Some(6), 3),
            batch(Some(9), 3),
            CompletePhase(P::Backfill, Some(P::Verify)),
            verify(None),
            verify(Some(10)),
            CompletePhase(P::Verify, Some(P::NotNull)),
            Ddl(DdlStep::AddNotNullCheck),
            Ddl(DdlStep::ValidateNotNullCheck),
            Ddl(DdlStep::SetNotNull),
            CompletePhase(P::NotNull, Some(P::Index)),
            Ddl(DdlStep::BuildIndex),
            CompletePhase(P::Index, Some(P::Cleanup)),
            Ddl(DdlStep::DropSync),
            CompletePhase(P::Cleanup, None),
            Finish(Outcome::Done),
            LoadJob,
        ]
    );
    db.assert_every_key_filled_once();
    assert_eq!(db.outcome, Outcome::Done);

    assert_eq!(
        phase_marks(&run.events),
        marks(&[
            "start add_column",
            "done add_column",
            "start sync",
            "done sync",
            "start backfill",
            "done backfill",
            "start verify",
            "done verify",
            "start not_null",
            "done not_null",
            "start index",
            "done index",
            "start cleanup",
            "done cleanup",
            "DONE",
        ])
    );
    assert!(matches!(run.events[0], EventKind::Started { .. }));
    assert_eq!(
        batches_done(&run.events),
        vec![
            (1, None, 3),
            (2, Some(3), 6),
            (3, Some(6), 9),
            (4, Some(9), 10)
        ]
    );
    assert!(matches!(
        run.events.last(),
        Some(EventKind::Done {
            rows_done: 10,
            rows_updated: 10,
            ..
        })
    ));
    for e in &run.events {
        match e {
            EventKind::BatchDone {
                duration_ms,
                rows_per_s,
                ..
            } => {
                assert_eq!(*duration_ms, 100, "timed on the engine's clock");
                assert!(*rows_per_s > 0.0);
            }
            EventKind::PhaseDone {
                phase: Phase::Backfill,
                elapsed_ms,
            } => assert_eq!(*elapsed_ms, 400),
            _ => {}
        }
    }
    assert!(run.sleeps.is_empty(), "nothing failed, nothing waited");
    assert_eq!(run.state.status, Status::Done);
    assert_eq!(run.state.rows_done, 10);
    assert_eq!(run.state.checkpoint, Some(key(10)));
    assert_eq!(run.state.phases_done.len(), 7);
}

#[tokio::test]
async fn phases_finished_by_an_earlier_run_are_skipped_not_run_again() {
    let fake = Fake::resumed(
        10,
        &[Phase::AddColumn, Phase::Sync, Phase::Backfill],
        Some(10),
        Outcome::Failed,
    );
    let run = run(&fake, plan("batch_size = 3", ""), &[]).await;

    assert_eq!(run.result.unwrap(), RunOutcome::Done);
    let db = fake.db();
    assert_eq!(
        db.ddl_calls(),
        vec![
            DdlStep::AddNotNullCheck,
            DdlStep::ValidateNotNullCheck,
            DdlStep::SetNotNull,
            DdlStep::BuildIndex,
            DdlStep::DropSync,
        ]
    );
    assert!(db.batch_sizes().is_empty(), "the backfill is not run again");
    assert_eq!(db.count(&Call::BackfillStart), 0);
    assert!(
        !db.calls
            .iter()
            .any(|c| matches!(c, Call::CompletePhase(p, _) if *p <= Phase::Backfill)),
        "skipped phases are not recorded again: {:?}",
        db.calls
    );
    db.assert_every_key_filled_once();
    assert_eq!(
        phase_marks(&run.events),
        marks(&[
            "skip add_column",
            "skip sync",
            "skip backfill",
            "start verify",
            "done verify",
            "start not_null",
            "done not_null",
            "start index",
            "done index",
            "start cleanup",
            "done cleanup",
            "DONE",
        ])
    );
}

#[tokio::test]
async fn a_resumed_backfill_starts_after_the_recorded_checkpoint() {
    let fake = Fake::resumed(
        10,
        &[Phase::AddColumn, Phase::Sync],
        Some(4),
        Outcome::Aborted,
    );
    let run = run(&fake, plan("batch_size = 3", ""), &[]).await;

    assert_eq!(run.result.unwrap(), RunOutcome::Done);
    let db = fake.db();
    let batches: Vec<&Call> = db
        .calls
        .iter()
        .filter(|c| matches!(c, Call::RunBatch { .. }))
        .collect();
    assert_eq!(
        batches,
        vec![
            &Call::RunBatch {
                after: Some(4),
                size: 3
            },
            &Call::RunBatch {
                after: Some(7),
                size: 3
            },
        ]
    );
    db.assert_every_key_filled_once();
    // Batch numbers go on from the recorded count.
    assert_eq!(
        batches_done(&run.events),
        vec![(2, Some(4), 7), (3, Some(7), 10)]
    );
}

#[tokio::test]
async fn a_job_already_done_at_preflight_returns_already_done_without_any_ddl() {
    let all = &Phase::ALL[1..]; // every phase after preflight
    let fake = Fake::resumed(10, all, Some(10), Outcome::Done);
    let run = run(&fake, plan("", ""), &[]).await;

    assert_eq!(run.result.unwrap(), RunOutcome::AlreadyDone);
    assert_eq!(fake.db().calls, vec![Call::Preflight]);
    assert_eq!(phase_marks(&run.events), marks(&["ALREADY DONE"]));
    assert_eq!(run.state.status, Status::Done);
}

#[tokio::test]
async fn refused_at_preflight_fails_as_refused_and_changes_nothing() {
    let fake = Fake::new(10);
    fake.db().preflight_error = Some(TargetError::Refused("table t has no primary key".into()));
    let run = run(&fake, plan("", ""), &[]).await;

    match run.result {
        Err(EngineError::Refused(m)) => assert!(m.contains("no primary key"), "{m}"),
        other => panic!("expected Refused, got {other:?}"),
    }
    assert_eq!(
        fake.db().calls,
        vec![Call::Preflight],
        "no open_job, no DDL"
    );
    assert!(matches!(
        run.events.last(),
        Some(EventKind::Failed { phase: None, .. })
    ));
    assert_eq!(run.state.status, Status::Failed);
}

// ---------------------------------------------------------------------------------------------
// Lock timeouts

#[tokio::test]
async fn lock_timeouts_are_retried_with_backoff_and_report_their_blockers() {
    let fake = Fake::new(10);
    fake.db().ddl_errors = vec![(DdlStep::AddColumn, lock_timeout()); 3];
    let run = run(&fake, plan("batch_size = 5", "ddl_retries = 4"), &[]).await;

    assert_eq!(run.result.unwrap(), RunOutcome::Done);
    let db = fake.db();
    assert_eq!(db.count(&Call::Ddl(DdlStep::AddColumn)), 4);
    db.assert_every_key_filled_once();

    let timeouts: Vec<(u32, u32, u64, &str, &Vec<Blocker>)> = run
        .events
        .iter()
        .filter_map(|e| match e {
            EventKind::LockTimeout {
                phase,
                step,
                attempt,
                max_attempts,
                retry_in_ms,
                blockers,
                ..
            } => {
                assert_eq!(*phase, Phase::AddColumn);
                Some((
                    *attempt,
                    *max_attempts,
                    *retry_in_ms,
                    step.as_str(),
                    blockers,
                ))
            }
            _ => None,
        })
        .collect();
    let attempts: Vec<u32> = timeouts.iter().map(|t| t.0).collect();
    assert_eq!(attempts, vec![1, 2, 3]);
    for (_, max, _, step, blockers) in &timeouts {
        assert_eq!(*max, 4);
        assert_eq!(*step, "add column");
        assert_eq!(*blockers, &vec![blocker()]);
    }

    assert_eq!(run.sleeps.len(), 3, "{:?}", run.sleeps);
    for ((sleep, nominal), t) in run.sleeps.iter().zip([500, 1000, 2000]).zip(&timeouts) {
        assert_jittered(*sleep, nominal);
        assert_eq!(
            t.2,
            sleep.as_millis() as u64,
            "the event tells the real wait"
        );
    }
    assert!(run.state.blockers.is_empty());
}

#[tokio::test]
async fn lock_timeouts_give_up_after_ddl_retries_attempts_naming_the_blocker() {
    let fake = Fake::new(10);
    fake.db().ddl_errors = vec![(DdlStep::InstallSync, lock_timeout()); 3];
    let run = run(&fake, plan("", "ddl_retries = 3"), &[]).await;

    let message = match run.result {
        Err(EngineError::Failed(m)) => m,
        other => panic!("expected Failed, got {other:?}"),
    };
    assert!(message.contains("gave up after 3 attempts"), "{message}");
    assert!(message.contains("pid 4242"), "{message}");
    assert!(message.contains("install sync trigger"), "{message}");

    let db = fake.db();
    assert_eq!(
        db.ddl_calls(),
        vec![
            DdlStep::AddColumn,
            DdlStep::InstallSync,
            DdlStep::InstallSync,
            DdlStep::InstallSync
        ]
    );
    assert_eq!(db.finishes(), vec![Outcome::Failed]);
    assert_eq!(db.outcome, Outcome::Failed);
    let attempts: Vec<u32> = run
        .events
        .iter()
        .filter_map(|e| match e {
            EventKind::LockTimeout { attempt, .. } => Some(*attempt),
            _ => None,
        })
        .collect();
    assert_eq!(attempts, vec![1, 2], "the third failure is the last");
    assert_eq!(run.sleeps.len(), 2);
    assert!(matches!(
        run.events.last(),
        Some(EventKind::Failed {
            phase: Some(Phase::Sync),
            ..
        })
    ));
    assert_eq!(run.state.status, Status::Failed);
    assert_eq!(run.state.error.as_deref(), Some(message.as_str()));
}

// ---------------------------------------------------------------------------------------------
// Operator commands

fn batch_calls(fake: &Fake) -> usize {
    fake.db().batch_sizes().len()
}

#[tokio::test]
async fn pause_before_the_run_starts_waits_before_claiming_until_resume() {
    let fake = Fake::new(10);
    let mut live = start(&fake, plan("batch_size = 5", ""), &[Command::Pause]);

    let paused = live
        .wait_for(|e| matches!(e, EventKind::Paused { .. }))
        .await;
    assert!(matches!(
        paused,
        EventKind::Paused {
            phase: Phase::Preflight
        }
    ));
    live.let_it_run().await;
    assert_eq!(
        fake.db().calls,
        vec![Call::Preflight],
        "nothing runs while paused"
    );
    assert_eq!(live.state.borrow().status, Status::Paused);

    live.send(Command::Resume);
    let (result, events) = live.end().await;
    assert_eq!(result.unwrap(), RunOutcome::Done);
    fake.db().assert_every_key_filled_once();
    assert_eq!(
        command_marks(&events),
        marks(&[
            "pause requested",
            "paused in preflight",
            "resumed",
            "batch 1",
            "batch 2",
            "done"
        ])
    );
}

#[tokio::test]
async fn pause_between_batches_runs_no_batch_until_resume() {
    let fake = Fake::new(10);
    fake.db().commands_after_batch = vec![(2, Command::Pause)];
    let mut live = start(&fake, plan("batch_size = 2", ""), &[]);

    live.wait_for(|e| matches!(e, EventKind::Paused { .. }))
        .await;
    for _ in 0..3 {
        live.let_it_run().await;
        assert_eq!(batch_calls(&fake), 2, "no batch runs while paused");
    }
    assert_eq!(live.state.borrow().status, Status::Paused);
    fake.db().assert_consistent_checkpoint();

    live.send(Command::Resume);
    let (result, events) = live.end().await;
    assert_eq!(result.unwrap(), RunOutcome::Done);
    fake.db().assert_every_key_filled_once();
    assert_eq!(
        command_marks(&events),
        marks(&[
            "batch 1",
            "batch 2",
            "pause requested",
            "paused in backfill",
            "resumed",
            "batch 3",
            "batch 4",
            "batch 5",
            "done"
        ])
    );
}

#[tokio::test]
async fn set_batch_size_between_batches_applies_to_the_next_batch() {
    let fake = Fake::new(10);
    fake.db().commands_after_batch = vec![(1, Command::SetBatchSize(3))];
    let run = run(&fake, plan("batch_size = 2", ""), &[]).await;

    assert_eq!(run.result.unwrap(), RunOutcome::Done);
    let db = fake.db();
    assert_eq!(db.batch_sizes(), vec![2, 3, 3, 3]);
    db.assert_every_key_filled_once();
    assert_eq!(
        command_marks(&run.events),
        marks(&[
            "batch 1",
            "size 2 -> 3 by Operator",
            "batch 2",
            "batch 3",
            "batch 4",
            "done"
        ])
    );
    assert_eq!(run.state.batch_size, 3);
}

#[tokio::test]
async fn set_batch_size_is_clamped_to_one_through_a_million() {
    let fake = Fake::new(10);
    fake.db().commands_after_batch = vec![
        (1, Command::SetBatchSize(0)),
        (2, Command::SetBatchSize(u64::MAX)),
    ];
    let run = run(&fake, plan("batch_size = 2", ""), &[]).await;

    assert_eq!(run.result.unwrap(), RunOutcome::Done);
    let db = fake.db();
    assert_eq!(db.batch_sizes(), vec![2, 1, MAX_BATCH_SIZE]);
    db.assert_every_key_filled_once();
    let changes: Vec<(u64, u64, SizeSource)> = run
        .events
        .iter()
        .filter_map(|e| match e {
            EventKind::BatchSizeChanged { from, to, by, .. } => Some((*from, *to, *by)),
            _ => None,
        })
        .collect();
    assert_eq!(
        changes,
        vec![
            (2, 1, SizeSource::Operator),
            (1, MAX_BATCH_SIZE, SizeSource::Operator)
        ]
    );
}

#[tokio::test]
async fn abort_between_batches_stops_resumably_with_a_consistent_checkpoint() {
    let fake = Fake::new(10);
    fake.db().commands_after_batch = vec![(2, Command::Abort)];
    let run = run(&fake, plan("batch_size = 3", ""), &[]).await;

    assert_eq!(run.result.unwrap(), RunOutcome::Aborted);
    let db = fake.db();
    assert_eq!(db.batch_sizes().len(), 2, "no batch after the abort");
    assert_eq!(db.checkpoint, Some(6));
    db.assert_consistent_checkpoint();
    assert_eq!(db.calls.last(), Some(&Call::Finish(Outcome::Aborted)));
    assert_eq!(db.finishes(), vec![Outcome::Aborted]);
    assert_eq!(db.outcome, Outcome::Aborted);
    assert!(
        !db.phases_done.contains(&Phase::Backfill),
        "the backfill is not recorded as finished"
    );
    assert_eq!(
        command_marks(&run.events),
        marks(&["batch 1", "batch 2", "abort requested", "aborted"])
    );
    assert!(matches!(
        run.events.last(),
        Some(EventKind::Aborted {
            phase: Some(Phase::Backfill)
        })
    ));
    assert_eq!(run.state.status, Status::Aborted);
}

#[tokio::test]
async fn dropping_the_command_sender_while_paused_aborts_instead_of_hanging() {
    let fake = Fake::new(10);
    fake.db().commands_after_batch = vec![(1, Command::Pause)];
    let mut live = start(&fake, plan("batch_size = 3", ""), &[]);

    live.wait_for(|e| matches!(e, EventKind::Paused { .. }))
        .await;
    assert!(
        fake.db().commands.is_none(),
        "the fake holds no sender any more"
    );
    drop(live.commands.take());

    let (result, events) = live.end().await; // times out (and fails) on a hang
    assert_eq!(result.unwrap(), RunOutcome::Aborted);
    let db = fake.db();
    assert_eq!(db.batch_sizes().len(), 1);
    db.assert_consistent_checkpoint();
    assert_eq!(db.finishes(), vec![Outcome::Aborted]);
    assert!(matches!(
        events.last(),
        Some(EventKind::Aborted {
            phase: Some(Phase::Backfill)
        })
    ));
}

#[tokio::test]
async fn dropping_the_command_sender_while_running_lets_the_run_finish() {
    let fake = Fake::new(10);
    let mut live = start(&fake, plan("batch_size = 3", ""), &[]);
    drop(live.commands.take());

    let (result, _) = live.end().await;
    assert_eq!(result.unwrap(), RunOutcome::Done);
    fake.db().assert_every_key_filled_once();
}

// ---------------------------------------------------------------------------------------------
// Batch timeouts

#[tokio::test]
async fn a_batch_timeout_halves_the_size_until_the_batch_fits() {
    let fake = Fake::new(10);
    fake.db().timeout_above = Some(3);
    let run = run(&fake, plan("batch_size = 8", ""), &[]).await;

    assert_eq!(run.result.unwrap(), RunOutcome::Done);
    let db = fake.db();
    assert_eq!(db.batch_sizes(), vec![8, 4, 2, 2, 2, 2, 2]);
    db.assert_every_key_filled_once();
    let cuts: Vec<String> = run
        .events
        .iter()
        .filter_map(|e| match e {
            EventKind::BatchTimeout { from, to, .. } => Some(format!("timeout {from} -> {to}")),
            EventKind::BatchSizeChanged { from, to, by, .. } => {
                Some(format!("size {from} -> {to} by {by:?}"))
            }
            _ => None,
        })
        .collect();
    assert_eq!(
        cuts,
        marks(&[
            "timeout 8 -> 4",
            "size 8 -> 4 by Timeout",
            "timeout 4 -> 2",
            "size 4 -> 2 by Timeout",
        ])
    );
    assert_eq!(run.state.batch_size, 2);
}

#[tokio::test]
async fn a_batch_timeout_at_size_one_fails_the_run() {
    let fake = Fake::new(10);
    fake.db().timeout_above = Some(0);
    let run = run(&fake, plan("batch_size = 2", ""), &[]).await;

    let message = match run.result {
        Err(EngineError::Failed(m)) => m,
        other => panic!("expected Failed, got {other:?}"),
    };
    assert!(message.contains("a single row"), "{message}");
    let db = fake.db();
    assert_eq!(db.batch_sizes(), vec![2, 1]);
    assert!(db.fills.iter().all(|&f| f == 0));
    assert_eq!(db.finishes(), vec![Outcome::Failed]);
    assert!(matches!(
        run.events.last(),
        Some(EventKind::Failed {
            phase: Some(Phase::Backfill),
            ..
        })
    ));
}

// ---------------------------------------------------------------------------------------------
// Lost connections

#[tokio::test]
async fn connection_lost_after_a_batch_committed_reloads_the_checkpoint_and_neither_skips_nor_repeats()
 {
    let fake = Fake::new(10);
    fake.db().lose_connection = Some((2, Loss::AfterCommit));
    let run = run(&fake, plan("batch_size = 3", ""), &[]).await;

    assert_eq!(run.result.unwrap(), RunOutcome::Done);
    let db = fake.db();
    db.assert_every_key_filled_once();
    let backfill: Vec<&Call> = db
        .calls
        .iter()
        .skip_while(|c| **c != Call::BackfillStart)
        .take_while(|c| !matches!(c, Call::CompletePhase(..)))
        .collect();
    assert_eq!(
        backfill,
        vec![
            &Call::BackfillStart,
            &Call::LoadJob,
            &Call::RunBatch {
                after: None,
                size: 3
            },
            &Call::RunBatch {
                after: Some(3),
                size: 3
            },
            &Call::Reconnect,
            &Call::LoadJob,
            &Call::RunBatch {
                after: Some(6),
                size: 3
            },
            &Call::RunBatch {
                after: Some(9),
                size: 3
            },
        ]
    );
    let marks_: Vec<String> = run
        .events
        .iter()
        .filter_map(|e| match e {
            EventKind::ConnectionLost { attempt, .. } => Some(format!("lost {attempt}")),
            EventKind::Reconnected { attempt } => Some(format!("reconnected {attempt}")),
            EventKind::BatchDone { batch, .. } => Some(format!("batch {batch}")),
            _ => None,
        })
        .collect();
    assert_eq!(
        marks_,
        marks(&["batch 1", "lost 1", "reconnected 1", "batch 3", "batch 4"]),
        "batch 2 committed unseen; numbering follows the reloaded count"
    );
    assert_eq!(run.sleeps.len(), 1);
    assert_jittered(run.sleeps[0], 500);
    assert!(matches!(
        run.events.last(),
        Some(EventKind::Done { rows_done: 10, .. })
    ));
}

#[tokio::test]
async fn connection_lost_before_a_batch_committed_retries_the_same_range() {
    let fake = Fake::new(10);
    fake.db().lose_connection = Some((2, Loss::BeforeCommit));
    let run = run(&fake, plan("batch_size = 3", ""), &[]).await;

    assert_eq!(run.result.unwrap(), RunOutcome::Done);
    let db = fake.db();
    db.assert_every_key_filled_once();
    let afters: Vec<Option<u64>> = db
        .calls
        .iter()
        .filter_map(|c| match c {
            Call::RunBatch { after, .. } => Some(*after),
            _ => None,
        })
        .collect();
    assert_eq!(afters, vec![None, Some(3), Some(3), Some(6), Some(9)]);
    assert_eq!(db.count(&Call::Reconnect), 1);
}

#[tokio::test]
async fn connection_lost_after_the_last_batch_committed_ends_the_backfill() {
    let fake = Fake::new(10);
    fake.db().lose_connection = Some((4, Loss::AfterCommit));
    let run = run(&fake, plan("batch_size = 3", ""), &[]).await;

    assert_eq!(run.result.unwrap(), RunOutcome::Done);
    let db = fake.db();
    db.assert_every_key_filled_once();
    assert_eq!(db.batch_sizes().len(), 4, "no batch after the end");
    assert!(db.phases_done.contains(&Phase::Verify));
}

#[tokio::test]
async fn reconnect_failures_within_reconnect_attempts_are_retried_with_backoff() {
    let fake = Fake::new(10);
    {
        let mut db = fake.db();
        db.ddl_errors = vec![(DdlStep::AddColumn, connection_lost())];
        db.reconnect_failures = 2;
    }
    let run = run(&fake, plan("", "reconnect_attempts = 3"), &[]).await;

    assert_eq!(run.result.unwrap(), RunOutcome::Done);
    let db = fake.db();
    assert_eq!(db.count(&Call::Reconnect), 3);
    assert_eq!(
        db.count(&Call::Ddl(DdlStep::AddColumn)),
        2,
        "the step runs again"
    );
    let lost: Vec<(u32, u32)> = run
        .events
        .iter()
        .filter_map(|e| match e {
            EventKind::ConnectionLost {
                attempt,
                max_attempts,
                ..
            } => Some((*attempt, *max_attempts)),
            _ => None,
        })
        .collect();
    assert_eq!(lost, vec![(1, 3), (2, 3), (3, 3)]);
    assert!(
        run.events
            .iter()
            .any(|e| matches!(e, EventKind::Reconnected { attempt: 3 }))
    );
    assert_eq!(run.sleeps.len(), 3);
    for (sleep, nominal) in run.sleeps.iter().zip([500, 1000, 2000]) {
        assert_jittered(*sleep, nominal);
    }
}

#[tokio::test]
async fn reconnect_failing_more_than_reconnect_attempts_fails_the_run() {
    let fake = Fake::new(10);
    {
        let mut db = fake.db();
        db.lose_connection = Some((1, Loss::BeforeCommit));
        db.reconnect_failures = 5;
    }
    let run = run(&fake, plan("", "reconnect_attempts = 3"), &[]).await;

    let message = match run.result {
        Err(EngineError::Failed(m)) => m,
        other => panic!("expected Failed, got {other:?}"),
    };
    assert!(message.contains("could not reconnect"), "{message}");
    assert!(message.contains("3 attempts"), "{message}");
    let db = fake.db();
    assert_eq!(db.count(&Call::Reconnect), 3);
    assert!(db.fills.iter().all(|&f| f == 0));
    assert!(
        !run.events
            .iter()
            .any(|e| matches!(e, EventKind::Reconnected { .. }))
    );
    assert_eq!(run.state.status, Status::Failed);
}

// ---------------------------------------------------------------------------------------------
// Bugs found

/// The migration is claimed by `open_job`; before that, the state row is not this runner's to
/// write (another runner may be running it, or it may record an earlier outcome).
#[tokio::test]
async fn an_abort_before_the_migration_is_claimed_records_no_outcome() {
    // Another runner is in the middle of this migration.
    let fake = Fake::resumed(10, &[Phase::AddColumn], None, Outcome::Running);
    let run = run(&fake, plan("", ""), &[Command::Abort]).await;

    assert_eq!(run.result.unwrap(), RunOutcome::Aborted);
    let db = fake.db();
    assert_eq!(db.count(&Call::OpenJob), 0);
    assert_eq!(db.finishes(), vec![], "nothing claimed, nothing to record");
    assert_eq!(
        db.outcome,
        Outcome::Running,
        "the other runner's row is intact"
    );
}

#[tokio::test]
async fn a_failed_preflight_records_no_outcome() {
    let all = &Phase::ALL[1..]; // every phase after preflight
    let fake = Fake::resumed(10, all, Some(10), Outcome::Done);
    fake.db().preflight_error = Some(TargetError::Failed(
        "preflight could not create a temporary table: permission denied".into(),
    ));
    let run = run(&fake, plan("", ""), &[]).await;

    assert!(matches!(run.result, Err(EngineError::Failed(_))));
    let db = fake.db();
    assert_eq!(db.finishes(), vec![], "nothing claimed, nothing to record");
    assert_eq!(
        db.outcome,
        Outcome::Done,
        "the finished migration stays done"
    );
}

/// Every batch takes 100 ms on the fake's clock; with a 200 ms target the sizer grows the
/// size, at most ×1.5 a batch.
#[tokio::test]
async fn the_adaptive_sizer_steers_toward_the_target_and_an_operator_size_holds_until_handed_back()
{
    let fake = Fake::new(200);
    fake.db().commands_after_batch =
        vec![(3, Command::SetBatchSize(5)), (5, Command::AutoBatchSize)];
    let run = run(
        &fake,
        plan(
            "adaptive = true\nbatch_size = 4\nmin_batch_size = 1\ntarget_batch_ms = 200",
            "",
        ),
        &[],
    )
    .await;

    assert_eq!(run.result.unwrap(), RunOutcome::Done);
    let db = fake.db();
    let sizes = db.batch_sizes();
    assert_eq!(
        &sizes[..7],
        &[4, 6, 9, 5, 5, 5, 7],
        "grows ×1.5, holds 5 for the operator, then grows again"
    );
    db.assert_every_key_filled_once();
    let reasons: Vec<(SizeSource, String)> = run
        .events
        .iter()
        .filter_map(|e| match e {
            EventKind::BatchSizeChanged { by, reason, .. } => Some((*by, reason.clone())),
            _ => None,
        })
        .collect();
    assert!(
        reasons[0].0 == SizeSource::Adaptive && reasons[0].1 == "adaptive → 200 ms",
        "{reasons:?}"
    );
    assert!(
        reasons
            .iter()
            .any(|(by, r)| *by == SizeSource::Operator && r == "operator: holds until r")
    );
    assert!(
        reasons
            .iter()
            .any(|(by, r)| *by == SizeSource::Adaptive && r == "adaptive sizer took over")
    );
}

/// A replica that replays 5 MB/s while the batches write 25 MB/s: with `max_replication_lag =
/// "1s"` the engine throttles on the forecast (the backlog over the replay rate) and the true
/// lag stays near the limit, where waiting for the reported lag to cross it lets the WAL
/// already written keep the replica behind for about five times as long.
#[tokio::test]
async fn the_lag_throttle_holds_a_slow_replica_near_the_limit() {
    let fake = Fake::new(20_000);
    // 500 keys per 100 ms batch, 5,000 bytes each: 25 MB/s.
    fake.db().replica = Some(SlowReplica::new(5e6, 5_000));
    let mut p = plan("batch_size = 500", "");
    p.throttle.max_replication_lag = Some(Duration::from_secs(1));
    p.throttle.resume_after = Duration::from_millis(500);
    let run = run(&fake, p, &[]).await;

    assert_eq!(run.result.unwrap(), RunOutcome::Done);
    fake.db().assert_every_key_filled_once();
    let throttles: Vec<String> = run
        .events
        .iter()
        .filter_map(|e| match e {
            EventKind::Throttled { reasons } => Some(
                reasons
                    .iter()
                    .map(|r| r.to_string())
                    .collect::<Vec<_>>()
                    .join("; "),
            ),
            _ => None,
        })
        .collect();
    assert!(!throttles.is_empty(), "never throttled");
    assert!(
        throttles[0].contains("replication lag (replica)") && throttles[0].contains("forecast"),
        "{throttles:?}"
    );
    let worst = fake.db().replica.as_ref().unwrap().worst_lag_s;
    // One batch and one poll of writes past the forecast: 1 s + (0.1 + 0.1) s × 25/5.
    assert!(worst <= 2.1, "the replica fell {worst:.2} s behind");
    assert!(
        worst >= 0.8,
        "the throttle held back too much: {worst:.2} s"
    );
}

// ---------------------------------------------------------------------------------------------
// Gates

/// The test plan with `[gates] before = [...]` (the phases given as plan names).
fn gated_plan(backfill: &str, gates: &[&str]) -> Plan {
    let list = gates
        .iter()
        .map(|g| format!("\"{g}\""))
        .collect::<Vec<_>>()
        .join(", ");
    let text =
        format!("{PLAN}\n[backfill]\nadaptive = false\n{backfill}\n\n[gates]\nbefore = [{list}]\n");
    Plan::parse(Path::new("t.toml"), &text).expect("the gated test plan parses")
}

/// Gate and phase events as short words.
fn gate_marks(events: &[EventKind]) -> Vec<String> {
    events
        .iter()
        .filter_map(|e| match e {
            EventKind::GateReached { phase, .. } => Some(format!("gate {phase}")),
            EventKind::GateProceeded { phase } => Some(format!("proceed {phase}")),
            EventKind::PhaseStarted { phase } => Some(format!("start {phase}")),
            EventKind::PhaseSkipped { phase, .. } => Some(format!("skip {phase}")),
            EventKind::Paused { phase } => Some(format!("paused in {phase}")),
            EventKind::Resumed => Some("resumed".into()),
            EventKind::Done { .. } => Some("DONE".into()),
            EventKind::Aborted { .. } => Some("ABORTED".into()),
            _ => None,
        })
        .collect()
}

fn not_null_ddl(fake: &Fake) -> Vec<DdlStep> {
    fake.db()
        .ddl_calls()
        .into_iter()
        .filter(|s| {
            matches!(
                s,
                DdlStep::AddNotNullCheck | DdlStep::ValidateNotNullCheck | DdlStep::SetNotNull
            )
        })
        .collect()
}

#[tokio::test]
async fn a_gate_holds_its_phase_until_the_operator_proceeds() {
    let fake = Fake::new(10);
    let mut live = start(&fake, gated_plan("batch_size = 3", &["not_null"]), &[]);

    let reached = live
        .wait_for(|e| matches!(e, EventKind::GateReached { .. }))
        .await;
    match reached {
        EventKind::GateReached { phase, lock } => {
            assert_eq!(phase, Phase::NotNull);
            assert_eq!(
                lock, "ACCESS EXCLUSIVE briefly",
                "the locks of the phase held back"
            );
        }
        other => panic!("{other:?}"),
    }
    for _ in 0..3 {
        live.let_it_run().await;
        assert_eq!(
            not_null_ddl(&fake),
            vec![],
            "no not_null DDL before proceed"
        );
        assert!(
            !fake
                .db()
                .calls
                .iter()
                .any(|c| matches!(c, Call::CompletePhase(Phase::NotNull, _))),
        );
        let state = live.state.borrow().clone();
        assert_eq!(state.status, Status::Gate);
        assert_eq!(state.gate, Some(Phase::NotNull));
        assert_eq!(state.phase, Some(Phase::NotNull));
    }
    assert_eq!(
        fake.db().phases_done,
        vec![
            Phase::AddColumn,
            Phase::Sync,
            Phase::Backfill,
            Phase::Verify
        ],
        "everything before the gate ran"
    );

    live.send(Command::Proceed);
    live.wait_for(|e| matches!(e, EventKind::GateProceeded { .. }))
        .await;
    let (result, events) = live.end().await;
    assert_eq!(result.unwrap(), RunOutcome::Done);
    assert_eq!(
        not_null_ddl(&fake),
        vec![
            DdlStep::AddNotNullCheck,
            DdlStep::ValidateNotNullCheck,
            DdlStep::SetNotNull
        ]
    );
    fake.db().assert_every_key_filled_once();
    let marks_seen = gate_marks(&events);
    assert_eq!(
        &marks_seen[marks_seen.len() - 6..],
        &marks(&[
            "gate not_null",
            "proceed not_null",
            "start not_null",
            "start index",
            "start cleanup",
            "DONE"
        ])[..]
    );
}

#[tokio::test]
async fn a_proceed_sent_before_the_gate_is_reached_is_dropped() {
    let fake = Fake::new(10);
    // One Proceed queued before the run starts, one during the backfill.
    fake.db().commands_after_batch = vec![(2, Command::Proceed)];
    let mut live = start(
        &fake,
        gated_plan("batch_size = 3", &["not_null"]),
        &[Command::Proceed],
    );

    live.wait_for(|e| matches!(e, EventKind::GateReached { .. }))
        .await;
    for _ in 0..3 {
        live.let_it_run().await;
        assert_eq!(
            not_null_ddl(&fake),
            vec![],
            "a stale proceed passed the gate"
        );
        assert_eq!(live.state.borrow().status, Status::Gate);
    }
    live.send(Command::Proceed);
    let (result, _) = live.end().await;
    assert_eq!(result.unwrap(), RunOutcome::Done);
}

#[tokio::test]
async fn a_second_proceed_at_one_gate_does_not_pass_the_next_gate() {
    let fake = Fake::new(10);
    let mut live = start(
        &fake,
        gated_plan("batch_size = 3", &["not_null", "index"]),
        &[],
    );

    live.wait_for(|e| matches!(e, EventKind::GateReached { .. }))
        .await;
    // A double press: both are queued while the engine waits at the not_null gate.
    live.send(Command::Proceed);
    live.send(Command::Proceed);
    let next = live
        .wait_for(|e| matches!(e, EventKind::GateReached { .. }))
        .await;
    assert!(matches!(
        next,
        EventKind::GateReached {
            phase: Phase::Index,
            ..
        }
    ));
    for _ in 0..3 {
        live.let_it_run().await;
        assert!(
            !fake.db().ddl_calls().contains(&DdlStep::BuildIndex),
            "the second proceed passed the index gate"
        );
        assert_eq!(live.state.borrow().gate, Some(Phase::Index));
    }
    live.send(Command::Proceed);
    let (result, events) = live.end().await;
    assert_eq!(result.unwrap(), RunOutcome::Done);
    assert_eq!(
        gate_marks(&events)
            .into_iter()
            .filter(|m| m.starts_with("gate") || m.starts_with("proceed"))
            .collect::<Vec<_>>(),
        marks(&[
            "gate not_null",
            "proceed not_null",
            "gate index",
            "proceed index"
        ])
    );
}

#[tokio::test]
async fn abort_at_a_gate_ends_the_run_resumably_and_the_next_run_asks_again() {
    let fake = Fake::new(10);
    let mut live = start(&fake, gated_plan("batch_size = 3", &["not_null"]), &[]);
    live.wait_for(|e| matches!(e, EventKind::GateReached { .. }))
        .await;
    live.send(Command::Abort);
    let (result, events) = live.end().await;

    assert_eq!(result.unwrap(), RunOutcome::Aborted);
    assert_eq!(not_null_ddl(&fake), vec![]);
    assert_eq!(fake.db().finishes(), vec![Outcome::Aborted]);
    assert!(matches!(
        events.last(),
        Some(EventKind::Aborted {
            phase: Some(Phase::NotNull)
        })
    ));
    assert!(
        !events
            .iter()
            .any(|e| matches!(e, EventKind::GateProceeded { .. }))
    );

    // The next run skips what is done and stops at the same gate again.
    let mut live = start(&fake, gated_plan("batch_size = 3", &["not_null"]), &[]);
    live.wait_for(|e| matches!(e, EventKind::GateReached { .. }))
        .await;
    live.let_it_run().await;
    assert_eq!(not_null_ddl(&fake), vec![]);
    live.send(Command::Proceed);
    let (result, events) = live.end().await;
    assert_eq!(result.unwrap(), RunOutcome::Done);
    assert_eq!(
        gate_marks(&events)[..5],
        marks(&[
            "skip add_column",
            "skip sync",
            "skip backfill",
            "skip verify",
            "gate not_null"
        ])[..]
    );
    fake.db().assert_every_key_filled_once();
}

#[tokio::test]
async fn commands_at_a_gate_are_applied_and_a_pause_takes_effect_after_proceed() {
    let fake = Fake::new(10);
    let mut live = start(&fake, gated_plan("batch_size = 3", &["not_null"]), &[]);
    live.wait_for(|e| matches!(e, EventKind::GateReached { .. }))
        .await;

    live.send(Command::SetBatchSize(7));
    live.send(Command::Pause);
    live.wait_for(|e| matches!(e, EventKind::PauseRequested))
        .await;
    live.let_it_run().await;
    let state = live.state.borrow().clone();
    assert_eq!(state.batch_size, 7, "the size is applied at the gate");
    assert_eq!(state.status, Status::Gate, "a pause does not hide the gate");
    assert_eq!(not_null_ddl(&fake), vec![]);

    live.send(Command::Proceed);
    live.wait_for(|e| matches!(e, EventKind::Paused { .. }))
        .await;
    live.let_it_run().await;
    assert_eq!(
        not_null_ddl(&fake),
        vec![],
        "paused before the phase's first statement"
    );
    assert_eq!(live.state.borrow().status, Status::Paused);
    assert_eq!(live.state.borrow().gate, None);

    live.send(Command::Resume);
    let (result, events) = live.end().await;
    assert_eq!(result.unwrap(), RunOutcome::Done);
    let seen = gate_marks(&events);
    let at = seen.iter().position(|m| m == "gate not_null").unwrap();
    assert_eq!(
        seen[at..at + 5],
        marks(&[
            "gate not_null",
            "proceed not_null",
            "paused in not_null",
            "resumed",
            "start not_null"
        ])[..]
    );
}

#[tokio::test]
async fn a_phase_finished_by_an_earlier_run_is_not_gated() {
    let done = [
        Phase::AddColumn,
        Phase::Sync,
        Phase::Backfill,
        Phase::Verify,
        Phase::NotNull,
    ];
    let fake = Fake::resumed(10, &done, Some(10), Outcome::Failed);
    // No Proceed is ever sent: a gate here would hang the run (and fail the test).
    let run = run(&fake, gated_plan("batch_size = 3", &["not_null"]), &[]).await;

    assert_eq!(run.result.unwrap(), RunOutcome::Done);
    assert!(
        !run.events
            .iter()
            .any(|e| matches!(e, EventKind::GateReached { .. }))
    );
    assert!(gate_marks(&run.events).contains(&"skip not_null".to_string()));
}

#[tokio::test]
async fn dropping_the_command_sender_at_a_gate_aborts_instead_of_hanging() {
    let fake = Fake::new(10);
    let mut live = start(&fake, gated_plan("batch_size = 3", &["not_null"]), &[]);
    live.wait_for(|e| matches!(e, EventKind::GateReached { .. }))
        .await;
    drop(live.commands.take());
    let (result, _) = live.end().await;
    assert_eq!(result.unwrap(), RunOutcome::Aborted);
    assert_eq!(not_null_ddl(&fake), vec![]);
    assert_eq!(fake.db().finishes(), vec![Outcome::Aborted]);
}

#[tokio::test]
async fn while_paused_the_rate_is_zero_with_no_eta_and_after_resume_the_running_speed_shows_at_once()
 {
    let fake = Fake::new(40);
    fake.db().commands_after_batch = vec![(5, Command::Pause)];
    let mut live = start(&fake, plan("batch_size = 2\nadaptive = false", ""), &[]);
    let before = live
        .wait_for(|e| matches!(e, EventKind::BatchDone { batch: 5, .. }))
        .await;
    let EventKind::BatchDone { rows_per_s, .. } = before else {
        unreachable!()
    };
    let speed = 2.0 / BATCH_TIME.as_secs_f64();
    assert!((rows_per_s - speed).abs() < 1e-6, "{rows_per_s}");

    live.wait_for(|e| matches!(e, EventKind::Paused { .. }))
        .await;
    {
        let s = live.state.borrow();
        assert_eq!(s.status, Status::Paused);
        assert_eq!(s.rows_per_s, 0.0, "no rate while paused");
        assert_eq!(s.eta_s, None, "no ETA while paused");
    }
    // Five minutes paused: before, the rate right after the resume spread the rows of the
    // last seconds over the pause as well.
    live.clock.advance(Duration::from_secs(300));
    live.send(Command::Resume);
    let after = live
        .wait_for(|e| matches!(e, EventKind::BatchDone { batch: 6, .. }))
        .await;
    let EventKind::BatchDone {
        rows_per_s,
        avg_rows_per_s,
        eta_s,
        rows_done,
        ..
    } = after
    else {
        unreachable!()
    };
    assert!((rows_per_s - speed).abs() < 1e-6, "{rows_per_s}");
    assert!((avg_rows_per_s - speed).abs() < 1e-6, "{avg_rows_per_s}");
    let left = (40 - rows_done) as f64 / speed;
    assert_eq!(eta_s, Some(left as u64));
    let state = live.state.clone();
    let (result, _) = live.end().await;
    assert_eq!(result.unwrap(), RunOutcome::Done);
    // At the end: no rate now, the average stays, and the run's clock has stopped.
    let s = state.borrow();
    assert_eq!(s.rows_per_s, 0.0);
    assert!(
        (s.avg_rows_per_s - speed).abs() < 1e-6,
        "{}",
        s.avg_rows_per_s
    );
    assert!(s.started_at_ms > 0 && s.ended_at_ms >= Some(s.started_at_ms));
    let end = s.ended_at_ms.unwrap();
    assert_eq!(
        s.elapsed(end),
        s.elapsed(end + 3_600_000),
        "the clock stopped at the end"
    );
}

#[test]
fn replicas_are_read_every_poll_and_at_every_boundary_near_the_lag_limit() {
    use super::throttle::ReplicaReading;
    let t0 = Instant::now();
    let limit = Duration::from_secs(1);
    let at = |lag: Option<f64>| {
        (
            t0,
            Some(vec![
                ReplicaReading::reported("a", Some(0.0)),
                ReplicaReading::reported("b", lag),
            ]),
        )
    };
    let soon = t0 + Duration::from_millis(20);
    let later = t0 + super::LAG_POLL;
    assert!(super::lag_due(None, soon, limit), "never read: read now");
    assert!(!super::lag_due(Some(&at(Some(0.2))), soon, limit));
    assert!(super::lag_due(Some(&at(Some(0.2))), later, limit));
    assert!(
        super::lag_due(Some(&at(Some(0.5))), soon, limit),
        "half the limit"
    );
    assert!(
        super::lag_due(Some(&at(None)), soon, limit),
        "a replica that cannot be read"
    );
    assert!(
        super::lag_due(Some(&(t0, None)), soon, limit),
        "the last read failed"
    );
    let mut warming = at(Some(0.1));
    if let Some(list) = warming.1.as_mut() {
        list[1].warming = true;
    }
    assert!(
        super::lag_due(Some(&warming), soon, limit),
        "a backlog not forecast yet"
    );
}

#[test]
fn a_readings_step_is_its_growth_since_the_same_replicas_reading_before() {
    use super::throttle::ReplicaReading;
    let before = vec![
        ReplicaReading::reported("a", Some(0.5)),
        ReplicaReading::reported("b", None),
    ];
    let mut now = vec![
        ReplicaReading::reported("b", Some(0.1)),
        ReplicaReading::reported("a", Some(0.7)),
        ReplicaReading::reported("c", Some(0.3)),
    ];
    super::annotate_steps(&before, &mut now);
    let steps: Vec<_> = now
        .iter()
        .map(|r| r.step_s.map(|s| (s * 10.0).round()))
        .collect();
    assert_eq!(steps, vec![None, Some(2.0), None]);
}

// ---------------------------------------------------------------------------------------------
// The foreground guard

#[tokio::test]
async fn the_guard_measures_a_baseline_then_paces_a_slow_foreground_and_comes_back() {
    // 5,000 keys in batches of 10 (100 ms each); the probe is slow from batch 5 to batch 15.
    let fake = Fake::new(5000).with_probe(5..15, None);
    let done = run(&fake, plan("batch_size = 10", ""), &[]).await;
    assert_eq!(done.result.as_ref().unwrap(), &RunOutcome::Done);
    fake.db().assert_every_key_filled_once();
    let baseline = done
        .events
        .iter()
        .find_map(|e| match e {
            EventKind::ForegroundBaseline { p99_ms, probes, .. } => Some((*p99_ms, *probes)),
            _ => None,
        })
        .expect("a baseline before the first batch");
    assert_eq!(baseline, (1.0, 100));
    let changes: Vec<(f64, f64, String)> = done
        .events
        .iter()
        .filter_map(|e| match e {
            EventKind::PacingChanged {
                from_duty,
                duty,
                reason,
                ..
            } => Some((*from_duty, *duty, reason.clone())),
            _ => None,
        })
        .collect();
    assert!(changes.len() >= 3, "{changes:?}");
    assert_eq!((changes[0].0, changes[0].1), (1.0, 0.5), "{changes:?}");
    assert!(changes[0].2.contains("against 1.50 ms"), "{changes:?}");
    let lowest = changes.iter().map(|c| c.1).fold(1.0, f64::min);
    assert!(lowest <= 0.25, "{changes:?}");
    assert_eq!(
        changes.last().unwrap().1,
        1.0,
        "back to full speed: {changes:?}"
    );
    // The rests follow the duty cycle: a 100 ms batch at 50 % rests 100 ms, at 25 % 300 ms.
    for rest in [100, 300] {
        assert!(
            done.sleeps.contains(&Duration::from_millis(rest)),
            "a {rest} ms rest in {:?}",
            done.sleeps
        );
    }
    let view = done.state.foreground.expect("the guard's view");
    assert!(view.on);
    assert_eq!(view.baseline_p99_ms, Some(1.0));
}

#[tokio::test]
async fn a_failing_probe_holds_the_batches_until_it_answers_again() {
    // From batch 5 on, the probe fails for 10 s of the clock.
    let fake = Fake::new(1000).with_probe(0..0, Some((5, Duration::from_secs(10))));
    let done = run(&fake, plan("batch_size = 10", ""), &[]).await;
    assert_eq!(done.result.unwrap(), RunOutcome::Done);
    fake.db().assert_every_key_filled_once();
    let held = done
        .events
        .iter()
        .position(|e| matches!(e, EventKind::Throttled { .. }))
        .expect("held");
    let EventKind::Throttled { reasons } = &done.events[held] else {
        unreachable!()
    };
    assert_eq!(reasons[0].signal, "foreground probe");
    assert!(
        reasons[0].value.contains("statement timeout"),
        "{reasons:?}"
    );
    // Failed probes count as over the limit (the duty cycle fell before the hold), and no
    // batch ran while held: the next event after the hold is its end.
    assert!(
        done.events[..held]
            .iter()
            .any(|e| matches!(e, EventKind::PacingChanged { .. })),
        "{:?}",
        &done.events[..held]
    );
    let after: Vec<&EventKind> = done.events[held + 1..]
        .iter()
        .filter(|e| {
            matches!(
                e,
                EventKind::BatchDone { .. } | EventKind::Unthrottled { .. }
            )
        })
        .collect();
    let Some(EventKind::Unthrottled { after_ms }) = after.first() else {
        panic!("{after:?}")
    };
    assert!(
        *after_ms >= 5_000,
        "held until the probe answered: {after_ms} ms"
    );
}

#[tokio::test]
async fn the_operator_turns_the_guard_off_and_nothing_waits_for_it() {
    let fake = Fake::new(1000).with_probe(0..1000, Some((0, Duration::from_secs(3600))));
    let done = run(
        &fake,
        plan("batch_size = 10", ""),
        &[Command::SetForegroundImpact(None)],
    )
    .await;
    assert_eq!(done.result.unwrap(), RunOutcome::Done);
    assert!(
        done.events
            .iter()
            .any(|e| matches!(e, EventKind::ForegroundBoundChanged { bound: None }))
    );
    assert!(!done.events.iter().any(|e| matches!(
        e,
        EventKind::ForegroundBaseline { .. }
            | EventKind::PacingChanged { .. }
            | EventKind::Throttled { .. }
    )));
    assert!(!done.state.foreground.unwrap().on);
}

#[tokio::test]
async fn without_a_probe_the_guard_stays_off_and_nothing_waits_for_it() {
    let fake = Fake::new(100);
    let done = run(&fake, plan("batch_size = 10", ""), &[]).await;
    assert_eq!(done.result.unwrap(), RunOutcome::Done);
    assert!(done.state.foreground.is_none());
    assert!(!done.events.iter().any(|e| matches!(
        e,
        EventKind::ForegroundBaseline { .. } | EventKind::PacingChanged { .. }
    )));
}
