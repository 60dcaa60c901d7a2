//! Headless output: human progress lines on stderr, or one JSON object per event on stdout.

use std::io::Write;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use crate::commands::thousands;
use crate::engine::{Event, EventKind, SizeSource};

/// How events are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    /// Lines for people on stderr; batch progress at most once a second.
    Human,
    /// One JSON object per event on stdout (every event, nothing dropped).
    Json,
}

/// Prints events until the engine's event channel closes.
pub struct Printer {
    style: Style,
    started: Instant,
    last_progress: Option<Instant>,
    pending_progress: Option<String>,
}

/// Batch progress lines are printed at most this often.
const PROGRESS_EVERY: Duration = Duration::from_secs(1);

impl Printer {
    /// A printer in the given style.
    pub fn new(style: Style) -> Printer {
        Printer {
            style,
            started: Instant::now(),
            last_progress: None,
            pending_progress: None,
        }
    }

    /// Consumes events until the channel closes.
    pub async fn run(mut self, mut events: mpsc::UnboundedReceiver<Event>) {
        while let Some(event) = events.recv().await {
            self.print(&event);
        }
        self.flush_progress();
    }

    fn print(&mut self, event: &Event) {
        match self.style {
            Style::Json => {
                if let Ok(line) = serde_json::to_string(event) {
                    let mut out = std::io::stdout().lock();
                    let _ = writeln!(out, "{line}");
                    let _ = out.flush();
                }
            }
            Style::Human => {
                let elapsed = self.started.elapsed().as_secs_f64();
                let Some(text) = human_line(&event.kind) else {
                    return;
                };
                let line = format!("[{elapsed:>7.1}s] {text}");
                if matches!(event.kind, EventKind::BatchDone { .. }) {
                    let now = Instant::now();
                    if self
                        .last_progress
                        .is_some_and(|t| now.duration_since(t) < PROGRESS_EVERY)
                    {
                        self.pending_progress = Some(line);
                        return;
                    }
                    self.last_progress = Some(now);
                    self.pending_progress = None;
                } else {
                    self.flush_progress();
                }
                eprintln!("{line}");
            }
        }
    }

    fn flush_progress(&mut self) {
        if let Some(line) = self.pending_progress.take() {
            eprintln!("{line}");
        }
    }
}

fn duration(secs: u64) -> String {
    match secs {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m{:02}s", s / 60, s % 60),
        s => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
    }
}

/// The line for one event, or None for events that only JSON consumers want.
pub fn human_line(kind: &EventKind) -> Option<String> {
    Some(match kind {
        EventKind::Started {
            target,
            table,
            phases,
            batch_size,
        } => format!(
            "target {target}, table {table}, batch size {}; phases {}",
            thousands(*batch_size),
            phases
                .iter()
                .map(|p| p.to_string())
                .collect::<Vec<_>>()
                .join(" → ")
        ),
        EventKind::Planned { .. } => return None,
        EventKind::Finding { severity, message } => {
            format!("{severity:?}: {message}").to_lowercase_first()
        }
        EventKind::PhaseStarted { phase } => format!("{phase}: started"),
        EventKind::PhaseSkipped { phase, reason } => format!("{phase}: skipped ({reason})"),
        EventKind::PhaseDone { phase, elapsed_ms } => {
            format!("{phase}: done in {:.1}s", *elapsed_ms as f64 / 1000.0)
        }
        EventKind::StepDone {
            phase,
            step,
            outcome,
            detail,
        } => {
            let what = match outcome.as_str() {
                "already_done" => "already done".to_string(),
                "repaired" => format!("done — {}", detail.as_deref().unwrap_or("")),
                _ => "done".to_string(),
            };
            format!("{phase}: {step}: {what}")
        }
        EventKind::LockTimeout {
            phase,
            step,
            attempt,
            max_attempts,
            retry_in_ms,
            blockers,
            detail,
            skipped,
        } => {
            let who = if blockers.is_empty() {
                format!("({detail})")
            } else {
                format!(
                    "blocked by {}",
                    blockers
                        .iter()
                        .map(|b| b.to_string())
                        .collect::<Vec<_>>()
                        .join("; ")
                )
            };
            let what = if *skipped {
                "not attempted while a session holds the table"
            } else {
                "lock wait timed out"
            };
            format!(
                "{phase}: {step}: {what} (attempt {attempt}/{max_attempts}), {who}; retrying in {:.1}s",
                *retry_in_ms as f64 / 1000.0
            )
        }
        EventKind::Waiting {
            phase,
            step,
            attempt,
            max_attempts,
            retry_in_ms,
            detail,
        } => format!(
            "{phase}: {step}: {detail} (attempt {attempt}/{max_attempts}); retrying in {:.1}s",
            *retry_in_ms as f64 / 1000.0
        ),
        EventKind::BackfillRange {
            after,
            end,
            rows_done,
            rows_total,
        } => match end {
            None => "backfill: the table was empty when the backfill began; nothing to fill".into(),
            Some(end) => format!(
                "backfill: keys {} up to {end}; ~{} rows{}",
                after
                    .as_ref()
                    .map_or("from the first".to_string(), |a| format!("after {a}")),
                rows_total.map_or("?".to_string(), thousands),
                if *rows_done > 0 {
                    format!(", resuming after {} done", thousands(*rows_done))
                } else {
                    String::new()
                }
            ),
        },
        EventKind::BatchDone {
            rows_done,
            rows_total,
            rows_per_s,
            batch_size,
            eta_s,
            hi,
            duration_ms,
            ..
        } => {
            let of = match rows_total {
                Some(t) if *t > 0 => format!(
                    "/{} rows ({:.1}%)",
                    thousands(*t),
                    *rows_done as f64 * 100.0 / *t as f64
                ),
                _ => " rows".to_string(),
            };
            format!(
                "backfill  {}{of}  {} rows/s  batch {} ({duration_ms} ms)  ETA {}  checkpoint {hi}",
                thousands(*rows_done),
                thousands(rows_per_s.round() as u64),
                thousands(*batch_size),
                eta_s.map_or("?".to_string(), duration),
            )
        }
        EventKind::BatchTimeout { from, to, detail } => format!(
            "backfill: a batch of {} rows timed out and was rolled back ({detail}); batch size now {}",
            thousands(*from),
            thousands(*to)
        ),
        // The sizer adjusts most batches; progress lines show the size. Only cuts are news.
        EventKind::BatchSizeChanged {
            by: SizeSource::Adaptive,
            reason,
            ..
        } if !reason.contains("cut at once") && !reason.contains("handed back") => {
            return None;
        }
        EventKind::BatchSizeChanged {
            from, to, reason, ..
        } => {
            format!(
                "batch size {} → {} ({reason})",
                thousands(*from),
                thousands(*to)
            )
        }
        EventKind::VerifyProgress { rows_checked, .. } => {
            format!("verify: {} rows checked", thousands(*rows_checked))
        }
        EventKind::Throttled { reasons } => format!(
            "THROTTLED: {}; waiting at the batch boundary",
            reasons
                .iter()
                .map(|r| r.to_string())
                .collect::<Vec<_>>()
                .join("; ")
        ),
        EventKind::Unthrottled { after_ms } => format!(
            "throttle lifted after {:.1}s; going on",
            *after_ms as f64 / 1000.0
        ),
        EventKind::PauseRequested => {
            "pause requested: takes effect at the next batch boundary".into()
        }
        EventKind::Paused { phase } => format!("{phase}: PAUSED at a batch boundary"),
        EventKind::Resumed => "resumed".into(),
        EventKind::AbortRequested => "abort requested: stopping at the next batch boundary".into(),
        EventKind::GateReached { phase, lock } => {
            format!("gate: waiting before {phase} ({lock}); proceed with: pacer ctl proceed")
        }
        EventKind::GateProceeded { phase } => {
            format!("gate: the operator proceeded; {phase} starts")
        }
        EventKind::ConnectionLost {
            detail,
            attempt,
            max_attempts,
            retry_in_ms,
        } => format!(
            "connection lost ({detail}); reconnecting in {:.1}s (attempt {attempt}/{max_attempts})",
            *retry_in_ms as f64 / 1000.0
        ),
        EventKind::Reconnected { .. } => "reconnected; going on from the last checkpoint".into(),
        EventKind::AlreadyDone => "this migration finished in an earlier run; nothing to do".into(),
        EventKind::Done {
            rows_done,
            rows_updated,
            elapsed_ms,
        } => format!(
            "DONE: {} rows walked, {} updated, in {:.1}s",
            thousands(*rows_done),
            thousands(*rows_updated),
            *elapsed_ms as f64 / 1000.0
        ),
        EventKind::Aborted { phase } => format!(
            "ABORTED by the operator{}; everything is resumable: run the same command again",
            phase.map(|p| format!(" during {p}")).unwrap_or_default()
        ),
        // `pacer run` prints the error itself as its last line (`pacer: …`), in every style.
        EventKind::Failed { phase, .. } => format!(
            "FAILED{}",
            phase.map(|p| format!(" during {p}")).unwrap_or_default()
        ),
    })
}

trait LowercaseFirst {
    fn to_lowercase_first(self) -> String;
}

impl LowercaseFirst for String {
    fn to_lowercase_first(self) -> String {
        let mut chars = self.chars();
        match chars.next() {
            Some(c) => c.to_lowercase().chain(chars).collect(),
            None => self,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::Phase;

    #[test]
    fn a_gate_says_what_it_waits_before_with_its_locks_and_how_to_proceed() {
        assert_eq!(
            human_line(&EventKind::GateReached {
                phase: Phase::NotNull,
                lock: "ACCESS EXCLUSIVE briefly".into()
            })
            .unwrap(),
            "gate: waiting before not_null (ACCESS EXCLUSIVE briefly); proceed with: pacer ctl proceed"
        );
        assert_eq!(
            human_line(&EventKind::GateProceeded {
                phase: Phase::Index
            })
            .unwrap(),
            "gate: the operator proceeded; index starts"
        );
    }

    #[test]
    fn gate_events_are_json_with_snake_case_tags() {
        let event = Event {
            ts: "t".into(),
            job: "public.t.c".into(),
            kind: EventKind::GateReached {
                phase: Phase::NotNull,
                lock: "ACCESS EXCLUSIVE briefly".into(),
            },
        };
        assert_eq!(
            serde_json::to_value(&event).unwrap(),
            serde_json::json!({
                "ts": "t",
                "job": "public.t.c",
                "event": "gate_reached",
                "phase": "not_null",
                "lock": "ACCESS EXCLUSIVE briefly"
            })
        );
        let event = Event {
            kind: EventKind::GateProceeded {
                phase: Phase::NotNull,
            },
            ..event
        };
        assert_eq!(
            serde_json::to_value(&event).unwrap()["event"],
            "gate_proceeded"
        );
    }
}
