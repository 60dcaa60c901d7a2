//! The full-screen terminal interface (ratatui + crossterm) over the engine.
//!
//! `view` is the model the screen is drawn from; `draw` draws it (pure); `app` and `keymap`
//! turn keys into engine commands; `model` remembers events; `terminal` runs the loop.

pub mod app;
pub mod draw;
pub mod keymap;
pub mod model;
pub mod terminal;
pub mod theme;
pub mod view;

#[cfg(test)]
mod fixtures;
#[cfg(test)]
mod mysql_fixtures;
#[cfg(test)]
mod tests;

use tokio::sync::mpsc;

use crate::engine::{Handles, State};
use crate::plan::{Phase, Plan};
use crate::sampler::{Metrics, SeriesId, SharedMetrics};
use app::{App, QuitQuestions};
use model::Model;
use theme::Theme;
use view::{ChartView, DbView, Level, ReplicaView, SeriesView, ViewModel};

/// What `pacer run` hands the interface.
pub struct Setup {
    /// Colours.
    pub theme: Theme,
    /// Braille chart markers.
    pub braille: bool,
    /// The sampler's metrics (the sampler runs on its own task).
    pub metrics: Option<SharedMetrics>,
    /// The target as shown.
    pub target: String,
    /// What the target's family calls its figures.
    pub words: crate::target::family::FigureWords,
    /// The plan.
    pub plan: Plan,
    /// The migration runs in another process: `q` offers to detach.
    pub detachable: bool,
    /// The program around the migration (`pacer demo`'s application workload).
    pub companion: Option<Box<dyn Companion>>,
    /// Lines for the event log at start (where the socket and the audit log are).
    pub notes: Vec<String>,
}

/// The program around the migration, when it runs in the same process (`pacer demo`: its
/// synthetic application). The interface asks it for its keys, a status line and log lines;
/// an embedded headless run asks it what to do at a gate nobody is there to answer. Every
/// method but [`Companion::keys`] has a default that does nothing.
pub trait Companion: Send {
    /// Its keys and what they do (for the help overlay; other keys stay the interface's).
    fn keys(&self) -> Vec<(char, String)>;

    /// Lines for the event log at start (where its parts are).
    fn notes(&self) -> Vec<String> {
        Vec::new()
    }

    /// Handles one of its keys; returns a line for the event log when it did something.
    fn on_key(&mut self, key: char, state: &State) -> Option<String>;

    /// One short line on how it is doing, shown the whole time.
    fn status(&self) -> Option<String> {
        None
    }

    /// Lines for the event log since the last call (asked before every frame).
    fn poll(&mut self, _state: &State) -> Vec<(Level, String)> {
        Vec::new()
    }

    /// A warning for the question before the operator passes the gate before `phase`.
    fn gate_warning(&self, _phase: Phase) -> Option<String> {
        None
    }

    /// Whether what the operator did at the gate before `phase` has taken effect, so that an
    /// unattended run may proceed (the demo: its new application version runs everywhere).
    fn gate_ready(&self, _phase: Phase) -> bool {
        true
    }

    /// Nobody can answer the gate before `phase` (a headless run): does what the operator
    /// would have done before proceeding, and says what (lines for stderr). The run proceeds.
    fn unattended_gate(&mut self, _phase: Phase) -> Vec<String> {
        Vec::new()
    }

    /// The quit question, when quitting does more than stop the migration: then `q` asks in
    /// every state, also after the migration finished.
    fn quit_questions(&self) -> Option<QuitQuestions> {
        None
    }
}

/// How the interface ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// The operator quit after the migration had stopped.
    Quit,
    /// The operator detached: the migration goes on without this screen.
    Detached,
}

/// Runs the interface until the operator quits or detaches. `done` fires when the migration
/// (or the link to it) ends, with a line for the log when the link was lost.
pub async fn run(
    handles: Handles,
    setup: Setup,
    done: tokio::sync::oneshot::Receiver<Option<String>>,
) -> std::io::Result<Exit> {
    let app = App::new(setup.plan.phases().len(), setup.plan.backfill.batch_size);
    let mut model = Model::new(
        setup.target,
        setup.plan.table.to_string(),
        setup.plan.column.name.clone(),
    );
    model.words = setup.words;
    model.limits = view::Limits::of(&setup.plan.throttle);
    for note in setup.notes {
        model.log(terminal::wall_clock(), Level::Info, note);
    }
    let screen = terminal::Screen {
        theme: setup.theme,
        braille: setup.braille,
        model,
        app: match (setup.detachable, setup.companion.as_ref()) {
            (true, _) => app.detachable(),
            (false, Some(c)) => app.with_quit_questions(c.quit_questions()),
            (false, None) => app,
        },
        sampling: setup.metrics.map(|metrics| Sampling { metrics }),
        companion: setup.companion,
    };
    terminal::run(handles, screen, done).await
}

/// The interface's end of the sampler. The runner records pacer's batches and throttled
/// intervals into the metrics (so every viewer sees the same history); the interface reads.
pub struct Sampling {
    metrics: SharedMetrics,
}

impl Sampling {
    /// Wakes `tx` after every sampling round.
    pub fn subscribe(&self, tx: mpsc::UnboundedSender<()>) {
        let mut rx = self.metrics.subscribe();
        tokio::spawn(async move {
            while rx.changed().await.is_ok() {
                if tx.send(()).is_err() {
                    break;
                }
            }
        });
    }

    /// Sampling failures and recoveries since the last call, for the event log.
    pub fn drain_log(&self, model: &mut Model) {
        for entry in self.metrics.take_errors() {
            let level = if entry.failed {
                Level::Warn
            } else {
                Level::Info
            };
            model.log(
                terminal::wall_clock(),
                level,
                format!("sampler: {}", entry.text),
            );
        }
    }

    /// Fills the charts, database and host figures of the view from the latest metrics. Once
    /// the run has `ended`, the charts stop at its last sample instead of scrolling it away.
    pub fn fill(&self, view: &mut ViewModel, window_secs: u64, ended: bool) {
        let now = self.metrics.now();
        self.metrics.read(|m| {
            let now = chart_clock(now, m.latest().t, ended);
            fill_from(m, view, now, window_secs);
            mark_throttled(view, m.throttled(), now, window_secs as f64);
        });
    }
}

/// The time the charts end at: now while the run goes on; its last sample once it has ended,
/// so the samples stay in the window instead of scrolling out of it.
pub fn chart_clock(now: f64, last_sample: Option<f64>, ended: bool) -> f64 {
    match last_sample {
        Some(last) if ended => last.min(now),
        _ => now,
    }
}

/// Draws throttled intervals as a band along the top of the throughput chart.
pub fn mark_throttled(
    view: &mut ViewModel,
    intervals: &[(f64, Option<f64>)],
    now: f64,
    window: f64,
) {
    let Some(chart) = view.charts.first_mut() else {
        return;
    };
    let top = chart
        .series
        .iter()
        .flat_map(|s| s.segments.iter().flatten().map(|p| p.1))
        .fold(0.0_f64, f64::max)
        .max(1.0);
    let segments: Vec<Vec<(f64, f64)>> = intervals
        .iter()
        .filter_map(|&(start, end)| {
            let (a, b) = (
                (start - now).max(-window),
                (end.unwrap_or(now) - now).min(0.0),
            );
            (b >= a).then(|| {
                let steps = ((b - a) / (window / 200.0)).ceil().max(1.0) as usize;
                (0..=steps)
                    .map(|i| (a + (b - a) * i as f64 / steps as f64, top))
                    .collect()
            })
        })
        .collect();
    if !segments.is_empty() {
        let slot = chart.series.len();
        chart.series.push(SeriesView {
            name: "throttled".into(),
            segments,
            current: None,
            slot,
        });
    }
}

fn series_view(
    m: &Metrics,
    id: SeriesId,
    name: &str,
    now: f64,
    window: f64,
    slot: usize,
) -> SeriesView {
    let s = m.series(id);
    SeriesView {
        name: name.to_string(),
        segments: shift(s.points_since(now - window), now),
        current: s.last_point().and_then(|(_, v)| v),
        slot,
    }
}

fn shift(segments: Vec<Vec<(f64, f64)>>, now: f64) -> Vec<Vec<(f64, f64)>> {
    segments
        .into_iter()
        .map(|seg| seg.into_iter().map(|(t, v)| (t - now, v)).collect())
        .collect()
}

/// The legend of the application's writes: exact, or every session's where pacer's own rows
/// cannot be told apart, or the whole server's where the server counts no table's own.
pub fn app_writes_name(exact: bool, server_wide: bool) -> &'static str {
    match (server_wide, exact) {
        (true, _) => "server writes",
        (false, true) => "app writes",
        (false, false) => "all writes",
    }
}

/// Builds the sampled parts of the view (pure over the metrics, for tests).
pub fn fill_from(m: &Metrics, view: &mut ViewModel, now: f64, window_secs: u64) {
    let window = window_secs as f64;
    let latest = m.latest();
    let throughput = ChartView {
        title: "throughput".into(),
        unit: "rows/s".into(),
        series: vec![
            series_view(m, SeriesId::PacerRowsPerS, "pacer", now, window, 0),
            series_view(
                m,
                SeriesId::AppWritesPerS,
                app_writes_name(
                    latest.app_writes_exact || latest.app_writes_per_s.is_none(),
                    latest.app_writes_server_wide && latest.app_writes_per_s.is_some(),
                ),
                now,
                window,
                1,
            ),
        ],
        note: None,
        limit: None,
    };
    let locks = ChartView {
        title: "lock waits".into(),
        unit: "sessions".into(),
        series: vec![series_view(
            m,
            SeriesId::LockWaiters,
            "waiting",
            now,
            window,
            0,
        )],
        note: None,
        limit: None,
    };
    let replicas = m.replica_series();
    let (lag_series, lag_note) = match &latest.replicas {
        Some(r) if r.is_empty() => (Vec::new(), Some("no replicas".to_string())),
        None if replicas.is_empty() => (Vec::new(), Some("not sampled yet".to_string())),
        _ => (
            replicas
                .iter()
                .enumerate()
                .map(|(i, r)| SeriesView {
                    name: r.name.clone(),
                    segments: shift(r.lag_s.points_since(now - window), now),
                    current: r.lag_s.last_point().and_then(|(_, v)| v),
                    slot: i,
                })
                .collect(),
            None,
        ),
    };
    let lag = ChartView {
        title: "replication lag".into(),
        unit: "s".into(),
        series: lag_series,
        note: lag_note,
        limit: view.db.limits.lag_s,
    };
    // pacer's batches and what the application feels meanwhile, on one time axis; the line
    // is the foreground guard's limit on the probe.
    let mut batch_series = vec![series_view(
        m,
        SeriesId::BatchMs,
        "longest batch",
        now,
        window,
        0,
    )];
    if !m.series(SeriesId::ProbeMs).is_empty() {
        batch_series.push(series_view(
            m,
            SeriesId::ProbeMs,
            "slowest probe",
            now,
            window,
            1,
        ));
    }
    let batches = ChartView {
        title: "batch duration".into(),
        unit: "ms".into(),
        series: batch_series,
        note: None,
        limit: view.progress.foreground.as_ref().and_then(|f| f.limit_ms),
    };
    view.charts = vec![throughput, locks, lag, batches];
    if let Some(p50) = m.batch_ms_percentile(50.0) {
        view.progress.batch_p50_ms = Some(p50);
        view.progress.batch_p95_ms = m.batch_ms_percentile(95.0);
    }
    view.db = DbView {
        lock_waiters: latest.lock_waits.as_ref().map(|l| l.waiting),
        longest_wait_s: latest.lock_waits.as_ref().map(|l| l.longest_s),
        replicas: latest.replicas.as_ref().map(|r| {
            r.iter()
                .map(|r| ReplicaView {
                    name: r.name.clone(),
                    lag_s: r.effective_lag_s(),
                    lag_bytes: r.lag_bytes,
                })
                .collect()
        }),
        maintenance: latest
            .table
            .as_ref()
            .and_then(|t| t.maintenance.as_ref())
            .map(|v| v.to_string()),
        limits: view.db.limits,
        words: view.db.words,
        table_bytes: latest.table_bytes,
        dead_rows: latest.table.as_ref().map(|t| t.dead_rows),
        redo_bytes_per_s: latest.redo_bytes_per_s,
        active_sessions: latest.active_sessions,
        app_writes_per_s: latest.app_writes_per_s,
        app_writes_exact: latest.app_writes_exact,
        app_writes_server_wide: latest.app_writes_server_wide,
    };
    view.host = latest.host.clone();
    // Between attempts the engine names the blockers of its DDL; while an attempt waits, the
    // sampler sees pacer's session waiting and who blocks it: say so at once.
    if view.blockers.is_empty()
        && let Some(l) = &latest.lock_waits
    {
        view.blockers = l.blocking_pacer();
        if !view.blockers.is_empty() && view.status == view::StatusView::Running {
            view.status =
                view::StatusView::WaitingForLock(view.blockers.iter().map(|b| b.pid).collect());
        }
    }
}

#[cfg(test)]
mod fill_tests {
    use super::*;
    use crate::sampler::LockWait;
    use crate::sampler::{DEFAULT_WINDOW, DbSample, LockWaits, TableStats};
    use crate::target::Blocker;
    use std::time::Duration;

    fn sample(pacer_waits: bool) -> DbSample {
        let blocker = Blocker {
            pacer: false,
            pid: 4242,
            application: "psql".into(),
            user: "app".into(),
            state: "idle in transaction".into(),
            xact_age_s: Some(12.5),
            query: "SELECT 1".into(),
            family: crate::target::family::Family::Postgres,
        };
        let waits = if pacer_waits {
            vec![LockWait {
                pid: 77,
                application: "pacer:public.orders.amount".into(),
                wait_s: 0.8,
                pacer: true,
                blockers: vec![blocker],
            }]
        } else {
            vec![]
        };
        DbSample {
            lock_waits: Ok(LockWaits::from_waits(waits)),
            replicas: Ok(vec![]),
            redo_bytes: Ok(1000),
            table: Ok(TableStats::default()),
            table_bytes: Ok(8192),
            active_sessions: Ok(2),
        }
    }

    fn view() -> ViewModel {
        let mut v = fixtures::running();
        v.blockers.clear();
        v.status = view::StatusView::Running;
        v
    }

    #[test]
    fn a_ddl_waiting_for_its_lock_shows_as_waiting_with_its_blockers_while_it_waits() {
        let mut m = Metrics::new(DEFAULT_WINDOW, Duration::from_secs(1));
        m.record_db(1.0, &sample(true));
        let mut v = view();
        fill_from(&m, &mut v, 1.0, 60);
        assert_eq!(v.status, view::StatusView::WaitingForLock(vec![4242]));
        assert_eq!(v.blockers.len(), 1);
        assert_eq!(v.blockers[0].application, "psql");
    }

    #[test]
    fn no_replicas_is_a_note_not_a_zero_line_and_charts_come_in_order() {
        let mut m = Metrics::new(DEFAULT_WINDOW, Duration::from_secs(1));
        m.record_db(1.0, &sample(false));
        let mut v = view();
        fill_from(&m, &mut v, 1.0, 60);
        assert_eq!(v.status, view::StatusView::Running);
        let titles: Vec<&str> = v.charts.iter().map(|c| c.title.as_str()).collect();
        assert_eq!(
            titles,
            [
                "throughput",
                "lock waits",
                "replication lag",
                "batch duration"
            ]
        );
        assert_eq!(v.charts[2].note.as_deref(), Some("no replicas"));
        assert!(v.charts[2].series.is_empty());
        assert_eq!(v.db.replicas, Some(vec![]));
        assert_eq!(v.db.table_bytes, Some(8192));
    }

    #[test]
    fn after_the_end_the_charts_stop_at_the_last_sample_and_keep_it_in_the_window() {
        let mut m = Metrics::new(DEFAULT_WINDOW, Duration::from_secs(1));
        for t in 0..30 {
            m.record_db(f64::from(t), &sample(false));
        }
        // Ten minutes after the run ended at t = 29, a 1-minute window still shows its end.
        let now = 29.0 + 600.0;
        let mut v = view();
        fill_from(&m, &mut v, chart_clock(now, m.latest().t, true), 60);
        let lock_waits = &v.charts[1].series[0];
        assert_eq!(lock_waits.segments.concat().last().map(|p| p.0), Some(0.0));
        assert!(lock_waits.segments.concat().len() >= 29);
        // While the run goes on, time moves and old samples leave the window.
        let mut v = view();
        fill_from(&m, &mut v, chart_clock(now, m.latest().t, false), 60);
        assert!(v.charts[1].series[0].segments.concat().is_empty());
    }

    #[test]
    fn server_wide_writes_and_running_sessions_reach_the_view_with_their_limits() {
        let mut m = Metrics::new(DEFAULT_WINDOW, Duration::from_secs(1));
        let mut s = sample(false);
        let stats = |upd| {
            Ok(TableStats {
                n_tup_upd: upd,
                server_wide: true,
                pacer_flushed: true,
                pacer_writes: Some(0),
                ..TableStats::default()
            })
        };
        s.table = stats(100);
        m.record_db(1.0, &s);
        s.table = stats(400);
        m.record_db(2.0, &s);
        let mut v = view();
        v.db.limits.active = Some(1);
        fill_from(&m, &mut v, 2.0, 60);
        assert_eq!(v.charts[0].series[1].name, "server writes");
        assert_eq!(v.db.app_writes_per_s, Some(300.0));
        assert!(v.db.app_writes_server_wide);
        assert_eq!(v.db.active_sessions, Some(2));
        assert_eq!(v.db.limits.active, Some(1), "the plan's limits stay");
    }

    #[test]
    fn throttled_intervals_show_as_a_band_on_the_throughput_chart() {
        let mut m = Metrics::new(DEFAULT_WINDOW, Duration::from_secs(1));
        m.record_db(1.0, &sample(false));
        let mut v = view();
        fill_from(&m, &mut v, 100.0, 60);
        mark_throttled(
            &mut v,
            &[(10.0, Some(20.0)), (70.0, Some(80.0)), (95.0, None)],
            100.0,
            60.0,
        );
        let band = v.charts[0].series.last().unwrap();
        assert_eq!(band.name, "throttled");
        assert_eq!(
            band.segments.len(),
            2,
            "the interval before the window is left out"
        );
        let first = &band.segments[0];
        assert_eq!((first[0].0, first.last().unwrap().0), (-30.0, -20.0));
        let open = &band.segments[1];
        assert_eq!(
            (open[0].0, open.last().unwrap().0),
            (-5.0, 0.0),
            "a throttle still on runs to now"
        );
    }
}
