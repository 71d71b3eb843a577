//! Test support shared by every tier: a Modbus field-device simulator, an EnOS cloud simulator
//! (CONNECT-checking front + protocol responder on a real mosquitto), and a harness that runs a
//! private dbus-daemon, mosquitto and the real service binaries.

pub mod campaign;
pub mod cloud_sim;
pub mod dlt645_sim;
pub mod dnp3_sim;
pub mod edge;
pub mod harness;
pub mod http_file;
pub mod iec104_sim;
pub mod iec62056_sim;
pub mod modbus_sim;
pub mod opcua_server;
pub mod swu;

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

/// Polls `f` until it returns Some or `secs` pass; panics with `what` on timeout.
pub async fn wait_for<T>(secs: u64, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(secs);
    loop {
        if let Some(v) = f() {
            return v;
        }
        if tokio::time::Instant::now() > deadline {
            panic!("timed out after {secs} s waiting for {what}");
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}
