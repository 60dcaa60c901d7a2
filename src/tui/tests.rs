//! Snapshot tests of the whole screen for every fixture, at 80×24 and 160×48, plus checks
//! that no size panics, that mono has no colour yet reads, and that themes reach the cells.

use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::buffer::Buffer;
use ratatui::style::Color;

use super::draw::draw;
use super::fixtures;
use super::mysql_fixtures;
use super::theme::Theme;
use super::view::{StatusView, ViewModel};

fn render(view: &ViewModel, theme: &Theme, width: u16, height: u16) -> Terminal<TestBackend> {
    let mut terminal = Terminal::new(TestBackend::new(width, height)).unwrap();
    terminal.draw(|frame| draw(frame, view, theme)).unwrap();
    terminal
}

fn text_of(buffer: &Buffer) -> String {
    let mut text = String::new();
    for y in 0..buffer.area.height {
        for x in 0..buffer.area.width {
            text.push_str(buffer[(x, y)].symbol());
        }
        text.push('\n');
    }
    text
}

/// Where `needle` starts on screen, if it is there.
fn find(buffer: &Buffer, needle: &str) -> Option<(u16, u16)> {
    for y in 0..buffer.area.height {
        let row: Vec<&str> = (0..buffer.area.width)
            .map(|x| buffer[(x, y)].symbol())
            .collect();
        let line: String = row.concat();
        if let Some(byte) = line.find(needle) {
            // Cells up to the byte offset (symbols here are one cell wide).
            let mut x = 0u16;
            let mut seen = 0;
            for sym in &row {
                if seen >= byte {
                    break;
                }
                seen += sym.len();
                x += 1;
            }
            return Some((x, y));
        }
    }
    None
}

fn snapshot(name: &str, view: &ViewModel) {
    let theme = Theme::load("dark").unwrap();
    for (w, h) in [(80, 24), (160, 48)] {
        let terminal = render(view, &theme, w, h);
        insta::assert_snapshot!(format!("{name}_{w}x{h}"), terminal.backend());
    }
}

#[test]
fn running_screen() {
    snapshot("running", &fixtures::running());
}

#[test]
fn guarded_screen() {
    snapshot("guarded", &fixtures::guarded());
}

#[test]
fn pausing_screen() {
    snapshot("pausing", &fixtures::pausing());
}

#[test]
fn paused_screen() {
    snapshot("paused", &fixtures::paused());
}

#[test]
fn throttled_screen() {
    snapshot("throttled", &fixtures::throttled());
}

#[test]
fn waiting_for_lock_screen() {
    snapshot("waiting_for_lock", &fixtures::waiting_for_lock());
}

#[test]
fn failed_screen() {
    snapshot("failed", &fixtures::failed());
}

#[test]
fn done_screen() {
    snapshot("done", &fixtures::done());
}

#[test]
fn no_replicas_screen() {
    snapshot("no_replicas", &fixtures::no_replicas());
}

#[test]
fn sample_gaps_screen() {
    snapshot("sample_gaps", &fixtures::sample_gaps());
}

#[test]
fn help_popup_screen() {
    snapshot("help_popup", &fixtures::help_popup());
}

#[test]
fn confirm_quit_screen() {
    snapshot("confirm_quit", &fixtures::confirm_quit());
}

#[test]
fn confirm_proceed_screen() {
    snapshot("confirm_proceed", &fixtures::confirm_proceed());
}

#[test]
fn batch_size_error_screen() {
    snapshot("batch_size_error", &fixtures::batch_size_error());
}

#[test]
fn gate_screen() {
    snapshot("gate", &fixtures::gate());
}

#[test]
fn leave_popup_screen() {
    snapshot("leave_popup", &fixtures::leave_popup());
}

#[test]
fn runner_gone_screen() {
    snapshot("runner_gone", &fixtures::runner_gone());
}

#[test]
fn mysql_throttled_screen() {
    snapshot("mysql_throttled", &mysql_fixtures::throttled());
}

#[test]
fn mysql_waiting_for_lock_screen() {
    snapshot(
        "mysql_waiting_for_lock",
        &mysql_fixtures::waiting_for_lock(),
    );
}

/// The text inside the popup box whose top border holds `title`, its rows joined by spaces.
fn popup_text(buffer: &Buffer, title: &str) -> String {
    let text = text_of(buffer);
    let rows: Vec<Vec<char>> = text.lines().map(|r| r.chars().collect()).collect();
    let top = text
        .lines()
        .position(|r| r.contains(title))
        .unwrap_or_else(|| panic!("no popup {title:?} in\n{text}"));
    let left = rows[top].iter().position(|&c| c == '╭').expect("a corner");
    let right = rows[top].iter().rposition(|&c| c == '╮').expect("a corner");
    let mut words = Vec::new();
    for row in &rows[top + 1..] {
        if row.get(left) == Some(&'╰') {
            break;
        }
        let inside: String = row[left + 1..right].iter().collect();
        words.extend(inside.split_whitespace().map(str::to_string));
    }
    words.join(" ")
}

#[test]
fn the_leave_popup_keeps_every_letter_of_its_choices_at_both_sizes() {
    for (w, h) in [(80, 24), (160, 48)] {
        let terminal = render(&fixtures::leave_popup(), &Theme::mono(), w, h);
        let text = popup_text(terminal.backend().buffer(), " leave ");
        for whole in [
            "detach: the migration goes on; `pacer attach` brings this screen back",
            "abort: it stops at the next batch boundary and stays resumable",
            "cancel: back to the screen (also Esc)",
        ] {
            assert!(text.contains(whole), "{w}x{h}: no {whole:?} in {text:?}");
        }
    }
}

#[test]
fn a_long_throttle_reason_keeps_the_progress_the_eta_the_clock_and_the_target_in_the_header() {
    for (w, h) in [(80, 24), (160, 48)] {
        let terminal = render(&fixtures::throttled(), &Theme::mono(), w, h);
        let text = text_of(terminal.backend().buffer());
        let mut rows = text.lines();
        let state = rows.next().unwrap();
        let target = rows.next().unwrap();
        assert!(
            state.starts_with(" THROTTLED  replication lag 14.2s"),
            "{state}"
        );
        assert!(state.contains("43.9% · ETA stopped"), "{w}x{h}: {state}");
        assert!(state.trim_end().ends_with("0:44:51"), "{w}x{h}: {state}");
        assert!(
            target.contains("adding public.orders.amount on app@db1.prod.internal:5432/shop"),
            "{w}x{h}: {target}"
        );
    }
}

#[test]
fn while_stopped_the_rate_says_why_and_the_eta_says_stopped_and_after_the_backfill_the_average() {
    for (view, want) in [
        (fixtures::paused(), "paused"),
        (fixtures::throttled(), "throttled"),
        (fixtures::runner_gone(), "runner gone"),
    ] {
        let text = text_of(render(&view, &Theme::mono(), 160, 48).backend().buffer());
        let progress = text
            .lines()
            .find(|l| l.contains(" avg "))
            .unwrap_or_else(|| panic!("no rate line in\n{text}"));
        assert!(progress.contains(want), "{progress}");
        assert!(progress.contains("ETA stopped"), "{progress}");
        assert!(
            !progress.contains("rows/s  avg"),
            "no rate while stopped: {progress}"
        );
    }
    let text = text_of(
        render(&fixtures::done(), &Theme::mono(), 160, 48)
            .backend()
            .buffer(),
    );
    assert!(text.contains("avg 8,752 rows/s"), "{text}");
    assert!(!text.contains("ETA"), "no ETA once done:\n{text}");
}

#[test]
fn a_replica_over_the_lag_limit_is_drawn_as_a_warning() {
    let theme = Theme::load("dark").unwrap();
    let terminal = render(&fixtures::throttled(), &theme, 160, 48);
    let buffer = terminal.backend().buffer();
    let (x, y) = find(buffer, "14.2s!").expect("the over-limit lag is marked");
    assert_eq!(buffer[(x, y)].fg, theme.warn.fg.unwrap());
    let (x, y) = find(buffer, "replica-a 14.2s").expect("the figure");
    let at = x + "replica-a ".len() as u16;
    assert_eq!(buffer[(at, y)].fg, theme.warn.fg.unwrap());
    let terminal = render(&fixtures::running(), &theme, 160, 48);
    let buffer = terminal.backend().buffer();
    let (x, y) = find(buffer, "replica-a 0.4s").expect("the figure");
    let at = x + "replica-a ".len() as u16;
    assert_ne!(buffer[(at, y)].fg, theme.warn.fg.unwrap());
}

#[test]
fn empty_screen() {
    snapshot("empty", &fixtures::empty());
}

#[test]
fn every_fixture_draws_at_any_size_without_panicking() {
    let theme = Theme::load("dark").unwrap();
    let mut sizes = vec![
        (80, 24),
        (160, 48),
        (60, 20),
        (100, 30),
        (120, 36),
        (250, 70),
    ];
    for w in (20..=84).step_by(8) {
        for h in (5..=25).step_by(2) {
            sizes.push((w, h));
        }
    }
    sizes.extend([
        (0, 0),
        (1, 1),
        (2, 2),
        (10, 3),
        (300, 5),
        (20, 100),
        (119, 47),
        (121, 35),
    ]);
    for (name, view) in fixtures::all() {
        for &(w, h) in &sizes {
            let result = std::panic::catch_unwind(|| render(&view, &theme, w, h));
            assert!(result.is_ok(), "{name} panicked at {w}×{h}");
        }
    }
}

#[test]
fn the_state_word_shows_at_every_size_from_20_columns() {
    for (name, mut view) in fixtures::all() {
        view.popup = None;
        let word = super::draw::state_word(&view.status);
        for (w, h) in [(20, 5), (60, 20), (80, 24), (160, 48)] {
            let text = text_of(render(&view, &Theme::mono(), w, h).backend().buffer());
            let shown = if word.len() + 2 > w as usize {
                &word[..w as usize - 2]
            } else {
                word
            };
            assert!(
                text.contains(shown),
                "{name} at {w}×{h}: no `{shown}`\n{text}"
            );
        }
    }
}

#[test]
fn mono_draws_no_colour_but_every_state_still_reads() {
    for (name, view) in fixtures::all() {
        for (w, h) in [(80, 24), (160, 48)] {
            let terminal = render(&view, &Theme::mono(), w, h);
            let buffer = terminal.backend().buffer();
            for cell in &buffer.content {
                assert_eq!(
                    (cell.fg, cell.bg),
                    (Color::Reset, Color::Reset),
                    "{name} at {w}×{h}: a coloured cell `{}`",
                    cell.symbol()
                );
            }
            let word = super::draw::state_word(&view.status);
            assert!(text_of(buffer).contains(word), "{name}: no `{word}`");
        }
    }
}

#[test]
fn paused_is_drawn_in_the_themes_paused_style() {
    let theme = Theme::load("dark").unwrap();
    let terminal = render(&fixtures::paused(), &theme, 80, 24);
    let buffer = terminal.backend().buffer();
    let (x, y) = find(buffer, "PAUSED").expect("PAUSED on screen");
    let cell = &buffer[(x, y)];
    assert_eq!(cell.fg, theme.paused.fg.unwrap());
    assert!(cell.modifier.contains(ratatui::style::Modifier::BOLD));
}

#[test]
fn a_failed_state_is_drawn_in_the_critical_style_with_its_message() {
    let theme = Theme::load("light").unwrap();
    let view = fixtures::failed();
    let terminal = render(&view, &theme, 160, 48);
    let buffer = terminal.backend().buffer();
    let (x, y) = find(buffer, "FAILED").unwrap();
    assert_eq!(buffer[(x, y)].fg, theme.critical.fg.unwrap());
    assert!(text_of(buffer).contains("lost connection to db1.prod.internal:5432"));
}

#[test]
fn the_header_says_why_and_by_whom() {
    let cases: [(ViewModel, &str); 4] = [
        (
            fixtures::throttled(),
            "THROTTLED  replication lag 14.2s forecast > 10s",
        ),
        (
            fixtures::waiting_for_lock(),
            "WAITING FOR LOCK  blocked by pid 4711, 5120",
        ),
        (fixtures::gate(), "GATE  waiting for operator (press g)"),
        (
            fixtures::pausing(),
            "PAUSING  takes effect at the next batch boundary",
        ),
    ];
    for (view, expected) in cases {
        let text = text_of(render(&view, &Theme::mono(), 80, 24).backend().buffer());
        assert!(text.contains(expected), "no `{expected}` in\n{text}");
    }
}

#[test]
fn a_scrolled_log_shows_older_lines_and_says_so() {
    let mut view = fixtures::running();
    for i in 0..40 {
        view.log.push(super::view::LogLine {
            time: "12:03:00".into(),
            level: super::view::Level::Info,
            text: format!("later line {i}"),
        });
    }
    view.log_scroll = 3;
    let text = text_of(render(&view, &Theme::mono(), 160, 48).backend().buffer());
    assert!(text.contains("scrolled up: 3 newer below"), "{text}");
    assert!(text.contains("later line 36"), "{text}");
    assert!(!text.contains("later line 37"), "{text}");
    view.log_scroll = 10_000;
    let text = text_of(render(&view, &Theme::mono(), 160, 48).backend().buffer());
    assert!(text.contains("preflight passed"), "{text}");
}

#[test]
fn huge_and_odd_numbers_do_not_break_the_screen() {
    let mut view = fixtures::running();
    view.progress.rows_done = u64::MAX;
    view.progress.rows_total = Some(1);
    view.progress.rows_per_s = f64::NAN;
    view.progress.avg_rows_per_s = f64::INFINITY;
    view.progress.eta = Some(std::time::Duration::MAX);
    view.progress.batch_size = u64::MAX;
    view.db.table_bytes = Some(u64::MAX);
    view.db.redo_bytes_per_s = Some(-5.0);
    view.selected_phase = 99;
    view.status = StatusView::WaitingForLock((1..500).collect());
    view.charts[0].series[0].segments.push(vec![
        (-10.0, f64::NAN),
        (-9.0, 1e300),
        (-8.0, f64::INFINITY),
        (-7.0, -1e300),
    ]);
    view.charts[1].series[0].segments = vec![vec![(-1e300, 1.0), (1e300, 2.0)]];
    for (w, h) in [(80, 24), (160, 48), (20, 5)] {
        let text = text_of(
            render(&view, &Theme::load("dark").unwrap(), w, h)
                .backend()
                .buffer(),
        );
        assert!(text.contains("WAITING"), "{text}");
    }
}

#[test]
fn charts_use_plain_dots_when_braille_is_off() {
    let mut view = fixtures::running();
    let braille = |text: &str| text.chars().any(|c| ('\u{2801}'..='\u{28ff}').contains(&c));
    let text = text_of(render(&view, &Theme::mono(), 160, 48).backend().buffer());
    assert!(braille(&text));
    view.braille = false;
    let text = text_of(render(&view, &Theme::mono(), 160, 48).backend().buffer());
    assert!(!braille(&text), "{text}");
    assert!(text.contains('•'), "{text}");
}

#[test]
fn a_chart_with_a_note_shows_the_note_instead_of_a_zero_line() {
    let text = text_of(
        render(&fixtures::no_replicas(), &Theme::mono(), 80, 24)
            .backend()
            .buffer(),
    );
    assert!(text.contains("no replicas"), "{text}");
}

/// Prints a fixture at a size: `PREVIEW=running:80x24 cargo test --bin pacer tui::tests::preview -- --nocapture`.
#[test]
fn preview() {
    let Ok(spec) = std::env::var("PREVIEW") else {
        return;
    };
    let (name, size) = spec.split_once(':').unwrap_or((&spec, "80x24"));
    let (w, h) = size.split_once('x').unwrap();
    let theme = Theme::load(&std::env::var("PREVIEW_THEME").unwrap_or("dark".into())).unwrap();
    let view = fixtures::all()
        .into_iter()
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v)
        .unwrap();
    let terminal = render(&view, &theme, w.parse().unwrap(), h.parse().unwrap());
    println!("{}", terminal.backend());
}

#[test]
fn the_companion_status_line_is_on_the_log_border_at_both_sizes_and_fits() {
    let theme = Theme::load("dark").unwrap();
    let mut view = fixtures::running();
    view.companion_status =
        Some("app v1 (does not write amount; D deploys v2): 200 tx/s, 0 failed".into());
    for (w, h) in [(80, 24), (160, 48)] {
        let terminal = render(&view, &theme, w, h);
        let buffer = terminal.backend().buffer();
        let (x, y) = find(
            buffer,
            "app v1 (does not write amount; D deploys v2): 200 tx/s, 0 failed",
        )
        .unwrap_or_else(|| panic!("no status line at {w}x{h}:\n{}", text_of(buffer)));
        let (_, log_y) = find(buffer, " log ").expect("the log panel");
        assert!(
            y > log_y,
            "the status line is below the log's title at {w}x{h}"
        );
        assert_eq!(
            buffer[(w - 1, y)].symbol(),
            "╯",
            "on the log's bottom border at {w}x{h}"
        );
        assert!(x > 0);
    }
    // Too long for the border: cut, never past the corner.
    view.companion_status = Some("x".repeat(300));
    let terminal = render(&view, &theme, 80, 24);
    let buffer = terminal.backend().buffer();
    let (_, y) = find(buffer, "xxxxxxxx").expect("cut status line");
    assert_eq!(buffer[(79, y)].symbol(), "╯");
    assert!(text_of(buffer).contains("…"));
}

#[test]
fn the_database_figures_are_named_in_the_target_family_s_words() {
    use crate::target::family::Family;
    let text = text_of(
        render(&fixtures::running(), &Theme::mono(), 160, 48)
            .backend()
            .buffer(),
    );
    assert!(text.contains("autovacuum   not on this table"), "{text}");
    assert!(text.contains("WAL 8.4 MiB/s"), "{text}");
    assert!(text.contains("dead tuples"), "{text}");
    let mut view = fixtures::running();
    view.db.words = Family::MySql.figure_words();
    let text = text_of(render(&view, &Theme::mono(), 160, 48).backend().buffer());
    assert!(text.contains("binlog 8.4 MiB/s"), "{text}");
    assert!(
        !text.contains("WAL") && !text.contains("autovacuum"),
        "{text}"
    );
}

#[test]
fn a_mysql_screen_says_threads_running_history_binlog_and_connection_against_the_limits() {
    let wide = text_of(
        render(&mysql_fixtures::throttled(), &Theme::mono(), 160, 48)
            .backend()
            .buffer(),
    );
    for needle in [
        "31 running (max 25)",
        "purge        history 1,234,567 (max 1,000,000)",
        "binlog 8.4 MiB/s (max 50.0 MiB/s)",
        "server-wide 280 rows/s",
        "server writes",
    ] {
        assert!(wide.contains(needle), "{needle}:\n{wide}");
    }
    for pg_word in ["WAL", "autovacuum", "dead tuples", "active"] {
        assert!(!wide.contains(pg_word), "{pg_word}:\n{wide}");
    }
    let narrow = text_of(
        render(&mysql_fixtures::throttled(), &Theme::mono(), 80, 24)
            .backend()
            .buffer(),
    );
    assert!(narrow.contains("binlog 8.4 MiB/s"), "{narrow}");
    assert!(narrow.contains("running 31"), "throttled on: {narrow}");

    let lock = text_of(
        render(&mysql_fixtures::waiting_for_lock(), &Theme::mono(), 160, 48)
            .backend()
            .buffer(),
    );
    assert!(lock.contains("blocked by connection 4711"), "{lock}");
    assert!(
        lock.contains("connection client"),
        "the blockers' header: {lock}"
    );
    assert!(
        !lock
            .lines()
            .any(|l| l.contains("pid") && l.contains("user")),
        "no pid column: {lock}"
    );
}
