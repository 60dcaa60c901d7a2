//! The interface's own state (popups, selection, scroll, zoom) and what keys do to it.
//! Pure: keys in, engine commands out; tested with scripted key sequences.

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

use super::keymap::{Action, action_for};
use super::view::Popup;
use crate::engine::Command;
use crate::format::thousands;
use crate::plan::{MAX_BATCH_SIZE, MIN_BATCH_SIZE, Phase};

/// Chart windows the operator can zoom between, in seconds.
pub const WINDOWS: [u64; 3] = [60, 300, 900];

/// Lines the log scrolls per page.
const LOG_PAGE: usize = 10;

/// A question waiting for y/n.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Question {
    /// Quit where the migration cannot go on without this process (`pacer demo`): stops it
    /// at the next batch boundary unless it has `finished`.
    Quit {
        /// The migration had ended when the question was asked.
        finished: bool,
    },
    /// Abort the migration.
    Abort,
    /// Proceed past the gate before this phase.
    Proceed(Phase),
}

/// The gate the engine waits at, as the keys see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GateAt {
    /// The phase the gate holds back.
    pub phase: Phase,
    /// The table locks that phase takes, in words.
    pub lock: String,
    /// What the program around the migration warns of before passing it, if anything.
    pub warning: Option<String>,
}

/// The quit question of a program that does more than stop the migration when it quits
/// (`pacer demo` deletes its servers and data): while the migration runs, and after.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuitQuestions {
    /// Asked while the migration runs.
    pub running: String,
    /// Asked once it has finished (done, failed or aborted).
    pub finished: String,
}

impl Question {
    fn text(self, gate: Option<&GateAt>, quit: Option<&QuitQuestions>) -> String {
        match self {
            Question::Proceed(phase) => {
                let mut text = format!(
                    "Proceed to {phase}? It takes {}.",
                    gate.map_or("the locks `pacer plan` shows", |g| g.lock.as_str())
                );
                if let Some(warning) = gate.and_then(|g| g.warning.as_deref()) {
                    text.push_str(&format!(" Warning: {warning}"));
                }
                text
            }
            Question::Quit { finished } => match quit {
                Some(q) if finished => q.finished.clone(),
                Some(q) => q.running.clone(),
                None => "Quit? The migration stops at the next batch boundary and stays \
                         resumable (run the same command again to go on)."
                    .into(),
            },
            Question::Abort => "Abort the migration? It stops at the next batch boundary; \
                                everything stays resumable."
                .into(),
        }
    }
}

/// What the engine is doing, as far as keys care.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EngineMode {
    /// Working (or waiting for a lock, reconnecting …).
    Running,
    /// Paused, or pausing at the next boundary.
    Paused,
    /// Finished, failed or aborted: nothing more will happen.
    Finished,
}

/// The interface's state.
#[derive(Debug, Clone)]
pub struct App {
    /// Popup shown.
    pub popup: Option<Popup>,
    question: Option<Question>,
    /// Selected phase (plan panel).
    pub selected_phase: usize,
    /// The selection follows the running phase until the operator moves it.
    pub follow_phase: bool,
    /// Number of phases (bounds the selection).
    pub phase_count: usize,
    /// Log lines scrolled up from the end.
    pub log_scroll: usize,
    /// Index into [`WINDOWS`].
    pub window: usize,
    /// Batch size as the operator last set it or the engine last reported it (base of +/-).
    pub batch_size: u64,
    /// A size the operator set that the engine has not applied yet (shown at once).
    pub pending_batch: Option<u64>,
    /// The operator asked to quit; the loop exits once the engine has stopped.
    pub quit_requested: bool,
    /// The migration runs in another process: leaving may detach from it.
    pub detachable: bool,
    /// The operator chose to detach: the loop exits now, the migration goes on.
    pub detach_requested: bool,
    /// The gate the engine waits at, if any (kept current by the loop before every key).
    pub gate: Option<GateAt>,
    /// Lines for the event log about keys that did nothing (the loop takes them).
    pub notes: Vec<String>,
    /// Quitting does more than stop the migration: `q` asks this, in every state.
    pub quit_questions: Option<QuitQuestions>,
    /// The foreground guard as the engine last reported it: on or off (None: no probe).
    pub foreground_on: Option<bool>,
    /// The bound `f` turns the guard back on with (the last one seen on, else 1.5x).
    pub foreground_bound: crate::plan::ImpactBound,
}

impl App {
    /// Fresh interface state.
    pub fn new(phase_count: usize, batch_size: u64) -> App {
        App {
            popup: None,
            question: None,
            selected_phase: 0,
            follow_phase: true,
            phase_count,
            log_scroll: 0,
            window: 0,
            batch_size,
            pending_batch: None,
            quit_requested: false,
            detachable: false,
            detach_requested: false,
            gate: None,
            notes: Vec::new(),
            quit_questions: None,
            foreground_on: None,
            foreground_bound: crate::plan::ImpactBound::DEFAULT,
        }
    }

    /// Follows the foreground guard the engine reports (for `f`).
    pub fn sync_foreground(&mut self, view: Option<&crate::engine::guard::ForegroundView>) {
        self.foreground_on = view.map(|v| v.on);
        if let Some(b) = view
            .filter(|v| v.on)
            .and_then(|v| crate::plan::ImpactBound::parse(&v.bound))
        {
            self.foreground_bound = b;
        }
    }

    /// The same, for a program whose quitting does more than stop the migration.
    pub fn with_quit_questions(mut self, questions: Option<QuitQuestions>) -> App {
        self.quit_questions = questions;
        self
    }

    /// The same, for a screen attached to a migration running in another process: `q` offers
    /// detach, abort or cancel.
    pub fn detachable(mut self) -> App {
        self.detachable = true;
        self
    }

    /// Follows the engine's batch size: clears a pending size once applied, and takes sizes the
    /// engine chose itself (a timeout halving it) as the new base.
    pub fn sync_batch_size(&mut self, engine: u64) {
        if self.pending_batch == Some(engine) {
            self.pending_batch = None;
        }
        if self.pending_batch.is_none() {
            self.batch_size = engine;
        }
    }

    /// The chart window in seconds.
    pub fn window_secs(&self) -> u64 {
        WINDOWS[self.window]
    }

    /// Handles one key; returns the commands to send to the engine.
    pub fn on_key(&mut self, key: KeyEvent, mode: EngineMode) -> Vec<Command> {
        match self.popup.clone() {
            Some(Popup::Confirm(_)) => self.on_confirm_key(key),
            Some(Popup::Leave) => self.on_leave_key(key),
            Some(Popup::BatchSize { input, .. }) => self.on_batch_key(key, input),
            Some(Popup::Help) => {
                if matches!(
                    key.code,
                    KeyCode::Esc | KeyCode::Char('?') | KeyCode::Char('q')
                ) {
                    self.popup = None;
                }
                Vec::new()
            }
            None => match action_for(&key) {
                Some(action) => self.on_action(action, mode),
                None => Vec::new(),
            },
        }
    }

    fn on_action(&mut self, action: Action, mode: EngineMode) -> Vec<Command> {
        match action {
            Action::TogglePause => match mode {
                EngineMode::Running => vec![Command::Pause],
                EngineMode::Paused => vec![Command::Resume],
                EngineMode::Finished => Vec::new(),
            },
            Action::BatchUp => self.set_batch(step_up(self.batch_size), mode),
            Action::BatchDown => self.set_batch(step_down(self.batch_size), mode),
            Action::ToggleForeground => match (mode, self.foreground_on) {
                (EngineMode::Finished, _) => Vec::new(),
                (_, Some(true)) => vec![Command::SetForegroundImpact(None)],
                (_, Some(false)) => vec![Command::SetForegroundImpact(Some(self.foreground_bound))],
                (_, None) => {
                    self.notes.push(
                        "f: no foreground guard yet (it starts with the backfill)".to_string(),
                    );
                    Vec::new()
                }
            },
            Action::BatchAuto => match mode {
                EngineMode::Finished => Vec::new(),
                _ => {
                    self.pending_batch = None;
                    vec![Command::AutoBatchSize]
                }
            },
            Action::BatchInput => {
                if mode != EngineMode::Finished {
                    self.popup = Some(Popup::BatchSize {
                        input: String::new(),
                        error: None,
                    });
                }
                Vec::new()
            }
            Action::Abort => {
                if mode != EngineMode::Finished {
                    self.ask(Question::Abort);
                }
                Vec::new()
            }
            Action::Proceed => {
                match &self.gate {
                    Some(gate) if mode != EngineMode::Finished => {
                        self.ask(Question::Proceed(gate.phase));
                    }
                    _ => self.notes.push(
                        "g: no gate is waiting (g proceeds when the header says GATE)".into(),
                    ),
                }
                Vec::new()
            }
            Action::Quit => {
                let finished = mode == EngineMode::Finished;
                if finished && self.quit_questions.is_none() {
                    self.quit_requested = true;
                } else if self.detachable && !finished {
                    self.popup = Some(Popup::Leave);
                } else {
                    self.ask(Question::Quit { finished });
                }
                Vec::new()
            }
            Action::Help => {
                self.popup = Some(Popup::Help);
                Vec::new()
            }
            Action::Close => Vec::new(),
            Action::Up => {
                self.follow_phase = false;
                self.selected_phase = self.selected_phase.saturating_sub(1);
                Vec::new()
            }
            Action::Down => {
                self.follow_phase = false;
                if self.selected_phase + 1 < self.phase_count {
                    self.selected_phase += 1;
                }
                Vec::new()
            }
            Action::LogUp => {
                self.log_scroll += LOG_PAGE;
                Vec::new()
            }
            Action::LogDown => {
                self.log_scroll = self.log_scroll.saturating_sub(LOG_PAGE);
                Vec::new()
            }
            Action::LogEnd => {
                self.log_scroll = 0;
                Vec::new()
            }
            Action::ZoomIn => {
                self.window = self.window.saturating_sub(1);
                Vec::new()
            }
            Action::ZoomOut => {
                self.window = (self.window + 1).min(WINDOWS.len() - 1);
                Vec::new()
            }
        }
    }

    fn ask(&mut self, question: Question) {
        self.question = Some(question);
        self.popup = Some(Popup::Confirm(
            question.text(self.gate.as_ref(), self.quit_questions.as_ref()),
        ));
    }

    fn on_confirm_key(&mut self, key: KeyEvent) -> Vec<Command> {
        let answer = match key.code {
            KeyCode::Char('y') | KeyCode::Char('Y') => true,
            KeyCode::Char('n') | KeyCode::Char('N') | KeyCode::Esc => false,
            _ => return Vec::new(),
        };
        self.popup = None;
        let question = self.question.take();
        if !answer {
            return Vec::new();
        }
        match question {
            Some(Question::Quit { finished }) => {
                self.quit_requested = true;
                if finished {
                    Vec::new()
                } else {
                    vec![Command::Abort]
                }
            }
            Some(Question::Abort) => vec![Command::Abort],
            // Only at the very gate the question named: a yes to an earlier gate must not pass
            // a later one.
            Some(Question::Proceed(phase)) => {
                if self.gate.as_ref().is_some_and(|g| g.phase == phase) {
                    vec![Command::Proceed]
                } else {
                    self.notes.push(format!(
                        "proceed not sent: the engine no longer waits at the gate before {phase}"
                    ));
                    Vec::new()
                }
            }
            None => Vec::new(),
        }
    }

    fn on_leave_key(&mut self, key: KeyEvent) -> Vec<Command> {
        match key.code {
            KeyCode::Char('d') | KeyCode::Char('D') => {
                self.popup = None;
                self.detach_requested = true;
                Vec::new()
            }
            KeyCode::Char('a') | KeyCode::Char('A') => {
                self.popup = None;
                self.quit_requested = true;
                vec![Command::Abort]
            }
            KeyCode::Char('c') | KeyCode::Char('C') | KeyCode::Char('n') | KeyCode::Esc => {
                self.popup = None;
                Vec::new()
            }
            _ => Vec::new(),
        }
    }

    fn on_batch_key(&mut self, key: KeyEvent, mut input: String) -> Vec<Command> {
        if key.modifiers.contains(KeyModifiers::CONTROL) {
            return Vec::new();
        }
        match key.code {
            KeyCode::Esc => {
                self.popup = None;
                Vec::new()
            }
            KeyCode::Backspace => {
                input.pop();
                self.popup = Some(Popup::BatchSize { input, error: None });
                Vec::new()
            }
            KeyCode::Char(c) if c.is_ascii_digit() || c == ',' || c == '_' => {
                if input.len() < 12 {
                    input.push(c);
                }
                self.popup = Some(Popup::BatchSize { input, error: None });
                Vec::new()
            }
            KeyCode::Enter => match parse_batch_size(&input) {
                Ok(n) => {
                    self.popup = None;
                    self.batch_size = n;
                    self.pending_batch = Some(n);
                    vec![Command::SetBatchSize(n)]
                }
                Err(error) => {
                    self.popup = Some(Popup::BatchSize {
                        input,
                        error: Some(error),
                    });
                    Vec::new()
                }
            },
            _ => Vec::new(),
        }
    }

    fn set_batch(&mut self, n: u64, mode: EngineMode) -> Vec<Command> {
        if mode == EngineMode::Finished || n == self.batch_size {
            return Vec::new();
        }
        self.batch_size = n;
        self.pending_batch = Some(n);
        vec![Command::SetBatchSize(n)]
    }
}

/// +25 %, at least +1, at most the maximum.
pub fn step_up(n: u64) -> u64 {
    (n + (n / 4).max(1)).min(MAX_BATCH_SIZE)
}

/// −20 % (the inverse of +25 %), at least −1, at least the minimum.
pub fn step_down(n: u64) -> u64 {
    n.saturating_sub((n / 5).max(1)).max(MIN_BATCH_SIZE)
}

/// Parses a typed batch size (`5000`, `5,000`, `5_000`) within bounds.
pub fn parse_batch_size(input: &str) -> Result<u64, String> {
    let digits: String = input.chars().filter(|c| c.is_ascii_digit()).collect();
    if digits.is_empty() {
        return Err("type a number of rows".into());
    }
    match digits.parse::<u64>() {
        Ok(n) if (MIN_BATCH_SIZE..=MAX_BATCH_SIZE).contains(&n) => Ok(n),
        _ => Err(format!(
            "use {} to {} rows",
            thousands(MIN_BATCH_SIZE),
            thousands(MAX_BATCH_SIZE)
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(c: char) -> KeyEvent {
        KeyEvent::new(KeyCode::Char(c), KeyModifiers::NONE)
    }

    fn code(c: KeyCode) -> KeyEvent {
        KeyEvent::new(c, KeyModifiers::NONE)
    }

    /// Feeds keys; returns every command sent.
    fn script(app: &mut App, mode: EngineMode, keys: &[KeyEvent]) -> Vec<Command> {
        keys.iter().flat_map(|k| app.on_key(*k, mode)).collect()
    }

    #[test]
    fn p_and_space_pause_when_running_and_resume_when_paused() {
        let mut app = App::new(8, 5000);
        assert_eq!(
            script(&mut app, EngineMode::Running, &[key('p')]),
            vec![Command::Pause]
        );
        assert_eq!(
            script(&mut app, EngineMode::Paused, &[key('p')]),
            vec![Command::Resume]
        );
        assert_eq!(
            script(&mut app, EngineMode::Running, &[key(' ')]),
            vec![Command::Pause]
        );
        assert_eq!(script(&mut app, EngineMode::Finished, &[key('p')]), vec![]);
    }

    #[test]
    fn plus_and_minus_step_the_batch_size_within_bounds() {
        let mut app = App::new(8, 5000);
        assert_eq!(
            script(
                &mut app,
                EngineMode::Running,
                &[key('+'), key('+'), key('-')]
            ),
            vec![
                Command::SetBatchSize(6250),
                Command::SetBatchSize(7812),
                Command::SetBatchSize(6250)
            ]
        );
        let mut app = App::new(8, 1);
        assert_eq!(script(&mut app, EngineMode::Running, &[key('-')]), vec![]);
        assert_eq!(
            script(&mut app, EngineMode::Running, &[key('+')]),
            vec![Command::SetBatchSize(2)]
        );
        let mut app = App::new(8, 999_999);
        assert_eq!(
            script(&mut app, EngineMode::Running, &[key('+'), key('+')]),
            vec![Command::SetBatchSize(1_000_000)]
        );
    }

    #[test]
    fn a_size_set_by_the_operator_shows_until_the_engine_applies_it() {
        let mut app = App::new(8, 5000);
        script(&mut app, EngineMode::Running, &[key('+')]);
        assert_eq!(app.pending_batch, Some(6250));
        app.sync_batch_size(5000);
        assert_eq!(
            (app.batch_size, app.pending_batch),
            (6250, Some(6250)),
            "not applied yet"
        );
        app.sync_batch_size(6250);
        assert_eq!((app.batch_size, app.pending_batch), (6250, None));
        app.sync_batch_size(3125);
        assert_eq!(app.batch_size, 3125, "the engine halved it after a timeout");
    }

    #[test]
    fn r_hands_the_batch_size_back_to_the_sizer() {
        let mut app = App::new(8, 5000);
        script(&mut app, EngineMode::Running, &[key('+')]);
        assert_eq!(
            script(&mut app, EngineMode::Running, &[key('r')]),
            vec![Command::AutoBatchSize]
        );
        assert_eq!(app.pending_batch, None);
        assert_eq!(script(&mut app, EngineMode::Finished, &[key('r')]), vec![]);
    }

    #[test]
    fn b_takes_an_exact_batch_size_and_refuses_bad_input() {
        let mut app = App::new(8, 5000);
        let sent = script(
            &mut app,
            EngineMode::Running,
            &[
                key('b'),
                key('1'),
                key('2'),
                key(','),
                key('5'),
                key('0'),
                key('0'),
                code(KeyCode::Enter),
            ],
        );
        assert_eq!(sent, vec![Command::SetBatchSize(12_500)]);
        assert_eq!(app.popup, None);

        let sent = script(
            &mut app,
            EngineMode::Running,
            &[key('b'), key('0'), code(KeyCode::Enter)],
        );
        assert_eq!(sent, vec![]);
        assert!(
            matches!(&app.popup, Some(Popup::BatchSize { error: Some(e), .. }) if e.contains("1 to 1,000,000"))
        );
        let sent = script(
            &mut app,
            EngineMode::Running,
            &[code(KeyCode::Backspace), key('7'), code(KeyCode::Enter)],
        );
        assert_eq!(sent, vec![Command::SetBatchSize(7)]);
        let sent = script(
            &mut app,
            EngineMode::Running,
            &[key('b'), key('9'), code(KeyCode::Esc)],
        );
        assert_eq!(sent, vec![], "Esc cancels");
        assert_eq!(app.popup, None);
    }

    #[test]
    fn abort_asks_first_and_only_y_aborts() {
        let mut app = App::new(8, 5000);
        assert_eq!(script(&mut app, EngineMode::Running, &[key('a')]), vec![]);
        assert!(matches!(&app.popup, Some(Popup::Confirm(q)) if q.contains("Abort")));
        assert_eq!(
            script(&mut app, EngineMode::Running, &[key('x'), key('n')]),
            vec![]
        );
        assert_eq!(app.popup, None);
        assert_eq!(
            script(
                &mut app,
                EngineMode::Running,
                &[key('a'), code(KeyCode::Esc)]
            ),
            vec![]
        );
        assert_eq!(
            script(&mut app, EngineMode::Running, &[key('a'), key('y')]),
            vec![Command::Abort]
        );
        assert!(!app.quit_requested);
    }

    #[test]
    fn q_asks_while_running_and_quits_at_once_when_finished() {
        let mut app = App::new(8, 5000);
        assert_eq!(script(&mut app, EngineMode::Running, &[key('q')]), vec![]);
        assert!(matches!(&app.popup, Some(Popup::Confirm(q)) if q.contains("Quit?")));
        assert_eq!(script(&mut app, EngineMode::Running, &[key('n')]), vec![]);
        assert!(!app.quit_requested);
        assert_eq!(
            script(&mut app, EngineMode::Running, &[key('q'), key('y')]),
            vec![Command::Abort]
        );
        assert!(app.quit_requested);

        let mut app = App::new(8, 5000);
        assert_eq!(script(&mut app, EngineMode::Finished, &[key('q')]), vec![]);
        assert!(app.quit_requested);
        let mut app = App::new(8, 5000);
        let ctrl_c = KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL);
        script(&mut app, EngineMode::Running, &[ctrl_c]);
        assert!(
            matches!(&app.popup, Some(Popup::Confirm(_))),
            "Ctrl-C asks like q"
        );
    }

    fn questions() -> Option<QuitQuestions> {
        Some(QuitQuestions {
            running: "Quit the demo? y stops the migration and deletes everything.".into(),
            finished: "Quit the demo? y deletes everything.".into(),
        })
    }

    #[test]
    fn with_quit_questions_q_asks_in_every_state_and_y_stops_only_a_running_migration() {
        let mut app = App::new(8, 5000).with_quit_questions(questions());
        assert_eq!(script(&mut app, EngineMode::Running, &[key('q')]), vec![]);
        assert_eq!(
            app.popup,
            Some(Popup::Confirm(
                "Quit the demo? y stops the migration and deletes everything.".into()
            ))
        );
        assert_eq!(
            script(&mut app, EngineMode::Running, &[key('y')]),
            vec![Command::Abort]
        );
        assert!(app.quit_requested);

        let mut app = App::new(8, 5000).with_quit_questions(questions());
        assert_eq!(script(&mut app, EngineMode::Finished, &[key('q')]), vec![]);
        assert!(!app.quit_requested, "asks at DONE too");
        assert_eq!(
            app.popup,
            Some(Popup::Confirm(
                "Quit the demo? y deletes everything.".into()
            ))
        );
        assert_eq!(script(&mut app, EngineMode::Finished, &[key('n')]), vec![]);
        assert!(!app.quit_requested);
        assert_eq!(
            script(&mut app, EngineMode::Finished, &[key('q'), key('y')]),
            vec![],
            "nothing to stop once finished"
        );
        assert!(app.quit_requested);
    }

    #[test]
    fn a_gate_warning_is_part_of_the_proceed_question() {
        let mut app = App::new(8, 5000);
        app.gate = Some(GateAt {
            phase: Phase::Cleanup,
            lock: "ACCESS EXCLUSIVE briefly".into(),
            warning: Some("the application does not write amount yet.".into()),
        });
        script(&mut app, EngineMode::Running, &[key('g')]);
        assert_eq!(
            app.popup,
            Some(Popup::Confirm(
                "Proceed to cleanup? It takes ACCESS EXCLUSIVE briefly. Warning: the \
                 application does not write amount yet."
                    .into()
            ))
        );
        assert_eq!(
            script(&mut app, EngineMode::Running, &[key('y')]),
            vec![Command::Proceed],
            "a warning, not a refusal"
        );
    }

    fn at_gate(phase: Phase, lock: &str) -> Option<GateAt> {
        Some(GateAt {
            phase,
            lock: lock.into(),
            warning: None,
        })
    }

    #[test]
    fn g_at_a_gate_asks_naming_the_phase_and_its_locks_and_only_y_proceeds() {
        let mut app = App::new(8, 5000);
        app.gate = at_gate(Phase::NotNull, "ACCESS EXCLUSIVE briefly");
        assert_eq!(script(&mut app, EngineMode::Running, &[key('g')]), vec![]);
        assert_eq!(
            app.popup,
            Some(Popup::Confirm(
                "Proceed to not_null? It takes ACCESS EXCLUSIVE briefly.".into()
            ))
        );
        assert_eq!(script(&mut app, EngineMode::Running, &[key('n')]), vec![]);
        assert_eq!(app.popup, None);
        assert_eq!(
            script(
                &mut app,
                EngineMode::Running,
                &[key('g'), code(KeyCode::Esc)]
            ),
            vec![]
        );
        assert_eq!(
            script(
                &mut app,
                EngineMode::Running,
                &[key('g'), key('x'), key('y')]
            ),
            vec![Command::Proceed],
            "other keys leave the question open; y proceeds"
        );
        assert_eq!(app.popup, None);
        assert!(app.notes.is_empty());
    }

    #[test]
    fn g_without_a_gate_sends_nothing_and_says_why() {
        let mut app = App::new(8, 5000);
        assert_eq!(script(&mut app, EngineMode::Running, &[key('g')]), vec![]);
        assert_eq!(app.popup, None);
        assert_eq!(app.notes.len(), 1);
        assert!(
            app.notes[0].contains("no gate is waiting"),
            "{:?}",
            app.notes
        );
        app.gate = at_gate(
            Phase::Index,
            "SHARE UPDATE EXCLUSIVE for the whole statement",
        );
        assert_eq!(script(&mut app, EngineMode::Finished, &[key('g')]), vec![]);
        assert_eq!(app.popup, None, "a finished run has no gate to pass");
    }

    #[test]
    fn a_yes_to_a_gate_that_has_passed_does_not_pass_the_next_one() {
        let mut app = App::new(8, 5000);
        app.gate = at_gate(Phase::NotNull, "ACCESS EXCLUSIVE briefly");
        script(&mut app, EngineMode::Running, &[key('g')]);
        // Meanwhile someone else proceeded and the engine now waits before index.
        app.gate = at_gate(
            Phase::Index,
            "SHARE UPDATE EXCLUSIVE for the whole statement",
        );
        assert_eq!(script(&mut app, EngineMode::Running, &[key('y')]), vec![]);
        assert!(
            app.notes[0].contains("no longer waits at the gate before not_null"),
            "{:?}",
            app.notes
        );
        // Nor once no gate waits at all.
        app.notes.clear();
        app.gate = at_gate(
            Phase::Index,
            "SHARE UPDATE EXCLUSIVE for the whole statement",
        );
        script(&mut app, EngineMode::Running, &[key('g')]);
        app.gate = None;
        assert_eq!(script(&mut app, EngineMode::Running, &[key('y')]), vec![]);
        assert_eq!(app.notes.len(), 1);
    }

    #[test]
    fn q_on_an_attached_screen_offers_detach_abort_or_cancel() {
        let mut app = App::new(8, 5000).detachable();
        assert_eq!(script(&mut app, EngineMode::Running, &[key('q')]), vec![]);
        assert_eq!(app.popup, Some(Popup::Leave));
        assert_eq!(
            script(&mut app, EngineMode::Running, &[code(KeyCode::Esc)]),
            vec![]
        );
        assert_eq!(app.popup, None);
        assert_eq!(
            script(&mut app, EngineMode::Running, &[key('q'), key('c')]),
            vec![]
        );
        assert!(!app.quit_requested && !app.detach_requested);
        assert_eq!(
            script(&mut app, EngineMode::Running, &[key('q'), key('x')]),
            vec![]
        );
        assert_eq!(
            app.popup,
            Some(Popup::Leave),
            "other keys leave the question open"
        );
        assert_eq!(script(&mut app, EngineMode::Running, &[key('d')]), vec![]);
        assert!(app.detach_requested && !app.quit_requested);

        let mut app = App::new(8, 5000).detachable();
        assert_eq!(
            script(&mut app, EngineMode::Paused, &[key('q'), key('a')]),
            vec![Command::Abort]
        );
        assert!(app.quit_requested && !app.detach_requested);

        let mut app = App::new(8, 5000).detachable();
        assert_eq!(script(&mut app, EngineMode::Finished, &[key('q')]), vec![]);
        assert!(app.quit_requested, "nothing to leave running once finished");
        let mut app = App::new(8, 5000).detachable();
        let ctrl_c = KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL);
        script(&mut app, EngineMode::Running, &[ctrl_c]);
        assert_eq!(app.popup, Some(Popup::Leave), "Ctrl-C asks like q");
    }

    #[test]
    fn help_opens_with_question_mark_and_closes_with_esc_and_keys_do_nothing_meanwhile() {
        let mut app = App::new(8, 5000);
        script(&mut app, EngineMode::Running, &[key('?')]);
        assert_eq!(app.popup, Some(Popup::Help));
        assert_eq!(script(&mut app, EngineMode::Running, &[key('p')]), vec![]);
        script(&mut app, EngineMode::Running, &[code(KeyCode::Esc)]);
        assert_eq!(app.popup, None);
    }

    #[test]
    fn arrows_and_vim_keys_move_the_selection_within_bounds() {
        let mut app = App::new(3, 5000);
        assert!(app.follow_phase);
        script(
            &mut app,
            EngineMode::Running,
            &[key('j'), code(KeyCode::Down), key('j'), key('j')],
        );
        assert!(
            !app.follow_phase,
            "moving the selection stops following the running phase"
        );
        assert_eq!(app.selected_phase, 2);
        script(
            &mut app,
            EngineMode::Running,
            &[code(KeyCode::Up), key('k'), key('k')],
        );
        assert_eq!(app.selected_phase, 0);
    }

    #[test]
    fn log_scrolls_and_charts_zoom_within_bounds() {
        let mut app = App::new(3, 5000);
        script(
            &mut app,
            EngineMode::Running,
            &[code(KeyCode::PageUp), key('u')],
        );
        assert_eq!(app.log_scroll, 20);
        script(&mut app, EngineMode::Running, &[key('d')]);
        assert_eq!(app.log_scroll, 10);
        script(&mut app, EngineMode::Running, &[key('G')]);
        assert_eq!(app.log_scroll, 0);
        assert_eq!(app.window_secs(), 60, "starts on the last minute");
        script(
            &mut app,
            EngineMode::Running,
            &[key(']'), key(']'), key(']')],
        );
        assert_eq!(app.window_secs(), 900);
        script(&mut app, EngineMode::Running, &[key('[')]);
        assert_eq!(app.window_secs(), 300);
    }

    /// The keys of the README's key table (the demo's own keys and y/n aside: their code
    /// handles them), each with what it must do. Written by hand from the README, so that a
    /// binding moved, dropped or added without the README fails below.
    const README_KEYS: &[(&str, KeyCode, Action)] = &[
        ("p", KeyCode::Char('p'), Action::TogglePause),
        ("space", KeyCode::Char(' '), Action::TogglePause),
        ("+", KeyCode::Char('+'), Action::BatchUp),
        ("-", KeyCode::Char('-'), Action::BatchDown),
        ("b", KeyCode::Char('b'), Action::BatchInput),
        ("r", KeyCode::Char('r'), Action::BatchAuto),
        ("f", KeyCode::Char('f'), Action::ToggleForeground),
        ("a", KeyCode::Char('a'), Action::Abort),
        ("g", KeyCode::Char('g'), Action::Proceed),
        ("q", KeyCode::Char('q'), Action::Quit),
        ("?", KeyCode::Char('?'), Action::Help),
        ("Esc", KeyCode::Esc, Action::Close),
        ("↑", KeyCode::Up, Action::Up),
        ("k", KeyCode::Char('k'), Action::Up),
        ("↓", KeyCode::Down, Action::Down),
        ("j", KeyCode::Char('j'), Action::Down),
        ("PgUp", KeyCode::PageUp, Action::LogUp),
        ("u", KeyCode::Char('u'), Action::LogUp),
        ("PgDn", KeyCode::PageDown, Action::LogDown),
        ("d", KeyCode::Char('d'), Action::LogDown),
        ("End", KeyCode::End, Action::LogEnd),
        ("G", KeyCode::Char('G'), Action::LogEnd),
        ("[", KeyCode::Char('['), Action::ZoomIn),
        ("]", KeyCode::Char(']'), Action::ZoomOut),
    ];

    #[test]
    fn f_turns_the_foreground_guard_off_and_on_again_with_its_last_bound() {
        use crate::engine::guard::ForegroundView;
        use crate::plan::ImpactBound;
        let mut app = App::new(8, 1000);
        assert!(
            script(&mut app, EngineMode::Running, &[key('f')]).is_empty(),
            "no guard yet"
        );
        let on = ForegroundView {
            on: true,
            bound: "2x".into(),
            ..ForegroundView::default()
        };
        app.sync_foreground(Some(&on));
        assert_eq!(
            script(&mut app, EngineMode::Running, &[key('f')]),
            vec![Command::SetForegroundImpact(None)]
        );
        app.sync_foreground(Some(&ForegroundView::default()));
        assert_eq!(
            script(&mut app, EngineMode::Running, &[key('f')]),
            vec![Command::SetForegroundImpact(Some(ImpactBound::Ratio(2.0)))]
        );
        assert!(script(&mut app, EngineMode::Finished, &[key('f')]).is_empty());
    }

    /// Bound, but not in the README's table: `+` and `-` without shift.
    const ALIASES: &[(KeyCode, Action)] = &[
        (KeyCode::Char('='), Action::BatchUp),
        (KeyCode::Char('_'), Action::BatchDown),
    ];

    #[test]
    fn every_binding_is_in_the_help() {
        use super::super::keymap::{KEYMAP, help};
        let help = help();
        // Each key of the README does what the README says, and the help shows it.
        for (name, code, action) in README_KEYS {
            assert_eq!(
                action_for(&KeyEvent::new(*code, KeyModifiers::NONE)),
                Some(*action),
                "{name} is documented as {action:?}"
            );
            assert!(
                help.iter().any(|h| {
                    h.keys.split([',', '/', ' ']).any(|k| k == *name)
                        || h.desc.contains(&format!("also {name}"))
                        || h.desc.contains(&format!(", {name}"))
                }),
                "{name} ({action:?}) is not in the help"
            );
        }
        assert_eq!(
            action_for(&KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL)),
            Some(Action::Quit),
            "Ctrl-C quits, as q"
        );
        // And nothing is bound that the README does not know of.
        for b in KEYMAP {
            for code in b.codes {
                assert!(
                    README_KEYS
                        .iter()
                        .map(|(_, c, a)| (c, a))
                        .chain(ALIASES.iter().map(|(c, a)| (c, a)))
                        .any(|(c, a)| c == code && *a == b.action),
                    "{code:?} ({:?}) is bound but not in the README's key table",
                    b.action
                );
            }
        }
        assert!(
            help.len() + 3 + 2 <= 24,
            "with the demo's keys it fits 80×24"
        );
    }

    #[test]
    fn the_batch_size_keys_say_the_bounds_the_engine_holds_to() {
        use super::super::keymap::KEYMAP;
        let desc = |action: Action| KEYMAP.iter().find(|b| b.action == action).unwrap().desc;
        assert!(desc(Action::BatchUp).contains(&format!("at most {}", thousands(MAX_BATCH_SIZE))));
        assert!(desc(Action::BatchDown).contains(&format!("at least {MIN_BATCH_SIZE}")));
    }
}
