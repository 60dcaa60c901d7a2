//! `pacer demo --engine mariadb`, the real binary: without a terminal it runs the migration to
//! the end with a replica and no failed application transaction; in a terminal it shows a moving
//! backfill within 20 seconds, `p` pauses it within a batch and `+` sizes the next batches (as
//! the state table records them); after `q`, or a SIGKILL, nothing of it is left; without the
//! MariaDB programs it says what to install.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::demo::*;
use common::tmux::Tmux;

/// The demos that start servers take turns: two at once on a small machine would make the
/// 20-second start a measure of the other test's seeding.
static SERVERS: Mutex<()> = Mutex::new(());

fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    SERVERS.lock().unwrap_or_else(|p| p.into_inner())
}

fn require_mariadb() {
    assert!(
        pacer::servers::mariadb::binaries_available(),
        "MariaDB server binaries are needed: apt-get install mariadb-server mariadb-client \
         (or set PACER_MARIADB_BIN)"
    );
}

/// The demo primary's port, from its start-up line in `stderr` ("MariaDB primary on
/// 127.0.0.1:PORT, up in …").
fn primary_port(stderr: &str) -> Option<u16> {
    stderr
        .split("MariaDB primary on 127.0.0.1:")
        .nth(1)?
        .split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}

/// `rows_done` and `batches` of the demo's migration in its state table, read with the `mariadb`
/// client over TCP as root.
fn progress(port: u16) -> (i64, i64) {
    let out = Command::new("mariadb")
        .args([
            "--no-defaults",
            "--protocol=TCP",
            "--host=127.0.0.1",
            "--user=root",
            "--batch",
            "--skip-column-names",
        ])
        .arg(format!("--port={port}"))
        .arg("--execute=SELECT rows_done, batches FROM pacer.migrations WHERE job = 'shop.orders.amount'")
        .output()
        .expect("the mariadb client runs");
    let text = String::from_utf8_lossy(&out.stdout);
    let mut numbers = text.split_whitespace().map(|n| n.parse::<i64>().unwrap());
    match (numbers.next(), numbers.next()) {
        (Some(rows), Some(batches)) => (rows, batches),
        _ => panic!(
            "no state row: {}{}",
            text,
            String::from_utf8_lossy(&out.stderr)
        ),
    }
}

/// The new size in the engine's log line "batch size A → B — operator", if on the screen.
fn operator_size(screen: &str) -> Option<u64> {
    screen.lines().find_map(|line| {
        let (_, after) = line.split_once("batch size ")?;
        let (_, new) = after.split_once(" → ")?;
        let (number, by) = new.split_once(" — ")?;
        by.starts_with("operator")
            .then(|| number.replace(',', "").parse().ok())?
    })
}

fn wait_for_file(path: &Path, text: &str, timeout: Duration) -> String {
    let start = Instant::now();
    loop {
        let got = std::fs::read_to_string(path).unwrap_or_default();
        if got.contains(text) {
            return got;
        }
        assert!(
            start.elapsed() < timeout,
            "{text:?} not in {} within {timeout:?}:\n{got}",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn without_a_terminal_the_mariadb_demo_runs_to_the_end_with_a_replica_and_no_failed_transaction() {
    require_mariadb();
    let _turn = one_at_a_time();
    let tmp = test_tmpdir();
    let started = Instant::now();
    let out = demo(tmp.path())
        .args(["--engine", "mariadb", "--rows", "20000", "--replica"])
        .args(["--tps", "100"])
        .stdin(Stdio::null())
        .output()
        .expect("pacer runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    eprintln!("the headless MariaDB demo took {:?}", started.elapsed());
    for expected in [
        "starting a throwaway MariaDB (MariaDB 10.",
        "MariaDB primary on 127.0.0.1:",
        "following the primary by GTID",
        "seeding 20,000 rows into shop.orders",
        "standard output is not a terminal; running headless",
        "target mysql://root@127.0.0.1:",
        // The preflight sees the replica (pacer does not measure its lag yet).
        "1 replica(s) report to this server",
        "verify: done",
        "at the gate before cleanup, deployed app v2, which writes amount",
        "proceeding past the gate: cleanup starts now",
        "DONE: 20,",
        "stopped the demo servers and removed",
    ] {
        assert!(stderr.contains(expected), "{expected:?} missing:\n{stderr}");
    }
    let (ran, tail) = workload_summary(&stderr);
    assert!(ran > 0, "{stderr}");
    assert_eq!(tail, "transactions", "failed transactions:\n{stderr}");
    assert_nothing_left(tmp.path(), Duration::from_secs(2));
}

#[test]
fn the_mariadb_demo_moves_within_20_seconds_p_pauses_within_a_batch_plus_resizes_and_q_leaves_nothing()
 {
    require_mariadb();
    let _turn = one_at_a_time();
    let tmp = test_tmpdir();
    let stderr = tmp.path().join("demo-stderr.txt");
    // The default million rows; stderr to a file, to read the primary's port from it.
    let command = demo_in_shell(
        tmp.path(),
        &format!("--engine mariadb 2>{}", stderr.display()),
    );
    let started = Instant::now();
    let tmux = Tmux::start(&command, 120, 40);

    // Within 20 s the backfill's row count is on the screen and grows.
    let deadline = started + Duration::from_secs(20);
    let mut first: Option<u64> = None;
    loop {
        let screen = tmux.screen();
        if let Some(rows) = rows_on_screen(&screen) {
            match first {
                None => first = Some(rows),
                Some(f) if rows > f => break,
                Some(_) => {}
            }
        }
        assert!(
            Instant::now() < deadline,
            "no moving backfill within 20 s (first count {first:?}):\n{screen}"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    eprintln!("moving backfill on screen after {:?}", started.elapsed());
    let text = wait_for_file(&stderr, "seeding 1,000,000 rows", Duration::from_secs(1));
    for line in text
        .lines()
        .filter(|l| l.contains("up in") || l.contains("done in"))
    {
        eprintln!("{}", line.trim_start_matches('\r'));
    }
    let port = primary_port(&text).unwrap_or_else(|| panic!("no primary port in:\n{text}"));
    let screen = tmux.screen();
    assert!(screen.contains("RUNNING"), "{screen}");
    assert!(screen.contains("mysql://root@127.0.0.1:"), "{screen}");

    // p pauses at the next batch boundary: the state table stops within a batch (at most the
    // plan's max_batch_size, 5,000, past the count read before the key, plus the batch then
    // running), and stays while paused.
    let before = progress(port).0;
    tmux.keys(&["p"]);
    tmux.wait_for("PAUSED", Duration::from_secs(10));
    let at_pause = progress(port).0;
    assert!(
        at_pause - before <= 2 * 5000,
        "moved {} rows after p",
        at_pause - before
    );
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(progress(port).0, at_pause, "rows moved while paused");

    // p again resumes.
    tmux.keys(&["p"]);
    tmux.wait_for("RUNNING", Duration::from_secs(10));

    // + raises the batch size by a step; the next batches have that size.
    tmux.keys(&["+"]);
    let screen = tmux.wait_for("— operator", Duration::from_secs(5));
    let size = operator_size(&screen).unwrap_or_else(|| panic!("no new size:\n{screen}"));
    std::thread::sleep(Duration::from_millis(700));
    let (rows1, batches1) = progress(port);
    std::thread::sleep(Duration::from_millis(2000));
    let (rows2, batches2) = progress(port);
    assert!(batches2 > batches1, "no batch ran");
    assert_eq!(
        (rows2 - rows1) as u64 / (batches2 - batches1) as u64,
        size,
        "batches after + are {size} rows"
    );

    // q asks first, saying what y does; y quits; then everything is gone.
    tmux.keys(&["q"]);
    let screen = tmux.wait_for("Quit the demo?", Duration::from_secs(5));
    assert!(screen.contains("y stops the migration"), "{screen}");
    assert!(screen.contains("MariaDB servers and deletes"), "{screen}");
    tmux.keys(&["y"]);
    let screen = tmux.wait_for("EXIT=", Duration::from_secs(60));
    assert!(screen.contains("EXIT=0"), "{screen}");
    let text = std::fs::read_to_string(&stderr).unwrap();
    assert!(
        text.contains("stopped the demo servers and removed"),
        "{text}"
    );
    let (_, tail) = workload_summary(&text);
    assert_eq!(tail, "transactions", "failed transactions:\n{text}");
    drop(tmux);
    assert_nothing_left(tmp.path(), Duration::from_secs(2));
}

#[test]
fn a_killed_mariadb_demo_leaves_no_server_and_no_directory_behind() {
    require_mariadb();
    let _turn = one_at_a_time();
    let tmp = test_tmpdir();
    let mut child = demo(tmp.path())
        .args(["--engine", "mariadb", "--rows", "200000", "--replica"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("pacer starts");
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut seen = String::new();
    while !seen.contains("backfill  ") {
        let line = rx
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .unwrap_or_else(|_| panic!("the backfill did not start:\n{seen}"));
        seen.push_str(&line);
        seen.push('\n');
    }
    assert!(
        processes_mentioning(tmp.path()).len() >= 2,
        "the primary and the replica run"
    );
    child.kill().expect("SIGKILL");
    child.wait().unwrap();
    // No destructor ran: the watchdog stops both servers and removes the directory.
    assert_nothing_left(tmp.path(), Duration::from_secs(30));
}

#[test]
fn without_the_mariadb_programs_the_demo_says_exactly_what_to_install() {
    let tmp = test_tmpdir();
    let empty = tmp.path().join("empty-bin");
    std::fs::create_dir(&empty).unwrap();
    let out = demo(tmp.path())
        .args(["--engine", "mariadb"])
        .env("PACER_MARIADB_BIN", &empty)
        .stdin(Stdio::null())
        .output()
        .expect("pacer runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    for expected in [
        "MariaDB binaries not found: pacer demo --engine mariadb needs mariadb-install-db, \
         mariadbd and mariadb",
        "sudo apt-get install mariadb-server mariadb-client",
        "PACER_MARIADB_BIN",
    ] {
        assert!(stderr.contains(expected), "{expected:?} missing:\n{stderr}");
    }
    assert!(demo_dirs(tmp.path()).is_empty());
}
