//! Keys → actions. One table: it drives input handling, the help overlay and the key bar.

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

use super::view::KeyHelp;

/// What a key asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Pause, or resume when paused.
    TogglePause,
    /// Batch size up by a step.
    BatchUp,
    /// Batch size down by a step.
    BatchDown,
    /// Type an exact batch size.
    BatchInput,
    /// Hand the batch size back to the adaptive sizer.
    BatchAuto,
    /// Turn the foreground guard off, or on again with its last bound.
    ToggleForeground,
    /// Abort at the next batch boundary (asks first).
    Abort,
    /// Proceed past the gate the engine waits at (asks first).
    Proceed,
    /// Quit (asks first while a migration runs).
    Quit,
    /// Show or hide the help overlay.
    Help,
    /// Close the popup.
    Close,
    /// Select the previous phase.
    Up,
    /// Select the next phase.
    Down,
    /// Scroll the event log up a page.
    LogUp,
    /// Scroll the event log down a page.
    LogDown,
    /// Follow the end of the event log.
    LogEnd,
    /// Shorter chart window.
    ZoomIn,
    /// Longer chart window.
    ZoomOut,
}

/// One keymap entry: the keys, the action, and what it does in words.
pub struct Binding {
    /// Keys as shown in help.
    pub label: &'static str,
    /// Key codes that trigger it (without modifiers other than shift).
    pub codes: &'static [KeyCode],
    /// The action.
    pub action: Action,
    /// What it does.
    pub desc: &'static str,
    /// Its name in the key bar, in two words at most (empty: only in the help).
    pub bar: &'static str,
}

/// The keymap, in help order.
pub const KEYMAP: &[Binding] = &[
    Binding {
        label: "p, space",
        codes: &[KeyCode::Char('p'), KeyCode::Char(' ')],
        action: Action::TogglePause,
        desc: "pause / resume (a pause waits for the next batch boundary)",
        bar: "pause/resume",
    },
    Binding {
        label: "+",
        codes: &[KeyCode::Char('+'), KeyCode::Char('=')],
        action: Action::BatchUp,
        desc: "batch size up by 25% (at most 1,000,000)",
        bar: "bigger batches",
    },
    Binding {
        label: "-",
        codes: &[KeyCode::Char('-'), KeyCode::Char('_')],
        action: Action::BatchDown,
        desc: "batch size down by 20% (at least 1)",
        bar: "smaller batches",
    },
    Binding {
        label: "b",
        codes: &[KeyCode::Char('b')],
        action: Action::BatchInput,
        desc: "type an exact batch size",
        bar: "set batch size",
    },
    Binding {
        label: "r",
        codes: &[KeyCode::Char('r')],
        action: Action::BatchAuto,
        desc: "hand the batch size back to the adaptive sizer (+, -, b hold it until then)",
        bar: "adaptive size",
    },
    Binding {
        label: "f",
        codes: &[KeyCode::Char('f')],
        action: Action::ToggleForeground,
        desc: "foreground guard off / on (its bound: pacer ctl foreground)",
        bar: "",
    },
    Binding {
        label: "a",
        codes: &[KeyCode::Char('a')],
        action: Action::Abort,
        desc: "abort at the next batch boundary, resumable (asks first)",
        bar: "abort",
    },
    Binding {
        label: "g",
        codes: &[KeyCode::Char('g')],
        action: Action::Proceed,
        desc: "proceed past a gate (asks first)",
        bar: "proceed past a gate",
    },
    Binding {
        label: "q",
        codes: &[KeyCode::Char('q')],
        action: Action::Quit,
        desc: "quit (asks first while a migration runs)",
        bar: "quit",
    },
    Binding {
        label: "?",
        codes: &[KeyCode::Char('?')],
        action: Action::Help,
        desc: "this help",
        bar: "",
    },
    Binding {
        label: "Esc",
        codes: &[KeyCode::Esc],
        action: Action::Close,
        desc: "close a popup (answers no)",
        bar: "",
    },
    Binding {
        label: "↑, k",
        codes: &[KeyCode::Up, KeyCode::Char('k')],
        action: Action::Up,
        desc: "select the previous phase (its SQL is shown)",
        bar: "select phase",
    },
    Binding {
        label: "↓, j",
        codes: &[KeyCode::Down, KeyCode::Char('j')],
        action: Action::Down,
        desc: "select the next phase",
        bar: "",
    },
    Binding {
        label: "PgUp, u",
        codes: &[KeyCode::PageUp, KeyCode::Char('u')],
        action: Action::LogUp,
        desc: "scroll the event log up",
        bar: "scroll the log",
    },
    Binding {
        label: "PgDn, d",
        codes: &[KeyCode::PageDown, KeyCode::Char('d')],
        action: Action::LogDown,
        desc: "scroll the event log down",
        bar: "",
    },
    Binding {
        label: "End, G",
        codes: &[KeyCode::End, KeyCode::Char('G')],
        action: Action::LogEnd,
        desc: "follow the end of the event log",
        bar: "",
    },
    Binding {
        label: "[",
        codes: &[KeyCode::Char('[')],
        action: Action::ZoomIn,
        desc: "charts: shorter time window (1m, 5m, 15m)",
        bar: "zoom charts",
    },
    Binding {
        label: "]",
        codes: &[KeyCode::Char(']')],
        action: Action::ZoomOut,
        desc: "charts: longer time window",
        bar: "",
    },
];

/// The action bound to a key, if any. Ctrl-C is Quit, like q.
pub fn action_for(key: &KeyEvent) -> Option<Action> {
    if key.modifiers.contains(KeyModifiers::CONTROL) {
        return (key.code == KeyCode::Char('c')).then_some(Action::Quit);
    }
    KEYMAP
        .iter()
        .find(|b| b.codes.contains(&key.code))
        .map(|b| b.action)
}

/// The first key bound to `action`, as help shows it (`g`).
pub fn key_for(action: Action) -> Option<&'static str> {
    KEYMAP
        .iter()
        .find(|b| b.action == action)
        .and_then(|b| b.label.split(", ").next())
}

/// Bindings the help shows as one line (they are one idea), with the keys and words it uses.
const JOINED: &[(&[Action], &str, &str)] = &[
    (
        &[Action::Up, Action::Down],
        "↑/↓, k/j",
        "select a phase (its SQL and locks are shown)",
    ),
    (
        &[Action::LogUp, Action::LogDown, Action::LogEnd],
        "PgUp/PgDn/End",
        "scroll the event log up, down; follow its end (also u, d, G)",
    ),
    (
        &[Action::ZoomIn, Action::ZoomOut],
        "[, ]",
        "charts: shorter / longer time window (1m, 5m, 15m)",
    ),
];

/// Every key with its meaning, for the help overlay (short enough for 80×24 with the demo's
/// keys too).
pub fn help() -> Vec<KeyHelp> {
    let mut keys: Vec<KeyHelp> = Vec::new();
    for b in KEYMAP {
        match JOINED
            .iter()
            .find(|(actions, ..)| actions.contains(&b.action))
        {
            Some((actions, label, desc)) if actions[0] == b.action => keys.push(KeyHelp {
                keys: label.to_string(),
                desc: desc.to_string(),
                bar: b.bar.to_string(),
            }),
            Some(_) => {}
            None => keys.push(KeyHelp {
                keys: b.label.to_string(),
                desc: b.desc.to_string(),
                bar: b.bar.to_string(),
            }),
        }
    }
    keys.push(KeyHelp {
        keys: "y / n".into(),
        desc: "answer a question: yes / no".into(),
        bar: String::new(),
    });
    keys
}
