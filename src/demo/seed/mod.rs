//! Seeds the demo database: the database `shop` and its `orders` table with N rows. The SQL
//! and the driver are the target family's ([`postgres`], [`mariadb`]); the line that says how
//! far it got is shared ([`seeding`]).

pub mod mariadb;
pub mod postgres;

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

/// The demo table's SQL on PostgreSQL: plain SQL, rows from the setting `pacer_demo.rows`.
pub const ORDERS_TABLE_SQL: &str = include_str!("../../../demo/orders-table.sql");
/// The demo table's SQL on MariaDB: statements for the `mariadb` client (with its `DELIMITER`
/// lines), rows from the user variable `@pacer_demo_rows`.
pub const ORDERS_TABLE_MARIADB_SQL: &str = include_str!("../../../demo/orders-table-mariadb.sql");
/// The database the demo migrates.
pub const DEMO_DATABASE: &str = "shop";

/// Runs `work` (the seeding of `rows` rows into `table`), saying on stderr what it does and how
/// long it took: on a terminal the line counts the seconds, elsewhere it is written once.
/// Returns the time taken.
async fn seeding<E: std::fmt::Display>(
    rows: u64,
    table: &str,
    work: impl Future<Output = Result<(), E>>,
) -> Result<Duration, String> {
    let started = Instant::now();
    let label = format!(
        "pacer demo: seeding {} rows into {table}",
        crate::format::thousands(rows)
    );
    tokio::pin!(work);
    let terminal = std::io::stderr().is_terminal();
    let mut err = std::io::stderr();
    if !terminal {
        let _ = writeln!(err, "{label}…");
    }
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let result = loop {
        tokio::select! {
            r = &mut work => break r,
            _ = tick.tick(), if terminal => {
                let _ = write!(err, "\r{label}… {:.0} s", started.elapsed().as_secs_f64());
                let _ = err.flush();
            }
        }
    };
    let took = started.elapsed();
    let end = if terminal { "\r" } else { "" };
    match result {
        Ok(()) => {
            let _ = writeln!(err, "{end}{label}: done in {:.1} s", took.as_secs_f64());
            Ok(took)
        }
        Err(e) => {
            let _ = writeln!(err);
            Err(format!("seeding the demo table failed: {e}"))
        }
    }
}
