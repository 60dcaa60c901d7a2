//! The foreground guard against a real PostgreSQL: the probe's baseline and impact are read, a
//! foreground that slows makes pacer slow down and then recover, a probe that cannot answer
//! holds the backfill (fail closed), and the operator can turn the guard off live.

mod common;

use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use common::*;
use pacer::servers::postgres::PgServer;

type Events = Receiver<(Instant, serde_json::Value)>;

/// Waits for the first event that `want` accepts (skipping the others), or panics.
fn wait_for(
    rx: &Events,
    what: &str,
    timeout: Duration,
    want: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok((_, e)) if want(&e) => return e,
            Ok((_, e)) if e["event"] != "batch_done" && e["event"] != "batch_size_changed" => {
                eprintln!("(waiting for {what}) {e}");
            }
            Ok((_, e)) if e["event"] == "failed" => {
                panic!("the run failed waiting for {what}: {e}")
            }
            Ok(_) => {}
            Err(_) => panic!("no {what} within {timeout:?}"),
        }
    }
}

/// pacer's heartbeat table made by the test beforehand (pacer creates it IF NOT EXISTS, so
/// this one is used), with a trigger that makes every probe write sleep `ops.slow.ms`.
fn slowable_heartbeat(pg: &PgServer, db: &str) {
    pg.psql(
        db,
        "CREATE SCHEMA IF NOT EXISTS pacer;
         CREATE TABLE pacer.pacer_heartbeat (job text PRIMARY KEY, seq bigint NOT NULL, ts timestamptz NOT NULL);
         CREATE SCHEMA ops; CREATE TABLE ops.slow (ms int NOT NULL); INSERT INTO ops.slow VALUES (0);
         CREATE FUNCTION ops.slow_probe() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN PERFORM pg_sleep(ms / 1000.0) FROM ops.slow WHERE ms > 0; RETURN NEW; END $$;
         CREATE TRIGGER slow_probe BEFORE UPDATE ON pacer.pacer_heartbeat
         FOR EACH ROW EXECUTE FUNCTION ops.slow_probe();",
    );
}

/// The bound is absolute, 50 ms: above what the probe takes on a busy test machine (probes of
/// 20–40 ms were seen there now and then; a multiple of a sub-millisecond baseline, or a bound
/// those cross more than 1 % of the time, would make the recovery depend on the machine's
/// other load), far below what the injected sleep makes of it.
fn plan() -> PlanFile {
    plan_file(&orders_plan(
        1000,
        "pause_ms = 40\nadaptive = false",
        "\n[throttle]\nmax_foreground_impact = \"50ms\"",
    ))
}

#[test]
fn a_foreground_that_slows_makes_pacer_slow_down_and_then_recover() {
    let pg = PgServer::start();
    let url = pg.create_database("shop");
    seed_orders(&pg, "shop", 600_000);
    slowable_heartbeat(&pg, "shop");
    let plan = plan();
    let mut child = spawn_run(&plan.path, &url, &["--json"]);
    let rx = events(&mut child);

    // The baseline is measured before the first batch, while pacer waits.
    let (_, baseline) = wait_event(&rx, "foreground_baseline", Duration::from_secs(60));
    let p99 = baseline["p99_ms"].as_f64().unwrap();
    assert!(p99 > 0.0 && p99 < 500.0, "{baseline}");
    assert!(baseline["probes"].as_u64().unwrap() >= 60, "{baseline}");
    wait_event(&rx, "batch_done", Duration::from_secs(30));

    // Every probe now takes 150 ms more: far over the 50 ms bound. pacer's duty cycle halves
    // within a few probes, and goes on halving while the probe stays slow.
    let slowed = Instant::now();
    pg.psql("shop", "UPDATE ops.slow SET ms = 150");
    let first = wait_for(&rx, "a pacing change", Duration::from_secs(10), |e| {
        e["event"] == "pacing_changed"
    });
    eprintln!(
        "first change {:?} after the slowdown: {first}",
        slowed.elapsed()
    );
    assert_eq!(first["from_duty"], 1.0, "{first}");
    assert_eq!(first["duty"], 0.5, "{first}");
    assert!(
        first["reason"]
            .as_str()
            .unwrap()
            .contains("against the 50ms bound (baseline "),
        "{first}"
    );
    wait_for(
        &rx,
        "duty down to a quarter",
        Duration::from_secs(20),
        |e| e["event"] == "pacing_changed" && e["duty"].as_f64().unwrap() <= 0.25,
    );
    let socket = socket_of(child.id());
    let status = status_json(&socket);
    let fg = &status["state"]["foreground"];
    assert_eq!(fg["on"], true, "{status}");
    assert!(fg["duty"].as_f64().unwrap() <= 0.25, "{status}");
    assert!(
        fg["p99_ms"].as_f64().unwrap() > 100.0,
        "the impact shown is the slowed probe's: {status}"
    );

    // The foreground is fast again: the pacing comes back up in steps (how far depends on
    // what pacer's own batches cost the probe on this machine; here often not to full speed).
    pg.psql("shop", "UPDATE ops.slow SET ms = 0");
    let low = fg["duty"].as_f64().unwrap();
    let up = wait_for(&rx, "the pacing going up", Duration::from_secs(60), |e| {
        e["event"] == "pacing_changed"
            && (e["duty"].as_f64().unwrap() > e["from_duty"].as_f64().unwrap()
                || (e["batch_cap"].is_null() && !e["from_batch_cap"].is_null()))
    });
    eprintln!("recovering from duty {low}: {up}");
    // `…: 3 of 412 over`: raised only on probes whose p99 is within the bound (≤ 1 % over).
    let reason = up["reason"].as_str().unwrap();
    let figures: Vec<u64> = reason
        .rsplit(": ")
        .next()
        .unwrap()
        .split(' ')
        .filter_map(|w| w.parse().ok())
        .collect();
    assert!(
        figures.len() == 2 && figures[0] * 100 <= figures[1],
        "raised on probes within the bound: {up}"
    );

    // The operator's word holds over the guard's: off, and the backfill runs at full speed.
    let ran = ctl(&["foreground", "off", "--socket", socket.to_str().unwrap()]);
    assert_eq!(ran.code, 0, "{ran}");
    let ran = finish(child);
    assert_eq!(ran.code, 0, "{ran}");
    assert_eq!(wrong_amounts(&pg, "shop"), 0);
}

#[test]
fn a_probe_that_cannot_answer_holds_the_backfill_until_the_operator_turns_the_guard_off() {
    let pg = PgServer::start();
    let url = pg.create_database("shop");
    seed_orders(&pg, "shop", 300_000);
    slowable_heartbeat(&pg, "shop");
    let plan = plan();
    let mut child = spawn_run(&plan.path, &url, &["--json"]);
    let rx = events(&mut child);
    wait_event(&rx, "batch_done", Duration::from_secs(60));

    // Each probe now outlasts its 1 s timeout: no answer for 2 s holds the backfill.
    pg.psql("shop", "UPDATE ops.slow SET ms = 5000");
    let (_, held) = wait_event(&rx, "throttled", Duration::from_secs(15));
    let reason = held["reasons"][0].to_string();
    assert!(reason.contains("foreground probe"), "{held}");
    assert!(reason.contains("statement timeout"), "{held}");
    std::thread::sleep(Duration::from_millis(500));
    let rows = || -> i64 {
        pg.psql("shop", "SELECT rows_done FROM pacer.migrations")
            .parse()
            .unwrap()
    };
    let before = rows();
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(rows(), before, "no batch while the probe cannot answer");

    // The operator turns the guard off: the backfill goes on at once, probe or not.
    let ran = ctl(&[
        "foreground",
        "off",
        "--socket",
        socket_of(child.id()).to_str().unwrap(),
    ]);
    assert_eq!(ran.code, 0, "{ran}");
    assert!(ran.stdout.contains("foreground guard off"), "{ran}");
    wait_event(&rx, "foreground_bound_changed", Duration::from_secs(5));
    wait_event(&rx, "unthrottled", Duration::from_secs(5));
    wait_event(&rx, "batch_done", Duration::from_secs(5));

    // A bad bound is refused before it reaches the migration.
    let ran = ctl(&[
        "foreground",
        "fast",
        "--socket",
        socket_of(child.id()).to_str().unwrap(),
    ]);
    assert_eq!(ran.code, 2, "{ran}");
    assert!(ran.stderr.contains("1.5x"), "{ran}");
    pg.psql("shop", "UPDATE ops.slow SET ms = 0");
    let ran = finish(child);
    assert_eq!(ran.code, 0, "{ran}");
    assert_eq!(wrong_amounts(&pg, "shop"), 0);
}
