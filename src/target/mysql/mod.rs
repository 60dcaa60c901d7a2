//! The MySQL family (MySQL 8.0+, MariaDB 10.6+): not built yet. Until it is, a `mysql://` or
//! `mariadb://` target is refused here, before anything is sent to a server, with a message
//! that says so plainly; the next issue replaces this with the real target.

use super::family::Family;

/// Why a MySQL-family target cannot run yet, and what to do. Names no part of the URL (it may
/// hold a password).
pub fn not_built_yet(source: &str) -> String {
    format!(
        "{source} names a {} server (mysql:// or mariadb://): this version of pacer runs \
         migrations on PostgreSQL only; the {} target is not built yet. Nothing was sent to the \
         server. Use a postgres:// target, or a pacer version with MySQL/MariaDB support.",
        Family::MySql,
        Family::MySql
    )
}
