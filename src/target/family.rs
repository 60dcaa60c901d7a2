//! Which database family a target belongs to, chosen by how the operator wrote it, and what
//! each family can honour of a plan. Pure: no connection is made here.
//!
//! `postgres://`, `postgresql://` and a libpq `key=value` string are PostgreSQL; `mysql://`
//! and `mariadb://` are the MySQL family (MySQL and MariaDB). Anything else is left to the
//! PostgreSQL resolver, whose error names the accepted forms.

use std::fmt;

use crate::plan::{Dialect, Plan, dialect};

/// A family of databases pacer drives through one target implementation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Family {
    /// PostgreSQL 12 and later (`src/target/postgres/`).
    #[default]
    Postgres,
    /// MySQL 8.0+ and MariaDB 10.6+ (`src/target/mysql/`).
    MySql,
}

impl Family {
    /// The family of `target` as written (a URL, or a libpq key=value string); None when its
    /// scheme is none pacer knows.
    pub fn of(target: &str) -> Option<Family> {
        let t = target.trim();
        match t.split_once("://") {
            Some((scheme, _)) => match scheme.to_ascii_lowercase().as_str() {
                "postgres" | "postgresql" => Some(Family::Postgres),
                "mysql" | "mariadb" => Some(Family::MySql),
                _ => None,
            },
            // `host=db1 dbname=shop`: libpq's key=value form.
            None if t.contains('=') => Some(Family::Postgres),
            None => None,
        }
    }

    /// The family named in words (as [`fmt::Display`] writes it), or None.
    pub fn from_name(name: &str) -> Option<Family> {
        [Family::Postgres, Family::MySql]
            .into_iter()
            .find(|f| f.to_string() == name)
    }

    /// The family of the target `args` give (flag, PACER_TARGET, DATABASE_URL), PostgreSQL when
    /// they do not say.
    pub fn of_target(flag: Option<&str>, env: &dyn Fn(&str) -> Option<String>) -> Family {
        given_target(flag, env)
            .as_deref()
            .and_then(Family::of)
            .unwrap_or(Family::Postgres)
    }

    /// How the family writes SQL, for the plan's checks.
    pub fn dialect(self) -> &'static Dialect {
        match self {
            Family::Postgres => &dialect::POSTGRES,
            Family::MySql => &dialect::MYSQL,
        }
    }

    /// The plan's keys this family cannot honour, each with why and what to do.
    pub fn unsupported(self, plan: &Plan) -> Vec<String> {
        let mut out = Vec::new();
        if self == Family::Postgres && !plan.mysql.replicas.is_empty() {
            out.push(
                "[mysql] replicas: a PostgreSQL target finds its replicas itself \
                 (pg_stat_replication); remove the section"
                    .to_string(),
            );
        }
        if self == Family::MySql {
            if plan.postgres.cancel_autovacuum_set.is_some() {
                out.push(format!(
                    "[postgres] cancel_autovacuum: {self} has no autovacuum to cancel (InnoDB \
                     purges in the background, and its DDL does not wait for it); remove the \
                     section"
                ));
            }
            if plan.throttle.pause_on_autovacuum {
                out.push(format!(
                    "[throttle] pause_on_autovacuum: {self} has no autovacuum (InnoDB purges in \
                     the background, and its DDL does not wait for it); remove the key"
                ));
            }
            if plan.throttle.max_wal_rate.is_some() {
                out.push(format!(
                    "[throttle] max_wal_rate: {self} writes no WAL; its replicas apply the binary \
                     log: write max_binlog_rate instead (binlog bytes per second)"
                ));
            }
        }
        if self == Family::Postgres {
            if plan.throttle.max_binlog_rate.is_some() {
                out.push(format!(
                    "[throttle] max_binlog_rate: {self} has no binary log; its replicas apply the \
                     WAL: write max_wal_rate instead (WAL bytes per second)"
                ));
            }
            if plan.throttle.max_history_length.is_some() {
                out.push(format!(
                    "[throttle] max_history_length: {self} has no undo history list (that is \
                     InnoDB's). Its analogue is dead tuples that vacuum cannot remove while the \
                     xmin horizon is held back (an old transaction, a replication slot, a \
                     standby's hot_standby_feedback), which pacer does not throttle on; remove \
                     the key, or bound it with throttle_query (e.g. SELECT n_dead_tup > 1000000 \
                     FROM pg_stat_user_tables WHERE relid = 'orders'::regclass)"
                ));
            }
        }
        out
    }
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Family::Postgres => "PostgreSQL",
            Family::MySql => "MySQL/MariaDB",
        })
    }
}

/// What a family calls the figures the screen shows of it, in the family's own words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FigureWords {
    /// The redo stream the server writes (PostgreSQL: `WAL`).
    pub redo: &'static str,
    /// Its rate, as a figure's name (`WAL rate`).
    pub redo_rate: &'static str,
    /// The server's own background maintenance of a table (PostgreSQL: `autovacuum`).
    pub maintenance: &'static str,
    /// Rows deleted or updated away and not yet reclaimed (PostgreSQL: `dead tuples`).
    pub dead_rows: &'static str,
    /// Whether that figure is the server's, not the table's (MySQL/MariaDB: the history list
    /// length, which its purge works down): shown with the maintenance, not the table.
    pub dead_rows_server_wide: bool,
    /// Sessions running a statement now, after their count (PostgreSQL: `active`; MySQL:
    /// `running`, as in `Threads_running`).
    pub active: &'static str,
    /// What identifies a session, as `KILL` or `pg_terminate_backend` takes it (`pid`).
    pub session: &'static str,
    /// Where a session comes from, as the server names it (`application`: its
    /// application_name; MySQL/MariaDB: the client's host and port).
    pub client: &'static str,
    /// The age of a session's open transaction, in the server's own abbreviation
    /// (`xact_start`; InnoDB's `trx_started`).
    pub transaction_age: &'static str,
}

impl Family {
    /// The words for this family's figures.
    pub fn figure_words(self) -> FigureWords {
        match self {
            Family::Postgres => FigureWords {
                redo: "WAL",
                redo_rate: "WAL rate",
                maintenance: "autovacuum",
                dead_rows: "dead tuples",
                dead_rows_server_wide: false,
                active: "active",
                session: "pid",
                client: "application",
                transaction_age: "xact age",
            },
            Family::MySql => FigureWords {
                redo: "binlog",
                redo_rate: "binlog rate",
                maintenance: "purge",
                dead_rows: "history",
                dead_rows_server_wide: true,
                active: "running",
                session: "connection",
                client: "client",
                transaction_age: "trx age",
            },
        }
    }
}

impl Default for FigureWords {
    fn default() -> FigureWords {
        Family::Postgres.figure_words()
    }
}

/// The target as the operator gave it, in the order every command reads it: the `--target`
/// flag, else `PACER_TARGET`, else `DATABASE_URL` (blank values do not count).
pub fn given_target(flag: Option<&str>, env: &dyn Fn(&str) -> Option<String>) -> Option<String> {
    let given = |v: &String| !v.trim().is_empty();
    flag.map(str::to_string)
        .filter(given)
        .or_else(|| env("PACER_TARGET").filter(given))
        .or_else(|| env("DATABASE_URL").filter(given))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn the_family_comes_from_the_scheme_and_a_key_value_string_is_postgres() {
        for (target, family) in [
            ("postgres://app@db1/shop", Some(Family::Postgres)),
            ("postgresql://db1/shop", Some(Family::Postgres)),
            ("POSTGRES://db1/shop", Some(Family::Postgres)),
            ("host=db1 dbname=shop user=app", Some(Family::Postgres)),
            ("mysql://app:secret@db1:3306/shop", Some(Family::MySql)),
            ("mariadb://db1/shop", Some(Family::MySql)),
            ("oracle://db1/shop", None),
            ("db1", None),
        ] {
            assert_eq!(Family::of(target), family, "{target}");
        }
    }

    #[test]
    fn a_family_named_in_words_reads_back_and_an_unsaid_target_is_postgres() {
        for f in [Family::Postgres, Family::MySql] {
            assert_eq!(Family::from_name(&f.to_string()), Some(f));
        }
        assert_eq!(Family::from_name("Oracle"), None);
        assert_eq!(Family::of_target(None, &|_| None), Family::Postgres);
        assert_eq!(
            Family::of_target(Some("mariadb://db/shop"), &|_| None),
            Family::MySql
        );
        assert_eq!(Family::MySql.figure_words().redo, "binlog");
    }

    #[test]
    fn the_target_is_the_flag_else_pacer_target_else_database_url() {
        let env = |name: &str| match name {
            "PACER_TARGET" => Some("  ".to_string()),
            "DATABASE_URL" => Some("mysql://db/shop".to_string()),
            _ => None,
        };
        assert_eq!(
            given_target(Some("postgres://a/b"), &env).as_deref(),
            Some("postgres://a/b")
        );
        assert_eq!(
            given_target(None, &env).as_deref(),
            Some("mysql://db/shop"),
            "a blank PACER_TARGET does not count"
        );
        assert_eq!(given_target(Some(""), &|_| None), None);
    }

    #[test]
    fn plan_keys_a_family_cannot_honour_are_named_with_the_family() {
        let text = "table = \"orders\"\n[column]\nname = \"amount\"\ntype = \"int\"\n\
                    [throttle]\npause_on_autovacuum = true\nmax_wal_rate = 50000000\n";
        let plan = Plan::parse(Path::new("p.toml"), text).expect("the plan parses");
        assert!(Family::Postgres.unsupported(&plan).is_empty());
        let refused = Family::MySql.unsupported(&plan);
        assert_eq!(refused.len(), 2, "{refused:?}");
        assert!(refused[0].contains("pause_on_autovacuum: MySQL/MariaDB has no autovacuum"));
        assert!(refused[1].contains("max_wal_rate: MySQL/MariaDB writes no WAL"));
        assert!(refused[1].contains("write max_binlog_rate instead"));

        let text = "table = \"orders\"\n[column]\nname = \"amount\"\ntype = \"int\"\n\
                    [postgres]\ncancel_autovacuum = false\n";
        let plan = Plan::parse(Path::new("p.toml"), text).expect("the plan parses");
        assert!(!plan.postgres.cancel_autovacuum());
        assert!(Family::Postgres.unsupported(&plan).is_empty());
        let refused = Family::MySql.unsupported(&plan);
        assert_eq!(refused.len(), 1, "{refused:?}");
        assert!(
            refused[0].contains("[postgres] cancel_autovacuum: MySQL/MariaDB has no autovacuum")
        );
    }

    #[test]
    fn the_binlog_rate_and_the_history_length_are_the_mysql_family_s_and_threads_running_both() {
        let text = "table = \"orders\"\n[column]\nname = \"amount\"\ntype = \"int\"\n\
                    [throttle]\nmax_binlog_rate = 50000000\nmax_history_length = 1000000\n\
                    max_threads_running = 25\n";
        let plan = Plan::parse(Path::new("p.toml"), text).expect("the plan parses");
        assert!(Family::MySql.unsupported(&plan).is_empty());
        let refused = Family::Postgres.unsupported(&plan);
        assert_eq!(refused.len(), 2, "{refused:?}");
        assert!(refused[0].contains("max_binlog_rate: PostgreSQL has no binary log"));
        assert!(refused[0].contains("write max_wal_rate instead"));
        assert!(refused[1].contains("max_history_length: PostgreSQL has no undo history list"));
        assert!(refused[1].contains("xmin horizon"), "{}", refused[1]);
        assert!(refused[1].contains("throttle_query"), "{}", refused[1]);
    }
}

#[cfg(test)]
mod blocker_words {
    use super::Family;
    use crate::target::Blocker;

    #[test]
    fn a_blocker_is_named_in_its_servers_words() {
        let mut b = Blocker {
            pid: 42,
            application: String::new(),
            user: "app".into(),
            state: "Sleep".into(),
            xact_age_s: Some(75.0),
            query: String::new(),
            pacer: false,
            family: Family::MySql,
        };
        let text = b.to_string();
        assert!(
            text.starts_with("connection 42 (client unknown, user app, Sleep, transaction open"),
            "{text}"
        );
        b.family = Family::Postgres;
        assert!(
            b.to_string().starts_with("pid 42 (no application name"),
            "{b}"
        );
        // A state file from before the field existed reads as PostgreSQL's.
        let old: Blocker = serde_json::from_str(
            r#"{"pid":7,"application":"psql","user":"u","state":"active","xact_age_s":null,"query":"SELECT 1"}"#,
        )
        .unwrap();
        assert_eq!(old.family, Family::Postgres);
    }
}
