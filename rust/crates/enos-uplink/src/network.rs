//! `network.status.report` every `monitor.network_report_s`: the interface the way to the broker
//! leaves by, its addresses, its link, and the round trip of a TCP connect to the broker.

use crate::mqtt;
use crate::state::Shared;
use enos_cloud::monitor::{self, NetworkStatus};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// `host:port` of a broker URI (`ssl://host:8883`).
fn broker_of(uri: &str) -> Option<String> {
    let rest = uri.split_once("://").map_or(uri, |(_, r)| r);
    Some(rest.split('/').next()?.to_string()).filter(|s| !s.is_empty())
}

/// The interface holding `ip` (getifaddrs: the service's sandbox shows no `/proc/net`).
fn interface_of(ip: IpAddr) -> Option<String> {
    let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills `head` with a list we only read and free once below.
    if unsafe { libc::getifaddrs(&mut head) } != 0 {
        return None;
    }
    let mut found = None;
    let mut cur = head;
    while !cur.is_null() && found.is_none() {
        // SAFETY: `cur` is a node of the list getifaddrs returned, alive until freeifaddrs.
        let ifa = unsafe { &*cur };
        if !ifa.ifa_addr.is_null() {
            // SAFETY: the family says which sockaddr the address is.
            let addr = unsafe {
                match (*ifa.ifa_addr).sa_family as i32 {
                    libc::AF_INET => {
                        let a = &*(ifa.ifa_addr as *const libc::sockaddr_in);
                        Some(IpAddr::from(u32::from_be(a.sin_addr.s_addr).to_be_bytes()))
                    }
                    libc::AF_INET6 => {
                        let a = &*(ifa.ifa_addr as *const libc::sockaddr_in6);
                        Some(IpAddr::from(a.sin6_addr.s6_addr))
                    }
                    _ => None,
                }
            };
            if addr == Some(ip) {
                // SAFETY: ifa_name is a NUL-terminated string of the list.
                found = Some(unsafe { std::ffi::CStr::from_ptr(ifa.ifa_name) }.to_string_lossy().into_owned());
            }
        }
        cur = ifa.ifa_next;
    }
    // SAFETY: the list getifaddrs gave, freed once.
    unsafe { libc::freeifaddrs(head) };
    found
}

/// `up`, `down` or `unknown` as the kernel says (loopback's `unknown` is a working link).
fn link_of(iface: &str) -> String {
    let s = std::fs::read_to_string(format!("/sys/class/net/{iface}/operstate")).map(|s| s.trim().to_string()).unwrap_or_default();
    match s.as_str() {
        "up" | "down" => s,
        _ if iface == "lo" => "up".into(),
        _ => "unknown".into(),
    }
}

/// What the network looks like from here now.
pub async fn status(uri: &str) -> NetworkStatus {
    let mut s = NetworkStatus { link: "unknown".into(), ..Default::default() };
    let Some(host) = broker_of(uri) else { return s };
    let Ok(Ok(mut addrs)) = tokio::time::timeout(Duration::from_secs(5), tokio::net::lookup_host(host)).await else { return s };
    let Some(addr): Option<SocketAddr> = addrs.next() else { return s };
    let t = Instant::now();
    if let Ok(Ok(sock)) = tokio::time::timeout(Duration::from_secs(5), tokio::net::TcpStream::connect(addr)).await {
        s.rtt_ms = Some(t.elapsed().as_millis() as u64);
        if let Ok(local) = sock.local_addr() {
            s.addresses.push(local.ip().to_string());
            s.interface = interface_of(local.ip());
        }
    }
    if let Some(i) = &s.interface {
        s.link = link_of(i);
    }
    s
}

pub async fn run(shared: Arc<Shared>) {
    let every = shared.cfg.monitor.network_report_s;
    if every == 0 {
        return;
    }
    let mut tick = tokio::time::interval(Duration::from_secs(every));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let cli = shared.mqtt.lock().expect("mqtt").clone();
        let Some(cli) = cli else { continue };
        let c = &shared.cfg.cloud;
        let s = status(&c.uri).await;
        let r = monitor::network_status(&c.product_key, &c.device_key, mqtt::next_id(), &s, enos_batch::now_ms());
        if let Err(e) = mqtt::publish_sent(&cli, &r.topic, &r.payload).await {
            log::info!("network status not sent: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_broker_and_its_interface() {
        assert_eq!(broker_of("ssl://broker.example:8883").as_deref(), Some("broker.example:8883"));
        assert_eq!(broker_of("tcp://127.0.0.1:1883/x").as_deref(), Some("127.0.0.1:1883"));
        assert_eq!(interface_of("127.0.0.1".parse().unwrap()).as_deref(), Some("lo"));
        assert_eq!(link_of("lo"), "up");
    }
}
