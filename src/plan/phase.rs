//! Phases of a migration and the statements each one runs.

use std::fmt;
use std::str::FromStr;

use serde::Serialize;

/// One phase of the add-column procedure, in the order they run.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Read-only checks; changes nothing.
    Preflight,
    /// Add the column (catalog-only change).
    AddColumn,
    /// Install the trigger that keeps new writes filled.
    Sync,
    /// Fill existing rows in keyset batches with checkpoints.
    Backfill,
    /// Check in key-range chunks that no row was left unfilled.
    Verify,
    /// Tighten to NOT NULL without a long lock.
    NotNull,
    /// Build the index concurrently.
    Index,
    /// Drop the sync trigger and record the migration as done.
    Cleanup,
}

impl Phase {
    /// Every phase, in order.
    pub const ALL: [Phase; 8] = [
        Phase::Preflight,
        Phase::AddColumn,
        Phase::Sync,
        Phase::Backfill,
        Phase::Verify,
        Phase::NotNull,
        Phase::Index,
        Phase::Cleanup,
    ];

    /// The name used in plans, state and output (`add_column`).
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Preflight => "preflight",
            Phase::AddColumn => "add_column",
            Phase::Sync => "sync",
            Phase::Backfill => "backfill",
            Phase::Verify => "verify",
            Phase::NotNull => "not_null",
            Phase::Index => "index",
            Phase::Cleanup => "cleanup",
        }
    }
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Phase {
    type Err = String;
    fn from_str(s: &str) -> Result<Phase, String> {
        Phase::ALL
            .into_iter()
            .find(|p| p.as_str() == s)
            .ok_or_else(|| format!("unknown phase `{s}`"))
    }
}

/// How long a statement holds its strongest lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Hold {
    /// Takes no table lock worth naming.
    None,
    /// Milliseconds: catalog-only work.
    Brief,
    /// Per batch: row locks on one key range for the batch's duration.
    PerBatch,
    /// As long as the statement runs (a scan or a build), but the lock lets reads and writes go on.
    Long,
}

impl Hold {
    /// How long the lock is held, as a suffix for the lock's name (`, brief`).
    pub fn suffix(self) -> &'static str {
        match self {
            Hold::None => "",
            Hold::Brief => ", brief",
            Hold::PerBatch => ", per batch",
            Hold::Long => ", for the whole statement",
        }
    }
}

/// One statement a phase runs, with what it costs the table.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct Step {
    /// What the step does, in words.
    pub title: String,
    /// The exact SQL (batch statements show their parameters as $1, $2 …).
    pub sql: String,
    /// The table lock it takes, in the database's own words (`ACCESS EXCLUSIVE`), or empty.
    pub lock: String,
    /// How long the lock is held.
    pub hold: Hold,
    /// Whether it rewrites the whole table.
    pub rewrites: bool,
    /// Whether it reads the whole table (in one statement or in chunks).
    pub scans: bool,
    /// Anything the operator should know (timeouts, retries, conditions).
    pub note: String,
    /// What it does to the replicas, in words (what they replay, whether their queries wait).
    #[serde(default)]
    pub replicas: String,
}

/// The statements of one phase.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct PhasePlan {
    /// The phase.
    pub phase: Phase,
    /// One line on what the phase achieves.
    pub summary: String,
    /// Its statements in order.
    pub steps: Vec<Step>,
}

impl PhasePlan {
    /// The table locks the phase takes and how long, in words for a question or a log line
    /// (`ACCESS EXCLUSIVE briefly; SHARE UPDATE EXCLUSIVE for the whole statement`).
    pub fn lock_summary(&self) -> String {
        let mut seen: Vec<(&str, Hold)> = Vec::new();
        for step in &self.steps {
            if !step.lock.is_empty() && !seen.contains(&(step.lock.as_str(), step.hold)) {
                seen.push((step.lock.as_str(), step.hold));
            }
        }
        if seen.is_empty() {
            return "no table lock".into();
        }
        seen.iter()
            .map(|(lock, hold)| match hold {
                Hold::None => lock.to_string(),
                Hold::Brief => format!("{lock} briefly"),
                Hold::PerBatch => format!("{lock} per batch"),
                Hold::Long => format!("{lock} for the whole statement"),
            })
            .collect::<Vec<_>>()
            .join("; ")
    }
}
