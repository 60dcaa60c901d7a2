//! Health throttling against a real PostgreSQL with a real streaming replica.

mod common;

use std::time::{Duration, Instant};

use common::*;
use pacer::servers::postgres::PgServer;

fn rows_done(pg: &PgServer) -> i64 {
    pg.psql("shop", "SELECT rows_done FROM pacer.migrations")
        .parse()
        .unwrap()
}

#[test]
fn a_replica_whose_replay_is_paused_throttles_the_backfill_until_it_catches_up() {
    let pg = PgServer::start();
    let url = pg.create_database("shop");
    seed_orders(&pg, "shop", 300_000);
    let replica = pg.start_replica();
    replica.psql(
        "postgres",
        "ALTER SYSTEM SET wal_receiver_status_interval = '1s'",
    );
    replica.psql("postgres", "SELECT pg_reload_conf()");
    pg.wait_for_replica(&replica);

    let plan = plan_file(&orders_plan(
        1000,
        "pause_ms = 20\nadaptive = false",
        "\n[throttle]\nmax_replication_lag = \"1s\"\nlag_grace = \"3s\"\nresume_after = \"1s\"",
    ));
    let mut child = spawn_run(&plan.path, &url, &["--json", "--sample-interval", "250ms"]);
    let rx = events(&mut child);
    wait_for_number(
        &pg,
        "shop",
        "SELECT rows_done FROM pacer.migrations",
        10_000,
        Duration::from_secs(60),
    );

    // Replay stops: pacer waits at a batch boundary within two sample intervals of the lag
    // passing 1 s (in fact sooner: the forecast sees the replay stall; 0.3–0.6 s measured),
    // with 1 s to spare for a loaded machine.
    let paused_at = Instant::now();
    replica.pause_replay();
    let (throttled_at, e) = wait_event(&rx, "throttled", Duration::from_secs(15));
    let reason = e["reasons"][0].to_string();
    eprintln!(
        "throttled after {:?}: {reason}",
        throttled_at.duration_since(paused_at)
    );
    assert!(reason.contains("replication lag"), "{e}");
    assert!(
        throttled_at.duration_since(paused_at)
            < Duration::from_secs(1) + Duration::from_millis(2 * 250) + Duration::from_secs(1),
        "throttled {:?} after the replay paused",
        throttled_at.duration_since(paused_at)
    );
    std::thread::sleep(Duration::from_millis(600)); // a batch in flight may finish
    let held = rows_done(&pg);
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(rows_done(&pg), held, "no batch while throttled");

    // Replay resumes: the lag clears, and after resume_after pacer goes on by itself.
    replica.resume_replay();
    wait_event(&rx, "unthrottled", Duration::from_secs(30));
    let ran = finish(child);
    assert_eq!(ran.code, 0, "{ran}");
    assert_eq!(wrong_amounts(&pg, "shop"), 0);
}

#[test]
fn a_throttle_file_and_a_throttle_query_pause_and_release_the_backfill() {
    let pg = PgServer::start();
    let url = pg.create_database("shop");
    seed_orders(&pg, "shop", 200_000);
    pg.psql(
        "shop",
        "CREATE TABLE ops (busy int NOT NULL); INSERT INTO ops VALUES (0);",
    );
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("throttle");
    let plan = plan_file(&orders_plan(
        1000,
        "pause_ms = 20\nadaptive = false",
        &format!(
            "\n[throttle]\nthrottle_file = \"{}\"\nthrottle_query = \"SELECT busy FROM ops\"\nresume_after = \"500ms\"",
            file.display()
        ),
    ));
    let mut child = spawn_run(&plan.path, &url, &["--json"]);
    let rx = events(&mut child);
    wait_for_number(
        &pg,
        "shop",
        "SELECT rows_done FROM pacer.migrations",
        5_000,
        Duration::from_secs(60),
    );

    std::fs::write(&file, "").unwrap();
    let (_, e) = wait_event(&rx, "throttled", Duration::from_secs(5));
    assert!(e["reasons"].to_string().contains("throttle_file"), "{e}");
    std::thread::sleep(Duration::from_millis(500));
    let held = rows_done(&pg);
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(rows_done(&pg), held, "no batch while the file exists");
    std::fs::remove_file(&file).unwrap();
    wait_event(&rx, "unthrottled", Duration::from_secs(10));

    pg.psql("shop", "UPDATE ops SET busy = 3");
    let (_, e) = wait_event(&rx, "throttled", Duration::from_secs(5));
    assert!(e["reasons"].to_string().contains("throttle_query"), "{e}");
    pg.psql("shop", "UPDATE ops SET busy = 0");
    wait_event(&rx, "unthrottled", Duration::from_secs(10));

    let ran = finish(child);
    assert_eq!(ran.code, 0, "{ran}");
    assert_eq!(wrong_amounts(&pg, "shop"), 0);
}
