//! General interrogations of one connection, one at a time per common address. A station
//! answers an interrogation with objects of cause 20 and ends it with ACTTERM; neither says which
//! interrogation it belongs to, so two of one common address in flight (a scheduled one and one
//! asked for by a communication test) would mix their objects, and the first ACTTERM would end
//! both. An interrogation is sent only when none of its common address is running; a scheduled one
//! while another of that address is running or waiting is not needed (that one refreshes every
//! value too) and is dropped.

use crate::station::Waiter;
use std::collections::{HashMap, VecDeque};
use std::time::Duration;
use tokio::time::Instant;

/// A station that never terminates an interrogation holds the next one of its common address
/// this long at most.
pub(crate) const LIMIT: Duration = Duration::from_secs(30);

/// One interrogation waiting to be sent.
pub(crate) struct Gi {
    pub ca: u16,
    pub asdu: Vec<u8>,
    /// Who asked (`Station::interrogate`), for its confirmation; `None`: the link's own.
    pub waiter: Option<Waiter>,
}

#[derive(Default)]
pub(crate) struct Interrogations {
    /// Sent and not yet terminated, by common address: since when.
    running: HashMap<u16, Instant>,
    waiting: VecDeque<Gi>,
}

impl Interrogations {
    /// The link's own interrogation (after connect, on schedule, after a station's
    /// initialisation): dropped when one of `ca` is running or waiting.
    pub fn schedule(&mut self, ca: u16, asdu: Vec<u8>) {
        if !self.running.contains_key(&ca) && !self.waiting.iter().any(|g| g.ca == ca) {
            self.waiting.push_back(Gi { ca, asdu, waiter: None });
        }
    }

    /// An interrogation asked for: always sent, after the one running.
    pub fn request(&mut self, ca: u16, asdu: Vec<u8>, waiter: Waiter) {
        self.waiting.push_back(Gi { ca, asdu, waiter: Some(waiter) });
    }

    /// The first waiting interrogation whose common address has none running, now marked running.
    pub fn next(&mut self, now: Instant) -> Option<Gi> {
        self.expire(now);
        let i = self.waiting.iter().position(|g| !self.running.contains_key(&g.ca))?;
        let g = self.waiting.remove(i)?;
        self.running.insert(g.ca, now);
        Some(g)
    }

    /// The station terminated (or refused) the interrogation of `ca`.
    pub fn ended(&mut self, ca: u16) {
        self.running.remove(&ca);
    }

    /// When a running interrogation stops holding a waiting one (none: nothing is held).
    pub fn deadline(&self) -> Option<Instant> {
        self.waiting.iter().filter_map(|g| self.running.get(&g.ca)).map(|t| *t + LIMIT).min()
    }

    fn expire(&mut self, now: Instant) {
        self.running.retain(|ca, since| {
            let keep = *since + LIMIT > now;
            if !keep {
                log::warn!("IEC 104: the station did not terminate the interrogation of common address {ca} within {} s", LIMIT.as_secs());
            }
            keep
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn waiter() -> Waiter {
        Waiter { type_id: crate::TypeId::C_IC_NA_1, ca: 1, ioa: 0, tx: tokio::sync::mpsc::channel(1).0 }
    }

    #[test]
    fn one_at_a_time_per_common_address_and_a_scheduled_one_is_not_doubled() {
        let now = Instant::now();
        let mut g = Interrogations::default();
        g.schedule(1, vec![1]);
        g.schedule(2, vec![2]);
        assert_eq!(g.next(now).map(|g| g.ca), Some(1));
        g.request(1, vec![3], waiter());
        g.schedule(1, vec![4]);
        assert_eq!(g.next(now).map(|g| g.asdu), Some(vec![2]), "another common address is not held");
        assert!(g.next(now).is_none(), "the requested one waits for the running one of its address");
        assert_eq!(g.deadline(), Some(now + LIMIT));
        g.ended(1);
        let next = g.next(now).unwrap();
        assert_eq!((next.asdu, next.waiter.is_some()), (vec![3], true));
        assert!(g.next(now).is_none(), "the scheduled one while another was waiting was dropped");
        g.request(1, vec![5], waiter());
        assert!(g.next(now + LIMIT).is_some(), "a station that never terminates holds the next one for LIMIT at most");
    }
}
