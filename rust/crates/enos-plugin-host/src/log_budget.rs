//! A driver's log lines, rate-limited: a token bucket of `per_minute` lines; lines over it are
//! counted and the count is written with the next line that fits.

use std::time::Instant;

pub(crate) struct LogBudget {
    per_minute: f64,
    tokens: f64,
    at: Instant,
    dropped: u64,
}

impl LogBudget {
    pub(crate) fn new(per_minute: u32) -> LogBudget {
        LogBudget { per_minute: per_minute.into(), tokens: per_minute.into(), at: Instant::now(), dropped: 0 }
    }

    pub(crate) fn write(&mut self, device: &str, level: log::Level, message: &str) {
        let now = Instant::now();
        self.tokens = (self.tokens + now.duration_since(self.at).as_secs_f64() * self.per_minute / 60.0).min(self.per_minute);
        self.at = now;
        if self.tokens < 1.0 {
            self.dropped += 1;
            return;
        }
        self.tokens -= 1.0;
        if self.dropped > 0 {
            log::warn!(target: "plugin", "device \"{device}\": {} lines of its driver over the log limit were not written", self.dropped);
            self.dropped = 0;
        }
        log::log!(target: "plugin", level, "device \"{device}\": {message}");
    }
}
