//! The MySQL/MariaDB metric source against real, throwaway MariaDB servers: metadata-lock and
//! row-lock waits with the right blocker, and the figures (binlog bytes, threads running, the
//! application's writes, per table where the server counts them, the history list).

use std::time::{Duration, Instant};

use mysql_async::prelude::Queryable;

use crate::audit::Audit;
use crate::sampler::{DbSample, LockWait, MetricSource};
use crate::servers::mariadb::{MariaDbServer, Options};
use crate::target::mysql::MyTarget;
use crate::target::mysql::sampler::MySource;

const JOB: &str = "shop.t.c";

fn skip() -> bool {
    if crate::servers::mariadb::binaries_available() {
        return false;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "MariaDB server binaries are missing; .ci/run installs them"
    );
    eprintln!("skipped: MariaDB server binaries are not installed");
    true
}

/// A server with database `shop` holding table `t` (1,000 rows); returns it and its URL.
fn server_with_table(options: Options) -> (MariaDbServer, String) {
    let db = MariaDbServer::start_with(options);
    let url = db.create_database("shop");
    db.sql(
        "shop",
        "CREATE TABLE t (id bigint NOT NULL PRIMARY KEY, v int NOT NULL) ENGINE=InnoDB;
         INSERT INTO t SELECT seq, 0 FROM seq_1_to_1000;",
    );
    (db, url)
}

fn target(url: &str) -> MyTarget {
    MyTarget::resolve(Some(url), &|_| None, None).expect("the test URL resolves")
}

fn source(url: &str) -> MySource {
    MySource::new(
        target(url),
        JOB,
        ("shop".into(), "t".into()),
        Duration::from_secs(1),
        Audit::disabled(),
    )
    .with_state(("pacer".into(), "migrations".into()))
}

async fn connect(url: &str, name: &str) -> mysql_async::Conn {
    target(url).connect(name).await.expect("connects")
}

/// Samples until `seen` holds (or 10 s pass); the last sample.
async fn sample_until(src: &mut MySource, seen: impl Fn(&DbSample) -> bool) -> DbSample {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let s = src.sample().await;
        if seen(&s) || Instant::now() > deadline {
            return s;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn waits(s: &DbSample) -> Vec<LockWait> {
    s.lock_waits
        .as_ref()
        .map(|w| w.waits.clone())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_metadata_lock_wait_names_the_open_transaction_that_blocks_it() {
    if skip() {
        return;
    }
    // Each way the server can show metadata locks: the plugin (where the machine has it),
    // performance_schema, neither (open transactions named as candidates).
    let plugin = crate::servers::mariadb::metadata_lock_info_available();
    let views = [(plugin, false), (false, true), (false, false)];
    for (keep_plugin, performance_schema) in views.into_iter().skip(usize::from(!plugin)) {
        let (db, url) = server_with_table(Options {
            performance_schema,
            // MariaDB does not instrument metadata locks by default, even with it on.
            server_args: vec![
                "--performance-schema-instrument=wait/lock/metadata/sql/mdl=ON".into(),
            ],
            ..Options::default()
        });
        if plugin && !keep_plugin {
            db.sql("", "UNINSTALL SONAME 'metadata_lock_info'");
        }
        let granted_locks_seen = keep_plugin || performance_schema;
        // An application transaction that read the table and stays open: it holds the table's
        // shared metadata lock until it ends.
        let mut holder = connect(&url, "holder-app").await;
        let holder_id = i64::from(holder.id());
        holder
            .query_drop("START TRANSACTION; SELECT COUNT(*) FROM t")
            .await
            .unwrap();
        // pacer's ALTER waits behind it, and an application query queues behind the ALTER.
        let mut ddl = connect(&url, "pacer:shop.t.c").await;
        let ddl_id = i64::from(ddl.id());
        let ddl_wait = tokio::spawn(async move {
            ddl.query_drop("/* pacer:shop.t.c */ ALTER TABLE t ADD COLUMN c int")
                .await
        });
        tokio::time::sleep(Duration::from_millis(300)).await;
        let mut app = connect(&url, "app").await;
        let app_id = i64::from(app.id());
        let app_wait =
            tokio::spawn(async move { app.query_drop("SELECT v FROM t WHERE id = 1").await });

        let mut src = source(&url);
        let s = sample_until(&mut src, |s| waits(s).len() == 2).await;
        let lw = s.lock_waits.clone().expect("lock waits sampled");
        eprintln!("plugin {keep_plugin}, performance_schema {performance_schema}: {lw:#?}");
        assert_eq!(
            lw.waiting, 1,
            "pacer's own wait is listed, not counted: {lw:#?}"
        );
        assert!(lw.longest_s > 0.0 && lw.longest_s < 30.0, "{lw:#?}");

        let pacer = lw
            .waits
            .iter()
            .find(|w| w.pid == ddl_id)
            .expect("pacer's wait");
        assert!(pacer.pacer, "{pacer:?}");
        assert!(pacer.wait_s >= 0.2, "{pacer:?}");
        let blocker = pacer
            .blockers
            .iter()
            .find(|b| b.pid == holder_id)
            .unwrap_or_else(|| panic!("the open transaction blocks pacer: {pacer:#?}"));
        assert!(!blocker.pacer);
        assert_eq!(blocker.user, "root");
        assert!(blocker.state.starts_with("Sleep"), "{blocker:?}");
        assert_eq!(
            blocker.state.contains("may hold the table's metadata lock"),
            !granted_locks_seen,
            "a candidate is said to be one: {blocker:?}"
        );
        assert!(blocker.xact_age_s.is_some_and(|a| a > 0.2), "{blocker:?}");
        assert!(
            !pacer.blockers.iter().any(|b| b.pid == ddl_id),
            "a waiter never blocks itself"
        );
        assert!(lw.blocking_pacer().iter().any(|b| b.pid == holder_id));

        let queued = lw
            .waits
            .iter()
            .find(|w| w.pid == app_id)
            .expect("app's wait");
        assert!(!queued.pacer);
        assert!(
            queued.blockers.iter().any(|b| b.pid == holder_id),
            "{queued:#?}"
        );
        if granted_locks_seen {
            // Granted locks are visible: the ALTER holds the table's upgradable lock, so the
            // query queued behind it names it (a soft block), flagged as pacer's.
            let alter = queued
                .blockers
                .iter()
                .find(|b| b.pid == ddl_id)
                .unwrap_or_else(|| panic!("the ALTER among the app's blockers: {queued:#?}"));
            assert!(alter.pacer, "{alter:?}");
        }

        holder.query_drop("COMMIT").await.unwrap();
        ddl_wait.await.unwrap().unwrap();
        app_wait.await.unwrap().unwrap();
        let after = src.sample().await;
        assert_eq!(after.lock_waits.map(|w| w.waits.len()), Ok(0));
        for c in [holder] {
            c.disconnect().await.unwrap();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_row_lock_wait_names_its_holder_and_pacer_s_claimed_connection_is_flagged() {
    if skip() {
        return;
    }
    let (_db, url) = server_with_table(Options::default());
    // An application transaction holding row 1, idle.
    let mut holder = connect(&url, "holder-app").await;
    let holder_id = i64::from(holder.id());
    holder
        .query_drop("START TRANSACTION; UPDATE t SET v = 1 WHERE id = 1")
        .await
        .unwrap();
    // pacer's main connection (it holds the migration's claim) holding row 2 between
    // statements: the process list shows no statement for it.
    let mut main = connect(&url, "pacer:shop.t.c").await;
    let main_id = i64::from(main.id());
    main.query_drop(
        "SELECT GET_LOCK('pacer:shop.t.c', 0); START TRANSACTION; \
         /* pacer:shop.t.c */ UPDATE t SET v = 2 WHERE id = 2",
    )
    .await
    .unwrap();
    let mut waiter_on_app = connect(&url, "app-1").await;
    let app1 = i64::from(waiter_on_app.id());
    let w1 = tokio::spawn(async move {
        waiter_on_app
            .query_drop(
                "SET SESSION innodb_lock_wait_timeout = 20; UPDATE t SET v = 3 WHERE id = 1",
            )
            .await
    });
    let mut waiter_on_pacer = connect(&url, "app-2").await;
    let app2 = i64::from(waiter_on_pacer.id());
    let w2 = tokio::spawn(async move {
        waiter_on_pacer
            .query_drop(
                "SET SESSION innodb_lock_wait_timeout = 20; UPDATE t SET v = 4 WHERE id = 2",
            )
            .await
    });

    let mut src = source(&url);
    let s = sample_until(&mut src, |s| waits(s).len() == 2).await;
    let lw = s.lock_waits.clone().expect("lock waits sampled");
    eprintln!("{lw:#?}");
    assert_eq!(lw.waiting, 2, "{lw:#?}");
    let on_app = lw
        .waits
        .iter()
        .find(|w| w.pid == app1)
        .expect("app-1 waits");
    assert_eq!(on_app.blockers.len(), 1, "{on_app:#?}");
    let b = &on_app.blockers[0];
    assert_eq!(b.pid, holder_id);
    assert!(!b.pacer);
    assert_eq!(b.state, "idle in transaction, holds the row lock");
    assert!(b.xact_age_s.is_some_and(|a| a > 0.0), "{b:?}");
    assert!(on_app.wait_s > 0.0, "{on_app:?}");

    let on_pacer = lw
        .waits
        .iter()
        .find(|w| w.pid == app2)
        .expect("app-2 waits");
    assert_eq!(on_pacer.blockers.len(), 1, "{on_pacer:#?}");
    assert_eq!(on_pacer.blockers[0].pid, main_id);
    assert!(
        on_pacer.blockers[0].pacer,
        "pacer's claimed connection, idle between statements: {on_pacer:#?}"
    );

    holder.query_drop("ROLLBACK").await.unwrap();
    main.query_drop("ROLLBACK").await.unwrap();
    w1.await.unwrap().unwrap();
    w2.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_figures_are_binlog_bytes_threads_running_history_and_the_application_s_writes() {
    if skip() {
        return;
    }
    let (db, url) = server_with_table(Options::default());
    let mut src = source(&url);
    let first = src.sample().await;
    eprintln!("{first:#?}");
    assert_eq!(
        first.active_sessions,
        Ok(0),
        "the sampler does not count itself"
    );
    let t0 = first.table.clone().expect("table figures");
    assert!(t0.server_wide, "no userstat, no performance_schema: {t0:?}");
    assert_eq!(
        t0.pacer_writes,
        Some(0),
        "no state table yet: nothing of pacer's"
    );
    let b0 = first.redo_bytes.clone().expect("binlog bytes");
    assert!(first.table_bytes.is_ok());

    // Three sleeping sessions run a statement: three threads running.
    let mut sleepers = Vec::new();
    for _ in 0..3 {
        let mut c = connect(&url, "sleeper").await;
        sleepers.push(tokio::spawn(async move {
            c.query_drop("SELECT SLEEP(2)").await
        }));
    }
    let s = sample_until(&mut src, |s| s.active_sessions == Ok(3)).await;
    assert_eq!(s.active_sessions, Ok(3), "{s:?}");

    db.sql(
        "shop",
        "UPDATE t SET v = v + 1 WHERE id <= 100; UPDATE t SET v = v WHERE id <= 50; \
         INSERT INTO t SELECT 1000 + seq, 0 FROM seq_1_to_20; DELETE FROM t WHERE id > 1010;",
    );
    let s = src.sample().await;
    let t1 = s.table.clone().expect("table figures");
    let b1 = s.redo_bytes.clone().expect("binlog bytes");
    assert!(b1 > b0, "the writes went to the binlog: {b0} → {b1}");
    assert_eq!(
        (
            t1.n_tup_ins - t0.n_tup_ins,
            t1.n_tup_upd - t0.n_tup_upd,
            t1.n_tup_del - t0.n_tup_del
        ),
        (20, 100, 10),
        "rows written; an UPDATE that changes nothing counts nothing"
    );
    for s in sleepers {
        s.await.unwrap().unwrap();
    }

    // A binlog rotation does not move the counter back.
    db.sql("", "FLUSH BINARY LOGS");
    let b2 = src.sample().await.redo_bytes.expect("binlog bytes");
    assert!(b2 >= b1, "{b1} → {b2}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_performance_schema_the_writes_are_the_table_s_own() {
    if skip() {
        return;
    }
    let (db, url) = server_with_table(Options {
        performance_schema: true,
        ..Options::default()
    });
    db.sql("shop", "CREATE TABLE other (id int PRIMARY KEY)");
    let mut src = source(&url);
    let t0 = src.sample().await.table.expect("table figures");
    assert!(!t0.server_wide, "{t0:?}");
    db.sql(
        "shop",
        "UPDATE t SET v = v + 1 WHERE id <= 30; INSERT INTO other SELECT seq FROM seq_1_to_500;",
    );
    let t1 = src.sample().await.table.expect("table figures");
    assert_eq!(
        t1.n_tup_ins + t1.n_tup_upd + t1.n_tup_del - (t0.n_tup_ins + t0.n_tup_upd + t0.n_tup_del),
        30,
        "only the table's own rows: {t0:?} → {t1:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_userstat_the_writes_are_the_table_s_own() {
    if skip() {
        return;
    }
    let (db, url) = server_with_table(Options {
        server_args: vec!["--userstat=ON".into()],
        ..Options::default()
    });
    db.sql("shop", "CREATE TABLE other (id int PRIMARY KEY)");
    let mut src = source(&url);
    let t0 = src.sample().await.table.expect("table figures");
    assert!(!t0.server_wide, "{t0:?}");
    db.sql(
        "shop",
        "UPDATE t SET v = v + 1 WHERE id <= 30; DELETE FROM t WHERE id = 1000; \
         INSERT INTO other SELECT seq FROM seq_1_to_500;",
    );
    let t1 = src.sample().await.table.expect("table figures");
    assert_eq!(
        t1.n_tup_upd - t0.n_tup_upd,
        31,
        "rows changed, all kinds: {t0:?} → {t1:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_binary_log_the_binlog_rate_is_a_gap_that_says_why() {
    if skip() {
        return;
    }
    let (_db, url) = server_with_table(Options {
        server_args: vec!["--skip-log-bin".into()],
        ..Options::default()
    });
    let s = source(&url).sample().await;
    let why = s.redo_bytes.clone().unwrap_err();
    assert!(
        why.contains("the binary log is off on this server (log_bin=OFF)"),
        "{why}"
    );
    assert!(
        s.lock_waits.is_ok() && s.table.is_ok() && s.active_sessions.is_ok(),
        "{s:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_sampling_round_is_cheap() {
    if skip() {
        return;
    }
    let (_db, url) = server_with_table(Options::default());
    let mut src = source(&url);
    src.sample().await; // connects and looks at the server
    let mut ms = Vec::new();
    for _ in 0..20 {
        let started = Instant::now();
        let s = src.sample().await;
        ms.push(started.elapsed().as_secs_f64() * 1000.0);
        assert!(s.table.is_ok() && s.lock_waits.is_ok(), "{s:?}");
    }
    let avg = ms.iter().sum::<f64>() / ms.len() as f64;
    let max = ms.iter().copied().fold(0.0, f64::max);
    eprintln!("MariaDB sampling round: {avg:.2} ms avg, {max:.2} ms max");
    assert!(avg < 100.0, "{ms:?}");
}
