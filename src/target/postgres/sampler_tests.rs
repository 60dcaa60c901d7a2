//! The sampler (PostgreSQL's metric source and the sampling runner) against real, throwaway
//! PostgreSQL servers.

use std::time::{Duration, Instant};

use tokio::task::JoinHandle;

use crate::sampler::host::HostSampler;
use crate::sampler::{
    DEFAULT_WINDOW, DbSample, MetricSource, Metrics, SeriesId, SharedMetrics, spawn,
};
use crate::servers::postgres::PgServer;
use crate::target::postgres::PgTarget;
use crate::target::postgres::sampler::{PgSource, statement_timeout_for};

const JOB: &str = "public.t.c";
const TABLE: &str = "\"public\".\"t\"";

fn target(url: &str) -> PgTarget {
    PgTarget::resolve(Some(url), &|_| None, None).expect("test URL resolves")
}

fn source(url: &str, table: &str, interval: Duration) -> PgSource {
    PgSource::new(target(url), JOB, table.to_string())
        .with_statement_timeout(statement_timeout_for(interval))
}

/// A server with database `app` holding table `t` with a few rows; returns it and the URL.
fn server_with_table() -> (PgServer, String) {
    let pg = PgServer::start();
    let url = pg.create_database("app");
    pg.psql(
        "app",
        "CREATE TABLE t (id bigserial PRIMARY KEY, payload text); \
         INSERT INTO t (payload) SELECT 'row ' || g FROM generate_series(1, 1000) g",
    );
    (pg, url)
}

/// Runs the real sampler (PgSource + runner) every `interval`.
fn run_sampler(url: &str, interval: Duration) -> (SharedMetrics, JoinHandle<()>) {
    let shared = SharedMetrics::new(Metrics::new(DEFAULT_WINDOW, interval));
    let handle = spawn(source(url, TABLE, interval), interval, shared.clone());
    (shared, handle)
}

/// Polls `check` every 50 ms until it returns Some, or panics after `timeout` with `what`.
async fn eventually<T>(timeout: Duration, what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Every value of a series, gaps left out, oldest first.
fn values(shared: &SharedMetrics, id: SeriesId) -> Vec<f64> {
    shared.read(|m| m.series(id).iter().filter_map(|(_, v)| v).collect())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_replica_shows_growing_lag_that_goes_back_to_zero_after_resume() {
    let (pg, url) = server_with_table();
    let replica = pg.start_replica();
    // Replicas report their replay position every 10 s by default; 1 s makes catching up
    // visible within the test.
    replica.psql(
        "postgres",
        "ALTER SYSTEM SET wal_receiver_status_interval = '1s'",
    );
    replica.psql("postgres", "SELECT pg_reload_conf()");
    pg.wait_for_replica(&replica);
    replica.pause_replay();

    let interval = Duration::from_millis(250);
    let (shared, handle) = run_sampler(&url, interval);
    eventually(Duration::from_secs(5), "a first replica sample", || {
        shared.read(|m| m.latest().replicas.clone().filter(|r| !r.is_empty()))
    })
    .await;
    let before = values(&shared, SeriesId::ReplicaLagBytes).len();

    // About 3 s of writes on the primary, which the paused replica receives but does not replay.
    for _ in 0..10 {
        pg.psql(
            "app",
            "INSERT INTO t (payload) SELECT repeat('x', 200) FROM generate_series(1, 2000)",
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    tokio::time::sleep(interval * 2).await;

    let lag = values(&shared, SeriesId::ReplicaLagBytes)[before..].to_vec();
    assert!(
        lag.len() >= 8,
        "about 12 samples expected while writing: {lag:?}"
    );
    assert!(
        lag.windows(2).all(|w| w[0] <= w[1]),
        "lag in bytes never shrinks while replay is paused: {lag:?}"
    );
    let (early, late) = (lag[1], lag[lag.len() - 1]);
    assert!(early < late, "lag grows: early {early}, late {late}");
    assert!(
        late > 1_000_000.0,
        "20k rows of 200 bytes is megabytes of WAL: {late}"
    );

    let latest = shared.read(|m| m.latest().clone());
    let replicas = latest.replicas.expect("replicas sampled");
    assert_eq!(replicas.len(), 1, "{replicas:?}");
    let r = &replicas[0];
    assert!(r.lag_bytes.is_some_and(|b| b > 1_000_000), "{r:?}");
    assert!(r.replay_lag_s.is_some_and(|s| s > 0.0), "{r:?}");
    assert_eq!(r.state, "streaming");
    let lag_s = values(&shared, SeriesId::ReplicaLagS);
    assert!(lag_s.last().is_some_and(|s| *s > 0.0), "{lag_s:?}");
    let own = shared.read(|m| m.replica_series().to_vec());
    assert_eq!(own.len(), 1);
    assert_eq!(own[0].name, r.name);
    assert!(own[0].lag_bytes.latest().is_some_and(|b| b > 1_000_000.0));
    let wal = values(&shared, SeriesId::RedoBytesPerS);
    assert!(
        wal.iter().any(|w| *w > 100_000.0),
        "WAL rate while writing: {wal:?}"
    );

    replica.resume_replay();
    eventually(Duration::from_secs(15), "the replica to catch up", || {
        shared.read(|m| (m.series(SeriesId::ReplicaLagBytes).latest() == Some(0.0)).then_some(()))
    })
    .await;
    handle.abort();
    let logs = shared.take_errors();
    assert!(logs.is_empty(), "no sampling failure: {logs:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_replicas_is_shown_as_such_not_as_zero_lag() {
    let (pg, url) = server_with_table();
    let mut src = source(&url, TABLE, Duration::from_secs(1));
    let sample = src.sample().await;
    assert_eq!(sample.replicas, Ok(Vec::new()));
    let table = sample.table.clone().expect("table statistics");
    assert!(table.maintenance.is_none());
    assert!(
        sample.table_bytes.clone().is_ok_and(|b| b > 0),
        "{sample:?}"
    );
    assert!(sample.redo_bytes.is_ok(), "{sample:?}");
    let lock_waits = sample.lock_waits.clone().expect("lock waits");
    assert_eq!((lock_waits.waiting, lock_waits.waits.len()), (0, 0));

    let mut m = Metrics::new(DEFAULT_WINDOW, Duration::from_secs(1));
    m.record_db(0.0, &sample);
    assert_eq!(
        m.latest().replicas,
        Some(Vec::new()),
        "shown as 'no replicas'"
    );
    assert_eq!(
        m.series(SeriesId::ReplicaLagS).last_point(),
        Some((0.0, None))
    );
    assert!(
        m.series(SeriesId::ReplicaLagBytes)
            .points_since(0.0)
            .is_empty()
    );

    // The sampler's session carries pacer's name, so every monitoring query can leave it out.
    let apps = pg.psql(
        "app",
        "SELECT application_name FROM pg_stat_activity WHERE application_name LIKE 'pacer%'",
    );
    assert_eq!(apps, "pacer-sampler:public.t.c");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_waiting_on_a_lock_is_counted_with_its_blocker() {
    let (_pg, url) = server_with_table();
    let conn = target(&url);
    let holder = conn.connect("holder-app").await.unwrap();
    let holder_pid = i64::from(
        holder
            .query_one("SELECT pg_backend_pid()", &[])
            .await
            .unwrap()
            .get::<_, i32>(0),
    );
    holder
        .batch_execute("BEGIN; LOCK TABLE t IN ACCESS EXCLUSIVE MODE")
        .await
        .unwrap();
    let waiter = conn.connect("waiter-app").await.unwrap();
    let waiting = tokio::spawn(async move { waiter.query("SELECT count(*) FROM t", &[]).await });
    // pacer's own DDL waiting too: listed, with its blockers, but not counted.
    let pacer = conn.connect("pacer:public.t.c").await.unwrap();
    let pacer_waiting =
        tokio::spawn(async move { pacer.batch_execute("ALTER TABLE t ADD COLUMN c int").await });
    tokio::time::sleep(Duration::from_millis(300)).await;

    let mut src = source(&url, TABLE, Duration::from_secs(1));
    let mut sample: Option<DbSample> = None;
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        let s = src.sample().await;
        let seen = s
            .lock_waits
            .as_ref()
            .is_ok_and(|lw| lw.waiting == 1 && lw.waits.len() == 2 && lw.longest_s > 0.0);
        sample = Some(s);
        if seen {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let sample = sample.unwrap();
    let lw = sample.lock_waits.clone().expect("lock waits sampled");
    assert_eq!(lw.waiting, 1, "{lw:#?}");
    assert!(lw.longest_s > 0.2 && lw.longest_s < 30.0, "{lw:#?}");

    let app_wait = lw.waits.iter().find(|w| !w.pacer).expect("the app's wait");
    assert_eq!(app_wait.application, "waiter-app");
    let blocker = app_wait
        .blockers
        .iter()
        .find(|b| b.pid == holder_pid)
        .unwrap_or_else(|| panic!("holder among the blockers: {app_wait:#?}"));
    assert_eq!(blocker.application, "holder-app");
    assert_eq!(blocker.state, "idle in transaction");
    assert_eq!(blocker.user, "postgres");
    assert!(blocker.xact_age_s.is_some_and(|a| a > 0.2), "{blocker:?}");
    assert!(blocker.query.contains("LOCK TABLE t"), "{blocker:?}");

    let pacer_wait = lw.waits.iter().find(|w| w.pacer).expect("pacer's wait");
    assert_eq!(pacer_wait.application, "pacer:public.t.c");
    assert!(
        lw.blocking_pacer().iter().any(|b| b.pid == holder_pid),
        "{lw:#?}"
    );

    // The size needs a lock the holder's exclusive lock denies: a gap, not a queued sampler.
    let size_error = sample.table_bytes.clone().unwrap_err();
    assert!(size_error.contains("lock queue is blocked"), "{size_error}");
    assert!(
        sample.table.is_ok() && sample.redo_bytes.is_ok(),
        "{sample:?}"
    );

    holder.batch_execute("ROLLBACK").await.unwrap();
    waiting.await.unwrap().unwrap();
    pacer_waiting.await.unwrap().unwrap();
    let after = src.sample().await;
    assert_eq!(after.lock_waits.map(|lw| lw.waiting), Ok(0));
    assert!(after.table_bytes.is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_table_is_an_error_for_its_figures_only() {
    let (_pg, url) = server_with_table();
    let mut src = source(&url, "\"public\".\"no_such_table\"", Duration::from_secs(1));
    let sample = src.sample().await;
    let err = sample.table.clone().unwrap_err();
    assert!(
        err.contains("\"public\".\"no_such_table\" not found"),
        "{err}"
    );
    assert!(sample.table_bytes.is_err());
    assert!(sample.lock_waits.is_ok() && sample.replicas.is_ok() && sample.redo_bytes.is_ok());

    let mut m = Metrics::new(DEFAULT_WINDOW, Duration::from_secs(1));
    m.record_db(0.0, &sample);
    assert_eq!(
        m.series(SeriesId::TableBytes).last_point(),
        Some((0.0, None))
    );
    assert_eq!(m.series(SeriesId::LockWaiters).latest(), Some(0.0));
    let logs = m.take_errors();
    assert_eq!(logs.len(), 1, "one line for both table figures: {logs:?}");
    assert!(
        logs[0].text.contains("table statistics, table size"),
        "{logs:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_server_is_a_gap_and_the_sampler_reconnects_after_restart() {
    let (mut pg, url) = server_with_table();
    let interval = Duration::from_millis(200);
    let (shared, handle) = run_sampler(&url, interval);
    let rounds = |shared: &SharedMetrics| shared.read(|m| m.series(SeriesId::LockWaiters).len());
    eventually(Duration::from_secs(5), "three sampling rounds", || {
        (rounds(&shared) >= 3).then_some(())
    })
    .await;
    assert!(shared.take_errors().is_empty());

    pg.stop();
    let stopped_at = rounds(&shared);
    eventually(Duration::from_secs(5), "failed rounds", || {
        (rounds(&shared) >= stopped_at + 3).then_some(())
    })
    .await;
    let latest = shared.read(|m| m.latest().clone());
    assert!(
        latest.lock_waits.is_none() && latest.table_bytes.is_none(),
        "{latest:?}"
    );
    assert_eq!(
        shared.read(|m| m.series(SeriesId::TableBytes).latest()),
        None
    );
    let failures = shared.take_errors();
    assert!(
        !failures.is_empty() && failures.iter().all(|l| l.failed),
        "{failures:?}"
    );
    assert!(
        failures.len() <= 3,
        "one line per distinct reason, not one per round: {failures:?}"
    );
    assert!(
        failures[0]
            .text
            .contains("lock waits, replication lag, WAL rate"),
        "{failures:?}"
    );

    pg.start_again();
    eventually(Duration::from_secs(10), "the sampler to reconnect", || {
        shared.read(|m| m.latest().lock_waits.clone())
    })
    .await;
    handle.abort();
    let logs = shared.take_errors();
    assert!(
        logs.iter().any(|l| !l.failed && l.text.contains("again")),
        "{logs:?}"
    );
    let segments = shared.read(|m| m.series(SeriesId::TableBytes).points_since(0.0));
    assert!(
        segments.len() >= 2,
        "a gap while the server was down: {segments:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_host_sample_has_cpu_memory_and_pacers_own_memory() {
    let mut host = HostSampler::new();
    let first = host.sample();
    assert_eq!(first.cpu_pct, None, "CPU use needs two readings");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let second = host.sample();
    assert!(
        second.cpu_pct.is_some_and(|c| (0.0..=100.0).contains(&c)),
        "{second:?}"
    );
    let total = second.mem_total.expect("memory total");
    assert!(total > 0 && second.mem_used.is_some_and(|u| u > 0 && u <= total));
    assert!(second.own_rss.is_some_and(|r| r > 1_000_000), "{second:?}");
    assert!(second.own_cpu_ms.is_some() && second.net_rx_bytes.is_some());

    let mut m = Metrics::new(DEFAULT_WINDOW, Duration::from_secs(1));
    m.record_host(0.0, &first);
    m.record_host(0.3, &second);
    let figures = &m.latest().host;
    assert!(figures.own_cpu_pct.is_some_and(|c| c >= 0.0), "{figures:?}");
    assert!(figures.net_rx_per_s.is_some());
    assert!(
        m.series(SeriesId::OwnMemBytes)
            .latest()
            .is_some_and(|r| r > 0.0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_sampling_round_is_cheap() {
    let (_pg, url) = server_with_table();
    let mut src = source(&url, TABLE, Duration::from_secs(1));
    let mut host = HostSampler::new();
    src.sample().await; // connects and prepares
    let mut db_ms = Vec::new();
    let mut host_ms = Vec::new();
    for _ in 0..20 {
        let started = Instant::now();
        let sample = src.sample().await;
        db_ms.push(started.elapsed().as_secs_f64() * 1000.0);
        assert!(
            sample.table.is_ok() && sample.lock_waits.is_ok(),
            "{sample:?}"
        );
        let started = Instant::now();
        host.sample();
        host_ms.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    let avg = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let max = |v: &[f64]| v.iter().copied().fold(0.0, f64::max);
    eprintln!(
        "sampling round: database {:.2} ms avg, {:.2} ms max; host {:.2} ms avg, {:.2} ms max",
        avg(&db_ms),
        max(&db_ms),
        avg(&host_ms),
        max(&host_ms)
    );
    assert!(avg(&db_ms) < 100.0, "{db_ms:?}");
    assert!(avg(&host_ms) < 50.0, "{host_ms:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn active_sessions_count_the_application_s_running_statements_not_pacer_s() {
    let (_pg, url) = server_with_table();
    let mut src = source(&url, TABLE, Duration::from_secs(1));
    let idle = src.sample().await;
    assert_eq!(
        idle.active_sessions,
        Ok(0),
        "the sampler does not count itself"
    );
    let conn = target(&url);
    let mut sleepers = Vec::new();
    for name in ["app-1", "app-2", "pacer:public.t.c"] {
        let c = conn.connect(name).await.unwrap();
        sleepers.push(tokio::spawn(async move {
            c.batch_execute("SELECT pg_sleep(2)").await
        }));
    }
    // An idle session does not count either.
    let _idle_app = conn.connect("app-idle").await.unwrap();
    let mut seen = None;
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        let s = src.sample().await;
        if s.active_sessions == Ok(2) {
            seen = Some(s);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(seen.is_some(), "two application sessions run pg_sleep");
    for s in sleepers {
        s.await.unwrap().unwrap();
    }
    assert_eq!(src.sample().await.active_sessions, Ok(0));
}
