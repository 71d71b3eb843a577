//! Installs through a real SWUpdate daemon (Debian's, which accepts signed bundles only), run
//! privately with its sockets in a temp dir: a good bundle lands, a tampered payload and a
//! bundle signed by a stranger are refused before anything is written.

use std::path::Path;
use std::process::{Child, Command, Stdio};

struct Daemon(Child);
impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn sh(dir: &Path, cmd: &str) {
    let out = Command::new("sh").arg("-c").arg(cmd).current_dir(dir).output().unwrap();
    assert!(out.status.success(), "{cmd}: {}", String::from_utf8_lossy(&out.stderr));
}

fn key(dir: &Path, name: &str) {
    sh(dir, &format!("openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN={name} -addext keyUsage=digitalSignature -addext extendedKeyUsage=emailProtection -keyout {name}.key -out {name}.pem 2>/dev/null"));
}

/// A bundle whose one file goes to `target` with the rawfile handler.
fn bundle(dir: &Path, name: &str, payload: &[u8], digest_of: &[u8], signer: &str, target: &Path) -> std::path::PathBuf {
    use sha2::Digest;
    let d = dir.join(name);
    std::fs::create_dir_all(&d).unwrap();
    std::fs::write(d.join("payload.bin"), payload).unwrap();
    let sha = hex::encode(sha2::Sha256::digest(digest_of));
    let desc = format!(
        "software = {{\n  version = \"1.0.1\";\n  hardware-compatibility = [\"1.0\"];\n  files: (\n    {{ filename = \"payload.bin\"; path = \"{}\"; sha256 = \"{sha}\"; }}\n  );\n}}\n",
        target.display()
    );
    std::fs::write(d.join("sw-description"), desc).unwrap();
    sh(&d, &format!("openssl cms -sign -in sw-description -out sw-description.sig -signer ../{signer}.pem -inkey ../{signer}.key -outform DER -nosmimecap -binary"));
    sh(&d, "printf '%s\\n' sw-description sw-description.sig payload.bin | cpio -o -H crc --quiet > ../bundle.tmp");
    let out = dir.join(format!("{name}.swu"));
    std::fs::rename(dir.join("bundle.tmp"), &out).unwrap();
    out
}

#[test]
fn a_signed_bundle_installs_and_tampered_or_foreign_ones_are_refused() {
    if Command::new("swupdate").arg("-h").stdout(Stdio::null()).stderr(Stdio::null()).status().is_err() {
        panic!("swupdate is not installed (scripts/setup-host installs it)");
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    key(d, "signer");
    key(d, "stranger");
    // libswupdate and the daemon both place their sockets under $TMPDIR
    std::env::set_var("TMPDIR", d);
    let log = std::fs::File::create(d.join("swupdate.log")).unwrap();
    let _daemon = Daemon(
        Command::new("swupdate")
            .args(["-v", "-H", "enos-test:1.0", "-k"])
            .arg(d.join("signer.pem"))
            .env("TMPDIR", d)
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap(),
    );
    for _ in 0..200 {
        if Path::new(&swupdate_client::ctrl_socket()).exists() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(25));
    }
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
