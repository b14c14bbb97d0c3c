//! When the queue tries a message again, and when it gives up: the
//! lecture's "if the other server is down, the message stays in the queue
//! and is tried again after a while; after some days it is returned to the
//! sender", scaled to a lab's minutes. One pure function of the attempts
//! made and the clock, so the schedule a student reads is the one kept.

use std::time::Duration;

#[derive(Debug, Clone, PartialEq)]
pub struct Schedule {
    /// Waits after the 1st, 2nd, … failed attempt; the last repeats.
    pub retry: Vec<Duration>,
    /// Give up on what is still undelivered this long after it arrived.
    pub expire: Duration,
}

/// What follows a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum AfterFailure {
    /// Try again at this time (seconds since the epoch), `wait` from now.
    RetryAt { at: f64, wait: Duration },
    /// Expired: bounce to the sender.
    GiveUp,
}

impl Default for Schedule {
    fn default() -> Schedule {
        Schedule {
            // The lecture's "after a while, e.g. 30 minutes", scaled to a lab.
            retry: vec![
                Duration::from_secs(10),
                Duration::from_secs(20),
                Duration::from_secs(40),
            ],
            expire: Duration::from_secs(10 * 60),
        }
    }
}

impl Schedule {
    /// A schedule from a role's settings; an empty retry list means the default one.
    pub fn new(retry: Vec<Duration>, expire: Duration) -> Schedule {
        let retry = if retry.is_empty() {
            Schedule::default().retry
        } else {
            retry
        };
        Schedule { retry, expire }
    }

    /// The wait after a first failure: how long a destination that did not
    /// answer is left alone.
    pub fn first_wait(&self) -> Duration {
        self.retry
            .first()
            .copied()
            .unwrap_or(Duration::from_secs(60))
    }

    /// After `attempts` failed attempts (the one just made counted) of a
    /// message that arrived at `received`, at time `now` (both seconds
    /// since the epoch).
    pub fn after_failure(&self, attempts: u32, received: f64, now: f64) -> AfterFailure {
        if now - received >= self.expire.as_secs_f64() {
            return AfterFailure::GiveUp;
        }
        let k = (attempts.max(1) as usize - 1).min(self.retry.len().saturating_sub(1));
        let wait = self
            .retry
            .get(k)
            .copied()
            .unwrap_or(Duration::from_secs(60));
        AfterFailure::RetryAt {
            at: now + wait.as_secs_f64(),
            wait,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(retry: &[u64], expire: u64) -> Schedule {
        Schedule::new(
            retry.iter().map(|&r| Duration::from_secs(r)).collect(),
            Duration::from_secs(expire),
        )
    }

    fn wait(a: AfterFailure) -> u64 {
        match a {
            AfterFailure::RetryAt { wait, .. } => wait.as_secs(),
            AfterFailure::GiveUp => u64::MAX,
        }
    }

    #[test]
    fn each_failure_waits_its_turn_and_the_last_wait_repeats() {
        let s = s(&[1, 2, 5], 600);
        let waits: Vec<u64> = (1..=5)
            .map(|n| wait(s.after_failure(n, 0.0, 10.0)))
            .collect();
        assert_eq!(waits, [1, 2, 5, 5, 5]);
        assert_eq!(
            s.after_failure(1, 0.0, 10.0),
            AfterFailure::RetryAt {
                at: 11.0,
                wait: Duration::from_secs(1)
            }
        );
    }

    #[test]
    fn expiry_counts_from_arrival_not_from_the_first_attempt() {
        let s = s(&[30], 60);
        assert!(matches!(
            s.after_failure(1, 100.0, 159.9),
            AfterFailure::RetryAt { .. }
        ));
        assert_eq!(s.after_failure(1, 100.0, 160.0), AfterFailure::GiveUp);
        assert_eq!(s.after_failure(9, 100.0, 500.0), AfterFailure::GiveUp);
    }

    #[test]
    fn no_retry_list_is_the_default_schedule() {
        let d = Schedule::new(Vec::new(), Duration::from_secs(5));
        assert_eq!(d.retry, Schedule::default().retry);
        assert_eq!(
            wait(d.after_failure(0, 0.0, 1.0)),
            10,
            "attempt 0 is the first wait"
        );
    }
}
