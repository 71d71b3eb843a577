//! `GET /metrics`: the local figures in the Prometheus text format (version 0.0.4).

use crate::bus::Status;
use crate::state::App;
use std::fmt::Write;
use std::sync::atomic::Ordering;

struct Out(String);

impl Out {
    fn metric(&mut self, name: &str, kind: &str, help: &str, samples: &[(String, f64)]) {
        let _ = writeln!(self.0, "# HELP {name} {help}");
        let _ = writeln!(self.0, "# TYPE {name} {kind}");
        for (labels, v) in samples {
            let _ = writeln!(self.0, "{name}{labels} {}", num(*v));
        }
    }
    fn one(&mut self, name: &str, kind: &str, help: &str, v: f64) {
        self.metric(name, kind, help, &[(String::new(), v)]);
    }
}

fn num(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.into()
    } else if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

/// A label value with `\`, `"` and newlines escaped as the format requires.
pub fn label(v: &str) -> String {
    let mut s = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => s.push_str("\\\\"),
            '"' => s.push_str("\\\""),
            '\n' => s.push_str("\\n"),
            c => s.push(c),
        }
    }
    s
}

pub fn render(app: &App, st: &Status) -> String {
    let mut o = Out(String::with_capacity(4096));
    let up = |ok: bool| if ok { 1.0 } else { 0.0 };
    o.metric(
        "enos_service_up",
        "gauge",
        "1 when the service answers on the bus.",
        &[("{service=\"uplink\"}".into(), up(st.uplink.is_ok())), ("{service=\"collector\"}".into(), up(st.collector.is_ok()))],
    );
    if let Ok(u) = &st.uplink {
        o.one("enos_cloud_connected", "gauge", "1 when the MQTT session to the cloud is connected.", up(u.cloud.state == "connected"));
        o.one("enos_cloud_connects_total", "counter", "Cloud sessions established.", u.cloud.connects as f64);
        let c = &u.cache;
        o.one("enos_cache_points", "gauge", "Points waiting in the cache (backlog).", c.points as f64);
        o.one("enos_cache_records", "gauge", "Records waiting in the cache.", c.records as f64);
        o.one("enos_cache_bytes", "gauge", "Bytes the cache holds.", c.bytes as f64);
        o.one("enos_cache_max_bytes", "gauge", "Upper bound of the cache in bytes.", c.max_bytes as f64);
        o.one(
            "enos_cache_dropped_points_total",
            "counter",
            "Points dropped because the cache was full or data too old.",
            c.dropped_points as f64,
        );
        o.one("enos_cache_dead_letter_records", "gauge", "Records the cloud refused, kept for inspection.", c.dead_letter_records as f64);
        o.one(
            "enos_cache_ingest_points_per_second",
            "gauge",
            "Points per second entering the cache (recent average).",
            c.ingest_points_per_s,
        );
        if let Some(h) = c.outage_hours_capacity {
            o.one("enos_cache_outage_hours_capacity", "gauge", "Hours of cloud outage the free cache space holds at the current rate.", h);
        }
        if let Some(ts) = c.oldest_ts_ms {
            o.one("enos_cache_oldest_timestamp_seconds", "gauge", "Time stamp of the oldest cached point.", ts as f64 / 1000.0);
        }
        let s = &u.sender;
        o.one("enos_sender_messages_sent_total", "counter", "MQTT messages published.", s.messages_sent as f64);
        o.one("enos_sender_messages_acked_total", "counter", "Messages the cloud confirmed.", s.messages_acked as f64);
        o.metric(
            "enos_sender_points_acked_total",
            "counter",
            "Points the cloud confirmed, by path.",
            &[("{path=\"live\"}".into(), s.points_acked_live as f64), ("{path=\"resume\"}".into(), s.points_acked_resume as f64)],
        );
        o.one("enos_sender_timeouts_total", "counter", "Messages without a reply in time (sent again).", s.timeouts as f64);
        o.one("enos_sender_rejected_total", "counter", "Messages the cloud refused.", s.rejected as f64);
        o.one("enos_sender_in_flight", "gauge", "Messages awaiting their reply.", s.in_flight as f64);
        o.one("enos_commands_received_total", "counter", "Cloud commands received.", s.commands_received as f64);
        o.one("enos_commands_failed_total", "counter", "Cloud commands that failed.", s.commands_failed as f64);
    }
    if let Ok(c) = &st.collector {
        o.one("enos_devices", "gauge", "Configured devices.", c.devices as f64);
        o.one("enos_devices_online", "gauge", "Devices answering.", c.devices_online as f64);
        o.one("enos_samples_collected_total", "counter", "Samples read from devices.", c.samples_collected as f64);
        o.one("enos_samples_pushed_total", "counter", "Samples handed to the uplink.", c.samples_pushed as f64);
        o.one("enos_samples_buffered", "gauge", "Samples waiting for the uplink in the collector's memory.", c.samples_buffered as f64);
        o.one(
            "enos_samples_dropped_total",
            "counter",
            "Samples shed, oldest first, because that buffer was full.",
            c.samples_dropped as f64,
        );
        o.one("enos_collector_overloaded", "gauge", "1 while the uplink does not keep up with the collector.", up(c.state == "overloaded"));
    }
    if let Ok(devs) = &st.devices {
        let l = |d: &enos_bus::DeviceStatus| format!("{{device=\"{}\"}}", label(&d.id));
        let online: Vec<_> = devs.iter().map(|d| (l(d), up(d.state == "online"))).collect();
        o.metric("enos_device_online", "gauge", "1 when the device answers.", &online);
        let okp: Vec<_> = devs.iter().map(|d| (l(d), d.polls_ok as f64)).collect();
        o.metric("enos_device_polls_ok_total", "counter", "Successful polls of the device.", &okp);
        let bad: Vec<_> = devs.iter().map(|d| (l(d), d.polls_failed as f64)).collect();
        o.metric("enos_device_polls_failed_total", "counter", "Failed polls of the device.", &bad);
    }
    let c = &app.counters;
    let g = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed) as f64;
    o.one("enos_web_requests_total", "counter", "HTTP requests served by the web center.", g(&c.requests));
    o.one("enos_web_signins_total", "counter", "Successful sign-ins.", g(&c.signins_ok));
    o.one("enos_web_signin_failures_total", "counter", "Refused sign-ins (wrong password or locked out).", g(&c.signins_failed));
    o.one("enos_web_lockouts_total", "counter", "Sign-in lockouts started.", g(&c.lockouts));
    o.one("enos_web_csrf_refused_total", "counter", "Changes refused for a missing or wrong CSRF token.", g(&c.csrf_refused));
    o.one("enos_web_writes_total", "counter", "Point writes requested from the web center.", g(&c.writes));
    o.one("enos_web_writes_failed_total", "counter", "Point writes that failed.", g(&c.writes_failed));
    o.one("enos_web_sessions", "gauge", "Open sessions.", app.sessions.lock().unwrap().len() as f64);
    o.one("enos_web_uptime_seconds", "gauge", "Seconds since the web center started.", app.started.elapsed().as_secs_f64().floor());
    o.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_and_labels() {
        assert_eq!(num(3.0), "3");
        assert_eq!(num(0.25), "0.25");
        assert_eq!(num(f64::INFINITY), "+Inf");
        assert_eq!(label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
