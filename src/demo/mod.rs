//! `pacer demo`'s parts: a throwaway PostgreSQL or MariaDB ([`cluster`]), the demo table
//! ([`seed`]) and a synthetic application that writes to it while the migration runs
//! ([`workload`]), and that application's side of the screen ([`companion`]). The command itself
//! is `commands::demo`.

pub mod cluster;
pub mod companion;
pub mod seed;
pub mod workload;

/// The bundled demo plan (`demo/orders.toml`), for PostgreSQL.
pub const DEMO_PLAN: &str = include_str!("../../demo/orders.toml");
/// The same plan for MySQL/MariaDB (`demo/orders-mysql.toml`).
pub const DEMO_PLAN_MYSQL: &str = include_str!("../../demo/orders-mysql.toml");

/// The database server a demo runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Engine {
    /// PostgreSQL (15 or later).
    #[default]
    Postgres,
    /// MariaDB (10.6 or later), pacer's MySQL/MariaDB target.
    #[value(name = "mariadb")]
    MariaDb,
}

impl Engine {
    /// The server's name, as people write it.
    pub fn product(self) -> &'static str {
        match self {
            Engine::Postgres => "PostgreSQL",
            Engine::MariaDb => "MariaDB",
        }
    }

    /// The bundled plan in this engine's SQL.
    pub fn plan(self) -> &'static str {
        match self {
            Engine::Postgres => DEMO_PLAN,
            Engine::MariaDb => DEMO_PLAN_MYSQL,
        }
    }

    /// The plan's file name in the demo's directory.
    pub fn plan_file(self) -> &'static str {
        match self {
            Engine::Postgres => "orders.toml",
            Engine::MariaDb => "orders-mysql.toml",
        }
    }
}
