//! The sync triggers on a real PostgreSQL: application writes follow the rule (with and without
//! a column default), pacer's own batch updates never enter the trigger function, and a
//! migration whose single trigger an earlier pacer installed still finishes and is cleaned up.

mod common;

use std::io::Read;
use std::path::Path;
use std::process::Child;
use std::time::{Duration, Instant};

use common::*;
use pacer::servers::postgres::PgServer;

const FUNCTION: &str = "pacer_sync_orders_amount";

/// The SQL `pacer plan --json` shows for the add_column and sync phases, in order.
fn add_and_sync_sql(plan: &Path, url: &str) -> Vec<String> {
    let ran = run_pacer(&["plan", "--json"], plan, url);
    assert_eq!(ran.code, 0, "{ran}");
    let report: serde_json::Value = serde_json::from_str(&ran.stdout)
        .unwrap_or_else(|e| panic!("plan --json is not JSON ({e}): {ran}"));
    let mut sql = Vec::new();
    for phase in report["phases"].as_array().expect("phases") {
        if phase["phase"] == "add_column" || phase["phase"] == "sync" {
            for step in phase["steps"].as_array().expect("steps") {
                sql.push(step["sql"].as_str().expect("sql").to_string());
            }
        }
    }
    assert_eq!(sql.len(), 4, "add column, function, two triggers: {sql:?}");
    sql
}

fn amount(pg: &PgServer, db: &str, id: i64) -> String {
    pg.psql(db, &format!("SELECT amount FROM orders WHERE id = {id}"))
}

/// Application writes under the installed triggers, with the calls of the trigger function
/// they make counted in the same transaction (`track_functions = 'pl'`).
fn application_writes(pg: &PgServer, db: &str, not_set: &str) -> i64 {
    let out = pg.psql(
        db,
        &format!(
            "BEGIN;
             SET LOCAL track_functions = 'pl';
             -- 1001: inserted without the column; 1002: with a value of its own;
             -- 1003: with the value that means \"not set\".
             INSERT INTO orders (id, amount_cents) VALUES (1001, 1234);
             INSERT INTO orders (id, amount_cents, amount) VALUES (1002, 500, 99.99);
             INSERT INTO orders (id, amount_cents, amount) VALUES (1003, 700, {not_set});
             -- 1: an update of the source column of a row still pending;
             -- 1002: an update of the source column only (the column is recomputed);
             -- 2: an update that sets the column itself; 3: pacer's kind of update.
             UPDATE orders SET amount_cents = 4321 WHERE id = 1;
             UPDATE orders SET amount_cents = 800 WHERE id = 1002;
             UPDATE orders SET amount_cents = 900, amount = 1.23 WHERE id = 2;
             UPDATE orders SET amount = 5.55 WHERE id = 3;
             SELECT pg_stat_get_xact_function_calls('public.{FUNCTION}'::regproc);
             COMMIT;"
        ),
    );
    out.trim().parse().expect("a call count")
}

#[test]
fn application_writes_follow_the_rule_and_only_they_call_the_function() {
    let pg = PgServer::start();
    for (db, default) in [("plain", None), ("with_default", Some("-1"))] {
        let url = pg.create_database(db);
        seed_orders(&pg, db, 100);
        let plan = plan_file(&format!(
            "table = \"public.orders\"\n[column]\nname = \"amount\"\ntype = \"numeric(14,2)\"\n\
             backfill = \"amount_cents / 100.0\"\n{}",
            default.map_or(String::new(), |d| format!("default = \"{d}\"\n"))
        ));
        for sql in add_and_sync_sql(&plan.path, &url) {
            pg.psql(db, &sql);
        }
        assert_eq!(
            pg.psql(
                db,
                "SELECT string_agg(tgname || ' ' || (tgtype & 28)::text, ', ' ORDER BY tgname) \
                 FROM pg_trigger WHERE tgrelid = 'orders'::regclass AND NOT tgisinternal"
            ),
            "pacer_sync_amount_ins 4, pacer_sync_amount_upd 16",
            "one INSERT and one UPDATE trigger"
        );
        let calls = application_writes(&pg, db, default.unwrap_or("NULL"));
        // 1001 (insert without), 1003 (insert "not set"), 1 and 1002 (column untouched).
        assert_eq!(calls, 4, "{db}: calls of the sync function");
        assert_eq!(amount(&pg, db, 1001), "12.34", "{db}");
        assert_eq!(amount(&pg, db, 1003), "7.00", "{db}");
        assert_eq!(amount(&pg, db, 1), "43.21", "{db}");
        assert_eq!(amount(&pg, db, 1002), "8.00", "{db}");
        assert_eq!(
            amount(&pg, db, 2),
            "1.23",
            "{db}: a value the application sets is kept"
        );
        assert_eq!(amount(&pg, db, 3), "5.55", "{db}");
        // A value of its own at insert is kept until an update leaves the column untouched.
        pg.psql(
            db,
            "INSERT INTO orders (id, amount_cents, amount) VALUES (1004, 500, 99.99)",
        );
        assert_eq!(amount(&pg, db, 1004), "99.99", "{db}");
    }
}

fn headless_run(plan: &Path, url: &str) -> Child {
    spawn_run(plan, url, &[])
}

/// Stops a run (SIGTERM: pacer aborts at the boundary, resumable) and waits for its
/// database session to end, so the session's statistics are in.
fn stop(pg: &PgServer, db: &str, child: Child) {
    let status = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success());
    let ran = finish(child);
    assert_eq!(ran.code, 3, "an aborted run exits 3: {ran}");
    pg.wait_until(
        db,
        "SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE 'pacer%'",
        "0",
        Duration::from_secs(30),
    );
}

fn calls(pg: &PgServer, db: &str) -> i64 {
    pg.psql(
        db,
        &format!(
            "SELECT coalesce((SELECT calls FROM pg_stat_user_functions WHERE funcname = '{FUNCTION}'), 0)"
        ),
    )
    .parse()
    .unwrap()
}

fn gated_plan(before: &str) -> PlanFile {
    let mut text = orders_plan(2000, "", "");
    text.push_str(&format!("\n[gates]\nbefore = [\"{before}\"]\n"));
    plan_file(&text)
}

/// Waits until the run has recorded `phase` as done (it then waits at the next gate); panics
/// with the run's output if it ends first.
fn wait_for_phase_done(pg: &PgServer, db: &str, phase: &str, child: &mut Child) {
    let sql = format!("SELECT count(*) FROM pacer.migrations WHERE '{phase}' = ANY (phases_done)");
    let start = Instant::now();
    while pg.try_psql(db, &sql).ok().as_deref() != Some("1") {
        if child.try_wait().expect("try_wait").is_some() {
            let mut out = String::new();
            if let Some(mut e) = child.stderr.take() {
                let _ = e.read_to_string(&mut out);
            }
            panic!("pacer ended before {phase} was done: {out}");
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "{phase} not done after 2 minutes"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn no_sync_objects_left(pg: &PgServer, db: &str) {
    assert_eq!(
        pg.psql(
            db,
            "SELECT count(*) FROM pg_trigger WHERE tgrelid = 'orders'::regclass AND NOT tgisinternal"
        ),
        "0",
        "{db}: every sync trigger dropped"
    );
    assert_eq!(
        pg.psql(
            db,
            "SELECT count(*) FROM pg_proc WHERE proname LIKE 'pacer_sync%'"
        ),
        "0",
        "{db}: the sync function dropped"
    );
}

#[test]
fn pacer_batches_do_not_call_the_function_and_an_earlier_single_trigger_is_cleaned_up() {
    let pg = PgServer::start();
    let rows = 20_000;

    // This version's triggers: the whole backfill runs, then stops at a gate before verify.
    let url = pg.create_database("split");
    pg.psql(
        "postgres",
        "ALTER DATABASE split SET track_functions = 'pl'",
    );
    seed_orders(&pg, "split", rows);
    let plan = gated_plan("verify");
    let mut child = headless_run(&plan.path, &url);
    wait_for_phase_done(&pg, "split", "backfill", &mut child);
    stop(&pg, "split", child);
    assert_eq!(
        pg.psql("split", "SELECT rows_updated FROM pacer.migrations"),
        rows.to_string()
    );
    assert_eq!(
        calls(&pg, "split"),
        0,
        "pacer's batches called the function"
    );
    // The same counter sees application writes (2 inserts and 3 updates without the column).
    pg.psql(
        "split",
        "INSERT INTO orders (amount_cents) VALUES (1), (2);
         UPDATE orders SET amount_cents = amount_cents + 1 WHERE id IN (1, 2, 3);",
    );
    pg.wait_until(
        "split",
        &format!("SELECT calls FROM pg_stat_user_functions WHERE funcname = '{FUNCTION}'"),
        "5",
        Duration::from_secs(30),
    );
    let plan = orders_plan_file();
    let ran = run_pacer(&["run", "--headless"], &plan.path, &url);
    assert_eq!(ran.code, 0, "{ran}");
    assert_eq!(wrong_amounts(&pg, "split"), 0);
    no_sync_objects_left(&pg, "split");

    // A migration started by an earlier pacer: its single BEFORE INSERT OR UPDATE trigger
    // (the DDL earlier versions ran) is in place when this version resumes it.
    let url = pg.create_database("legacy");
    pg.psql(
        "postgres",
        "ALTER DATABASE legacy SET track_functions = 'pl'",
    );
    seed_orders(&pg, "legacy", rows);
    let plan = gated_plan("backfill");
    let mut child = headless_run(&plan.path, &url);
    wait_for_phase_done(&pg, "legacy", "sync", &mut child);
    stop(&pg, "legacy", child);
    pg.psql(
        "legacy",
        &format!(
            "BEGIN;
             DROP TRIGGER pacer_sync_amount_ins ON public.orders;
             DROP TRIGGER pacer_sync_amount_upd ON public.orders;
             CREATE TRIGGER pacer_sync_amount BEFORE INSERT OR UPDATE ON public.orders FOR EACH ROW \
             EXECUTE FUNCTION public.{FUNCTION}();
             COMMIT;"
        ),
    );
    let plan = gated_plan("verify");
    let mut child = headless_run(&plan.path, &url);
    wait_for_phase_done(&pg, "legacy", "backfill", &mut child);
    stop(&pg, "legacy", child);
    assert_eq!(
        pg.psql(
            "legacy",
            "SELECT string_agg(tgname, ', ') FROM pg_trigger WHERE tgrelid = 'orders'::regclass AND NOT tgisinternal"
        ),
        "pacer_sync_amount",
        "the resumed run keeps the earlier trigger (same rule) instead of locking the table to swap it"
    );
    // With the earlier trigger every row pacer filled went through the function: the
    // measurement above can tell the two apart.
    assert_eq!(calls(&pg, "legacy"), rows as i64);
    let plan = orders_plan_file();
    let ran = run_pacer(&["run", "--headless"], &plan.path, &url);
    assert_eq!(ran.code, 0, "{ran}");
    assert_eq!(wrong_amounts(&pg, "legacy"), 0);
    no_sync_objects_left(&pg, "legacy");
}

fn orders_plan_file() -> PlanFile {
    plan_file(&orders_plan(2000, "", ""))
}

#[test]
fn verify_reads_the_table_by_pages_and_names_the_first_row_a_writer_set_back() {
    let pg = PgServer::start();
    let url = pg.create_database("verify");
    seed_orders(&pg, "verify", 30_000);
    let plan = gated_plan("verify");
    let mut child = headless_run(&plan.path, &url);
    wait_for_phase_done(&pg, "verify", "backfill", &mut child);
    stop(&pg, "verify", child);
    // Two rows set back to NULL behind the sync trigger's back (as a writer that bypasses
    // triggers would): one early in the table, one in its last pages.
    pg.psql(
        "verify",
        "SET session_replication_role = replica;
         UPDATE orders SET amount = NULL WHERE id IN (29000, 777);",
    );
    let ran = run_pacer(&["run", "--headless"], &orders_plan_file().path, &url);
    assert_eq!(ran.code, 1, "verify fails: {ran}");
    assert!(
        ran.stderr.contains("verify found 2 rows in pages 0 …")
            && ran.stderr.contains("(first: key 777)"),
        "{ran}"
    );
    // Nothing after verify ran: the column is as it was, the triggers still keep it in sync.
    assert_eq!(
        pg.psql("verify", "SELECT count(*) FROM orders WHERE amount IS NULL"),
        "2"
    );
}
