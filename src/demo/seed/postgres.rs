//! Seeding on PostgreSQL: `CREATE DATABASE shop`, then `orders` with N rows from the bundled
//! `demo/orders-table.sql` (the same file `psql -f demo/seed.sql` runs on staging).

use std::time::Duration;

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
    let work = async {
        client
            .batch_execute(&format!(
                "SET pacer_demo.rows = {rows}; SET synchronous_commit = off;"
            ))
            .await?;
        client.batch_execute(ORDERS_TABLE_SQL).await
    };
    super::seeding(rows, &format!("{DEMO_DATABASE}.public.orders"), work).await
}
