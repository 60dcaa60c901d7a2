//! What the interface remembers of the engine's events, and how it builds the view model from
//! that, the engine's state, the sampled metrics and its own state.

use std::collections::VecDeque;
use std::time::Duration;

use super::app::{App, EngineMode, GateAt};
use super::keymap;
use super::view::{
    DbView, HostView, Level, LogLine, PhaseRow, PhaseStatus, ProgressView, StatusView, StepView,
    ViewModel,
};
use crate::engine::{Event, EventKind, SizeSource, State, Status};
use crate::headless::human_line;
use crate::plan::{Hold, Phase, PhasePlan, Severity, Step};

/// Event-log lines kept.
const LOG_LINES: usize = 2000;
/// Batch durations kept for percentiles.
const BATCH_DURATIONS: usize = 200;

/// The interface's memory of the run.
#[derive(Debug, Clone)]
pub struct Model {
    /// Target as shown (no password).
    pub target: String,
    /// Table.
    pub table: String,
    /// Column.
    pub column: String,
    plan: Vec<PhasePlan>,
    failed_phase: Option<Phase>,
    log: VecDeque<LogLine>,
    batch_ms: VecDeque<f64>,
    batch_size_source: String,
    /// The batch size was last cut by a batch that timed out.
    batch_size_cut: bool,
    /// The plan's throttle limits.
    pub limits: crate::tui::view::Limits,
    /// What the target's family calls the database figures.
    pub words: crate::target::family::FigureWords,
    operator_holds_batch_size: bool,
}

impl Model {
    /// A model before any event.
    pub fn new(target: String, table: String, column: String) -> Model {
        Model {
            target,
            table,
            column,
            plan: Vec::new(),
            failed_phase: None,
            log: VecDeque::new(),
            batch_ms: VecDeque::new(),
            batch_size_source: "plan".into(),
            batch_size_cut: false,
            limits: Default::default(),
            words: Default::default(),
            operator_holds_batch_size: false,
        }
    }

    /// Adds a line to the event log.
    pub fn log(&mut self, time: String, level: Level, text: String) {
        if self.log.len() == LOG_LINES {
            self.log.pop_front();
        }
        self.log.push_back(LogLine { time, level, text });
    }

    /// Whether the batch size is the operator's (set by an operator, not handed back yet).
    pub fn operator_holds_batch_size(&self) -> bool {
        self.operator_holds_batch_size
    }

    /// The event log, oldest first.
    pub fn log_lines(&self) -> Vec<LogLine> {
        self.log.iter().cloned().collect()
    }

    /// Takes in one engine event.
    pub fn on_event(&mut self, event: &Event) {
        let time = event.ts.get(11..19).unwrap_or("").to_string();
        match &event.kind {
            EventKind::Started { table, .. } => self.table = table.clone(),
            EventKind::Planned { plan } => self.plan = plan.clone(),
            EventKind::BatchDone { duration_ms, .. } => {
                if self.batch_ms.len() == BATCH_DURATIONS {
                    self.batch_ms.pop_front();
                }
                self.batch_ms.push_back(*duration_ms as f64);
                return; // the progress panel shows batches; the log would drown in them
            }
            EventKind::VerifyProgress { .. } => return,
            EventKind::BatchSizeChanged {
                reason,
                by,
                routine,
                ..
            } => {
                self.batch_size_source = reason.clone();
                self.batch_size_cut = *by == SizeSource::Timeout;
                match by {
                    SizeSource::Operator => self.operator_holds_batch_size = true,
                    SizeSource::Adaptive if !routine => self.operator_holds_batch_size = false,
                    _ => {}
                }
            }
            EventKind::Failed { phase, .. } => self.failed_phase = *phase,
            _ => {}
        }
        let level = match &event.kind {
            EventKind::Failed { .. } => Level::Error,
            EventKind::Finding { severity, .. } => match severity {
                Severity::Info => Level::Info,
                Severity::Warning => Level::Warn,
            },
            EventKind::LockTimeout { .. }
            | EventKind::Waiting { .. }
            | EventKind::BatchTimeout { .. }
            | EventKind::ConnectionLost { .. }
            | EventKind::Throttled { .. }
            | EventKind::AbortRequested
            | EventKind::GateReached { .. }
            | EventKind::Aborted { .. } => Level::Warn,
            _ => Level::Info,
        };
        let text = match &event.kind {
            EventKind::Failed { phase, error } => format!(
                "FAILED{}: {error}",
                phase.map(|p| format!(" during {p}")).unwrap_or_default()
            ),
            EventKind::GateReached { phase, lock } => {
                let key = keymap::key_for(keymap::Action::Proceed).unwrap_or("g");
                format!("gate before {phase}: press {key} to proceed (takes {lock})")
            }
            kind => match human_line(kind) {
                Some(t) => t,
                None => return,
            },
        };
        self.log(time, level, text);
    }

    /// The gate the engine waits at, with the locks of the phase behind it (from the plan the
    /// engine announced), or None when no gate waits.
    pub fn gate(&self, state: &State) -> Option<GateAt> {
        if state.status != Status::Gate {
            return None;
        }
        let phase = state.gate.or(state.phase)?;
        let lock = self
            .plan
            .iter()
            .find(|p| p.phase == phase)
            .map_or_else(|| "no table lock".to_string(), |p| p.lock_summary());
        Some(GateAt {
            phase,
            lock,
            warning: None,
        })
    }

    /// Batch duration percentile (0–100) over recent batches.
    fn batch_percentile(&self, p: f64) -> Option<f64> {
        if self.batch_ms.is_empty() {
            return None;
        }
        let mut v: Vec<f64> = self.batch_ms.iter().copied().collect();
        v.sort_by(|a, b| a.total_cmp(b));
        let rank = ((p / 100.0) * (v.len() - 1) as f64).round() as usize;
        Some(v[rank.min(v.len() - 1)])
    }

    /// Builds the view model (without the sampled parts, which the caller fills in).
    pub fn view(&self, state: &State, app: &App, elapsed: Duration, braille: bool) -> ViewModel {
        let status = match state.status {
            Status::Preflight => StatusView::Preflight,
            Status::Running => StatusView::Running,
            Status::Pausing => StatusView::Pausing,
            Status::Paused => StatusView::Paused,
            Status::WaitingForLock => {
                StatusView::WaitingForLock(state.blockers.iter().map(|b| b.pid).collect())
            }
            Status::Reconnecting => StatusView::Reconnecting,
            Status::Gate => match state.gate.or(state.phase) {
                Some(phase) => StatusView::Gate(phase),
                None => StatusView::Running,
            },
            Status::Throttled => StatusView::Throttled(state.throttle.clone().unwrap_or_default()),
            Status::Done => StatusView::Done,
            Status::Failed => StatusView::Failed(state.error.clone().unwrap_or_default()),
            Status::Aborted => StatusView::Aborted,
        };
        let phases = self
            .plan
            .iter()
            .map(|p| PhaseRow {
                phase: p.phase,
                status: if state.phases_done.contains(&p.phase) {
                    PhaseStatus::Done
                } else if self.failed_phase == Some(p.phase) {
                    PhaseStatus::Failed
                } else if state.phase == Some(p.phase)
                    && !matches!(state.status, Status::Done | Status::Gate)
                {
                    // A gated phase has not started while its gate waits.
                    PhaseStatus::Running
                } else if p.phase == Phase::Preflight && state.status != Status::Preflight {
                    PhaseStatus::Done
                } else {
                    PhaseStatus::Pending
                },
                summary: p.summary.clone(),
                steps: step_views(&p.steps),
            })
            .collect();
        let (batch_size, batch_size_source) = match app.pending_batch {
            Some(n) if n != state.batch_size => (n, "operator: from the next batch".to_string()),
            _ => (state.batch_size, self.batch_size_source.clone()),
        };
        ViewModel {
            target: self.target.clone(),
            table: self.table.clone(),
            column: self.column.clone(),
            phase: state.phase,
            status,
            elapsed,
            phases,
            selected_phase: if app.follow_phase {
                self.plan
                    .iter()
                    .position(|p| Some(p.phase) == state.phase)
                    .unwrap_or(app.selected_phase)
            } else {
                app.selected_phase
            },
            progress: ProgressView {
                rows_done: state.rows_done,
                rows_total: state.rows_total,
                rows_per_s: state.rows_per_s,
                avg_rows_per_s: state.avg_rows_per_s,
                eta: state.eta_s.map(Duration::from_secs),
                pace: state.pace(),
                batch_size,
                batch_size_source,
                batch_size_cut: self.batch_size_cut && app.pending_batch.is_none(),
                batch_p50_ms: self.batch_percentile(50.0),
                batch_p95_ms: self.batch_percentile(95.0),
                checkpoint: state.checkpoint.as_ref().map(|k| k.to_string()),
                foreground: state.foreground.clone(),
            },
            charts: Vec::new(),
            window_secs: app.window_secs(),
            blockers: state.blockers.clone(),
            db: DbView {
                limits: self.limits,
                words: self.words,
                ..DbView::default()
            },
            host: HostView::default(),
            log: self.log.iter().cloned().collect(),
            log_scroll: app.log_scroll,
            popup: app.popup.clone(),
            keys: keymap::help(),
            braille,
            companion_status: None,
        }
    }
}

/// The engine's state as the keys see it.
pub fn engine_mode(status: Status) -> EngineMode {
    match status {
        Status::Paused | Status::Pausing => EngineMode::Paused,
        Status::Done | Status::Failed | Status::Aborted => EngineMode::Finished,
        _ => EngineMode::Running,
    }
}

/// A phase's statements as the plan panel shows them.
pub(crate) fn step_views(steps: &[Step]) -> Vec<StepView> {
    steps
        .iter()
        .map(|s| StepView {
            title: s.title.clone(),
            sql: s.sql.clone(),
            lock: lock_words(&s.lock, s.hold),
        })
        .collect()
}

fn lock_words(lock: &str, hold: Hold) -> String {
    if lock.is_empty() {
        return "no table lock".into();
    }
    format!("{lock}{}", hold.suffix())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(lock: &str, hold: Hold) -> Step {
        Step {
            title: String::new(),
            sql: String::new(),
            lock: lock.into(),
            hold,
            rewrites: false,
            scans: false,
            note: String::new(),
            replicas: String::new(),
        }
    }

    fn event(kind: EventKind) -> Event {
        Event {
            ts: "2025-01-01T13:52:40.000Z".into(),
            job: "public.orders.amount".into(),
            kind,
        }
    }

    fn state(status: Status, gate: Option<Phase>) -> State {
        State {
            phase: Some(Phase::NotNull),
            status,
            phases_done: vec![Phase::AddColumn],
            gate,
            ..State::starting("public.orders.amount".into(), 5000)
        }
    }

    /// A model that has seen the plan (add_column, not_null) and a gate before not_null.
    fn model_at_gate() -> Model {
        let mut model = Model::new("db".into(), "public.orders".into(), "amount".into());
        let phase = |phase, steps| PhasePlan {
            phase,
            summary: String::new(),
            steps,
        };
        let not_null = phase(
            Phase::NotNull,
            vec![
                step("ACCESS EXCLUSIVE", Hold::Brief),
                step("SHARE UPDATE EXCLUSIVE", Hold::Long),
                step("ACCESS EXCLUSIVE", Hold::Brief),
            ],
        );
        let lock = not_null.lock_summary();
        model.on_event(&event(EventKind::Planned {
            plan: vec![
                phase(
                    Phase::AddColumn,
                    vec![step("ACCESS EXCLUSIVE", Hold::Brief)],
                ),
                not_null,
            ],
        }));
        model.on_event(&event(EventKind::GateReached {
            phase: Phase::NotNull,
            lock,
        }));
        model
    }

    #[test]
    fn a_gate_in_the_engine_state_is_the_gate_status_and_its_phase_has_not_started() {
        let model = model_at_gate();
        let app = App::new(2, 5000);
        let view = model.view(
            &state(Status::Gate, Some(Phase::NotNull)),
            &app,
            Duration::ZERO,
            true,
        );
        assert_eq!(view.status, StatusView::Gate(Phase::NotNull));
        let statuses: Vec<PhaseStatus> = view.phases.iter().map(|p| p.status).collect();
        assert_eq!(statuses, vec![PhaseStatus::Done, PhaseStatus::Pending]);

        let view = model.view(&state(Status::Running, None), &app, Duration::ZERO, true);
        assert_eq!(view.status, StatusView::Running);
        assert_eq!(view.phases[1].status, PhaseStatus::Running);
    }

    #[test]
    fn the_gate_for_the_keys_names_the_locks_of_the_phase_it_holds_back() {
        let model = model_at_gate();
        assert_eq!(
            model.gate(&state(Status::Gate, Some(Phase::NotNull))),
            Some(GateAt {
                phase: Phase::NotNull,
                lock: "ACCESS EXCLUSIVE briefly; SHARE UPDATE EXCLUSIVE for the whole statement"
                    .into(),
                warning: None,
            })
        );
        assert_eq!(model.gate(&state(Status::Running, None)), None);
        assert_eq!(model.gate(&state(Status::Paused, None)), None);
    }

    #[test]
    fn a_size_cut_by_a_timeout_is_marked_by_who_cut_it_not_by_its_words() {
        let mut model = model_at_gate();
        let app = App::new(2, 5000);
        let changed = |by, reason: &str| {
            event(EventKind::BatchSizeChanged {
                from: 5000,
                to: 2500,
                by,
                reason: reason.into(),
                routine: false,
            })
        };
        model.on_event(&changed(SizeSource::Timeout, "halved after a slow batch"));
        let view = model.view(&state(Status::Running, None), &app, Duration::ZERO, true);
        assert!(view.progress.batch_size_cut);
        // Words that mention a timeout do not make it one.
        model.on_event(&changed(SizeSource::Adaptive, "adaptive: timeout budget"));
        let view = model.view(&state(Status::Running, None), &app, Duration::ZERO, true);
        assert!(!view.progress.batch_size_cut);
    }

    #[test]
    fn reaching_and_passing_a_gate_are_logged() {
        let mut model = model_at_gate();
        model.on_event(&event(EventKind::GateProceeded {
            phase: Phase::NotNull,
        }));
        let log = model.log_lines();
        assert_eq!(log.len(), 2);
        assert_eq!(log[0].level, Level::Warn, "a waiting gate stands out");
        assert_eq!(
            log[0].text,
            "gate before not_null: press g to proceed (takes ACCESS EXCLUSIVE briefly; SHARE \
             UPDATE EXCLUSIVE for the whole statement)"
        );
        assert_eq!(log[1].text, "gate: the operator proceeded; not_null starts");
    }
}
