//! A throwaway PostgreSQL server in a directory of its own, as the tests use it (unit tests and
//! `tests/` alike): its data directory, unix socket and log in `$TMPDIR/pacer-pg-XXXXXXXX`, on a
//! free port, stopped (immediate shutdown) and removed when dropped, also when the test
//! panicked. Nothing is shared between servers, so tests may start them from many threads and
//! processes at once; a test process killed before its servers were dropped leaves them
//! running, and the next [`PgServer::start`] on the machine stops them and removes their
//! directories.
//!
//! Every server can have a streaming replica made of it ([`PgServer::start_replica`]) and has a
//! role [`PASSWORD_USER`] that must log in over TCP with [`PASSWORD`] (scram-sha-256); every
//! other role is trusted. Clusters are created with `-E UTF8 --locale=C`; the superuser is
//! `postgres`.
//!
//! A test wants the server or a clear reason why not: these functions panic on failure, with
//! the server's log.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::thread;
use std::time::{Duration, Instant};

use super::binaries::{CLIENT_PROGRAM, Lookup, REPLICA_PROGRAM, SERVER_PROGRAMS};
use super::{Postmaster, Programs, Settings, Shutdown};
use crate::servers::dir::ServerDir;

/// Role that authenticates with a password (scram-sha-256 over TCP).
pub const PASSWORD_USER: &str = "pacer_pw";
/// The password of [`PASSWORD_USER`].
pub const PASSWORD: &str = "correct horse battery";

/// Prefix of every server's directory in the temp dir.
const DIR_PREFIX: &str = "pacer-pg-";
/// How long to wait for a started server to answer a query.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

const SETTINGS: Settings = Settings {
    superuser: "postgres",
    conf: "
# --- added by pacer's test servers ---
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
",
    // First match wins: a password for pacer_pw, trust for the rest.
    hba: "\
# written by pacer's test servers; first match wins
local   all             pacer_pw                                scram-sha-256
host    all             pacer_pw        127.0.0.1/32            scram-sha-256
host    all             pacer_pw        ::1/128                 scram-sha-256
local   all             all                                     trust
host    all             all             127.0.0.1/32            trust
host    all             all             ::1/128                 trust
local   replication     all                                     trust
host    replication     all             127.0.0.1/32            trust
host    replication     all             ::1/128                 trust
",
};

/// Where the binaries are and whom the servers run as, found once per process.
struct Machine {
    bin: PathBuf,
    run_as: Option<(u32, u32)>,
}

fn machine() -> Result<&'static Machine, &'static str> {
    static MACHINE: OnceLock<Result<Machine, String>> = OnceLock::new();
    MACHINE
        .get_or_init(|| {
            let mut needed = SERVER_PROGRAMS.to_vec();
            needed.extend([REPLICA_PROGRAM, CLIENT_PROGRAM]);
            let bin = Lookup::from_env().find("a test server", &needed)?;
            let run_as = super::run_as()?;
            Ok(Machine { bin, run_as })
        })
        .as_ref()
        .map_err(String::as_str)
}

/// Whether the PostgreSQL binaries (and, as root, an OS user to run them as) are there, so that
/// [`PgServer::start`] can work.
pub fn binaries_available() -> bool {
    machine().is_ok()
}

/// A throwaway PostgreSQL server (primary or streaming replica) in a directory of its own.
/// Dropping it stops the server (immediate shutdown) and removes the directory.
pub struct PgServer {
    postmaster: Postmaster,
    dir: ServerDir,
}

impl PgServer {
    /// Starts a fresh primary on a free port.
    pub fn start() -> PgServer {
        let server = PgServer::try_start(|dir, programs| {
            Postmaster::init(
                programs,
                &SETTINGS,
                dir.join("data"),
                dir.join("server.log"),
            )
        });
        server.psql(
            "postgres",
            &format!(
                "CREATE ROLE {PASSWORD_USER} LOGIN PASSWORD '{}'",
                PASSWORD.replace('\'', "''")
            ),
        );
        server
    }

    /// Makes the directory, has `make` make the server in it, starts the server.
    fn try_start(make: impl FnOnce(&Path, &Programs) -> Result<Postmaster, String>) -> PgServer {
        let machine = machine().unwrap_or_else(|e| panic!("{e}"));
        let base = crate::servers::temp_base();
        super::sweep_orphans(&base, DIR_PREFIX, &machine.bin, machine.run_as);
        let dir =
            ServerDir::create(&base, DIR_PREFIX, machine.run_as).unwrap_or_else(|e| panic!("{e}"));
        let programs = Programs::new(&machine.bin, machine.run_as, dir.path());
        let mut postmaster = make(dir.path(), &programs).unwrap_or_else(|e| panic!("{e}"));
        let started = postmaster.start_on_free_port();
        let server = PgServer { postmaster, dir };
        if let Err(e) = started {
            panic!("could not start PostgreSQL: {e}");
        }
        server.wait_ready();
        server
    }

    /// The TCP port the server listens on (127.0.0.1 only).
    pub fn port(&self) -> u16 {
        self.postmaster.port
    }

    /// `postgres://postgres@127.0.0.1:PORT/DB`
    pub fn url(&self, db: &str) -> String {
        self.postmaster.url(db)
    }

    /// `postgres://USER:PASSWORD@127.0.0.1:PORT/DB`, percent-encoded.
    pub fn url_as(&self, user: &str, password: &str, db: &str) -> String {
        format!(
            "postgres://{}:{}@127.0.0.1:{}/{}",
            super::percent_encode(user),
            super::percent_encode(password),
            self.port(),
            super::percent_encode(db)
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
    /// `psql -X -v ON_ERROR_STOP=1 -At -q` as role `postgres` against `db`; returns the trimmed
    /// stdout. Panics with psql's stderr on error.
    pub fn psql(&self, db: &str, sql: &str) -> String {
        self.try_psql(db, sql).unwrap_or_else(|err| {
            panic!(
                "psql failed on port {} db {db:?}\n--- sql ---\n{sql}\n--- error ---\n{err}\n{}",
                self.port(),
                self.postmaster.log_excerpt()
            )
        })
    }

    /// Like [`PgServer::psql`] but returns psql's stderr as `Err` instead of panicking.
    pub fn try_psql(&self, db: &str, sql: &str) -> Result<String, String> {
        self.postmaster.psql(db, None, None, sql)
    }

    /// Runs `sql` as `user` over TCP with `password` (given to psql in `PGPASSWORD`; psql never
    /// prompts). `Err` holds psql's stderr.
    pub fn psql_as(
        &self,
        db: &str,
        user: &str,
        password: &str,
        sql: &str,
    ) -> Result<String, String> {
        self.postmaster.psql(db, Some(user), Some(password), sql)
    }

    /// Stops the server (fast shutdown) and keeps the data directory.
    pub fn stop(&mut self) {
        if let Err(e) = self.postmaster.stop(Shutdown::Fast) {
            panic!("{e}\n{}", self.postmaster.log_excerpt());
        }
    }

    /// Starts the server again on the same port after [`PgServer::stop`] and waits until it
    /// accepts connections.
    pub fn start_again(&mut self) {
        if let Err(e) = self.postmaster.start_again() {
            panic!(
                "could not start the PostgreSQL server again on port {}: {e}",
                self.port()
            );
        }
        self.wait_ready();
    }

    /// [`PgServer::stop`] then [`PgServer::start_again`].
    pub fn restart(&mut self) {
        self.stop();
        self.start_again();
    }

    /// Creates a streaming replica of this primary with `pg_basebackup -R -X stream -c fast` on
    /// another free port, started and accepting connections. The replica stops and removes
    /// itself on drop.
    pub fn start_replica(&self) -> PgServer {
        PgServer::try_start(|dir, programs| {
            self.postmaster
                .make_replica(programs, dir.join("data"), dir.join("server.log"), None)
                .map_err(|e| format!("{e}\n{}", self.postmaster.log_excerpt()))
        })
    }

    /// On a replica: `SELECT pg_wal_replay_pause()`, then waits (up to a few seconds) until
    /// replay is actually paused. Records that arrive after this returns are not replayed until
    /// [`PgServer::resume_replay`].
    pub fn pause_replay(&self) {
        self.psql("postgres", "SELECT pg_wal_replay_pause()");
        // Replay pauses before the next record; with no WAL arriving the state may stay 'pause
        // requested', which holds back new records just the same.
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

    /// Waits until `replica` has received and replayed all WAL this primary has written so far
    /// (up to 30 s; panics on timeout).
    pub fn wait_for_replica(&self, replica: &PgServer) {
        let lsn = self.psql("postgres", "SELECT pg_current_wal_lsn()");
        let sql = format!("SELECT pg_last_wal_replay_lsn() >= '{lsn}'::pg_lsn");
        replica.wait_until("postgres", &sql, "t", READY_TIMEOUT);
    }

    /// Polls `sql` on `db` until its output equals `expected`; panics with the last output
    /// after `timeout`.
    pub fn wait_until(&self, db: &str, sql: &str, expected: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            let got = self.try_psql(db, sql);
            if got.as_deref() == Ok(expected) {
                return;
            }
            if Instant::now() >= deadline {
                panic!(
                    "timed out after {timeout:?} waiting for {sql:?} on port {} db {db:?} to \
                     return {expected:?}; last result: {got:?}\n{}",
                    self.port(),
                    self.postmaster.log_excerpt()
                );
            }
            thread::sleep(Duration::from_millis(25));
        }
    }

    /// The server's data directory.
    pub fn data_dir(&self) -> PathBuf {
        self.postmaster.data_dir.clone()
    }

    /// The server's directory (data, socket, log), removed on drop.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Waits until a trivial query succeeds (`pg_ctl -w` waited for the postmaster; this also
    /// covers a hot standby).
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
                    self.port(),
                    self.postmaster.log_excerpt()
                );
            }
            thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        // Then the directory goes with `self.dir`.
        let _ = self.postmaster.stop(Shutdown::Immediate);
    }
}
