//! Throwaway PostgreSQL servers: `initdb` a data directory, start it on a free port of
//! 127.0.0.1 (`pg_ctl -w`), make a streaming replica of it (`pg_basebackup -R`), stop it (fast,
//! else immediate, else SIGKILL to its process group), run SQL with `psql`.
//!
//! A [`Postmaster`] is one server on one data directory, in a directory someone else owns:
//! `pacer demo`'s cluster keeps its primary and replica in one directory
//! (`crate::demo::cluster`); a [`PgServer`], as the tests use it, is one server in a directory
//! of its own.

mod binaries;
mod server;

use std::ffi::{OsStr, OsString};
use std::fs;
use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

pub(crate) use binaries::{Lookup, REPLICA_PROGRAM, SERVER_PROGRAMS, check_version};
pub use server::{PASSWORD, PASSWORD_USER, PgServer, binaries_available};

use super::dir::{self, Orphan};
use super::process;
use super::{describe, percent_encode};

/// Seconds `pg_ctl` waits for a start or a fast stop.
const PG_CTL_WAIT_SECS: &str = "60";
/// Seconds `pg_ctl` waits for an immediate stop.
const PG_CTL_IMMEDIATE_WAIT_SECS: &str = "20";
/// Fresh ports tried when the chosen one was taken meanwhile.
const PORT_ATTEMPTS: usize = 10;
/// How long a start on the same port keeps retrying while the port is taken.
const SAME_PORT_TIMEOUT: Duration = Duration::from_secs(15);
/// Lines of the server log quoted by [`Postmaster::log_excerpt`].
const LOG_TAIL_LINES: usize = 40;
/// Longest unix socket path (sun_path holds 108 bytes with the NUL).
const MAX_SOCKET_PATH: usize = 100;
/// The OS users the servers run as when pacer runs as root, the first that exists (the server
/// packages make `postgres`).
const OS_USERS: [&str; 2] = ["postgres", "nobody"];

/// The OS user the server programs run as (`None` unless pacer runs as root).
pub(crate) fn run_as() -> Result<Option<(u32, u32)>, String> {
    super::run_as(&OS_USERS).map_err(|e| {
        format!(
            "{e}. Run pacer as an ordinary user, or create the `postgres` user (the server \
             packages do)."
        )
    })
}

/// How a new server is set up.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Settings {
    /// The superuser `initdb` makes (trusted from this machine, see `hba`).
    pub(crate) superuser: &'static str,
    /// Appended to postgresql.conf (a replica copies it).
    pub(crate) conf: &'static str,
    /// The whole pg_hba.conf.
    pub(crate) hba: &'static str,
}

/// How to run the PostgreSQL programs: from `bin`, the server's as `run_as`, in `dir` (also
/// their HOME), with none of the caller's `PG*` variables.
#[derive(Debug, Clone)]
pub(crate) struct Programs {
    bin: PathBuf,
    run_as: Option<(u32, u32)>,
    dir: PathBuf,
}

impl Programs {
    pub(crate) fn new(bin: &Path, run_as: Option<(u32, u32)>, dir: &Path) -> Programs {
        Programs {
            bin: bin.to_path_buf(),
            run_as,
            dir: dir.to_path_buf(),
        }
    }

    fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new(self.bin.join(program));
        let inherited: Vec<OsString> = std::env::vars_os()
            .map(|(k, _)| k)
            .filter(|k| k.to_string_lossy().starts_with("PG"))
            .collect();
        for key in inherited {
            cmd.env_remove(key);
        }
        cmd.env("LC_ALL", "C")
            .current_dir(&self.dir)
            .stdin(Stdio::null());
        cmd
    }

    /// A server program (initdb, pg_ctl, pg_basebackup), run as the server's OS user.
    fn server(&self, program: &str) -> Command {
        let mut cmd = self.command(program);
        cmd.env("HOME", &self.dir);
        if let Some((uid, gid)) = self.run_as {
            cmd.uid(uid).gid(gid);
        }
        cmd
    }

    /// A client program (psql), run as this process, never prompting nor reading a password
    /// file.
    fn client(&self, program: &str) -> Command {
        let mut cmd = self.command(program);
        cmd.env("PGCONNECT_TIMEOUT", "10")
            .env("PGPASSFILE", self.dir.join("no-pgpass"));
        cmd
    }

    fn run_server(&self, program: &str, args: &[&OsStr]) -> Result<Output, String> {
        self.server(program)
            .args(args)
            .output()
            .map_err(|e| format!("cannot run {}: {e}", self.bin.join(program).display()))
    }
}

/// How hard [`stop_server`] starts: `Fast` ends the sessions cleanly and checkpoints, else
/// `Immediate`; either ends with SIGKILL if the server still runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Shutdown {
    Fast,
    Immediate,
}

/// One PostgreSQL server (primary or streaming replica) on `data_dir`, listening on
/// 127.0.0.1:`port`, logging to `log`. Dropping it does nothing: its owner stops it.
#[derive(Debug, Clone)]
pub(crate) struct Postmaster {
    /// Its data directory.
    pub(crate) data_dir: PathBuf,
    /// Its TCP port on 127.0.0.1 (0 until started).
    pub(crate) port: u16,
    /// Its log file.
    pub(crate) log: PathBuf,
    superuser: &'static str,
    programs: Programs,
}

enum StartError {
    /// The port was taken: worth retrying (with another port, or later).
    PortInUse(String),
    Other(String),
}

impl Postmaster {
    /// Runs initdb on `data_dir` and writes the settings; the server is not started.
    pub(crate) fn init(
        programs: &Programs,
        settings: &Settings,
        data_dir: PathBuf,
        log: PathBuf,
    ) -> Result<Postmaster, String> {
        let mut args: Vec<&OsStr> = vec!["-D".as_ref(), data_dir.as_os_str()];
        for a in [
            "-U",
            settings.superuser,
            "--auth=trust",
            "-E",
            "UTF8",
            "--locale=C",
            "--no-sync",
        ] {
            args.push(a.as_ref());
        }
        let out = programs.run_server("initdb", &args)?;
        if !out.status.success() {
            return Err(format!("initdb failed: {}", describe(&out)));
        }
        let conf = format!("{}{}", settings.conf, socket_setting(&programs.dir));
        append(&data_dir.join("postgresql.conf"), &conf)?;
        fs::write(data_dir.join("pg_hba.conf"), settings.hba)
            .map_err(|e| format!("cannot write pg_hba.conf in {}: {e}", data_dir.display()))?;
        Ok(Postmaster {
            data_dir,
            port: 0,
            log,
            superuser: settings.superuser,
            programs: programs.clone(),
        })
    }

    /// Makes a streaming replica of this running server in `data_dir` (`pg_basebackup -R -X
    /// stream`), its programs run by `programs`; `name` becomes its `cluster_name` (what the
    /// primary sees as its application name). The replica is not started.
    pub(crate) fn make_replica(
        &self,
        programs: &Programs,
        data_dir: PathBuf,
        log: PathBuf,
        name: Option<&str>,
    ) -> Result<Postmaster, String> {
        let port = self.port.to_string();
        let mut args: Vec<&OsStr> = Vec::new();
        for a in [
            "-h",
            "127.0.0.1",
            "-p",
            &port,
            "-U",
            self.superuser,
            "-w",
            "-D",
        ] {
            args.push(a.as_ref());
        }
        args.push(data_dir.as_os_str());
        for a in ["-R", "-X", "stream", "-c", "fast", "--no-sync"] {
            args.push(a.as_ref());
        }
        let out = programs.run_server("pg_basebackup", &args)?;
        if !out.status.success() {
            return Err(format!(
                "pg_basebackup from the primary on port {} failed: {}",
                self.port,
                describe(&out)
            ));
        }
        let mut conf = socket_setting(&programs.dir);
        if let Some(name) = name {
            conf.push_str(&format!("cluster_name = '{}'\n", name.replace('\'', "''")));
        }
        append(&data_dir.join("postgresql.conf"), &conf)?;
        Ok(Postmaster {
            data_dir,
            port: 0,
            log,
            superuser: self.superuser,
            programs: programs.clone(),
        })
    }

    /// Starts the server on a free port and waits until it accepts connections (`pg_ctl -w`; a
    /// hot standby counts once it accepts read-only connections). Tries other ports while the
    /// chosen one was taken meanwhile.
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

    /// Starts the server again on its port after [`Postmaster::stop`], retrying for a while when
    /// the port is taken. Does nothing if it runs.
    pub(crate) fn start_again(&mut self) -> Result<(), String> {
        if running_pid(&self.data_dir).is_some() {
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

    fn try_start(&mut self) -> Result<(), StartError> {
        let log_before = fs::metadata(&self.log).map(|m| m.len()).unwrap_or(0);
        let options = format!("-p {}", self.port);
        let out = self
            .programs
            .server("pg_ctl")
            .arg("start")
            .arg("-D")
            .arg(&self.data_dir)
            .args(["-w", "-t", PG_CTL_WAIT_SECS, "-l"])
            .arg(&self.log)
            .args(["-o", &options])
            .output()
            .map_err(|e| {
                StartError::Other(format!(
                    "cannot run {}: {e}",
                    self.programs.bin.join("pg_ctl").display()
                ))
            })?;
        if out.status.success() {
            return Ok(());
        }
        // A half-started server (pg_ctl timed out) must not stay behind.
        let _ = self.stop(Shutdown::Immediate);
        let new_log = fs::read(&self.log)
            .map(|b| String::from_utf8_lossy(&b[(log_before as usize).min(b.len())..]).into_owned())
            .unwrap_or_default();
        let msg = format!(
            "pg_ctl start on port {} failed: {}\n--- {} ---\n{}",
            self.port,
            describe(&out),
            self.log.display(),
            new_log.trim()
        );
        if [
            "Address already in use",
            "could not bind IPv4 address",
            "could not create any TCP/IP sockets",
        ]
        .iter()
        .any(|m| new_log.contains(m))
        {
            Err(StartError::PortInUse(msg))
        } else {
            Err(StartError::Other(msg))
        }
    }

    /// Stops the server (see [`stop_server`]); the data directory stays.
    pub(crate) fn stop(&self, shutdown: Shutdown) -> Result<(), String> {
        stop_server(&self.programs, &self.data_dir, shutdown)
    }

    /// `postgres://SUPERUSER@127.0.0.1:PORT/DB`
    pub(crate) fn url(&self, db: &str) -> String {
        format!(
            "postgres://{}@127.0.0.1:{}/{}",
            percent_encode(self.superuser),
            self.port,
            percent_encode(db)
        )
    }

    /// Runs `sql` (statements and psql meta-commands) with `psql -X -v ON_ERROR_STOP=1 -At -q`
    /// over TCP as `user` (the superuser when `None`), with `password` if given; returns the
    /// trimmed standard output, or psql's error output.
    pub(crate) fn psql(
        &self,
        db: &str,
        user: Option<&str>,
        password: Option<&str>,
        sql: &str,
    ) -> Result<String, String> {
        let port = self.port.to_string();
        let user = user.unwrap_or(self.superuser);
        let mut cmd = self.programs.client(binaries::CLIENT_PROGRAM);
        cmd.args(["-X", "-v", "ON_ERROR_STOP=1", "-At", "-q", "-w"])
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &port,
                "-U",
                user,
                "-d",
                db,
                "-f",
                "-",
            ])
            .env("PGCLIENTENCODING", "UTF8")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(password) = password {
            cmd.env("PGPASSWORD", password);
        }
        let mut child = cmd.spawn().map_err(|e| {
            format!(
                "cannot run {}: {e}",
                self.programs.bin.join(binaries::CLIENT_PROGRAM).display()
            )
        })?;
        // Feed the script from another thread so a large output cannot deadlock.
        let writer = child.stdin.take().map(|mut stdin| {
            let script = sql.to_owned();
            thread::spawn(move || {
                let _ = stdin.write_all(script.as_bytes());
            })
        });
        let out = child
            .wait_with_output()
            .map_err(|e| format!("waiting for psql failed: {e}"))?;
        if let Some(writer) = writer {
            let _ = writer.join();
        }
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
        } else {
            let stderr = String::from_utf8_lossy(&out.stderr).trim().to_owned();
            if stderr.is_empty() {
                Err(format!("psql exited with {}", out.status))
            } else {
                Err(stderr)
            }
        }
    }

    /// The last lines of the server log, under its path.
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

/// Stops the server of `data_dir`, if one runs: `pg_ctl stop -m fast` (with [`Shutdown::Fast`]),
/// then `-m immediate`, then SIGKILL to the postmaster's process group.
pub(crate) fn stop_server(
    programs: &Programs,
    data_dir: &Path,
    shutdown: Shutdown,
) -> Result<(), String> {
    let Some(pid) = running_pid(data_dir) else {
        return Ok(());
    };
    let modes: &[(&str, &str)] = match shutdown {
        Shutdown::Fast => &[
            ("fast", PG_CTL_WAIT_SECS),
            ("immediate", PG_CTL_IMMEDIATE_WAIT_SECS),
        ],
        Shutdown::Immediate => &[("immediate", PG_CTL_IMMEDIATE_WAIT_SECS)],
    };
    for (mode, secs) in modes {
        let _ = programs
            .server("pg_ctl")
            .arg("stop")
            .arg("-D")
            .arg(data_dir)
            .args(["-m", mode, "-w", "-t", secs])
            .output();
        if process::wait_until_dead(pid, Duration::from_secs(5)) {
            return Ok(());
        }
    }
    if process::command_line_names(pid, data_dir) {
        process::kill(pid, true);
        process::kill(pid, false);
    }
    if process::wait_until_dead(pid, Duration::from_secs(5)) {
        Ok(())
    } else {
        Err(format!(
            "the PostgreSQL server of {} (pid {pid}) does not stop",
            data_dir.display()
        ))
    }
}

/// Stops every server whose data directory is in `dir`, the replicas first (so that a primary
/// does not wait for them on a fast shutdown).
pub(crate) fn stop_servers_in(
    programs: &Programs,
    dir: &Path,
    shutdown: Shutdown,
) -> Result<(), String> {
    let mut data_dirs: Vec<PathBuf> = fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.join("PG_VERSION").is_file())
                .collect()
        })
        .unwrap_or_default();
    data_dirs.sort_by_key(|d| !d.join("standby.signal").exists());
    let problems: Vec<String> = data_dirs
        .iter()
        .filter_map(|d| stop_server(programs, d, shutdown).err())
        .collect();
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("; "))
    }
}

/// Stops the servers and removes the directories `BASE/PREFIX*` of processes that died without
/// removing them (see [`dir::sweep_orphans`]); returns what it removed.
pub(crate) fn sweep_orphans(
    base: &Path,
    prefix: &str,
    bin: &Path,
    run_as: Option<(u32, u32)>,
) -> Vec<Orphan> {
    dir::sweep_orphans(base, prefix, |dir| {
        let _ = stop_servers_in(&Programs::new(bin, run_as, dir), dir, Shutdown::Immediate);
    })
}

/// The `unix_socket_directories` line for a server whose directory is `dir`: there, unless the
/// path is too long for a unix socket (then TCP only).
fn socket_setting(dir: &Path) -> String {
    let socket_dir = if dir.join(".s.PGSQL.65535").as_os_str().len() <= MAX_SOCKET_PATH {
        format!("'{}'", dir.display().to_string().replace('\'', "''"))
    } else {
        "''".to_string()
    };
    format!("unix_socket_directories = {socket_dir}\n")
}

/// The pid of the server running on `data_dir`, if one does (a stale pid file's pid may be
/// another process's by now).
fn running_pid(data_dir: &Path) -> Option<u32> {
    let text = fs::read_to_string(data_dir.join("postmaster.pid")).ok()?;
    let pid = text.lines().next()?.trim().parse().ok()?;
    (process::is_alive(pid) && process::command_line_names(pid, data_dir)).then_some(pid)
}

fn append(path: &Path, text: &str) -> Result<(), String> {
    fs::OpenOptions::new()
        .append(true)
        .open(path)
        .and_then(|mut f| f.write_all(text.as_bytes()))
        .map_err(|e| format!("cannot append to {}: {e}", path.display()))
}
