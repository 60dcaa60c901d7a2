//! The MySQL/MariaDB target end to end, on real MariaDB servers the suite starts itself: a full
//! run checking every value, kill -9 and resume, lock safety behind a metadata lock, a server
//! restart and a killed connection, a composite key, an unaware writer during the backfill.

mod common;
use common::mariadb::skip;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::*;
use pacer::servers::mariadb::MariaDbServer;

/// `orders` with `rows` rows (id bigint primary key, amount_cents, note, created_at).
fn seed(db: &MariaDbServer, name: &str, rows: u64) {
    db.sql(
        name,
        &format!(
            "CREATE TABLE orders (id bigint NOT NULL AUTO_INCREMENT PRIMARY KEY, amount_cents bigint NOT NULL, \
             note varchar(40), created_at datetime(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6)) ENGINE=InnoDB;
             INSERT INTO orders (amount_cents, note) SELECT (seq * 7919) % 1000000, CONCAT('order ', seq) \
             FROM seq_1_to_{rows};
             ANALYZE TABLE orders;"
        ),
    );
}

/// The orders plan on MySQL: the same phases as on PostgreSQL.
fn plan(batch_size: u64, extra: &str) -> String {
    format!(
        r#"table = "orders"

[column]
name = "amount"
type = "decimal(14,2)"
backfill = "amount_cents / 100.0"
not_null = true
index = true

[backfill]
batch_size = {batch_size}
target_batch_ms = 200
pause_ms = 0

[safety]
lock_timeout = "1s"
ddl_retries = 30
{extra}
"#
    )
}

fn wrong_amounts(db: &MariaDbServer, name: &str) -> i64 {
    db.sql(
        name,
        "SELECT COUNT(*) FROM orders WHERE NOT (amount <=> CAST(amount_cents / 100.0 AS DECIMAL(14,2)))",
    )
    .parse()
    .unwrap()
}

fn number(db: &MariaDbServer, name: &str, sql: &str) -> i64 {
    db.sql(name, sql).trim().parse().unwrap_or(-1)
}

fn wait_for(db: &MariaDbServer, name: &str, sql: &str, at_least: i64, timeout: Duration) -> i64 {
    let start = Instant::now();
    loop {
        if let Ok(v) = db.try_sql(name, sql)
            && let Ok(n) = v.trim().parse::<i64>()
            && n >= at_least
        {
            return n;
        }
        assert!(
            start.elapsed() < timeout,
            "timed out waiting for `{sql}` to reach {at_least}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_full_run_fills_every_row_and_tightens_not_null_with_its_index() {
    if skip() {
        return;
    }
    let db = MariaDbServer::start();
    let url = db.create_database("shop");
    seed(&db, "shop", 100_000);
    let p = plan_file(&plan(5000, ""));

    let ran = run_pacer(&["plan"], &p.path, &url);
    assert_eq!(ran.code, 0, "{ran}");
    for needle in [
        "ALGORITHM=INSTANT, LOCK=NONE",
        "WAIT 1 ADD COLUMN",
        "metadata lock EXCLUSIVE",
        "SET STATEMENT max_statement_time=30 FOR UPDATE",
        "ALGORITHM=INPLACE, LOCK=NONE",
        "ONE statement",
        "server   MariaDB 10.",
    ] {
        assert!(ran.stdout.contains(needle), "{needle}: {ran}");
    }

    let ran = run_pacer(&["run", "--headless", "--json"], &p.path, &url);
    assert_eq!(ran.code, 0, "{ran}");
    let events: Vec<serde_json::Value> = ran
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert!(
        events.iter().any(|e| e.to_string().contains("batch")),
        "{ran}"
    );

    assert_eq!(wrong_amounts(&db, "shop"), 0, "every value is exact");
    assert_eq!(number(&db, "shop", "SELECT COUNT(*) FROM orders"), 100_000);
    let create = db.sql("shop", "SHOW CREATE TABLE orders");
    assert!(
        create.contains("`amount` decimal(14,2) NOT NULL"),
        "{create}"
    );
    assert!(
        create.contains("KEY `orders_amount_idx` (`amount`)"),
        "{create}"
    );
    assert_eq!(
        db.sql(
            "",
            "SELECT COUNT(*) FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = 'shop'"
        ),
        "0",
        "cleanup dropped the sync triggers"
    );
    assert_eq!(
        db.sql(
            "",
            "SELECT CONCAT(outcome, ' ', rows_done, ' ', phase) FROM pacer.migrations"
        ),
        "done 100000 done"
    );

    // Status reads the recorded state; a second run has nothing left to do.
    let ran = run_pacer(&["status"], &p.path, &url);
    assert_eq!(ran.code, 0, "{ran}");
    assert!(ran.stdout.contains("done"), "{ran}");
    let ran = run_pacer(&["run", "--headless"], &p.path, &url);
    assert_eq!(ran.code, 0, "{ran}");
}

/// An AFTER UPDATE trigger that logs every change of a row's amount (created once the column
/// exists: MySQL checks a trigger's columns when it is created).
fn attach_update_log(db: &MariaDbServer, name: &str) {
    db.sql(
        name,
        "CREATE TABLE IF NOT EXISTS update_log (id bigint NOT NULL);
         DELIMITER //
         CREATE TRIGGER zz_log_update AFTER UPDATE ON orders FOR EACH ROW BEGIN \
           IF NOT (NEW.amount <=> OLD.amount) THEN INSERT INTO update_log VALUES (NEW.id); END IF; END//
         DELIMITER ;",
    );
}

#[test]
fn resumes_after_kill_9_without_skipping_or_repeating_a_batch() {
    if skip() {
        return;
    }
    let db = MariaDbServer::start();
    let url = db.create_database("shop");
    seed(&db, "shop", 120_000);
    let p = plan_file(&format!(
        "{}\n[gates]\nbefore = [\"backfill\"]\n",
        plan(1000, "").replace("pause_ms = 0", "pause_ms = 5")
    ));

    // Each run stops at the gate before the backfill; the first time, the column exists by
    // then and the update log is attached.
    let past_gate = |first: bool| {
        let child = spawn_run(&p.path, &url, &[]);
        let socket = socket_of(child.id());
        wait_for_status(&socket, "gate", Duration::from_secs(60));
        if first {
            attach_update_log(&db, "shop");
        }
        let ran = ctl(&["proceed", "--socket", socket.to_str().unwrap()]);
        assert_eq!(ran.code, 0, "{ran}");
        child
    };
    let mut child = past_gate(true);
    for round in 0..2 {
        let threshold = 25_000 + round * 35_000;
        wait_for(
            &db,
            "shop",
            "SELECT rows_done FROM pacer.migrations",
            threshold,
            Duration::from_secs(90),
        );
        child.kill().expect("kill -9");
        let _ = child.wait();
        let state = db.sql(
            "",
            "SELECT CONCAT(JSON_VALUE(last_key, '$[0]'), ' ', rows_done) FROM pacer.migrations",
        );
        let mut it = state.split(' ').map(|v| v.parse::<i64>().unwrap());
        let (last, done) = (it.next().unwrap(), it.next().unwrap());
        assert_eq!(
            number(
                &db,
                "shop",
                &format!("SELECT COUNT(*) FROM orders WHERE id <= {last} AND amount IS NULL")
            ),
            0,
            "every key up to the checkpoint is filled"
        );
        assert_eq!(
            number(
                &db,
                "shop",
                &format!("SELECT COUNT(*) FROM orders WHERE id > {last} AND amount IS NOT NULL")
            ),
            0,
            "no key after the checkpoint is"
        );
        assert_eq!(
            number(
                &db,
                "shop",
                &format!("SELECT COUNT(*) FROM orders WHERE id <= {last}")
            ),
            done
        );
        if round == 0 {
            child = past_gate(false);
        }
    }

    let ran = finish(past_gate(false));
    assert_eq!(ran.code, 0, "{ran}");
    assert!(ran.stderr.contains("resuming after"), "{ran}");
    assert_eq!(wrong_amounts(&db, "shop"), 0);
    assert_eq!(
        number(
            &db,
            "shop",
            "SELECT COUNT(*) FROM (SELECT id FROM update_log GROUP BY id HAVING COUNT(*) > 1) d"
        ),
        0,
        "no row was updated twice"
    );
    assert_eq!(
        number(&db, "shop", "SELECT COUNT(DISTINCT id) FROM update_log"),
        120_000
    );
}

/// A connection to the test server, for the tests' own transactions and query loops.
async fn connect(url: &str) -> mysql_async::Conn {
    let opts = mysql_async::OptsBuilder::from_opts(mysql_async::Opts::from_url(url).unwrap())
        .prefer_socket(false);
    mysql_async::Conn::new(opts).await.expect("test connects")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn add_column_behind_a_metadata_lock_never_stalls_the_foreground() {
    use mysql_async::prelude::Queryable;
    if skip() {
        return;
    }
    let db = MariaDbServer::start();
    let url = db.create_database("shop");
    seed(&db, "shop", 2_000);
    let p = plan_file(&plan(500, ""));

    // A transaction that read the table holds its metadata lock until it ends.
    let mut holder = connect(&url).await;
    holder.query_drop("START TRANSACTION").await.unwrap();
    holder
        .query_drop("SELECT COUNT(*) FROM orders")
        .await
        .unwrap();
    let holder_id = holder.id();
    tokio::time::sleep(Duration::from_millis(1500)).await;

    // The application: point reads in a loop, timing the slowest.
    let stop = Arc::new(AtomicBool::new(false));
    let worst_ms = Arc::new(AtomicU64::new(0));
    let reads = Arc::new(AtomicU64::new(0));
    let app = {
        let (stop, worst_ms, reads, url) =
            (stop.clone(), worst_ms.clone(), reads.clone(), url.clone());
        tokio::spawn(async move {
            let mut c = connect(&url).await;
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                i += 1;
                let t = Instant::now();
                let _: Option<i64> = c
                    .exec_first(
                        "SELECT amount_cents FROM orders WHERE id = ?",
                        (i % 2000 + 1,),
                    )
                    .await
                    .unwrap();
                worst_ms.fetch_max(t.elapsed().as_millis() as u64, Ordering::Relaxed);
                reads.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
    };

    let child = spawn_run(&p.path, &url, &[]);
    tokio::time::sleep(Duration::from_secs(6)).await;
    holder.query_drop("COMMIT").await.unwrap();
    let ran = tokio::task::spawn_blocking(move || finish(child))
        .await
        .unwrap();
    stop.store(true, Ordering::Relaxed);
    app.await.unwrap();
    let _ = holder.disconnect().await;

    assert_eq!(ran.code, 0, "{ran}");
    assert!(
        ran.stderr
            .contains(&format!("connection {holder_id} (from ")),
        "the blocker is named: {ran}"
    );
    let worst = worst_ms.load(Ordering::Relaxed);
    assert!(
        reads.load(Ordering::Relaxed) > 100,
        "the application kept reading"
    );
    assert!(
        worst < 1000 + 500,
        "a foreground read waited {worst} ms, more than lock_timeout (1 s) plus a margin: {ran}"
    );
    assert_eq!(wrong_amounts(&db, "shop"), 0);
    eprintln!("worst foreground read while ADD COLUMN waited: {worst} ms");
}

#[test]
fn server_restart_and_a_killed_connection_mid_backfill_are_survived() {
    if skip() {
        return;
    }
    let mut db = MariaDbServer::start();
    let url = db.create_database("shop");
    seed(&db, "shop", 150_000);
    let p = plan_file(&plan(1000, "").replace("pause_ms = 0", "pause_ms = 10"));
    let child = spawn_run(&p.path, &url, &[]);

    wait_for(
        &db,
        "shop",
        "SELECT rows_done FROM pacer.migrations",
        20_000,
        Duration::from_secs(60),
    );
    // A DBA kills pacer's connection (the one running the batches, which holds the claim).
    let id = db.sql("", "SELECT IS_USED_LOCK('pacer:shop.orders.amount')");
    db.sql("", &format!("KILL CONNECTION {id}"));
    let after_kill = number(&db, "shop", "SELECT rows_done FROM pacer.migrations");
    wait_for(
        &db,
        "shop",
        "SELECT rows_done FROM pacer.migrations",
        after_kill + 10_000,
        Duration::from_secs(60),
    );
    db.restart();
    let ran = finish(child);
    assert_eq!(ran.code, 0, "{ran}");
    assert!(ran.stderr.contains("reconnect"), "{ran}");
    assert_eq!(wrong_amounts(&db, "shop"), 0);
    assert_eq!(
        db.sql(
            "",
            "SELECT CONCAT(outcome, ' ', rows_done) FROM pacer.migrations"
        ),
        "done 150000"
    );
}

#[test]
fn a_composite_key_is_walked_exactly() {
    if skip() {
        return;
    }
    let db = MariaDbServer::start();
    let url = db.create_database("shop");
    db.sql(
        "shop",
        "CREATE TABLE items (tenant int NOT NULL, code varchar(20) NOT NULL, qty int NOT NULL, \
         PRIMARY KEY (tenant, code)) ENGINE=InnoDB;
         INSERT INTO items SELECT seq % 7, CONCAT('c', LPAD(seq, 6, '0')), seq FROM seq_1_to_20000;",
    );
    let p = plan_file(
        r#"table = "items"
[column]
name = "double_qty"
type = "bigint"
backfill = "qty * 2"
[backfill]
batch_size = 333
pause_ms = 0
"#,
    );
    let ran = run_pacer(&["run", "--headless"], &p.path, &url);
    assert_eq!(ran.code, 0, "{ran}");
    assert_eq!(
        number(
            &db,
            "shop",
            "SELECT COUNT(*) FROM items WHERE NOT (double_qty <=> qty * 2)"
        ),
        0
    );
    assert_eq!(
        number(&db, "", "SELECT rows_done FROM pacer.migrations"),
        20_000,
        "every key walked once"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_written_during_the_backfill_by_an_unaware_writer_end_up_right() {
    use mysql_async::prelude::Queryable;
    if skip() {
        return;
    }
    let db = MariaDbServer::start();
    let url = db.create_database("shop");
    seed(&db, "shop", 60_000);
    // The gate before cleanup keeps the sync triggers until the application is done: once
    // they are dropped, an application that does not know a NOT NULL column without a default
    // can no longer insert (that is what the gate is for).
    let p = plan_file(&format!(
        "{}\n[gates]\nbefore = [\"cleanup\"]\n",
        plan(500, "").replace("pause_ms = 0", "pause_ms = 5")
    ));
    let child = spawn_run(&p.path, &url, &[]);
    let socket = socket_of(child.id());
    wait_for(
        &db,
        "",
        "SELECT COUNT(*) FROM information_schema.TRIGGERS WHERE TRIGGER_NAME = 'pacer_sync_amount_ins'",
        1,
        Duration::from_secs(30),
    );

    // The old application: inserts and updates that never name the new column.
    let mut c = connect(&url).await;
    for n in 0..400u64 {
        c.exec_drop(
            "INSERT INTO orders (amount_cents, note) VALUES (?, 'new')",
            (n * 13 % 100_000,),
        )
        .await
        .unwrap();
        c.exec_drop(
            "UPDATE orders SET amount_cents = amount_cents + 1 WHERE id = ?",
            ((n * 149) % 60_000 + 1,),
        )
        .await
        .unwrap();
    }
    let _ = c.disconnect().await;
    let wait_socket = socket.clone();
    tokio::task::spawn_blocking(move || {
        wait_for_status(&wait_socket, "gate", Duration::from_secs(120))
    })
    .await
    .unwrap();
    let ran = ctl(&[
        "proceed",
        "--phase",
        "cleanup",
        "--socket",
        socket.to_str().unwrap(),
    ]);
    assert_eq!(ran.code, 0, "{ran}");
    let ran = tokio::task::spawn_blocking(move || finish(child))
        .await
        .unwrap();
    assert_eq!(ran.code, 0, "{ran}");
    assert_eq!(number(&db, "shop", "SELECT COUNT(*) FROM orders"), 60_400);
    assert_eq!(wrong_amounts(&db, "shop"), 0);
}
