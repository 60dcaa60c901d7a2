//! The backfill and the verify phase on MySQL/MariaDB: the fixed key range, one batch and its
//! checkpoint in one transaction, and the chunked check that every row got its value.
//!
//! A batch is bounded by `batch_timeout`: on MariaDB by `SET STATEMENT max_statement_time=…
//! FOR UPDATE …` (error 1969); on MySQL, whose MAX_EXECUTION_TIME covers SELECT only, pacer
//! sends `KILL QUERY` from its observer connection when the UPDATE outlives the bound.

use mysql_async::Value;

use super::MySql;
use super::errors::classify;
use super::session::{int_at, text_at};
use super::sql::{Bound, Flavor, KeyKind, MySqlText, Slot};
use super::state::key_param;
use crate::target::{
    BackfillStart, BatchOutcome, Key, KeyRange, TargetError, TargetResult, VerifyChunk,
};

/// A key value as the parameter its column takes.
fn key_value(kind: &KeyKind, text: &str) -> Value {
    match kind {
        KeyKind::Signed => text
            .parse::<i64>()
            .map(Value::from)
            .unwrap_or_else(|_| Value::from(text)),
        KeyKind::Unsigned => text
            .parse::<u64>()
            .map(Value::from)
            .unwrap_or_else(|_| Value::from(text)),
        KeyKind::Decimal(_) | KeyKind::Binary | KeyKind::Text => Value::from(text),
    }
}

/// The parameters of a bound statement, from its slots.
pub(super) fn bind(
    sql: &MySqlText,
    bound: &Bound,
    lo: Option<&Key>,
    hi: Option<&Key>,
) -> Vec<Value> {
    bound
        .slots
        .iter()
        .map(|slot| {
            let (key, i) = match *slot {
                Slot::Lo(i) => (lo, i),
                Slot::Hi(i) => (hi, i),
            };
            let text = key
                .and_then(|k| k.0.get(i))
                .map(String::as_str)
                .unwrap_or("");
            key_value(&sql.key[i].kind, text)
        })
        .collect()
}

/// A row's key read back as text.
fn key_of(row: &mysql_async::Row, n: usize) -> Key {
    Key((0..n)
        .map(|i| text_at(row, i).unwrap_or_default())
        .collect())
}

impl MySql {
    /// Fixes the backfill range on first call (recording it), returns where to resume.
    pub(super) async fn fix_backfill_range(&mut self) -> TargetResult<BackfillStart> {
        let sql = self.sql().clone();
        let (db, t) = self.state_names();
        let state = format!("{}.{}", super::sql::q(&db), super::sql::q(&t));
        let job = self.job.clone();
        let fixed = self
            .rows(
                &format!("SELECT range_fixed FROM {state} WHERE job = ?"),
                vec![Value::from(job.clone())],
                "reading the backfill range",
            )
            .await?
            .first()
            .is_some_and(|r| int_at(r, 0) == 1);
        if !fixed {
            let end = self
                .rows(&sql.max_key(), vec![], "finding the last key")
                .await?
                .first()
                .map(|r| key_of(r, sql.key.len()));
            let total = self.estimate_rows().await?;
            self.execute(
                &format!(
                    "UPDATE {state} SET range_end = ?, range_fixed = 1, last_key = NULL, rows_done = 0, \
                     rows_updated = 0, rows_total = ?, updated_at = UTC_TIMESTAMP(6) \
                     WHERE job = ? AND range_fixed = 0"
                ),
                vec![
                    key_param(end.as_ref()),
                    total.map_or(Value::NULL, Value::from),
                    Value::from(job),
                ],
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

    /// Estimated rows: an exact count on tables under 256 MB, InnoDB's estimate above.
    pub(super) async fn estimate_rows(&mut self) -> TargetResult<Option<u64>> {
        let params = vec![
            Value::from(self.database.clone()),
            Value::from(self.plan.table.name.clone()),
        ];
        let row = self
            .rows(
                "SELECT TABLE_ROWS, DATA_LENGTH FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?",
                params,
                "estimating the row count",
            )
            .await?;
        let (estimate, bytes) = row
            .first()
            .map(|r| (int_at(r, 0), int_at(r, 1)))
            .unwrap_or((0, 0));
        if bytes < 256 * 1024 * 1024 {
            let t = self.sql().t();
            let count = self
                .rows(
                    &format!("SELECT COUNT(*) FROM {t}"),
                    vec![],
                    "counting rows",
                )
                .await?
                .first()
                .map_or(0, |r| int_at(r, 0));
            return Ok(Some(count.max(0) as u64));
        }
        Ok(Some(estimate.max(0) as u64))
    }

    pub(super) async fn batch_transaction(
        &mut self,
        after: Option<&Key>,
        end: &Key,
        size: u64,
    ) -> TargetResult<BatchOutcome> {
        let sql = self.sql().clone();
        let n = sql.key.len();
        self.simple("START TRANSACTION", "starting a batch").await?;

        let nth = sql.nth_key(after.is_some(), true);
        let mut params = bind(&sql, &nth, after, Some(end));
        params.push(Value::from(size.saturating_sub(1)));
        let found = self
            .rows(&nth.sql, params, "finding the end of the next batch")
            .await?
            .first()
            .map(|r| key_of(r, n));
        let (hi, keys) = match found {
            Some(hi) => (hi, size),
            None => {
                let count = sql.count_range(after.is_some());
                let params = bind(&sql, &count, after, Some(end));
                let keys = self
                    .rows(&count.sql, params, "counting the last batch")
                    .await?
                    .first()
                    .map_or(0, |r| int_at(r, 0));
                (end.clone(), keys.max(0) as u64)
            }
        };
        let last = hi == *end;

        let update = sql.batch_update(after.is_some()).ok_or_else(|| {
            TargetError::Failed("backfill phase without a backfill expression".into())
        })?;
        let params = bind(&sql, &update, after, Some(&hi));
        let context = format!(
            "backfilling {} (keys after {} up to {hi}; a 1205 here is a row-lock wait)",
            sql.table_name(),
            after.map_or("the start".to_string(), |k| k.to_string())
        );
        let rows_updated = self.bounded_update(&update.sql, params, &context).await?;

        let job = self.job.clone();
        let moved = self
            .execute(
                &sql.advance_checkpoint(),
                vec![
                    key_param(Some(&hi)),
                    Value::from(keys),
                    Value::from(rows_updated),
                    Value::from(job.clone()),
                    key_param(after),
                ],
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

    /// Runs a batch's UPDATE under `batch_timeout`. MariaDB's statement carries its own bound;
    /// on MySQL pacer ends the statement with `KILL QUERY` from the observer connection (a
    /// dropped future would leave it running on the server).
    async fn bounded_update(
        &mut self,
        statement: &str,
        params: Vec<Value>,
        context: &str,
    ) -> TargetResult<u64> {
        if self.flavor() == Flavor::MariaDb {
            return self.execute(statement, params, context).await;
        }
        let bound = self.plan.safety.batch_timeout;
        let main_id = self.connection_id;
        self.observer().await;
        let main = self
            .main
            .as_mut()
            .ok_or_else(|| TargetError::ConnectionLost("not connected".into()))?;
        let observer = self.observer.as_mut();
        let work = main.execute(statement, params);
        tokio::pin!(work);
        let killed = tokio::select! {
            r = &mut work => return r.map_err(|e| classify(&e, context)),
            _ = tokio::time::sleep(bound) => match observer {
                Some(obs) => obs.simple(&format!("KILL QUERY {main_id}")).await.is_ok(),
                None => false,
            },
        };
        let result = work.await;
        match result {
            Err(e) if killed => Err(TargetError::StatementTimeout(format!(
                "{context}: the batch ran past batch_timeout ({}) and was ended with KILL QUERY ({})",
                humantime::format_duration(bound),
                super::errors::describe(&e)
            ))),
            other => other.map_err(|e| classify(&e, context)),
        }
    }

    /// Checks one chunk of at most `size` keys after `after`; fails when a row is unfilled.
    pub(super) async fn verify_range_chunk(
        &mut self,
        after: Option<&Key>,
        size: u64,
    ) -> TargetResult<VerifyChunk> {
        let sql = self.sql().clone();
        let n = sql.key.len();
        let nth = sql.nth_key(after.is_some(), false);
        let mut params = bind(&sql, &nth, after, None);
        params.push(Value::from(size.saturating_sub(1)));
        let hi = self
            .rows(&nth.sql, params, "finding the next verify chunk")
            .await?
            .first()
            .map(|r| key_of(r, n));
        let check = sql.verify_range(after.is_some(), hi.is_some());
        let params = bind(&sql, &check, after, hi.as_ref());
        let row = self
            .rows(&check.sql, params, "verifying a chunk")
            .await?
            .remove(0);
        let (rows, unfilled, nulls) = (int_at(&row, 0), int_at(&row, 1), int_at(&row, 2));
        let range = match (&after, &hi) {
            (Some(lo), Some(hi)) => format!("keys after {lo} up to {hi}"),
            (None, Some(hi)) => format!("keys up to {hi}"),
            (Some(lo), None) => format!("keys after {lo}"),
            (None, None) => "the whole table".into(),
        };
        if unfilled > 0 || (nulls > 0 && self.plan.column.not_null) {
            let nulls_only = unfilled == 0;
            let first = sql.first_unfilled(after.is_some(), hi.is_some(), nulls_only);
            let params = bind(&sql, &first, after, hi.as_ref());
            let example = self
                .rows(&first.sql, params, "finding an unfilled row")
                .await?
                .first()
                .map(|r| key_of(r, n));
            return Err(crate::target::unfilled_error(
                &range,
                &sql.table_name(),
                &self.plan.column.name,
                (unfilled, nulls),
                example.as_ref(),
                "COALESCE",
            ));
        }
        Ok(VerifyChunk {
            next: hi.map(crate::target::VerifyCursor::Key),
            rows: rows.max(0) as u64,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_values_bind_as_their_column_type() {
        assert_eq!(key_value(&KeyKind::Signed, "-7"), Value::Int(-7));
        assert_eq!(
            key_value(&KeyKind::Unsigned, "18446744073709551615"),
            Value::UInt(u64::MAX)
        );
        assert_eq!(
            key_value(&KeyKind::Text, "2026-01-01 00:00:00"),
            Value::Bytes(b"2026-01-01 00:00:00".to_vec())
        );
    }
}
