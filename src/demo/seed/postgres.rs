//! Seeding on PostgreSQL: `CREATE DATABASE shop`, then `orders` with N rows from the bundled
//! `demo/orders-table.sql` (the same file `psql -f demo/seed.sql` runs on staging).

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use tokio_postgres::{Client, NoTls};

use super::{DEMO_DATABASE, ORDERS_TABLE_SQL};

/// Connects without TLS (the demo server listens on 127.0.0.1 only) and drives the connection
/// on its own task.
pub async fn connect(url: &str, application_name: &str) -> Result<Client, String> {
    let mut config: tokio_postgres::Config = url
        .parse()
        .map_err(|e| format!("bad demo URL {url}: {e}"))?;
    config
        .application_name(application_name)
        .connect_timeout(Duration::from_secs(10));
    let (client, connection) = config
        .connect(NoTls)
        .await
        .map_err(|e| format!("cannot connect to the demo server at {url}: {e}"))?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(client)
}

/// Creates the demo database on the server of `admin_url` (its `postgres` database).
pub async fn create_database(admin_url: &str) -> Result<(), String> {
    let client = connect(admin_url, "pacer-demo-seed").await?;
    client
        .batch_execute(&format!("CREATE DATABASE {DEMO_DATABASE}"))
        .await
        .map_err(|e| format!("cannot create the demo database: {e}"))
}

/// Creates `public.orders` with `rows` rows in the database of `url`, saying on stderr what it
/// does and how long it took. Returns the time taken.
pub async fn seed_orders(url: &str, rows: u64) -> Result<Duration, String> {
    let client = connect(url, "pacer-demo-seed").await?;
    let started = Instant::now();
    let label = format!(
        "pacer demo: seeding {} rows into {DEMO_DATABASE}.public.orders",
        crate::format::thousands(rows)
    );
    let work = async {
        client
            .batch_execute(&format!(
                "SET pacer_demo.rows = {rows}; SET synchronous_commit = off;"
            ))
            .await?;
        client.batch_execute(ORDERS_TABLE_SQL).await
    };
    tokio::pin!(work);
    // On a terminal the line counts the seconds; elsewhere it is written once.
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
