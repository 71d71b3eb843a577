//! One subscription's notification messages delivered once each and in the order of their
//! sequence numbers, whichever way they came: a Publish response on the live connection or a
//! Republish of one the server had sent to a connection that died (Part 4, 5.13.1.1: the
//! server keeps sent messages until they are acknowledged). A message that arrives after a
//! gap is held until the gap is filled by Republish or given up as lost.

use crate::client::Event;
use opcua::client::{MonitoredItemMap, OnSubscriptionNotificationCore};
use opcua::types::{DataChangeNotification, NotificationMessage};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc::UnboundedSender;

pub struct Ordered {
    /// The subscription's index in the specs; a monitored item's client handle is its item
    /// index + 1.
    subscription: usize,
    items: usize,
    /// The sequence number of the last message delivered (`None`: none yet).
    last: Option<u32>,
    held: BTreeMap<u32, NotificationMessage>,
    /// Items whose next value is the first after lost changes.
    after_gap: Vec<bool>,
    values: UnboundedSender<Event>,
    /// Tells the session's pump that this subscription has a gap to fill.
    gaps: UnboundedSender<usize>,
}

/// What the subscription's callback holds: the same `Ordered` that recovery fills.
pub type Shared = Arc<Mutex<Ordered>>;

pub fn lock(o: &Shared) -> std::sync::MutexGuard<'_, Ordered> {
    o.lock().unwrap_or_else(|p| p.into_inner())
}

/// The callback given to async-opcua: every notification message goes through the order.
pub struct Deliver(pub Shared);

impl OnSubscriptionNotificationCore for Deliver {
    fn on_subscription_notification(&mut self, message: NotificationMessage, _items: MonitoredItemMap<'_>) {
        lock(&self.0).offer(message);
    }
}

impl Ordered {
    /// `after_gap`: the subscription was made again after the session was lost, so its first
    /// values come after changes that may be lost.
    pub fn new(subscription: usize, items: usize, after_gap: bool, values: UnboundedSender<Event>, gaps: UnboundedSender<usize>) -> Shared {
        Arc::new(Mutex::new(Ordered {
            subscription,
            items,
            last: None,
            held: BTreeMap::new(),
            after_gap: vec![after_gap; items],
            values,
            gaps,
        }))
    }

    /// Takes a message: delivered when it is the next one (with any held ones it lets go),
    /// held when one before it is missing, dropped when it was delivered already. Keep-alive
    /// messages (no data) carry the next number, not their own: they are ignored.
    pub fn offer(&mut self, m: NotificationMessage) {
        if m.notification_data.as_ref().is_none_or(|d| d.is_empty()) {
            return;
        }
        let seq = m.sequence_number;
        match self.last {
            Some(last) if seq <= last => {}
            Some(last) if seq > last.wrapping_add(1) => {
                let first_gap = self.held.is_empty();
                self.held.insert(seq, m);
                if first_gap {
                    let _ = self.gaps.send(self.subscription);
                }
            }
            _ => {
                self.deliver(m);
                self.release();
            }
        }
    }

    /// The first sequence number missing, and whether messages after it are held.
    pub fn missing(&self) -> Option<(u32, bool)> {
        self.last.map(|l| (l.wrapping_add(1), !self.held.is_empty()))
    }

    /// Gives up the messages from `missing` (the server no longer has it) to the first held one:
    /// the held ones are delivered, each item's next value marked as after a gap. The number
    /// given up (none when `missing` is not the first missing any more).
    pub fn give_up(&mut self, missing: u32) -> u32 {
        let (Some(last), Some(&first)) = (self.last, self.held.keys().next()) else { return 0 };
        if last.wrapping_add(1) != missing {
            return 0;
        }
        let lost = first.wrapping_sub(last).wrapping_sub(1);
        self.after_gap.iter_mut().for_each(|g| *g = true);
        let _ = self.values.send(Event::Lost { subscription: self.subscription, messages: lost });
        self.last = Some(first.wrapping_sub(1));
        self.release();
        lost
    }

    fn release(&mut self) {
        while let Some(m) = self.last.and_then(|l| self.held.remove(&l.wrapping_add(1))) {
            self.deliver(m);
        }
    }

    fn deliver(&mut self, m: NotificationMessage) {
        self.last = Some(m.sequence_number);
        for data in m.notification_data.into_iter().flatten() {
            let Some(change) = data.into_inner_as::<DataChangeNotification>() else { continue };
            for n in change.monitored_items.into_iter().flatten() {
                let Some(item) = (n.client_handle as usize).checked_sub(1).filter(|&i| i < self.items) else { continue };
                let after_gap = std::mem::take(&mut self.after_gap[item]);
                let _ = self.values.send(Event::Value { subscription: self.subscription, item, value: n.value, after_gap });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opcua::types::{DataValue, ExtensionObject, MonitoredItemNotification, Variant};
    use tokio::sync::mpsc::unbounded_channel;

    fn message(seq: u32, value: i32) -> NotificationMessage {
        let change = DataChangeNotification {
            monitored_items: Some(vec![MonitoredItemNotification { client_handle: 1, value: DataValue::new_now(Variant::Int32(value)) }]),
            diagnostic_infos: None,
        };
        NotificationMessage {
            sequence_number: seq,
            publish_time: Default::default(),
            notification_data: Some(vec![ExtensionObject::from_message(change)]),
        }
    }

    #[test]
    fn messages_arrive_once_in_sequence_order_a_gap_held_until_filled_or_given_up() {
        let (tx, mut rx) = unbounded_channel();
        let (gtx, mut grx) = unbounded_channel();
        let o = Ordered::new(0, 1, false, tx, gtx);
        let mut o = lock(&o);
        let mut got = || {
            std::iter::from_fn(|| rx.try_recv().ok())
                .map(|e| match e {
                    Event::Value { value, after_gap, .. } => format!("{}{}", value.value.unwrap(), if after_gap { "*" } else { "" }),
                    Event::Lost { messages, .. } => format!("lost {messages}"),
                    _ => "other".into(),
                })
                .collect::<Vec<_>>()
        };
        o.offer(message(5, 50));
        o.offer(message(8, 80)); // 6, 7 missing: held, the pump told
        assert_eq!(got(), ["50"]);
        assert_eq!(grx.try_recv().ok(), Some(0));
        assert_eq!(o.missing(), Some((6, true)));
        o.offer(message(6, 60)); // republished
        o.offer(message(6, 60)); // and its duplicate
        assert_eq!(got(), ["60"]);
        o.offer(message(7, 70));
        assert_eq!(got(), ["70", "80"]);
        o.offer(message(11, 110));
        assert_eq!(o.give_up(10), 0, "not the first missing");
        assert_eq!(o.give_up(9), 2); // 9, 10 no longer at the server
        assert_eq!(got(), ["lost 2", "110*"]);
        o.offer(message(12, 120));
        assert_eq!(got(), ["120"]);
        assert_eq!(o.missing(), Some((13, false)));
    }
}
