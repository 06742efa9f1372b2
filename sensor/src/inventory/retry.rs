//! When a watch tries again after a failed list or watch. A 410 Gone is
//! the API's routine "your version is too old, relist": it relists at
//! once. Real errors wait a doubling, jittered delay, so that after an
//! outage the nodes of a cluster do not come back in lockstep; the delay
//! starts over as soon as the API answers.

use std::time::Duration;

use ring::rand::{SecureRandom, SystemRandom};

/// What went wrong, as far as waiting is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// 410 Gone: the history moved on; relist.
    Gone,
    /// Anything else: unreachable, refused, failing.
    Error,
}

#[derive(Debug)]
pub struct Retry {
    min: Duration,
    max: Duration,
    next: Duration,
    /// A 410 relist is under way and the API has not answered since: a
    /// second 410 then would loop at once forever (an API that keeps
    /// refusing the version), so it waits like an error.
    gone_pending: bool,
    rng: SystemRandom,
}

impl Retry {
    pub fn new(min: Duration, max: Duration) -> Self {
        let max = max.max(min);
        Retry {
            min,
            max,
            next: min,
            gone_pending: false,
            rng: SystemRandom::new(),
        }
    }

    /// The API answered (objects, or the end of a list): the next error
    /// starts over at the shortest delay.
    pub fn answered(&mut self) {
        self.next = self.min;
        self.gone_pending = false;
    }

    /// How long to wait before the next attempt.
    pub fn after(&mut self, failure: Failure) -> Duration {
        if failure == Failure::Gone && !self.gone_pending {
            self.gone_pending = true;
            return Duration::ZERO;
        }
        let base = self.next;
        self.next = (self.next * 2).min(self.max);
        // Uniform in [base/2, base]: spread, yet never below half the step.
        base.mul_f64(0.5 + 0.5 * self.unit())
    }

    fn unit(&self) -> f64 {
        let mut b = [0u8; 4];
        if self.rng.fill(&mut b).is_err() {
            return 1.0;
        }
        f64::from(u32::from_le_bytes(b)) / f64::from(u32::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: Duration = Duration::from_millis(500);
    const MAX: Duration = Duration::from_secs(10);

    fn within(d: Duration, base: Duration) -> bool {
        d >= base / 2 && d <= base
    }

    #[test]
    fn a_410_relists_at_once_even_after_a_long_outage() {
        let mut r = Retry::new(MIN, MAX);
        for _ in 0..20 {
            r.after(Failure::Error);
        }
        // The API came back and answered with a 410.
        assert_eq!(r.after(Failure::Gone), Duration::ZERO);
    }

    #[test]
    fn errors_double_with_jitter_up_to_the_bound() {
        let mut r = Retry::new(MIN, MAX);
        let mut base = MIN;
        let mut seen = Vec::new();
        for _ in 0..12 {
            let d = r.after(Failure::Error);
            assert!(within(d, base), "{d:?} for step {base:?}");
            seen.push(d);
            base = (base * 2).min(MAX);
        }
        assert!(seen.iter().all(|d| *d <= MAX));
        // Jitter: at the bound, not every delay is the same.
        let tail = &seen[6..];
        assert!(tail.iter().any(|d| *d != tail[0]), "{tail:?}");
    }

    #[test]
    fn an_answer_resets_the_delay() {
        let mut r = Retry::new(MIN, MAX);
        for _ in 0..10 {
            r.after(Failure::Error);
        }
        r.answered();
        assert!(within(r.after(Failure::Error), MIN));
    }

    #[test]
    fn repeated_410s_without_an_answer_back_off() {
        let mut r = Retry::new(MIN, MAX);
        assert_eq!(r.after(Failure::Gone), Duration::ZERO);
        let d = r.after(Failure::Gone);
        assert!(within(d, MIN), "{d:?}");
        assert!(within(r.after(Failure::Gone), MIN * 2));
        r.answered();
        assert_eq!(r.after(Failure::Gone), Duration::ZERO);
    }
}
