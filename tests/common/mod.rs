//! Helpers shared by the integration tests: run the real binary, seed tables, write plans.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use pacer::servers::postgres::PgServer;

pub mod demo;
pub mod mariadb;
pub mod tmux;

/// Prefix of every test binary's scratch directory in the temp dir.
const SCRATCH_PREFIX: &str = "pacer-test-";

static SCRATCH: OnceLock<PathBuf> = OnceLock::new();

/// This test binary's directory of its own in the temp dir (`pacer-test-PID-XXXXXX`): HOME of
/// the pacer processes it starts (their default audit log and log file land there) and the
/// parent of their control sockets. It is removed when the test binary exits, also after a
/// failed test; one left by a test binary that was killed is removed by the next one.
pub fn scratch_dir() -> &'static Path {
    SCRATCH.get_or_init(|| {
        sweep_scratch_dirs(&std::env::temp_dir());
        let dir = tempfile::Builder::new()
            .prefix(&format!("{SCRATCH_PREFIX}{}-", std::process::id()))
            .tempdir()
            .expect("scratch dir")
            .keep();
        // Statics are never dropped: remove the directory when the process exits.
        // SAFETY: `remove_scratch_dir` is a plain function that neither unwinds nor calls exit.
        let registered = unsafe { libc::atexit(remove_scratch_dir) };
        assert_eq!(registered, 0, "atexit");
        dir
    })
}

extern "C" fn remove_scratch_dir() {
    if let Some(dir) = SCRATCH.get() {
        let _ = std::fs::remove_dir_all(dir);
    }
}

/// Removes the scratch directories of test binaries that are no longer running (killed before
/// they could remove their own).
fn sweep_scratch_dirs(base: &Path) {
    let Ok(entries) = std::fs::read_dir(base) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix(SCRATCH_PREFIX))
            .and_then(|rest| rest.split_once('-'))
            .and_then(|(pid, _)| pid.parse::<u32>().ok())
        else {
            continue;
        };
        if pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// The control sockets of the pacer processes this test binary starts: a directory of its own
/// (mode 0700, in [`scratch_dir`]), so tests never see each other's migrations or the machine's.
pub fn socket_dir() -> PathBuf {
    let dir = scratch_dir().join("sockets");
    std::fs::create_dir_all(&dir).expect("socket dir");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).expect("chmod");
    dir
}

/// The real pacer binary, with a clean environment (no target or libpq variables; HOME, and so
/// the default audit log and log file, in [`scratch_dir`]).
pub fn pacer() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_pacer"));
    for var in [
        "PACER_TARGET",
        "PACER_RUNNER_TARGET",
        "DATABASE_URL",
        "PGHOST",
        "PGPORT",
        "PGUSER",
        "PGPASSWORD",
        "PGDATABASE",
        "PGSSLMODE",
        "PGPASSFILE",
        "RUST_LOG",
        "PACER_AUDIT_LOG",
        "XDG_STATE_HOME",
        "MYSQL_PWD",
        "MYSQL_HOST",
        "MYSQL_TCP_PORT",
        "MYSQL_UNIX_PORT",
        "PACER_MYSQL_DEFAULTS_FILE",
    ] {
        cmd.env_remove(var);
    }
    cmd.env("HOME", scratch_dir());
    cmd.env("PACER_SOCKET_DIR", socket_dir());
    cmd
}

/// The environment `pacer()` sets, as a shell prefix for commands run in tmux.
pub fn shell_env() -> String {
    format!(
        "env -u PACER_TARGET -u PACER_RUNNER_TARGET -u DATABASE_URL -u PGHOST -u PGPORT -u PGUSER -u PGPASSWORD \
         -u PGDATABASE -u PACER_AUDIT_LOG -u XDG_STATE_HOME -u MYSQL_PWD -u MYSQL_HOST -u MYSQL_TCP_PORT \
         -u MYSQL_UNIX_PORT -u PACER_MYSQL_DEFAULTS_FILE HOME={} PACER_SOCKET_DIR={}",
        scratch_dir().display(),
        socket_dir().display()
    )
}

/// Output of a finished command, as text.
pub struct Ran {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Ran {
    pub fn from(out: Output) -> Ran {
        Ran {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

impl std::fmt::Display for Ran {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {}\n--- stdout\n{}\n--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

/// Runs `pacer ARGS… PLAN --target URL` to the end.
pub fn run_pacer(args: &[&str], plan: &Path, url: &str) -> Ran {
    let out = pacer()
        .args(args)
        .arg(plan)
        .arg("--target")
        .arg(url)
        .stdin(Stdio::null())
        .output()
        .expect("pacer runs");
    Ran::from(out)
}

/// Starts `pacer run --headless PLAN --target URL` in the background.
pub fn spawn_run(plan: &Path, url: &str, extra: &[&str]) -> Child {
    spawn_run_with(plan, url, extra, Stdio::piped())
}

/// [`spawn_run`] with its stdout sent to `stdout` (e.g. `Stdio::null()` for a long run whose
/// progress lines nobody reads: a full pipe would stop it).
pub fn spawn_run_with(plan: &Path, url: &str, extra: &[&str], stdout: Stdio) -> Child {
    pacer()
        .args(["run", "--headless"])
        .args(extra)
        .arg(plan)
        .arg("--target")
        .arg(url)
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(Stdio::piped())
        .spawn()
        .expect("pacer starts")
}

/// Waits for a child and collects its output.
pub fn finish(child: Child) -> Ran {
    Ran::from(child.wait_with_output().expect("pacer finishes"))
}

/// A plan file in a temporary directory.
pub struct PlanFile {
    _dir: tempfile::TempDir,
    pub path: PathBuf,
}

pub fn plan_file(text: &str) -> PlanFile {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("plan.toml");
    std::fs::write(&path, text).expect("write plan");
    PlanFile { _dir: dir, path }
}

/// The issue's example plan, with a batch size and extra lines.
/// `extra_backfill` may set its own `pause_ms`.
pub fn orders_plan(batch_size: u64, extra_backfill: &str, extra_safety: &str) -> String {
    let pause = if extra_backfill.contains("pause_ms") {
        ""
    } else {
        "pause_ms = 0"
    };
    format!(
        r#"table = "public.orders"

[column]
name = "amount"
type = "numeric(14,2)"
backfill = "amount_cents / 100.0"
not_null = true
index = true

[backfill]
batch_size = {batch_size}
target_batch_ms = 200
{pause}
{extra_backfill}

[safety]
lock_timeout = "2s"
ddl_retries = 30
{extra_safety}
"#
    )
}

/// Creates `orders` with `rows` rows (id bigint primary key, amount_cents, note).
pub fn seed_orders(pg: &PgServer, db: &str, rows: u64) {
    pg.psql(
        db,
        &format!(
            "CREATE TABLE orders (id bigserial PRIMARY KEY, amount_cents bigint NOT NULL, note text, \
             created_at timestamptz NOT NULL DEFAULT now());
             INSERT INTO orders (amount_cents, note) SELECT (g::bigint * 7919) % 1000000, 'order ' || g \
             FROM generate_series(1, {rows}) g;
             ANALYZE orders;"
        ),
    );
}

/// Number of rows whose amount is not exactly amount_cents / 100.
pub fn wrong_amounts(pg: &PgServer, db: &str) -> i64 {
    pg.psql(
        db,
        "SELECT count(*) FROM orders WHERE amount IS DISTINCT FROM (amount_cents / 100.0)::numeric(14,2)",
    )
    .parse()
    .unwrap()
}

/// Polls `sql` until it returns a number ≥ `at_least`, or panics after `timeout`.
pub fn wait_for_number(
    pg: &PgServer,
    db: &str,
    sql: &str,
    at_least: i64,
    timeout: Duration,
) -> i64 {
    let start = Instant::now();
    loop {
        if let Ok(v) = pg.try_psql(db, sql)
            && let Ok(n) = v.trim().parse::<i64>()
            && n >= at_least
        {
            return n;
        }
        if start.elapsed() > timeout {
            panic!("timed out waiting for `{sql}` to reach {at_least}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Runs `pacer ctl ARGS` to completion.
pub fn ctl(args: &[&str]) -> Ran {
    Ran::from(
        pacer()
            .arg("ctl")
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("pacer ctl runs"),
    )
}

/// The control socket of the running pacer process `pid` (waits up to 20 s for it).
pub fn socket_of(pid: u32) -> PathBuf {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(p) = std::fs::read_dir(socket_dir())
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .find(|p| p.to_string_lossy().ends_with(&format!(".{pid}.sock")))
        {
            return p;
        }
        assert!(Instant::now() < deadline, "no socket for pid {pid}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `pacer ctl status --json` of the run behind `socket`.
pub fn status_json(socket: &Path) -> serde_json::Value {
    let ran = ctl(&["status", "--json", "--socket", socket.to_str().unwrap()]);
    assert_eq!(ran.code, 0, "{ran}");
    serde_json::from_str(&ran.stdout).expect("status --json is one JSON object")
}

/// Waits until the run behind `socket` reports `status` (e.g. "gate").
pub fn wait_for_status(socket: &Path, status: &str, timeout: Duration) -> serde_json::Value {
    let start = Instant::now();
    loop {
        let s = status_json(socket);
        if s["state"]["status"] == status {
            return s;
        }
        assert!(
            start.elapsed() < timeout,
            "status stayed {} (wanted {status})",
            s["state"]["status"]
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The lines of an audit log, each one JSON object; panics if the file is missing or a line
/// is not JSON.
pub fn audit_lines(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .expect("the audit log exists")
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

/// Reads pacer's JSON events as they come, with the time each arrived.
pub fn events(child: &mut Child) -> std::sync::mpsc::Receiver<(Instant, serde_json::Value)> {
    let stdout = child.stdout.take().expect("stdout piped");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufRead::lines(std::io::BufReader::new(stdout)).map_while(Result::ok) {
            if let Ok(v) = serde_json::from_str(&line) {
                let _ = tx.send((Instant::now(), v));
            }
        }
    });
    rx
}

/// Waits for the next event named `name` (skipping the others), or panics after `timeout`.
pub fn wait_event(
    rx: &std::sync::mpsc::Receiver<(Instant, serde_json::Value)>,
    name: &str,
    timeout: Duration,
) -> (Instant, serde_json::Value) {
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok((at, e)) if e["event"] == name => return (at, e),
            Ok(_) => {}
            Err(_) => panic!("no `{name}` event within {timeout:?}"),
        }
    }
}
