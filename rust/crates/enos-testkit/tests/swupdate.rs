//! Installs through a real SWUpdate daemon (Debian's, which accepts signed bundles only), run
//! privately with its sockets in a temp dir: a good bundle lands, a tampered payload and a
//! bundle signed by a stranger are refused before anything is written.

use enos_testkit::swu::{bundle, signing_key, Daemon};
use std::process::{Command, Stdio};

#[test]
fn a_signed_bundle_installs_and_tampered_or_foreign_ones_are_refused() {
    if Command::new("swupdate").arg("-h").stdout(Stdio::null()).stderr(Stdio::null()).status().is_err() {
        panic!("swupdate is not installed (scripts/setup-host installs it)");
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let cert = signing_key(d, "signer");
    signing_key(d, "stranger");
    // libswupdate and the daemon both place their sockets under $TMPDIR
    std::env::set_var("TMPDIR", d);
    let _daemon = Daemon::start(d, &cert);
    assert!(swupdate_client::ctrl_socket().starts_with(&d.display().to_string()));

    let payload: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let good_target = d.join("good.bin");
    let good = bundle(d, "good", &payload, &payload, "signer", &good_target);
    let mut steps = Vec::new();
    swupdate_client::install(&mut std::fs::File::open(&good).unwrap(), "enos test", |m| steps.push(m.state)).expect("good bundle installs");
    assert_eq!(std::fs::read(&good_target).unwrap(), payload, "the payload landed byte for byte");
    assert!(steps.contains(&swupdate_client::State::Success), "{steps:?}");

    let tampered_target = d.join("tampered.bin");
    let mut evil = payload.clone();
    evil[1000] ^= 1;
    let tampered = bundle(d, "tampered", &evil, &payload, "signer", &tampered_target);
    let e = swupdate_client::install(&mut std::fs::File::open(&tampered).unwrap(), "enos test", |_| {}).unwrap_err();
    assert!(matches!(e, swupdate_client::Error::Failed(_)), "{e}");
    let written = std::fs::read(&tampered_target).unwrap_or_default();
    assert_ne!(written, evil, "a payload with a wrong digest must not be installed");

    let foreign_target = d.join("foreign.bin");
    let foreign = bundle(d, "foreign", &payload, &payload, "stranger", &foreign_target);
    let e = swupdate_client::install(&mut std::fs::File::open(&foreign).unwrap(), "enos test", |_| {}).unwrap_err();
    assert!(matches!(e, swupdate_client::Error::Failed(_)), "{e}");
    assert!(!foreign_target.exists(), "nothing is written from a bundle signed by a stranger");

    // and the daemon still works afterwards
    swupdate_client::install(&mut std::fs::File::open(&good).unwrap(), "enos test", |_| {}).expect("installs again");
}
