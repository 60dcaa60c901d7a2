//! The real binary in a real terminal (tmux) against a real PostgreSQL: the screen shows the
//! plan and the progress, and keys steer the engine.

mod common;

use std::time::Duration;

use common::tmux::Tmux;
use common::*;
use pacer::servers::postgres::PgServer;

fn progress(pg: &PgServer) -> (i64, i64) {
    let s = pg.psql(
        "shop",
        "SELECT rows_done || ' ' || batches FROM pacer.migrations",
    );
    let mut it = s.split(' ').map(|v| v.parse::<i64>().unwrap());
    (it.next().unwrap(), it.next().unwrap())
}

#[test]
fn the_screen_shows_the_plan_and_progress_and_keys_steer_the_backfill() {
    let pg = PgServer::start();
    let url = pg.create_database("shop");
    seed_orders(&pg, "shop", 400_000);
    // A fixed size, so that + has an exact expected result (the sizer is tested elsewhere).
    let plan = plan_file(&orders_plan(1000, "pause_ms = 25\nadaptive = false", ""));
    let command = format!(
        "{} {} run {} --target {url}; echo EXIT=$?; sleep 60",
        shell_env(),
        env!("CARGO_BIN_EXE_pacer"),
        plan.path.display()
    );
    let tmux = Tmux::start(&command, 120, 40);

    // The plan and the progress are on the screen.
    let screen = tmux.wait_for("RUNNING", Duration::from_secs(30));
    for phase in [
        "add_column",
        "sync",
        "backfill",
        "verify",
        "not_null",
        "index",
        "cleanup",
    ] {
        assert!(screen.contains(phase), "phase {phase} missing:\n{screen}");
    }
    wait_for_number(
        &pg,
        "shop",
        "SELECT rows_done FROM pacer.migrations",
        20_000,
        Duration::from_secs(30),
    );
    tmux.wait_for("rows/s", Duration::from_secs(10));

    // p pauses: the row count stops within one batch, and the screen says so.
    let before = progress(&pg).0;
    tmux.keys(&["p"]);
    tmux.wait_for("PAUSED", Duration::from_secs(10));
    let at_pause = progress(&pg).0;
    assert!(
        at_pause - before <= 2 * 1000,
        "moved {} rows after p",
        at_pause - before
    );
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(progress(&pg).0, at_pause, "rows moved while paused");

    // p again resumes.
    tmux.keys(&["p"]);
    tmux.wait_for("RUNNING", Duration::from_secs(10));
    wait_for_number(
        &pg,
        "shop",
        "SELECT rows_done FROM pacer.migrations",
        at_pause + 5000,
        Duration::from_secs(30),
    );

    // + raises the batch size by a step: the screen shows it, the engine uses it.
    tmux.keys(&["+"]);
    tmux.wait_for("1,250", Duration::from_secs(5));
    // One line in the event log says so, the engine's.
    let screen = tmux.wait_for(
        "batch size 1,000 → 1,250 — operator",
        Duration::from_secs(5),
    );
    assert_eq!(
        screen
            .lines()
            .filter(|l| l.contains("batch size") && l.contains("1,250"))
            .count(),
        1,
        "one log line for the change:\n{screen}"
    );
    assert!(!screen.contains("operator: batch size"), "{screen}");
    std::thread::sleep(Duration::from_millis(500));
    let (rows1, batches1) = progress(&pg);
    std::thread::sleep(Duration::from_millis(1500));
    let (rows2, batches2) = progress(&pg);
    assert!(batches2 > batches1, "no batch ran");
    assert_eq!(
        (rows2 - rows1) / (batches2 - batches1),
        1250,
        "batches after + are 1,250 rows"
    );

    // q asks first (detach, abort or cancel); c keeps the screen; q a stops at a batch
    // boundary, resumably (exit 3).
    tmux.keys(&["q"]);
    tmux.wait_for("Leave the screen?", Duration::from_secs(5));
    tmux.keys(&["c"]);
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        !tmux.screen().contains("Leave the screen?"),
        "the question stays after c"
    );
    let running = progress(&pg).0;
    wait_for_number(
        &pg,
        "shop",
        "SELECT rows_done FROM pacer.migrations",
        running + 2000,
        Duration::from_secs(10),
    );
    tmux.keys(&["q"]);
    tmux.wait_for("Leave the screen?", Duration::from_secs(5));
    tmux.keys(&["a"]);
    let screen = tmux.wait_for("EXIT=", Duration::from_secs(30));
    assert!(screen.contains("EXIT=3"), "{screen}");
    assert!(screen.contains("aborted at a batch boundary"), "{screen}");
    assert_eq!(
        pg.psql("shop", "SELECT outcome FROM pacer.migrations"),
        "aborted"
    );
}

#[test]
fn without_a_terminal_run_is_headless_and_says_so() {
    let pg = PgServer::start();
    let url = pg.create_database("shop");
    seed_orders(&pg, "shop", 1000);
    let plan = plan_file(&orders_plan(500, "", ""));
    let ran = run_pacer(&["run"], &plan.path, &url);
    assert_eq!(ran.code, 0, "{ran}");
    assert!(
        ran.stderr
            .contains("standard output is not a terminal; running headless"),
        "{ran}"
    );
    assert!(ran.stderr.contains("DONE"), "{ran}");
}

#[test]
fn a_gate_holds_not_null_until_g_and_y_and_then_the_migration_completes() {
    let pg = PgServer::start();
    let url = pg.create_database("shop");
    seed_orders(&pg, "shop", 20_000);
    let plan = plan_file(&format!(
        "{}\n[gates]\nbefore = [\"not_null\"]\n",
        orders_plan(2000, "", "")
    ));

    // `pacer plan` shows the gate, in words and in JSON.
    let planned = run_pacer(&["plan"], &plan.path, &url);
    assert_eq!(planned.code, 0, "{planned}");
    assert!(
        planned
            .stdout
            .contains("\ngates    waits for the operator before not_null"),
        "{planned}"
    );
    assert!(
        planned
            .stdout
            .contains("\n6. not_null  [gate: waits for the operator]:"),
        "{planned}"
    );
    let json = run_pacer(&["plan", "--json"], &plan.path, &url);
    let report: serde_json::Value = serde_json::from_str(&json.stdout)
        .unwrap_or_else(|e| panic!("plan --json is not JSON ({e}): {json}"));
    assert_eq!(report["gates"], serde_json::json!(["not_null"]), "{json}");

    let command = format!(
        "{} {} run {} --target {url}; echo EXIT=$?; sleep 60",
        shell_env(),
        env!("CARGO_BIN_EXE_pacer"),
        plan.path.display()
    );
    let tmux = Tmux::start(&command, 120, 40);
    let not_null = "SELECT attnotnull FROM pg_attribute \
                    WHERE attrelid = 'orders'::regclass AND attname = 'amount'";
    let checks = "SELECT count(*) FROM pg_constraint \
                  WHERE conrelid = 'orders'::regclass AND contype = 'c'";

    // Backfill and verify run; the gate holds not_null: nothing of it has run.
    let screen = tmux.wait_for("GATE", Duration::from_secs(60));
    assert!(screen.contains("before not_null"), "{screen}");
    assert_eq!(
        pg.psql("shop", "SELECT phases_done FROM pacer.migrations"),
        "{add_column,sync,backfill,verify}"
    );
    std::thread::sleep(Duration::from_millis(1500));
    assert!(tmux.screen().contains("GATE"), "the gate still holds");
    assert_eq!(pg.psql("shop", not_null), "f");
    assert_eq!(pg.psql("shop", checks), "0", "no NOT VALID check yet");
    assert_eq!(wrong_amounts(&pg, "shop"), 0, "the backfill is complete");

    // g asks, naming the phase and its locks; n keeps waiting.
    tmux.keys(&["g"]);
    let screen = tmux.wait_for("Proceed to not_null?", Duration::from_secs(5));
    assert!(screen.contains("ACCESS EXCLUSIVE briefly"), "{screen}");
    tmux.keys(&["n"]);
    std::thread::sleep(Duration::from_millis(1000));
    let screen = tmux.screen();
    assert!(!screen.contains("Proceed to not_null?"), "{screen}");
    assert!(screen.contains("GATE"), "{screen}");
    assert_eq!(pg.psql("shop", checks), "0");

    // g y proceeds: not_null, index and cleanup run to the end.
    tmux.keys(&["g"]);
    tmux.wait_for("Proceed to not_null?", Duration::from_secs(5));
    tmux.keys(&["y"]);
    tmux.wait_for("DONE", Duration::from_secs(60));
    assert_eq!(pg.psql("shop", not_null), "t");
    assert_eq!(
        pg.psql("shop", "SELECT outcome FROM pacer.migrations"),
        "done"
    );
    assert_eq!(
        pg.psql(
            "shop",
            "SELECT indisvalid FROM pg_index WHERE indexrelid = 'orders_amount_idx'::regclass"
        ),
        "t"
    );
    tmux.keys(&["q"]);
    let screen = tmux.wait_for("EXIT=", Duration::from_secs(10));
    assert!(screen.contains("EXIT=0"), "{screen}");
}
