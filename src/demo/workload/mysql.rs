//! The demo's workload on MySQL/MariaDB (mysql_async): its sessions' connections, their prepared
//! statements (the spec's `$1`, `$2`… sent as `?`), the new order's id from `LAST_INSERT_ID()`,
//! and the driver's errors. The loop around them is [`super::session`]'s.

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Params, Statement, Value};

use super::session::{self, Connection};
use super::{APPLICATION_NAME, WorkloadHandle, WorkloadSpec};
use crate::demo::seed::mariadb::connect;

/// Session settings, so that the application fails a statement instead of queueing behind
/// pacer's DDL or a row lock for long: the metadata-lock and row-lock waits, and the statement
/// (MariaDB's `max_statement_time`, seconds), as `lock_timeout` and `statement_timeout` bound
/// them on PostgreSQL.
const SESSION_SETTINGS: &str =
    "SET SESSION lock_wait_timeout = 2, innodb_lock_wait_timeout = 2, max_statement_time = 10";

/// Opens the sessions on the database of `url` (`mysql://user@host:port/db`) and starts sending
/// `spec`'s mix at `tps`.
pub async fn start(url: &str, spec: WorkloadSpec, tps: u32) -> Result<WorkloadHandle, String> {
    session::start::<MyConnection>(url, spec, tps).await
}

/// One session's connection, and whether the driver gave it up.
pub(super) struct MyConnection {
    conn: Conn,
    broken: bool,
}

/// A prepared statement: the server's, which parameter each `?` takes, and whether it places an
/// order (then its id is the connection's last insert id).
pub(super) struct Prepared {
    statement: Statement,
    order: Vec<usize>,
    inserts: bool,
}

impl Connection for MyConnection {
    type Statements = Vec<Prepared>;

    async fn connect(url: &str) -> Result<MyConnection, String> {
        Ok(MyConnection {
            conn: connect(url, APPLICATION_NAME).await?,
            broken: false,
        })
    }

    fn is_closed(&self) -> bool {
        self.broken
    }

    async fn max_id(&mut self) -> Result<i64, String> {
        let max: Option<i64> = self
            .conn
            .query_first("SELECT COALESCE(MAX(id), 0) FROM orders")
            .await
            .map_err(|e| format!("workload: cannot read the orders table: {}", self.text(e)))?;
        Ok(max.unwrap_or(0))
    }

    async fn prepare(
        &mut self,
        spec: &WorkloadSpec,
        deployed: bool,
    ) -> Result<Vec<Prepared>, String> {
        if let Err(e) = self.conn.query_drop(SESSION_SETTINGS).await {
            return Err(format!("workload: {}", self.text(e)));
        }
        let mut out = Vec::new();
        for s in &spec.statements {
            let (sql, order) = positional(s.sql(deployed));
            match self.conn.prep(sql.as_str()).await {
                Ok(statement) => out.push(Prepared {
                    statement,
                    order,
                    inserts: sql.trim_start().to_ascii_uppercase().starts_with("INSERT"),
                }),
                Err(e) => {
                    return Err(format!(
                        "workload: statement {:?}: {}",
                        s.name,
                        self.text(e)
                    ));
                }
            }
        }
        Ok(out)
    }

    async fn execute(
        &mut self,
        statements: &Vec<Prepared>,
        i: usize,
        values: &[i64],
    ) -> Result<Option<i64>, String> {
        let p = &statements[i];
        let params = Params::Positional(p.order.iter().map(|&k| Value::Int(values[k])).collect());
        match self.conn.exec_drop(&p.statement, params).await {
            Ok(()) if p.inserts => Ok(self
                .conn
                .last_insert_id()
                .and_then(|id| i64::try_from(id).ok())
                .filter(|&id| id > 0)),
            Ok(()) => Ok(None),
            Err(e) => Err(self.text(e)),
        }
    }
}

impl MyConnection {
    /// The server's message when there is one; marks the connection broken when the driver
    /// says it is.
    fn text(&mut self, e: mysql_async::Error) -> String {
        if e.is_fatal() {
            self.broken = true;
        }
        match e {
            mysql_async::Error::Server(s) => s.message,
            other => other.to_string(),
        }
    }
}

/// `sql` with each `$k` made a `?`, and the parameter (0-based) each `?` takes, in order.
fn positional(sql: &str) -> (String, Vec<usize>) {
    let mut out = String::with_capacity(sql.len());
    let mut order = Vec::new();
    let mut chars = sql.char_indices().peekable();
    while let Some((_, c)) = chars.next() {
        let mut digits = String::new();
        if c == '$' {
            while let Some((_, d)) = chars.peek().filter(|(_, d)| d.is_ascii_digit()) {
                digits.push(*d);
                chars.next();
            }
        }
        match digits.parse::<usize>() {
            Ok(k) if k >= 1 => {
                out.push('?');
                order.push(k - 1);
            }
            _ => {
                out.push(c);
                out.push_str(&digits);
            }
        }
    }
    (out, order)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::demo::Engine;
    use crate::demo::seed::mariadb as seed;
    use crate::servers::mariadb::MariaDbServer;

    #[test]
    fn dollar_parameters_become_question_marks_in_the_order_they_appear() {
        assert_eq!(
            positional("UPDATE orders SET amount_cents = $2, amount = $2 / 100.0 WHERE id = $1"),
            (
                "UPDATE orders SET amount_cents = ?, amount = ? / 100.0 WHERE id = ?".into(),
                vec![1, 1, 0]
            )
        );
        assert_eq!(
            positional("SELECT '$', $0, $x, $12"),
            ("SELECT '$', $0, $x, ?".into(), vec![11])
        );
    }

    /// A throwaway server with `shop` and its orders, started off the async threads.
    async fn server(rows: u64) -> (MariaDbServer, String) {
        let db = tokio::task::spawn_blocking(MariaDbServer::start)
            .await
            .unwrap();
        seed::create_database(&db.url("")).await.unwrap();
        let url = db.url(crate::demo::seed::DEMO_DATABASE);
        seed::seed_orders(&url, rows).await.unwrap();
        (db, url)
    }

    /// A real server, a real workload: it follows its rate, counts a lock wait's failures
    /// without stopping, and after the deploy every insert and amount update writes amount.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn follows_its_rate_fails_softly_behind_a_lock_and_writes_amount_once_deployed() {
        if !crate::servers::mariadb::binaries_available() {
            eprintln!("skipped: MariaDB server binaries are not installed");
            return;
        }
        let (db, url) = server(3000).await;
        let count = |sql: &str| -> i64 { db.sql("shop", sql).parse().unwrap() };

        let spec = WorkloadSpec::bundled_for(Engine::MariaDb);
        let workload = start(&url, spec, 200).await.unwrap();
        tokio::time::sleep(Duration::from_secs(2)).await;
        let s = workload.stats();
        assert!((150..=440).contains(&s.done), "{s:?}");
        assert_eq!(s.errors, 0, "{s:?}");
        assert!(
            count("SELECT MAX(id) FROM orders") > 3000,
            "no order placed"
        );

        // A table lock longer than the workload's lock waits: failures, then it goes on.
        let mut locker = connect(&url, "test-locker").await.unwrap();
        locker.query_drop("LOCK TABLES orders WRITE").await.unwrap();
        tokio::time::sleep(Duration::from_millis(2600)).await;
        locker.query_drop("UNLOCK TABLES").await.unwrap();
        locker.disconnect().await.unwrap();
        let s = workload.stats();
        assert!(s.errors > 0, "{s:?}");
        assert!(
            s.last_error.as_deref().unwrap_or("").contains("timeout"),
            "{s:?}"
        );
        let before = s.done;
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert!(workload.stats().done > before, "stopped after failures");

        // The deploy: from then on inserts and amount_cents updates write amount.
        db.sql("shop", "ALTER TABLE orders ADD COLUMN amount decimal(14,2)");
        let errors_before = workload.stats().errors;
        assert!(workload.control().deploy());
        assert!(
            workload
                .control()
                .wait_rolled_out(Duration::from_secs(5))
                .await
        );
        let boundary = count("SELECT MAX(id) FROM orders");
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let stats = workload.stop().await;
        assert_eq!(stats.errors, errors_before, "{stats:?}");
        assert!(
            count(&format!(
                "SELECT COUNT(*) FROM orders WHERE id > {boundary}"
            )) > 10
        );
        assert_eq!(
            count(&format!(
                "SELECT COUNT(*) FROM orders WHERE id > {boundary} \
                 AND NOT (amount <=> CAST(amount_cents / 100.0 AS DECIMAL(14,2)))"
            )),
            0,
            "an insert after the deploy left amount unset or wrong"
        );
        assert_eq!(
            count(
                "SELECT COUNT(*) FROM orders WHERE amount IS NOT NULL \
                 AND amount <> CAST(amount_cents / 100.0 AS DECIMAL(14,2))"
            ),
            0
        );
        let root = db.dir().to_path_buf();
        tokio::task::spawn_blocking(move || drop(db)).await.unwrap();
        assert!(!root.exists());
    }
}
