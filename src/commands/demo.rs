//! `pacer demo`: pacer's main job on a throwaway database. Starts a PostgreSQL (or, with
//! `--engine mariadb`, a MariaDB) in a temporary directory (and, if asked, a replica), seeds
//! `orders`, starts a synthetic application workload, runs the bundled demo plan like `pacer
//! run`, and at the end stops everything and removes the directory. Nothing touches the
//! machine's own databases.
//!
//! The plan gates cleanup: there the operator "deploys" the application version that writes
//! the new column (`D`, see [`crate::demo::companion`]) before proceeding; headless, the demo
//! does both by itself.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::run::RunOptions;
use super::{EXIT_ABORTED, EXIT_DONE, Failure};
use crate::TargetArgs;
use crate::demo::cluster::postgres::DEMO_USER;
use crate::demo::cluster::{self, Cluster};
use crate::demo::companion::DemoApp;
use crate::demo::workload::{self, WorkloadSpec, WorkloadStats};
use crate::demo::{Engine, seed};
use crate::format::thousands;
use crate::servers::mariadb as mdb;
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
    /// The database server to run on.
    pub engine: Engine,
    /// Rows to seed.
    pub rows: u64,
    /// Also start a replica.
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

/// The server programs found for the demo, checked.
enum Programs {
    Postgres {
        bin: PathBuf,
        version: String,
    },
    MariaDb {
        binaries: mdb::Binaries,
        version: String,
    },
}

impl Programs {
    /// The engine's programs, or a refusal (exit 2) that says what to install.
    fn find(options: &DemoOptions) -> Result<Programs, Failure> {
        match options.engine {
            Engine::Postgres => {
                let mut needed = SERVER_PROGRAMS.to_vec();
                if options.replica {
                    needed.push(REPLICA_PROGRAM);
                }
                let bin = Lookup::from_env()
                    .find("pacer demo", &needed)
                    .map_err(Failure::refused)?;
                let version = check_version(&bin).map_err(Failure::refused)?;
                Ok(Programs::Postgres { bin, version })
            }
            Engine::MariaDb => {
                let binaries = mdb::Lookup::from_env()
                    .find("pacer demo --engine mariadb")
                    .map_err(Failure::refused)?;
                let line = mdb::check_version(&binaries.server).map_err(Failure::refused)?;
                Ok(Programs::MariaDb {
                    binaries,
                    version: mariadb_version(&line),
                })
            }
        }
    }

    /// Says what starts where.
    fn describe(&self, base: &Path) -> String {
        match self {
            Programs::Postgres { bin, version } => format!(
                "pacer demo: starting a throwaway PostgreSQL ({version}, from {}) in {}",
                bin.display(),
                base.display()
            ),
            Programs::MariaDb { binaries, version } => format!(
                "pacer demo: starting a throwaway MariaDB ({version}, {}) in {}",
                binaries.server.display(),
                base.display()
            ),
        }
    }

    /// Starts the primary (blocks).
    fn start(self, base: &Path, keep: bool) -> Result<Cluster, String> {
        match self {
            Programs::Postgres { bin, .. } => {
                cluster::postgres::Cluster::start(&bin, base, keep).map(Cluster::Postgres)
            }
            Programs::MariaDb { binaries, .. } => {
                cluster::mariadb::Cluster::start(&binaries, base, keep).map(Cluster::MariaDb)
            }
        }
    }
}

/// "10.11.19" from `mariadbd --version`'s line ("mariadbd  Ver 10.11.19-MariaDB-0+deb12u1 for
/// debian-linux-gnu …"); the whole line if it reads otherwise.
fn mariadb_version(line: &str) -> String {
    line.split(" Ver ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|v| v.split('-').next())
        .map_or_else(|| line.to_string(), |v| format!("MariaDB {v}"))
}

/// Runs the demo; returns 0 when it ran to the end or the operator quit, 3 when a signal
/// stopped it while it was setting up, else the migration's exit code.
pub async fn run(options: DemoOptions) -> Result<u8, Failure> {
    let programs = Programs::find(&options)?;
    let interrupts = Interrupts::listen();

    let base = crate::servers::temp_base();
    say!("{}", programs.describe(&base));
    let keep = options.keep;
    let began = Instant::now();
    let started = tokio::task::spawn_blocking(move || programs.start(&base, keep))
        .await
        .map_err(|e| Failure::failed(format!("starting the demo server failed: {e}")))?;
    let mut cluster = started.map_err(|e| Failure::failed(format!("pacer demo: {e}")))?;
    // A second Ctrl-C exits at once, without destructors: stop the servers on the way out.
    super::on_exit_now(cluster.cleanup());

    let prepared = interrupts
        .guard(prepare(&mut cluster, &options, began.elapsed()))
        .await;
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
    let plan = cluster.root().join(options.engine.plan_file());
    let written = std::fs::write(&plan, options.engine.plan())
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
    let app = DemoApp::new(
        workload.control(),
        cluster.root().to_path_buf(),
        options.keep,
        headless,
    )
    .product(options.engine.product());
    let primary = cluster.primary().port;
    let replica = cluster.replica().map(|r| r.port);
    let db = seed::DEMO_DATABASE;
    match cluster {
        Cluster::Postgres(_) => {
            let app = app.note(format!(
                "demo: primary on 127.0.0.1:{primary} (psql -h 127.0.0.1 -p {primary} -U \
                 {DEMO_USER} {db})"
            ));
            match replica {
                Some(port) => app.note(format!(
                    "demo: streaming replica on 127.0.0.1:{port} (psql -h 127.0.0.1 -p {port} \
                     -U {DEMO_USER} postgres -c 'SELECT pg_wal_replay_pause()' makes it lag)"
                )),
                None => app,
            }
        }
        Cluster::MariaDb(_) => {
            let app = app.note(format!(
                "demo: MariaDB primary on 127.0.0.1:{primary} (mariadb -h 127.0.0.1 -P \
                 {primary} -u root {db})"
            ));
            match replica {
                Some(port) => app.note(format!(
                    "demo: replica on 127.0.0.1:{port}, following by GTID (mariadb -h 127.0.0.1 \
                     -P {port} -u root -e 'STOP SLAVE SQL_THREAD' makes it lag; pacer does not \
                     measure MySQL replica lag yet, so it does not throttle on it)"
                )),
                None => app,
            }
        }
    }
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
/// `up` is how long the primary took to start.
async fn prepare(
    cluster: &mut Cluster,
    options: &DemoOptions,
    up: Duration,
) -> Result<(String, workload::WorkloadHandle), String> {
    match options.engine {
        Engine::Postgres => prepare_postgres(cluster, options).await,
        Engine::MariaDb => prepare_mariadb(cluster, options, up).await,
    }
}

async fn prepare_postgres(
    cluster: &mut Cluster,
    options: &DemoOptions,
) -> Result<(String, workload::WorkloadHandle), String> {
    let Cluster::Postgres(cluster) = cluster else {
        return Err("the demo's servers are not PostgreSQL".into());
    };
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
    seed::postgres::create_database(&cluster.primary.url("postgres")).await?;
    let url = format!(
        "{}?sslmode=disable",
        cluster.primary.url(seed::DEMO_DATABASE)
    );
    seed::postgres::seed_orders(&url, options.rows).await?;
    let handle = start_workload(Engine::Postgres, &url, options).await?;
    Ok((url, handle))
}

async fn prepare_mariadb(
    cluster: &mut Cluster,
    options: &DemoOptions,
    up: Duration,
) -> Result<(String, workload::WorkloadHandle), String> {
    let primary = cluster.primary();
    say!(
        "pacer demo: MariaDB primary on 127.0.0.1:{}, up in {:.1} s (log: {})",
        primary.port,
        up.as_secs_f64(),
        primary.log.display()
    );
    if options.replica {
        // Started before the seed, it replicates the table as the primary writes it.
        let began = Instant::now();
        let replica = tokio::task::block_in_place(|| cluster.start_replica())?;
        say!(
            "pacer demo: replica on 127.0.0.1:{}, up in {:.1} s, following the primary by GTID \
             (log: {})",
            replica.port,
            began.elapsed().as_secs_f64(),
            replica.log.display()
        );
    }
    seed::mariadb::create_database(&cluster::mariadb::url(&primary, "")).await?;
    let url = cluster::mariadb::url(&primary, seed::DEMO_DATABASE);
    seed::mariadb::seed_orders(&url, options.rows).await?;
    let handle = start_workload(Engine::MariaDb, &url, options).await?;
    // pacer itself: no TLS to try first, and an empty password, so that neither MYSQL_PWD nor
    // an option file's password of the machine's own MariaDB reaches the demo's server.
    let target = format!(
        "mysql://root:@127.0.0.1:{}/{}?ssl-mode=DISABLED",
        primary.port,
        seed::DEMO_DATABASE
    );
    Ok((target, handle))
}

/// Starts the bundled workload in `engine`'s SQL on the database of `url`, and says so.
async fn start_workload(
    engine: Engine,
    url: &str,
    options: &DemoOptions,
) -> Result<workload::WorkloadHandle, String> {
    let spec = WorkloadSpec::bundled_for(engine);
    let tps = options.tps.unwrap_or(spec.tps);
    let connections = spec.connections;
    let handle = match engine {
        Engine::Postgres => workload::postgres::start(url, spec, tps).await?,
        Engine::MariaDb => workload::mysql::start(url, spec, tps).await?,
    };
    say!(
        "pacer demo: application workload: {tps} transactions/s over {connections} sessions \
         (reads, amount and status updates, new orders)"
    );
    Ok(handle)
}

/// Stops the servers and removes the directory (unless kept); says what became of it.
async fn finish(cluster: Cluster) -> String {
    let root = cluster.root().to_path_buf();
    let primary = cluster.primary();
    let keep = cluster.keep();
    let (process, again) = match &cluster {
        Cluster::Postgres(_) => (
            "postgres",
            format!(
                "pg_ctl -D {} -l {} start",
                primary.data_dir.display(),
                primary.log.display()
            ),
        ),
        Cluster::MariaDb(c) => ("mariadbd", c.restart_command()),
    };
    let stopped = tokio::task::spawn_blocking(move || cluster.stop())
        .await
        .unwrap_or_else(|e| Err(format!("the clean-up task failed: {e}")));
    match stopped {
        Err(e) => format!(
            "cleaning up failed: {e}; look for {process} processes of {} and remove it",
            root.display()
        ),
        Ok(()) if keep => format!(
            "stopped the demo servers and kept {} (start it again: {again})",
            root.display()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mariadb_version_is_read_off_the_server_line() {
        assert_eq!(
            mariadb_version(
                "mariadbd  Ver 10.11.19-MariaDB-0+deb12u1 for debian-linux-gnu on x86_64 (Debian 12)"
            ),
            "MariaDB 10.11.19"
        );
        assert_eq!(mariadb_version("something else"), "something else");
    }
}
