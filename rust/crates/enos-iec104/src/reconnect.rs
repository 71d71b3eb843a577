//! Which address to try next and how long to wait first.
//!
//! After a link that was up ends, the other address is tried at once (a single address after
//! `reconnect_min`, so a station that accepts and drops at once is not hammered). After a
//! failed attempt the next address is tried at once until every address has failed in this
//! round; then we wait, doubling from `reconnect_min` up to `reconnect_max`. A link that comes
//! up resets the doubling.

use std::time::Duration;

pub(crate) struct Reconnect {
    addresses: usize,
    active: usize,
    failed_in_round: usize,
    backoff: Duration,
    min: Duration,
    max: Duration,
}

impl Reconnect {
    pub(crate) fn new(addresses: usize, min: Duration, max: Duration) -> Self {
        Reconnect { addresses, active: 0, failed_in_round: 0, backoff: min, min, max }
    }

    /// Index of the address to try now (0 the primary, 1 the redundant one).
    pub(crate) fn active(&self) -> usize {
        self.active
    }

    /// A link (or an attempt, `was_up` false) ended: moves on to the next address and says how
    /// long to wait before trying it.
    pub(crate) fn next(&mut self, was_up: bool) -> Option<Duration> {
        if was_up {
            (self.failed_in_round, self.backoff) = (0, self.min);
        } else {
            self.failed_in_round += 1;
        }
        self.active = (self.active + 1) % self.addresses;
        if self.failed_in_round >= self.addresses {
            self.failed_in_round = 0;
            let wait = self.backoff;
            self.backoff = (self.backoff * 2).min(self.max);
            Some(wait)
        } else if self.addresses == 1 {
            Some(self.min)
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn one_address_backs_off_doubling_and_resets_once_up() {
        let mut r = Reconnect::new(1, 100 * MS, 500 * MS);
        let waits: Vec<_> = (0..5).map(|_| r.next(false)).collect();
        assert_eq!(waits, [Some(100 * MS), Some(200 * MS), Some(400 * MS), Some(500 * MS), Some(500 * MS)]);
        assert_eq!(r.next(true), Some(100 * MS), "a lost link waits the minimum");
        assert_eq!(r.next(false), Some(100 * MS), "the doubling starts again");
        assert_eq!(r.active(), 0);
    }

    #[test]
    fn two_addresses_alternate_and_wait_only_after_both_failed() {
        let mut r = Reconnect::new(2, 100 * MS, 1000 * MS);
        assert_eq!(r.active(), 0);
        assert_eq!(r.next(true), None, "the primary dropped: the redundant one at once");
        assert_eq!(r.active(), 1);
        assert_eq!(r.next(false), None, "the redundant one failed: the primary at once");
        assert_eq!(r.active(), 0);
        assert_eq!(r.next(false), Some(100 * MS), "both failed");
        assert_eq!(r.active(), 1);
        assert_eq!(r.next(false), None);
        assert_eq!(r.next(false), Some(200 * MS));
    }
}
