//! Seeds the demo database: the database `shop` and its `orders` table with N rows. The SQL
//! and the driver are the target family's ([`postgres`]).

pub mod postgres;

pub use postgres::{connect, create_database, seed_orders};

/// The demo table's SQL: plain SQL, rows from the setting `pacer_demo.rows`.
pub const ORDERS_TABLE_SQL: &str = include_str!("../../../demo/orders-table.sql");
/// The database the demo migrates.
pub const DEMO_DATABASE: &str = "shop";
