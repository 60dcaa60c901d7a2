//! The demo's workload on PostgreSQL: its sessions, their prepared statements and the
//! driver's errors. What the workload is (the mix, the rate, the counters, the deploy) is the
//! parent module's; this is how it talks to the server.

use std::sync::atomic::{AtomicI64, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio_postgres::Client;
use tokio_postgres::types::ToSql;

use super::*;
use crate::demo::seed::connect;

/// Opens the sessions on the database of `url` and starts sending `spec`'s mix at `tps`.
pub async fn start(url: &str, spec: WorkloadSpec, tps: u32) -> Result<WorkloadHandle, String> {
    let spec = Arc::new(spec);
    let first = connect(url, APPLICATION_NAME).await?;
    let max_id: i64 = first
        .query_one("SELECT coalesce(max(id), 0) FROM public.orders", &[])
        .await
        .map_err(|e| format!("workload: cannot read the orders table: {e}"))?
        .get(0);
    let max_id = Arc::new(AtomicI64::new(max_id));
    let (tps_tx, _) = watch::channel(tps);
    let (deployed_tx, _) = watch::channel(false);
    let (stop_tx, _) = watch::channel(false);
    let counters = Arc::new(Mutex::new(Counters::default()));
    let rolled_out = Arc::new(AtomicU32::new(0));
    let mut tasks = Vec::new();
    let mut first = Some(first);
    for n in 0..spec.connections {
        let session = Session {
            url: url.to_string(),
            spec: spec.clone(),
            max_id: max_id.clone(),
            counters: counters.clone(),
            tps: tps_tx.subscribe(),
            deployed: deployed_tx.subscribe(),
            rolled_out: rolled_out.clone(),
            stop: stop_tx.subscribe(),
            rng: Rng::new(u64::from(n)),
        };
        let client = first.take();
        tasks.push(tokio::spawn(session.run(client)));
    }
    // Closes the latency window every second.
    let window = counters.clone();
    let mut stop = stop_tx.subscribe();
    tasks.push(tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.tick().await;
        let mut last = Instant::now();
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stop.changed() => return,
            }
            let now = Instant::now();
            window
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .rotate(now - last);
            last = now;
        }
    }));
    Ok(WorkloadHandle {
        control: WorkloadControl {
            tps: tps_tx,
            deployed: deployed_tx,
            rolled_out,
            sessions: spec.connections,
            counters,
        },
        stop: stop_tx,
        tasks,
    })
}

/// One session of the application.
struct Session {
    url: String,
    spec: Arc<WorkloadSpec>,
    max_id: Arc<AtomicI64>,
    counters: Arc<Mutex<Counters>>,
    tps: watch::Receiver<u32>,
    deployed: watch::Receiver<bool>,
    /// Counts this session once it sends the new version's statements.
    rolled_out: Arc<AtomicU32>,
    stop: watch::Receiver<bool>,
    rng: Rng,
}

impl Session {
    async fn run(mut self, mut client: Option<Client>) {
        let mut statements = Vec::new();
        // The version `statements` were prepared for.
        let mut prepared_deployed = false;
        let mut counted = false;
        let mut next = Instant::now();
        loop {
            if prepared_deployed && !statements.is_empty() && !counted {
                self.rolled_out.fetch_add(1, Ordering::SeqCst);
                counted = true;
            }
            if *self.stop.borrow() {
                return;
            }
            let deployed = *self.deployed.borrow();
            if deployed != prepared_deployed {
                // The new version: its statements from now on.
                statements.clear();
            }
            // (Re)connect and prepare; a failure counts and is retried a second later.
            if client.as_ref().is_none_or(Client::is_closed) {
                match self.open(deployed).await {
                    Ok((c, s)) => {
                        client = Some(c);
                        statements = s;
                        prepared_deployed = deployed;
                    }
                    Err(e) => {
                        self.failed(e);
                        client = None;
                        if self.sleep(Duration::from_secs(1)).await {
                            return;
                        }
                        continue;
                    }
                }
            } else if statements.is_empty() {
                match prepare(client.as_ref().expect("connected"), &self.spec, deployed).await {
                    Ok(s) => {
                        statements = s;
                        prepared_deployed = deployed;
                    }
                    Err(e) => {
                        self.failed(e);
                        if self.sleep(Duration::from_secs(1)).await {
                            return;
                        }
                        continue;
                    }
                }
            }
            let tps = *self.tps.borrow_and_update();
            if tps == 0 {
                tokio::select! {
                    _ = self.tps.changed() => {}
                    // A deploy reaches an idle session too, so the rollout completes.
                    _ = self.deployed.changed() => {}
                    _ = self.stop.changed() => return,
                }
                next = Instant::now();
                continue;
            }
            let period = Duration::from_secs_f64(f64::from(self.spec.connections) / f64::from(tps));
            next += period;
            let now = Instant::now();
            if next + Duration::from_secs(1) < now {
                // Far behind (a stall): do not make up for it in a burst.
                next = now;
            }
            tokio::select! {
                _ = tokio::time::sleep_until(next.into()) => {}
                _ = self.tps.changed() => {
                    next = Instant::now();
                    continue;
                }
                _ = self.deployed.changed() => continue,
                _ = self.stop.changed() => return,
            }
            if *self.deployed.borrow() != prepared_deployed {
                // Deployed while this session waited: no statement of the old version after
                // the deploy; the new ones are prepared at the top of the loop.
                continue;
            }
            let client = client.as_ref().expect("connected");
            let i = self.spec.pick(self.rng.below(self.spec.total_weight()));
            let spec = self.spec.clone();
            let values: Vec<i64> = spec.statements[i]
                .params
                .iter()
                .map(|p| self.value(*p))
                .collect();
            let params: Vec<&(dyn ToSql + Sync)> =
                values.iter().map(|v| v as &(dyn ToSql + Sync)).collect();
            let started = Instant::now();
            match client.query(&statements[i], &params).await {
                Ok(rows) => {
                    if let Some(id) = rows.first().and_then(new_id) {
                        self.max_id.fetch_max(id, Ordering::Relaxed);
                    }
                    let us = started.elapsed().as_micros().min(u128::from(u32::MAX)) as u32;
                    let mut c = self.counters.lock().unwrap_or_else(|p| p.into_inner());
                    c.stats.done += 1;
                    c.window.push(us);
                }
                Err(e) => self.failed(format!("{}: {}", self.spec.statements[i].name, text(&e))),
            }
        }
    }

    async fn open(
        &self,
        deployed: bool,
    ) -> Result<(Client, Vec<tokio_postgres::Statement>), String> {
        let client = connect(&self.url, APPLICATION_NAME).await?;
        let statements = prepare(&client, &self.spec, deployed).await?;
        Ok((client, statements))
    }

    fn value(&mut self, p: Param) -> i64 {
        match p {
            Param::Id => {
                1 + self
                    .rng
                    .below_u64(self.max_id.load(Ordering::Relaxed).max(1) as u64)
                    as i64
            }
            Param::Customer => i64::from(self.rng.below(50_000)),
            Param::Cents => 100 + i64::from(self.rng.below(99_900)),
        }
    }

    fn failed(&self, message: String) {
        let mut c = self.counters.lock().unwrap_or_else(|p| p.into_inner());
        c.stats.errors += 1;
        c.stats.last_error = Some(message);
    }

    /// Sleeps; true when the workload was stopped meanwhile.
    async fn sleep(&mut self, d: Duration) -> bool {
        tokio::select! {
            _ = tokio::time::sleep(d) => false,
            _ = self.stop.changed() => true,
        }
    }
}

/// Session settings (an application does not queue forever behind a lock) and the statements
/// of the version running.
async fn prepare(
    client: &Client,
    spec: &WorkloadSpec,
    deployed: bool,
) -> Result<Vec<tokio_postgres::Statement>, String> {
    client
        .batch_execute("SET lock_timeout = '2s'; SET statement_timeout = '10s'")
        .await
        .map_err(|e| format!("workload: {}", text(&e)))?;
    let mut out = Vec::new();
    for s in &spec.statements {
        out.push(
            client
                .prepare(s.sql(deployed))
                .await
                .map_err(|e| format!("workload: statement {:?}: {}", s.name, text(&e)))?,
        );
    }
    Ok(out)
}

/// The id an `INSERT … RETURNING id` returned.
fn new_id(row: &tokio_postgres::Row) -> Option<i64> {
    let col = row.columns().first()?;
    (col.name() == "id").then(|| row.try_get::<_, i64>(0).ok())?
}

/// The server's message when there is one.
fn text(e: &tokio_postgres::Error) -> String {
    e.as_db_error()
        .map(|d| d.message().to_string())
        .unwrap_or_else(|| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::servers::postgres::PgServer;

    /// A throwaway server (the tests' and the demo's own code), started off the async threads;
    /// stopped and removed on drop, also when an assertion fails.
    async fn server() -> PgServer {
        tokio::task::spawn_blocking(PgServer::start).await.unwrap()
    }

    /// A real server, a real workload.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn follows_the_rate_it_is_given_and_counts_failures_without_stopping() {
        use crate::demo::seed;
        let pg = server().await;
        let root = pg.dir().to_path_buf();
        seed::create_database(&pg.url("postgres")).await.unwrap();
        let url = pg.url(seed::DEMO_DATABASE);
        seed::seed_orders(&url, 5000).await.unwrap();

        let workload = start(&url, WorkloadSpec::bundled(), 200).await.unwrap();
        tokio::time::sleep(Duration::from_secs(2)).await;
        let s = workload.stats();
        // 200/s for 2 s is 400; a busy machine may fall short, but never far beyond.
        assert!((150..=440).contains(&s.done), "{s:?}");
        assert_eq!(s.errors, 0, "{s:?}");
        let second = s.last_second.expect("a full second");
        assert!(
            second.p50_ms > 0.0 && second.p99_ms >= second.p50_ms,
            "{s:?}"
        );

        // 0 stops sending; a higher rate sends more.
        workload.control().set_tps(0);
        assert_eq!(workload.control().tps(), 0);
        tokio::time::sleep(Duration::from_millis(300)).await;
        let stopped = workload.stats().done;
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(workload.stats().done, stopped, "sent while at 0/s");
        workload.control().set_tps(800);
        tokio::time::sleep(Duration::from_secs(1)).await;
        let fast = workload.stats().done - stopped;
        assert!(fast > 300, "only {fast} in a second at 800/s");

        // A table lock longer than the workload's lock_timeout: failures are counted, and the
        // workload goes on afterwards.
        let locker = seed::connect(&url, "test-locker").await.unwrap();
        locker
            .batch_execute("BEGIN; LOCK TABLE public.orders IN ACCESS EXCLUSIVE MODE")
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(2600)).await;
        locker.batch_execute("ROLLBACK").await.unwrap();
        let s = workload.stats();
        assert!(s.errors > 0, "{s:?}");
        assert!(
            s.last_error
                .as_deref()
                .unwrap_or("")
                .contains("lock timeout"),
            "{s:?}"
        );
        let before = s.done;
        tokio::time::sleep(Duration::from_millis(500)).await;
        let end = workload.stop().await;
        assert!(
            end.done > before,
            "the workload stopped after failures: {end:?}"
        );

        tokio::task::spawn_blocking(move || drop(pg)).await.unwrap();
        assert!(!root.exists());
    }

    /// A real server: before the deploy the workload leaves `amount` alone; after it, every
    /// insert and every amount_cents update writes it, as the plan's backfill computes it.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn after_the_deploy_every_insert_and_amount_update_writes_amount() {
        use crate::demo::seed;
        let pg = server().await;
        let url = pg.url(seed::DEMO_DATABASE);
        seed::create_database(&pg.url("postgres")).await.unwrap();
        seed::seed_orders(&url, 2000).await.unwrap();
        let check = seed::connect(&url, "test-check").await.unwrap();
        check
            .batch_execute("ALTER TABLE public.orders ADD COLUMN amount numeric(14,2)")
            .await
            .unwrap();
        let count = async |sql: &str| -> i64 { check.query_one(sql, &[]).await.unwrap().get(0) };

        let workload = start(&url, WorkloadSpec::bundled(), 400).await.unwrap();
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert!(!workload.control().deployed());
        assert_eq!(
            count("SELECT count(amount) FROM public.orders").await,
            0,
            "the old version wrote amount"
        );
        assert!(workload.control().deploy());
        assert!(!workload.control().deploy(), "a second deploy is no deploy");
        // Every session is on the new version from its next statement on: the rollout
        // completes, and no statement of the old version comes after it.
        assert!(
            workload
                .control()
                .wait_rolled_out(Duration::from_secs(5))
                .await
        );
        let boundary = count("SELECT max(id) FROM public.orders").await;
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let stats = workload.stop().await;
        assert_eq!(stats.errors, 0, "{stats:?}");

        let inserted = count(&format!(
            "SELECT count(*) FROM public.orders WHERE id > {boundary}"
        ))
        .await;
        assert!(inserted > 10, "only {inserted} inserts after the deploy");
        assert_eq!(
            count(&format!(
                "SELECT count(*) FROM public.orders WHERE id > {boundary} \
                 AND amount IS DISTINCT FROM amount_cents / 100.0"
            ))
            .await,
            0,
            "an insert after the deploy left amount unset or wrong"
        );
        // Only amount_cents updates (and new orders) set amount on seeded rows: some did.
        let updated =
            count("SELECT count(*) FROM public.orders WHERE id <= 2000 AND amount IS NOT NULL")
                .await;
        assert!(updated > 0, "no amount_cents update wrote amount");
        assert_eq!(
            count(
                "SELECT count(*) FROM public.orders WHERE amount IS NOT NULL \
                 AND amount <> amount_cents / 100.0"
            )
            .await,
            0
        );
        drop(check);
        let root = pg.dir().to_path_buf();
        tokio::task::spawn_blocking(move || drop(pg)).await.unwrap();
        assert!(!root.exists());
    }
}
