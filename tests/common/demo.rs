//! Helpers of the `pacer demo` tests (tests/demo.rs, tests/demo_mariadb.rs): the real binary in
//! a temporary directory of its own, in a terminal (tmux) or not, and what it leaves behind.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use super::pacer;
use super::tmux::Tmux;

/// A temporary directory of the test's own, for `TMPDIR` (reachable by the `postgres` OS user
/// when the tests run as root).
pub fn test_tmpdir() -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix("pacer-demo-test-")
        .tempdir_in("/tmp")
        .expect("temp dir");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    dir
}

/// `pacer demo` with a clean environment and `TMPDIR` set; it finds the binaries as the tests'
/// own servers do (the same code, the same `PACER_PG_BIN`).
pub fn demo(tmpdir: &Path) -> Command {
    let mut cmd = pacer();
    cmd.arg("demo").env("TMPDIR", tmpdir);
    cmd
}

/// `pacer demo ARGS` as a shell command for tmux, with `TMPDIR` and `HOME` in `tmpdir`, the
/// tests' socket directory and the tests' server binaries; it prints `EXIT=<code>` at the end
/// and keeps the terminal open a while to be read.
pub fn demo_in_shell(tmpdir: &Path, args: &str) -> String {
    let mut command = format!(
        "env TMPDIR={} HOME={} PACER_SOCKET_DIR={}",
        tmpdir.display(),
        tmpdir.display(),
        super::socket_dir().display()
    );
    for var in ["PACER_PG_BIN", "PACER_MARIADB_BIN"] {
        if let Some(dir) = std::env::var_os(var) {
            command.push_str(&format!(" {var}={}", Path::new(&dir).display()));
        }
    }
    command.push_str(&format!(
        " {} demo {args}; echo EXIT=$?; sleep 60",
        env!("CARGO_BIN_EXE_pacer")
    ));
    command
}

/// Entries `pacer-demo-*` left in `dir`.
pub fn demo_dirs(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("pacer-demo-"))
        .map(|e| e.path())
        .collect()
}

/// Processes whose command line mentions `dir` (postgres servers, the demo's watchdog).
pub fn processes_mentioning(dir: &Path) -> Vec<String> {
    let needle = dir.as_os_str().as_encoded_bytes();
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let name = entry.file_name();
        if !name.to_string_lossy().bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        if cmdline.windows(needle.len()).any(|w| w == needle) {
            let text = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            found.push(format!("{}: {text}", name.to_string_lossy()));
        }
    }
    found
}

/// Waits until nothing of the demo is left in `dir`: no process, no directory.
pub fn assert_nothing_left(dir: &Path, within: Duration) {
    let start = Instant::now();
    loop {
        let procs = processes_mentioning(dir);
        let dirs = demo_dirs(dir);
        if procs.is_empty() && dirs.is_empty() {
            return;
        }
        if start.elapsed() > within {
            panic!("left behind after {within:?}: processes {procs:#?}, directories {dirs:#?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The backfill's row count on the screen ("34,500 / ~1,000,000 rows"), if shown.
pub fn rows_on_screen(screen: &str) -> Option<u64> {
    screen.lines().find_map(|line| {
        let (before, after) = line.split_once(" / ~")?;
        after.contains("rows").then_some(())?;
        let number: String = before
            .rsplit(|c: char| !(c.is_ascii_digit() || c == ','))
            .next()?
            .replace(',', "");
        number.parse().ok()
    })
}

/// The number in "the application workload ran N transactions", and what follows it up to the
/// `;` (", N failed (last: …)" when some failed).
pub fn workload_summary(stderr: &str) -> (u64, String) {
    let rest = stderr
        .split("the application workload ran ")
        .nth(1)
        .unwrap_or_else(|| panic!("no workload summary:\n{stderr}"));
    let (number, rest) = rest.split_once(' ').expect("a count");
    let tail = rest.split(';').next().unwrap_or("").to_string();
    (number.replace(',', "").parse().expect("a count"), tail)
}

/// Types keys one at a time with a pause: a terminal reads Esc followed at once by a key as
/// Alt+key.
pub fn keys_apart(tmux: &Tmux, keys: &[&str]) {
    for key in keys {
        tmux.keys(&[key]);
        std::thread::sleep(Duration::from_millis(300));
    }
}
