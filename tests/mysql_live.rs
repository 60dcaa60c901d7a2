//! Load throttles on real MariaDB servers the suite starts itself: `max_threads_running`
//! (sessions sleeping in a statement push Threads_running over the limit), `throttle_query`
//! and `throttle_file` each pause a running backfill at a batch boundary and release it.
//! The sampler's figures and lock waits on MariaDB are tested with the metric source itself
//! (`src/target/mysql/sampler_tests.rs`).

mod common;
use common::mariadb::{rows_done, skip};

use std::time::{Duration, Instant};

use common::*;
use pacer::servers::mariadb::MariaDbServer;

fn wait_rows(db: &MariaDbServer, at_least: i64) {
    let start = Instant::now();
    while rows_done(db) < at_least {
        assert!(start.elapsed() < Duration::from_secs(60), "no progress");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn assert_held(db: &MariaDbServer, what: &str) {
    std::thread::sleep(Duration::from_millis(600)); // a batch in flight may finish
    let held = rows_done(db);
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(rows_done(db), held, "no batch while {what}");
}

/// `orders` with 200k rows, and a plan over it with these `[throttle]` lines.
fn orders(throttle: &str) -> (MariaDbServer, String, PlanFile) {
    let db = MariaDbServer::start();
    let url = db.create_database("shop");
    db.sql(
        "shop",
        "CREATE TABLE orders (id bigint NOT NULL PRIMARY KEY, amount_cents bigint NOT NULL) ENGINE=InnoDB;
         INSERT INTO orders SELECT seq, seq FROM seq_1_to_200000;",
    );
    let plan = plan_file(&format!(
        r#"table = "orders"
[column]
name = "amount"
type = "decimal(14,2)"
backfill = "amount_cents / 100.0"
[backfill]
batch_size = 500
adaptive = false
pause_ms = 20
[throttle]
resume_after = "500ms"
{throttle}
"#
    ));
    (db, url, plan)
}

fn wrong_amounts(db: &MariaDbServer) -> i64 {
    db.sql(
        "shop",
        "SELECT COUNT(*) FROM orders WHERE NOT (amount <=> CAST(amount_cents / 100.0 AS DECIMAL(14,2)))",
    )
    .parse()
    .unwrap()
}

#[test]
fn max_threads_running_pauses_the_backfill_while_the_server_is_busy_and_releases_it() {
    if skip() {
        return;
    }
    let (db, url, plan) = orders("max_threads_running = 3");
    let mut child = spawn_run(&plan.path, &url, &["--json", "--sample-interval", "250ms"]);
    let rx = events(&mut child);
    wait_rows(&db, 5_000);

    // Five sessions sleeping in a statement: five threads running, over the limit of 3.
    std::thread::scope(|scope| {
        let busy_from = Instant::now();
        let sleepers: Vec<_> = (0..5)
            .map(|_| scope.spawn(|| db.sql("shop", "SELECT SLEEP(4)")))
            .collect();
        let (_, e) = wait_event(&rx, "throttled", Duration::from_secs(5));
        eprintln!(
            "throttled {:?} after the sleepers started: {e}",
            busy_from.elapsed()
        );
        let r = &e["reasons"][0];
        assert_eq!(r["signal"], "threads running", "{e}");
        assert_eq!(r["limit"], "3", "{e}");
        // 4 when the throttle looked before the fifth sleeper started; never more than 5:
        // pacer's own connections (its batches, heartbeat, sampler) are not counted.
        let n: u32 = r["value"].as_str().unwrap().parse().unwrap();
        assert!((4..=5).contains(&n), "{e}");
        assert_held(&db, "five threads run");
        for s in sleepers {
            s.join().unwrap();
        }
    });
    let calm_from = Instant::now();
    wait_event(&rx, "unthrottled", Duration::from_secs(10));
    eprintln!(
        "released {:?} after the sleepers ended",
        calm_from.elapsed()
    );
    let ran = finish(child);
    assert_eq!(ran.code, 0, "{ran}");
    assert_eq!(wrong_amounts(&db), 0);
}

#[test]
fn a_throttle_file_and_a_throttle_query_pause_and_release_the_backfill_on_mariadb() {
    if skip() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("throttle");
    let (db, url, plan) = orders(&format!(
        "throttle_file = \"{}\"\nthrottle_query = \"SELECT busy FROM ops\"",
        file.display()
    ));
    db.sql(
        "shop",
        "CREATE TABLE ops (busy int NOT NULL); INSERT INTO ops VALUES (0);",
    );
    let mut child = spawn_run(&plan.path, &url, &["--json"]);
    let rx = events(&mut child);
    wait_rows(&db, 5_000);

    std::fs::write(&file, "").unwrap();
    let (_, e) = wait_event(&rx, "throttled", Duration::from_secs(5));
    assert!(e["reasons"].to_string().contains("throttle_file"), "{e}");
    assert_held(&db, "the file exists");
    std::fs::remove_file(&file).unwrap();
    wait_event(&rx, "unthrottled", Duration::from_secs(10));

    db.sql("shop", "UPDATE ops SET busy = 3");
    let (_, e) = wait_event(&rx, "throttled", Duration::from_secs(5));
    let r = &e["reasons"][0];
    assert_eq!(
        (&r["signal"], &r["value"]),
        (&"throttle_query".into(), &"3".into()),
        "{e}"
    );
    assert_held(&db, "the query returns 3");
    db.sql("shop", "UPDATE ops SET busy = 0");
    wait_event(&rx, "unthrottled", Duration::from_secs(10));

    let ran = finish(child);
    assert_eq!(ran.code, 0, "{ran}");
    assert_eq!(wrong_amounts(&db), 0);
}

#[test]
fn the_foreground_probe_measures_a_baseline_and_a_lock_on_the_heartbeat_row_holds_the_backfill() {
    if skip() {
        return;
    }
    let (db, url, plan) = orders("max_foreground_impact = \"1.5x\"");
    let mut child = spawn_run(&plan.path, &url, &["--json"]);
    let rx = events(&mut child);
    let (_, baseline) = wait_event(&rx, "foreground_baseline", Duration::from_secs(60));
    let p99 = baseline["p99_ms"].as_f64().unwrap();
    assert!(p99 > 0.0 && p99 < 500.0, "{baseline}");
    wait_rows(&db, 5_000);

    // A session holds the heartbeat row for 8 s: each probe waits for it until
    // innodb_lock_wait_timeout (1 s), so none answers, and pacer holds its batches.
    std::thread::scope(|scope| {
        let holder = scope.spawn(|| {
            db.sql(
                "pacer",
                "START TRANSACTION; SELECT seq FROM pacer_heartbeat FOR UPDATE; DO SLEEP(8); COMMIT;",
            )
        });
        let (_, e) = wait_event(&rx, "throttled", Duration::from_secs(8));
        let reason = e["reasons"][0].to_string();
        assert!(reason.contains("foreground probe"), "{e}");
        assert_held(&db, "the probe cannot answer");
        holder.join().unwrap();
    });
    wait_event(&rx, "unthrottled", Duration::from_secs(10));
    let ran = finish(child);
    assert_eq!(ran.code, 0, "{ran}");
    assert_eq!(wrong_amounts(&db), 0);
}
