//! The backfill and the verify phase: the fixed key range, one batch and its checkpoint in one
//! transaction, and the chunked check that every row got its value.

use tokio_postgres::types::ToSql;

use super::{Postgres, catalog};
use crate::target::{
    BackfillStart, BatchOutcome, Key, KeyRange, TargetError, TargetResult, VerifyChunk,
};

/// From this version (15) on, each batch asks the server to flush its statistics when it
/// commits (`pg_stat_force_next_flush()`, in the same round trip as its BEGIN), so the table's
/// counters hold pacer's rows the moment the batch commits and the sampler can tell the
/// application's writes from pacer's. Without it a busy session flushes about once a second,
/// and the table's write rate swings between 0 and twice pacer's rate.
pub const FORCE_FLUSH_VERSION: i32 = 150000;
/// How a batch transaction begins.
const BATCH_BEGIN: &str = "BEGIN";
/// How a batch transaction begins on PostgreSQL 15 and later (see [`FORCE_FLUSH_VERSION`]).
const BATCH_BEGIN_FLUSH: &str = "BEGIN; SELECT pg_stat_force_next_flush()";

impl Postgres {
    /// Fixes the backfill range on first call (recording it), returns where to resume.
    pub(super) async fn fix_backfill_range(&mut self) -> TargetResult<BackfillStart> {
        let sql = self.sql().clone();
        let state = self.plan.state_table.quoted();
        let job = self.job.clone();
        let fixed: bool = self
            .query(
                &format!("SELECT range_fixed FROM {state} WHERE job = $1::text"),
                &[&job],
                "reading the backfill range",
            )
            .await?[0]
            .get(0);
        if !fixed {
            let end: Option<Vec<String>> = self
                .query(&sql.max_key(), &[], "finding the last key")
                .await?
                .first()
                .map(|r| (0..sql.key.len()).map(|i| r.get::<_, String>(i)).collect());
            let total = catalog::estimate_rows(self, &sql.table.quoted()).await?;
            self.execute(
                &format!(
                    "UPDATE {state} SET range_end = $2::text[], range_fixed = true, last_key = NULL, \
                     rows_done = 0, rows_updated = 0, rows_total = $3::bigint, updated_at = now() \
                     WHERE job = $1::text AND NOT range_fixed"
                ),
                &[&job, &end, &total.map(|t| t as i64)],
                "recording the backfill range",
            )
            .await?;
        }
        let j = self
            .job_row()
            .await?
            .ok_or_else(|| TargetError::Failed("state row missing".into()))?;
        Ok(BackfillStart {
            after: j.last_key,
            end: j.range_end,
            rows_done: j.rows_done,
            rows_updated: j.rows_updated,
            rows_total: j.rows_total,
        })
    }

    pub(super) async fn batch_transaction(
        &mut self,
        after: Option<&Key>,
        end: &Key,
        size: u64,
    ) -> TargetResult<BatchOutcome> {
        let sql = self.sql().clone();
        let n = sql.key.len();
        let lo = key_params(after);
        let begin = if self.server_version >= FORCE_FLUSH_VERSION {
            BATCH_BEGIN_FLUSH
        } else {
            BATCH_BEGIN
        };
        self.simple(begin, "starting a batch").await?;

        let nth = sql.nth_key(after.is_some(), true);
        let offset = size.saturating_sub(1) as i64;
        let mut params: Vec<&(dyn ToSql + Sync)> =
            lo.iter().map(|v| v as &(dyn ToSql + Sync)).collect();
        for v in &end.0 {
            params.push(v);
        }
        params.push(&offset);
        let found: Option<Vec<String>> = self
            .query(&nth, &params, "finding the end of the next batch")
            .await?
            .first()
            .map(|r| (0..n).map(|i| r.get::<_, String>(i)).collect());
        let (hi, keys) = match found {
            Some(hi) => (Key(hi), size),
            None => {
                let mut params: Vec<&(dyn ToSql + Sync)> =
                    lo.iter().map(|v| v as &(dyn ToSql + Sync)).collect();
                for v in &end.0 {
                    params.push(v);
                }
                let count: i64 = self
                    .query(
                        &sql.count_range(after.is_some()),
                        &params,
                        "counting the last batch",
                    )
                    .await?[0]
                    .get(0);
                (end.clone(), count as u64)
            }
        };
        let last = hi == *end;

        let update = sql.batch_update(after.is_some()).ok_or_else(|| {
            TargetError::Failed("backfill phase without a backfill expression".into())
        })?;
        let mut params: Vec<&(dyn ToSql + Sync)> =
            lo.iter().map(|v| v as &(dyn ToSql + Sync)).collect();
        for v in &hi.0 {
            params.push(v);
        }
        let context = format!(
            "backfilling {} (keys after {} up to {hi})",
            sql.table,
            after.map_or("the start".to_string(), |k| k.to_string())
        );
        let rows_updated = self.execute(&update, &params, &context).await?;

        let job = self.job.clone();
        let previous: Option<Vec<String>> = after.map(|k| k.0.clone());
        let (keys_i, rows_i) = (keys as i64, rows_updated as i64);
        let moved = self
            .execute(
                &sql.advance_checkpoint(),
                &[&job, &previous, &hi.0, &keys_i, &rows_i],
                "advancing the checkpoint",
            )
            .await?;
        if moved != 1 {
            self.rollback().await;
            return Err(TargetError::CheckpointMoved(format!(
                "the checkpoint of {job} is no longer at {} — another runner advanced it. This \
                 batch was rolled back; pacer stops so that no range is applied twice.",
                after.map_or("the start".to_string(), |k| k.to_string())
            )));
        }
        self.simple("COMMIT", "committing a batch").await?;
        Ok(BatchOutcome {
            range: KeyRange {
                lo: after.cloned(),
                hi,
            },
            keys,
            rows_updated,
            last,
        })
    }

    /// Checks one chunk of at most `size` keys after `after`; fails when a row is unfilled.
    pub(super) async fn verify_range_chunk(
        &mut self,
        after: Option<&Key>,
        size: u64,
    ) -> TargetResult<VerifyChunk> {
        let sql = self.sql().clone();
        let lo = key_params(after);
        let mut params: Vec<&(dyn ToSql + Sync)> =
            lo.iter().map(|v| v as &(dyn ToSql + Sync)).collect();
        let offset = size.saturating_sub(1) as i64;
        params.push(&offset);
        let nth = sql.nth_key(after.is_some(), false);
        let hi: Option<Vec<String>> = self
            .query(&nth, &params, "finding the next verify chunk")
            .await?
            .first()
            .map(|r| (0..sql.key.len()).map(|i| r.get::<_, String>(i)).collect());
        let hi_key = hi.clone().map(Key);
        let mut params: Vec<&(dyn ToSql + Sync)> =
            lo.iter().map(|v| v as &(dyn ToSql + Sync)).collect();
        let hi_values = hi.clone().unwrap_or_default();
        for v in &hi_values {
            params.push(v);
        }
        let check = sql.verify_range(after.is_some(), hi.is_some());
        let row = self
            .query(&check, &params, "verifying a chunk")
            .await?
            .remove(0);
        let (rows, unfilled, nulls): (i64, i64, i64) = (row.get(0), row.get(1), row.get(2));
        let range = match (&after, &hi_key) {
            (Some(lo), Some(hi)) => format!("keys after {lo} up to {hi}"),
            (None, Some(hi)) => format!("keys up to {hi}"),
            (Some(lo), None) => format!("keys after {lo}"),
            (None, None) => "the whole table".into(),
        };
        if unfilled > 0 || (nulls > 0 && self.plan.column.not_null) {
            let nulls_only = unfilled == 0;
            let first_sql = sql.first_unfilled(after.is_some(), hi.is_some(), nulls_only);
            let example = self
                .query(&first_sql, &params, "finding an unfilled row")
                .await?
                .first()
                .map(|r| Key((0..sql.key.len()).map(|i| r.get::<_, String>(i)).collect()));
            let example = example
                .map(|k| format!(" (first: key {k})"))
                .unwrap_or_default();
            let col = &self.plan.column.name;
            return Err(TargetError::Failed(if unfilled > 0 {
                format!(
                    "verify found {unfilled} rows in {range} of {} whose {col} was never filled{example}, \
                     although the backfill expression gives them a value. A writer may have set them \
                     back after their batch. Fix or re-fill those rows, then run pacer again: verify \
                     checks every chunk again.",
                    sql.table
                )
            } else {
                format!(
                    "verify found {nulls} rows in {range} of {} where {col} is NULL because the backfill \
                     expression gives NULL for them{example}; NOT NULL cannot be set. Make the \
                     expression give a value for every row (e.g. coalesce(…, 0)) and start a new \
                     migration, or set not_null = false.",
                    sql.table
                )
            }));
        }
        Ok(VerifyChunk {
            hi: hi_key,
            rows: rows as u64,
        })
    }
}

fn key_params(key: Option<&Key>) -> Vec<String> {
    key.map(|k| k.0.clone()).unwrap_or_default()
}
