//! Lint findings: things that are allowed but that an operator should know before running.

use std::fmt;
use std::time::Duration;

use serde::Serialize;

use super::Plan;

/// How much a finding matters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Worth knowing.
    Info,
    /// Likely to surprise someone; the run goes ahead.
    Warning,
}

/// One lint or preflight finding.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Finding {
    /// How much it matters.
    pub severity: Severity,
    /// What was found and what to do.
    pub message: String,
}

impl Finding {
    /// An informational finding.
    pub fn info(message: impl Into<String>) -> Finding {
        Finding {
            severity: Severity::Info,
            message: message.into(),
        }
    }
    /// A warning.
    pub fn warning(message: impl Into<String>) -> Finding {
        Finding {
            severity: Severity::Warning,
            message: message.into(),
        }
    }
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let label = match self.severity {
            Severity::Info => "note",
            Severity::Warning => "warning",
        };
        write!(f, "{label}: {}", self.message)
    }
}

/// Findings that follow from the plan alone.
pub fn lint(plan: &Plan) -> Vec<Finding> {
    let mut findings = Vec::new();
    let s = &plan.safety;
    if s.lock_timeout > Duration::from_secs(5) {
        findings.push(Finding::warning(format!(
            "lock_timeout is {}: while an ALTER waits for its lock, every later query on the table \
             queues behind it, for up to this long per attempt; 1–3s is safer",
            humantime::format_duration(s.lock_timeout)
        )));
    }
    if plan.backfill.batch_size > 50_000 {
        findings.push(Finding::warning(format!(
            "batch_size {} holds row locks on that many rows per transaction; above ~10,000 rows \
             throughput stops improving while lock hold time keeps growing",
            plan.backfill.batch_size
        )));
    }
    let c = &plan.column;
    if plan.not_null_at_add() {
        findings.push(Finding::info(
            "not_null with a constant default and no backfill: the column is added as \
             NOT NULL DEFAULT in one catalog-only step (no scan, no NOT NULL phase)",
        ));
    }
    if c.default.is_some() && c.backfill.is_some() {
        findings.push(Finding::info(
            "default and backfill together: existing rows read the default until their batch \
             runs; the sync trigger treats an inserted value equal to the default as \"not set\" \
             and computes it from the backfill expression",
        ));
    }
    if let Some(index) = &c.index
        && index.unique
    {
        findings.push(Finding::warning(format!(
            "unique index {}: if two rows get the same value the build fails and leaves an \
             INVALID index, which pacer drops and reports",
            index.name
        )));
    }
    findings
}
