//! `pacer demo`'s parts: a throwaway PostgreSQL ([`cluster`]), the demo table ([`seed`]) and a
//! synthetic application that writes to it while the migration runs ([`workload`]), and that
//! application's side of the screen ([`companion`]). The command itself is `commands::demo`.

pub mod cluster;
pub mod companion;
pub mod seed;
pub mod workload;

/// The bundled demo plan (`demo/orders.toml`).
pub const DEMO_PLAN: &str = include_str!("../../demo/orders.toml");
