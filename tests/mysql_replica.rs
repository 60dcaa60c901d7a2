//! Replicas on MariaDB: pacer measures their lag with its heartbeat and throttles on it, on a
//! real primary and a real GTID replica the tests start.

mod common;
use common::mariadb::{rows_done, skip};

use std::time::{Duration, Instant};

use common::*;
use pacer::servers::mariadb::MariaDbServer;

fn seed(db: &MariaDbServer, rows: u64) {
    db.sql(
        "shop",
        &format!(
            "CREATE TABLE orders (id bigint NOT NULL AUTO_INCREMENT PRIMARY KEY, amount_cents bigint NOT NULL, \
             note varchar(40)) ENGINE=InnoDB;
             INSERT INTO orders (amount_cents, note) SELECT seq, 'n' FROM seq_1_to_{rows};"
        ),
    );
}

fn plan(limit: &str, pause_ms: u64) -> String {
    format!(
        r#"table = "orders"
[column]
name = "amount"
type = "decimal(14,2)"
backfill = "amount_cents / 100.0"
[backfill]
batch_size = 500
adaptive = false
pause_ms = {pause_ms}
[throttle]
max_replication_lag = "{limit}"
lag_grace = "1s"
resume_after = "500ms"
"#
    )
}

#[test]
fn a_stopped_replica_throttles_the_backfill_until_it_applies_again() {
    if skip() {
        return;
    }
    let db = MariaDbServer::start();
    let replica = db.start_replica();
    db.create_database("shop");
    let url = db.url("shop");
    seed(&db, 60_000);
    db.wait_for_replica(&replica);
    let p = plan_file(&plan("1s", 20));
    let child = spawn_run(&p.path, &url, &["--json"]);
    let socket = socket_of(child.id());

    let start = Instant::now();
    while rows_done(&db) < 5_000 {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the backfill did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    replica.pause_replay();
    let stopped = Instant::now();
    let throttled = wait_for_status(&socket, "throttled", Duration::from_secs(10));
    let took = stopped.elapsed();
    assert!(
        took < Duration::from_secs(4),
        "throttled {took:?} after the replica stopped applying (limit 1 s, sampled every 1 s)"
    );
    eprintln!(
        "throttled {took:?} after STOP SLAVE SQL_THREAD: {}",
        throttled["state"]
    );
    let held = rows_done(&db);
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        rows_done(&db) <= held + 500,
        "batches waited while the replica was stopped"
    );
    replica.resume_replay();
    let ran = finish(child);
    assert_eq!(ran.code, 0, "{ran}");
    assert!(
        ran.stdout.contains("\"event\":\"throttled\"") && ran.stdout.contains("SQL thread stopped"),
        "{ran}"
    );
    assert_eq!(
        db.sql("shop", "SELECT COUNT(*) FROM orders WHERE amount IS NULL"),
        "0"
    );
    db.wait_for_replica(&replica);
    assert_eq!(
        replica.sql("shop", "SELECT COUNT(*) FROM orders WHERE amount IS NULL"),
        "0",
        "the replica got every row"
    );
}

#[test]
fn a_delayed_replica_shows_its_delay_as_its_lag() {
    if skip() {
        return;
    }
    let db = MariaDbServer::start();
    let replica = db.start_replica();
    db.create_database("shop");
    let url = db.url("shop");
    seed(&db, 20_000);
    db.wait_for_replica(&replica);
    replica.sql(
        "",
        "STOP SLAVE; CHANGE MASTER TO MASTER_DELAY = 3; START SLAVE;",
    );
    let p = plan_file(&plan("1s", 50));
    let child = spawn_run(&p.path, &url, &["--json"]);
    let socket = socket_of(child.id());
    wait_for_status(&socket, "throttled", Duration::from_secs(30));
    // Read the lag the throttle sees (its reason in the state) while the delay holds.
    let mut lags = Vec::new();
    let until = Instant::now() + Duration::from_secs(5);
    while Instant::now() < until {
        let status = status_json(&socket);
        if let Some(text) = status["state"]["throttle"].as_str()
            && let Some(rest) = text.split("replication lag ").nth(1)
            && let Ok(v) = rest.split('s').next().unwrap_or("").trim().parse::<f64>()
        {
            lags.push(v);
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    replica.sql(
        "",
        "STOP SLAVE; CHANGE MASTER TO MASTER_DELAY = 0; START SLAVE;",
    );
    let ran = finish(child);
    assert_eq!(ran.code, 0, "{ran}");
    assert!(lags.len() > 5, "{lags:?} {ran}");
    // Once settled (the last second), the lag is the delay. MariaDB applies an event once its
    // binlog timestamp, in whole seconds, is 3 s old (`ev->when + MASTER_DELAY`, compared with
    // the clock in seconds): an event written at s + f (0 ≤ f < 1) waits 3 − f, so by its
    // heartbeat the replica is 2–3 s behind, in a sawtooth as each second's events land
    // together. The throttle takes the larger of that and the forecast (what it has still to
    // apply, at its rate), which for a delayed replica reads up to about a second more. Seen:
    // 2.1–2.6 s in one run, 3.1–3.9 s in another; the delay is 3 s.
    let settled = &lags[lags.len() - 4..];
    eprintln!("replication lag readings while delayed by 3 s: {lags:?}");
    assert!(
        settled.iter().all(|v| (2.0..=4.0).contains(v)),
        "the delayed replica read {settled:?} s behind, not within 2–4 s of its 3 s delay"
    );
}

#[test]
fn a_replica_that_cannot_be_read_counts_as_over_the_limit_after_lag_grace() {
    if skip() {
        return;
    }
    let db = MariaDbServer::start();
    let mut replica = db.start_replica();
    db.create_database("shop");
    let url = db.url("shop");
    seed(&db, 60_000);
    db.wait_for_replica(&replica);
    let p = plan_file(&plan("5s", 20));
    let child = spawn_run(&p.path, &url, &["--json"]);
    let socket = socket_of(child.id());
    let start = Instant::now();
    while rows_done(&db) < 5_000 {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the backfill did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    replica.stop();
    let gone = Instant::now();
    let status = wait_for_status(&socket, "throttled", Duration::from_secs(15));
    eprintln!(
        "throttled {:?} after the replica went away: {}",
        gone.elapsed(),
        status["state"]["throttle"]
    );
    assert!(gone.elapsed() < Duration::from_secs(5), "lag_grace is 1 s");
    replica.start_again();
    let ran = finish(child);
    assert_eq!(ran.code, 0, "{ran}");
    assert_eq!(
        db.sql("shop", "SELECT COUNT(*) FROM orders WHERE amount IS NULL"),
        "0"
    );
}
