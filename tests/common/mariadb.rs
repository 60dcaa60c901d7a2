//! Helpers for the tests that run on a throwaway MariaDB.

use pacer::servers::mariadb::MariaDbServer;

/// Whether to skip a MariaDB test: the server binaries are not installed. Under CI that is a
/// failure instead (`.ci/run` installs them).
pub fn skip() -> bool {
    if pacer::servers::mariadb::binaries_available() {
        return false;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "MariaDB server binaries are missing; .ci/run installs them"
    );
    eprintln!("skipped: MariaDB server binaries are not installed");
    true
}

/// The migration's `rows_done` in the state table (0 before there is one).
pub fn rows_done(db: &MariaDbServer) -> i64 {
    db.try_sql("", "SELECT rows_done FROM pacer.migrations")
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}
