//! `pacer status`: the migration's recorded state, from the state table in the database.

use super::{AuditLog, Failure, connect, load_plan, open_audit};
use crate::TargetArgs;
use crate::format::{of_total, thousands};
use crate::target::Target;

/// Prints the recorded state. Exit 0 when it could be read (whatever the state).
pub async fn run(args: &TargetArgs, json: bool, audit_log: &AuditLog) -> Result<u8, Failure> {
    let plan = load_plan(args)?;
    let audit = open_audit(audit_log, &plan)?;
    let mut target = connect(args, &plan, audit.clone()).await?;
    audit.note(
        "command",
        serde_json::json!({ "command": "status", "target": target.describe() }),
    );
    target
        .locate()
        .await
        .map_err(|e| Failure::failed(format!("cannot read the migration state: {e}")))?;
    let job = target
        .load_job()
        .await
        .map_err(|e| Failure::failed(format!("cannot read the migration state: {e}")))?;
    let Some(j) = job else {
        if json {
            println!(
                "{}",
                serde_json::json!({ "job": target.job_id(), "state": null })
            );
        } else {
            println!(
                "migration {} has not started on {} (no state recorded in {}).",
                target.job_id(),
                target.describe(),
                plan.state_table
            );
        }
        return Ok(super::EXIT_DONE);
    };
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&j).map_err(|e| Failure::failed(e.to_string()))?
        );
        return Ok(super::EXIT_DONE);
    }
    let total = of_total(j.rows_done, j.rows_total);
    println!("migration   {}", j.job);
    println!("target      {}", target.describe());
    println!("outcome     {}", j.outcome.as_str());
    println!("phase       {}", j.phase);
    println!(
        "done        {}",
        if j.phases_done.is_empty() {
            "none".to_string()
        } else {
            j.phases_done
                .iter()
                .map(|p| p.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        }
    );
    println!(
        "rows        {} walked{total}, {} updated, {} batches",
        thousands(j.rows_done),
        thousands(j.rows_updated),
        thousands(j.batches)
    );
    println!(
        "checkpoint  {}{}",
        j.last_key
            .as_ref()
            .map_or("none yet".to_string(), |k| k.to_string()),
        j.range_end
            .as_ref()
            .map(|e| format!(" (range ends at {e})"))
            .unwrap_or_default()
    );
    println!("started     {}", j.started_at);
    println!("updated     {}", j.updated_at);
    if let Some(f) = &j.finished_at {
        println!("finished    {f}");
    }
    if let Some(r) = &j.runner {
        println!("runner      {r}");
    }
    if let Some(m) = &j.message {
        println!("message     {m}");
    }
    Ok(super::EXIT_DONE)
}
