//! The command ids a device got lately, so a command the cloud (or the broker, QoS 1 is at least
//! once) delivers again is not executed again: it gets the first execution's answer once that is
//! known. Bounded: the last [`KEPT`] ids per device.

use std::collections::{HashMap, VecDeque};

pub const KEPT: usize = 1024;

/// What became of a command id.
#[derive(Debug, Clone, PartialEq)]
pub enum Seen {
    /// New: execute it (it is now remembered as running).
    New,
    /// Still queued or running: its answer follows.
    Running,
    /// Answered already: (code, message) to answer again.
    Answered(i64, String),
}

#[derive(Default)]
pub struct RecentIds {
    order: VecDeque<String>,
    answers: HashMap<String, Option<(i64, String)>>,
}

impl RecentIds {
    /// Looks `id` up, remembering it as running when it is new.
    pub fn arrive(&mut self, id: &str) -> Seen {
        match self.answers.get(id) {
            Some(None) => return Seen::Running,
            Some(Some((c, m))) => return Seen::Answered(*c, m.clone()),
            None => {}
        }
        if self.order.len() >= KEPT {
            if let Some(old) = self.order.pop_front() {
                self.answers.remove(&old);
            }
        }
        self.order.push_back(id.to_string());
        self.answers.insert(id.to_string(), None);
        Seen::New
    }

    pub fn answered(&mut self, id: &str, code: i64, message: &str) {
        if let Some(a) = self.answers.get_mut(id) {
            *a = Some((code, message.to_string()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_repeated_id_is_not_new_and_memory_is_bounded() {
        let mut r = RecentIds::default();
        assert_eq!(r.arrive("a"), Seen::New);
        assert_eq!(r.arrive("a"), Seen::Running);
        r.answered("a", 200, "");
        assert_eq!(r.arrive("a"), Seen::Answered(200, String::new()));
        for i in 0..KEPT {
            assert_eq!(r.arrive(&i.to_string()), Seen::New);
        }
        assert_eq!(r.answers.len(), KEPT);
        assert_eq!(r.arrive("a"), Seen::New, "forgotten after {KEPT} newer ids");
    }
}
