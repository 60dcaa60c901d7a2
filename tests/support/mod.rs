//! Throwaway PostgreSQL servers for integration tests.
//!
//! Every [`PgServer`] owns a private temporary directory holding its data
//! directory, unix socket directory and log file, listens on 127.0.0.1 on a
//! port picked at run time, and is stopped (immediate shutdown) and removed
//! when dropped, also when the test panicked. Nothing is shared between
//! servers, so tests may start servers from many threads and processes at
//! once.
//!
//! The PostgreSQL binaries are taken from `$PACER_PG_BINDIR`, else from the
//! highest-numbered `/usr/lib/postgresql/*/bin` holding `initdb`, else from
//! the directory of `initdb` on `PATH`. When the tests run as root, the
//! server-side programs (`initdb`, `pg_ctl`, `pg_basebackup`) run as the
//! `postgres` OS user, since PostgreSQL refuses to run as root.
//!
//! Each server is configured so that a streaming replica can be made of it
//! (see [`PgServer::start_replica`]) and has a role [`PASSWORD_USER`] that
//! must log in over TCP with [`PASSWORD`] (scram-sha-256); every other role
//! is trusted. Clusters are created with `-E UTF8 --locale=C`.
//!
//! A test process killed before its servers were dropped (timeout, Ctrl-C,
//! SIGKILL) leaves them running; the next `PgServer::start` on the machine
//! finds such orphans by the owner file in their directory, stops them and
//! removes their directories.
//!
//! All functions block (they run external programs); calling them from
//! async tests is fine, they just hold the thread for a moment.
#![allow(dead_code)]

use std::collections::hash_map::RandomState;
use std::env;
use std::ffi::OsString;
use std::fs;
use std::hash::{BuildHasher, Hasher};
use std::io::{ErrorKind, Write};
use std::net::TcpListener;
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Role that authenticates with a password (scram-sha-256 over TCP).
pub const PASSWORD_USER: &str = "pacer_pw";
/// The password of [`PASSWORD_USER`].
pub const PASSWORD: &str = "correct horse battery";

/// How long to wait for a started server to accept connections.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// Seconds `pg_ctl` may wait for a start or a clean stop.
const PG_CTL_WAIT_SECS: &str = "60";
/// Seconds `pg_ctl` may wait for an immediate stop in `Drop`.
const PG_CTL_KILL_WAIT_SECS: &str = "20";
/// Fresh ports tried by `start` when the chosen one was taken meanwhile.
const PORT_ATTEMPTS: usize = 10;
/// How long `start_again` keeps retrying while its port is taken.
const SAME_PORT_TIMEOUT: Duration = Duration::from_secs(15);
/// Lines of the server log quoted in panic messages.
const LOG_TAIL_LINES: usize = 40;
const INSTALL_HINT: &str = "install PostgreSQL server binaries, e.g. apt-get install postgresql-15, \
     or point PACER_PG_BINDIR at the directory holding initdb, pg_ctl and postgres";

/// Settings appended to postgresql.conf of every primary (a replica copies them).
const SERVER_CONF: &str = "
# --- added by the pacer test harness ---
listen_addresses = '127.0.0.1'
fsync = off
max_connections = 100
shared_buffers = 32MB
unix_socket_permissions = 0777
wal_level = replica
max_wal_senders = 5
max_replication_slots = 5
wal_keep_size = 128MB
hot_standby = on
";

/// pg_hba.conf of every primary: password for `pacer_pw`, trust for the rest.
const HBA_CONF: &str = "\
# written by the pacer test harness; first match wins
local   all             pacer_pw                                scram-sha-256
host    all             pacer_pw        127.0.0.1/32            scram-sha-256
host    all             pacer_pw        ::1/128                 scram-sha-256
local   all             all                                     trust
host    all             all             127.0.0.1/32            trust
host    all             all             ::1/128                 trust
local   replication     all                                     trust
host    replication     all             127.0.0.1/32            trust
host    replication     all             ::1/128                 trust
";

/// A throwaway PostgreSQL server (primary or streaming replica).
///
/// Dropping it stops the server with an immediate shutdown and removes its
/// directory.
pub struct PgServer {
    /// Guard of the private directory; `None` only during `Drop`.
    dir: Option<tempfile::TempDir>,
    root: PathBuf,
    data_dir: PathBuf,
    socket_dir: PathBuf,
    log: PathBuf,
    port: u16,
    bindir: PathBuf,
    /// uid/gid that server-side programs run as (`Some` when we are root).
    run_as: Option<(u32, u32)>,
    running: bool,
    postmaster_pid: Option<u32>,
    replica: bool,
}

/// Whether PostgreSQL server binaries (and, when running as root, the
/// `postgres` OS user) are available, so that [`PgServer::start`] can work.
pub fn pg_binaries_available() -> bool {
    let Some(bindir) = find_bindir() else {
        return false;
    };
    let tools_ok = ["psql", "pg_basebackup"]
        .iter()
        .all(|t| bindir.join(t).is_file() || on_path(t).is_some());
    tools_ok && (!running_as_root() || postgres_user_ids().is_some())
}

impl PgServer {
    /// Starts a fresh primary on a free port.
    ///
    /// Panics with a message naming the missing binaries if `initdb` cannot
    /// be found.
    pub fn start() -> PgServer {
        let mut server = PgServer::new_empty(false);
        server.initdb();
        server.configure_primary();
        server.start_on_fresh_port();
        server.psql(
            "postgres",
            &format!(
                "CREATE ROLE {PASSWORD_USER} LOGIN PASSWORD '{}'",
                PASSWORD.replace('\'', "''")
            ),
        );
        server
    }

    /// The TCP port the server listens on (127.0.0.1 only).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `postgres://postgres@127.0.0.1:PORT/DB`
    pub fn url(&self, db: &str) -> String {
        format!(
            "postgres://postgres@127.0.0.1:{}/{}",
            self.port,
            percent_encode(db)
        )
    }

    /// `postgres://USER:PASSWORD@127.0.0.1:PORT/DB`, percent-encoded.
    pub fn url_as(&self, user: &str, password: &str, db: &str) -> String {
        format!(
            "postgres://{}:{}@127.0.0.1:{}/{}",
            percent_encode(user),
            percent_encode(password),
            self.port,
            percent_encode(db)
        )
    }

    /// `CREATE DATABASE name`; returns `url(name)`.
    pub fn create_database(&self, name: &str) -> String {
        self.psql(
            "postgres",
            &format!("CREATE DATABASE \"{}\"", name.replace('"', "\"\"")),
        );
        self.url(name)
    }

    /// Runs `sql` (one or more statements, psql meta-commands allowed) with
    /// `psql -X -v ON_ERROR_STOP=1 -At -q` as role `postgres` against `db`;
    /// returns the trimmed stdout. Panics with psql's stderr on error.
    pub fn psql(&self, db: &str, sql: &str) -> String {
        self.try_psql(db, sql).unwrap_or_else(|err| {
            panic!(
                "psql failed on port {} db {db:?}\n--- sql ---\n{sql}\n--- error ---\n{err}\n{}",
                self.port,
                self.log_excerpt()
            )
        })
    }

    /// Like [`PgServer::psql`] but returns psql's stderr as `Err` instead of
    /// panicking.
    pub fn try_psql(&self, db: &str, sql: &str) -> Result<String, String> {
        self.run_psql(db, "postgres", None, sql)
    }

    /// Runs `sql` as `user` over TCP with `password` (given to psql in
    /// `PGPASSWORD`; psql never prompts). `Err` holds psql's stderr.
    pub fn psql_as(
        &self,
        db: &str,
        user: &str,
        password: &str,
        sql: &str,
    ) -> Result<String, String> {
        self.run_psql(db, user, Some(password), sql)
    }

    /// Stops the server (fast shutdown) and keeps the data directory.
    /// Idempotent.
    pub fn stop(&mut self) {
        if !self.running && !self.data_dir.join("postmaster.pid").exists() {
            return;
        }
        let out = self.pg_ctl_stop("fast", PG_CTL_WAIT_SECS);
        let pid_file_left = self.data_dir.join("postmaster.pid").exists();
        if pid_file_left {
            panic!(
                "pg_ctl stop failed for the server on port {}: {}\n{}",
                self.port,
                describe_result(&out),
                self.log_excerpt()
            );
        }
        if let Some(pid) = self.postmaster_pid {
            wait_until_dead(pid, Duration::from_secs(10));
        }
        self.running = false;
        self.postmaster_pid = None;
    }

    /// Starts the server again on the same port after [`PgServer::stop`] and
    /// waits until it accepts connections. Does nothing if it is running.
    pub fn start_again(&mut self) {
        if self.running {
            return;
        }
        let deadline = Instant::now() + SAME_PORT_TIMEOUT;
        loop {
            match self.try_start_postmaster() {
                Ok(()) => break,
                Err(StartError::PortInUse(_)) if Instant::now() < deadline => {
                    thread::sleep(Duration::from_millis(200));
                }
                Err(StartError::PortInUse(msg) | StartError::Other(msg)) => panic!(
                    "could not start the PostgreSQL server again on port {}: {msg}",
                    self.port
                ),
            }
        }
        self.wait_ready();
    }

    /// [`PgServer::stop`] then [`PgServer::start_again`].
    pub fn restart(&mut self) {
        self.stop();
        self.start_again();
    }

    /// Path of the server log (useful in panic messages).
    pub fn log_path(&self) -> PathBuf {
        self.log.clone()
    }

    /// The last lines of the server log, prefixed with its path.
    pub fn log_excerpt(&self) -> String {
        format!(
            "--- last lines of {} ---\n{}",
            self.log.display(),
            tail_of_file(&self.log, LOG_TAIL_LINES)
        )
    }

    /// Creates a streaming replica of this primary with `pg_basebackup -R -X
    /// stream -c fast` on another free port, started and accepting
    /// connections. The replica stops and removes itself on drop.
    pub fn start_replica(&self) -> PgServer {
        assert!(
            self.running,
            "start_replica: the primary on port {} is not running",
            self.port
        );
        let mut replica = PgServer::new_empty(true);
        let port = self.port.to_string();
        let out = replica
            .server_command("pg_basebackup")
            .args(["-h", "127.0.0.1", "-p", &port, "-U", "postgres", "-w", "-D"])
            .arg(&replica.data_dir)
            .args(["-R", "-X", "stream", "-c", "fast", "--no-sync"])
            .output();
        match out {
            Ok(out) if out.status.success() => {}
            other => panic!(
                "pg_basebackup from the primary on port {} failed: {}\n{}",
                self.port,
                describe_result(&other),
                self.log_excerpt()
            ),
        }
        replica.start_on_fresh_port();
        replica
    }

    /// On a replica: `SELECT pg_wal_replay_pause()`, then waits (up to a few
    /// seconds) until replay is actually paused. Records that arrive after
    /// this returns are not replayed until [`PgServer::resume_replay`].
    pub fn pause_replay(&self) {
        self.psql("postgres", "SELECT pg_wal_replay_pause()");
        // Replay pauses before the next record; with no WAL arriving the state
        // may stay 'pause requested', which holds back new records just the same.
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if self.psql("postgres", "SELECT pg_get_wal_replay_pause_state()") == "paused" {
                return;
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// On a replica: `SELECT pg_wal_replay_resume()`.
    pub fn resume_replay(&self) {
        self.psql("postgres", "SELECT pg_wal_replay_resume()");
    }

    /// Waits until `replica` has received and replayed all WAL this primary
    /// has written so far (up to 30 s; panics on timeout).
    pub fn wait_for_replica(&self, replica: &PgServer) {
        let lsn = self.psql("postgres", "SELECT pg_current_wal_lsn()");
        let sql = format!("SELECT pg_last_wal_replay_lsn() >= '{lsn}'::pg_lsn");
        replica.wait_until("postgres", &sql, "t", READY_TIMEOUT);
    }

    /// Polls `sql` on `db` until its output equals `expected`; panics with
    /// the last output after `timeout`.
    pub fn wait_until(&self, db: &str, sql: &str, expected: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            let got = self.try_psql(db, sql);
            if got.as_deref() == Ok(expected) {
                return;
            }
            if Instant::now() >= deadline {
                panic!(
                    "timed out after {timeout:?} waiting for {sql:?} on port {} db {db:?} \
                     to return {expected:?}; last result: {got:?}\n{}",
                    self.port,
                    self.log_excerpt()
                );
            }
            thread::sleep(Duration::from_millis(25));
        }
    }

    /// Directory holding the PostgreSQL binaries in use (pgbench, psql...).
    pub fn bindir(&self) -> PathBuf {
        self.bindir.clone()
    }

    /// The server's data directory.
    pub fn data_dir(&self) -> PathBuf {
        self.data_dir.clone()
    }

    /// The directory of the server's unix socket (`psql -h DIR`).
    pub fn socket_dir(&self) -> PathBuf {
        self.socket_dir.clone()
    }

    /// The private temporary directory removed on drop.
    pub fn root_dir(&self) -> PathBuf {
        self.root.clone()
    }

    /// Pid of the running postmaster, if running.
    pub fn postmaster_pid(&self) -> Option<u32> {
        if self.running {
            self.postmaster_pid
        } else {
            None
        }
    }

    /// Whether the server is started (not stopped with [`PgServer::stop`]).
    pub fn is_running(&self) -> bool {
        self.running
    }

    /// Whether this server is a replica made by [`PgServer::start_replica`].
    pub fn is_replica(&self) -> bool {
        self.replica
    }

    /// A `Command` for a PostgreSQL client program of [`PgServer::bindir`]
    /// (e.g. `pgbench`), with the caller's `PG*` variables removed and
    /// `PGHOST`/`PGPORT`/`PGUSER` set to this server.
    pub fn client_command(&self, program: &str) -> Command {
        let mut cmd = self.base_command(program);
        cmd.env("PGHOST", "127.0.0.1")
            .env("PGPORT", self.port.to_string())
            .env("PGUSER", "postgres");
        cmd
    }

    // ----- internals -----

    fn new_empty(replica: bool) -> PgServer {
        let bindir = find_bindir().unwrap_or_else(|| {
            let searched = match env::var_os("PACER_PG_BINDIR").filter(|d| !d.is_empty()) {
                Some(dir) => format!("in $PACER_PG_BINDIR ({})", Path::new(&dir).display()),
                None => "in /usr/lib/postgresql/*/bin, /usr/pgsql-*/bin, /usr/local/pgsql/bin \
                         or on PATH"
                    .to_owned(),
            };
            panic!(
                "PostgreSQL server binaries not found: no initdb, pg_ctl and postgres {searched}; \
                 {INSTALL_HINT}"
            )
        });
        let run_as = if running_as_root() {
            Some(postgres_user_ids().unwrap_or_else(|| {
                panic!(
                    "the tests run as root, but PostgreSQL refuses to run as root and there is \
                     no `postgres` OS user to run it as; {INSTALL_HINT} (it creates that user)"
                )
            }))
        } else {
            None
        };
        let base = temp_base(run_as.is_some());
        sweep_orphans(&base);
        let dir = tempfile::Builder::new()
            .prefix(DIR_PREFIX)
            .tempdir_in(&base)
            .unwrap_or_else(|e| panic!("cannot create a temporary directory for PostgreSQL: {e}"));
        let root = dir.path().to_path_buf();
        write_owner_file(&root);
        let socket_dir = root.join("sock");
        fs::create_dir(&socket_dir)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", socket_dir.display()));
        if let Some((uid, gid)) = run_as {
            for path in [&root, &socket_dir] {
                std::os::unix::fs::chown(path, Some(uid), Some(gid)).unwrap_or_else(|e| {
                    panic!("cannot chown {} to the postgres user: {e}", path.display())
                });
            }
        }
        PgServer {
            dir: Some(dir),
            data_dir: root.join("data"),
            log: root.join("server.log"),
            socket_dir,
            root,
            port: 0,
            bindir,
            run_as,
            running: false,
            postmaster_pid: None,
            replica,
        }
    }

    fn tool(&self, name: &str) -> PathBuf {
        let in_bindir = self.bindir.join(name);
        if in_bindir.is_file() {
            in_bindir
        } else {
            PathBuf::from(name)
        }
    }

    /// A command with a clean, predictable environment, run in our directory.
    fn base_command(&self, program: &str) -> Command {
        let mut cmd = Command::new(self.tool(program));
        let inherited_pg: Vec<OsString> = env::vars_os()
            .map(|(k, _)| k)
            .filter(|k| k.to_string_lossy().starts_with("PG"))
            .collect();
        for key in inherited_pg {
            cmd.env_remove(key);
        }
        cmd.env("LC_ALL", "C")
            .env("PGCONNECT_TIMEOUT", "10")
            .env("PGPASSFILE", self.root.join("no-pgpass"))
            .current_dir(&self.root)
            .stdin(Stdio::null());
        cmd
    }

    /// A command run as the server's OS user (`postgres` when we are root).
    fn server_command(&self, program: &str) -> Command {
        let mut cmd = self.base_command(program);
        cmd.env("HOME", &self.root);
        if let Some((uid, gid)) = self.run_as {
            cmd.uid(uid).gid(gid);
        }
        cmd
    }

    fn initdb(&self) {
        let out = self
            .server_command("initdb")
            .arg("-D")
            .arg(&self.data_dir)
            .args([
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            ])
            .output();
        match out {
            Ok(out) if out.status.success() => {}
            Ok(out) => panic!("initdb failed: {}", describe_output(&out)),
            Err(e) if e.kind() == ErrorKind::NotFound => panic!(
                "initdb not found at {}: {INSTALL_HINT}",
                self.tool("initdb").display()
            ),
            Err(e) => panic!("cannot run {}: {e}", self.tool("initdb").display()),
        }
    }

    fn configure_primary(&self) {
        let conf = self.data_dir.join("postgresql.conf");
        let appended = fs::OpenOptions::new()
            .append(true)
            .open(&conf)
            .and_then(|mut f| f.write_all(SERVER_CONF.as_bytes()));
        if let Err(e) = appended {
            panic!("cannot append to {}: {e}", conf.display());
        }
        let hba = self.data_dir.join("pg_hba.conf");
        fs::write(&hba, HBA_CONF).unwrap_or_else(|e| panic!("cannot write {}: {e}", hba.display()));
    }

    /// Starts the postmaster on fresh ports until one is not taken meanwhile.
    fn start_on_fresh_port(&mut self) {
        let mut failures = Vec::new();
        for attempt in 0..PORT_ATTEMPTS {
            self.port = free_port(attempt);
            match self.try_start_postmaster() {
                Ok(()) => {
                    self.wait_ready();
                    return;
                }
                Err(StartError::PortInUse(msg)) => failures.push(msg),
                Err(StartError::Other(msg)) => panic!(
                    "could not start PostgreSQL ({}) on port {}: {msg}",
                    if self.replica { "replica" } else { "primary" },
                    self.port
                ),
            }
        }
        panic!(
            "could not start PostgreSQL: {PORT_ATTEMPTS} ports in a row were taken; last failure: {}",
            failures.last().map(String::as_str).unwrap_or("")
        );
    }

    fn try_start_postmaster(&mut self) -> Result<(), StartError> {
        let log_len_before = fs::metadata(&self.log).map(|m| m.len()).unwrap_or(0);
        let options = format!(
            "-p {} -k '{}'",
            self.port,
            self.socket_dir.display().to_string().replace('\'', "'\\''")
        );
        let out = self
            .server_command("pg_ctl")
            .arg("start")
            .arg("-D")
            .arg(&self.data_dir)
            .args(["-w", "-t", PG_CTL_WAIT_SECS, "-l"])
            .arg(&self.log)
            .args(["-o", &options])
            .output();
        let out = match out {
            Ok(out) => out,
            Err(e) => {
                return Err(StartError::Other(format!(
                    "cannot run {}: {e}; {INSTALL_HINT}",
                    self.tool("pg_ctl").display()
                )));
            }
        };
        if out.status.success() {
            self.running = true;
            self.postmaster_pid = read_postmaster_pid(&self.data_dir);
            return Ok(());
        }
        // Make sure a half-started postmaster (e.g. pg_ctl timed out) is gone.
        self.kill_postmaster();
        let new_log = read_from(&self.log, log_len_before);
        let msg = format!(
            "pg_ctl start failed: {}\n{}",
            describe_output(&out),
            self.log_excerpt()
        );
        if new_log.contains("Address already in use")
            || new_log.contains("could not bind IPv4 address")
            || new_log.contains("could not create any TCP/IP sockets")
        {
            Err(StartError::PortInUse(msg))
        } else {
            Err(StartError::Other(msg))
        }
    }

    /// Waits until a trivial query succeeds (pg_ctl -w already waited for the
    /// postmaster to accept connections; this also covers a hot standby).
    fn wait_ready(&self) {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            let last = self.try_psql("postgres", "SELECT 1");
            if last.as_deref() == Ok("1") {
                return;
            }
            if Instant::now() >= deadline {
                panic!(
                    "PostgreSQL on port {} did not accept connections within {READY_TIMEOUT:?}: \
                     {last:?}\n{}",
                    self.port,
                    self.log_excerpt()
                );
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    fn run_psql(
        &self,
        db: &str,
        user: &str,
        password: Option<&str>,
        sql: &str,
    ) -> Result<String, String> {
        let port = self.port.to_string();
        let mut cmd = self.base_command("psql");
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
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", self.tool("psql").display()))?;
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

    fn pg_ctl_stop(&self, mode: &str, wait_secs: &str) -> std::io::Result<Output> {
        self.server_command("pg_ctl")
            .arg("stop")
            .arg("-D")
            .arg(&self.data_dir)
            .args(["-m", mode, "-w", "-t", wait_secs])
            .output()
    }

    /// Stops the server at once, never panicking: `pg_ctl stop -m immediate`,
    /// then SIGQUIT and finally SIGKILL to the postmaster's process group if
    /// it is still alive.
    fn kill_postmaster(&mut self) {
        let pid_file = self.data_dir.join("postmaster.pid");
        let pid = read_postmaster_pid(&self.data_dir).or(self.postmaster_pid);
        if pid_file.exists() || self.running {
            let _ = self.pg_ctl_stop("immediate", PG_CTL_KILL_WAIT_SECS);
        }
        if let Some(pid) = pid
            && !wait_until_dead(pid, Duration::from_secs(5))
            && is_our_postmaster(pid, &self.data_dir)
        {
            signal(pid, "QUIT", false);
            if !wait_until_dead(pid, Duration::from_secs(5)) {
                signal(pid, "KILL", true);
                signal(pid, "KILL", false);
                wait_until_dead(pid, Duration::from_secs(5));
            }
        }
        self.running = false;
        self.postmaster_pid = None;
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        self.kill_postmaster();
        if let Some(dir) = self.dir.take() {
            let path = dir.path().to_path_buf();
            if dir.close().is_err() {
                let _ = fs::remove_dir_all(&path);
            }
        }
    }
}

enum StartError {
    /// The port was taken: worth retrying (with another port, or later).
    PortInUse(String),
    Other(String),
}

// ----- binaries and users -----

fn has_server_binaries(dir: &Path) -> bool {
    ["initdb", "pg_ctl", "postgres"]
        .iter()
        .all(|b| dir.join(b).is_file())
}

/// `$PACER_PG_BINDIR`, else the highest-numbered known install, else the
/// directory of `initdb` on PATH (symlinks resolved).
fn find_bindir() -> Option<PathBuf> {
    if let Some(dir) = env::var_os("PACER_PG_BINDIR").filter(|d| !d.is_empty()) {
        let dir = PathBuf::from(dir);
        return has_server_binaries(&dir).then_some(dir);
    }
    // Debian/Ubuntu: /usr/lib/postgresql/NN/bin; PGDG RPMs: /usr/pgsql-NN/bin.
    let mut candidates: Vec<(Vec<u64>, PathBuf)> = Vec::new();
    for (parent, prefix) in [("/usr/lib/postgresql", ""), ("/usr", "pgsql-")] {
        let Ok(entries) = fs::read_dir(parent) else {
            continue;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if let Some(version) = name.strip_prefix(prefix) {
                candidates.push((version_key(version), entry.path().join("bin")));
            }
        }
    }
    candidates.retain(|(_, dir)| has_server_binaries(dir));
    candidates.sort();
    if let Some((_, dir)) = candidates.pop() {
        return Some(dir);
    }
    let local = PathBuf::from("/usr/local/pgsql/bin");
    if has_server_binaries(&local) {
        return Some(local);
    }
    let initdb = on_path("initdb")?;
    let initdb = fs::canonicalize(&initdb).unwrap_or(initdb);
    let dir = initdb.parent()?.to_path_buf();
    has_server_binaries(&dir).then_some(dir)
}

fn version_key(name: &str) -> Vec<u64> {
    name.split('.')
        .map(|part| part.parse().unwrap_or(0))
        .collect()
}

fn on_path(program: &str) -> Option<PathBuf> {
    env::split_paths(&env::var_os("PATH")?)
        .map(|dir| dir.join(program))
        .find(|p| p.is_file())
}

fn running_as_root() -> bool {
    match fs::metadata("/proc/self") {
        Ok(meta) => meta.uid() == 0,
        Err(_) => Command::new("id")
            .arg("-u")
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
            .unwrap_or(false),
    }
}

/// uid and gid of the `postgres` OS user.
fn postgres_user_ids() -> Option<(u32, u32)> {
    if let Ok(passwd) = fs::read_to_string("/etc/passwd") {
        for line in passwd.lines() {
            let fields: Vec<&str> = line.split(':').collect();
            if fields.len() >= 4
                && fields[0] == "postgres"
                && let (Ok(uid), Ok(gid)) = (fields[2].parse(), fields[3].parse())
            {
                return Some((uid, gid));
            }
        }
    }
    let id = |flag: &str| -> Option<u32> {
        let out = Command::new("id").args([flag, "postgres"]).output().ok()?;
        if !out.status.success() {
            return None;
        }
        String::from_utf8_lossy(&out.stdout).trim().parse().ok()
    };
    Some((id("-u")?, id("-g")?))
}

/// Where the private directories go: the usual temp dir, unless the postgres
/// user could not reach it or the socket path would get too long, then /tmp.
fn temp_base(as_other_user: bool) -> PathBuf {
    let base = env::temp_dir();
    // sun_path holds 107 bytes: base + "/pacer-pg-XXXXXX/sock/.s.PGSQL.NNNNN"
    let short_enough = base.as_os_str().len() <= 60;
    let reachable = !as_other_user
        || base.ancestors().all(|dir| {
            fs::metadata(dir)
                .map(|m| m.mode() & 0o001 != 0)
                .unwrap_or(false)
        });
    if short_enough && reachable {
        base
    } else {
        PathBuf::from("/tmp")
    }
}

// ----- servers left behind by killed test processes -----

/// Prefix of every server's private directory in the temp dir.
const DIR_PREFIX: &str = "pacer-pg-";
/// File in a server's directory naming the test process that owns it.
const OWNER_FILE: &str = "owner";

/// Start time (in clock ticks since boot) of a live, non-zombie process.
fn process_start_time(pid: u32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = stat.rsplit_once(") ")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // fields[0] is the state (field 3 of stat); starttime is field 22.
    if matches!(fields.first(), Some(&"Z") | Some(&"X")) {
        return None;
    }
    fields.get(19)?.parse().ok()
}

/// Records "PID STARTTIME" of this test process, so that a later run can
/// recognise the directory as orphaned once this process is gone.
fn write_owner_file(root: &Path) {
    let pid = std::process::id();
    if let Some(start) = process_start_time(pid) {
        let _ = fs::write(root.join(OWNER_FILE), format!("{pid} {start}\n"));
    }
}

/// Stops the servers and removes the directories of test processes that died
/// without dropping their `PgServer` (killed by a timeout, Ctrl-C, abort).
fn sweep_orphans(base: &Path) {
    let Ok(entries) = fs::read_dir(base) else {
        return;
    };
    for entry in entries.flatten() {
        if !entry.file_name().to_string_lossy().starts_with(DIR_PREFIX) {
            continue;
        }
        let dir = entry.path();
        // Directories without an owner file are skipped (they may be in the
        // middle of being created, or come from somewhere else).
        let Ok(owner) = fs::read_to_string(dir.join(OWNER_FILE)) else {
            continue;
        };
        let mut parts = owner.split_whitespace().map(str::parse::<u64>);
        let (Some(Ok(pid)), Some(Ok(start))) = (parts.next(), parts.next()) else {
            continue;
        };
        let Ok(pid) = u32::try_from(pid) else {
            continue;
        };
        if process_start_time(pid) == Some(start) {
            continue; // its test process is still running
        }
        let data_dir = dir.join("data");
        if let Some(postmaster) = read_postmaster_pid(&data_dir)
            && is_alive(postmaster)
            && is_our_postmaster(postmaster, &data_dir)
        {
            signal(postmaster, "QUIT", false);
            if !wait_until_dead(postmaster, Duration::from_secs(5)) {
                signal(postmaster, "KILL", true);
                signal(postmaster, "KILL", false);
                wait_until_dead(postmaster, Duration::from_secs(5));
            }
        }
        let _ = fs::remove_dir_all(&dir);
    }
}

// ----- ports -----

/// A port that is free right now. Prefers ports below the kernel's ephemeral
/// range, so that outgoing connections cannot grab the port while a server
/// is stopped between `stop` and `start_again`; falls back to the kernel's
/// choice (bind 127.0.0.1:0).
fn free_port(attempt: usize) -> u16 {
    let ephemeral_low = fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<u32>().ok())
        .unwrap_or(32768);
    let low = 10_000u32;
    if ephemeral_low > low + 1_000 {
        for i in 0..50 {
            let span = u64::from(ephemeral_low - low);
            let port = low + (random_u64(attempt * 100 + i) % span) as u32;
            let Ok(port) = u16::try_from(port) else {
                continue;
            };
            if TcpListener::bind(("127.0.0.1", port)).is_ok() {
                return port;
            }
        }
    }
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("cannot find a free TCP port on 127.0.0.1: {e}"))
}

fn random_u64(salt: usize) -> u64 {
    let mut hasher = RandomState::new().build_hasher();
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    hasher.write_u128(nanos);
    hasher.write_u32(std::process::id());
    hasher.write_usize(salt);
    hasher.finish()
}

// ----- processes -----

fn read_postmaster_pid(data_dir: &Path) -> Option<u32> {
    let text = fs::read_to_string(data_dir.join("postmaster.pid")).ok()?;
    text.lines().next()?.trim().parse().ok()
}

/// Whether `pid` is alive (a zombie counts as dead).
fn is_alive(pid: u32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the parenthesised command name.
        Ok(stat) => stat
            .rsplit_once(") ")
            .and_then(|(_, rest)| rest.chars().next())
            .is_none_or(|state| state != 'Z' && state != 'X'),
        Err(_) if Path::new("/proc/self/stat").exists() => false,
        Err(_) => Command::new("kill")
            .args(["-0", &pid.to_string()])
            .stderr(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false),
    }
}

fn wait_until_dead(pid: u32, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while is_alive(pid) {
        if Instant::now() >= deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(20));
    }
    true
}

/// Guards against signalling a recycled pid.
fn is_our_postmaster(pid: u32, data_dir: &Path) -> bool {
    match fs::read(format!("/proc/{pid}/cmdline")) {
        Ok(cmdline) => {
            let needle = data_dir.as_os_str().as_encoded_bytes();
            cmdline.windows(needle.len()).any(|w| w == needle)
        }
        // No /proc: trust the pid file.
        Err(_) => !Path::new("/proc/self/cmdline").exists(),
    }
}

/// `kill -SIG pid`, or the whole process group when `group` (the postmaster
/// started by pg_ctl leads its own session and process group).
fn signal(pid: u32, sig: &str, group: bool) {
    let target = if group {
        format!("-{pid}")
    } else {
        pid.to_string()
    };
    let _ = Command::new("kill")
        .args([&format!("-{sig}"), "--", &target])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

// ----- text helpers -----

fn tail_of_file(path: &Path, lines: usize) -> String {
    match fs::read(path) {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            let all: Vec<&str> = text.lines().collect();
            all[all.len().saturating_sub(lines)..].join("\n")
        }
        Err(e) => format!("(cannot read the log: {e})"),
    }
}

fn read_from(path: &Path, offset: u64) -> String {
    let bytes = fs::read(path).unwrap_or_default();
    let start = usize::try_from(offset).unwrap_or(0).min(bytes.len());
    String::from_utf8_lossy(&bytes[start..]).into_owned()
}

fn describe_output(out: &Output) -> String {
    format!(
        "{}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout).trim(),
        String::from_utf8_lossy(&out.stderr).trim()
    )
}

fn describe_result(res: &std::io::Result<Output>) -> String {
    match res {
        Ok(out) => describe_output(out),
        Err(e) => format!("cannot run it: {e}"),
    }
}

fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
