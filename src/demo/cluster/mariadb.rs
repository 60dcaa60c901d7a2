//! A throwaway MariaDB for `pacer demo --engine mariadb`, made of the throwaway servers the tests
//! use too ([`crate::servers::mariadb`]): a primary with its binary log (ROW) and, if asked, a
//! replica that follows it by GTID, in the demo's directory (see the parent module), stopped and
//! the directory removed by [`Cleanup`].
//!
//! Both run with `--no-defaults` (nothing of the machine's own MariaDB reaches them), listen on
//! 127.0.0.1 only, and root logs in without a password. Measured here (MariaDB 10.11, 2 cores):
//! the primary answers 0.8 s after the start (install 0.6 s), a replica 0.8 s later.
//!
//! Everything here blocks (it runs external programs); call it from `spawn_blocking`.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use super::{DIR_PREFIX, Endpoint, spawn_reaper, sweep_orphans};
use crate::servers::dir::ServerDir;
use crate::servers::mariadb::{self, Binaries, Config, Login, Mariadbd, Programs, Shutdown};
use crate::servers::postgres as pg;

/// Server id of the primary; the replica takes the next.
const PRIMARY_ID: u32 = 1;

/// The demo's directory with its MariaDB primary and optional replica. Dropping it stops the
/// servers and removes the directory (see [`Cleanup`]).
pub struct Cluster {
    /// The demo's directory.
    pub root: PathBuf,
    /// The primary.
    pub primary: Endpoint,
    /// The replica, when started.
    pub replica: Option<Endpoint>,
    /// Whether the directory stays when the demo ends.
    pub keep: bool,
    programs: Programs,
    metadata_lock_info: bool,
    /// The OS user the servers run as (when pacer runs as root).
    os_user: Option<&'static str>,
    cleanup: Cleanup,
}

/// How a demo server runs: binary log on (the servers' default), the `metadata_lock_info`
/// plugin when there is one (pacer then sees who holds the table's metadata lock), and a
/// replica names itself to its primary (`SHOW SLAVE HOSTS`, which pacer's preflight lists).
fn config(server_id: u32, replica: bool, metadata_lock_info: bool) -> Config {
    Config {
        server_id,
        performance_schema: false,
        tls: None,
        report_host: replica.then(|| "127.0.0.1".to_string()),
        replica,
        metadata_lock_info,
        server_args: Vec::new(),
    }
}

impl Cluster {
    /// Creates `BASE/pacer-demo-*`, installs a data directory and starts the primary on a free
    /// port, with the watchdog. `base` is normally [`crate::servers::temp_base`]. `keep` leaves
    /// the directory in place at the end (the servers are still stopped).
    pub fn start(binaries: &Binaries, base: &Path, keep: bool) -> Result<Cluster, String> {
        let run_as = mariadb::run_as()?;
        // A PostgreSQL demo's orphan is stopped with its own programs when they are here.
        let pg_bin = pg::Lookup::from_env()
            .find("pacer demo", &pg::SERVER_PROGRAMS)
            .ok();
        let pg_run_as = pg::run_as().ok().flatten();
        sweep_orphans(base, pg_bin.as_deref().map(|bin| (bin, pg_run_as)));
        let ids = run_as.as_ref().map(|u| (u.uid, u.gid));
        let dir = ServerDir::create(base, DIR_PREFIX, ids)?;
        let root = dir.path().to_path_buf();
        let programs = Programs::new(binaries, run_as.as_ref(), &root);
        let metadata_lock_info = mariadb::has_metadata_lock_info(binaries);
        let cleanup = Cleanup::new(dir, keep);
        let started = spawn_reaper(&root, &binaries.server, keep).and_then(|reaper| {
            cleanup.lock().reaper = Some(reaper);
            let mut primary = Mariadbd::install(
                &programs,
                config(PRIMARY_ID, false, metadata_lock_info),
                root.join("primary"),
                root.join("primary.log"),
            )?;
            primary.start_on_free_port()?;
            let endpoint = endpoint(&primary);
            cleanup.lock().servers.push(primary);
            Ok(endpoint)
        });
        match started {
            Ok(primary) => Ok(Cluster {
                root,
                primary,
                replica: None,
                keep,
                programs,
                metadata_lock_info,
                os_user: run_as.as_ref().map(|u| u.name),
                cleanup,
            }),
            Err(e) => {
                let _ = cleanup.run();
                Err(e)
            }
        }
    }

    /// Installs a replica, starts it on another free port and has it replicate the primary's
    /// whole binary log by GTID (`MASTER_USE_GTID=slave_pos`), as root. It catches up by
    /// itself; this does not wait for it.
    pub fn start_replica(&mut self) -> Result<Endpoint, String> {
        let mut replica = Mariadbd::install(
            &self.programs,
            config(PRIMARY_ID + 1, true, self.metadata_lock_info),
            self.root.join("replica"),
            self.root.join("replica.log"),
        )?;
        replica.start_on_free_port()?;
        let follow = format!(
            "CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT={}, MASTER_USER='root', \
             MASTER_USE_GTID=slave_pos, MASTER_CONNECT_RETRY=1;\nSTART SLAVE;",
            self.primary.port
        );
        let followed = replica.client("", Login::Root, false, &follow);
        let endpoint = endpoint(&replica);
        self.cleanup.lock().servers.push(replica);
        followed.map_err(|e| format!("the demo replica does not follow the primary: {e}"))?;
        Ok(self.replica.insert(endpoint).clone())
    }

    /// The command that starts the primary again on its data directory (after `--keep`).
    pub fn restart_command(&self) -> String {
        let user = self
            .os_user
            .map_or_else(String::new, |name| format!(" --user={name}"));
        format!(
            "mariadbd --no-defaults{user} --datadir={} --port={} --bind-address=127.0.0.1",
            self.primary.data_dir.display(),
            self.primary.port
        )
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

fn endpoint(server: &Mariadbd) -> Endpoint {
    Endpoint {
        port: server.port,
        log: server.log.clone(),
        data_dir: server.data_dir.clone(),
    }
}

/// The demo primary's URL for database `db` (empty: none): `mysql://root@127.0.0.1:PORT/db`.
pub fn url(primary: &Endpoint, db: &str) -> String {
    format!("mysql://root@127.0.0.1:{}/{db}", primary.port)
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
    /// The servers started, the primary first.
    servers: Vec<Mariadbd>,
    keep: bool,
    done: bool,
    /// The watchdog process and our end of its pipe (see [`spawn_reaper`]).
    reaper: Option<(std::process::Child, std::process::ChildStdin)>,
}

impl Cleanup {
    fn new(dir: ServerDir, keep: bool) -> Cleanup {
        Cleanup {
            inner: Arc::new(Mutex::new(CleanupState {
                dir,
                servers: Vec::new(),
                keep,
                done: false,
                reaper: None,
            })),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, CleanupState> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Stops the servers (the replica first; `SHUTDOWN`, else SIGKILL) and removes the
    /// directory unless it is to be kept. The first call does the work.
    pub fn run(&self) -> Result<(), String> {
        let mut s = self.lock();
        if s.done {
            return Ok(());
        }
        s.done = true;
        let mut problems = Vec::new();
        let mut servers = std::mem::take(&mut s.servers);
        for server in servers.iter_mut().rev() {
            if let Err(e) = server.stop(Shutdown::Clean) {
                problems.push(e);
            }
        }
        // Whatever else runs there (a server whose start was cut short).
        if let Err(e) = mariadb::kill_servers_in(s.dir.path()) {
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
