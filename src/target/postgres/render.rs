//! What each phase runs on PostgreSQL, with the lock each statement takes: `pacer plan`'s view.

use super::sql::PgSql;
use crate::plan::{Hold, Phase, PhasePlan, Plan, Step};

fn step(
    title: &str,
    sql: String,
    lock: &str,
    hold: Hold,
    rewrites: bool,
    scans: bool,
    note: String,
) -> Step {
    Step {
        replicas: on_replicas(title, lock).into(),
        title: title.into(),
        sql,
        lock: lock.into(),
        hold,
        rewrites,
        scans,
        note,
    }
}

/// What a step does to streaming replicas. They replay the primary's WAL in order, so a
/// statement reaches them as the WAL it writes; of the table locks only ACCESS EXCLUSIVE is
/// replayed, and on a hot standby its replay waits for the queries reading the table there.
fn on_replicas(title: &str, lock: &str) -> &'static str {
    match title {
        "batch" => {
            "its WAL (about 4× the rows' size) is replayed as it comes; max_replication_lag \
             paces the batches"
        }
        "verify chunk" => "nothing: a read",
        "validate check" => "nothing but the catalog change: the scan runs on the primary only",
        "create index" => {
            "the index's WAL (about its size), replayed as it comes; the build runs on the \
             primary only"
        }
        _ if lock == "ACCESS EXCLUSIVE" => {
            "a catalog change with its ACCESS EXCLUSIVE lock: on a hot standby, its replay waits \
             for queries on the table (up to max_standby_streaming_delay, then cancels them)"
        }
        _ => "a catalog change, replayed at once",
    }
}

/// Every phase the plan runs, with its statements.
pub fn phases(plan: &Plan, sql: &PgSql) -> Vec<PhasePlan> {
    let s = &plan.safety;
    let retries = format!(
        "lock_timeout {}, up to {} attempts with backoff; blockers are reported",
        humantime::format_duration(s.lock_timeout),
        s.ddl_retries
    );
    plan.phases()
        .into_iter()
        .map(|phase| {
            let (summary, steps) = match phase {
                Phase::Preflight => (
                    "read-only checks: server version, table, key, column, type, default and expression \
                     (tried in a rolled-back transaction on temporary tables), dependents",
                    vec![],
                ),
                Phase::AddColumn => (
                    "add the column: a catalog-only change, no rewrite, no scan",
                    vec![step(
                        "add column",
                        sql.add_column(),
                        "ACCESS EXCLUSIVE",
                        Hold::Brief,
                        false,
                        false,
                        retries.clone(),
                    )],
                ),
                Phase::Sync => (
                    "keep new writes filled: triggers compute the column for rows inserted or \
                     updated without it",
                    vec![
                        step(
                            "sync function",
                            sql.create_sync_function().unwrap_or_default(),
                            "",
                            Hold::None,
                            false,
                            false,
                            String::new(),
                        ),
                        step(
                            "sync trigger for inserts",
                            sql.create_sync_insert_trigger(),
                            "SHARE ROW EXCLUSIVE",
                            Hold::Brief,
                            false,
                            false,
                            format!(
                                "{retries}; the function runs only for rows inserted without the column"
                            ),
                        ),
                        step(
                            "sync trigger for updates",
                            sql.create_sync_update_trigger(),
                            "SHARE ROW EXCLUSIVE",
                            Hold::Brief,
                            false,
                            false,
                            "same transaction; the function runs only when an update leaves the column \
                             unchanged, so pacer's own batches never call it"
                                .into(),
                        ),
                    ],
                ),
                Phase::Backfill => (
                    "fill existing rows in keyset batches; each batch commits with its checkpoint",
                    vec![
                        step(
                            "batch",
                            sql.batch_statement(true).unwrap_or_default(),
                            "ROW EXCLUSIVE",
                            Hold::PerBatch,
                            false,
                            true,
                            format!(
                                "one statement, sent with its BEGIN and COMMIT in one round trip: \
                                 the end of the batch (the {}-th key after the checkpoint $3, at \
                                 most the end of the range $4), the update of its pending rows, \
                                 and the checkpoint, which commits with them and is refused (nothing \
                                 updated) if another runner moved it. Row locks on one batch for \
                                 its duration; statement_timeout {}; a timed-out batch is retried \
                                 at half the size",
                                plan.backfill.batch_size,
                                humantime::format_duration(s.batch_timeout)
                            ),
                        ),
                    ],
                ),
                Phase::Verify => (
                    "check, chunk by chunk of keys, that no row was left unfilled",
                    vec![step(
                        "verify chunk",
                        sql.verify_range(true, true),
                        "ACCESS SHARE",
                        Hold::PerBatch,
                        false,
                        true,
                        "read-only, one chunk of keys per statement".into(),
                    )],
                ),
                Phase::NotNull => (
                    "tighten to NOT NULL without a long exclusive lock",
                    vec![
                        step(
                            "add NOT VALID check",
                            sql.add_not_null_check(),
                            "ACCESS EXCLUSIVE",
                            Hold::Brief,
                            false,
                            false,
                            retries.clone(),
                        ),
                        step(
                            "validate check",
                            sql.validate_not_null_check(),
                            "SHARE UPDATE EXCLUSIVE",
                            Hold::Long,
                            false,
                            true,
                            "scans the table; reads and writes go on; no lock or statement timeout".into(),
                        ),
                        step(
                            "set NOT NULL",
                            sql.set_not_null(),
                            "ACCESS EXCLUSIVE",
                            Hold::Brief,
                            false,
                            false,
                            format!("no scan: uses the valid check; {retries}"),
                        ),
                        step(
                            "drop check",
                            sql.drop_not_null_check(),
                            "ACCESS EXCLUSIVE",
                            Hold::Brief,
                            false,
                            false,
                            "same transaction as SET NOT NULL".into(),
                        ),
                    ],
                ),
                Phase::Index => (
                    "build the index without blocking writes",
                    vec![step(
                        "create index",
                        sql.create_index().unwrap_or_default(),
                        "SHARE UPDATE EXCLUSIVE",
                        Hold::Long,
                        false,
                        true,
                        "two table scans; reads and writes go on; waits for older transactions; \
                         an INVALID index left by an earlier attempt is dropped concurrently first"
                            .into(),
                    )],
                ),
                Phase::Cleanup => (
                    "drop the sync triggers and record the migration as done",
                    if plan.column.backfill.is_some() {
                        let mut steps: Vec<Step> = sql
                            .drop_sync_triggers()
                            .into_iter()
                            .zip([
                                "drop sync trigger for inserts",
                                "drop sync trigger for updates",
                                "drop earlier sync trigger",
                            ])
                            .map(|(drop, title)| {
                                let note = if title.starts_with("drop earlier") {
                                    "the single INSERT OR UPDATE trigger of earlier pacer \
                                     versions, if a migration they started is finished here; \
                                     same transaction"
                                        .to_string()
                                } else if title.ends_with("inserts") {
                                    retries.clone()
                                } else {
                                    "same transaction".to_string()
                                };
                                step(title, drop, "ACCESS EXCLUSIVE", Hold::Brief, false, false, note)
                            })
                            .collect();
                        steps.push(step(
                            "drop sync function",
                            sql.drop_sync_function(),
                            "",
                            Hold::None,
                            false,
                            false,
                            String::new(),
                        ));
                        steps
                    } else {
                        vec![]
                    },
                ),
            };
            PhasePlan {
                phase,
                summary: summary.into(),
                steps,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::target::KeyColumn;
    use std::path::Path;

    #[test]
    fn every_step_says_what_it_does_to_the_replicas() {
        let text = "table = \"public.orders\"\n[column]\nname = \"amount\"\n\
                    type = \"numeric(14,2)\"\nbackfill = \"amount_cents / 100.0\"\n\
                    not_null = true\nindex = true\n";
        let plan = Plan::parse(Path::new("p.toml"), text).unwrap();
        let key = vec![KeyColumn {
            name: "id".into(),
            sql_type: "bigint".into(),
        }];
        let sql = PgSql::new(&plan, plan.table.clone(), key);
        let steps: Vec<Step> = phases(&plan, &sql)
            .into_iter()
            .flat_map(|p| p.steps)
            .collect();
        assert!(steps.len() > 10);
        for s in &steps {
            assert!(!s.replicas.is_empty(), "{}", s.title);
            if s.lock == "ACCESS EXCLUSIVE" {
                assert!(
                    s.replicas.contains("max_standby_streaming_delay"),
                    "{}",
                    s.title
                );
            }
        }
        let batch = steps.iter().find(|s| s.title == "batch").unwrap();
        assert!(
            batch.replicas.contains("max_replication_lag"),
            "{}",
            batch.replicas
        );
    }
}
