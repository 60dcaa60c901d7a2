//! What each phase runs on MySQL/MariaDB, with the lock each statement takes and what it does
//! to replicas: `pacer plan`'s view.
//!
//! Locks in MySQL's words: DDL takes the table's metadata lock (MDL) EXCLUSIVE, briefly for an
//! instant change or a trigger, at the start and end of an online rebuild; a batch takes row
//! locks (InnoDB record locks) on its key range and a SHARED_WRITE metadata lock, which lets
//! every other DML go on. Replicas apply each transaction after it commits on the primary, in
//! order: a batch arrives as its row events; an ALTER as one statement that replays whole.

use super::sql::{Flavor, MySqlText};
use crate::plan::{Hold, Phase, PhasePlan, Plan, Step};

const MDL_EXCLUSIVE: &str = "metadata lock EXCLUSIVE";

struct S<'a> {
    title: &'a str,
    sql: String,
    lock: &'a str,
    hold: Hold,
    rewrites: bool,
    scans: bool,
    note: String,
    replicas: &'a str,
}

fn step(s: S<'_>) -> Step {
    Step {
        title: s.title.into(),
        sql: s.sql,
        lock: s.lock.into(),
        hold: s.hold,
        rewrites: s.rewrites,
        scans: s.scans,
        note: s.note,
        replicas: s.replicas.into(),
    }
}

const DDL_ON_REPLICAS: &str = "the same statement, applied in order after the primary commits it: \
     instant there too, but it waits for the replica's own queries on the table";

/// Every phase the plan runs, with its statements.
pub fn phases(plan: &Plan, sql: &MySqlText) -> Vec<PhasePlan> {
    let s = &plan.safety;
    let wait = match sql.flavor {
        Flavor::MariaDb => format!(
            "the metadata-lock wait is bounded by WAIT {} (lock_timeout)",
            humantime::format_duration(s.lock_timeout)
        ),
        Flavor::MySql => format!(
            "the metadata-lock wait is bounded by lock_wait_timeout = {} s (lock_timeout, in whole seconds)",
            sql.lock_wait_timeout_secs()
        ),
    };
    let retries = format!(
        "{wait}; up to {} attempts with backoff; not sent while a connection has held the table's \
         metadata lock longer than lock_timeout; blockers are reported",
        s.ddl_retries
    );
    let trigger_wait = format!(
        "its metadata-lock wait is bounded by lock_wait_timeout = {} s; up to {} attempts with backoff",
        sql.lock_wait_timeout_secs(),
        s.ddl_retries
    );
    let batch_bound = match sql.flavor {
        Flavor::MariaDb => format!(
            "bounded by max_statement_time = batch_timeout ({})",
            humantime::format_duration(s.batch_timeout)
        ),
        Flavor::MySql => format!(
            "ended with KILL QUERY after batch_timeout ({})",
            humantime::format_duration(s.batch_timeout)
        ),
    };
    let with_index = sql.index_name().is_some();
    plan.phases()
        .into_iter()
        .map(|phase| {
            let (summary, steps): (String, Vec<Step>) = match phase {
                Phase::Preflight => (
                    "read-only checks: server and version, table (InnoDB, key, row format, FULLTEXT), \
                     column, binlog format and replicas; the column's instant ADD and the backfill \
                     expression are tried on a temporary copy of the table's definition with sample rows"
                        .into(),
                    vec![],
                ),
                Phase::AddColumn => (
                    "add the column instantly: a change of the data dictionary, no copy, no rebuild".into(),
                    vec![step(S {
                        title: "add column",
                        sql: sql.add_column(),
                        lock: MDL_EXCLUSIVE,
                        hold: Hold::Brief,
                        rewrites: false,
                        scans: false,
                        note: format!(
                            "ALGORITHM=INSTANT: the server refuses rather than copy the table; {retries}"
                        ),
                        replicas: DDL_ON_REPLICAS,
                    })],
                ),
                Phase::Sync => (
                    "keep new writes filled: triggers compute the column for rows inserted or \
                     updated without it"
                        .into(),
                    vec![
                        step(S {
                            title: "sync trigger for updates",
                            sql: sql.create_sync_update_trigger().unwrap_or_default(),
                            lock: MDL_EXCLUSIVE,
                            hold: Hold::Brief,
                            rewrites: false,
                            scans: false,
                            note: format!(
                                "first, so that no filled row goes stale between the two; {trigger_wait}; \
                                 for pacer's own batches its body is one comparison"
                            ),
                            replicas: "a trigger definition only: with binlog_format=ROW the rows it \
                                       changes reach the replicas as row events and the trigger does \
                                       not run there",
                        }),
                        step(S {
                            title: "sync trigger for inserts",
                            sql: sql.create_sync_insert_trigger().unwrap_or_default(),
                            lock: MDL_EXCLUSIVE,
                            hold: Hold::Brief,
                            rewrites: false,
                            scans: false,
                            note: trigger_wait.clone(),
                            replicas: "a trigger definition only (see above)",
                        }),
                    ],
                ),
                Phase::Backfill => {
                    let nth = sql.nth_key(true, true);
                    let update = sql.batch_update(true);
                    (
                        "fill existing rows in keyset batches; each batch commits with its checkpoint".into(),
                        vec![
                            step(S {
                                title: "batch end",
                                sql: nth.sql,
                                lock: "",
                                hold: Hold::None,
                                rewrites: false,
                                scans: false,
                                note: format!(
                                    "the {}-th key after the checkpoint (a consistent read: no row locks)",
                                    plan.backfill.batch_size
                                ),
                                replicas: "nothing: a read",
                            }),
                            step(S {
                                title: "batch",
                                sql: update.map(|u| u.sql).unwrap_or_default(),
                                lock: "row locks (InnoDB)",
                                hold: Hold::PerBatch,
                                rewrites: false,
                                scans: true,
                                note: format!(
                                    "row locks on one batch ({} rows to start) until it commits; READ \
                                     COMMITTED (no gap locks under the application's inserts); {batch_bound}; \
                                     a row-lock wait is bounded by innodb_lock_wait_timeout; a timed-out \
                                     batch is retried at half the size",
                                    plan.backfill.batch_size
                                ),
                                replicas: "its row events (about twice the rows' size), applied as they \
                                           come, in order after each commit",
                            }),
                            step(S {
                                title: "checkpoint",
                                sql: sql.advance_checkpoint(),
                                lock: "row lock (state table)",
                                hold: Hold::PerBatch,
                                rewrites: false,
                                scans: false,
                                note: "same transaction as the batch; refused if another runner moved it".into(),
                                replicas: "one small row of the state table",
                            }),
                        ],
                    )
                }
                Phase::Verify => (
                    "check, chunk by chunk of keys, that no row was left unfilled".into(),
                    vec![step(S {
                        title: "verify chunk",
                        sql: sql.verify_range(true, true).sql,
                        lock: "",
                        hold: Hold::None,
                        rewrites: false,
                        scans: true,
                        note: "read-only (consistent reads), one chunk of keys per statement; under \
                               strict mode a NULL left behind would fail the NOT NULL rebuild only \
                               after all its work"
                            .into(),
                        replicas: "nothing: a read",
                    })],
                ),
                Phase::NotNull => (
                    if with_index {
                        "tighten to NOT NULL and build the index in one online rebuild (reads and writes go on)"
                            .into()
                    } else {
                        "tighten to NOT NULL in an online rebuild (reads and writes go on)".into()
                    },
                    vec![step(S {
                        title: "set NOT NULL",
                        sql: sql.set_not_null(with_index),
                        lock: MDL_EXCLUSIVE,
                        hold: Hold::Brief,
                        rewrites: true,
                        scans: true,
                        note: format!(
                            "ALGORITHM=INPLACE, LOCK=NONE: rebuilds the table while reads and writes go \
                             on; the exclusive metadata lock is taken briefly at its start and end; {retries}"
                        ),
                        replicas: "applied as ONE statement after the primary has finished the rebuild: \
                                   each replica lags by about the rebuild's duration, and pacer cannot \
                                   throttle or pause it",
                    })],
                ),
                Phase::Index => (
                    if plan.not_null_phase() {
                        "the index: built by the NOT NULL rebuild (already there, nothing runs)".into()
                    } else {
                        "build the index online (reads and writes go on)".into()
                    },
                    vec![step(S {
                        title: "add index",
                        sql: sql.add_index().unwrap_or_default(),
                        lock: MDL_EXCLUSIVE,
                        hold: Hold::Brief,
                        rewrites: false,
                        scans: true,
                        note: format!(
                            "{}; runs only if the index is not there yet; {retries}",
                            match sql.flavor {
                                Flavor::MariaDb => "ALGORITHM=NOCOPY: no table rebuild",
                                Flavor::MySql => "ALGORITHM=INPLACE",
                            }
                        ),
                        replicas: "applied as ONE statement after the primary has built the index: \
                                   each replica lags by about the build's duration",
                    })],
                ),
                Phase::Cleanup => (
                    "drop the sync triggers and record the migration as done".into(),
                    if plan.column.backfill.is_some() {
                        sql.drop_sync_triggers()
                            .into_iter()
                            .zip(["drop sync trigger for inserts", "drop sync trigger for updates"])
                            .map(|(drop, title)| {
                                step(S {
                                    title,
                                    sql: drop,
                                    lock: MDL_EXCLUSIVE,
                                    hold: Hold::Brief,
                                    rewrites: false,
                                    scans: false,
                                    note: trigger_wait.clone(),
                                    replicas: "a trigger definition only",
                                })
                            })
                            .collect()
                    } else {
                        vec![]
                    },
                ),
            };
            PhasePlan {
                phase,
                summary,
                steps,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::dialect;
    use crate::target::KeyColumn;
    use crate::target::mysql::sql::{KeyKind, KeyPart};
    use std::path::Path;

    #[test]
    fn every_step_says_its_lock_and_what_it_does_to_the_replicas() {
        let text = "table = \"shop.orders\"\n[column]\nname = \"amount\"\n\
                    type = \"decimal(14,2)\"\nbackfill = \"amount_cents / 100.0\"\n\
                    not_null = true\nindex = true\n";
        let plan = Plan::parse_with(Path::new("p.toml"), text, &dialect::MYSQL).unwrap();
        let key = vec![KeyPart {
            column: KeyColumn {
                name: "id".into(),
                sql_type: "bigint(20)".into(),
            },
            kind: KeyKind::Signed,
        }];
        let sql = MySqlText::new(
            &plan,
            Flavor::MariaDb,
            ("shop".into(), "orders".into()),
            key,
            vec!["id".into(), "amount_cents".into()],
            ("pacer".into(), "migrations".into()),
        );
        let phases = phases(&plan, &sql);
        let steps: Vec<&Step> = phases.iter().flat_map(|p| &p.steps).collect();
        assert!(steps.len() >= 9, "{}", steps.len());
        for s in &steps {
            assert!(!s.replicas.is_empty(), "{}", s.title);
            assert!(!s.sql.is_empty(), "{}", s.title);
        }
        let nn = steps.iter().find(|s| s.title == "set NOT NULL").unwrap();
        assert!(nn.sql.contains("ADD INDEX"), "{}", nn.sql);
        assert!(nn.replicas.contains("ONE statement"), "{}", nn.replicas);
        assert!(nn.rewrites);
        let add = steps.iter().find(|s| s.title == "add column").unwrap();
        assert!(add.note.contains("WAIT 2s"), "{}", add.note);
    }
}
