//! The demo's synthetic application: point reads, updates and inserts on `orders` from several
//! sessions at a total rate that can change while it runs. The mix is `demo/workload.toml` on
//! PostgreSQL and its twin `demo/workload-mysql.toml` on MariaDB; the sessions are
//! [`session`]'s, their drivers [`postgres`]'s and [`mysql`]'s.
//!
//! Failed statements (a lock timeout behind pacer's DDL, a lost connection) are counted, never
//! fatal: the application keeps going, like a real one would.
//!
//! It comes in two versions: the one running when the migration starts, which knows nothing of
//! the new column, and the one "deployed" at the gate before cleanup ([`WorkloadControl::deploy`]),
//! whose writes set the column themselves (`deployed_sql`), as they must once cleanup has dropped
//! the sync trigger.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Deserialize;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::Engine;

/// The bundled mix, for PostgreSQL.
pub const WORKLOAD_TOML: &str = include_str!("../../../demo/workload.toml");
/// The same mix for MySQL/MariaDB.
pub const WORKLOAD_MYSQL_TOML: &str = include_str!("../../../demo/workload-mysql.toml");
/// Application name of the workload's sessions (not `pacer…`: pacer counts sessions waiting on
/// its locks, and leaves out its own, which it recognises by that prefix).
pub const APPLICATION_NAME: &str = "shop-app";
/// Most sessions a workload may open.
pub const MAX_CONNECTIONS: u32 = 32;

pub mod mysql;
pub mod postgres;
mod session;

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
    /// The SQL, with `$1`, `$2`… for the parameters (on MySQL too: its driver sends them as
    /// `?`, a parameter used twice twice).
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
    /// The bundled workload, for PostgreSQL.
    #[cfg(test)]
    pub fn bundled() -> WorkloadSpec {
        WorkloadSpec::bundled_for(Engine::Postgres)
    }

    /// The bundled workload in `engine`'s SQL.
    pub fn bundled_for(engine: Engine) -> WorkloadSpec {
        match engine {
            Engine::Postgres => {
                WorkloadSpec::parse(WORKLOAD_TOML).expect("demo/workload.toml is valid")
            }
            Engine::MariaDb => {
                WorkloadSpec::parse(WORKLOAD_MYSQL_TOML).expect("demo/workload-mysql.toml is valid")
            }
        }
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
        let deadline = std::time::Instant::now() + within;
        while !self.rolled_out() {
            if std::time::Instant::now() >= deadline {
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
    fn the_mysql_twin_is_the_same_mix_with_the_same_deploy() {
        let pg = WorkloadSpec::bundled_for(Engine::Postgres);
        let my = WorkloadSpec::bundled_for(Engine::MariaDb);
        assert_eq!((my.connections, my.tps), (pg.connections, pg.tps));
        let shape = |spec: &WorkloadSpec| -> Vec<(String, u32, Vec<Param>, bool)> {
            spec.statements
                .iter()
                .map(|s| {
                    let name = s.name.clone();
                    (name, s.weight, s.params.clone(), s.deployed_sql.is_some())
                })
                .collect()
        };
        assert_eq!(shape(&my), shape(&pg));
        for s in &my.statements {
            assert!(
                !s.sql.contains("public.") && !s.sql.contains("RETURNING"),
                "{}",
                s.sql
            );
            assert!(!s.sql(false).contains("amount,") && !s.sql(false).contains("amount ="));
        }
        let place = my
            .statements
            .iter()
            .find(|s| s.name == "place order")
            .unwrap();
        assert!(
            place
                .sql(true)
                .contains("amount, note) VALUES ($1, $2, $2 / 100.0")
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
