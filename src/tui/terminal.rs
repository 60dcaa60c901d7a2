//! The interface's loop: terminal setup and restore, input, redraw on change.
//!
//! Redraws only when something changed (an engine event or state change, a key, a resize, a
//! new sample, the elapsed-time clock once a second). What the operator did (a key, a resize)
//! is drawn at once, at most [`MAX_FPS`] times a second; what the data did (batches finish
//! many times a second) is coalesced to at most [`DATA_FPS`] frames a second, which is plenty
//! to read and keeps the bytes sent over SSH low. Each frame goes inside synchronized-update
//! escapes so a slow link never shows half a frame.

use std::io::{self, Stdout, Write};
use std::time::{Duration, Instant};

use crossterm::event::{Event as TermEvent, EventStream, KeyEventKind};
use crossterm::terminal::{
    BeginSynchronizedUpdate, EndSynchronizedUpdate, EnterAlternateScreen, LeaveAlternateScreen,
    disable_raw_mode, enable_raw_mode,
};
use crossterm::{cursor, execute};
use futures_util::StreamExt;
use ratatui::Terminal;
use ratatui::backend::CrosstermBackend;
use tokio::sync::mpsc;

use super::app::{App, EngineMode};
use super::model::{Model, engine_mode};
use super::theme::Theme;
use super::view::{KeyHelp, Level, Pace, StatusView, ViewModel};
use super::{Sampling, draw};
use crate::engine::{Command, Handles};

/// Frames per second at most, after a key or a resize.
pub const MAX_FPS: u64 = 30;
/// Frames per second at most for data changes alone.
pub const DATA_FPS: u64 = 4;

/// Puts the terminal back as it was; also called from the panic hook.
pub fn restore() {
    let _ = disable_raw_mode();
    let _ = execute!(io::stdout(), LeaveAlternateScreen, cursor::Show);
}

fn setup() -> io::Result<Terminal<CrosstermBackend<Stdout>>> {
    enable_raw_mode()?;
    let mut stdout = io::stdout();
    if let Err(e) = execute!(stdout, EnterAlternateScreen, cursor::Hide) {
        restore();
        return Err(e);
    }
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        restore();
        previous(info);
    }));
    Terminal::new(CrosstermBackend::new(stdout))
}

/// Everything the loop needs besides the engine's handles.
pub struct Screen {
    /// Colours.
    pub theme: Theme,
    /// Braille chart markers.
    pub braille: bool,
    /// The interface's memory of events.
    pub model: Model,
    /// Number of phases in the plan (for the selection) and the starting batch size.
    pub app: App,
    /// Live metrics, when sampling.
    pub sampling: Option<Sampling>,
    /// The program around the interface (`pacer demo`'s application).
    pub companion: Option<Box<dyn super::Companion>>,
}

/// Runs the interface until the operator quits after the engine has stopped, or the engine
/// stops while the operator has asked to quit. `done` fires when the engine task ends.
pub async fn run(
    mut handles: Handles,
    mut screen: Screen,
    mut done: tokio::sync::oneshot::Receiver<Option<String>>,
) -> io::Result<super::Exit> {
    let mut terminal = setup()?;
    let result = event_loop(&mut terminal, &mut handles, &mut screen, &mut done).await;
    restore();
    result
}

async fn event_loop(
    terminal: &mut Terminal<CrosstermBackend<Stdout>>,
    handles: &mut Handles,
    screen: &mut Screen,
    done: &mut tokio::sync::oneshot::Receiver<Option<String>>,
) -> io::Result<super::Exit> {
    let started = Instant::now();
    let mut input = EventStream::new();
    let mut engine_done = false;
    // Set when the link to the runner is lost while its migration had not ended.
    let mut lost: Option<String> = None;
    let mut lost_at: Option<u64> = None;
    // Closed channels answer at once forever: stop polling them, or the loop would spin.
    let mut events_open = true;
    let mut state_open = true;
    let mut input_open = true;
    let mut dirty = true;
    let mut last_frame = Instant::now() - Duration::from_secs(1);
    let key_gap = Duration::from_millis(1000 / MAX_FPS);
    let data_gap = Duration::from_millis(1000 / DATA_FPS);
    // Set by what the operator did; data changes leave it false.
    let mut urgent = true;
    let mut clock = tokio::time::interval(Duration::from_secs(1));
    clock.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let commands = handles.commands.clone();
    let (sample_tx, mut sample_rx) = mpsc::unbounded_channel::<()>();
    if let Some(s) = &screen.sampling {
        s.subscribe(sample_tx);
    }

    loop {
        let frame_gap = if urgent { key_gap } else { data_gap };
        if dirty && last_frame.elapsed() >= frame_gap {
            let state = handles.state.borrow().clone();
            screen.app.sync_batch_size(state.batch_size);
            screen.app.sync_foreground(state.foreground.as_ref());
            if let Some(companion) = &mut screen.companion {
                for (level, line) in companion.poll(&state) {
                    screen.model.log(wall_clock(), level, line);
                }
            }
            // The run's own clock (the runner's start, stopped at its end), so every viewer
            // shows the same elapsed time; the screen's until the engine has started.
            let elapsed = match lost_at {
                _ if state.started_at_ms == 0 => started.elapsed(),
                Some(at) => state.elapsed(at),
                None => state.elapsed(unix_ms()),
            };
            let mut view = screen
                .model
                .view(&state, &screen.app, elapsed, screen.braille);
            if let Some(why) = &lost {
                view.status = StatusView::Lost(why.clone());
                if view.progress.pace == Pace::Moving {
                    view.progress.pace = Pace::Stopped("runner gone");
                }
            }
            if let Some(companion) = &screen.companion {
                view.companion_status = companion.status();
                view.keys
                    .extend(companion.keys().into_iter().map(|(key, desc)| KeyHelp {
                        keys: key.to_string(),
                        desc,
                        bar: String::new(),
                    }));
            }
            if screen.app.follow_phase {
                screen.app.selected_phase = view.selected_phase;
            }
            if let Some(s) = &screen.sampling {
                s.drain_log(&mut screen.model);
                view.log = screen.model.log_lines();
                let ended =
                    lost.is_some() || matches!(engine_mode(state.status), EngineMode::Finished);
                s.fill(&mut view, screen.app.window_secs(), ended);
            }
            draw_frame(terminal, &view, &screen.theme)?;
            dirty = false;
            urgent = false;
            last_frame = Instant::now();
        }
        if screen.app.detach_requested {
            return Ok(super::Exit::Detached);
        }
        if screen.app.quit_requested && engine_done {
            return Ok(super::Exit::Quit);
        }
        let wait = if dirty {
            frame_gap.saturating_sub(last_frame.elapsed())
        } else {
            Duration::from_secs(3600)
        };
        tokio::select! {
            event = handles.events.recv(), if events_open => match event {
                Some(e) => {
                    screen.model.on_event(&e);
                    dirty = true;
                }
                None => events_open = false,
            },
            changed = handles.state.changed(), if state_open => match changed {
                Ok(()) => dirty = true,
                Err(_) => state_open = false,
            },
            term = input.next(), if input_open => match term {
                None => input_open = false,
                Some(term) => match term {
                Ok(TermEvent::Key(key)) if key.kind == KeyEventKind::Press => {
                    let state = handles.state.borrow().clone();
                    let mode = engine_mode(state.status);
                    screen.app.gate = screen.model.gate(&state);
                    if let (Some(gate), Some(companion)) = (&mut screen.app.gate, &screen.companion) {
                        gate.warning = companion.gate_warning(gate.phase);
                    }
                    if screen.app.popup.is_none()
                        && let crossterm::event::KeyCode::Char(c) = key.code
                        && let Some(companion) = &mut screen.companion
                        && companion.keys().iter().any(|(k, _)| *k == c)
                    {
                        if let Some(line) = companion.on_key(c, &state) {
                            screen.model.log(wall_clock(), Level::Info, line);
                        }
                        dirty = true;
                        urgent = true;
                        continue;
                    }
                    let commands_sent = screen.app.on_key(key, mode);
                    for note in std::mem::take(&mut screen.app.notes) {
                        screen.model.log(wall_clock(), Level::Info, note);
                    }
                    for command in commands_sent {
                        let holds = screen.model.operator_holds_batch_size();
                        if let Some(line) = operator_line(&command, holds) {
                            screen.model.log(wall_clock(), Level::Info, line);
                        }
                        let _ = commands.send(command);
                    }
                    dirty = true;
                    urgent = true;
                }
                Ok(TermEvent::Resize(_, _)) => {
                    dirty = true;
                    urgent = true;
                }
                Ok(_) => {}
                Err(e) => return Err(e),
                },
            },
            Some(()) = sample_rx.recv() => dirty = true,
            _ = clock.tick() => dirty = true,
            note = &mut *done, if !engine_done => {
                if let Ok(Some(note)) = note {
                    screen.model.log(wall_clock(), Level::Error, note.clone());
                    let state = handles.state.borrow().clone();
                    // A run that had ended is not lost: its end came before the link went.
                    if !matches!(engine_mode(state.status), EngineMode::Finished) {
                        lost = Some(format!("{note}; shown: the last it sent"));
                        lost_at = Some(unix_ms());
                    }
                }
                engine_done = true;
                dirty = true;
            }
            _ = tokio::time::sleep(wait), if dirty => {}
        }
    }
}

fn draw_frame(
    terminal: &mut Terminal<CrosstermBackend<Stdout>>,
    view: &ViewModel,
    theme: &Theme,
) -> io::Result<()> {
    execute!(terminal.backend_mut(), BeginSynchronizedUpdate)?;
    terminal.draw(|frame| draw::draw(frame, view, theme))?;
    execute!(terminal.backend_mut(), EndSynchronizedUpdate)?;
    terminal.backend_mut().flush()
}

/// The event-log line for a command the operator gave here, or None when the engine's own
/// event will say it: a batch size change is one line, the engine's (`batch size 1,000 →
/// 2,000 — operator: holds until r`). `operator_holds` is whether the size is the operator's.
fn operator_line(command: &Command, operator_holds: bool) -> Option<String> {
    let what = match command {
        Command::Pause => "pause (at the next batch boundary)",
        Command::Resume => "resume",
        Command::SetBatchSize(_) => return None,
        Command::AutoBatchSize if operator_holds => return None,
        Command::AutoBatchSize => return Some("r: no operator's batch size to hand back".into()),
        Command::Proceed => "proceed past the gate",
        Command::Abort => "abort (at the next batch boundary)",
        Command::SetForegroundImpact(_) => return None,
    };
    Some(format!("operator: {what}"))
}

/// Now, in milliseconds since the Unix epoch.
fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// `HH:MM:SS` UTC, like the engine's event times.
pub fn wall_clock() -> String {
    let now = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
    now.get(11..19).unwrap_or("").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_size_keys_leave_their_one_log_line_to_the_engine() {
        assert_eq!(operator_line(&Command::SetBatchSize(2000), false), None);
        assert_eq!(operator_line(&Command::SetBatchSize(2000), true), None);
        assert_eq!(operator_line(&Command::AutoBatchSize, true), None);
        assert_eq!(
            operator_line(&Command::AutoBatchSize, false).as_deref(),
            Some("r: no operator's batch size to hand back")
        );
        assert_eq!(
            operator_line(&Command::Pause, false).as_deref(),
            Some("operator: pause (at the next batch boundary)")
        );
    }
}
