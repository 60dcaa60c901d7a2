//! The demo's side of the screen: its application's keys (`<` and `>` its rate, `D` the deploy
//! of the version that writes the new column), a status line with the application's
//! transactions/s and failures, what it says at the gate before cleanup, and a quit question
//! that says what quitting deletes.
//!
//! The gate is the point of it: `amount` is NOT NULL without a default, so once cleanup drops
//! the sync trigger, every insert of the old application version fails. A real deploy of code
//! that writes the column belongs at that gate; the demo acts it out.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::workload::{WorkloadControl, WorkloadStats};
use crate::engine::{State, Status};
use crate::format::thousands;
use crate::plan::Phase;
use crate::tui::Companion;
use crate::tui::app::QuitQuestions;
use crate::tui::view::Level;

/// The column the demo plan adds (and the deployed version writes).
const COLUMN: &str = "amount";
/// How the deployed version computes it (the demo plan's backfill expression).
const COMPUTED: &str = "amount_cents / 100.0";
/// The deploy key.
pub const DEPLOY_KEY: char = 'D';
/// At most one log line about new failures per this long.
const REPORT_EVERY: Duration = Duration::from_secs(5);
/// The highest rate `>` goes to.
const MAX_TPS: u32 = 20_000;

/// The demo's application, as the interface (or an unattended headless run) sees it.
pub struct DemoApp {
    workload: WorkloadControl,
    /// The demo's directory, deleted when it quits (unless kept).
    root: PathBuf,
    keep: bool,
    /// The demo's database server ("PostgreSQL", "MariaDB").
    product: &'static str,
    /// Lines for the log at start (the servers' addresses).
    notes: Vec<String>,
    /// No one at a screen: gates are passed unattended, so no "press D" advice.
    headless: bool,
    said_gate: bool,
    said_rolled_out: bool,
    failures: FailureReport,
}

impl DemoApp {
    /// The companion of a demo run over `workload`, whose directory is `root`.
    pub fn new(workload: WorkloadControl, root: PathBuf, keep: bool, headless: bool) -> DemoApp {
        DemoApp {
            workload,
            root,
            keep,
            product: "PostgreSQL",
            notes: Vec::new(),
            headless,
            said_gate: false,
            said_rolled_out: false,
            failures: FailureReport::default(),
        }
    }

    /// Names the demo's database server, for what quitting says it stops ("PostgreSQL" unless
    /// told).
    pub fn product(mut self, product: &'static str) -> DemoApp {
        self.product = product;
        self
    }

    /// Adds a line for the log at start.
    pub fn note(mut self, line: String) -> DemoApp {
        self.notes.push(line);
        self
    }

    fn deploy(&self, state: &State) -> String {
        if !state.phases_done.contains(&Phase::AddColumn) {
            return format!(
                "{DEPLOY_KEY}: not yet: app v2 writes {COLUMN}, which does not exist until \
                 add_column has run"
            );
        }
        if !self.workload.deploy() {
            return "demo: app v2 is already deployed".into();
        }
        let mut line = format!("demo: deployed app v2, which writes {COLUMN} itself");
        if at_gate(state, Phase::Cleanup) {
            line.push_str("; g proceeds to cleanup");
        }
        line
    }
}

fn at_gate(state: &State, phase: Phase) -> bool {
    state.status == Status::Gate && state.gate == Some(phase)
}

impl Companion for DemoApp {
    fn keys(&self) -> Vec<(char, String)> {
        vec![
            ('<', "halve the demo's application workload".into()),
            ('>', "double the demo's application workload".into()),
            (
                DEPLOY_KEY,
                format!("deploy the demo app's v2, which writes {COLUMN} (before cleanup)"),
            ),
        ]
    }

    fn notes(&self) -> Vec<String> {
        self.notes.clone()
    }

    fn on_key(&mut self, key: char, state: &State) -> Option<String> {
        let rate = &self.workload;
        let now = rate.tps();
        let next = match key {
            '<' => now / 2,
            '>' => now.saturating_mul(2).clamp(1, MAX_TPS),
            DEPLOY_KEY => return Some(self.deploy(state)),
            _ => return None,
        };
        rate.set_tps(next);
        Some(format!(
            "demo workload: {next} transactions/s (was {now}; < and > change it)"
        ))
    }

    fn status(&self) -> Option<String> {
        Some(status_line(
            &self.workload.stats(),
            self.workload.deployed(),
        ))
    }

    fn poll(&mut self, state: &State) -> Vec<(Level, String)> {
        let mut lines = Vec::new();
        if !self.headless && !self.said_gate && at_gate(state, Phase::Cleanup) {
            self.said_gate = true;
            // Short lines: the log shows one line per entry, cut at the panel's width.
            if self.workload.deployed() {
                lines.push((
                    Level::Info,
                    format!("demo: app v2 already writes {COLUMN}: g proceeds to cleanup safely"),
                ));
            } else {
                lines.push((
                    Level::Warn,
                    format!(
                        "demo: cleanup drops the trigger that fills {COLUMN} (NOT NULL, no default)"
                    ),
                ));
                lines.push((
                    Level::Warn,
                    format!(
                        "demo: the app must now write {COLUMN}: press {DEPLOY_KEY} to deploy v2, \
                         then g"
                    ),
                ));
            }
        }
        if !self.said_rolled_out && self.workload.rolled_out() {
            self.said_rolled_out = true;
            lines.push((
                Level::Info,
                "demo: app v2 runs in every session; no write of v1 is left".into(),
            ));
        }
        if let Some(line) = self.failures.line(&self.workload.stats(), Instant::now()) {
            lines.push((Level::Warn, line));
        }
        lines
    }

    fn gate_warning(&self, phase: Phase) -> Option<String> {
        if phase != Phase::Cleanup || self.workload.rolled_out() {
            return None;
        }
        Some(if self.workload.deployed() {
            "app v2 is still rolling out: some sessions still send v1's writes, which fail \
             once cleanup drops the sync trigger. Answer n and wait a moment."
                .to_string()
        } else {
            format!(
                "the demo's application does not write {COLUMN} yet: once cleanup drops the \
                 sync trigger, its inserts fail. Answer n and press {DEPLOY_KEY} to deploy the \
                 version that does."
            )
        })
    }

    fn gate_ready(&self, phase: Phase) -> bool {
        phase != Phase::Cleanup || self.workload.rolled_out()
    }

    fn unattended_gate(&mut self, phase: Phase) -> Vec<String> {
        if phase != Phase::Cleanup || !self.workload.deploy() {
            return Vec::new();
        }
        vec![format!(
            "demo: at the gate before cleanup, deployed app v2, which writes {COLUMN} \
             (= {COMPUTED}) itself, as the operator would here"
        )]
    }

    fn quit_questions(&self) -> Option<QuitQuestions> {
        Some(quit_questions(self.product, &self.root, self.keep))
    }
}

/// What `y` does to the demo, while its migration runs and after.
fn quit_questions(product: &str, root: &std::path::Path, keep: bool) -> QuitQuestions {
    let servers = if keep {
        format!(
            "stops the demo's {product} servers and keeps their data in {} (--keep)",
            root.display()
        )
    } else {
        format!(
            "stops the demo's {product} servers and deletes their data ({})",
            root.display()
        )
    };
    QuitQuestions {
        running: format!("Quit the demo? y stops the migration, {servers}."),
        finished: format!("Quit the demo? The migration has ended; y {servers}."),
    }
}

/// The status line: version, rate and failures.
fn status_line(stats: &WorkloadStats, deployed: bool) -> String {
    let version = if deployed {
        format!("app v2 (writes {COLUMN})")
    } else {
        format!("app v1 (does not write {COLUMN}; {DEPLOY_KEY} deploys v2)")
    };
    let rate = stats
        .last_second
        .map_or_else(|| "…".to_string(), |s| format!("{:.0}", s.tx_per_s));
    format!("{version}: {rate} tx/s, {} failed", thousands(stats.errors))
}

/// New failures of the application for the log, at most one line per [`REPORT_EVERY`].
#[derive(Debug, Default)]
struct FailureReport {
    /// Failures counted in the lines so far.
    reported: u64,
    /// When the last line was given.
    last: Option<Instant>,
}

impl FailureReport {
    fn line(&mut self, stats: &WorkloadStats, now: Instant) -> Option<String> {
        if stats.errors <= self.reported
            || self
                .last
                .is_some_and(|t| now.saturating_duration_since(t) < REPORT_EVERY)
        {
            return None;
        }
        let new = stats.errors - self.reported;
        self.reported = stats.errors;
        self.last = Some(now);
        Some(format!(
            "demo workload: {} transaction{} failed ({} in all); last: {}",
            thousands(new),
            if new == 1 { "" } else { "s" },
            thousands(stats.errors),
            stats.last_error.as_deref().unwrap_or("?")
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::demo::workload::IntervalStats;

    fn demo() -> DemoApp {
        DemoApp::new(
            WorkloadControl::unconnected(200),
            PathBuf::from("/tmp/pacer-demo-x"),
            false,
            false,
        )
    }

    fn state(status: Status, gate: Option<Phase>, done: &[Phase]) -> State {
        let mut s = State::starting("public.orders.amount".into(), 2000);
        s.status = status;
        s.gate = gate;
        s.phases_done = done.to_vec();
        s
    }

    fn at_cleanup_gate() -> State {
        state(
            Status::Gate,
            Some(Phase::Cleanup),
            &[Phase::Preflight, Phase::AddColumn, Phase::Sync],
        )
    }

    #[test]
    fn the_quit_question_says_y_deletes_the_demo_servers_and_data_in_every_state() {
        let q = demo().quit_questions().expect("the demo asks");
        assert_eq!(
            q.running,
            "Quit the demo? y stops the migration, stops the demo's PostgreSQL servers and \
             deletes their data (/tmp/pacer-demo-x)."
        );
        assert_eq!(
            q.finished,
            "Quit the demo? The migration has ended; y stops the demo's PostgreSQL servers and \
             deletes their data (/tmp/pacer-demo-x)."
        );
        let kept = quit_questions("PostgreSQL", std::path::Path::new("/tmp/d"), true);
        assert!(
            kept.finished.contains("keeps their data in /tmp/d"),
            "{kept:?}"
        );
        let mariadb = demo().product("MariaDB").quit_questions().unwrap();
        assert!(
            mariadb
                .running
                .contains("stops the demo's MariaDB servers and deletes their data"),
            "{mariadb:?}"
        );
    }

    #[test]
    fn at_the_cleanup_gate_it_says_the_application_must_now_write_the_column_once() {
        let mut demo = demo();
        let running = state(Status::Running, None, &[Phase::AddColumn]);
        assert!(demo.poll(&running).is_empty());
        let lines = demo.poll(&at_cleanup_gate());
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert!(lines.iter().all(|(level, _)| *level == Level::Warn));
        assert_eq!(
            lines[1].1,
            "demo: the app must now write amount: press D to deploy v2, then g"
        );
        assert!(lines.iter().all(|(_, l)| l.len() <= 76), "{lines:?}");
        assert!(demo.poll(&at_cleanup_gate()).is_empty(), "said once");
    }

    #[test]
    fn d_deploys_the_new_version_once_the_column_exists_and_g_no_longer_warns() {
        let mut demo = demo();
        let early = state(Status::Running, Some(Phase::AddColumn), &[Phase::Preflight]);
        let said = demo.on_key('D', &early).unwrap();
        assert!(said.contains("not yet"), "{said}");
        assert!(!demo.workload.deployed());

        let gate = at_cleanup_gate();
        assert!(
            demo.gate_warning(Phase::Cleanup)
                .unwrap()
                .contains("does not write amount yet"),
            "g before the deploy warns in the question"
        );
        assert_eq!(demo.gate_warning(Phase::Index), None);
        assert!(
            demo.status()
                .unwrap()
                .starts_with("app v1 (does not write amount")
        );
        let said = demo.on_key('D', &gate).unwrap();
        assert_eq!(
            said,
            "demo: deployed app v2, which writes amount itself; g proceeds to cleanup"
        );
        assert!(demo.workload.deployed());
        assert_eq!(demo.gate_warning(Phase::Cleanup), None);
        assert!(
            demo.on_key('D', &gate)
                .unwrap()
                .contains("already deployed")
        );
        assert!(
            demo.status()
                .unwrap()
                .starts_with("app v2 (writes amount): ")
        );
    }

    #[test]
    fn unattended_the_cleanup_gate_deploys_first_and_says_so() {
        let mut demo = DemoApp::new(
            WorkloadControl::unconnected(200),
            PathBuf::from("/tmp/x"),
            false,
            true,
        );
        assert!(demo.unattended_gate(Phase::Index).is_empty());
        assert!(
            demo.poll(&at_cleanup_gate()).is_empty(),
            "no key advice without a screen"
        );
        let said = demo.unattended_gate(Phase::Cleanup);
        assert_eq!(said.len(), 1);
        assert!(
            said[0].contains("at the gate before cleanup, deployed app v2, which writes amount"),
            "{said:?}"
        );
        assert!(demo.workload.deployed());
    }

    #[test]
    fn the_status_line_shows_rate_and_failures() {
        let stats = WorkloadStats {
            done: 5000,
            errors: 2528,
            last_error: None,
            last_second: Some(IntervalStats {
                tx_per_s: 199.6,
                p50_ms: 1.0,
                p99_ms: 3.0,
            }),
        };
        assert_eq!(
            status_line(&stats, true),
            "app v2 (writes amount): 200 tx/s, 2,528 failed"
        );
        assert_eq!(
            status_line(&WorkloadStats::default(), false),
            "app v1 (does not write amount; D deploys v2): … tx/s, 0 failed"
        );
    }

    #[test]
    fn new_failures_are_logged_at_most_once_every_five_seconds_with_count_and_last_error() {
        let mut report = FailureReport::default();
        let t0 = Instant::now();
        let mut stats = WorkloadStats::default();
        assert_eq!(report.line(&stats, t0), None);
        stats.errors = 1;
        stats.last_error = Some("place order: null value in column \"amount\"".into());
        assert_eq!(
            report.line(&stats, t0).as_deref(),
            Some(
                "demo workload: 1 transaction failed (1 in all); last: place order: null value \
                 in column \"amount\""
            )
        );
        stats.errors = 40;
        assert_eq!(report.line(&stats, t0 + Duration::from_secs(4)), None);
        let line = report.line(&stats, t0 + Duration::from_secs(5)).unwrap();
        assert!(
            line.starts_with("demo workload: 39 transactions failed (40 in all)"),
            "{line}"
        );
        assert_eq!(
            report.line(&stats, t0 + Duration::from_secs(20)),
            None,
            "nothing new"
        );
    }
}
