//! The demo's throwaway servers, made of the throwaway servers the tests use too
//! ([`crate::servers`]): a PostgreSQL ([`postgres`]) or a MariaDB ([`mariadb`]) primary and, if
//! asked, a replica, in one private directory (`$TMPDIR/pacer-demo-*`, which also holds the
//! demo's plan and audit log). They are stopped and the directory removed when the demo ends,
//! also on an error, a panic or a second Ctrl-C (each engine's `Cleanup`), and by a watchdog
//! process when pacer itself is killed ([`spawn_reaper`]).
//!
//! Both engines' demos share the directory prefix, so each start sweeps the orphans of either
//! (a killed PostgreSQL demo's directory may hold a running MariaDB server, and the other way
//! round, only if its watchdog was killed too, but then it must not stay behind).
//!
//! Everything here blocks (it runs external programs); call it from `spawn_blocking`.

pub mod mariadb;
pub mod postgres;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::servers::dir::{self, ServerDir};
use crate::servers::{mariadb as mdb, postgres as pg};

/// Prefix of the demo's temporary directory.
pub const DIR_PREFIX: &str = "pacer-demo-";

/// Where one of the demo's servers listens and logs.
#[derive(Debug, Clone)]
pub struct Endpoint {
    /// Its TCP port on 127.0.0.1.
    pub port: u16,
    /// Its server log.
    pub log: PathBuf,
    /// Its data directory.
    pub data_dir: PathBuf,
}

/// The demo's servers, of either engine. Dropping it stops them and removes the directory.
pub enum Cluster {
    /// A PostgreSQL primary and maybe a streaming replica.
    Postgres(postgres::Cluster),
    /// A MariaDB primary and maybe a GTID replica.
    MariaDb(mariadb::Cluster),
}

impl Cluster {
    /// The demo's directory.
    pub fn root(&self) -> &Path {
        match self {
            Cluster::Postgres(c) => &c.root,
            Cluster::MariaDb(c) => &c.root,
        }
    }

    /// Whether the directory stays when the demo ends.
    pub fn keep(&self) -> bool {
        match self {
            Cluster::Postgres(c) => c.keep,
            Cluster::MariaDb(c) => c.keep,
        }
    }

    /// The primary.
    pub fn primary(&self) -> Endpoint {
        match self {
            Cluster::Postgres(c) => c.primary.endpoint(),
            Cluster::MariaDb(c) => c.primary.clone(),
        }
    }

    /// The replica, when started.
    pub fn replica(&self) -> Option<Endpoint> {
        match self {
            Cluster::Postgres(c) => c.replica.as_ref().map(|r| r.endpoint()),
            Cluster::MariaDb(c) => c.replica.clone(),
        }
    }

    /// Starts the replica (blocks a moment).
    pub fn start_replica(&mut self) -> Result<Endpoint, String> {
        match self {
            Cluster::Postgres(c) => c.start_replica().map(|r| r.endpoint()),
            Cluster::MariaDb(c) => c.start_replica(),
        }
    }

    /// Something that stops the servers and removes the directory, for the exit hook; safe to
    /// run more than once.
    pub fn cleanup(&self) -> Box<dyn Fn() + Send> {
        match self {
            Cluster::Postgres(c) => {
                let cleanup = c.cleanup();
                Box::new(move || {
                    let _ = cleanup.run();
                })
            }
            Cluster::MariaDb(c) => {
                let cleanup = c.cleanup();
                Box::new(move || {
                    let _ = cleanup.run();
                })
            }
        }
    }

    /// Stops the servers and removes the directory (unless kept).
    pub fn stop(self) -> Result<(), String> {
        match self {
            Cluster::Postgres(c) => c.stop(),
            Cluster::MariaDb(c) => c.stop(),
        }
    }
}

impl pg::Postmaster {
    fn endpoint(&self) -> Endpoint {
        Endpoint {
            port: self.port,
            log: self.log.clone(),
            data_dir: self.data_dir.clone(),
        }
    }
}

/// Removes the demo directories in `base` whose pacer died and whose watchdog did not clean up
/// after it, stopping the servers of either engine in them; says so on stderr. `pg` is how to
/// run PostgreSQL's programs, when known (else its servers are killed).
fn sweep_orphans(base: &Path, pg: Option<(&Path, Option<(u32, u32)>)>) {
    let (bin, run_as) = pg.unwrap_or((Path::new(""), None));
    let orphans = dir::sweep_orphans(base, DIR_PREFIX, |dir| {
        let _ = mdb::kill_servers_in(dir);
        let programs = pg::Programs::new(bin, run_as, dir);
        let _ = pg::stop_servers_in(&programs, dir, pg::Shutdown::Immediate);
    });
    for orphan in orphans {
        eprintln!(
            "pacer demo: removed {}, left behind by an earlier demo (pid {}) that was killed",
            orphan.dir.display(),
            orphan.pid
        );
    }
}

/// The hidden subcommand the watchdog runs as.
pub const REAPER_COMMAND: &str = "demo-reaper";

/// Starts the watchdog: this very program as `pacer demo-reaper ROOT BIN [--keep]`, in a
/// process group of its own (a Ctrl-C on the terminal does not reach it), reading a pipe whose
/// other end only this process holds. When this process ends in any way (even SIGKILL or an
/// abort, where no destructor runs) the pipe closes and the watchdog stops the servers and
/// removes the directory. After a normal clean-up it finds nothing left to do. `bin` is where
/// PostgreSQL's programs are (for a MariaDB demo, the server program: only named).
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
/// the servers of `root`, of either engine, and removes it (unless `keep`).
pub fn reap(root: &Path, bin: &Path, keep: bool) -> Result<(), String> {
    let _ = std::io::copy(&mut std::io::stdin().lock(), &mut std::io::sink());
    if !root.exists() {
        return Ok(());
    }
    // MariaDB's servers are killed (InnoDB recovers a kept one on its next start); then
    // PostgreSQL's clean-up stops its own and removes the directory.
    let killed = mdb::kill_servers_in(root);
    let run_as = pg::run_as().ok().flatten();
    let programs = pg::Programs::new(bin, run_as, root);
    let cleaned = postgres::Cleanup::new(ServerDir::adopt(root), programs, keep).run();
    match (killed, cleaned) {
        (Ok(()), Ok(())) => Ok(()),
        (Err(a), Err(b)) => Err(format!("{a}; {b}")),
        (Err(e), Ok(())) | (Ok(()), Err(e)) => Err(e),
    }
}
