//! The latest samples of one measure (a target's latencies, its times to
//! first token) and their 95th percentile. The percentile is sorted out
//! again only once a sixteenth of the window has turned over since the last
//! time (every sample while the window is small), so a busy target's
//! requests do not each sort the window: the figure lags by at most that
//! many samples.

use std::collections::VecDeque;

pub(crate) struct Samples {
    values: VecDeque<f32>,
    cap: usize,
    /// The p95 as last computed.
    p95: Option<f32>,
    /// Samples added since `p95` was computed.
    since: usize,
}

impl Samples {
    pub fn new(cap: usize) -> Samples {
        Samples { values: VecDeque::with_capacity(cap), cap, p95: None, since: 0 }
    }

    pub fn push(&mut self, value: f32) {
        if self.values.len() == self.cap {
            self.values.pop_front();
        }
        self.values.push_back(value);
        self.since += 1;
        if self.since >= (self.values.len() / 16).max(1) {
            self.p95 = None;
        }
    }

    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// The p95 of the window (`None` while it is empty).
    pub fn p95(&mut self) -> Option<f32> {
        if self.values.is_empty() {
            return None;
        }
        if self.p95.is_none() {
            let mut sorted: Vec<f32> = self.values.iter().copied().collect();
            sorted.sort_unstable_by(f32::total_cmp);
            self.p95 = Some(sorted[((sorted.len() - 1) as f32 * 0.95).round() as usize]);
            self.since = 0;
        }
        self.p95
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_p95_follows_the_window_within_a_sixteenth_of_it() {
        let mut s = Samples::new(64);
        assert_eq!(s.p95(), None);
        for v in 1..=20 {
            s.push(v as f32);
        }
        assert_eq!(s.p95(), Some(19.0), "small window: exact");
        for _ in 0..64 {
            s.push(5.0);
        }
        assert_eq!(s.p95(), Some(5.0), "the old samples left the window");
        for _ in 0..3 {
            s.push(500.0);
        }
        assert_eq!(s.p95(), Some(5.0), "three new samples of 64: not sorted again yet");
        s.push(500.0);
        assert_eq!(s.p95(), Some(500.0), "the fourth: sorted again");
    }
}
