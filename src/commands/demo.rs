//! `pacer demo`: pacer's main job on a throwaway database. Starts a PostgreSQL in a temporary
//! directory (and, if asked, a streaming replica), seeds `orders`, starts a synthetic
//! application workload, runs the bundled demo plan like `pacer run`, and at the end stops
//! everything and removes the directory. Nothing touches the machine's own databases.
//!
//! The plan gates cleanup: there the operator "deploys" the application version that writes
//! the new column (`D`, see [`crate::demo::companion`]) before proceeding; headless, the demo
//! does both by itself.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::sync::watch;

use super::run::RunOptions;
use super::{EXIT_ABORTED, EXIT_DONE, Failure};
use crate::TargetArgs;
use crate::demo::cluster::{Cluster, DEMO_USER};
use crate::demo::companion::DemoApp;
use crate::demo::workload::{self, WorkloadSpec, WorkloadStats};
use crate::demo::{DEMO_PLAN, seed};
use crate::format::thousands;
use crate::servers::postgres::{Lookup, REPLICA_PROGRAM, SERVER_PROGRAMS, check_version};

/// Like `eprintln!`, but a closed stderr is no reason to panic (the clean-up must still run).
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

/// What `pacer demo` was asked for.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// Rows to seed.
    pub rows: u64,
    /// Also start a streaming replica.
    pub replica: bool,
    /// Total workload rate; the workload file's default when `None`.
    pub tps: Option<u32>,
    /// Theme name or path.
    pub theme: Option<String>,
    /// Braille chart markers.
    pub braille: bool,
    /// Leave the directory in place at the end.
    pub keep: bool,
}

/// Runs the demo; returns 0 when it ran to the end or the operator quit, 3 when a signal
/// stopped it while it was setting up, else the migration's exit code.
pub async fn run(options: DemoOptions) -> Result<u8, Failure> {
    let mut needed = SERVER_PROGRAMS.to_vec();
    if options.replica {
        needed.push(REPLICA_PROGRAM);
    }
    let bin = Lookup::from_env()
        .find("pacer demo", &needed)
        .map_err(Failure::refused)?;
    let version = check_version(&bin).map_err(Failure::refused)?;
    let interrupts = Interrupts::listen();

    let base = crate::servers::temp_base();
    say!(
        "pacer demo: starting a throwaway PostgreSQL ({version}, from {}) in {}",
        bin.display(),
        base.display()
    );
    let keep = options.keep;
    let started = tokio::task::spawn_blocking(move || Cluster::start(&bin, &base, keep))
        .await
        .map_err(|e| Failure::failed(format!("starting the demo server failed: {e}")))?;
    let mut cluster = started.map_err(|e| Failure::failed(format!("pacer demo: {e}")))?;
    // A second Ctrl-C exits at once, without destructors: stop the servers on the way out.
    let cleanup = cluster.cleanup();
    super::on_exit_now(Box::new(move || {
        let _ = cleanup.run();
    }));

    let prepared = interrupts.guard(prepare(&mut cluster, &options)).await;
    let (url, workload) = match prepared {
        Ok(Ok(ready)) => ready,
        Ok(Err(message)) => {
            let dir = finish(cluster).await;
            return Err(Failure::failed(format!("{message}\n{dir}")));
        }
        Err(signal) => {
            let dir = finish(cluster).await;
            say!("pacer demo: {signal}; {dir}");
            return Ok(EXIT_ABORTED);
        }
    };
    let plan = cluster.root.join("orders.toml");
    let written = std::fs::write(&plan, DEMO_PLAN)
        .map_err(|e| format!("cannot write the demo plan to {}: {e}", plan.display()));
    let outcome = match written {
        Ok(()) => {
            interrupts.disarm();
            let app = demo_app(&cluster, &options, &workload);
            run_plan(&plan, &url, &options, app).await
        }
        Err(e) => Err(Failure::failed(e)),
    };

    let stats = workload.stop().await;
    let dir = finish(cluster).await;
    say!("pacer demo: {}; {dir}", describe_workload(&stats));
    // Quitting is how a demo ends: not a failure.
    match outcome {
        Ok(EXIT_ABORTED) => Ok(EXIT_DONE),
        other => other,
    }
}

/// The demo's application as the screen sees it: its keys, status line and quit question,
/// with the servers' addresses for the log.
fn demo_app(
    cluster: &Cluster,
    options: &DemoOptions,
    workload: &workload::WorkloadHandle,
) -> DemoApp {
    let headless = !super::run::uses_tui(false);
    let mut app = DemoApp::new(
        workload.control(),
        cluster.root.clone(),
        options.keep,
        headless,
    )
    .note(format!(
        "demo: primary on 127.0.0.1:{} (psql -h 127.0.0.1 -p {} -U {DEMO_USER} {})",
        cluster.primary.port,
        cluster.primary.port,
        seed::DEMO_DATABASE
    ));
    if let Some(replica) = &cluster.replica {
        app = app.note(format!(
            "demo: streaming replica on 127.0.0.1:{} (psql -h 127.0.0.1 -p {} -U {DEMO_USER} \
             postgres -c 'SELECT pg_wal_replay_pause()' makes it lag)",
            replica.port, replica.port
        ));
    }
    app
}

/// Runs the demo plan in this process (the migration cannot outlive the throwaway database):
/// the interface on a terminal, else headless. The demo's own keys are the companion's; the
/// audit log goes to the demo's directory.
async fn run_plan(
    plan: &Path,
    url: &str,
    options: &DemoOptions,
    app: DemoApp,
) -> Result<u8, Failure> {
    let args = TargetArgs {
        plan: plan.to_path_buf(),
        target: Some(url.to_string()),
    };
    let audit = plan.with_file_name("audit.jsonl");
    if super::run::uses_tui(false) {
        say!(
            "pacer demo: audit log {}; keys < and > halve and double the application workload, \
             D deploys its new version at the gate before cleanup",
            audit.display()
        );
    } else {
        say!(
            "pacer demo: standard output is not a terminal; running headless (progress lines \
             below). At the gate before cleanup the demo deploys the application version that \
             writes amount and proceeds by itself. Audit log {}",
            audit.display()
        );
    }
    let run_options = RunOptions {
        headless: false,
        json: false,
        theme: options.theme.clone(),
        sample_interval: Duration::from_secs(1),
        braille: options.braille,
        on_hangup: crate::control::OnHangup::Continue,
        runner: false,
        log_file: None,
        audit_log: super::AuditLog::Path(audit),
    };
    super::run::embedded(&args, run_options, Some(Box::new(app))).await
}

/// Replica, database, table, workload: returns the target URL and the running workload.
async fn prepare(
    cluster: &mut Cluster,
    options: &DemoOptions,
) -> Result<(String, workload::WorkloadHandle), String> {
    say!(
        "pacer demo: primary on 127.0.0.1:{} (log: {})",
        cluster.primary.port,
        cluster.primary.log.display()
    );
    if options.replica {
        // pg_basebackup blocks for a moment; the primary is nearly empty now, so it is quick.
        let replica = tokio::task::block_in_place(|| cluster.start_replica().cloned())?;
        say!(
            "pacer demo: streaming replica on 127.0.0.1:{} (log: {})",
            replica.port,
            replica.log.display()
        );
    }
    seed::create_database(&cluster.primary.url("postgres")).await?;
    let url = format!(
        "{}?sslmode=disable",
        cluster.primary.url(seed::DEMO_DATABASE)
    );
    seed::seed_orders(&url, options.rows).await?;
    let spec = WorkloadSpec::bundled();
    let tps = options.tps.unwrap_or(spec.tps);
    let connections = spec.connections;
    let handle = workload::start(&url, spec, tps).await?;
    say!(
        "pacer demo: application workload: {tps} transactions/s over {connections} sessions \
         (reads, amount and status updates, new orders)"
    );
    Ok((url, handle))
}

/// Stops the servers and removes the directory (unless kept); says what became of it.
async fn finish(cluster: Cluster) -> String {
    let root = cluster.root.clone();
    let primary = cluster.primary.clone();
    let keep = cluster.keep;
    let stopped = tokio::task::spawn_blocking(move || cluster.stop())
        .await
        .unwrap_or_else(|e| Err(format!("the clean-up task failed: {e}")));
    match stopped {
        Err(e) => format!(
            "cleaning up failed: {e}; look for postgres processes of {} and remove it",
            root.display()
        ),
        Ok(()) if keep => format!(
            "stopped the demo servers and kept {} (start it again: pg_ctl -D {} -l {} start)",
            root.display(),
            primary.data_dir.display(),
            primary.log.display()
        ),
        Ok(()) => format!("stopped the demo servers and removed {}", root.display()),
    }
}

fn describe_workload(stats: &WorkloadStats) -> String {
    let mut text = format!(
        "the application workload ran {} transactions",
        thousands(stats.done)
    );
    if stats.errors > 0 {
        text.push_str(&format!(
            ", {} failed (last: {})",
            thousands(stats.errors),
            stats.last_error.as_deref().unwrap_or("?")
        ));
    }
    text
}

/// SIGINT, SIGTERM and SIGHUP while the demo sets up: stop, clean up, exit. Once the migration
/// runs, `pacer run`'s own handling takes over (Ctrl-C stops at a batch boundary).
struct Interrupts {
    armed: Arc<AtomicBool>,
    rx: watch::Receiver<Option<&'static str>>,
}

impl Interrupts {
    fn listen() -> Interrupts {
        let armed = Arc::new(AtomicBool::new(true));
        let (tx, rx) = watch::channel(None);
        let on = armed.clone();
        tokio::spawn(async move {
            use tokio::signal::unix::{SignalKind, signal};
            let (Ok(mut int), Ok(mut term), Ok(mut hup)) = (
                signal(SignalKind::interrupt()),
                signal(SignalKind::terminate()),
                signal(SignalKind::hangup()),
            ) else {
                return;
            };
            loop {
                let name = tokio::select! {
                    _ = int.recv() => "interrupted (SIGINT)",
                    _ = term.recv() => "terminated (SIGTERM)",
                    _ = hup.recv() => "the terminal closed (SIGHUP)",
                };
                if on.load(Ordering::SeqCst) {
                    tx.send_replace(Some(name));
                }
            }
        });
        Interrupts { armed, rx }
    }

    /// Runs `work` unless a signal comes first; then returns the signal's description.
    async fn guard<T>(&self, work: impl Future<Output = T>) -> Result<T, &'static str> {
        let mut rx = self.rx.clone();
        tokio::select! {
            done = work => Ok(done),
            signal = rx.wait_for(Option::is_some) => Err(signal.ok().and_then(|s| *s).unwrap_or("interrupted")),
        }
    }

    fn disarm(&self) {
        self.armed.store(false, Ordering::SeqCst);
    }
}
