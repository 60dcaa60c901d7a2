//! What goes into the engine (commands) and what comes out (events and state).

use serde::{Deserialize, Serialize};

use crate::plan::{Phase, PhasePlan, Severity};
use crate::target::{Blocker, Key, VerifyCursor};

/// An operator's instruction. Applied between batches (or between DDL attempts).
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// Stop at the next batch boundary and wait.
    Pause,
    /// Go on after a pause.
    Resume,
    /// Use this many keys per batch from the next batch on (clamped to the allowed range).
    /// An operator's size holds until [`Command::AutoBatchSize`].
    SetBatchSize(u64),
    /// Hand the batch size back to the adaptive sizer.
    AutoBatchSize,
    /// Stop at the next boundary, leaving everything resumable.
    Abort,
    /// Bound the foreground's p99 by this from the next batch on (None: turn the foreground
    /// guard off); pacing starts again from full speed.
    SetForegroundImpact(Option<crate::plan::ImpactBound>),
    /// Start the phase the engine waits before at a gate. Applies only while the engine waits
    /// at a gate: a Proceed that arrives at any other time is dropped, so a stale one can never
    /// pass a later gate.
    Proceed,
}

/// Who changed the batch size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SizeSource {
    /// An operator command.
    Operator,
    /// A batch timed out and pacer halved the size.
    Timeout,
    /// The adaptive sizer, steering toward target_batch_ms.
    Adaptive,
}

/// Something that happened, with when and to which migration.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Event {
    /// RFC 3339 UTC time with milliseconds.
    pub ts: String,
    /// The migration (`schema.table.column`).
    pub job: String,
    /// What happened.
    #[serde(flatten)]
    pub kind: EventKind,
}

/// What happened. Serialized with an `event` field naming the variant in snake_case.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum EventKind {
    /// The run began.
    Started {
        target: String,
        table: String,
        phases: Vec<Phase>,
        batch_size: u64,
    },
    /// Preflight passed: the statements each phase will run, with their locks.
    Planned { plan: Vec<PhasePlan> },
    /// A lint or preflight finding.
    Finding { severity: Severity, message: String },
    /// A phase began.
    PhaseStarted { phase: Phase },
    /// A phase was finished by an earlier run.
    PhaseSkipped { phase: Phase, reason: String },
    /// A phase finished.
    PhaseDone { phase: Phase, elapsed_ms: u64 },
    /// A DDL step finished (`outcome`: done, already_done or repaired).
    StepDone {
        phase: Phase,
        step: String,
        outcome: String,
        detail: Option<String>,
    },
    /// A lock wait reached lock_timeout, or (`skipped`) the statement was not sent because a
    /// session held the table too long; pacer retries after `retry_in_ms`.
    LockTimeout {
        phase: Phase,
        step: String,
        attempt: u32,
        max_attempts: u32,
        retry_in_ms: u64,
        blockers: Vec<Blocker>,
        detail: String,
        #[serde(default)]
        skipped: bool,
    },
    /// Waiting for something else to finish; pacer retries after `retry_in_ms`.
    Waiting {
        phase: Phase,
        step: String,
        attempt: u32,
        max_attempts: u32,
        retry_in_ms: u64,
        detail: String,
    },
    /// The key range of the backfill (fixed when it first began).
    BackfillRange {
        after: Option<Key>,
        end: Option<Key>,
        rows_done: u64,
        rows_total: Option<u64>,
    },
    /// A batch committed with its checkpoint.
    BatchDone {
        batch: u64,
        lo: Option<Key>,
        hi: Key,
        keys: u64,
        rows_updated: u64,
        duration_ms: u64,
        rows_done: u64,
        rows_total: Option<u64>,
        rows_per_s: f64,
        avg_rows_per_s: f64,
        batch_size: u64,
        eta_s: Option<u64>,
    },
    /// A batch reached statement_timeout and was rolled back; the size was cut.
    BatchTimeout { from: u64, to: u64, detail: String },
    /// The batch size changed (or changed hands: `from` may equal `to`). `reason` is a few
    /// words for the screen; `routine`: a step of the sizer's steady steering (logs skip it).
    BatchSizeChanged {
        from: u64,
        to: u64,
        by: SizeSource,
        reason: String,
        #[serde(default)]
        routine: bool,
    },
    /// Verification progress.
    VerifyProgress {
        rows_checked: u64,
        up_to: Option<VerifyCursor>,
    },
    /// A health signal is over its limit: batches wait (reasons: value against limit).
    Throttled {
        reasons: Vec<crate::engine::throttle::Reason>,
    },
    /// Every signal stayed clear long enough; batches go on.
    Unthrottled { after_ms: u64 },
    /// The foreground probe's baseline was measured while pacer waited (`probes`, p99 in ms).
    ForegroundBaseline {
        p99_ms: f64,
        probes: usize,
        waited_ms: u64,
    },
    /// The foreground guard changed the pacing of the backfill: its duty cycle (share of the
    /// time batches run, 0–1) and cap on the batch size, with the probe's figures that made it.
    PacingChanged {
        from_duty: f64,
        duty: f64,
        from_batch_cap: Option<u64>,
        batch_cap: Option<u64>,
        reason: String,
    },
    /// The operator set the foreground guard's bound (None: turned it off).
    ForegroundBoundChanged { bound: Option<String> },
    /// A pause was asked for; it takes effect at the next batch boundary.
    PauseRequested,
    /// The engine is paused at a batch boundary.
    Paused { phase: Phase },
    /// The engine goes on after a pause.
    Resumed,
    /// An abort was asked for; it takes effect at the next boundary.
    AbortRequested,
    /// The plan gates `phase`: the engine waits for the operator's Proceed before starting it.
    /// `lock`: the table locks the phase takes, in words.
    GateReached { phase: Phase, lock: String },
    /// The operator proceeded past the gate; `phase` starts now.
    GateProceeded { phase: Phase },
    /// The connection was lost; pacer reconnects after `retry_in_ms`.
    ConnectionLost {
        detail: String,
        attempt: u32,
        max_attempts: u32,
        retry_in_ms: u64,
    },
    /// Connected again; work goes on from the last checkpoint.
    Reconnected { attempt: u32 },
    /// The migration had already finished in an earlier run.
    AlreadyDone,
    /// Every phase finished.
    Done {
        rows_done: u64,
        rows_updated: u64,
        elapsed_ms: u64,
    },
    /// Stopped by the operator; resumable.
    Aborted { phase: Option<Phase> },
    /// Stopped by an error; resumable unless the message says otherwise.
    Failed { phase: Option<Phase>, error: String },
}

/// Whether the backfill's batches run now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Pace {
    /// Batches run: the rate and the ETA are current.
    #[default]
    Moving,
    /// No batch runs (paused, throttled, waiting for a lock, reconnecting, at a gate): the
    /// rate is 0 and the ETA stands still; the word says why.
    Stopped(&'static str),
    /// The backfill is over (or has not begun): only the average means something.
    Over,
}

/// What the engine is doing, in words a status line can show.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Checking before changing anything.
    Preflight,
    /// Working.
    Running,
    /// A pause was asked for and takes effect at the next batch boundary.
    Pausing,
    /// Paused at a batch boundary.
    Paused,
    /// A DDL statement waits for (or retries) its lock.
    WaitingForLock,
    /// Waiting at a batch boundary because a health signal is over its limit.
    Throttled,
    /// Reconnecting after a lost connection.
    Reconnecting,
    /// Waiting at a gate for the operator to proceed ([`State::gate`] names the phase).
    Gate,
    /// Finished.
    Done,
    /// Stopped by an error.
    Failed,
    /// Stopped by the operator.
    Aborted,
}

/// A snapshot of the engine's state, for status displays.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct State {
    /// The migration.
    pub job: String,
    /// Current phase.
    pub phase: Option<Phase>,
    /// What it is doing.
    pub status: Status,
    /// Phases finished.
    pub phases_done: Vec<Phase>,
    /// Keys walked by the backfill.
    pub rows_done: u64,
    /// Estimated keys in the range.
    pub rows_total: Option<u64>,
    /// Rows per second over the last seconds of running time (0 while stopped).
    pub rows_per_s: f64,
    /// Rows per second of the backfill so far, over its running time.
    #[serde(default)]
    pub avg_rows_per_s: f64,
    /// Seconds left at the current rate (None while stopped, or before the rate is known).
    #[serde(default)]
    pub eta_s: Option<u64>,
    /// When this run started, milliseconds since the Unix epoch (0: not started).
    #[serde(default)]
    pub started_at_ms: u64,
    /// When this run ended (done, failed or aborted), milliseconds since the Unix epoch.
    #[serde(default)]
    pub ended_at_ms: Option<u64>,
    /// Keys per batch.
    pub batch_size: u64,
    /// Who set the batch size and why.
    pub batch_size_reason: String,
    /// Last checkpoint.
    pub checkpoint: Option<Key>,
    /// Who blocks the DDL pacer waits for, when it waits.
    pub blockers: Vec<Blocker>,
    /// Last error, if failed.
    pub error: Option<String>,
    /// Why batches wait, while throttled.
    pub throttle: Option<String>,
    /// The phase a gate holds back, while the engine waits there for the operator.
    pub gate: Option<Phase>,
    /// The foreground guard: the probe's baseline and impact, and the pacing it chose (None:
    /// the target has no probe).
    #[serde(default)]
    pub foreground: Option<crate::engine::guard::ForegroundView>,
}

impl State {
    /// Whether the backfill's batches run now, and if not, why.
    pub fn pace(&self) -> Pace {
        let backfilling =
            self.phase == Some(Phase::Backfill) && !self.phases_done.contains(&Phase::Backfill);
        if !backfilling {
            return Pace::Over;
        }
        match self.status {
            Status::Running | Status::Pausing | Status::Preflight => Pace::Moving,
            Status::Paused => Pace::Stopped("paused"),
            Status::Throttled => Pace::Stopped("throttled"),
            Status::WaitingForLock => Pace::Stopped("waiting for a lock"),
            Status::Reconnecting => Pace::Stopped("reconnecting"),
            Status::Gate => Pace::Stopped("at a gate"),
            Status::Done | Status::Failed | Status::Aborted => Pace::Over,
        }
    }

    /// How long this run has taken: to its end when it ended, else to `now_ms` (both in
    /// milliseconds since the Unix epoch, as the runner's clock and the viewer's agree).
    pub fn elapsed(&self, now_ms: u64) -> std::time::Duration {
        if self.started_at_ms == 0 {
            return std::time::Duration::ZERO;
        }
        let end = self.ended_at_ms.unwrap_or(now_ms);
        std::time::Duration::from_millis(end.saturating_sub(self.started_at_ms))
    }

    /// The state of a migration that has not begun: preflight, nothing done, the plan's size.
    pub fn starting(job: String, batch_size: u64) -> State {
        State {
            job,
            phase: None,
            status: Status::Preflight,
            phases_done: Vec::new(),
            rows_done: 0,
            rows_total: None,
            rows_per_s: 0.0,
            avg_rows_per_s: 0.0,
            eta_s: None,
            started_at_ms: 0,
            ended_at_ms: None,
            batch_size,
            batch_size_reason: "plan".into(),
            checkpoint: None,
            blockers: Vec::new(),
            error: None,
            throttle: None,
            gate: None,
            foreground: None,
        }
    }
}
