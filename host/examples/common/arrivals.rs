//! How the benchmarks time a run: from the first output's arrival to the last, so that start-up
//! (joining a group, the first long poll) does not count.

use std::time::Instant;

pub(crate) struct Arrivals {
    start: Instant,
    first: Option<(Instant, u64)>,
}

impl Arrivals {
    pub(crate) fn new() -> Self {
        Arrivals {
            start: Instant::now(),
            first: None,
        }
    }

    /// Notes that the output holds `n`; once it holds `want`, the line to print.
    pub(crate) fn observe(&mut self, n: u64, want: u64, what: &str) -> Option<String> {
        if n > 0 && self.first.is_none() {
            self.first = Some((Instant::now(), n));
        }
        if n < want {
            return None;
        }
        let (t0, n0) = self.first.unwrap_or((self.start, 0));
        let secs = t0.elapsed().as_secs_f64().max(1e-3);
        Some(format!(
            "{n} {what}, {:.0} {what}/s (from the first to the last, {secs:.2} s)",
            (n - n0) as f64 / secs
        ))
    }
}
