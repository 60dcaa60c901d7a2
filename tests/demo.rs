//! `pacer demo`, the real binary: it comes up in a terminal with a moving backfill within 20
//! seconds, and after `q` nothing of it is left (no server process, no directory); it also runs
//! without a terminal, survives being killed without leaving anything behind, and says what to
//! install when the PostgreSQL binaries are missing.

mod common;

use std::process::Stdio;
use std::time::{Duration, Instant};

use common::demo::*;
use common::tmux::Tmux;

#[test]
fn the_demo_shows_a_moving_backfill_within_20_seconds_and_q_leaves_nothing_behind() {
    if !pacer::servers::postgres::binaries_available() {
        panic!("PostgreSQL server binaries are needed (see the README)");
    }
    let tmp = test_tmpdir();
    // The default million rows: seeding takes about 4 s here, the first batch follows at once.
    let command = demo_in_shell(tmp.path(), "");
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
    let moving_after = started.elapsed();
    assert!(tmux.screen().contains("RUNNING"));
    assert!(
        !demo_dirs(tmp.path()).is_empty(),
        "the demo works in TMPDIR"
    );
    eprintln!("moving backfill on screen after {moving_after:?}");

    // > and < change the application workload's rate; the log says so.
    tmux.keys(&[">"]);
    tmux.wait_for("demo workload: 400 transactions/s", Duration::from_secs(5));
    tmux.keys(&["<"]);
    tmux.wait_for("demo workload: 200 transactions/s", Duration::from_secs(5));

    // q asks first, saying what y does; y quits; then everything is gone.
    tmux.keys(&["q"]);
    let screen = tmux.wait_for("Quit the demo?", Duration::from_secs(5));
    assert!(screen.contains("y stops the migration"), "{screen}");
    tmux.keys(&["y"]);
    let screen = tmux.wait_for("EXIT=", Duration::from_secs(60));
    assert!(screen.contains("EXIT=0"), "{screen}");
    assert!(
        screen.contains("stopped the demo servers and removed"),
        "{screen}"
    );
    assert!(screen.contains("the application workload ran"), "{screen}");
    // pacer has exited; the terminal (whose command line names TMPDIR too) goes next.
    drop(tmux);
    assert_nothing_left(tmp.path(), Duration::from_secs(2));
}

#[test]
fn the_demo_waits_at_its_cleanup_gate_for_the_deploy_key_and_the_application_never_fails() {
    if !pacer::servers::postgres::binaries_available() {
        panic!("PostgreSQL server binaries are needed (see the README)");
    }
    let tmp = test_tmpdir();
    let stderr = tmp.path().join("demo-stderr.txt");
    // stderr to a file: the final summary is read whole, not off a wrapped screen.
    let command = demo_in_shell(
        tmp.path(),
        &format!("--rows 50000 --replica 2>{}", stderr.display()),
    );
    let tmux = Tmux::start(&command, 160, 48);

    // The application's own rate and failures are on screen while the migration runs.
    tmux.wait_for("tx/s, 0 failed", Duration::from_secs(30));
    tmux.wait_for("app v1 (does not write amount", Duration::from_secs(5));

    // The gate before cleanup: the screen says the application must now write the column.
    let screen = tmux.wait_for(
        "the app must now write amount: press D to deploy v2",
        Duration::from_secs(90),
    );
    assert!(screen.contains("GATE"), "{screen}");
    assert!(screen.contains("before cleanup"), "{screen}");

    // The replica's address is in the log (GUIDE.md has people read it): scroll to the top.
    keys_apart(&tmux, &["u", "u", "u", "u", "u", "u", "u", "u"]);
    tmux.wait_for(
        "demo: streaming replica on 127.0.0.1:",
        Duration::from_secs(5),
    );
    keys_apart(&tmux, &["G"]);

    // g before the deploy warns in its question; n leaves the gate closed.
    tmux.keys(&["g"]);
    let screen = tmux.wait_for("Proceed to cleanup?", Duration::from_secs(5));
    assert!(screen.contains("does not write amount"), "{screen}");
    keys_apart(&tmux, &["n"]);

    // ? lists the demo's own keys.
    tmux.keys(&["?"]);
    let screen = tmux.wait_for("deploy the demo app's v2", Duration::from_secs(5));
    assert!(
        screen.contains("halve the demo's application workload"),
        "{screen}"
    );
    assert!(
        screen.contains("double the demo's application workload"),
        "{screen}"
    );
    keys_apart(&tmux, &["Escape"]);

    // D deploys the version that writes amount; then g, y pass the gate.
    tmux.keys(&["D"]);
    tmux.wait_for("demo: deployed app v2", Duration::from_secs(5));
    tmux.wait_for("app v2 (writes amount)", Duration::from_secs(5));
    tmux.keys(&["g"]);
    let screen = tmux.wait_for("Proceed to cleanup?", Duration::from_secs(5));
    assert!(!screen.contains("does not write amount"), "{screen}");
    tmux.keys(&["y"]);
    tmux.wait_for("DONE", Duration::from_secs(30));

    // The application runs on after cleanup without a failure.
    std::thread::sleep(Duration::from_secs(4));
    let screen = tmux.screen();
    assert!(screen.contains("tx/s, 0 failed"), "{screen}");

    // At DONE q still asks before it deletes everything.
    tmux.keys(&["q"]);
    let screen = tmux.wait_for(
        "Quit the demo? The migration has ended",
        Duration::from_secs(5),
    );
    assert!(screen.contains("deletes their data"), "{screen}");
    tmux.keys(&["y"]);
    let screen = tmux.wait_for("EXIT=", Duration::from_secs(60));
    assert!(screen.contains("EXIT=0"), "{screen}");
    let text = std::fs::read_to_string(&stderr).unwrap();
    let (ran, tail) = workload_summary(&text);
    assert!(ran > 1000, "{text}");
    assert_eq!(tail, "transactions", "failed transactions:\n{text}");
    assert!(
        text.contains("stopped the demo servers and removed"),
        "{text}"
    );
    drop(tmux);
    assert_nothing_left(tmp.path(), Duration::from_secs(2));
}

#[test]
fn without_a_terminal_the_demo_runs_the_migration_to_the_end_and_cleans_up() {
    let tmp = test_tmpdir();
    let out = demo(tmp.path())
        .args(["--rows", "20000", "--replica", "--tps", "100"])
        .stdin(Stdio::null())
        .output()
        .expect("pacer runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    for expected in [
        "standard output is not a terminal; running headless",
        "seeding 20,000 rows into shop.public.orders",
        "streaming replica on 127.0.0.1:",
        "1 streaming replica(s) attached",
        "verify: done",
        // Nobody to press D and g: the demo deploys and proceeds by itself.
        "at the gate before cleanup, deployed app v2, which writes amount",
        "proceeding past the gate: cleanup starts now",
        "DONE: 20,",
        "stopped the demo servers and removed",
    ] {
        assert!(stderr.contains(expected), "{expected:?} missing:\n{stderr}");
    }
    // The workload ran alongside, its writes were kept in sync (verify passed above), and
    // none failed, also after cleanup dropped the sync trigger.
    let (ran, tail) = workload_summary(&stderr);
    assert!(ran > 0, "{stderr}");
    assert_eq!(tail, "transactions", "failed transactions:\n{stderr}");
    assert_nothing_left(tmp.path(), Duration::from_secs(2));
}

#[test]
fn a_killed_demo_leaves_no_server_and_no_directory_behind() {
    let tmp = test_tmpdir();
    let mut child = demo(tmp.path())
        .args(["--rows", "200000"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("pacer starts");
    // Wait until the backfill runs, reading stderr as it comes.
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
    assert!(!processes_mentioning(tmp.path()).is_empty());
    child.kill().expect("SIGKILL");
    child.wait().unwrap();
    // No destructor ran: the watchdog stops the server and removes the directory.
    assert_nothing_left(tmp.path(), Duration::from_secs(30));
}

#[test]
fn missing_binaries_say_exactly_what_to_install() {
    let tmp = test_tmpdir();
    let empty = tmp.path().join("empty-bin");
    std::fs::create_dir(&empty).unwrap();
    let out = demo(tmp.path())
        .env("PACER_PG_BIN", &empty)
        .stdin(Stdio::null())
        .output()
        .expect("pacer runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "PACER_PG_BIN is {}, but it holds no initdb, pg_ctl, postgres",
            empty.display()
        )),
        "{stderr}"
    );
    for hint in [
        "sudo apt-get install postgresql-15",
        "sudo dnf install postgresql15-server",
        "brew install postgresql@15",
        "set PACER_PG_BIN to the directory",
    ] {
        assert!(stderr.contains(hint), "{hint:?} missing:\n{stderr}");
    }
    assert!(demo_dirs(tmp.path()).is_empty());
}
