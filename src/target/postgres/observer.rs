//! What pacer reads on its second session, never the one that changes data: the plan's
//! throttle query and the replicas' positions.

use super::errors::{self, classify};
use super::lag::ReplicaPosition;
use super::sampler::{REPLICAS_SQL, replica_positions_from_rows};
use super::session::Session;
use super::{Postgres, application_name};
use crate::target::{TargetError, TargetResult};

const LAG_REPEATS: &str = "at batch boundaries, at most every 100 ms, for max_replication_lag";

impl Postgres {
    pub(super) async fn observer(&mut self) -> Option<&Session> {
        if self.observer.as_ref().is_some_and(|c| c.is_closed()) {
            self.observer = None;
        }
        if self.observer.is_none() {
            match self
                .conn
                .connect(&application_name("pacer-observer", &self.job))
                .await
            {
                Ok(c) => self.observer = Some(Session::new(c, "observer", self.audit.clone())),
                Err(e) => {
                    tracing::warn!("observer connection failed: {e}");
                    return None;
                }
            }
        }
        self.observer.as_ref()
    }

    /// Runs the plan's throttle_query and returns its number.
    pub(super) async fn run_throttle_query(&mut self, sql: &str) -> TargetResult<f64> {
        let Some(observer) = self.observer().await else {
            return Err(TargetError::ConnectionLost(
                "no session for the throttle query".into(),
            ));
        };
        let text = format!("SELECT (({sql}))::float8");
        let run = async {
            observer
                .batch_execute("SET statement_timeout = '1s'")
                .await?;
            observer.query_one(text.as_str(), &[]).await
        };
        match run.await {
            Ok(row) => Ok(row.get::<_, Option<f64>>(0).unwrap_or(0.0)),
            Err(e) => Err(TargetError::Failed(
                e.as_db_error()
                    .map(errors::describe_db_error)
                    .unwrap_or_else(|| e.to_string()),
            )),
        }
    }

    /// Reads the replicas' positions as the primary sees them.
    pub(super) async fn read_replica_positions(&mut self) -> TargetResult<Vec<ReplicaPosition>> {
        let Some(observer) = self.observer().await else {
            return Err(TargetError::ConnectionLost(
                "no session for reading the replicas' positions".into(),
            ));
        };
        let rows = observer
            .repeating(LAG_REPEATS)
            .query(REPLICAS_SQL, &[])
            .await
            .map_err(|e| classify(&e, "reading pg_stat_replication"))?;
        Ok(replica_positions_from_rows(&rows))
    }
}
