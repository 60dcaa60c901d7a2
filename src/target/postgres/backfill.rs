//! The backfill and the verify phase: the fixed key range, one batch and its checkpoint in one
//! transaction, and the chunked check that every row got its value.

use tokio_postgres::types::ToSql;

use super::errors::classify;
use super::{Postgres, catalog};
use crate::target::{
    BackfillStart, BatchOutcome, Key, KeyRange, TargetError, TargetResult, VerifyChunk,
    VerifyCursor,
};

/// From this version (15) on, each batch asks the server to flush its statistics when it
/// commits (`pg_stat_force_next_flush()`, in the same round trip as its BEGIN), so the table's
/// counters hold pacer's rows the moment the batch commits and the sampler can tell the
/// application's writes from pacer's. Without it a busy session flushes about once a second,
/// and the table's write rate swings between 0 and twice pacer's rate.
pub const FORCE_FLUSH_VERSION: i32 = 150000;
/// From this version (14) on, verify reads the table by pages (TID range scans: sequential
/// reads of the heap, no index) instead of by key ranges through the primary key's index: on
/// a 1M-row table 0.06 s against 1.9 s (BENCHMARKS.md). Rows that move while it reads are
/// filled by the sync triggers whichever page they land on, so a page order checks the same
/// thing as a key order.
pub const PAGE_VERIFY_VERSION: i32 = 140000;
/// Pages in the first verify chunk (16 MiB of 8 KiB pages); then sized so that a chunk takes
/// about [`VERIFY_CHUNK_TARGET`].
pub const VERIFY_FIRST_PAGES: u64 = 2048;
/// How long one verify statement should take: long enough that statements are few, short
/// enough that none holds a snapshot (and vacuum's horizon) for long.
pub const VERIFY_CHUNK_TARGET: std::time::Duration = std::time::Duration::from_millis(250);

/// The next chunk's pages after one of `pages` took `took`: doubled when it took less than half
/// the target, halved when over twice it, else scaled toward it; within 64 … 2^20 pages.
pub fn next_verify_pages(pages: u64, took: std::time::Duration) -> u64 {
    let target = VERIFY_CHUNK_TARGET.as_secs_f64();
    let t = took.as_secs_f64().max(1e-4);
    let scaled = (pages as f64 * (target / t)).clamp(pages as f64 / 2.0, pages as f64 * 2.0);
    (scaled as u64).clamp(64, 1 << 20)
}

/// How a batch transaction begins: its commit does not wait for the WAL to reach the disk
/// (`synchronous_commit = off` for this transaction only). A batch need not be durable the
/// moment it commits, because its checkpoint commits with it: a server crash loses at most the
/// last few batches (up to 3 × `wal_writer_delay`) together with their checkpoints, and the
/// resumed run does them again. The application's commits keep their own setting.
const BATCH_BEGIN: &str = "BEGIN; SET LOCAL synchronous_commit = off";
/// How a batch transaction begins on PostgreSQL 15 and later (see [`FORCE_FLUSH_VERSION`]).
const BATCH_BEGIN_FLUSH: &str =
    "BEGIN; SET LOCAL synchronous_commit = off; SELECT pg_stat_force_next_flush()";

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

    /// One batch in one round trip: BEGIN (with its settings), the batch statement
    /// ([`PgSql::batch_statement`]: end key, update, checkpoint) and COMMIT are written to the
    /// connection together and their answers read after. If the batch statement fails, the
    /// server rolls the transaction back and answers the COMMIT with ROLLBACK; if another
    /// runner moved the checkpoint, the statement changed nothing and returns no row.
    ///
    /// [`PgSql::batch_statement`]: super::sql::PgSql::batch_statement
    pub(super) async fn batch_transaction(
        &mut self,
        after: Option<&Key>,
        end: &Key,
        size: u64,
    ) -> TargetResult<BatchOutcome> {
        let sql = self.sql().clone();
        let n = sql.key.len();
        let statement = sql.batch_statement(after.is_some()).ok_or_else(|| {
            TargetError::Failed("backfill phase without a backfill expression".into())
        })?;
        let statement = self.prepared(&statement).await?;
        let begin = if self.server_version >= FORCE_FLUSH_VERSION {
            BATCH_BEGIN_FLUSH
        } else {
            BATCH_BEGIN
        };
        let job = self.job.clone();
        let previous: Option<Vec<String>> = after.map(|k| k.0.clone());
        let lo = key_params(after);
        let offset = size.saturating_sub(1) as i64;
        let mut params: Vec<&(dyn ToSql + Sync)> = vec![&job, &previous];
        for v in &lo {
            params.push(v);
        }
        for v in &end.0 {
            params.push(v);
        }
        params.push(&offset);
        let context = format!(
            "backfilling {} (keys after {})",
            sql.table,
            after.map_or("the start".to_string(), |k| k.to_string())
        );
        let client = self.client()?;
        // Polled in this order, each future writes its message before any waits for an
        // answer: the three go out together.
        let (began, batch, committed) = futures_util::future::join3(
            client.batch_execute(begin),
            client.query(&statement, &params),
            client.batch_execute("COMMIT"),
        )
        .await;
        began.map_err(|e| classify(&e, "starting a batch"))?;
        let rows = batch.map_err(|e| classify(&e, &context))?;
        committed.map_err(|e| classify(&e, "committing a batch"))?;
        let Some(row) = rows.first() else {
            return Err(TargetError::CheckpointMoved(format!(
                "the checkpoint of {job} is no longer at {} — another runner advanced it. This \
                 batch changed nothing; pacer stops so that no range is applied twice.",
                after.map_or("the start".to_string(), |k| k.to_string())
            )));
        };
        let hi = Key((0..n).map(|i| row.get::<_, String>(i)).collect());
        let last: bool = row.get(n);
        let keys: i64 = row.get(n + 1);
        let rows_updated: i64 = row.get(n + 2);
        Ok(BatchOutcome {
            range: KeyRange {
                lo: after.cloned(),
                hi,
            },
            keys: keys.max(0) as u64,
            rows_updated: rows_updated.max(0) as u64,
            last,
        })
    }

    /// Checks one chunk after `after`: by pages from PostgreSQL 14 on (unless verify began by
    /// keys), else by at most `size` keys.
    pub(super) async fn verify_next(
        &mut self,
        after: Option<&VerifyCursor>,
        size: u64,
    ) -> TargetResult<VerifyChunk> {
        match after {
            Some(VerifyCursor::Key(k)) => self.verify_range_chunk(Some(k), size).await,
            Some(VerifyCursor::Page(p)) => self.verify_page_chunk(*p).await,
            None if self.server_version >= PAGE_VERIFY_VERSION => self.verify_page_chunk(0).await,
            None => self.verify_range_chunk(None, size).await,
        }
    }

    /// Checks the pages from `first` on, as many as take about [`VERIFY_CHUNK_TARGET`]; up to
    /// the table's size when the chunk began (pages added since are read by the next chunk).
    async fn verify_page_chunk(&mut self, first: u64) -> TargetResult<VerifyChunk> {
        let sql = self.sql().clone();
        let table = sql.t();
        let size: i64 = self
            .query(sql.pages(), &[&table], "reading the table's size in pages")
            .await?[0]
            .get(0);
        let size = size.max(0) as u64;
        if first >= size {
            return Ok(VerifyChunk {
                next: None,
                rows: 0,
            });
        }
        let pages = if self.verify_pages == 0 {
            VERIFY_FIRST_PAGES
        } else {
            self.verify_pages
        };
        let end = (first + pages).min(size);
        let (lo, hi) = (first as i64, end as i64);
        let started = std::time::Instant::now();
        let row = self
            .query(
                &sql.verify_pages(),
                &[&lo, &hi],
                "verifying a chunk of pages",
            )
            .await?
            .remove(0);
        self.verify_pages = next_verify_pages(end - first, started.elapsed());
        let (rows, unfilled, nulls): (i64, i64, i64) = (row.get(0), row.get(1), row.get(2));
        if unfilled > 0 || (nulls > 0 && self.plan.column.not_null) {
            let nulls_only = unfilled == 0;
            let example = self
                .query(
                    &sql.first_unfilled_in_pages(nulls_only),
                    &[&lo, &hi],
                    "finding an unfilled row",
                )
                .await?
                .first()
                .map(|r| Key((0..sql.key.len()).map(|i| r.get::<_, String>(i)).collect()));
            let range = format!("pages {first} … {} (of {size})", end - 1);
            return Err(self.unfilled_error(&range, unfilled, nulls, example));
        }
        Ok(VerifyChunk {
            next: Some(VerifyCursor::Page(end)),
            rows: rows as u64,
        })
    }

    /// The error for rows verify found unfilled (or NULL under NOT NULL) in `range`.
    fn unfilled_error(
        &self,
        range: &str,
        unfilled: i64,
        nulls: i64,
        example: Option<Key>,
    ) -> TargetError {
        crate::target::unfilled_error(
            range,
            &self.sql().table.to_string(),
            &self.plan.column.name,
            (unfilled, nulls),
            example.as_ref(),
            "coalesce",
        )
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
            return Err(self.unfilled_error(&range, unfilled, nulls, example));
        }
        Ok(VerifyChunk {
            next: hi_key.map(VerifyCursor::Key),
            rows: rows as u64,
        })
    }
}

fn key_params(key: Option<&Key>) -> Vec<String> {
    key.map(|k| k.0.clone()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn verify_chunks_grow_toward_the_target_time_and_shrink_when_slow() {
        let ms = Duration::from_millis;
        assert_eq!(
            next_verify_pages(2048, ms(10)),
            4096,
            "fast: at most doubled"
        );
        assert_eq!(next_verify_pages(2048, ms(250)), 2048, "on target");
        assert_eq!(next_verify_pages(2048, ms(500)), 1024, "slow: scaled down");
        assert_eq!(next_verify_pages(2048, ms(5000)), 1024, "at most halved");
        assert_eq!(next_verify_pages(64, ms(9000)), 64, "a floor");
        assert_eq!(
            next_verify_pages(1 << 20, Duration::ZERO),
            1 << 20,
            "a ceiling"
        );
        assert_eq!(crate::target::VerifyCursor::Page(12).to_string(), "page 12");
    }
}
