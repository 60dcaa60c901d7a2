//! `max_foreground_impact`: the bound the foreground guard keeps the probe's p99 within
//! (see `engine::guard`).

use std::fmt;
use std::time::Duration;

/// The bound on the foreground's p99 while the backfill runs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ImpactBound {
    /// At most this multiple of the baseline's p99 (e.g. 1.5).
    Ratio(f64),
    /// At most this long.
    Absolute(Duration),
}

impl ImpactBound {
    /// The default: 1.5 × the baseline.
    pub const DEFAULT: ImpactBound = ImpactBound::Ratio(1.5);

    /// Parses `"1.5x"` or a duration (`"20ms"`); None for anything else.
    pub fn parse(s: &str) -> Option<ImpactBound> {
        let s = s.trim();
        if let Some(r) = s.strip_suffix(['x', 'X']) {
            let r: f64 = r.trim().parse().ok()?;
            return (r.is_finite() && (1.0..=1000.0).contains(&r)).then_some(ImpactBound::Ratio(r));
        }
        let d = super::parse_duration(s).ok()?;
        (d >= Duration::from_micros(100) && d <= Duration::from_secs(60))
            .then_some(ImpactBound::Absolute(d))
    }

    /// The latency limit for a baseline p99.
    pub fn limit(self, baseline_p99: Duration) -> Duration {
        match self {
            ImpactBound::Ratio(r) => baseline_p99.mul_f64(r),
            ImpactBound::Absolute(d) => d,
        }
    }
}

impl fmt::Display for ImpactBound {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ImpactBound::Ratio(r) => write!(f, "{r}x"),
            ImpactBound::Absolute(d) => write!(f, "{}", humantime::format_duration(*d)),
        }
    }
}

/// As its words (`"1.5x"`, `"20ms"`): how the control socket carries it.
impl serde::Serialize for ImpactBound {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for ImpactBound {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<ImpactBound, D::Error> {
        let text = String::deserialize(d)?;
        ImpactBound::parse(&text).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "`{text}` is not a foreground bound; write a multiple such as \"1.5x\" or a duration such as \"20ms\""
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bound_is_a_ratio_or_a_duration() {
        assert_eq!(ImpactBound::parse("1.5x"), Some(ImpactBound::Ratio(1.5)));
        assert_eq!(ImpactBound::parse(" 2X "), Some(ImpactBound::Ratio(2.0)));
        assert_eq!(
            ImpactBound::parse("20ms"),
            Some(ImpactBound::Absolute(Duration::from_millis(20)))
        );
        assert_eq!(
            ImpactBound::parse("0.5x"),
            None,
            "below 1x nothing could run"
        );
        assert_eq!(ImpactBound::parse("fast"), None);
        assert_eq!(
            ImpactBound::Ratio(1.5).limit(Duration::from_millis(2)),
            Duration::from_millis(3)
        );
        assert_eq!(ImpactBound::Ratio(1.5).to_string(), "1.5x");
        let json =
            serde_json::to_string(&ImpactBound::Absolute(Duration::from_millis(20))).unwrap();
        assert_eq!(json, "\"20ms\"");
        let back: ImpactBound = serde_json::from_str(&json).unwrap();
        assert_eq!(back, ImpactBound::Absolute(Duration::from_millis(20)));
        assert!(serde_json::from_str::<ImpactBound>("\"soon\"").is_err());
    }
}
