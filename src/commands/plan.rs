//! `pacer plan`: the phases, their SQL and locks, the table's size and the findings.

use std::fmt::Write as _;

use serde::Serialize;

use super::{AuditLog, Failure, connect, load_plan, open_audit};
use crate::TargetArgs;
use crate::format::{bytes, thousands};
use crate::plan::{Finding, Phase, PhasePlan, lint};
use crate::target::{Preflight, TableInfo, Target, TargetError};

#[derive(Serialize)]
struct PlanReport<'a> {
    target: String,
    table: &'a TableInfo,
    resuming: bool,
    phases_done: Vec<String>,
    phases: Vec<PhasePlan>,
    findings: Vec<Finding>,
    batches: String,
    throttle: String,
    /// The foreground guard's bound, in words.
    foreground: String,
    /// Phases that wait for the operator before they start.
    gates: Vec<Phase>,
}

/// Prints the plan. Changes nothing in the database.
pub async fn run(args: &TargetArgs, json: bool, audit_log: &AuditLog) -> Result<u8, Failure> {
    let plan = load_plan(args)?;
    let audit = open_audit(audit_log, &plan)?;
    let mut target = connect(args, &plan, audit.clone()).await?;
    audit.note(
        "command",
        serde_json::json!({ "command": "plan", "target": target.describe() }),
    );
    let Preflight { info, job } = target.preflight(&plan).await.map_err(|e| match e {
        TargetError::Refused(m) => {
            Failure::refused(format!("preflight refuses {}: {m}", plan.path.display()))
        }
        other => Failure::failed(format!("preflight failed: {other}")),
    })?;
    let phases = target.render(&plan);
    let mut findings = lint::lint(&plan);
    findings.extend(info.findings.clone());
    let report = PlanReport {
        target: target.describe_connection(),
        table: &info,
        resuming: job.is_some(),
        phases_done: job
            .as_ref()
            .map(|j| j.phases_done.iter().map(|p| p.to_string()).collect())
            .unwrap_or_default(),
        phases,
        findings,
        batches: describe_batches(&plan),
        throttle: describe_throttle(&plan.throttle),
        foreground: describe_foreground(plan.throttle.max_foreground_impact),
        gates: plan.gates.clone(),
    };
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).map_err(|e| Failure::failed(e.to_string()))?
        );
    } else {
        print!(
            "{}",
            render_text(&report, job.as_ref().map(|j| j.outcome.as_str()))
        );
    }
    Ok(super::EXIT_DONE)
}

/// How batches are sized and paced, in one line.
fn describe_batches(plan: &crate::plan::Plan) -> String {
    let b = &plan.backfill;
    let sizing = if b.adaptive {
        format!(
            "{} keys to start, then steered toward {} ms batches within {} … {}",
            thousands(b.batch_size),
            b.target_batch_ms,
            thousands(b.min_batch_size),
            thousands(b.max_batch_size)
        )
    } else {
        format!("{} keys (adaptive sizing off)", thousands(b.batch_size))
    };
    format!(
        "{sizing}; pause {} between batches; batch_timeout {}",
        humantime::format_duration(b.pause),
        humantime::format_duration(plan.safety.batch_timeout)
    )
}

/// The foreground guard in one line.
fn describe_foreground(bound: Option<crate::plan::ImpactBound>) -> String {
    match bound {
        None => "foreground guard off (max_foreground_impact = \"off\"): batches run at full speed"
            .into(),
        Some(b @ crate::plan::ImpactBound::Ratio(_)) => format!(
            "the foreground probe's p99 held within {b} of its baseline (measured before the first \
             batch, about 1 s) by the backfill's duty cycle and batch size"
        ),
        Some(b) => format!(
            "the foreground probe's p99 held within {b} by the backfill's duty cycle and batch size"
        ),
    }
}

/// The throttle signals in force, in one line.
fn describe_throttle(t: &crate::plan::ThrottleSpec) -> String {
    let mut parts = Vec::new();
    if let Some(l) = t.max_replication_lag {
        parts.push(format!("replica lag > {}", humantime::format_duration(l)));
    }
    if let Some(n) = t.max_lock_waiters {
        parts.push(format!("more than {n} sessions waiting on pacer's locks"));
    }
    if t.pause_on_autovacuum {
        parts.push("autovacuum on the table".to_string());
    }
    if let Some(w) = t.max_wal_rate {
        parts.push(format!("WAL > {}/s", bytes(w)));
    }
    if let Some(w) = t.max_binlog_rate {
        parts.push(format!("binlog > {}/s", bytes(w)));
    }
    if let Some(n) = t.max_threads_running {
        parts.push(format!(
            "more than {n} other sessions run a statement (threads running)"
        ));
    }
    if let Some(n) = t.max_history_length {
        parts.push(format!(
            "InnoDB's history list is longer than {}",
            thousands(n)
        ));
    }
    if let Some(q) = &t.throttle_query {
        parts.push(format!("`{q}` > 0"));
    }
    if let Some(f) = &t.throttle_file {
        parts.push(format!("{} exists", f.display()));
    }
    if parts.is_empty() {
        "none (no [throttle] settings)".into()
    } else {
        format!(
            "waits while {}; resumes after {} clear",
            parts.join(", or "),
            humantime::format_duration(t.resume_after)
        )
    }
}

/// The gated phases, in one line.
fn describe_gates(gates: &[Phase]) -> String {
    if gates.is_empty() {
        return "none (no [gates]): every phase starts on its own".into();
    }
    format!(
        "waits for the operator before {} (g in the interface, or pacer ctl proceed)",
        gates
            .iter()
            .map(|p| p.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    )
}

fn render_text(r: &PlanReport, outcome: Option<&str>) -> String {
    let mut out = String::new();
    let t = r.table;
    let _ = writeln!(out, "target   {}", r.target);
    let _ = writeln!(
        out,
        "table    {}: {} rows (estimate), table {} + indexes {}; key {} ({})",
        t.table,
        t.estimated_rows.map_or("unknown".to_string(), thousands),
        bytes(t.table_bytes),
        bytes(t.index_bytes),
        t.key
            .iter()
            .map(|k| format!("{} {}", k.name, k.sql_type))
            .collect::<Vec<_>>()
            .join(", "),
        t.key_source
    );
    let _ = writeln!(out, "server   {} {}", t.server_product, t.server_version);
    let _ = writeln!(out, "batches  {}", r.batches);
    let _ = writeln!(out, "throttle {}", r.throttle);
    let _ = writeln!(out, "guard    {}", r.foreground);
    let _ = writeln!(out, "gates    {}", describe_gates(&r.gates));
    if let Some(outcome) = outcome {
        let _ = writeln!(
            out,
            "state    this migration has run before ({outcome}); finished phases: {}",
            if r.phases_done.is_empty() {
                "none".to_string()
            } else {
                r.phases_done.join(", ")
            }
        );
    }
    for (i, p) in r.phases.iter().enumerate() {
        let done = if r.phases_done.contains(&p.phase.to_string()) {
            "  [done]"
        } else if r.gates.contains(&p.phase) {
            "  [gate: waits for the operator]"
        } else {
            ""
        };
        let _ = writeln!(out, "\n{}. {}{done}: {}", i + 1, p.phase, p.summary);
        for s in &p.steps {
            let lock = if s.lock.is_empty() {
                "no table lock".to_string()
            } else {
                format!("lock {}{}", s.lock, s.hold.suffix())
            };
            let work = match (s.rewrites, s.scans) {
                (true, _) => "REWRITES the table",
                (false, true) => "reads the table",
                (false, false) => "no rewrite, no scan",
            };
            let _ = writeln!(out, "   - {} — {lock}; {work}", s.title);
            if !s.note.is_empty() {
                let _ = writeln!(out, "     {}", s.note);
            }
            if !s.replicas.is_empty() {
                let _ = writeln!(out, "     replicas: {}", s.replicas);
            }
            for line in s.sql.lines() {
                let _ = writeln!(out, "       {line}");
            }
        }
    }
    if !r.findings.is_empty() {
        let _ = writeln!(out);
        for f in &r.findings {
            let _ = writeln!(out, "{f}");
        }
    }
    out
}
