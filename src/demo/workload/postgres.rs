//! The demo's workload on PostgreSQL: its sessions' connections, their prepared statements and
//! the driver's errors. What the workload is (the mix, the rate, the counters, the deploy) is the
//! parent module's, and how its sessions run [`super::session`]'s; this is how they talk to the
//! server.

use tokio_postgres::Client;
use tokio_postgres::types::ToSql;

use super::session::{self, Connection};
use super::{APPLICATION_NAME, WorkloadHandle, WorkloadSpec};
use crate::demo::seed::postgres::connect;

/// Opens the sessions on the database of `url` and starts sending `spec`'s mix at `tps`.
pub async fn start(url: &str, spec: WorkloadSpec, tps: u32) -> Result<WorkloadHandle, String> {
    session::start::<Client>(url, spec, tps).await
}

impl Connection for Client {
    type Statements = Vec<tokio_postgres::Statement>;

    async fn connect(url: &str) -> Result<Client, String> {
        connect(url, APPLICATION_NAME).await
    }

    fn is_closed(&self) -> bool {
        Client::is_closed(self)
    }

    async fn max_id(&mut self) -> Result<i64, String> {
        Ok(self
            .query_one("SELECT coalesce(max(id), 0) FROM public.orders", &[])
            .await
            .map_err(|e| format!("workload: cannot read the orders table: {e}"))?
            .get(0))
    }

    /// Session settings (an application does not queue forever behind a lock) and the
    /// statements of the version running.
    async fn prepare(
        &mut self,
        spec: &WorkloadSpec,
        deployed: bool,
    ) -> Result<Vec<tokio_postgres::Statement>, String> {
        self.batch_execute("SET lock_timeout = '2s'; SET statement_timeout = '10s'")
            .await
            .map_err(|e| format!("workload: {}", text(&e)))?;
        let mut out = Vec::new();
        for s in &spec.statements {
            out.push(
                Client::prepare(self, s.sql(deployed))
                    .await
                    .map_err(|e| format!("workload: statement {:?}: {}", s.name, text(&e)))?,
            );
        }
        Ok(out)
    }

    async fn execute(
        &mut self,
        statements: &Vec<tokio_postgres::Statement>,
        i: usize,
        values: &[i64],
    ) -> Result<Option<i64>, String> {
        let params: Vec<&(dyn ToSql + Sync)> =
            values.iter().map(|v| v as &(dyn ToSql + Sync)).collect();
        let rows = self
            .query(&statements[i], &params)
            .await
            .map_err(|e| text(&e))?;
        Ok(rows.first().and_then(new_id))
    }
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
    use std::time::Duration;

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
        use crate::demo::seed::postgres as pg_seed;
        let pg = server().await;
        let root = pg.dir().to_path_buf();
        pg_seed::create_database(&pg.url("postgres")).await.unwrap();
        let url = pg.url(seed::DEMO_DATABASE);
        pg_seed::seed_orders(&url, 5000).await.unwrap();

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
        let locker = pg_seed::connect(&url, "test-locker").await.unwrap();
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
        use crate::demo::seed::postgres as pg_seed;
        let pg = server().await;
        let url = pg.url(seed::DEMO_DATABASE);
        pg_seed::create_database(&pg.url("postgres")).await.unwrap();
        pg_seed::seed_orders(&url, 2000).await.unwrap();
        let check = pg_seed::connect(&url, "test-check").await.unwrap();
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
