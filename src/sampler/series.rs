//! Fixed-size time series: the last N samples of one figure, with gaps where a sample failed.

use std::collections::VecDeque;
use std::time::Duration;

/// One sample: seconds since the sampler started, and the value (None: a gap).
pub type Point = (f64, Option<f64>);

/// A ring buffer of the last `capacity` points, oldest first. Memory is bounded by the capacity.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    points: VecDeque<Point>,
    capacity: usize,
}

impl Series {
    /// An empty series holding at most `capacity` points (at least 1).
    pub fn with_capacity(capacity: usize) -> Series {
        let capacity = capacity.max(1);
        Series {
            points: VecDeque::with_capacity(capacity),
            capacity,
        }
    }

    /// Appends a point, dropping the oldest when full. A point older than the newest is
    /// ignored: time only moves forward.
    pub fn push(&mut self, t: f64, value: Option<f64>) {
        if self.points.back().is_some_and(|&(last, _)| t < last) || !t.is_finite() {
            return;
        }
        let value = value.filter(|v| v.is_finite());
        if self.points.len() == self.capacity {
            self.points.pop_front();
        }
        self.points.push_back((t, value));
    }

    #[cfg(test)]
    /// How many points it holds.
    pub fn len(&self) -> usize {
        self.points.len()
    }

    /// Whether it holds no point.
    pub fn is_empty(&self) -> bool {
        self.points.is_empty()
    }

    /// The most points it keeps.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    #[cfg(test)]
    /// All points, oldest first.
    pub fn iter(&self) -> impl Iterator<Item = Point> + '_ {
        self.points.iter().copied()
    }

    #[cfg(test)]
    /// The newest point's value (None: no point yet, or the newest sample is a gap).
    pub fn latest(&self) -> Option<f64> {
        self.points.back().and_then(|&(_, v)| v)
    }

    /// The newest point, gap or not.
    pub fn last_point(&self) -> Option<Point> {
        self.points.back().copied()
    }

    /// Points at or after `t0`, as runs of consecutive values: a gap ends a run.
    pub fn points_since(&self, t0: f64) -> Vec<Vec<(f64, f64)>> {
        let mut segments = Vec::new();
        let mut run: Vec<(f64, f64)> = Vec::new();
        for &(t, value) in self.points.iter().filter(|(t, _)| *t >= t0) {
            match value {
                Some(v) => run.push((t, v)),
                None if !run.is_empty() => segments.push(std::mem::take(&mut run)),
                None => {}
            }
        }
        if !run.is_empty() {
            segments.push(run);
        }
        segments
    }

    #[cfg(test)]
    /// The largest value at or after `t0` (None: no value there).
    pub fn max_since(&self, t0: f64) -> Option<f64> {
        self.points
            .iter()
            .filter(|(t, _)| *t >= t0)
            .filter_map(|&(_, v)| v)
            .reduce(f64::max)
    }
}

/// Points needed to cover `window` at one point per `interval` (plus one, so the window's
/// start is still on the chart). At least 2.
pub fn capacity_for(window: Duration, interval: Duration) -> usize {
    if interval.is_zero() {
        return 2;
    }
    let n = (window.as_secs_f64() / interval.as_secs_f64()).ceil();
    // A silly interval (1 ns) must not allocate gigabytes: cap at a day of 1 Hz points.
    (n as usize).saturating_add(1).clamp(2, 86_400)
}

/// The last `capacity` values of something counted per event (batch durations), for
/// percentiles over the most recent ones.
#[derive(Debug, Clone, PartialEq)]
pub struct Recent {
    values: VecDeque<f64>,
    capacity: usize,
}

impl Recent {
    /// Keeps the last `capacity` values (at least 1).
    pub fn with_capacity(capacity: usize) -> Recent {
        let capacity = capacity.max(1);
        Recent {
            values: VecDeque::with_capacity(capacity),
            capacity,
        }
    }

    /// Records a value, dropping the oldest when full. Non-finite values are ignored.
    pub fn push(&mut self, value: f64) {
        if !value.is_finite() {
            return;
        }
        if self.values.len() == self.capacity {
            self.values.pop_front();
        }
        self.values.push_back(value);
    }

    #[cfg(test)]
    /// How many values it holds.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// The `p`-th percentile (0–100) of the values held (None: no value).
    pub fn percentile(&self, p: f64) -> Option<f64> {
        percentile(self.values.iter().copied(), p)
    }
}

/// The `p`-th percentile (0–100, clamped) by the nearest-rank method: the smallest value with
/// at least p% of the values at or below it, so it is always one of the values. None when
/// there is no finite value.
pub fn percentile(values: impl IntoIterator<Item = f64>, p: f64) -> Option<f64> {
    let mut sorted: Vec<f64> = values.into_iter().filter(|v| v.is_finite()).collect();
    if sorted.is_empty() {
        return None;
    }
    sorted.sort_by(f64::total_cmp);
    let p = if p.is_nan() {
        50.0
    } else {
        p.clamp(0.0, 100.0)
    };
    let rank = (p / 100.0 * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(points: &[(f64, Option<f64>)]) -> Series {
        let mut s = Series::with_capacity(100);
        for &(t, v) in points {
            s.push(t, v);
        }
        s
    }

    #[test]
    fn keeps_only_the_newest_points_up_to_its_capacity() {
        let mut s = Series::with_capacity(3);
        for i in 0..5 {
            s.push(f64::from(i), Some(f64::from(i) * 10.0));
        }
        assert_eq!(s.len(), 3);
        assert_eq!(s.capacity(), 3);
        let all: Vec<_> = s.iter().collect();
        assert_eq!(
            all,
            vec![(2.0, Some(20.0)), (3.0, Some(30.0)), (4.0, Some(40.0))]
        );
        assert_eq!(s.latest(), Some(40.0));
    }

    #[test]
    fn a_gap_splits_the_points_into_segments() {
        let s = series(&[
            (0.0, Some(1.0)),
            (1.0, Some(2.0)),
            (2.0, None),
            (3.0, Some(4.0)),
            (4.0, None),
            (5.0, None),
            (6.0, Some(7.0)),
            (7.0, Some(8.0)),
        ]);
        assert_eq!(
            s.points_since(f64::NEG_INFINITY),
            vec![
                vec![(0.0, 1.0), (1.0, 2.0)],
                vec![(3.0, 4.0)],
                vec![(6.0, 7.0), (7.0, 8.0)],
            ]
        );
    }

    #[test]
    fn points_before_the_window_are_left_out() {
        let s = series(&[(0.0, Some(9.0)), (1.0, Some(1.0)), (2.0, Some(2.0))]);
        assert_eq!(s.points_since(1.0), vec![vec![(1.0, 1.0), (2.0, 2.0)]]);
        assert_eq!(s.max_since(1.0), Some(2.0));
        assert_eq!(s.max_since(0.0), Some(9.0));
        assert_eq!(s.max_since(3.0), None);
        assert!(s.points_since(5.0).is_empty());
    }

    #[test]
    fn latest_is_none_when_the_newest_sample_is_a_gap() {
        let s = series(&[(0.0, Some(1.0)), (1.0, None)]);
        assert_eq!(s.latest(), None);
        assert_eq!(s.last_point(), Some((1.0, None)));
        assert_eq!(Series::with_capacity(4).latest(), None);
    }

    #[test]
    fn only_gaps_make_no_segment_and_no_max() {
        let s = series(&[(0.0, None), (1.0, None)]);
        assert!(s.points_since(0.0).is_empty());
        assert_eq!(s.max_since(0.0), None);
    }

    #[test]
    fn time_never_goes_backwards_and_non_finite_values_are_gaps() {
        let s = series(&[
            (5.0, Some(1.0)),
            (4.0, Some(2.0)),
            (6.0, Some(f64::NAN)),
            (f64::NAN, Some(3.0)),
        ]);
        let all: Vec<_> = s.iter().collect();
        assert_eq!(all, vec![(5.0, Some(1.0)), (6.0, None)]);
    }

    #[test]
    fn capacity_covers_the_window_at_the_interval() {
        let secs = Duration::from_secs;
        assert_eq!(capacity_for(secs(900), secs(1)), 901);
        assert_eq!(capacity_for(secs(900), Duration::from_millis(250)), 3601);
        assert_eq!(capacity_for(secs(900), secs(7)), 130);
        assert_eq!(capacity_for(secs(1), secs(10)), 2);
        assert_eq!(capacity_for(secs(900), Duration::ZERO), 2);
        assert_eq!(capacity_for(secs(900), Duration::from_nanos(1)), 86_400);
    }

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let values: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(values.iter().copied(), 50.0), Some(50.0));
        assert_eq!(percentile(values.iter().copied(), 95.0), Some(95.0));
        assert_eq!(percentile(values.iter().copied(), 100.0), Some(100.0));
        assert_eq!(percentile(values.iter().copied(), 0.0), Some(1.0));
        assert_eq!(percentile([3.0, 1.0, 2.0], 50.0), Some(2.0));
        assert_eq!(percentile([7.0], 95.0), Some(7.0));
        assert_eq!(percentile([], 50.0), None);
        assert_eq!(percentile([f64::NAN], 50.0), None);
    }

    #[test]
    fn recent_values_keep_the_last_n_for_percentiles() {
        let mut r = Recent::with_capacity(4);
        assert_eq!(r.percentile(50.0), None);
        for v in [1000.0, 1.0, 2.0, 3.0, 4.0] {
            r.push(v);
        }
        assert_eq!(r.len(), 4);
        // The 1000 ms outlier fell out of the window.
        assert_eq!(r.percentile(95.0), Some(4.0));
        assert_eq!(r.percentile(50.0), Some(2.0));
    }
}
