//! Out-of-band control against a real PostgreSQL with the real binary: `pacer ctl` steers a
//! running migration, `pacer attach` shows it from other terminals, a lost terminal never
//! stops it (or pauses it, with `--on-hangup pause`), a second run refuses, the socket is
//! private, and the audit log records who did what.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::tmux::Tmux;
use common::*;
use pacer::servers::postgres::PgServer;

fn progress(pg: &PgServer, db: &str) -> (i64, i64) {
    let s = pg.psql(
        db,
        "SELECT rows_done || ' ' || batches FROM pacer.migrations",
    );
    let mut it = s.split(' ').map(|v| v.parse::<i64>().unwrap());
    (it.next().unwrap(), it.next().unwrap())
}

fn spawn_headless(plan: &Path, url: &str, extra: &[&str]) -> Child {
    spawn_run_with(plan, url, extra, Stdio::null())
}

#[test]
fn ctl_pauses_resumes_and_resizes_a_running_migration_and_the_audit_log_says_who() {
    let pg = PgServer::start();
    let url = pg.create_database("ctl");
    seed_orders(&pg, "ctl", 300_000);
    let plan = plan_file(&orders_plan(1000, "pause_ms = 20\nadaptive = false", ""));
    let audit = tempfile::tempdir().unwrap();
    let audit_path = audit.path().join("audit.jsonl");
    let child = spawn_headless(
        &plan.path,
        &url,
        &["--audit-log", audit_path.to_str().unwrap()],
    );
    let socket = socket_of(child.id());
    let sock = socket.to_str().unwrap();

    // Private: the socket is 0600 in a 0700 directory.
    let mode = std::fs::metadata(&socket).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let dir_mode = std::fs::metadata(socket_dir())
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(dir_mode, 0o700);

    wait_for_number(
        &pg,
        "ctl",
        "SELECT rows_done FROM pacer.migrations",
        5_000,
        Duration::from_secs(30),
    );

    // pause: answered at once; the rows stop within one batch and stay still.
    let asked = Instant::now();
    let ran = ctl(&["pause", plan.path.to_str().unwrap(), "--target", &url]);
    assert_eq!(ran.code, 0, "{ran}");
    assert!(ran.stdout.contains("pause requested"), "{ran}");
    assert!(
        asked.elapsed() < Duration::from_secs(1),
        "ctl answers within a second"
    );
    wait_for_status(&socket, "paused", Duration::from_secs(5));
    let paused_at = progress(&pg, "ctl");
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(progress(&pg, "ctl"), paused_at, "rows moved while paused");
    let text = ctl(&["status", "--socket", sock]);
    assert!(text.stdout.contains("PAUSED"), "{text}");
    assert!(text.stdout.contains("public.orders.amount"), "{text}");

    // resume: rows move again.
    let ran = ctl(&["resume", "--socket", sock]);
    assert_eq!(ran.code, 0, "{ran}");
    wait_for_number(
        &pg,
        "ctl",
        "SELECT rows_done FROM pacer.migrations",
        paused_at.0 + 5_000,
        Duration::from_secs(30),
    );

    // batch-size: the next batches have the new size.
    let ran = ctl(&["batch-size", "2,500", "--socket", sock]);
    assert_eq!(ran.code, 0, "{ran}");
    let s = status_json(&socket);
    assert_eq!(s["runner"]["pid"], child.id());
    std::thread::sleep(Duration::from_millis(600));
    let (rows1, batches1) = progress(&pg, "ctl");
    std::thread::sleep(Duration::from_millis(1500));
    let (rows2, batches2) = progress(&pg, "ctl");
    assert!(batches2 > batches1, "no batch ran");
    assert_eq!((rows2 - rows1) / (batches2 - batches1), 2500);
    assert_eq!(status_json(&socket)["state"]["batch_size"], 2500);

    // Refusals say why, and change nothing.
    let ran = ctl(&["batch-size", "5000000", "--socket", sock]);
    assert_eq!(ran.code, 2, "{ran}");
    assert!(ran.stderr.contains("1 to 1,000,000"), "{ran}");
    let ran = ctl(&["proceed", "--socket", sock]);
    assert_eq!(ran.code, 2, "{ran}");
    assert!(ran.stderr.contains("not waiting at a gate"), "{ran}");

    // abort: the run stops at a boundary, resumably.
    let ran = ctl(&["abort", "--socket", sock]);
    assert_eq!(ran.code, 0, "{ran}");
    let done = finish(child);
    assert_eq!(done.code, 3, "{done}");
    assert_eq!(
        pg.psql("ctl", "SELECT outcome FROM pacer.migrations"),
        "aborted"
    );
    assert!(!socket.exists(), "the socket goes with the process");

    // The audit log: each operator action, from ctl, with its value.
    let lines = audit_lines(&audit_path);
    let actions: Vec<(String, String)> = lines
        .iter()
        .filter(|l| l["kind"] == "operator")
        .map(|l| {
            (
                l["action"].as_str().unwrap_or_default().to_string(),
                l["from"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    for action in ["pause", "resume", "batch_size", "abort"] {
        assert!(
            actions.contains(&(action.to_string(), "ctl".to_string())),
            "{action} from ctl missing in {actions:?}"
        );
    }
    let resize = lines.iter().find(|l| l["action"] == "batch_size").unwrap();
    assert_eq!(resize["value"], 2500);
    assert!(resize["ts"].is_string());
}

#[test]
fn a_command_to_a_migration_that_is_not_running_says_so() {
    // A table no other test of this binary migrates: their runners share the socket directory.
    let plan = plan_file(&orders_plan(1000, "", "").replace("public.orders", "public.idle"));
    let ran = ctl(&["pause", plan.path.to_str().unwrap()]);
    assert_eq!(ran.code, 4, "{ran}");
    assert!(
        ran.stderr
            .contains("no migration of public.idle.amount is running"),
        "{ran}"
    );
    let ran = ctl(&["status", "--socket", "/nonexistent/x.1.sock"]);
    assert_eq!(ran.code, 4, "{ran}");
    assert!(ran.stderr.contains("no migration is running at"), "{ran}");
}

#[test]
fn a_second_run_refuses_and_another_user_cannot_use_the_socket() {
    let pg = PgServer::start();
    let url = pg.create_database("twice");
    seed_orders(&pg, "twice", 200_000);
    let plan = plan_file(&orders_plan(500, "pause_ms = 50\nadaptive = false", ""));
    let child = spawn_headless(&plan.path, &url, &["--audit-log", "off"]);
    let socket = socket_of(child.id());
    wait_for_number(
        &pg,
        "twice",
        "SELECT rows_done FROM pacer.migrations",
        1_000,
        Duration::from_secs(30),
    );

    let second = run_pacer(&["run", "--headless"], &plan.path, &url);
    assert_eq!(second.code, 2, "{second}");
    assert!(second.stderr.contains("already running"), "{second}");
    assert!(second.stderr.contains(&child.id().to_string()), "{second}");

    // Another user: refused by the file system (0600 socket in a 0700 directory).
    if unsafe_is_root() {
        let out = std::process::Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(env!("CARGO_BIN_EXE_pacer"))
            .args(["ctl", "pause", "--socket"])
            .arg(&socket)
            .env("HOME", common::scratch_dir())
            .output()
            .expect("setpriv runs");
        let ran = Ran::from(out);
        assert_ne!(ran.code, 0, "{ran}");
        assert!(ran.stderr.contains("permission denied"), "{ran}");
        let s = status_json(&socket);
        assert_eq!(s["state"]["status"], "running", "nothing changed");
    } else {
        eprintln!("not root: the other-user check needs setpriv as root; skipped");
    }

    let ran = ctl(&["abort", "--socket", socket.to_str().unwrap()]);
    assert_eq!(ran.code, 0, "{ran}");
    assert_eq!(finish(child).code, 3);
}

/// Waits until a process whose command line contains `needle` runs.
fn wait_for_process(needle: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let found = std::fs::read_dir("/proc").unwrap().flatten().any(|e| {
            std::fs::read(e.path().join("cmdline"))
                .map(|c| {
                    String::from_utf8_lossy(&c)
                        .replace('\0', " ")
                        .contains(needle)
                })
                .unwrap_or(false)
        });
        if found {
            return;
        }
        assert!(Instant::now() < deadline, "no process with {needle:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn unsafe_is_root() -> bool {
    std::process::Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

#[test]
fn attach_from_other_terminals_shows_the_running_migration_and_steers_it() {
    let pg = PgServer::start();
    let url = pg.create_database("view");
    seed_orders(&pg, "view", 300_000);
    let plan = plan_file(&orders_plan(1000, "pause_ms = 30\nadaptive = false", ""));
    let child = spawn_headless(&plan.path, &url, &["--audit-log", "off"]);
    let socket = socket_of(child.id());
    wait_for_number(
        &pg,
        "view",
        "SELECT rows_done FROM pacer.migrations",
        2_000,
        Duration::from_secs(30),
    );

    let attach = format!(
        "{} {} attach {} --target {url}; echo EXIT=$?; sleep 60",
        shell_env(),
        env!("CARGO_BIN_EXE_pacer"),
        plan.path.display()
    );
    let one = Tmux::start(&attach, 120, 40);
    let two = Tmux::start(&attach, 100, 30);
    for viewer in [&one, &two] {
        let screen = viewer.wait_for("RUNNING", Duration::from_secs(20));
        assert!(screen.contains("orders"), "{screen}");
        assert!(screen.contains("backfill"), "{screen}");
        viewer.wait_for("rows/s", Duration::from_secs(10));
    }

    // A key in one viewer steers the migration; the other viewer sees it.
    one.keys(&["p"]);
    two.wait_for("PAUSED", Duration::from_secs(10));
    let paused_at = progress(&pg, "view");
    std::thread::sleep(Duration::from_millis(1200));
    assert_eq!(progress(&pg, "view"), paused_at, "rows moved while paused");

    // Leaving a viewer: q offers detach; d leaves and the migration is untouched.
    two.keys(&["q"]);
    two.wait_for("detach", Duration::from_secs(5));
    two.keys(&["d"]);
    let screen = two.wait_for("EXIT=", Duration::from_secs(10));
    assert!(screen.contains("EXIT=0"), "{screen}");
    assert!(status_json(&socket)["state"]["status"] == "paused");

    one.keys(&["p"]);
    one.wait_for("RUNNING", Duration::from_secs(10));
    wait_for_number(
        &pg,
        "view",
        "SELECT rows_done FROM pacer.migrations",
        paused_at.0 + 3_000,
        Duration::from_secs(30),
    );
    let ran = ctl(&["abort", "--socket", socket.to_str().unwrap()]);
    assert_eq!(ran.code, 0, "{ran}");
    let screen = one.wait_for("ABORTED", Duration::from_secs(20));
    assert!(screen.contains("ABORTED"), "{screen}");
    assert_eq!(finish(child).code, 3);
}

/// `pacer run` on a terminal: the pid of the runner (the process that owns the socket).
fn runner_socket(job_db: &str) -> PathBuf {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let out = pacer()
            .args(["ctl", "list"])
            .output()
            .expect("ctl list runs");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        // Every test of this binary lists its runners here, and one may end between the list
        // and the status: look at each, and pass over those that no longer answer.
        for line in text.lines().filter(|l| l.contains("orders.amount")) {
            let p = PathBuf::from(line.split_whitespace().last().unwrap());
            let ran = ctl(&["status", "--json", "--socket", p.to_str().unwrap()]);
            let Ok(s) = serde_json::from_str::<serde_json::Value>(&ran.stdout) else {
                continue;
            };
            if ran.code == 0
                && s["runner"]["target"]
                    .as_str()
                    .unwrap_or("")
                    .ends_with(job_db)
            {
                return p;
            }
        }
        assert!(Instant::now() < deadline, "no runner appeared:\n{text}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `pacer run` of a 150k-row migration on a terminal (tmux), in database `db`: once its runner
/// listens and the backfill has moved, returns the terminal, the runner's socket, the plan and
/// the target.
fn run_on_a_terminal(
    pg: &PgServer,
    db: &str,
    pause: &str,
    extra: &[&str],
) -> (Tmux, PathBuf, PlanFile, String) {
    let url = pg.create_database(db);
    seed_orders(pg, db, 150_000);
    let plan = plan_file(&orders_plan(
        1000,
        &format!("{pause}\nadaptive = false"),
        "",
    ));
    let run = format!(
        "{} {} run {} {} --target {url}; echo EXIT=$?; sleep 60",
        shell_env(),
        env!("CARGO_BIN_EXE_pacer"),
        extra.join(" "),
        plan.path.display()
    );
    let tmux = Tmux::start(&run, 120, 40);
    tmux.wait_for("RUNNING", Duration::from_secs(30));
    let socket = runner_socket(&format!("/{db}"));
    wait_for_number(
        pg,
        db,
        "SELECT rows_done FROM pacer.migrations",
        3_000,
        Duration::from_secs(30),
    );
    (tmux, socket, plan, url)
}

#[test]
fn killing_the_terminal_of_a_run_leaves_the_migration_running_to_completion() {
    let pg = PgServer::start();
    let (tmux, socket, _plan, _url) = run_on_a_terminal(&pg, "hup1", "pause_ms = 10", &[]);

    // The terminal goes: tmux kills the session (SIGHUP to everything on it).
    drop(tmux);
    std::thread::sleep(Duration::from_millis(500));
    let s = status_json(&socket);
    assert_ne!(s["state"]["status"], "aborted", "{s}");
    let before = progress(&pg, "hup1").0;
    wait_for_number(
        &pg,
        "hup1",
        "SELECT rows_done FROM pacer.migrations",
        before + 2_000,
        Duration::from_secs(20),
    );
    pg.wait_until(
        "hup1",
        "SELECT outcome FROM pacer.migrations",
        "done",
        Duration::from_secs(120),
    );
    assert_eq!(wrong_amounts(&pg, "hup1"), 0);
}

#[test]
fn with_on_hangup_pause_a_lost_terminal_pauses_and_ctl_resumes() {
    let pg = PgServer::start();
    let (tmux, socket, plan, url) =
        run_on_a_terminal(&pg, "hup2", "pause_ms = 20", &["--on-hangup", "pause"]);

    // SIGHUP to the terminal's process group, as when an SSH connection drops.
    let pane_pid = {
        let out = tmux
            .cmd()
            .args(["display-message", "-p", "-t", "t", "#{pane_pid}"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    let status = std::process::Command::new("kill")
        .args(["-HUP", "--", &format!("-{pane_pid}")])
        .status()
        .unwrap();
    assert!(status.success());
    wait_for_status(&socket, "paused", Duration::from_secs(10));
    let paused_at = progress(&pg, "hup2");
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(progress(&pg, "hup2"), paused_at, "rows moved while paused");

    let ran = ctl(&["resume", plan.path.to_str().unwrap(), "--target", &url]);
    assert_eq!(ran.code, 0, "{ran}");
    pg.wait_until(
        "hup2",
        "SELECT outcome FROM pacer.migrations",
        "done",
        Duration::from_secs(120),
    );
    drop(tmux);
}

#[test]
fn detaching_from_run_keeps_it_going_and_attach_brings_it_back() {
    let pg = PgServer::start();
    let url = pg.create_database("det");
    seed_orders(&pg, "det", 200_000);
    let plan = plan_file(&orders_plan(1000, "pause_ms = 20\nadaptive = false", ""));
    let run = format!(
        "{} {} run {} --target {url}; echo EXIT=$?; {} {} attach {} --target {url}; echo EXIT2=$?; sleep 60",
        shell_env(),
        env!("CARGO_BIN_EXE_pacer"),
        plan.path.display(),
        shell_env(),
        env!("CARGO_BIN_EXE_pacer"),
        plan.path.display()
    );
    let tmux = Tmux::start(&run, 120, 40);
    tmux.wait_for("RUNNING", Duration::from_secs(30));
    tmux.keys(&["q"]);
    tmux.wait_for("detach", Duration::from_secs(5));
    tmux.keys(&["d"]);
    // `pacer run` exits 0 saying where the migration is, and `pacer attach` shows it again.
    wait_for_process(&format!("attach {}", plan.path.display()));
    std::thread::sleep(Duration::from_millis(300));
    let screen = tmux.wait_for("RUNNING", Duration::from_secs(20));
    assert!(!screen.contains("EXIT2="), "{screen}");
    let before = progress(&pg, "det").0;
    wait_for_number(
        &pg,
        "det",
        "SELECT rows_done FROM pacer.migrations",
        before + 2_000,
        Duration::from_secs(20),
    );
    // Abort from the attached screen: q, a.
    tmux.keys(&["q"]);
    tmux.wait_for("abort", Duration::from_secs(5));
    tmux.keys(&["a"]);
    let screen = tmux.wait_for("EXIT2=", Duration::from_secs(30));
    assert!(screen.contains("EXIT2=0"), "{screen}");
    let history = tmux
        .cmd()
        .args(["capture-pane", "-p", "-S", "-200", "-t", "t"])
        .output()
        .unwrap();
    let history = String::from_utf8_lossy(&history.stdout);
    assert!(history.contains("EXIT=0"), "{history}");
    assert!(history.contains("detached"), "{history}");
    assert_eq!(
        pg.psql("det", "SELECT outcome FROM pacer.migrations"),
        "aborted"
    );
}

#[test]
fn ctl_proceed_passes_a_gate_and_only_a_gate() {
    let pg = PgServer::start();
    let url = pg.create_database("gate");
    seed_orders(&pg, "gate", 20_000);
    let mut text = orders_plan(5000, "", "");
    text.push_str("\n[gates]\nbefore = [\"not_null\"]\n");
    let plan = plan_file(&text);
    let audit = tempfile::tempdir().unwrap();
    let audit_path = audit.path().join("audit.jsonl");
    let child = spawn_headless(
        &plan.path,
        &url,
        &["--audit-log", audit_path.to_str().unwrap()],
    );
    let socket = socket_of(child.id());
    let s = wait_for_status(&socket, "gate", Duration::from_secs(60));
    assert_eq!(s["state"]["gate"], "not_null", "{s}");
    let text = ctl(&["status", "--socket", socket.to_str().unwrap()]);
    assert!(text.stdout.contains("pacer ctl proceed"), "{text}");
    // Nothing of not_null has run while the gate holds.
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        pg.psql(
            "gate",
            "SELECT is_nullable FROM information_schema.columns WHERE table_name = 'orders' AND column_name = 'amount'"
        ),
        "YES"
    );
    // A proceed meant for another gate passes nothing.
    let ran = ctl(&[
        "proceed",
        "--phase",
        "index",
        "--socket",
        socket.to_str().unwrap(),
    ]);
    assert_eq!(ran.code, 2, "{ran}");
    assert!(ran.stderr.contains("not before index"), "{ran}");
    assert_eq!(status_json(&socket)["state"]["status"], "gate");
    let ran = ctl(&[
        "proceed",
        "--phase",
        "not_null",
        "--socket",
        socket.to_str().unwrap(),
    ]);
    assert_eq!(ran.code, 0, "{ran}");
    assert!(ran.stdout.contains("not_null starts now"), "{ran}");
    let done = finish(child);
    assert_eq!(done.code, 0, "{done}");
    assert_eq!(
        pg.psql(
            "gate",
            "SELECT is_nullable FROM information_schema.columns WHERE table_name = 'orders' AND column_name = 'amount'"
        ),
        "NO"
    );
    let proceeded = audit_lines(&audit_path)
        .into_iter()
        .any(|l| l["kind"] == "operator" && l["action"] == "proceed" && l["from"] == "ctl");
    assert!(proceeded, "the audit log records the proceed");
}

/// `elapsed 0:01:11` in the header, as seconds.
fn elapsed_on(screen: &str) -> Option<u64> {
    let first = screen.lines().next()?;
    let clock = first.split_whitespace().last()?;
    let parts: Vec<u64> = clock
        .split(':')
        .map(|p| p.parse().ok())
        .collect::<Option<_>>()?;
    (parts.len() == 3).then(|| parts[0] * 3600 + parts[1] * 60 + parts[2])
}

#[test]
fn an_attached_screen_shows_the_run_s_own_clock_a_stopped_rate_while_paused_and_notices_a_killed_runner()
 {
    let pg = PgServer::start();
    let url = pg.create_database("clock");
    seed_orders(&pg, "clock", 300_000);
    let plan = plan_file(&orders_plan(500, "pause_ms = 40\nadaptive = false", ""));
    let started = Instant::now();
    let mut child = spawn_headless(&plan.path, &url, &["--audit-log", "off"]);
    wait_for_number(
        &pg,
        "clock",
        "SELECT rows_done FROM pacer.migrations",
        2_000,
        Duration::from_secs(30),
    );
    std::thread::sleep(Duration::from_secs(4));

    let attach = format!(
        "{} {} attach {} --target {url}; echo EXIT=$?; sleep 60",
        shell_env(),
        env!("CARGO_BIN_EXE_pacer"),
        plan.path.display()
    );
    let viewer = Tmux::start(&attach, 160, 48);
    let screen = viewer.wait_for("rows/s", Duration::from_secs(20));
    // The migration's own elapsed time, not the viewer's (which had just started).
    let shown = elapsed_on(&screen).unwrap_or_else(|| panic!("no clock in\n{screen}"));
    let ran_for = started.elapsed().as_secs();
    assert!(
        shown + 2 >= ran_for && shown <= ran_for + 1,
        "the screen says {shown}s, the run is {ran_for}s old:\n{screen}"
    );

    // Paused: no rate, the ETA stands still.
    viewer.keys(&["p"]);
    let screen = viewer.wait_for("ETA stopped", Duration::from_secs(10));
    assert!(screen.contains("PAUSED"), "{screen}");
    let rate_line = screen
        .lines()
        .find(|l| l.contains(" avg "))
        .expect("a rate line");
    assert!(rate_line.contains("paused"), "{rate_line}");
    viewer.keys(&["p"]);
    viewer.wait_for("RUNNING", Duration::from_secs(10));
    viewer.wait_for("rows/s  avg", Duration::from_secs(10));

    // The runner dies: the viewer says so within 2 s, and its clock stops.
    child.kill().expect("SIGKILL");
    let killed = Instant::now();
    let screen = viewer.wait_for("RUNNER GONE", Duration::from_secs(5));
    let noticed = killed.elapsed();
    eprintln!("the viewer noticed the killed runner after {noticed:?}");
    assert!(noticed < Duration::from_secs(2), "{noticed:?}:\n{screen}");
    let clock = elapsed_on(&screen);
    std::thread::sleep(Duration::from_millis(2200));
    assert_eq!(elapsed_on(&viewer.screen()), clock, "the clock stopped");
    let _ = child.wait();
}
