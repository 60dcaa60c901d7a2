//! A throwaway PostgreSQL for `pacer demo`, made of the throwaway servers the tests use too
//! ([`crate::servers::postgres`]): a primary and, if asked, a streaming replica in one private
//! directory (`$TMPDIR/pacer-demo-*`, which also holds the demo's plan and audit log), stopped
//! and the directory removed when the demo ends, also on an error, a panic or a second Ctrl-C
//! ([`Cleanup`]), and by a watchdog process when pacer itself is killed ([`spawn_reaper`]).
//!
//! Everything here blocks (it runs external programs); call it from `spawn_blocking`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};

use crate::servers::dir::ServerDir;
use crate::servers::postgres::{self, Postmaster, Programs, Settings, Shutdown};

/// Superuser of the demo cluster (trusted, from 127.0.0.1 and the unix socket only).
pub const DEMO_USER: &str = "pacer_demo";
/// Prefix of the demo's temporary directory.
pub const DIR_PREFIX: &str = "pacer-demo-";

/// The demo primary's settings (a replica copies them). Sized for a laptop or a small VM.
///
/// fsync is off: the cluster is thrown away when the demo ends, so there is nothing to protect
/// from a power loss, and on a slow laptop disk the flushes would only make the demo's batch
/// times say more about the disk than about pacer. What the demo shows is unaffected: the
/// backfill writes the same WAL (wal_level = replica, full-page writes on), takes the same
/// locks, and a replica lags the same way. `pacer run` on a real database runs with its fsync.
///
/// pg_hba.conf: trust, and only for the local socket and 127.0.0.1 (the server listens nowhere
/// else).
const SETTINGS: Settings = Settings {
    superuser: DEMO_USER,
    conf: "
# --- written by pacer demo ---
listen_addresses = '127.0.0.1'
max_connections = 40
shared_buffers = 128MB
work_mem = 8MB
maintenance_work_mem = 128MB
fsync = off
full_page_writes = on
wal_level = replica
max_wal_senders = 4
max_replication_slots = 4
wal_keep_size = 512MB
max_wal_size = 1GB
hot_standby = on
hot_standby_feedback = on
log_line_prefix = '%m [%p] %q%a '
",
    hba: "\
# written by pacer demo: a throwaway cluster, reachable from this machine only
local   all             all                                     trust
host    all             all             127.0.0.1/32            trust
local   replication     all                                     trust
host    replication     all             127.0.0.1/32            trust
",
};

/// The demo's temporary directory with its primary and optional replica. Dropping it stops the
/// servers and removes the directory (see [`Cleanup`]).
pub struct Cluster {
    /// The demo's directory.
    pub root: PathBuf,
    /// The primary.
    pub primary: Postmaster,
    /// The streaming replica, when started.
    pub replica: Option<Postmaster>,
    /// Whether the directory stays when the demo ends.
    pub keep: bool,
    programs: Programs,
    cleanup: Cleanup,
}

impl Cluster {
    /// Creates `BASE/pacer-demo-*`, runs initdb and starts the primary on a free port, with the
    /// watchdog. `base` is normally [`crate::servers::temp_base`]. `keep` leaves the directory
    /// in place at the end (the servers are still stopped).
    pub fn start(bin: &Path, base: &Path, keep: bool) -> Result<Cluster, String> {
        let run_as = postgres::run_as()?;
        for orphan in postgres::sweep_orphans(base, DIR_PREFIX, bin, run_as) {
            eprintln!(
                "pacer demo: removed {}, left behind by an earlier demo (pid {}) that was killed",
                orphan.dir.display(),
                orphan.pid
            );
        }
        let dir = ServerDir::create(base, DIR_PREFIX, run_as)?;
        let root = dir.path().to_path_buf();
        let programs = Programs::new(bin, run_as, &root);
        let cleanup = Cleanup::new(dir, programs.clone(), keep);
        let started = spawn_reaper(&root, bin, keep).and_then(|reaper| {
            cleanup.lock().reaper = Some(reaper);
            let mut primary = Postmaster::init(
                &programs,
                &SETTINGS,
                root.join("primary"),
                root.join("primary.log"),
            )?;
            primary.start_on_free_port()?;
            Ok(primary)
        });
        match started {
            Ok(primary) => Ok(Cluster {
                root,
                primary,
                replica: None,
                keep,
                programs,
                cleanup,
            }),
            Err(e) => {
                let _ = cleanup.run();
                Err(e)
            }
        }
    }

    /// Makes a streaming replica of the primary (`pg_basebackup -R -X stream`) and starts it on
    /// another free port.
    pub fn start_replica(&mut self) -> Result<&Postmaster, String> {
        // The replica's walreceiver reports its cluster_name as its application name.
        let mut replica = self.primary.make_replica(
            &self.programs,
            self.root.join("replica"),
            self.root.join("replica.log"),
            Some("replica"),
        )?;
        replica.start_on_free_port()?;
        Ok(self.replica.insert(replica))
    }

    /// A handle that stops the servers and removes the directory; safe to run more than once.
    pub fn cleanup(&self) -> Cleanup {
        self.cleanup.clone()
    }

    /// Stops the servers and removes the directory (unless kept).
    pub fn stop(self) -> Result<(), String> {
        self.cleanup.run()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = self.cleanup.run();
    }
}

/// Stops the demo's servers and removes its directory. Idempotent; also run from the exit hook
/// when pacer exits at once (a second Ctrl-C), where no destructor runs.
#[derive(Debug, Clone)]
pub struct Cleanup {
    inner: Arc<Mutex<CleanupState>>,
}

#[derive(Debug)]
struct CleanupState {
    dir: ServerDir,
    programs: Programs,
    keep: bool,
    done: bool,
    /// The watchdog process and our end of its pipe (see [`spawn_reaper`]).
    reaper: Option<(std::process::Child, std::process::ChildStdin)>,
}

impl Cleanup {
    fn new(dir: ServerDir, programs: Programs, keep: bool) -> Cleanup {
        Cleanup {
            inner: Arc::new(Mutex::new(CleanupState {
                dir,
                programs,
                keep,
                done: false,
                reaper: None,
            })),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, CleanupState> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Stops the servers (replica first; fast, else immediate, else SIGKILL) and removes the
    /// directory unless it is to be kept. The first call does the work.
    pub fn run(&self) -> Result<(), String> {
        let mut s = self.lock();
        if s.done {
            return Ok(());
        }
        s.done = true;
        let mut problems = Vec::new();
        if let Err(e) = postgres::stop_servers_in(&s.programs, s.dir.path(), Shutdown::Fast) {
            problems.push(e);
        }
        if s.keep {
            // Kept on purpose: the next demo's sweep must not take it for an orphan.
            s.dir.keep();
        } else if let Err(e) = s.dir.remove() {
            problems.push(e);
        }
        // Nothing left for the watchdog: closing its pipe ends it.
        if let Some((mut child, stdin)) = s.reaper.take() {
            drop(stdin);
            let _ = child.wait();
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems.join("; "))
        }
    }
}

/// The hidden subcommand the watchdog runs as.
pub const REAPER_COMMAND: &str = "demo-reaper";

/// Starts the watchdog: this very program as `pacer demo-reaper ROOT BIN [--keep]`, in a
/// process group of its own (a Ctrl-C on the terminal does not reach it), reading a pipe whose
/// other end only this process holds. When this process ends in any way (even SIGKILL or an
/// abort, where no destructor runs) the pipe closes and the watchdog stops the servers and
/// removes the directory. After a normal clean-up it finds nothing left to do.
fn spawn_reaper(
    root: &Path,
    bin: &Path,
    keep: bool,
) -> Result<(std::process::Child, std::process::ChildStdin), String> {
    use std::os::unix::process::CommandExt;
    let exe = std::env::current_exe()
        .map_err(|e| format!("cannot find pacer's own executable for the demo's watchdog: {e}"))?;
    let mut cmd = Command::new(exe);
    cmd.arg(REAPER_COMMAND)
        .arg(root)
        .arg(bin)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0);
    if keep {
        cmd.arg("--keep");
    }
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot start the demo's watchdog: {e}"))?;
    let stdin = child.stdin.take().expect("stdin is piped");
    Ok((child, stdin))
}

/// The watchdog's work (see [`spawn_reaper`]): waits until standard input closes, then stops
/// the servers of `root` and removes it (unless `keep`).
pub fn reap(root: &Path, bin: &Path, keep: bool) -> Result<(), String> {
    let _ = std::io::copy(&mut std::io::stdin().lock(), &mut std::io::sink());
    if !root.exists() {
        return Ok(());
    }
    let run_as = postgres::run_as().ok().flatten();
    let programs = Programs::new(bin, run_as, root);
    Cleanup::new(ServerDir::adopt(root), programs, keep).run()
}
