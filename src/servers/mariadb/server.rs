//! A throwaway MariaDB server in a directory of its own, as the tests use it (unit tests and
//! `tests/` alike): its data directory, unix socket and error log in
//! `$TMPDIR/pacer-mdb-XXXXXXXX`, on a free port, killed and removed when dropped, also when the
//! test panicked. Nothing is shared between servers, so tests may start them from many threads
//! and processes at once; a test process killed before its servers were dropped leaves them
//! running, and the next [`MariaDbServer::start`] on the machine kills them and removes their
//! directories.
//!
//! Root logs in without a password, from 127.0.0.1 over TCP and over the socket; every primary
//! also has [`PASSWORD_USER`], who must log in with [`PASSWORD`]. A replica
//! ([`MariaDbServer::start_replica`]) is a fresh server that replicates the primary's whole
//! binary log by GTID, so it may be made at any time (the binary logs are never purged).
//!
//! A test wants the server or a clear reason why not: these functions panic on failure, with
//! the server's error log.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use super::{Binaries, Config, Login, Lookup, Mariadbd, OsUser, Programs, Shutdown};
use crate::servers::dir::ServerDir;
use crate::servers::tls::TlsFiles;

/// A user that authenticates with a password (mysql_native_password), allowed everything but
/// GRANT.
pub const PASSWORD_USER: &str = "pacer_pw";
/// The password of [`PASSWORD_USER`].
pub const PASSWORD: &str = "correct horse battery";

/// Prefix of every server's directory in the temp dir.
const DIR_PREFIX: &str = "pacer-mdb-";
/// How long [`MariaDbServer::wait_for_replica`] waits.
const REPLICA_TIMEOUT: Duration = Duration::from_secs(30);

/// Where the programs are, whom the servers run as and whether they have the
/// metadata_lock_info plugin, found once per process.
struct Machine {
    binaries: Binaries,
    run_as: Option<OsUser>,
    metadata_lock_info: bool,
}

fn machine() -> Result<&'static Machine, &'static str> {
    static MACHINE: OnceLock<Result<Machine, String>> = OnceLock::new();
    MACHINE
        .get_or_init(|| {
            let binaries = Lookup::from_env().find("a test server")?;
            super::check_version(&binaries.server)?;
            let run_as = super::run_as()?;
            let metadata_lock_info = super::has_metadata_lock_info(&binaries);
            Ok(Machine {
                binaries,
                run_as,
                metadata_lock_info,
            })
        })
        .as_ref()
        .map_err(String::as_str)
}

/// Whether the MariaDB programs (10.6 or later, and, as root, an OS user to run them as) are
/// there, so that [`MariaDbServer::start`] can work.
pub fn binaries_available() -> bool {
    machine().is_ok()
}

/// Whether the servers load the `metadata_lock_info` plugin (granted metadata locks in
/// `information_schema.METADATA_LOCK_INFO`): when the server's plugin directory has it, as
/// Debian's `mariadb-server` package does.
pub fn metadata_lock_info_available() -> bool {
    machine().is_ok_and(|m| m.metadata_lock_info)
}

/// How [`MariaDbServer::start_with`] sets a server up.
#[derive(Debug, Clone)]
pub struct Options {
    /// Serve TLS with these files (`--ssl-ca`, `--ssl-cert`, `--ssl-key`; copied into the
    /// server's directory first, so any readable files do). Clients may still connect without.
    pub tls: Option<TlsFiles>,
    /// `--performance-schema=ON` (for `performance_schema.metadata_locks`; OFF by default).
    pub performance_schema: bool,
    /// `--server-id` (1 by default; replicas of this server take the next ones).
    pub server_id: u32,
    /// `--report-host` (with `--report-port`): how the server names itself to its primary.
    pub report_host: Option<String>,
    /// More server options, after pacer's own (a later one wins: `--skip-log-bin`,
    /// `--userstat=ON`).
    pub server_args: Vec<String>,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            tls: None,
            performance_schema: false,
            server_id: 1,
            report_host: None,
            server_args: Vec::new(),
        }
    }
}

/// A throwaway MariaDB server (primary or replica) in a directory of its own. Dropping it kills
/// the server and removes the directory.
pub struct MariaDbServer {
    server: Mariadbd,
    options: Options,
    /// The server id the next replica of this server takes.
    next_replica_id: AtomicU32,
    dir: ServerDir,
}

impl MariaDbServer {
    /// Starts a fresh primary on a free port, with [`Options::default`].
    pub fn start() -> MariaDbServer {
        MariaDbServer::start_with(Options::default())
    }

    /// Starts a fresh primary on a free port, set up as `options` say.
    pub fn start_with(options: Options) -> MariaDbServer {
        let server = MariaDbServer::try_start(options, false);
        server.sql(
            "",
            &format!(
                "CREATE USER '{PASSWORD_USER}'@'%' IDENTIFIED BY '{}';\n\
                 GRANT ALL PRIVILEGES ON *.* TO '{PASSWORD_USER}'@'%';",
                PASSWORD.replace('\'', "''")
            ),
        );
        server
    }

    /// Makes the directory, installs a data directory in it, starts the server.
    fn try_start(options: Options, replica: bool) -> MariaDbServer {
        let machine = machine().unwrap_or_else(|e| panic!("{e}"));
        let base = crate::servers::temp_base();
        super::sweep_orphans(&base, DIR_PREFIX);
        let run_as = machine.run_as.as_ref();
        let ids = run_as.map(|u| (u.uid, u.gid));
        let dir = ServerDir::create(&base, DIR_PREFIX, ids).unwrap_or_else(|e| panic!("{e}"));
        let programs = Programs::new(&machine.binaries, run_as, dir.path());
        let tls = options.tls.as_ref().map(|files| {
            copy_tls_files(files, &dir.path().join("tls"), &programs)
                .unwrap_or_else(|e| panic!("{e}"))
        });
        let config = Config {
            server_id: options.server_id,
            performance_schema: options.performance_schema,
            tls,
            report_host: options.report_host.clone(),
            replica,
            metadata_lock_info: machine.metadata_lock_info,
            server_args: options.server_args.clone(),
        };
        let mut server = Mariadbd::install(
            &programs,
            config,
            dir.path().join("data"),
            dir.path().join("error.log"),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let started = server.start_on_free_port();
        let next_replica_id = AtomicU32::new(options.server_id + 1);
        let server = MariaDbServer {
            server,
            options,
            next_replica_id,
            dir,
        };
        if let Err(e) = started {
            panic!("could not start MariaDB: {e}");
        }
        server
    }

    /// The TCP port the server listens on (127.0.0.1 only).
    pub fn port(&self) -> u16 {
        self.server.port
    }

    /// The server's unix socket; `None` when the temp dir's path is too long for one (then the
    /// server listens on TCP only).
    pub fn socket(&self) -> Option<&Path> {
        self.server.socket.as_deref()
    }

    /// `mysql://root@127.0.0.1:PORT/DB`
    pub fn url(&self, db: &str) -> String {
        self.server.url(db)
    }

    /// `mysql://USER:PASSWORD@127.0.0.1:PORT/DB`, percent-encoded.
    pub fn url_as(&self, user: &str, password: &str, db: &str) -> String {
        format!(
            "mysql://{}:{}@127.0.0.1:{}/{}",
            super::percent_encode(user),
            super::percent_encode(password),
            self.port(),
            super::percent_encode(db)
        )
    }

    /// `CREATE DATABASE name`; returns `url(name)`.
    pub fn create_database(&self, name: &str) -> String {
        self.sql(
            "",
            &format!("CREATE DATABASE `{}`", name.replace('`', "``")),
        );
        self.url(name)
    }

    /// Runs `sql` (one or more statements) with the `mariadb` client in batch mode as root over
    /// the socket against `db` (none when empty); returns the trimmed output: rows on lines,
    /// columns tab-separated, no column names. Panics with the client's error on failure.
    pub fn sql(&self, db: &str, sql: &str) -> String {
        self.try_sql(db, sql).unwrap_or_else(|err| {
            panic!(
                "SQL failed on MariaDB port {} db {db:?}\n--- sql ---\n{sql}\n--- error ---\n{err}\n{}",
                self.port(),
                self.server.log_excerpt()
            )
        })
    }

    /// Like [`MariaDbServer::sql`] but returns the client's error output (`ERROR 1146 (42S02)
    /// at line 1: …`) as `Err` instead of panicking.
    pub fn try_sql(&self, db: &str, sql: &str) -> Result<String, String> {
        self.server.client(db, Login::Root, false, sql)
    }

    /// Runs `sql` as `user` with `password` over TCP (the client never prompts). `Err` holds
    /// the client's error output.
    pub fn sql_as(
        &self,
        db: &str,
        user: &str,
        password: &str,
        sql: &str,
    ) -> Result<String, String> {
        self.server
            .client(db, Login::User { user, password }, false, sql)
    }

    /// Stops the server (`SHUTDOWN`) and keeps the data directory.
    pub fn stop(&mut self) {
        if let Err(e) = self.server.stop(Shutdown::Clean) {
            panic!("{e}\n{}", self.server.log_excerpt());
        }
    }

    /// Starts the server again on the same port after [`MariaDbServer::stop`] and waits until
    /// it answers.
    pub fn start_again(&mut self) {
        if let Err(e) = self.server.start_again() {
            panic!(
                "could not start the MariaDB server again on port {}: {e}",
                self.port()
            );
        }
    }

    /// [`MariaDbServer::stop`] then [`MariaDbServer::start_again`].
    pub fn restart(&mut self) {
        self.stop();
        self.start_again();
    }

    /// Starts a replica of this primary on another free port: a fresh server (the next server
    /// id, `--read-only=1`, `--report-host=127.0.0.1`, relay log) replicating this one's binary
    /// log from the start by GTID (`MASTER_USE_GTID=slave_pos`) as root, caught up when this
    /// returns. It has the primary's TLS and performance schema settings.
    pub fn start_replica(&self) -> MariaDbServer {
        let options = Options {
            server_id: self.next_replica_id.fetch_add(1, Ordering::Relaxed),
            report_host: Some("127.0.0.1".into()),
            ..self.options.clone()
        };
        let replica = MariaDbServer::try_start(options, true);
        replica.sql(
            "",
            &format!(
                "CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT={}, MASTER_USER='root', \
                 MASTER_USE_GTID=slave_pos, MASTER_CONNECT_RETRY=1;\nSTART SLAVE;",
                self.port()
            ),
        );
        self.wait_for_replica(&replica);
        replica
    }

    /// On a replica: `STOP SLAVE SQL_THREAD`. Events still arrive (in the relay log) but are
    /// not applied until [`MariaDbServer::resume_replay`].
    pub fn pause_replay(&self) {
        self.sql("", "STOP SLAVE SQL_THREAD");
    }

    /// On a replica: `START SLAVE SQL_THREAD`.
    pub fn resume_replay(&self) {
        self.sql("", "START SLAVE SQL_THREAD");
    }

    /// Waits until `replica` has applied everything this primary has written so far (its
    /// `gtid_slave_pos` reaches this one's `gtid_binlog_pos`; up to 30 s; panics on timeout).
    pub fn wait_for_replica(&self, replica: &MariaDbServer) {
        let position = self.sql("", "SELECT @@gtid_binlog_pos");
        if position.is_empty() {
            return; // nothing written yet
        }
        let waited = replica.sql(
            "",
            &format!(
                "SELECT MASTER_GTID_WAIT('{position}', {})",
                REPLICA_TIMEOUT.as_secs()
            ),
        );
        if waited != "0" {
            panic!(
                "the replica on port {} did not reach the primary's GTID position {position} \
                 within {REPLICA_TIMEOUT:?}\n--- SHOW SLAVE STATUS ---\n{}\n{}",
                replica.port(),
                replica.replica_status(),
                replica.server.log_excerpt()
            );
        }
    }

    /// On a replica: `SHOW SLAVE STATUS`, one `Field: value` a line (the client's error if it
    /// fails).
    pub fn replica_status(&self) -> String {
        self.server
            .client("", Login::Root, true, "SHOW SLAVE STATUS\\G")
            .unwrap_or_else(|e| e)
    }

    /// Polls `sql` on `db` until its output equals `expected`; panics with the last output
    /// after `timeout`.
    pub fn wait_until(&self, db: &str, sql: &str, expected: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            let got = self.try_sql(db, sql);
            if got.as_deref() == Ok(expected) {
                return;
            }
            if Instant::now() >= deadline {
                panic!(
                    "timed out after {timeout:?} waiting for {sql:?} on MariaDB port {} db \
                     {db:?} to return {expected:?}; last result: {got:?}\n{}",
                    self.port(),
                    self.server.log_excerpt()
                );
            }
            thread::sleep(Duration::from_millis(25));
        }
    }

    /// The server's data directory.
    pub fn data_dir(&self) -> PathBuf {
        self.server.data_dir.clone()
    }

    /// The server's error log.
    pub fn error_log(&self) -> &Path {
        &self.server.log
    }

    /// The server's directory (data, socket, error log), removed on drop.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The pid of the running server (`None` while stopped).
    pub fn pid(&self) -> Option<u32> {
        self.server.running_pid()
    }
}

impl Drop for MariaDbServer {
    fn drop(&mut self) {
        // Then the directory goes with `self.dir`.
        let _ = self.server.stop(Shutdown::Kill);
    }
}

/// Copies the TLS files into `to` (made here), handed to the server's OS user, the key
/// readable by it alone.
fn copy_tls_files(files: &TlsFiles, to: &Path, programs: &Programs) -> Result<TlsFiles, String> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir(to).map_err(|e| format!("cannot create {}: {e}", to.display()))?;
    programs.hand_over(to)?;
    let copy = |from: &Path, name: &str| -> Result<PathBuf, String> {
        let dest = to.join(name);
        std::fs::copy(from, &dest).map_err(|e| {
            format!(
                "cannot copy the TLS file {} to {}: {e}",
                from.display(),
                dest.display()
            )
        })?;
        std::fs::set_permissions(&dest, std::fs::Permissions::from_mode(0o600))
            .map_err(|e| format!("cannot make {} private: {e}", dest.display()))?;
        programs.hand_over(&dest)?;
        Ok(dest)
    };
    Ok(TlsFiles {
        ca: copy(&files.ca, "ca.crt")?,
        cert: copy(&files.cert, "server.crt")?,
        key: copy(&files.key, "server.key")?,
    })
}
