//! Throwaway MariaDB servers: `mariadb-install-db` a data directory, start `mariadbd` on it on a
//! free port of 127.0.0.1 with its binary log on (ROW), replicate one from another by GTID, stop
//! it (`SHUTDOWN`, else SIGKILL), run SQL with the `mariadb` client.
//!
//! A [`Mariadbd`] is one server on one data directory, in a directory someone else owns (a demo
//! may keep a primary and its replica in one); a [`MariaDbServer`], as the tests use it, is one
//! server in a directory of its own.
//!
//! Every server runs with `--no-defaults`: nothing of the machine's own MariaDB (its my.cnf, its
//! socket, its service on 3306) reaches it. `mariadbd` is a child of this process in a process
//! group of its own (no terminal signal reaches it), and its pid files are in its data directory,
//! where the orphan sweep of a later process finds them. Its temporary files go in the server's
//! directory too (`$TMPDIR` may be closed to the server's OS user).
//!
//! Measured here (MariaDB 10.11.19, 2 cores): install 0.6 s (3.2 s while the machine compiles),
//! start to first query 0.15 s, so a fresh server in 1.1 s and a replica caught up in 2.4 s; a
//! clean `SHUTDOWN` 0.01–0.1 s; a kill on drop 0.06 s. A data directory takes 114 MB on disk
//! (96 MB of it the redo log), a running server about 100 MB of memory.

mod binaries;
mod client;
mod server;
#[cfg(test)]
mod tests;

use std::ffi::{OsStr, OsString};
use std::fs;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

pub(crate) use binaries::{Binaries, Lookup, check_version, plugin_dir};
pub(crate) use client::Login;
pub use server::{
    MariaDbServer, Options, PASSWORD, PASSWORD_USER, binaries_available,
    metadata_lock_info_available,
};

use super::dir::{self, Orphan};
use super::process;
use super::tls::TlsFiles;
use super::{describe, percent_encode};

/// Fresh ports tried when the chosen one was taken meanwhile.
const PORT_ATTEMPTS: usize = 10;
/// How long a start on the same port keeps retrying while the port is taken.
const SAME_PORT_TIMEOUT: Duration = Duration::from_secs(15);
/// How long a started server may take to answer its first query.
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a `SHUTDOWN` may take before the server is killed.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(60);
/// Lines of the error log quoted by [`Mariadbd::log_excerpt`].
const LOG_TAIL_LINES: usize = 40;
/// Longest unix socket path (sun_path holds 108 bytes with the NUL).
const MAX_SOCKET_PATH: usize = 100;
/// The server's pid file, in its data directory (where the sweep looks).
const PID_FILE: &str = "mariadbd.pid";
/// The pid of the server as this process started it, written at once: the server writes its own
/// pid file only once it is under way, and a sweep must find a server killed before that too.
const SPAWNED_PID_FILE: &str = "spawned.pid";
/// The OS users the servers run as when pacer runs as root, the first that exists (the server
/// packages make `mysql`).
const OS_USERS: [&str; 2] = ["mysql", "nobody"];
/// The plugin loaded when the server has it: granted metadata locks
/// (`information_schema.METADATA_LOCK_INFO`), which pacer's MySQL sampler reads.
const METADATA_LOCK_INFO: &str = "metadata_lock_info";

/// The OS user the server programs run as when pacer runs as root: its name and ids.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct OsUser {
    pub(crate) name: &'static str,
    pub(crate) uid: u32,
    pub(crate) gid: u32,
}

/// The OS user the server programs run as (`None` unless pacer runs as root).
pub(crate) fn run_as() -> Result<Option<OsUser>, String> {
    let ids = super::run_as(&OS_USERS).map_err(|e| {
        format!(
            "{e}. Run pacer as an ordinary user, or create the `mysql` user (the server packages \
             do)."
        )
    })?;
    Ok(ids.and_then(|(uid, gid)| {
        let name = OS_USERS
            .into_iter()
            .find(|name| process::user_ids(name) == Some((uid, gid)))?;
        Some(OsUser { name, uid, gid })
    }))
}

/// Whether the server's plugin directory has [`METADATA_LOCK_INFO`] (Debian's `mariadb-server`
/// package ships it), so that [`Config::metadata_lock_info`] may load it.
pub(crate) fn has_metadata_lock_info(binaries: &Binaries) -> bool {
    plugin_dir(&binaries.server)
        .is_some_and(|dir| dir.join(format!("{METADATA_LOCK_INFO}.so")).is_file())
}

/// How to run the MariaDB programs: these binaries, the server's as `run_as`, in `dir` (also
/// their HOME), with none of the caller's `MYSQL*`/`MARIADB*` variables.
#[derive(Debug, Clone)]
pub(crate) struct Programs {
    binaries: Binaries,
    run_as: Option<OsUser>,
    dir: PathBuf,
}

impl Programs {
    pub(crate) fn new(binaries: &Binaries, run_as: Option<&OsUser>, dir: &Path) -> Programs {
        Programs {
            binaries: binaries.clone(),
            run_as: run_as.cloned(),
            dir: dir.to_path_buf(),
        }
    }

    fn command(&self, program: &Path) -> Command {
        let mut cmd = Command::new(program);
        let inherited: Vec<OsString> = std::env::vars_os()
            .map(|(k, _)| k)
            .filter(|k| {
                let k = k.to_string_lossy();
                k.starts_with("MYSQL") || k.starts_with("MARIADB")
            })
            .collect();
        for key in inherited {
            cmd.env_remove(key);
        }
        cmd.env("LC_ALL", "C")
            .env("HOME", &self.dir)
            .current_dir(&self.dir)
            .stdin(Stdio::null());
        cmd
    }

    /// A server program (mariadb-install-db, mariadbd), run as the server's OS user.
    fn server(&self, program: &Path) -> Command {
        let mut cmd = self.command(program);
        // The server's temporary files (its default tmpdir is $TMPDIR): where its OS user may
        // write them.
        cmd.env("TMPDIR", &self.dir);
        if let Some(user) = &self.run_as {
            cmd.uid(user.uid).gid(user.gid);
        }
        cmd
    }

    /// Hands `path` (made by this process) to the server's OS user.
    fn hand_over(&self, path: &Path) -> Result<(), String> {
        match &self.run_as {
            Some(user) => std::os::unix::fs::chown(path, Some(user.uid), Some(user.gid))
                .map_err(|e| format!("cannot hand {} to `{}`: {e}", path.display(), user.name)),
            None => Ok(()),
        }
    }
}

/// What a server is started with, besides its data directory and port.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    /// `--server-id`: unique among a primary and its replicas.
    pub(crate) server_id: u32,
    /// `--performance-schema=ON` (OFF by default in MariaDB).
    pub(crate) performance_schema: bool,
    /// `--ssl-ca`, `--ssl-cert`, `--ssl-key`: files the server's OS user can read.
    pub(crate) tls: Option<TlsFiles>,
    /// `--report-host` (with `--report-port`): what the primary's `SHOW SLAVE HOSTS` lists.
    pub(crate) report_host: Option<String>,
    /// A replica: `--relay-log=relay-bin --read-only=1`.
    pub(crate) replica: bool,
    /// `--plugin-load-add=metadata_lock_info` (when the server's plugin directory has it).
    pub(crate) metadata_lock_info: bool,
    /// More options, last.
    pub(crate) server_args: Vec<String>,
}

/// How hard [`Mariadbd::stop`] is: `Clean` asks with `SHUTDOWN` (and kills the server if it
/// does not end); `Kill` sends SIGKILL at once (InnoDB recovers on the next start).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Shutdown {
    Clean,
    Kill,
}

enum StartError {
    /// The port was taken: worth retrying (with another port, or later).
    PortInUse(String),
    Other(String),
}

/// One MariaDB server on `data_dir`, listening on 127.0.0.1:`port` (and on `socket`, when its
/// path is short enough), logging to `log`. Dropping it does nothing: its owner stops it.
#[derive(Debug)]
pub(crate) struct Mariadbd {
    /// Its data directory.
    pub(crate) data_dir: PathBuf,
    /// Its TCP port on 127.0.0.1 (0 until started).
    pub(crate) port: u16,
    /// Its unix socket; `None` when the path would be too long (TCP only, then).
    pub(crate) socket: Option<PathBuf>,
    /// Its error log (also its standard output and error).
    pub(crate) log: PathBuf,
    config: Config,
    programs: Programs,
    /// The running server, when this process started it.
    child: Option<Child>,
}

impl Mariadbd {
    /// Runs `mariadb-install-db` on `data_dir` (root may log in without a password from this
    /// machine, no test database); the server is not started.
    pub(crate) fn install(
        programs: &Programs,
        config: Config,
        data_dir: PathBuf,
        log: PathBuf,
    ) -> Result<Mariadbd, String> {
        let mut args: Vec<OsString> = vec!["--no-defaults".into()];
        if let Some(user) = &programs.run_as {
            args.push(format!("--user={}", user.name).into());
        }
        args.push(flag("--datadir=", &data_dir));
        args.extend(
            ["--auth-root-authentication-method=normal", "--skip-test-db"].map(OsString::from),
        );
        let install_db = &programs.binaries.install_db;
        let out = programs
            .server(install_db)
            // The server it bootstraps with: the one found, not one it guesses.
            .env("MYSQLD_BOOTSTRAP", &programs.binaries.server)
            .args(&args)
            .output()
            .map_err(|e| format!("cannot run {}: {e}", install_db.display()))?;
        if !out.status.success() {
            return Err(format!(
                "{} --datadir={} failed: {}",
                install_db.display(),
                data_dir.display(),
                describe(&out)
            ));
        }
        let name = data_dir.file_name().unwrap_or(OsStr::new("mariadbd"));
        let mut socket = programs.dir.join(name);
        socket.set_extension("sock");
        let socket = (socket.as_os_str().len() <= MAX_SOCKET_PATH).then_some(socket);
        Ok(Mariadbd {
            data_dir,
            port: 0,
            socket,
            log,
            config,
            programs: programs.clone(),
            child: None,
        })
    }

    /// Starts the server on a free port and waits until it answers a query. Tries other ports
    /// while the chosen one was taken meanwhile.
    pub(crate) fn start_on_free_port(&mut self) -> Result<(), String> {
        let mut last = String::new();
        for attempt in 0..PORT_ATTEMPTS {
            self.port = super::free_port(attempt)?;
            match self.try_start() {
                Ok(()) => return Ok(()),
                Err(StartError::PortInUse(msg)) => last = msg,
                Err(StartError::Other(msg)) => return Err(msg),
            }
        }
        Err(format!(
            "{PORT_ATTEMPTS} ports in a row were taken; the last failure: {last}"
        ))
    }

    /// Starts the server again on its port after [`Mariadbd::stop`], retrying for a while when
    /// the port is taken. Does nothing if it runs.
    pub(crate) fn start_again(&mut self) -> Result<(), String> {
        if self.running_pid().is_some() {
            return Ok(());
        }
        let deadline = Instant::now() + SAME_PORT_TIMEOUT;
        loop {
            match self.try_start() {
                Ok(()) => return Ok(()),
                Err(StartError::PortInUse(_)) if Instant::now() < deadline => {
                    thread::sleep(Duration::from_millis(200));
                }
                Err(StartError::PortInUse(msg) | StartError::Other(msg)) => return Err(msg),
            }
        }
    }

    /// The command line of `mariadbd` for this server.
    fn server_args(&self) -> Vec<OsString> {
        let config = &self.config;
        let mut args: Vec<OsString> = vec!["--no-defaults".into()];
        args.push(flag("--datadir=", &self.data_dir));
        args.push(format!("--port={}", self.port).into());
        args.push("--bind-address=127.0.0.1".into());
        args.push(match &self.socket {
            Some(socket) => flag("--socket=", socket),
            None => "--socket=".into(), // no socket at all
        });
        args.push(flag("--pid-file=", &self.data_dir.join(PID_FILE)));
        args.push(flag("--log-error=", &self.log));
        args.push(format!("--server-id={}", config.server_id).into());
        for a in [
            "--log-bin=mysql-bin",
            "--binlog-format=ROW",
            "--innodb-flush-log-at-trx-commit=2",
            "--innodb-buffer-pool-size=128M",
            "--skip-name-resolve",
            "--character-set-server=utf8mb4",
            "--collation-server=utf8mb4_general_ci",
        ] {
            args.push(a.into());
        }
        let performance_schema = if config.performance_schema {
            "ON"
        } else {
            "OFF"
        };
        args.push(format!("--performance-schema={performance_schema}").into());
        if config.metadata_lock_info {
            args.push(format!("--plugin-load-add={METADATA_LOCK_INFO}").into());
        }
        if let Some(tls) = &config.tls {
            args.push(flag("--ssl-ca=", &tls.ca));
            args.push(flag("--ssl-cert=", &tls.cert));
            args.push(flag("--ssl-key=", &tls.key));
        }
        if let Some(host) = &config.report_host {
            args.push(format!("--report-host={host}").into());
            args.push(format!("--report-port={}", self.port).into());
        }
        if config.replica {
            args.push("--relay-log=relay-bin".into());
            args.push("--read-only=1".into());
        }
        args.extend(config.server_args.iter().map(OsString::from));
        args
    }

    fn try_start(&mut self) -> Result<(), StartError> {
        let log_before = fs::metadata(&self.log).map(|m| m.len()).unwrap_or(0);
        let output = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .map_err(|e| StartError::Other(format!("cannot open {}: {e}", self.log.display())))?;
        self.programs
            .hand_over(&self.log)
            .map_err(StartError::Other)?;
        let stderr = output
            .try_clone()
            .map_err(|e| StartError::Other(format!("cannot open {}: {e}", self.log.display())))?;
        if let Some(mut ended) = self.child.take() {
            let _ = ended.try_wait(); // reaps a server that ended by itself
        }
        let server = &self.programs.binaries.server;
        let child = self
            .programs
            .server(server)
            .args(self.server_args())
            .stdout(output)
            .stderr(stderr)
            // A process group of its own: a Ctrl-C in the terminal is not for it.
            .process_group(0)
            .spawn()
            .map_err(|e| StartError::Other(format!("cannot run {}: {e}", server.display())))?;
        let _ = fs::write(
            self.data_dir.join(SPAWNED_PID_FILE),
            format!("{}\n", child.id()),
        );
        self.child = Some(child);
        let failure = match self.wait_ready() {
            Ok(()) => return Ok(()),
            Err(failure) => failure,
        };
        // A half-started server must not stay behind.
        let _ = self.stop(Shutdown::Kill);
        let new_log = fs::read(&self.log)
            .map(|b| String::from_utf8_lossy(&b[(log_before as usize).min(b.len())..]).into_owned())
            .unwrap_or_default();
        let msg = format!(
            "mariadbd on port {} {failure}\n--- {} ---\n{}",
            self.port,
            self.log.display(),
            new_log.trim()
        );
        if ["Address already in use", "Bind on TCP/IP port"]
            .iter()
            .any(|m| new_log.contains(m))
        {
            Err(StartError::PortInUse(msg))
        } else {
            Err(StartError::Other(msg))
        }
    }

    /// Waits until the server answers over TCP, and it is this server that answers (another
    /// may have taken the port meanwhile); the error says why not.
    fn wait_ready(&self) -> Result<(), String> {
        let deadline = Instant::now() + START_TIMEOUT;
        let ours = fs::canonicalize(&self.data_dir).unwrap_or_else(|_| self.data_dir.clone());
        loop {
            if self.running_pid().is_none() {
                return Err("exited while starting".into());
            }
            let last = match self.client("", Login::RootOverTcp, false, "SELECT @@datadir") {
                Ok(datadir) if fs::canonicalize(datadir.trim()).ok().as_ref() == Some(&ours) => {
                    return Ok(());
                }
                Ok(datadir) => format!("the port answers for another server ({datadir})"),
                Err(e) => e,
            };
            if Instant::now() >= deadline {
                return Err(format!(
                    "did not answer within {START_TIMEOUT:?}; the last attempt: {last}"
                ));
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// The pid of the running server, if it runs: the child this process started, else the one
    /// named by the pid file (checked to be a server of this data directory).
    pub(crate) fn running_pid(&self) -> Option<u32> {
        self.child
            .as_ref()
            .map(Child::id)
            .filter(|&pid| process::is_alive(pid))
            .or_else(|| pid_of_server_in(&self.data_dir))
    }

    /// Stops the server (see [`Shutdown`]); the data directory stays.
    pub(crate) fn stop(&mut self, shutdown: Shutdown) -> Result<(), String> {
        let Some(pid) = self.running_pid() else {
            return Ok(());
        };
        if shutdown == Shutdown::Clean {
            let _ = self.client("", Login::Root, false, "SHUTDOWN");
            if !process::wait_until_dead(pid, SHUTDOWN_TIMEOUT) {
                tracing::warn!(pid, "mariadbd did not end after SHUTDOWN; killing it");
            }
        }
        if process::is_alive(pid) {
            process::kill(pid, true);
        }
        let dead = process::wait_until_dead(pid, Duration::from_secs(10));
        if let Some(mut child) = self.child.take() {
            let _ = child.wait(); // reap it
        }
        if dead {
            Ok(())
        } else {
            Err(format!(
                "the MariaDB server of {} (pid {pid}) does not stop",
                self.data_dir.display()
            ))
        }
    }

    /// `mysql://root@127.0.0.1:PORT/DB`
    pub(crate) fn url(&self, db: &str) -> String {
        format!(
            "mysql://root@127.0.0.1:{}/{}",
            self.port,
            percent_encode(db)
        )
    }

    /// The last lines of the error log, under its path.
    pub(crate) fn log_excerpt(&self) -> String {
        let tail = match fs::read(&self.log) {
            Ok(bytes) => {
                let text = String::from_utf8_lossy(&bytes);
                let all: Vec<&str> = text.lines().collect();
                all[all.len().saturating_sub(LOG_TAIL_LINES)..].join("\n")
            }
            Err(e) => format!("(cannot read the log: {e})"),
        };
        format!("--- last lines of {} ---\n{tail}", self.log.display())
    }
}

/// The pid of a server running on `data_dir`, as its pid file (or the one written when it was
/// started) names it; a stale pid file's pid may be another process's by now: its command line
/// must name the data directory.
fn pid_of_server_in(data_dir: &Path) -> Option<u32> {
    [PID_FILE, SPAWNED_PID_FILE].iter().find_map(|file| {
        let pid = fs::read_to_string(data_dir.join(file))
            .ok()?
            .trim()
            .parse()
            .ok()?;
        (process::is_alive(pid) && process::command_line_names(pid, data_dir)).then_some(pid)
    })
}

/// Kills every server whose data directory (one with a pid file) is in `dir`.
pub(crate) fn kill_servers_in(dir: &Path) -> Result<(), String> {
    let data_dirs: Vec<PathBuf> = fs::read_dir(dir)
        .map(|entries| entries.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    let problems: Vec<String> = data_dirs
        .iter()
        .filter_map(|data_dir| {
            let pid = pid_of_server_in(data_dir)?;
            process::kill(pid, true);
            (!process::wait_until_dead(pid, Duration::from_secs(10))).then(|| {
                format!(
                    "the MariaDB server of {} (pid {pid}) does not stop",
                    data_dir.display()
                )
            })
        })
        .collect();
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("; "))
    }
}

/// Kills the servers and removes the directories `BASE/PREFIX*` of processes that died without
/// removing them (see [`dir::sweep_orphans`]); returns what it removed.
pub(crate) fn sweep_orphans(base: &Path, prefix: &str) -> Vec<Orphan> {
    dir::sweep_orphans(base, prefix, |dir| {
        let _ = kill_servers_in(dir);
    })
}

/// `--name=` followed by `path`, as one argument.
fn flag(name: &str, path: &Path) -> OsString {
    let mut arg = OsString::from(name);
    arg.push(path.as_os_str());
    arg
}
