//! `pacer plan`: the phases, their SQL and locks, the table's size and the findings.

use std::fmt::Write as _;

use serde::Serialize;

use super::{Failure, bytes, connect, load_plan, thousands};
use crate::TargetArgs;
use crate::plan::{Finding, Hold, PhasePlan, lint};
use crate::target::{Preflight, TableInfo, Target, TargetError};

#[derive(Serialize)]
struct PlanReport<'a> {
    target: String,
    table: &'a TableInfo,
    resuming: bool,
    phases_done: Vec<String>,
    phases: Vec<PhasePlan>,
    findings: Vec<Finding>,
}

/// Prints the plan. Changes nothing in the database.
pub async fn run(args: &TargetArgs, json: bool) -> Result<u8, Failure> {
    let plan = load_plan(args)?;
    let mut target = connect(args, &plan).await?;
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
        target: format!(
            "{} (from {}, sslmode {})",
            target.describe(),
            target.connection().source(),
            target.connection().ssl_mode()
        ),
        table: &info,
        resuming: job.is_some(),
        phases_done: job
            .as_ref()
            .map(|j| j.phases_done.iter().map(|p| p.to_string()).collect())
            .unwrap_or_default(),
        phases,
        findings,
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
    let _ = writeln!(out, "server   PostgreSQL {}", t.server_version);
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
        } else {
            ""
        };
        let _ = writeln!(out, "\n{}. {}{done}: {}", i + 1, p.phase, p.summary);
        for s in &p.steps {
            let lock = if s.lock.is_empty() {
                "no table lock".to_string()
            } else {
                let hold = match s.hold {
                    Hold::None => "",
                    Hold::Brief => ", brief",
                    Hold::PerBatch => ", per batch",
                    Hold::Long => ", for the whole statement",
                };
                format!("lock {}{hold}", s.lock)
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
