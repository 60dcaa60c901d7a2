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
    if let Some(finding) = writers_after_cleanup(plan) {
        findings.push(finding);
    }
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

/// NOT NULL without a default: while the sync trigger exists it fills the column for writers
/// that leave it out; cleanup drops the trigger, and from then on such a writer fails.
fn writers_after_cleanup(plan: &Plan) -> Option<Finding> {
    let c = &plan.column;
    if !c.not_null || c.default.is_some() {
        return None;
    }
    let column = &c.name;
    let computed = c
        .backfill
        .as_deref()
        .map(|e| format!(" (as `{e}`)"))
        .unwrap_or_default();
    let trap = format!(
        "not_null without a default: once cleanup drops the sync trigger, any writer that does \
         not set `{column}` fails (the column is NOT NULL and the row gives it no value)"
    );
    let todo = if plan.gated(super::Phase::Cleanup) {
        format!(
            "the gate before cleanup is where to deploy application code that writes \
             `{column}`{computed}, before you proceed; or give the column a default"
        )
    } else {
        format!(
            "deploy application code that writes `{column}`{computed} before cleanup, and gate \
             cleanup (`[gates] before = [\"cleanup\"]`) so the run waits for that deploy; or \
             give the column a default"
        )
    };
    Some(Finding::warning(format!("{trap}; {todo}")))
}
