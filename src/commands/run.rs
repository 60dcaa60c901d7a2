//! `pacer run`: the migration, in the full-screen interface on a terminal, else headless
//! (progress lines on stderr, or JSON events on stdout).

use std::io::IsTerminal;
use std::sync::Arc;
use std::time::Duration;

use super::{EXIT_ABORTED, EXIT_DONE, Failure, connect, load_plan};
use crate::TargetArgs;
use crate::engine::throttle::Signals;
use crate::engine::{Command, Engine, EngineError, Handles, RunOutcome, SignalSource, SystemClock};
use crate::headless::{Printer, Style};
use crate::sampler::{
    self, DEFAULT_WINDOW, Metrics, PgSource, SharedMetrics, postgres::statement_timeout_for,
};
use crate::target::Target;
use crate::tui;

/// How `pacer run` shows what it does.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// No full-screen interface.
    pub headless: bool,
    /// JSON events on stdout (headless).
    pub json: bool,
    /// Theme name or path.
    pub theme: Option<String>,
    /// Sampling interval of the charts.
    pub sample_interval: Duration,
    /// Braille chart markers.
    pub braille: bool,
}

/// Whether `pacer run` opens the full-screen interface: asked for, and on a terminal.
pub fn uses_tui(headless: bool) -> bool {
    !headless && std::io::stdout().is_terminal() && std::io::stdin().is_terminal()
}

/// Runs or resumes the migration; returns the exit code.
pub async fn run(args: &TargetArgs, options: RunOptions) -> Result<u8, Failure> {
    let plan = load_plan(args)?;
    let interactive = uses_tui(options.headless);
    if !options.headless && !interactive {
        eprintln!(
            "pacer: standard output is not a terminal; running headless (as with --headless)."
        );
    }
    let theme = if interactive {
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        Some(tui::theme::from_env(options.theme.as_deref(), no_color).map_err(Failure::refused)?)
    } else {
        None
    };
    let target = connect(args, &plan).await?;
    let conn = target.connection().clone();
    let describe = target.describe();
    let (mut engine, handles) = Engine::new(target, plan.clone(), Arc::new(SystemClock));

    // The sampler runs for the screen's charts and for health throttling, on its own session.
    let needs_sampler = interactive || plan.throttle.needs_sampler();
    let sampling = needs_sampler.then(|| {
        let job = handles.state.borrow().job.clone();
        let metrics = SharedMetrics::new(Metrics::new(DEFAULT_WINDOW, options.sample_interval));
        let source = PgSource::new(conn.clone(), &job, plan.table.quoted())
            .with_statement_timeout(statement_timeout_for(options.sample_interval));
        let task = sampler::spawn(source, options.sample_interval, metrics.clone());
        (metrics, task)
    });
    if let Some((metrics, _)) = &sampling {
        engine = engine.with_signals(signals_from(metrics.clone(), options.sample_interval));
    }
    let commands = handles.commands.clone();
    spawn_signal_handler(commands.clone(), interactive);

    let outcome = match theme {
        Some(theme) => {
            let (done_tx, done_rx) = tokio::sync::oneshot::channel();
            let engine_task = tokio::spawn(async move {
                let outcome = engine.run().await;
                let _ = done_tx.send(());
                outcome
            });
            let setup = tui::Setup {
                theme,
                braille: options.braille,
                metrics: sampling.as_ref().map(|(m, _)| m.clone()),
                target: describe,
                plan,
            };
            if let Err(e) = tui::run(handles, setup, done_rx).await {
                // The screen failed (a lost terminal, most likely), not the migration: it goes
                // on to its end; `pacer status` follows it.
                tracing::warn!("terminal interface ended: {e}; the migration continues");
                eprintln!("pacer: the terminal interface ended ({e}); the migration continues.");
            }
            let outcome = engine_task
                .await
                .map_err(|e| Failure::failed(format!("the migration task failed: {e}")))?;
            if let Ok(o) = &outcome {
                eprintln!("pacer: {}", summary(*o));
            }
            outcome
        }
        None => {
            let style = if options.json {
                Style::Json
            } else {
                Style::Human
            };
            let Handles { events, .. } = handles;
            let printer = tokio::spawn(Printer::new(style).run(events));
            let outcome = engine.run().await;
            let _ = printer.await;
            outcome
        }
    };
    if let Some((_, task)) = sampling {
        task.abort();
    }
    match outcome {
        Ok(RunOutcome::Done) | Ok(RunOutcome::AlreadyDone) => Ok(EXIT_DONE),
        Ok(RunOutcome::Aborted) => Ok(EXIT_ABORTED),
        Err(EngineError::Refused(m)) => Err(Failure::refused(format!(
            "preflight refuses {}: {m}",
            args.plan.display()
        ))),
        Err(EngineError::Failed(m)) => Err(Failure::failed(m)),
        Err(EngineError::Aborted) => Ok(EXIT_ABORTED),
    }
}

/// Health signals from the sampler's latest round. A sample older than three intervals
/// counts as unread (so replication lag fails closed after its grace period).
fn signals_from(metrics: SharedMetrics, interval: Duration) -> SignalSource {
    let stale_after = 3.0 * interval.as_secs_f64();
    Box::new(move || {
        let now = metrics.now();
        metrics.read(|m| {
            let l = m.latest();
            if l.t.is_none_or(|t| now - t > stale_after) {
                return Signals::default();
            }
            Signals {
                replicas: l.replicas.as_ref().map(|rs| {
                    rs.iter()
                        .map(|r| (r.name.clone(), r.effective_lag_s()))
                        .collect()
                }),
                // Sessions waiting on a lock that one of pacer's sessions holds.
                lock_waiters: l.lock_waits.as_ref().map(|w| {
                    w.waits
                        .iter()
                        .filter(|w| {
                            !w.pacer
                                && w.blockers
                                    .iter()
                                    .any(|b| b.application.starts_with("pacer"))
                        })
                        .count() as u32
                }),
                autovacuum: l.table.as_ref().map(|t| t.autovacuum.is_some()),
                wal_rate: l.wal_bytes_per_s,
                query: None,
                file_exists: false,
            }
        })
    })
}

fn summary(outcome: RunOutcome) -> &'static str {
    match outcome {
        RunOutcome::Done => "done: every phase finished.",
        RunOutcome::AlreadyDone => "this migration had already finished; nothing to do.",
        RunOutcome::Aborted => {
            "aborted at a batch boundary; everything is resumable: run the same command again."
        }
    }
}

/// Ctrl-C / SIGTERM stop at the next batch boundary (resumable); a second one exits now, which
/// is safe too: an unfinished transaction rolls back and DDL is atomic. (In the interface,
/// Ctrl-C is a key and asks first; SIGINT from elsewhere still stops.) SIGHUP is ignored: losing
/// the terminal must not stop a migration half-way. SIGUSR1 pauses at the next batch boundary,
/// SIGUSR2 resumes: control from any shell.
fn spawn_signal_handler(commands: tokio::sync::mpsc::UnboundedSender<Command>, interactive: bool) {
    tokio::spawn(async move {
        use tokio::signal::unix::{SignalKind, signal};
        let (Ok(mut int), Ok(mut term), Ok(mut hup), Ok(mut usr1), Ok(mut usr2)) = (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
            signal(SignalKind::hangup()),
            signal(SignalKind::user_defined1()),
            signal(SignalKind::user_defined2()),
        ) else {
            return;
        };
        let mut asked = false;
        loop {
            tokio::select! {
                _ = int.recv() => {}
                _ = term.recv() => {}
                _ = hup.recv() => continue,
                _ = usr1.recv() => {
                    let _ = commands.send(Command::Pause);
                    continue;
                }
                _ = usr2.recv() => {
                    let _ = commands.send(Command::Resume);
                    continue;
                }
            }
            if asked {
                if interactive {
                    tui::terminal::restore();
                }
                eprintln!("pacer: stopping now; the migration resumes from its last checkpoint.");
                super::exit_now(EXIT_ABORTED);
            }
            asked = true;
            if !interactive {
                eprintln!("pacer: stopping at the next batch boundary (again to stop at once).");
            }
            let _ = commands.send(Command::Abort);
        }
    });
}
