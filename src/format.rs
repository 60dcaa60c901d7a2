//! Numbers, sizes, durations and percentages the way a DBA reads them, one way for every
//! output: the screen, the headless lines, `pacer plan|status|ctl status`, the engine's
//! throttle reasons. The same figure reads the same wherever it is shown.
//!
//! - counts: `1,234,567`;
//! - sizes: binary units, `512 B`, `1.5 MiB`, `160 MiB` (a decimal below 100 of a unit);
//! - measured durations: `0.4s`, `14.2s` (a decimal below a minute), then two units:
//!   `4m 05s`, `2h 32m`, `3d 04h`; an elapsed clock `0:42:17`; milliseconds `84 ms`;
//! - percent done: floored, `99.9%` until it is all done.
//!
//! Durations the operator set in the plan (`lock_timeout = "2s"`, `pause = "50ms"`) are
//! echoed as the plan file writes them (humantime), so they can be copied back; they are
//! settings, not figures.

use std::time::Duration;

/// Shown for a value that is unknown (not sampled, or the sample failed).
pub(crate) const UNKNOWN: &str = "—";

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
pub(crate) fn thousands_f(x: f64) -> String {
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
pub(crate) fn bytes(n: u64) -> String {
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
pub(crate) fn bytes_f(x: f64) -> String {
    if !x.is_finite() || x < 0.0 {
        return UNKNOWN.into();
    }
    bytes(x.round() as u64)
}

/// A byte rate: `6.5 MiB/s`.
pub(crate) fn bytes_per_s(x: f64) -> String {
    format!("{}/s", bytes_f(x))
}

/// Elapsed time as `h:mm:ss` (hours grow past 24).
pub(crate) fn clock(d: Duration) -> String {
    let s = d.as_secs();
    format!("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
}

/// A duration in two units at most: `12s`, `4m 05s`, `2h 32m`, `3d 04h`.
pub(crate) fn human(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0 if d.subsec_millis() > 0 => "<1s".into(),
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m {:02}s", s / 60, s % 60),
        3600..86400 => format!("{}h {:02}m", s / 3600, s / 60 % 60),
        _ => format!("{}d {:02}h", s / 86400, s / 3600 % 24),
    }
}

/// Seconds as a short duration: `0.4s`, `14.2s`, `4m 05s` (a decimal below a minute, so a
/// figure just over a limit in seconds never reads as the limit).
pub(crate) fn secs(x: f64) -> String {
    if !x.is_finite() || x < 0.0 {
        return UNKNOWN.into();
    }
    if x < 59.95 {
        format!("{x:.1}s")
    } else {
        human(Duration::from_secs(x.round() as u64))
    }
}

/// Milliseconds as [`secs`] reads them: `0.4s`, `14.2s`.
pub(crate) fn secs_of_ms(ms: u64) -> String {
    secs(ms as f64 / 1000.0)
}

/// Milliseconds: `84 ms`, `1,250 ms`, `4.5 ms`.
pub(crate) fn millis(x: f64) -> String {
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
pub(crate) fn percent(x: f64) -> String {
    if !x.is_finite() {
        return UNKNOWN.into();
    }
    if x.abs() < 10.0 {
        format!("{x:.1}%")
    } else {
        format!("{x:.0}%")
    }
}

/// How much is done, `42.0%`: floored, so 100% means done rather than "almost".
pub(crate) fn percent_done(ratio: f64) -> String {
    let tenths = (ratio * 1000.0).floor().clamp(0.0, 1000.0);
    format!("{:.1}%", tenths / 10.0)
}

/// Keys done against an estimated total: `" of ~1,000,000 (35.8%)"`, or nothing without a
/// total. The total never shows below what is done (the estimate can be low).
pub(crate) fn of_total(done: u64, total: Option<u64>) -> String {
    total
        .map(|t| {
            let t = t.max(done);
            let ratio = if t == 0 { 1.0 } else { done as f64 / t as f64 };
            format!(" of ~{} ({})", thousands(t), percent_done(ratio))
        })
        .unwrap_or_default()
}

/// A value in a chart's unit: `38,100 rows/s`, `0.4s`, `84 ms`, `2 sessions`.
pub(crate) fn with_unit(x: f64, unit: &str) -> String {
    match unit {
        "s" => secs(x),
        "ms" => millis(x),
        "B" | "bytes" => bytes_f(x),
        "B/s" => bytes_per_s(x),
        "%" => percent(x),
        "" => plain(x),
        _ => format!("{} {unit}", plain(x)),
    }
}

/// A number without unit: whole numbers with separators, small ones with one decimal.
pub(crate) fn plain(x: f64) -> String {
    if !x.is_finite() {
        UNKNOWN.into()
    } else if x.abs() >= 10.0 || x.fract() == 0.0 {
        thousands_f(x)
    } else {
        format!("{x:.1}")
    }
}

/// A short axis label: `0`, `0.5`, `250`, `1.5k`, `40k`, `1.2M`.
pub(crate) fn compact(x: f64) -> String {
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
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(1023), "1023 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(bytes(1536 * 1024), "1.5 MiB");
        assert_eq!(bytes(160 * 1024 * 1024), "160 MiB");
        assert_eq!(bytes(512 * 1024 * 1024), "512 MiB");
        assert_eq!(bytes(u64::MAX), "16.0 EiB");
        assert_eq!(bytes_f(-1.0), UNKNOWN);
        assert_eq!(bytes_per_s(6.5 * 1024.0 * 1024.0), "6.5 MiB/s");
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
        assert_eq!(secs(14.24), "14.2s");
        assert_eq!(secs(59.96), "1m 00s");
        assert_eq!(secs(75.3), "1m 15s");
        assert_eq!(secs(f64::INFINITY), UNKNOWN);
        assert_eq!(secs(1e300), human(Duration::from_secs(u64::MAX)));
        assert_eq!(secs_of_ms(5_140), "5.1s");
        assert_eq!(millis(4.5), "4.5 ms");
        assert_eq!(millis(1_250.0), "1,250 ms");
    }

    #[test]
    fn a_figure_just_over_a_limit_in_seconds_does_not_read_as_the_limit() {
        assert_eq!(secs(10.4), "10.4s");
        assert_ne!(secs(10.4), secs(10.0));
    }

    #[test]
    fn percent_done_is_floored_so_only_done_reads_100() {
        assert_eq!(percent_done(0.420), "42.0%");
        assert_eq!(percent_done(0.99999), "99.9%");
        assert_eq!(percent_done(1.0), "100.0%");
        assert_eq!(percent_done(1.5), "100.0%");
        assert_eq!(of_total(358_829, Some(1_000_000)), " of ~1,000,000 (35.8%)");
        assert_eq!(of_total(999_999, Some(1_000_000)), " of ~1,000,000 (99.9%)");
        assert_eq!(of_total(12, Some(10)), " of ~12 (100.0%)");
        assert_eq!(of_total(0, Some(0)), " of ~0 (100.0%)");
        assert_eq!(of_total(5, None), "");
    }

    #[test]
    fn axis_labels_are_short_and_round() {
        assert_eq!(compact(0.0), "0");
        assert_eq!(compact(0.5), "0.5");
        assert_eq!(compact(1500.0), "1.5k");
        assert_eq!(compact(40_000.0), "40k");
        assert_eq!(compact(1_200_000.0), "1.2M");
    }
}
