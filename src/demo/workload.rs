//! The demo's synthetic application: point reads, updates and inserts on `orders` from several
//! sessions at a total rate that can change while it runs. The mix is `demo/workload.toml`.
//!
//! Failed statements (a lock timeout behind pacer's DDL, a lost connection) are counted, never
//! fatal: the application keeps going, like a real one would.
//!
//! It comes in two versions: the one running when the migration starts, which knows nothing of
//! the new column, and the one "deployed" at the gate before cleanup ([`WorkloadControl::deploy`]),
//! whose writes set the column themselves (`deployed_sql`), as they must once cleanup has dropped
//! the sync trigger.

use std::sync::atomic::{AtomicI64, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Deserialize;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_postgres::Client;
use tokio_postgres::types::ToSql;

use super::seed::connect;

/// The bundled mix.
pub const WORKLOAD_TOML: &str = include_str!("../../demo/workload.toml");
/// Application name of the workload's sessions (not `pacer…`: pacer counts sessions waiting on
/// its locks, and leaves out its own, which it recognises by that prefix).
pub const APPLICATION_NAME: &str = "shop-app";
/// Most sessions a workload may open.
pub const MAX_CONNECTIONS: u32 = 32;

/// The workload as written in `demo/workload.toml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkloadSpec {
    /// Sessions sharing the rate.
    pub connections: u32,
    /// Default total transactions per second.
    pub tps: u32,
    /// The statements, each one transaction.
    #[serde(rename = "statement")]
    pub statements: Vec<StatementSpec>,
}

/// One statement of the mix.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatementSpec {
    /// Shown in messages.
    pub name: String,
    /// Relative frequency.
    pub weight: u32,
    /// The SQL, with `$1`, `$2`… for the parameters.
    pub sql: String,
    /// The SQL once the new application version is deployed (same parameters); `sql` if none.
    #[serde(default)]
    pub deployed_sql: Option<String>,
    /// What each parameter takes.
    #[serde(default)]
    pub params: Vec<Param>,
}

/// A parameter's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Param {
    /// An existing order id.
    Id,
    /// A customer id, 0–49,999.
    Customer,
    /// An amount in cents, 100–99,999.
    Cents,
}

impl WorkloadSpec {
    /// The bundled workload.
    pub fn bundled() -> WorkloadSpec {
        WorkloadSpec::parse(WORKLOAD_TOML).expect("demo/workload.toml is valid")
    }

    /// Parses and checks a workload.
    pub fn parse(text: &str) -> Result<WorkloadSpec, String> {
        let spec: WorkloadSpec =
            toml::from_str(text).map_err(|e| format!("workload: {}", e.message().trim()))?;
        if !(1..=MAX_CONNECTIONS).contains(&spec.connections) {
            return Err(format!(
                "workload: connections = {} is out of range; use 1 to {MAX_CONNECTIONS}",
                spec.connections
            ));
        }
        if spec.statements.iter().map(|s| s.weight).sum::<u32>() == 0 {
            return Err("workload: no statement has a weight above 0".into());
        }
        for s in &spec.statements {
            let n = s.params.len();
            for (key, sql) in [
                ("sql", Some(&s.sql)),
                ("deployed_sql", s.deployed_sql.as_ref()),
            ] {
                let Some(sql) = sql else { continue };
                let has = |k: usize| sql.contains(&format!("${k}"));
                if (1..=n).any(|k| !has(k)) || has(n + 1) {
                    return Err(format!(
                        "workload: statement {:?} has {n} params but its {key} uses other \
                         placeholders",
                        s.name
                    ));
                }
            }
        }
        Ok(spec)
    }

    /// The statement for `roll` in `0..total_weight()`.
    pub fn pick(&self, roll: u32) -> usize {
        let mut left = roll % self.total_weight();
        for (i, s) in self.statements.iter().enumerate() {
            if left < s.weight {
                return i;
            }
            left -= s.weight;
        }
        self.statements.len() - 1
    }

    /// Sum of the weights.
    pub fn total_weight(&self) -> u32 {
        self.statements.iter().map(|s| s.weight).sum()
    }
}

impl StatementSpec {
    /// The SQL this statement sends, before or after the deploy.
    pub fn sql(&self, deployed: bool) -> &str {
        match &self.deployed_sql {
            Some(sql) if deployed => sql,
            _ => &self.sql,
        }
    }
}

/// What the workload did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WorkloadStats {
    /// Transactions committed.
    pub done: u64,
    /// Transactions failed.
    pub errors: u64,
    /// The last error, as the server said it.
    pub last_error: Option<String>,
    /// The last full second.
    pub last_second: Option<IntervalStats>,
}

/// One second of the workload.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct IntervalStats {
    /// Transactions committed per second.
    pub tx_per_s: f64,
    /// Median latency.
    pub p50_ms: f64,
    /// 99th percentile latency.
    pub p99_ms: f64,
}

#[derive(Debug, Default)]
struct Counters {
    stats: WorkloadStats,
    /// Latencies (µs) of the current second.
    window: Vec<u32>,
}

impl Counters {
    fn rotate(&mut self, elapsed: Duration) {
        let mut w = std::mem::take(&mut self.window);
        w.sort_unstable();
        let at = |q: f64| {
            w.get(((w.len() as f64 - 1.0) * q).round() as usize)
                .map_or(0.0, |&us| f64::from(us) / 1000.0)
        };
        self.stats.last_second = Some(IntervalStats {
            tx_per_s: w.len() as f64 / elapsed.as_secs_f64().max(0.001),
            p50_ms: at(0.5),
            p99_ms: at(0.99),
        });
    }
}

/// The running workload: steer it ([`WorkloadHandle::control`]), stop it.
pub struct WorkloadHandle {
    control: WorkloadControl,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

/// Steers a running workload and reads its counters (cheap to clone).
#[derive(Clone)]
pub struct WorkloadControl {
    tps: watch::Sender<u32>,
    deployed: watch::Sender<bool>,
    /// Sessions that send the new version's statements (the rollout's progress).
    rolled_out: Arc<AtomicU32>,
    /// Sessions in all.
    sessions: u32,
    counters: Arc<Mutex<Counters>>,
}

impl WorkloadControl {
    /// Sets the total rate; 0 stops sending.
    pub fn set_tps(&self, tps: u32) {
        self.tps.send_replace(tps);
    }

    /// The total rate asked for.
    pub fn tps(&self) -> u32 {
        *self.tps.borrow()
    }

    /// Deploys the new application version: from their next statement on, the sessions send
    /// each statement's `deployed_sql`. True when it was not deployed before.
    pub fn deploy(&self) -> bool {
        !self.deployed.send_replace(true)
    }

    /// Whether the new version is deployed.
    pub fn deployed(&self) -> bool {
        *self.deployed.borrow()
    }

    /// Whether the new version is deployed and every session sends its statements: only then
    /// does no write of the old version's come any more (a statement prepared before the
    /// deploy may still be on its way until its session has switched).
    pub fn rolled_out(&self) -> bool {
        self.deployed() && self.rolled_out.load(Ordering::SeqCst) >= self.sessions
    }

    /// Waits until [`WorkloadControl::rolled_out`], at most `within`; whether it is.
    #[cfg(test)]
    pub async fn wait_rolled_out(&self, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        while !self.rolled_out() {
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        true
    }

    /// A control with no sessions behind it, for tests of what steers it.
    #[cfg(test)]
    pub fn unconnected(tps: u32) -> WorkloadControl {
        WorkloadControl {
            tps: watch::channel(tps).0,
            deployed: watch::channel(false).0,
            rolled_out: Arc::default(),
            sessions: 0,
            counters: Arc::default(),
        }
    }

    /// The counters so far.
    pub fn stats(&self) -> WorkloadStats {
        self.counters
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .stats
            .clone()
    }
}

impl WorkloadHandle {
    /// What steers it, to hand to the interface.
    pub fn control(&self) -> WorkloadControl {
        self.control.clone()
    }

    /// The counters so far.
    #[cfg(test)]
    pub fn stats(&self) -> WorkloadStats {
        self.control.stats()
    }

    /// Stops every session (an unfinished statement is abandoned) and returns the counters.
    pub async fn stop(self) -> WorkloadStats {
        self.stop.send_replace(true);
        for task in &self.tasks {
            task.abort();
        }
        for task in self.tasks {
            let _ = task.await;
        }
        self.control.stats()
    }
}

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

/// xorshift64*: plenty for picking statements and ids.
struct Rng(u64);

impl Rng {
    fn new(salt: u64) -> Rng {
        use std::hash::{BuildHasher, Hasher};
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(salt);
        Rng(h.finish() | 1)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u32) -> u32 {
        (self.next() % u64::from(n.max(1))) as u32
    }
    fn below_u64(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::servers::postgres::PgServer;

    #[test]
    fn the_bundled_mix_reads_updates_amounts_and_inserts() {
        let spec = WorkloadSpec::bundled();
        assert_eq!(spec.connections, 4);
        assert_eq!(spec.tps, 200);
        let sql: Vec<&str> = spec.statements.iter().map(|s| s.sql.as_str()).collect();
        assert!(sql.iter().any(|s| s.starts_with("SELECT")));
        assert!(sql.iter().any(|s| s.contains("SET amount_cents = $2")));
        assert!(
            sql.iter()
                .any(|s| s.starts_with("INSERT") && s.contains("RETURNING id"))
        );
        assert_eq!(spec.total_weight(), 100);
    }

    #[test]
    fn the_deployed_version_writes_amount_in_its_inserts_and_amount_updates_and_nothing_else_changes()
     {
        let spec = WorkloadSpec::bundled();
        let by_name = |name: &str| {
            spec.statements
                .iter()
                .find(|s| s.name == name)
                .unwrap_or_else(|| panic!("no statement {name:?}"))
        };
        assert_eq!(
            by_name("place order").sql(true),
            "INSERT INTO public.orders (customer_id, amount_cents, amount, note) \
             VALUES ($1, $2, $2::bigint / 100.0, 'demo order') RETURNING id"
        );
        assert_eq!(
            by_name("change amount").sql(true),
            "UPDATE public.orders SET amount_cents = $2, amount = $2::bigint / 100.0 WHERE id = $1"
        );
        for s in &spec.statements {
            assert!(!s.sql(false).contains("amount,") && !s.sql(false).contains("amount ="));
            if !["place order", "change amount"].contains(&s.name.as_str()) {
                assert_eq!(s.sql(true), s.sql, "{} changed in the deploy", s.name);
            }
        }
        // The deployed SQL takes the same parameters as the original.
        let bad = "connections = 1\ntps = 1\n[[statement]]\nname = \"x\"\nweight = 1\n\
                   sql = \"SELECT $1\"\ndeployed_sql = \"SELECT $1, $2\"\nparams = [\"id\"]\n";
        assert!(
            WorkloadSpec::parse(bad)
                .unwrap_err()
                .contains("its deployed_sql uses other placeholders")
        );
    }

    #[test]
    fn picks_statements_in_proportion_to_their_weights() {
        let spec = WorkloadSpec::parse(
            r#"connections = 2
tps = 10
[[statement]]
name = "a"
weight = 3
sql = "SELECT 1"
[[statement]]
name = "never"
weight = 0
sql = "SELECT 2"
[[statement]]
name = "b"
weight = 1
sql = "SELECT $1"
params = ["id"]
"#,
        )
        .unwrap();
        let picks: Vec<usize> = (0..8).map(|r| spec.pick(r)).collect();
        assert_eq!(picks, [0, 0, 0, 2, 0, 0, 0, 2]);
        assert_eq!(spec.statements[2].params, [Param::Id]);
    }

    #[test]
    fn refuses_bad_workloads() {
        let bad = |text: &str| WorkloadSpec::parse(text).unwrap_err();
        let one = |params: &str, sql: &str| {
            format!(
                "connections = 1\ntps = 1\n[[statement]]\nname = \"x\"\nweight = 1\nsql = \"{sql}\"\nparams = {params}\n"
            )
        };
        assert!(bad(&one("[\"id\"]", "SELECT 1")).contains("1 params"));
        assert!(bad(&one("[]", "SELECT $1")).contains("0 params"));
        assert!(bad(&one("[\"price\"]", "SELECT $1")).contains("unknown variant"));
        assert!(bad("connections = 0\ntps = 1\nstatement = []\n").contains("connections = 0"));
        assert!(
            bad(&one("[]", "SELECT 1").replace("weight = 1", "weight = 0"))
                .contains("no statement")
        );
        assert!(bad("connections = 1\ntps = 1\nrate = 3\nstatement = []\n").contains("rate"));
    }

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

    #[test]
    fn a_second_of_latencies_gives_rate_and_percentiles() {
        let mut c = Counters {
            window: (1..=100).map(|ms| ms * 1000).collect(),
            ..Counters::default()
        };
        c.rotate(Duration::from_millis(500));
        let s = c.stats.last_second.unwrap();
        assert_eq!(s.tx_per_s, 200.0);
        assert_eq!(s.p50_ms, 51.0);
        assert_eq!(s.p99_ms, 99.0);
        assert!(c.window.is_empty());
    }
}
