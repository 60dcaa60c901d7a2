//! The migration's state machine. Knows nothing of terminals: it takes [`Command`]s and
//! publishes [`Event`]s and [`State`] snapshots; every interface is a client of it.

pub mod clock;
pub mod event;
pub mod guard;
pub mod progress;
pub mod retry;
pub mod sizer;
pub mod throttle;

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::{mpsc, watch};

pub use clock::{Clock, SystemClock};
pub use event::{Command, Event, EventKind, Pace, SizeSource, State, Status};
use guard::{Activity, Check, Guard};
use progress::Progress;
use retry::{Backoff, Jitter, RetryBudget};
use sizer::{Resize, Sizer, SizerConfig};
use throttle::{Signals, Throttle, Verdict};

/// Reads the latest health signals (from the sampler); the engine adds the throttle file and
/// the throttle query itself.
pub type SignalSource = Box<dyn Fn() -> Signals + Send + Sync>;

/// How often a throttled engine looks at the signals again.
pub const THROTTLE_POLL: Duration = Duration::from_millis(250);

/// How often an engine waiting on the foreground guard (measuring, or a probe that does not
/// answer) looks again.
pub const GUARD_POLL: Duration = Duration::from_millis(50);

/// How often, at most, the engine reads the replicas' positions for `max_replication_lag`
/// (at batch boundaries, so a 50 ms batch reads them every other boundary). The sampler's
/// interval (1 s by default) is too slow: at full speed pacer writes a second of WAL between
/// two of its samples, which a slow replica needs several seconds to replay.
pub const LAG_POLL: Duration = Duration::from_millis(100);

/// From this fraction of `max_replication_lag` on (or with a replica that cannot be read), the
/// replicas are read at every batch boundary instead of every [`LAG_POLL`]: near the limit a
/// slow replica falls further behind with each batch, and one batch is the overshoot this
/// allows (measured in BENCHMARKS.md).
pub const LAG_NEAR: f64 = 0.5;

/// Two readings further apart than this are not one batch apart (a pause, a throttle, a
/// gate): their difference is not what a batch adds.
const STEP_WITHIN: Duration = Duration::from_secs(2);

use crate::plan::{MAX_BATCH_SIZE, MIN_BATCH_SIZE, Phase, Plan, lint};
use crate::target::{DdlStep, Key, Outcome, StepOutcome, Target, TargetError, VerifyCursor};

/// How a run ended, when it did not fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunOutcome {
    /// Every phase finished in this run.
    Done,
    /// Everything had been finished by an earlier run.
    AlreadyDone,
    /// The operator aborted; everything is resumable.
    Aborted,
}

/// Why a run stopped early.
#[derive(Debug, Clone, thiserror::Error)]
pub enum EngineError {
    /// Preflight refused the plan; nothing was changed.
    #[error("{0}")]
    Refused(String),
    /// A runtime failure; the migration is resumable from its last checkpoint.
    #[error("{0}")]
    Failed(String),
    /// The operator aborted (internal: turned into [`RunOutcome::Aborted`]).
    #[error("aborted by the operator")]
    Aborted,
}

/// Backoff between DDL attempts that timed out on their lock.
pub const DDL_BACKOFF_INITIAL: Duration = Duration::from_millis(500);
/// Backoff between reconnect attempts.
pub const RECONNECT_BACKOFF: Backoff = Backoff {
    initial: Duration::from_millis(500),
    max: Duration::from_secs(10),
};

/// The engine's ends of its channels, handed to interfaces.
pub struct Handles {
    /// Send commands here.
    pub commands: mpsc::UnboundedSender<Command>,
    /// Events arrive here.
    pub events: mpsc::UnboundedReceiver<Event>,
    /// The latest state.
    pub state: watch::Receiver<State>,
}

/// Runs one migration against one target.
pub struct Engine<T: Target> {
    target: T,
    plan: Plan,
    clock: Arc<dyn Clock>,
    commands: mpsc::UnboundedReceiver<Command>,
    commands_open: bool,
    events: mpsc::UnboundedSender<Event>,
    state: watch::Sender<State>,
    jitter: Jitter,
    paused: bool,
    abort: bool,
    /// The phase a gate holds back while the engine waits there (only then does a Proceed count).
    gate: Option<Phase>,
    batch_size: u64,
    sizer: Sizer,
    phase: Option<Phase>,
    /// Set once `open_job` has claimed the migration: only then may this run record an outcome.
    claimed: bool,
    throttle: Throttle,
    signals: Option<SignalSource>,
    throttled_since: Option<Instant>,
    last_query: Option<(Instant, Result<f64, String>)>,
    /// The last lag reading and when it was taken (None inside: it failed).
    last_lag: Option<(Instant, Option<Vec<throttle::ReplicaReading>>)>,
    /// Batches committed since `last_lag` was read (its step is a batch's only when one).
    boundaries_since_lag: u32,
    /// Pauses and throttles so far (the backfill leaves the time they take out of its rates).
    stops: u64,
    /// The speed was changed on purpose (an operator's resize, a new pacing or bound) since
    /// the last batch: the ETA starts its rate afresh.
    speed_changed: bool,
    /// The foreground guard, fed from the target's probe log (read with `probe_cursor`).
    guard: Guard,
    probe: Option<crate::probe::ProbeLog>,
    probe_cursor: u64,
}

impl<T: Target> Engine<T> {
    /// An engine for `plan` on `target`, with its command, event and state channels.
    pub fn new(target: T, plan: Plan, clock: Arc<dyn Clock>) -> (Engine<T>, Handles) {
        let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
        let (ev_tx, ev_rx) = mpsc::unbounded_channel();
        let state = State::starting(target.job_id(), plan.backfill.batch_size);
        let (state_tx, state_rx) = watch::channel(state);
        let seed = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(7)
            ^ u64::from(std::process::id());
        let plan_throttle = plan.throttle.clone();
        let guard = Guard::new(
            plan.throttle.max_foreground_impact,
            plan.backfill.min_batch_size,
            clock.now(),
        );
        let sizer = Sizer::new(
            SizerConfig {
                target: Duration::from_millis(plan.backfill.target_batch_ms),
                min: plan.backfill.min_batch_size,
                max: plan.backfill.max_batch_size,
                adaptive: plan.backfill.adaptive,
            },
            plan.backfill.batch_size,
        );
        let engine = Engine {
            target,
            batch_size: plan.backfill.batch_size,
            sizer,
            plan,
            clock,
            commands: cmd_rx,
            commands_open: true,
            events: ev_tx,
            state: state_tx,
            jitter: Jitter::new(seed),
            paused: false,
            abort: false,
            gate: None,
            phase: None,
            claimed: false,
            throttle: Throttle::new(plan_throttle),
            signals: None,
            throttled_since: None,
            last_query: None,
            last_lag: None,
            boundaries_since_lag: 0,
            stops: 0,
            speed_changed: false,
            guard,
            probe: None,
            probe_cursor: 0,
        };
        (
            engine,
            Handles {
                commands: cmd_tx,
                events: ev_rx,
                state: state_rx,
            },
        )
    }

    /// Where the health signals come from (the sampler). Without it, only the throttle file
    /// and the throttle query can throttle.
    pub fn with_signals(mut self, signals: SignalSource) -> Engine<T> {
        self.signals = Some(signals);
        self
    }

    fn emit(&self, kind: EventKind) {
        let event = Event {
            ts: humantime::format_rfc3339_millis(SystemTime::now()).to_string(),
            job: self.target.job_id(),
            kind,
        };
        tracing::info!(event = ?event.kind, "engine event");
        let _ = self.events.send(event);
    }

    fn set_state(&self, f: impl FnOnce(&mut State)) {
        self.state.send_modify(|s| {
            s.job = self.target.job_id();
            f(s)
        });
    }

    /// Running, or Pausing while a pause waits for the next boundary (Gate while a gate waits).
    fn running_status(&self) -> Status {
        if self.gate.is_some() {
            Status::Gate
        } else if self.paused {
            Status::Pausing
        } else {
            Status::Running
        }
    }

    fn current_phase(&self) -> Phase {
        self.phase.unwrap_or(Phase::Preflight)
    }

    /// Runs every phase to the end, or until an abort or a failure.
    pub async fn run(mut self) -> Result<RunOutcome, EngineError> {
        self.set_state(|s| s.started_at_ms = unix_ms());
        let result = self.run_phases().await;
        self.set_state(|s| {
            s.ended_at_ms = Some(unix_ms());
            s.rows_per_s = 0.0;
            s.eta_s = None;
        });
        match &result {
            Ok(_) => {}
            Err(EngineError::Aborted) => {
                if self.claimed {
                    let _ = self
                        .target
                        .finish(Outcome::Aborted, "aborted by the operator")
                        .await;
                }
                self.set_state(|s| s.status = Status::Aborted);
                self.emit(EventKind::Aborted { phase: self.phase });
                return Ok(RunOutcome::Aborted);
            }
            Err(EngineError::Refused(message)) | Err(EngineError::Failed(message)) => {
                if self.claimed && matches!(result, Err(EngineError::Failed(_))) {
                    let _ = self.target.finish(Outcome::Failed, message).await;
                }
                self.set_state(|s| {
                    s.status = Status::Failed;
                    s.error = Some(message.clone());
                });
                self.emit(EventKind::Failed {
                    phase: self.phase,
                    error: message.clone(),
                });
            }
        }
        result
    }

    async fn run_phases(&mut self) -> Result<RunOutcome, EngineError> {
        let started = self.clock.now();
        let plan = self.plan.clone();
        let preflight = self
            .with_recovery("preflight", |t, p| Box::pin(t.preflight(p)))
            .await?;
        let phases = plan.phases();
        self.emit(EventKind::Started {
            target: self.target.describe(),
            table: preflight.info.table.clone(),
            phases: phases.clone(),
            batch_size: self.batch_size,
        });
        self.emit(EventKind::Planned {
            plan: self.target.render(&plan),
        });
        for finding in lint::lint(&plan)
            .into_iter()
            .chain(preflight.info.findings.clone())
        {
            self.emit(EventKind::Finding {
                severity: finding.severity,
                message: finding.message,
            });
        }
        if preflight
            .job
            .as_ref()
            .is_some_and(|j| j.outcome == Outcome::Done)
        {
            self.set_state(|s| s.status = Status::Done);
            self.emit(EventKind::AlreadyDone);
            return Ok(RunOutcome::AlreadyDone);
        }
        self.check_boundary().await?;
        let job = self
            .with_recovery("claiming the migration", |t, _| Box::pin(t.open_job()))
            .await?;
        self.claimed = true;
        self.set_state(|s| {
            s.status = Status::Running;
            s.phases_done = job.phases_done.clone();
        });

        for (i, &phase) in phases.iter().enumerate() {
            if phase == Phase::Preflight {
                continue;
            }
            self.phase = Some(phase);
            self.set_state(|s| s.phase = Some(phase));
            if job.phases_done.contains(&phase) {
                self.emit(EventKind::PhaseSkipped {
                    phase,
                    reason: "finished by an earlier run".into(),
                });
                continue;
            }
            self.check_boundary().await?;
            if plan.gated(phase) {
                self.wait_at_gate(phase).await?;
                self.check_boundary().await?;
            }
            self.guard_activity(Activity::Other);
            let phase_started = self.clock.now();
            self.emit(EventKind::PhaseStarted { phase });
            match phase {
                Phase::Backfill => self.backfill().await?,
                Phase::Verify => self.verify().await?,
                // Every other phase is DDL, in the steps the target says.
                _ => {
                    for (i, step) in self.target.ddl_steps(phase).into_iter().enumerate() {
                        if i > 0 {
                            self.check_boundary().await?;
                        }
                        self.ddl(step).await?;
                    }
                }
            }
            let next = phases.get(i + 1).copied();
            self.with_recovery("recording the phase", |t, _| {
                Box::pin(t.complete_phase(phase, next))
            })
            .await?;
            self.set_state(|s| s.phases_done.push(phase));
            self.emit(EventKind::PhaseDone {
                phase,
                elapsed_ms: elapsed_ms(self.clock.now(), phase_started),
            });
        }
        self.with_recovery("recording the outcome", |t, _| {
            Box::pin(t.finish(Outcome::Done, ""))
        })
        .await?;
        let totals = self
            .with_recovery("reading the totals", |t, _| Box::pin(t.load_job()))
            .await?;
        self.set_state(|s| s.status = Status::Done);
        self.emit(EventKind::Done {
            rows_done: totals.as_ref().map_or(0, |j| j.rows_done),
            rows_updated: totals.as_ref().map_or(0, |j| j.rows_updated),
            elapsed_ms: elapsed_ms(self.clock.now(), started),
        });
        Ok(RunOutcome::Done)
    }

    /// Calls `op` until it succeeds, reconnecting after lost connections and retrying lock
    /// timeouts, within the plan's limits.
    async fn with_recovery<R>(
        &mut self,
        what: &str,
        mut op: impl for<'a> FnMut(
            &'a mut T,
            &'a Plan,
        ) -> std::pin::Pin<
            Box<dyn std::future::Future<Output = Result<R, TargetError>> + Send + 'a>,
        >,
    ) -> Result<R, EngineError> {
        let mut lock_budget = self.lock_budget();
        loop {
            let result = op(&mut self.target, &self.plan).await;
            match result {
                Ok(v) => return Ok(v),
                Err(e) => self.recover(e, what, &mut lock_budget).await?,
            }
        }
    }

    fn lock_budget(&self) -> RetryBudget {
        RetryBudget::new(
            self.plan.safety.ddl_retries,
            Backoff {
                initial: DDL_BACKOFF_INITIAL,
                max: self.plan.safety.retry_max_delay,
            },
        )
    }

    /// Decides what a failure means: Ok(()) to try again (after reconnecting or waiting), or
    /// the error that ends the run.
    async fn recover(
        &mut self,
        error: TargetError,
        what: &str,
        lock_budget: &mut RetryBudget,
    ) -> Result<(), EngineError> {
        match error {
            TargetError::ConnectionLost(detail) => self.reconnect(detail).await,
            TargetError::LockTimeout {
                blockers,
                detail,
                skipped,
            } => {
                let Some(delay) = lock_budget.failed(self.jitter.next()) else {
                    let who = if blockers.is_empty() {
                        String::new()
                    } else {
                        format!(
                            " Last seen blocking: {}.",
                            blockers
                                .iter()
                                .map(|b| b.to_string())
                                .collect::<Vec<_>>()
                                .join("; ")
                        )
                    };
                    return Err(EngineError::Failed(format!(
                        "{what}: gave up after {} attempts, each waiting lock_timeout ({}) for its lock: \
                         {detail}.{who} Nothing was left half-done; run the same command again when the \
                         blocking sessions are gone, or raise ddl_retries.",
                        lock_budget.max_attempts,
                        humantime::format_duration(self.plan.safety.lock_timeout)
                    )));
                };
                self.set_state(|s| {
                    s.status = Status::WaitingForLock;
                    s.blockers = blockers.clone();
                });
                self.emit(EventKind::LockTimeout {
                    phase: self.current_phase(),
                    step: what.to_string(),
                    attempt: lock_budget.failures,
                    max_attempts: lock_budget.max_attempts,
                    retry_in_ms: delay.as_millis() as u64,
                    blockers,
                    detail,
                    skipped,
                });
                self.sleep(delay).await?;
                let status = self.running_status();
                self.set_state(|s| {
                    s.status = status;
                    s.blockers.clear();
                });
                Ok(())
            }
            TargetError::Busy(detail) => {
                let Some(delay) = lock_budget.failed(self.jitter.next()) else {
                    return Err(EngineError::Failed(format!(
                        "{what}: gave up after {} attempts: {detail}",
                        lock_budget.max_attempts
                    )));
                };
                self.emit(EventKind::Waiting {
                    phase: self.current_phase(),
                    step: what.to_string(),
                    attempt: lock_budget.failures,
                    max_attempts: lock_budget.max_attempts,
                    retry_in_ms: delay.as_millis() as u64,
                    detail,
                });
                self.sleep(delay).await
            }
            TargetError::Refused(m) => Err(EngineError::Refused(m)),
            TargetError::StatementTimeout(m) => Err(EngineError::Failed(format!(
                "{what}: {m}. Nothing was left half-done; run the same command again."
            ))),
            TargetError::CheckpointMoved(m) | TargetError::Failed(m) => Err(EngineError::Failed(m)),
        }
    }

    /// Reconnects with bounded backoff (plan `reconnect_attempts`).
    async fn reconnect(&mut self, detail: String) -> Result<(), EngineError> {
        let max = self.plan.safety.reconnect_attempts;
        let mut budget = RetryBudget::new(max + 1, RECONNECT_BACKOFF);
        let mut last = detail.clone();
        self.set_state(|s| s.status = Status::Reconnecting);
        loop {
            let Some(delay) = budget.failed(self.jitter.next()) else {
                return Err(EngineError::Failed(format!(
                    "lost the connection to {} and could not reconnect in {max} attempts (last error: \
                     {last}). The migration is resumable: run the same command again once the \
                     database is reachable.",
                    self.target.describe()
                )));
            };
            self.emit(EventKind::ConnectionLost {
                detail: last.clone(),
                attempt: budget.failures,
                max_attempts: max,
                retry_in_ms: delay.as_millis() as u64,
            });
            self.sleep(delay).await?;
            match self.target.reconnect().await {
                Ok(()) => {
                    self.emit(EventKind::Reconnected {
                        attempt: budget.failures,
                    });
                    let status = self.running_status();
                    self.set_state(|s| s.status = status);
                    return Ok(());
                }
                Err(TargetError::ConnectionLost(d)) => last = d,
                Err(TargetError::Refused(m)) => return Err(EngineError::Refused(m)),
                Err(e) => last = e.to_string(),
            }
        }
    }

    /// Runs one DDL step with retries, reporting its outcome.
    async fn ddl(&mut self, step: DdlStep) -> Result<(), EngineError> {
        let outcome = self
            .with_recovery(step.as_str(), |t, _| Box::pin(t.ddl(step)))
            .await?;
        let (word, detail) = match outcome {
            StepOutcome::Done => ("done", None),
            StepOutcome::AlreadyDone => ("already_done", None),
            StepOutcome::Repaired(d) => ("repaired", Some(d)),
            StepOutcome::Cleared(d) => ("done", Some(d)),
        };
        self.emit(EventKind::StepDone {
            phase: self.current_phase(),
            step: step.as_str().to_string(),
            outcome: word.to_string(),
            detail,
        });
        Ok(())
    }

    /// Applies one command.
    fn apply(&mut self, command: Command) {
        tracing::info!(?command, "operator command");
        match command {
            Command::Pause => {
                if !self.paused {
                    self.paused = true;
                    let status = self.running_status();
                    self.set_state(|s| s.status = status);
                    self.emit(EventKind::PauseRequested);
                }
            }
            Command::Resume => {
                if self.paused {
                    self.paused = false;
                    let status = self.running_status();
                    self.set_state(|s| s.status = status);
                    self.emit(EventKind::Resumed);
                }
            }
            Command::SetBatchSize(n) => {
                let resize = self
                    .sizer
                    .set_by_operator(n.clamp(MIN_BATCH_SIZE, MAX_BATCH_SIZE));
                self.resized(resize, SizeSource::Operator, true);
                self.speed_changed = true;
            }
            Command::AutoBatchSize => {
                if let Some(resize) = self.sizer.hand_back() {
                    self.resized(resize, SizeSource::Adaptive, true);
                    self.speed_changed = true;
                }
            }
            Command::SetForegroundImpact(bound) => {
                if self.probe.is_none() && self.target.probe_log().is_none() {
                    tracing::warn!("foreground bound ignored: this target has no probe");
                    return;
                }
                self.guard.set_bound(bound);
                self.speed_changed = true;
                if let Some(log) = &self.probe {
                    log.set_measuring(false);
                }
                let view = self.guard.view();
                self.set_state(|s| s.foreground = Some(view));
                self.emit(EventKind::ForegroundBoundChanged {
                    bound: bound.map(|b| b.to_string()),
                });
            }
            Command::Abort => {
                if !self.abort {
                    self.abort = true;
                    self.emit(EventKind::AbortRequested);
                }
            }
            // The gate's own loop takes a Proceed while it waits; one that reaches this point
            // came when no gate waited and must not pass a later one.
            Command::Proceed => {
                tracing::warn!("proceed ignored: no gate is waiting");
            }
        }
    }

    /// Applies a size change; `always` reports it even when only its holder changed.
    fn resized(&mut self, resize: Resize, by: SizeSource, always: bool) {
        let from = self.batch_size;
        let Resize {
            to,
            reason,
            routine,
        } = resize;
        if from == to && !always {
            return;
        }
        self.batch_size = to;
        self.set_state(|s| {
            s.batch_size = to;
            s.batch_size_reason = reason.clone();
        });
        self.emit(EventKind::BatchSizeChanged {
            from,
            to,
            by,
            reason,
            routine,
        });
    }

    fn drain_commands(&mut self) {
        while self.commands_open {
            match self.commands.try_recv() {
                Ok(c) => self.apply(c),
                Err(mpsc::error::TryRecvError::Empty) => break,
                Err(mpsc::error::TryRecvError::Disconnected) => self.commands_open = false,
            }
        }
    }

    /// A boundary between batches or steps: apply commands; stop on abort; wait while paused.
    async fn check_boundary(&mut self) -> Result<(), EngineError> {
        self.drain_commands();
        if self.abort {
            return Err(EngineError::Aborted);
        }
        if self.paused {
            let phase = self.current_phase();
            self.stops += 1;
            self.set_state(|s| {
                s.status = Status::Paused;
                s.rows_per_s = 0.0;
                s.eta_s = None;
            });
            self.emit(EventKind::Paused { phase });
            let doing = self.guard.activity();
            self.guard_activity(Activity::Idle);
            while self.paused && !self.abort {
                match self.commands.recv().await {
                    Some(c) => self.apply(c),
                    None => {
                        // Nobody can resume us any more: stop, resumable, rather than hang.
                        self.commands_open = false;
                        self.abort = true;
                    }
                }
            }
            self.guard_activity(doing);
            if self.abort {
                return Err(EngineError::Aborted);
            }
        }
        Ok(())
    }

    /// Waits before `phase` for the operator's Proceed. Other commands still work meanwhile:
    /// an abort ends the run (resumable; the next run asks again), a pause is recorded and
    /// takes effect once the operator has proceeded, batch sizes are applied. The gate counts
    /// for this run only: nothing is recorded, so a run that stops before `phase` is done asks
    /// again.
    async fn wait_at_gate(&mut self, phase: Phase) -> Result<(), EngineError> {
        // Whatever came before the gate was reached (a Proceed among it) is applied or dropped
        // now, before the gate opens for a Proceed.
        self.drain_commands();
        if self.abort {
            return Err(EngineError::Aborted);
        }
        let lock = self
            .target
            .render(&self.plan)
            .iter()
            .find(|p| p.phase == phase)
            .map_or_else(|| "no table lock".to_string(), |p| p.lock_summary());
        self.gate = Some(phase);
        self.set_state(|s| {
            s.status = Status::Gate;
            s.gate = Some(phase);
        });
        self.emit(EventKind::GateReached { phase, lock });
        let doing = self.guard.activity();
        self.guard_activity(Activity::Idle);
        let mut proceeded = false;
        while !proceeded && !self.abort {
            match self.commands.recv().await {
                Some(Command::Proceed) => {
                    tracing::info!(%phase, "operator command: proceed past the gate");
                    proceeded = true;
                }
                Some(c) => self.apply(c),
                None => {
                    // Nobody can proceed any more: stop, resumable, rather than hang.
                    self.commands_open = false;
                    self.abort = true;
                }
            }
        }
        self.gate = None;
        self.guard_activity(doing);
        let status = self.running_status();
        self.set_state(|s| {
            s.status = status;
            s.gate = None;
        });
        if self.abort {
            return Err(EngineError::Aborted);
        }
        self.emit(EventKind::GateProceeded { phase });
        Ok(())
    }

    /// Sleeps, still taking commands; an abort cuts the sleep short.
    async fn sleep(&mut self, d: Duration) -> Result<(), EngineError> {
        let sleep = self.clock.sleep(d);
        tokio::pin!(sleep);
        loop {
            if !self.commands_open {
                sleep.as_mut().await;
                break;
            }
            tokio::select! {
                biased;
                c = self.commands.recv() => match c {
                    Some(c) => {
                        self.apply(c);
                        if self.abort {
                            return Err(EngineError::Aborted);
                        }
                    }
                    None => self.commands_open = false,
                },
                _ = sleep.as_mut() => break,
            }
        }
        Ok(())
    }

    /// The backfill: keyset batches from the checkpoint to the end of the range.
    async fn backfill(&mut self) -> Result<(), EngineError> {
        let start = self
            .with_recovery("fixing the backfill range", |t, _| {
                Box::pin(t.backfill_start())
            })
            .await?;
        self.emit(EventKind::BackfillRange {
            after: start.after.clone(),
            end: start.end.clone(),
            rows_done: start.rows_done,
            rows_total: start.rows_total,
        });
        let Some(end) = start.end else {
            return Ok(()); // the table was empty when the backfill began
        };
        let mut after: Option<Key> = start.after;
        let mut progress = Progress::new(self.clock.now(), start.rows_done, start.rows_total);
        let mut batch_no = self
            .with_recovery("reading the checkpoint", |t, _| Box::pin(t.load_job()))
            .await?
            .map_or(0, |j| j.batches);
        self.set_state(|s| {
            s.rows_done = progress.rows_done;
            s.rows_total = progress.total();
            s.checkpoint = after.clone();
        });
        let mut lock_budget = self.lock_budget();
        if self.target.probe_log().is_none() {
            self.guard
                .unavailable("this target has no foreground probe");
        } else {
            let view = self.guard.view();
            self.set_state(|s| s.foreground = Some(view));
        }
        while after.as_ref() != Some(&end) {
            // A pause or a throttle at this boundary is left out of the rates and the ETA.
            let boundary = self.clock.now();
            let stops = self.stops;
            self.check_boundary().await?;
            self.throttle_wait().await?;
            self.guard_wait().await?;
            if self.stops != stops {
                progress.stop(boundary);
                progress.go(self.clock.now());
            }
            self.guard_activity(Activity::Backfill);
            if std::mem::take(&mut self.speed_changed) {
                progress.speed_changed(self.clock.now());
            }
            let size = self.guard.pacing().batch_size(self.batch_size);
            let t0 = self.clock.now();
            match self.target.run_batch(after.as_ref(), &end, size).await {
                Ok(batch) => {
                    lock_budget = self.lock_budget();
                    let now = self.clock.now();
                    batch_no += 1;
                    self.boundaries_since_lag = self.boundaries_since_lag.saturating_add(1);
                    progress.record(now, batch.keys);
                    let eta = progress.eta().map(|d| d.as_secs());
                    let status = self.running_status();
                    self.set_state(|s| {
                        s.status = status;
                        s.rows_done = progress.rows_done;
                        s.rows_total = progress.total();
                        s.rows_per_s = progress.rate_now();
                        s.avg_rows_per_s = progress.rate_avg(now);
                        s.eta_s = eta;
                        s.checkpoint = Some(batch.range.hi.clone());
                    });
                    self.emit(EventKind::BatchDone {
                        batch: batch_no,
                        lo: batch.range.lo.clone(),
                        hi: batch.range.hi.clone(),
                        keys: batch.keys,
                        rows_updated: batch.rows_updated,
                        duration_ms: elapsed_ms(now, t0),
                        rows_done: progress.rows_done,
                        rows_total: progress.total(),
                        rows_per_s: progress.rate_now(),
                        avg_rows_per_s: progress.rate_avg(now),
                        batch_size: size,
                        eta_s: eta,
                    });
                    after = Some(batch.range.hi);
                    if batch.last {
                        break;
                    }
                    let took = now.saturating_duration_since(t0);
                    if let Some(resize) = self.sizer.after_batch(batch.keys, took) {
                        self.resized(resize, SizeSource::Adaptive, false);
                    }
                    self.pace_after_batch();
                    let rest = self.guard.pacing().rest_after(took) + self.plan.backfill.pause;
                    if !rest.is_zero() {
                        self.sleep(rest).await?;
                    }
                }
                Err(TargetError::StatementTimeout(detail)) => {
                    let resize = self.sizer.after_timeout();
                    self.emit(EventKind::BatchTimeout {
                        from: size,
                        to: resize.to,
                        detail: detail.clone(),
                    });
                    if resize.to == size {
                        return Err(EngineError::Failed(format!(
                            "a batch of {} reached batch_timeout ({}) and cannot be made smaller: \
                             {detail}. Something blocks or slows every update of the table; look at \
                             its triggers and locks.",
                            if size == 1 {
                                "a single row".to_string()
                            } else {
                                format!("{size} rows (min_batch_size)")
                            },
                            humantime::format_duration(self.plan.safety.batch_timeout)
                        )));
                    }
                    self.resized(resize, SizeSource::Timeout, false);
                }
                Err(e) => {
                    // Waiting for a lock or a reconnect is not running time either.
                    progress.stop(self.clock.now());
                    self.set_state(|s| {
                        s.rows_per_s = 0.0;
                        s.eta_s = None;
                    });
                    self.recover(e, "backfill batch", &mut lock_budget).await?;
                    progress.go(self.clock.now());
                    // Whatever happened, the database knows where the checkpoint is (a commit
                    // may or may not have landed before the connection dropped).
                    let job = self
                        .with_recovery("reading the checkpoint", |t, _| Box::pin(t.load_job()))
                        .await?
                        .ok_or_else(|| {
                            EngineError::Failed("the migration's state row disappeared".into())
                        })?;
                    if job.last_key != after {
                        progress.record(
                            self.clock.now(),
                            job.rows_done.saturating_sub(progress.rows_done),
                        );
                        batch_no = job.batches;
                    }
                    after = job.last_key;
                }
            }
        }
        // The backfill is over: no rate now, the average stays.
        self.guard_activity(Activity::Other);
        let avg = progress.rate_avg(self.clock.now());
        self.set_state(|s| {
            s.rows_per_s = 0.0;
            s.eta_s = Some(0);
            s.avg_rows_per_s = avg;
        });
        Ok(())
    }

    /// Feeds the guard the probes taken since the last call.
    fn feed_guard(&mut self) {
        if let Some(log) = self.target.probe_log() {
            let samples = log.since(&mut self.probe_cursor);
            self.guard.observe(&samples);
            self.probe = Some(log);
        }
    }

    /// Notes what the engine does from now on (the probes taken before count as what it did).
    fn guard_activity(&mut self, activity: Activity) {
        self.feed_guard();
        self.guard.set_activity(self.clock.now(), activity);
    }

    /// After a batch: the guard judges the probes taken under the current pacing.
    fn pace_after_batch(&mut self) {
        if self.guard.bound().is_none() {
            return;
        }
        self.feed_guard();
        if let Some(change) = self.guard.adjust(self.batch_size) {
            self.speed_changed = true;
            self.emit(EventKind::PacingChanged {
                from_duty: change.from.duty,
                duty: change.to.duty,
                from_batch_cap: change.from.batch_cap,
                batch_cap: change.to.batch_cap,
                reason: change.reason,
            });
        }
        let view = self.guard.view();
        self.set_state(|s| s.foreground = Some(view));
    }

    /// The state while batches wait at a boundary: throttled, why, no rate and no ETA.
    fn show_throttled(&self, why: String) {
        self.set_state(|s| {
            s.status = Status::Throttled;
            s.throttle = Some(why);
            s.rows_per_s = 0.0;
            s.eta_s = None;
        });
    }

    /// Waits at a batch boundary while the foreground guard measures its baseline or its probe
    /// does not answer (fail closed); commands still work.
    async fn guard_wait(&mut self) -> Result<(), EngineError> {
        let mut waiting_since: Option<Instant> = None;
        let mut held = false;
        let mut measured = false;
        loop {
            self.feed_guard();
            let now = self.clock.now();
            let check = self.guard.check(now);
            if let Some(log) = &self.probe {
                log.set_measuring(matches!(check, Check::Measure { .. }));
            }
            let text = match check {
                Check::Go => {
                    if let Some(since) = waiting_since {
                        let waited_ms = elapsed_ms(now, since);
                        if measured && let Some(p99) = self.guard.baseline_p99() {
                            self.emit(EventKind::ForegroundBaseline {
                                p99_ms: p99.as_secs_f64() * 1000.0,
                                probes: guard::BASELINE_KEEP.min(self.guard.baseline_len()),
                                waited_ms,
                            });
                        }
                        if held {
                            self.emit(EventKind::Unthrottled {
                                after_ms: waited_ms,
                            });
                        }
                        let status = self.running_status();
                        let view = self.guard.view();
                        self.set_state(|s| {
                            s.status = status;
                            s.throttle = None;
                            s.foreground = Some(view);
                        });
                    }
                    return Ok(());
                }
                Check::Measure { have, need } => {
                    measured = true;
                    format!("measuring the foreground's baseline ({have} of {need} probes)")
                }
                Check::Hold(why) => {
                    if !held {
                        held = true;
                        self.emit(EventKind::Throttled {
                            reasons: vec![throttle::Reason {
                                signal: "foreground probe".into(),
                                value: why.clone(),
                                limit: String::new(),
                            }],
                        });
                    }
                    why
                }
            };
            if waiting_since.is_none() {
                waiting_since = Some(now);
                self.stops += 1;
                self.guard_activity(Activity::Idle);
            }
            self.show_throttled(text);
            self.sleep(GUARD_POLL).await?;
            self.check_boundary().await?;
        }
    }

    /// The latest signals: the sampler's, the throttle file, and the throttle query (at most
    /// once per poll interval, on another session).
    async fn signals(&mut self) -> Signals {
        let mut s = self.signals.as_ref().map(|f| f()).unwrap_or_default();
        let config = self.throttle.config().clone();
        if let Some(path) = &config.throttle_file {
            s.file_exists = path.exists();
        }
        if config.max_replication_lag.is_some() {
            let now = self.clock.now();
            let limit = config.max_replication_lag.unwrap_or_default();
            if lag_due(self.last_lag.as_ref(), now, limit) {
                let readings = match self.target.replica_lags().await {
                    Ok(mut readings) => {
                        if let Some((at, Some(before))) = &self.last_lag
                            && self.boundaries_since_lag == 1
                            && now.saturating_duration_since(*at) <= STEP_WITHIN
                        {
                            annotate_steps(before, &mut readings);
                        }
                        Some(readings)
                    }
                    Err(e) => {
                        tracing::warn!("reading the replicas' positions failed: {e}");
                        None
                    }
                };
                self.last_lag = Some((now, readings));
                self.boundaries_since_lag = 0;
            }
            s.replicas = self.last_lag.as_ref().and_then(|(_, r)| r.clone());
        }
        if let Some(sql) = &config.throttle_query {
            let now = self.clock.now();
            if due(
                self.last_query.as_ref().map(|(at, _)| *at),
                now,
                THROTTLE_POLL,
            ) {
                let value = self
                    .target
                    .throttle_query(sql)
                    .await
                    .map_err(|e| e.to_string());
                self.last_query = Some((now, value));
            }
            s.query = self.last_query.as_ref().map(|(_, v)| v.clone());
        }
        s
    }

    /// Waits at a batch boundary while a health signal is over its limit (commands still work).
    async fn throttle_wait(&mut self) -> Result<(), EngineError> {
        if !self.throttle.config().any() {
            return Ok(());
        }
        loop {
            let signals = self.signals().await;
            match self.throttle.evaluate(self.clock.now(), &signals) {
                Verdict::Go => {
                    if let Some(since) = self.throttled_since.take() {
                        let after_ms = elapsed_ms(self.clock.now(), since);
                        let status = self.running_status();
                        self.set_state(|s| {
                            s.status = status;
                            s.throttle = None;
                        });
                        self.emit(EventKind::Unthrottled { after_ms });
                    }
                    return Ok(());
                }
                Verdict::Wait(reasons) => {
                    let text = reasons
                        .iter()
                        .map(throttle::Reason::short)
                        .collect::<Vec<_>>()
                        .join("; ");
                    if self.throttled_since.is_none() {
                        self.throttled_since = Some(self.clock.now());
                        self.stops += 1;
                        self.guard_activity(Activity::Idle);
                        self.emit(EventKind::Throttled { reasons });
                    }
                    self.show_throttled(text);
                    self.sleep(THROTTLE_POLL).await?;
                    self.check_boundary().await?;
                }
            }
        }
    }

    /// Verification in key chunks over the whole table (rows added since are included).
    async fn verify(&mut self) -> Result<(), EngineError> {
        let mut after: Option<VerifyCursor> = None;
        let mut checked = 0u64;
        let chunk = self.plan.backfill.batch_size.max(10_000);
        loop {
            self.check_boundary().await?;
            let from = after.clone();
            let result = self
                .with_recovery("verifying", |t, _| {
                    let from = from.clone();
                    Box::pin(async move { t.verify_chunk(from.as_ref(), chunk).await })
                })
                .await?;
            checked += result.rows;
            self.emit(EventKind::VerifyProgress {
                rows_checked: checked,
                up_to: result.next.clone(),
            });
            match result.next {
                Some(next) => after = Some(next),
                None => return Ok(()),
            }
        }
    }
}

/// Now, in milliseconds since the Unix epoch (for the state's wall-clock times).
fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Whether a reading last taken at `last` (if ever) should be taken again at `now`.
fn due(last: Option<Instant>, now: Instant, every: Duration) -> bool {
    last.is_none_or(|at| now.saturating_duration_since(at) >= every)
}

/// Sets each reading's `step_s`: how much its lag grew since `before` (the same replica, read at
/// the previous batch boundary).
fn annotate_steps(before: &[throttle::ReplicaReading], now: &mut [throttle::ReplicaReading]) {
    for r in now.iter_mut() {
        r.step_s = before
            .iter()
            .find(|b| b.name == r.name)
            .and_then(|b| Some(r.lag_s? - b.lag_s?))
            .filter(|s| s.is_finite());
    }
}

/// Whether the replicas are read at this boundary: every [`LAG_POLL`], and at every boundary
/// while the last reading was near `limit`, could not be taken, or had a backlog it could not
/// forecast yet (the first batches, before a replica's apply rate is known).
fn lag_due(
    last: Option<&(Instant, Option<Vec<throttle::ReplicaReading>>)>,
    now: Instant,
    limit: Duration,
) -> bool {
    let Some((at, readings)) = last else {
        return true;
    };
    let near = match readings {
        None => true,
        Some(list) => list.iter().any(|r| {
            r.warming
                || r.lag_s
                    .is_none_or(|lag| lag >= LAG_NEAR * limit.as_secs_f64())
        }),
    };
    near || due(Some(*at), now, LAG_POLL)
}

fn elapsed_ms(now: Instant, since: Instant) -> u64 {
    now.saturating_duration_since(since).as_millis() as u64
}

#[cfg(test)]
mod tests;
