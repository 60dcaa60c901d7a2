//! What must hold when things go wrong mid-migration: kills, lock queues, restarts, writers.

mod common;

use std::time::{Duration, Instant};

use common::*;
use pacer::servers::postgres::PgServer;
use tokio_postgres::NoTls;

async fn client(url: &str) -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(url, NoTls)
        .await
        .expect("test connects");
    tokio::spawn(async move {
        let _ = conn.await;
    });
    client
}

/// An AFTER UPDATE trigger that logs every change of a row's amount, so a range applied twice
/// shows. It reads the column through to_jsonb so it can exist before the column does.
fn log_updates(pg: &PgServer, db: &str) {
    pg.psql(
        db,
        "CREATE TABLE update_log (id bigint NOT NULL);
         CREATE FUNCTION log_update() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN IF to_jsonb(NEW)->'amount' IS DISTINCT FROM to_jsonb(OLD)->'amount' THEN INSERT INTO update_log VALUES (NEW.id); END IF; RETURN NEW; END $$;",
    );
}

fn attach_update_log(pg: &PgServer, db: &str) {
    pg.psql(
        db,
        "CREATE TRIGGER zz_log_update AFTER UPDATE ON orders FOR EACH ROW EXECUTE FUNCTION log_update();",
    );
}

#[test]
fn resumes_after_kill_9_without_skipping_or_repeating_a_batch() {
    let pg = PgServer::start();
    let url = pg.create_database("shop");
    seed_orders(&pg, "shop", 150_000);
    log_updates(&pg, "shop");
    attach_update_log(&pg, "shop");
    let plan = plan_file(&orders_plan(1000, "pause_ms = 10", ""));

    for round in 0..2 {
        let child = spawn_run(&plan.path, &url, &[]);
        let threshold = 30_000 + round * 40_000;
        wait_for_number(
            &pg,
            "shop",
            "SELECT rows_done FROM pacer.migrations",
            threshold,
            Duration::from_secs(60),
        );
        let mut child = child;
        child.kill().expect("kill -9"); // SIGKILL
        let _ = child.wait();
        // A batch already sent (its BEGIN, statement and COMMIT go out together) still commits,
        // with its checkpoint; wait until pacer's sessions have ended on the server.
        pg.wait_until(
            "shop",
            "SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE 'pacer%'",
            "0",
            Duration::from_secs(30),
        );
        // The checkpoint and the data agree exactly: every key up to it filled, none after.
        let (last, done): (i64, i64) = {
            let s = pg.psql(
                "shop",
                "SELECT last_key[1] || ' ' || rows_done FROM pacer.migrations",
            );
            let mut it = s.split(' ').map(|v| v.parse::<i64>().unwrap());
            (it.next().unwrap(), it.next().unwrap())
        };
        assert_eq!(
            pg.psql(
                "shop",
                &format!("SELECT count(*) FROM orders WHERE id <= {last} AND amount IS NULL")
            ),
            "0"
        );
        assert_eq!(
            pg.psql(
                "shop",
                &format!("SELECT count(*) FROM orders WHERE id > {last} AND amount IS NOT NULL")
            ),
            "0"
        );
        assert_eq!(
            pg.psql(
                "shop",
                &format!("SELECT count(*) FROM orders WHERE id <= {last}")
            ),
            done.to_string()
        );
    }

    let ran = finish(spawn_run(&plan.path, &url, &[]));
    assert_eq!(ran.code, 0, "{ran}");
    assert!(ran.stderr.contains("resuming after"), "{ran}");
    assert!(
        ran.stderr.contains("add_column: skipped"),
        "finished phases are not run again: {ran}"
    );
    assert_eq!(wrong_amounts(&pg, "shop"), 0);
    assert_eq!(
        pg.psql(
            "shop",
            "SELECT count(*) FROM (SELECT id FROM update_log GROUP BY id HAVING count(*) > 1) d"
        ),
        "0",
        "no row was updated twice"
    );
    assert_eq!(
        pg.psql("shop", "SELECT count(DISTINCT id) FROM update_log"),
        "150000"
    );
    assert_eq!(
        pg.psql(
            "shop",
            "SELECT rows_done || ' ' || outcome FROM pacer.migrations"
        ),
        "150000 done"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn add_column_behind_a_long_transaction_never_stalls_the_foreground() {
    let pg = PgServer::start();
    let url = pg.create_database("shop");
    seed_orders(&pg, "shop", 10_000);
    let plan = plan_file(
        &orders_plan(5000, "", "").replace("lock_timeout = \"2s\"", "lock_timeout = \"300ms\""),
    );

    // A long transaction holds ACCESS SHARE on orders: ADD COLUMN cannot get its lock. It is
    // older than lock_timeout when pacer looks, so pacer does not even queue behind it (a
    // queued ALTER would hold up every query on the table for up to lock_timeout).
    let blocker = client(&url).await;
    blocker
        .batch_execute("BEGIN; SELECT count(*) FROM orders")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;
    let blocker_pid: i32 = blocker
        .query_one("SELECT pg_backend_pid()", &[])
        .await
        .unwrap()
        .get(0);

    let child = spawn_run(&plan.path, &url, &[]);

    // Meanwhile the application keeps reading: no query may wait longer than lock_timeout + margin.
    let app = client(&url).await;
    let start = Instant::now();
    let mut worst = Duration::ZERO;
    let mut queries = 0;
    while start.elapsed() < Duration::from_secs(4) {
        let t = Instant::now();
        app.query_one(
            "SELECT amount_cents FROM orders WHERE id = $1",
            &[&(1 + queries % 9000i64)],
        )
        .await
        .unwrap();
        worst = worst.max(t.elapsed());
        queries += 1;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(
        worst < Duration::from_millis(300),
        "a foreground query waited {worst:?}: the ALTER queued behind the old transaction"
    );
    assert!(queries > 100);
    blocker.batch_execute("COMMIT").await.unwrap();

    let ran = tokio::task::spawn_blocking(move || finish(child))
        .await
        .unwrap();
    assert_eq!(ran.code, 0, "{ran}");
    assert!(
        ran.stderr
            .contains("not attempted while a session holds the table (attempt 1/30)"),
        "{ran}"
    );
    assert!(
        ran.stderr
            .contains(&format!("blocked by pid {blocker_pid}")),
        "the event names the blocking session: {ran}"
    );
    assert_eq!(wrong_amounts(&pg, "shop"), 0);
}

#[test]
fn invalid_index_left_by_an_earlier_attempt_is_dropped_and_rebuilt() {
    let pg = PgServer::start();
    let url = pg.create_database("shop");
    seed_orders(&pg, "shop", 20_000);
    // A failed concurrent build leaves an INVALID index under the name pacer will use.
    pg.psql("shop", "UPDATE orders SET note = 'same' WHERE id <= 2");
    assert!(
        pg.try_psql(
            "shop",
            "CREATE UNIQUE INDEX CONCURRENTLY orders_amount_idx ON orders (note)"
        )
        .is_err()
    );
    assert_eq!(
        pg.psql(
            "shop",
            "SELECT indisvalid FROM pg_index WHERE indexrelid = 'orders_amount_idx'::regclass"
        ),
        "f"
    );
    let plan = plan_file(&orders_plan(5000, "", ""));
    let ran = run_pacer(&["run", "--headless"], &plan.path, &url);
    assert_eq!(ran.code, 0, "{ran}");
    assert!(ran.stderr.contains("found INVALID index"), "{ran}");
    assert_eq!(
        pg.psql(
            "shop",
            "SELECT indisvalid || ' ' || pg_get_indexdef(indexrelid) FROM pg_index WHERE indexrelid = 'orders_amount_idx'::regclass"
        ),
        "true CREATE INDEX orders_amount_idx ON public.orders USING btree (amount)"
    );
}

#[test]
fn server_restart_mid_backfill_is_survived_and_the_data_is_exact() {
    let mut pg = PgServer::start();
    let url = pg.create_database("shop");
    seed_orders(&pg, "shop", 100_000);
    let plan = plan_file(&orders_plan(1000, "pause_ms = 10", ""));
    let child = spawn_run(&plan.path, &url, &[]);
    wait_for_number(
        &pg,
        "shop",
        "SELECT rows_done FROM pacer.migrations",
        20_000,
        Duration::from_secs(60),
    );
    pg.restart();
    let ran = finish(child);
    assert_eq!(ran.code, 0, "{ran}");
    assert!(ran.stderr.contains("connection lost"), "{ran}");
    assert!(ran.stderr.contains("reconnected"), "{ran}");
    assert_eq!(wrong_amounts(&pg, "shop"), 0);
    assert_eq!(
        pg.psql(
            "shop",
            "SELECT rows_done || ' ' || outcome FROM pacer.migrations"
        ),
        "100000 done"
    );
}

#[test]
fn backend_terminated_by_a_dba_mid_backfill_is_survived() {
    let pg = PgServer::start();
    let url = pg.create_database("shop");
    seed_orders(&pg, "shop", 100_000);
    let plan = plan_file(&orders_plan(1000, "pause_ms = 10", ""));
    let child = spawn_run(&plan.path, &url, &[]);
    wait_for_number(
        &pg,
        "shop",
        "SELECT rows_done FROM pacer.migrations",
        20_000,
        Duration::from_secs(60),
    );
    assert_eq!(
        pg.psql(
            "shop",
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name LIKE 'pacer:%'"
        ),
        "1"
    );
    let ran = finish(child);
    assert_eq!(ran.code, 0, "{ran}");
    assert!(ran.stderr.contains("connection lost"), "{ran}");
    assert_eq!(wrong_amounts(&pg, "shop"), 0);
    assert_eq!(
        pg.psql("shop", "SELECT rows_done FROM pacer.migrations"),
        "100000"
    );
}

#[test]
fn composite_text_key_is_walked_exactly() {
    let pg = PgServer::start();
    let url = pg.create_database("shop");
    pg.psql(
        "shop",
        "CREATE TABLE \"Line Items\" (tenant int NOT NULL, \"Code\" text NOT NULL, qty int NOT NULL, \
         PRIMARY KEY (tenant, \"Code\"));
         INSERT INTO \"Line Items\" SELECT t, 'item-' || c || ' x''y', (t * c) % 97 \
         FROM generate_series(1, 30) t, generate_series(1, 1000) c;",
    );
    let plan = plan_file(
        r#"table = 'public."Line Items"'
[column]
name = "Doubled"
type = "bigint"
backfill = "qty * 2"
not_null = true
[backfill]
batch_size = 777
"#,
    );
    let ran = run_pacer(&["run", "--headless"], &plan.path, &url);
    assert_eq!(ran.code, 0, "{ran}");
    assert_eq!(
        pg.psql(
            "shop",
            "SELECT count(*) FROM \"Line Items\" WHERE \"Doubled\" IS DISTINCT FROM qty * 2"
        ),
        "0"
    );
    assert_eq!(
        pg.psql("shop", "SELECT rows_done FROM pacer.migrations"),
        "30000"
    );
    assert!(
        ran.stderr.contains("checkpoint (30, item-999 x'y)"),
        "{ran}"
    );
}

#[test]
fn rows_written_during_the_backfill_by_an_unaware_application_end_up_correct() {
    let pg = PgServer::start();
    let url = pg.create_database("shop");
    seed_orders(&pg, "shop", 60_000);
    // The gate before cleanup keeps the sync triggers in place until the application is done:
    // once they are dropped, an application that does not know a NOT NULL column without a
    // default can no longer insert (that is what the gate is for).
    let mut text = orders_plan(1000, "pause_ms = 5", "");
    text.push_str("\n[gates]\nbefore = [\"cleanup\"]\n");
    let plan = plan_file(&text);
    let mut child = spawn_run(&plan.path, &url, &[]);
    let socket = socket_of(child.id());
    wait_for_number(
        &pg,
        "shop",
        "SELECT count(*) FROM pg_trigger WHERE tgname = 'pacer_sync_amount_upd'",
        1,
        Duration::from_secs(30),
    );
    // The application does not know the column: it inserts and updates without it.
    let writer_url = url.clone();
    let writer = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let app = client(&writer_url).await;
            for i in 0..400i64 {
                app.execute(
                    "INSERT INTO orders (amount_cents, note) VALUES ($1, 'new')",
                    &[&(i * 13)],
                )
                .await
                .unwrap();
                app.execute(
                    "UPDATE orders SET amount_cents = amount_cents + 1 WHERE id = $1",
                    &[&(1 + (i * 149) % 60_000)],
                )
                .await
                .unwrap();
            }
        });
    });
    writer.join().unwrap();
    wait_for_status(&socket, "gate", Duration::from_secs(120));
    let proceed = ctl(&[
        "proceed",
        "--phase",
        "cleanup",
        "--socket",
        socket.to_str().unwrap(),
    ]);
    if proceed.code != 0 {
        let _ = child.kill();
        panic!("proceed refused: {proceed}\n{}", finish(child));
    }
    let ran = finish(child);
    assert_eq!(ran.code, 0, "{ran}");
    assert_eq!(pg.psql("shop", "SELECT count(*) FROM orders"), "60400");
    assert_eq!(wrong_amounts(&pg, "shop"), 0);
}

#[test]
fn a_second_runner_of_the_same_migration_is_refused() {
    let pg = PgServer::start();
    let url = pg.create_database("shop");
    seed_orders(&pg, "shop", 100_000);
    let plan = plan_file(&orders_plan(1000, "pause_ms = 40", ""));
    let first = spawn_run(&plan.path, &url, &[]);
    wait_for_number(
        &pg,
        "shop",
        "SELECT rows_done FROM pacer.migrations",
        5_000,
        Duration::from_secs(60),
    );
    // On the same machine: the running one's socket is found first.
    let second = run_pacer(&["run", "--headless"], &plan.path, &url);
    assert_eq!(second.code, 2, "{second}");
    assert!(second.stderr.contains("is already running"), "{second}");
    // From elsewhere (another socket directory, as from another machine): the database's
    // advisory lock refuses it.
    let elsewhere = tempfile::tempdir().unwrap();
    let second = Ran::from(
        pacer()
            .env("PACER_SOCKET_DIR", elsewhere.path())
            .args(["run", "--headless"])
            .arg(&plan.path)
            .arg("--target")
            .arg(&url)
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap(),
    );
    assert_eq!(second.code, 2, "{second}");
    assert!(second.stderr.contains("already being run by"), "{second}");
    let ran = finish(first);
    assert_eq!(ran.code, 0, "{ran}");
    assert_eq!(wrong_amounts(&pg, "shop"), 0);
}

/// Has autovacuum start on `orders` and crawl (cost limit 1 with 100 ms naps: a page or so
/// every 100 ms), so that it holds its lock on the table for tens of seconds; returns its pid
/// once it holds that lock.
fn crawling_autovacuum(pg: &PgServer, db: &str) -> i32 {
    pg.psql("postgres", "ALTER SYSTEM SET autovacuum_naptime = '1s'");
    pg.psql("postgres", "SELECT pg_reload_conf()");
    pg.psql(
        db,
        "ALTER TABLE orders SET (autovacuum_vacuum_threshold = 0, \
         autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_cost_delay = 100, \
         autovacuum_vacuum_cost_limit = 1)",
    );
    pg.psql(db, "UPDATE orders SET note = note || '.' WHERE id % 2 = 0");
    let started = Instant::now();
    loop {
        let pid = pg.psql(
            db,
            "SELECT a.pid FROM pg_stat_activity a JOIN pg_locks l ON l.pid = a.pid \
             WHERE a.backend_type = 'autovacuum worker' AND l.locktype = 'relation' \
             AND l.relation = 'orders'::regclass AND l.granted LIMIT 1",
        );
        if let Ok(pid) = pid.parse() {
            return pid;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no autovacuum started on orders within 60 s"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn alive(pg: &PgServer, pid: i32) -> bool {
    pg.psql(
        "postgres",
        &format!("SELECT count(*) FROM pg_stat_activity WHERE pid = {pid}"),
    ) == "1"
}

/// A DDL step due while an ordinary autovacuum holds the table: by default pacer cancels the
/// autovacuum (as PostgreSQL would once the DDL had waited deadlock_timeout, with the
/// table's queries queued behind it) and runs the step at once; with `cancel_autovacuum =
/// false` it leaves the autovacuum alone and does not send the step.
#[test]
fn an_autovacuum_holding_the_table_is_cancelled_for_a_ddl_step_unless_the_plan_says_wait() {
    let pg = PgServer::start();
    let url = pg.create_database("shop");
    seed_orders(&pg, "shop", 20_000);
    let autovacuum = crawling_autovacuum(&pg, "shop");

    let waiting = plan_file(&format!(
        "{}\n[postgres]\ncancel_autovacuum = false\n",
        orders_plan(5000, "", "retry_max_delay = \"200ms\"")
            .replace("ddl_retries = 30", "ddl_retries = 2")
    ));
    let ran = run_pacer(&["run", "--headless"], &waiting.path, &url);
    assert_ne!(ran.code, 0, "{ran}");
    assert!(ran.stderr.contains("cancel_autovacuum = false"), "{ran}");
    assert!(
        ran.stderr.contains("autovacuum worker"),
        "the blocker is named: {ran}"
    );
    assert!(alive(&pg, autovacuum), "pacer left the autovacuum alone");
    assert_eq!(
        pg.psql(
            "shop",
            "SELECT count(*) FROM pg_attribute WHERE attrelid = 'orders'::regclass AND attname = 'amount'"
        ),
        "0",
        "no step was sent"
    );

    let plan = plan_file(&orders_plan(5000, "", ""));
    let started = Instant::now();
    let ran = run_pacer(&["run", "--headless"], &plan.path, &url);
    assert_eq!(ran.code, 0, "{ran}");
    assert!(
        ran.stderr.contains(&format!(
            "add column: done — cancelled autovacuum on \"public\".\"orders\" first (pid {autovacuum} (autovacuum:"
        )),
        "{ran}"
    );
    assert!(!alive(&pg, autovacuum), "the autovacuum was cancelled");
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "the run did not wait for the autovacuum: {:?}",
        started.elapsed()
    );
    assert_eq!(wrong_amounts(&pg, "shop"), 0);
}
