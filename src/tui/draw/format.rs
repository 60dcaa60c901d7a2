//! Numbers, sizes and durations the way a DBA reads them; text fitted to a width.

use std::time::Duration;

use ratatui::text::{Line, Span};

/// Shown for a value that is unknown (not sampled, or the sample failed).
pub const UNKNOWN: &str = "—";

/// `1234567` → `1,234,567`.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A rate or count rounded to a whole number, with separators.
pub fn thousands_f(x: f64) -> String {
    if !x.is_finite() {
        return UNKNOWN.into();
    }
    let whole = thousands(x.abs().round() as u64);
    if x < 0.0 && x.round() != 0.0 {
        format!("-{whole}")
    } else {
        whole
    }
}

/// `1572864` → `1.5 MiB`.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut value = n as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if value < 100.0 {
        format!("{value:.1} {}", UNITS[unit])
    } else {
        format!("{value:.0} {}", UNITS[unit])
    }
}

/// Bytes per second (or any non-negative byte amount held as a float).
pub fn bytes_f(x: f64) -> String {
    if !x.is_finite() || x < 0.0 {
        return UNKNOWN.into();
    }
    bytes(x.round() as u64)
}

/// Elapsed time as `h:mm:ss` (hours grow past 24).
pub fn clock(d: Duration) -> String {
    let s = d.as_secs();
    format!("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
}

/// A duration in two units at most: `12s`, `4m 05s`, `2h 32m`, `3d 04h`.
pub fn human(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0 if d.subsec_millis() > 0 => "<1s".into(),
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m {:02}s", s / 60, s % 60),
        3600..86400 => format!("{}h {:02}m", s / 3600, s / 60 % 60),
        _ => format!("{}d {:02}h", s / 86400, s / 3600 % 24),
    }
}

/// Seconds as a short duration: `0.4s`, `12s`, `4m 05s`.
pub fn secs(x: f64) -> String {
    if !x.is_finite() || x < 0.0 {
        return UNKNOWN.into();
    }
    if x < 10.0 {
        format!("{x:.1}s")
    } else {
        human(Duration::from_secs(x.round() as u64))
    }
}

/// Milliseconds: `84 ms`, `1,250 ms`, `4.5 ms`.
pub fn millis(x: f64) -> String {
    if !x.is_finite() || x < 0.0 {
        return UNKNOWN.into();
    }
    if x < 10.0 {
        format!("{x:.1} ms")
    } else {
        format!("{} ms", thousands_f(x))
    }
}

/// A percentage: `23%`, `4.1%`.
pub fn percent(x: f64) -> String {
    if !x.is_finite() {
        return UNKNOWN.into();
    }
    if x.abs() < 10.0 {
        format!("{x:.1}%")
    } else {
        format!("{x:.0}%")
    }
}

/// A value in a chart's unit: `38,100 rows/s`, `0.4s`, `84 ms`, `2 sessions`.
pub fn with_unit(x: f64, unit: &str) -> String {
    match unit {
        "s" => secs(x),
        "ms" => millis(x),
        "B" | "bytes" => bytes_f(x),
        "B/s" => format!("{}/s", bytes_f(x)),
        "%" => percent(x),
        "" => plain(x),
        _ => format!("{} {unit}", plain(x)),
    }
}

/// A number without unit: whole numbers with separators, small ones with one decimal.
pub fn plain(x: f64) -> String {
    if !x.is_finite() {
        UNKNOWN.into()
    } else if x.abs() >= 10.0 || x.fract() == 0.0 {
        thousands_f(x)
    } else {
        format!("{x:.1}")
    }
}

/// A short axis label: `0`, `0.5`, `250`, `1.5k`, `40k`, `1.2M`.
pub fn compact(x: f64) -> String {
    if !x.is_finite() {
        return UNKNOWN.into();
    }
    let a = x.abs();
    if a >= 1e15 {
        return format!("{x:.0e}");
    }
    let (v, suffix) = if a >= 1e12 {
        (x / 1e12, "T")
    } else if a >= 1e9 {
        (x / 1e9, "G")
    } else if a >= 1e6 {
        (x / 1e6, "M")
    } else if a >= 1e3 {
        (x / 1e3, "k")
    } else {
        (x, "")
    };
    let text = if (v - v.round()).abs() < 1e-9 {
        format!("{v:.0}")
    } else if v.abs() < 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.0}")
    };
    format!("{text}{suffix}")
}

/// The smallest "round" number (1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 8 × 10ⁿ) not below `x`.
pub fn nice_ceil(x: f64) -> f64 {
    if !x.is_finite() || x <= 0.0 {
        return 1.0;
    }
    let exp = 10f64.powf(x.log10().floor());
    let f = x / exp;
    let step = [1.0, 1.2, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0]
        .into_iter()
        .find(|s| *s >= f - 1e-9)
        .unwrap_or(10.0);
    step * exp
}

/// Display width of text in terminal cells.
pub fn width(s: &str) -> usize {
    Span::raw(s).width()
}

fn char_width(c: char) -> usize {
    let mut buf = [0u8; 4];
    width(c.encode_utf8(&mut buf))
}

/// Cut `s` to `max` cells, ending with `…` when something was cut.
pub fn truncate(s: &str, max: usize) -> String {
    if width(s) <= max {
        return s.to_string();
    }
    if max == 0 {
        return String::new();
    }
    let mut out = String::new();
    let mut used = 0;
    for c in s.chars() {
        let w = char_width(c);
        if used + w > max - 1 {
            break;
        }
        out.push(c);
        used += w;
    }
    out.push('…');
    out
}

/// Split off the longest head of `s` that fits `max` cells (at least one character).
fn split_at_width(s: &str, max: usize) -> (&str, &str) {
    let mut used = 0;
    for (i, c) in s.char_indices() {
        let w = char_width(c);
        if used + w > max && i > 0 {
            return (&s[..i], &s[i..]);
        }
        used += w;
    }
    (s, "")
}

/// Word-wrap `text` to `max` cells per line, keeping its line breaks and (some) indentation;
/// words longer than a line are split.
pub fn wrap(text: &str, max: usize) -> Vec<String> {
    let mut lines = Vec::new();
    if max == 0 {
        return lines;
    }
    for source in text.lines() {
        let body = source.trim_start_matches(' ');
        let indent = (source.len() - body.len()).min(max / 2);
        let mut line = " ".repeat(indent);
        let mut used = indent;
        let mut has_words = false;
        for word in body.split(' ').filter(|w| !w.is_empty()) {
            let w = width(word);
            let need = if has_words { w + 1 } else { w };
            if used + need <= max {
                if has_words {
                    line.push(' ');
                }
                line.push_str(word);
                used += need;
                has_words = true;
                continue;
            }
            if has_words {
                lines.push(std::mem::take(&mut line));
                used = 0;
            }
            let mut rest = word;
            loop {
                let (head, tail) = split_at_width(rest, max - used);
                line.push_str(head);
                used += width(head);
                has_words = true;
                if tail.is_empty() {
                    break;
                }
                lines.push(std::mem::take(&mut line));
                used = 0;
                rest = tail;
            }
        }
        lines.push(line);
    }
    lines
}

/// All whitespace runs (line breaks included) as single spaces.
pub fn collapse(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// One figure: a few styled spans that stay together on a line.
pub type Item = Vec<Span<'static>>;

/// Lay out groups of items as lines of at most `max` cells: each group starts a new line and
/// its items flow onto further lines, separated by `sep`.
pub fn flow(groups: Vec<Vec<Item>>, max: usize, sep: &'static str) -> Vec<Line<'static>> {
    let mut lines = Vec::new();
    let sep_w = width(sep);
    for group in groups {
        let mut spans: Vec<Span<'static>> = Vec::new();
        let mut used = 0;
        for item in group {
            let w: usize = item.iter().map(Span::width).sum();
            if !spans.is_empty() && used + sep_w + w > max {
                lines.push(Line::from(std::mem::take(&mut spans)));
                used = 0;
            }
            if !spans.is_empty() {
                spans.push(Span::raw(sep));
                used += sep_w;
            }
            spans.extend(item);
            used += w;
        }
        if !spans.is_empty() {
            lines.push(Line::from(spans));
        }
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_get_thousands_separators() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1_000), "1,000");
        assert_eq!(thousands(1_234_567), "1,234,567");
        assert_eq!(thousands(u64::MAX), "18,446,744,073,709,551,615");
        assert_eq!(thousands_f(38_100.4), "38,100");
        assert_eq!(thousands_f(f64::NAN), UNKNOWN);
        assert_eq!(thousands_f(1e30), "18,446,744,073,709,551,615");
    }

    #[test]
    fn bytes_are_binary_units() {
        assert_eq!(bytes(0), "0 B");
        assert_eq!(bytes(1023), "1023 B");
        assert_eq!(bytes(1536 * 1024), "1.5 MiB");
        assert_eq!(bytes(512 * 1024 * 1024), "512 MiB");
        assert_eq!(bytes(u64::MAX), "16.0 EiB");
        assert_eq!(bytes_f(-1.0), UNKNOWN);
    }

    #[test]
    fn durations_read_as_clock_and_as_words() {
        assert_eq!(clock(Duration::from_secs(2537)), "0:42:17");
        assert_eq!(clock(Duration::from_secs(100 * 3600)), "100:00:00");
        assert_eq!(human(Duration::from_secs(12)), "12s");
        assert_eq!(human(Duration::from_secs(245)), "4m 05s");
        assert_eq!(human(Duration::from_secs(9130)), "2h 32m");
        assert_eq!(human(Duration::from_secs(3 * 86400 + 4 * 3600)), "3d 04h");
        assert_eq!(human(Duration::from_millis(300)), "<1s");
        assert_eq!(secs(0.42), "0.4s");
        assert_eq!(secs(f64::INFINITY), UNKNOWN);
        assert_eq!(secs(1e300), human(Duration::from_secs(u64::MAX)));
    }

    #[test]
    fn axis_labels_are_short_and_round() {
        assert_eq!(compact(0.0), "0");
        assert_eq!(compact(0.5), "0.5");
        assert_eq!(compact(1500.0), "1.5k");
        assert_eq!(compact(40_000.0), "40k");
        assert_eq!(compact(1_200_000.0), "1.2M");
        assert_eq!(nice_ceil(41_910.0), 50_000.0);
        assert_eq!(nice_ceil(1.1), 1.2);
        assert_eq!(nice_ceil(0.0), 1.0);
    }

    #[test]
    fn text_is_cut_with_an_ellipsis_and_wrapped_at_words() {
        assert_eq!(truncate("public.orders", 8), "public.…");
        assert_eq!(truncate("abc", 3), "abc");
        assert_eq!(truncate("abc", 0), "");
        assert_eq!(
            wrap("UPDATE public.orders SET amount = 1", 14),
            ["UPDATE", "public.orders", "SET amount = 1"]
        );
        assert_eq!(wrap("abcdefghij", 4), ["abcd", "efgh", "ij"]);
        assert_eq!(wrap("a\n\n  b c", 10), ["a", "", "  b c"]);
        assert!(wrap("x", 0).is_empty());
    }
}
