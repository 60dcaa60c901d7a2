//! A throwaway PostgreSQL for `pacer demo`, made of the throwaway servers the tests use too
//! ([`crate::servers::postgres`]): a primary and, if asked, a streaming replica in the demo's
//! directory (see the parent module), stopped and the directory removed by [`Cleanup`].
//!
//! Everything here blocks (it runs external programs); call it from `spawn_blocking`.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use super::{DIR_PREFIX, spawn_reaper, sweep_orphans};
use crate::servers::dir::ServerDir;
use crate::servers::postgres::{self, Postmaster, Programs, Settings, Shutdown};

/// Superuser of the demo cluster (trusted, from 127.0.0.1 and the unix socket only).
pub const DEMO_USER: &str = "pacer_demo";

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
        sweep_orphans(base, Some((bin, run_as)));
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
    pub(super) fn new(dir: ServerDir, programs: Programs, keep: bool) -> Cleanup {
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
