//! The top-level error report, by color-eyre: a [`Failure`] becomes an `eyre::Report` with
//! its cause chain and a suggestion section, and color-eyre renders it. Its first entry is
//! printed as pacer has always printed a failure, `pacer: <message>`, so scripts and the
//! README's messages stay as they are; the causes the message does not already quote follow
//! it, numbered, then `Suggestion: …`. Colours only on a terminal, and never with NO_COLOR.
//!
//! color-eyre also reports panics (with a section saying what to do about the migration).

use std::fmt::Write as _;

use color_eyre::config::{HookBuilder, Theme};
use color_eyre::owo_colors::Style;
use color_eyre::{Report, Section as _};

use super::Failure;

/// What a panic report adds: a crash is a bug, and the migration's progress is safe.
const PANIC_SECTION: &str = "This is a bug in pacer: please report it with this text. What \
     the migration has done is recorded in its state table: `pacer status PLAN.toml` shows \
     where it stands, and running it again resumes from its last checkpoint (or says where it \
     still runs). RUST_BACKTRACE=1 adds a backtrace to this report.";

/// Installs color-eyre's hooks: error reports as [`render`] needs them, panics reported with
/// [`PANIC_SECTION`].
pub fn install() {
    use std::io::IsTerminal;
    let colour = std::io::stderr().is_terminal()
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let theme = if colour {
        // pacer's own line stays plain; the sections get colour.
        Theme::dark().error(Style::new())
    } else {
        Theme::new()
    };
    let _ = hooks(theme).install();
}

/// color-eyre's settings (its hooks can be built once per process): no location and no
/// environment section in an error report, which is for the operator, not about pacer's code.
fn hooks(theme: Theme) -> HookBuilder {
    HookBuilder::default()
        .theme(theme)
        .display_location_section(false)
        .display_env_section(false)
        .panic_section(PANIC_SECTION)
}

impl Failure {
    /// The failure as a report: the message, the causes under it, the suggestion.
    pub fn report(&self) -> Report {
        let mut causes = self.causes.iter().rev();
        let report = match causes.next() {
            None => Report::msg(self.message.clone()),
            Some(innermost) => causes
                .fold(Report::msg(innermost.clone()), |r, c| r.wrap_err(c.clone()))
                .wrap_err(self.message.clone()),
        };
        // A backtrace of where the report was made says nothing about what failed.
        let report = report.suppress_backtrace(true);
        match &self.suggestion {
            Some(s) => report.suggestion(s.clone()),
            None => report,
        }
    }
}

/// The report as printed: `pacer: <message>`, then what color-eyre renders after its first
/// entry (further causes, sections), ending with a newline.
pub fn render(report: &Report) -> String {
    let headline = report.to_string();
    let full = format!("{report:?}");
    match full.strip_prefix(&first_entry(&headline)) {
        Some(rest) => format!("pacer: {headline}{rest}\n"),
        // Not color-eyre's handler (not installed): eyre's own rendering, under pacer's line.
        None => format!("pacer: {full}\n"),
    }
}

/// How color-eyre renders a report's first entry with a plain error style: a line break,
/// `   0: ` before the first line, six spaces before each further non-empty line.
fn first_entry(text: &str) -> String {
    let mut out = String::from("\n");
    for (i, line) in text.split('\n').enumerate() {
        if i > 0 {
            out.push('\n');
        }
        if line.is_empty() {
            continue;
        }
        let _ = write!(out, "{}{line}", if i == 0 { "   0: " } else { "      " });
    }
    out
}

#[cfg(test)]
pub(crate) fn install_for_tests() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let (_, eyre_hook) = hooks(Theme::new()).into_hooks();
        let _ = eyre_hook.install();
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn printed(f: Failure) -> String {
        install_for_tests();
        render(&f.report())
    }

    #[test]
    fn a_failure_prints_as_pacers_own_line() {
        assert_eq!(
            printed(Failure::refused("plan.toml:3: unknown key `tabel`")),
            "pacer: plan.toml:3: unknown key `tabel`\n"
        );
        let text = "pacer demo: the server failed\n\n  its log:\n    FATAL: no space\n/tmp/d";
        assert_eq!(printed(Failure::failed(text)), format!("pacer: {text}\n"));
    }

    #[test]
    fn the_causes_the_message_does_not_quote_follow_it_then_the_suggestion() {
        let inner = std::io::Error::other("Connection refused (os error 111)");
        let outer = Wrapped("error connecting to server", inner);
        let f = Failure::failed("cannot start the runner: error connecting to server")
            .because(&outer)
            .suggest("`pacer run --headless` runs the migration in this process.");
        assert_eq!(
            printed(f),
            "pacer: cannot start the runner: error connecting to server\n   \
             1: Connection refused (os error 111)\n\nSuggestion: `pacer run --headless` runs \
             the migration in this process.\n"
        );
    }

    #[test]
    fn exit_codes_stay_with_the_failure() {
        let f = Failure::refused("x").suggest("y");
        assert_eq!(f.code, super::super::EXIT_REFUSED);
        assert_eq!(Failure::failed("x").code, super::super::EXIT_FAILURE);
    }

    /// An error with a source, as drivers make them.
    #[derive(Debug)]
    struct Wrapped(&'static str, std::io::Error);

    impl std::fmt::Display for Wrapped {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(self.0)
        }
    }

    impl std::error::Error for Wrapped {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.1)
        }
    }
}
