//! Signed SWUpdate bundles for tests: a dev signing key pair, and bundles whose one file goes to
//! a path with the rawfile handler (the layer's A/B `sw-description` writes partitions, which only
//! the QEMU tier has).

use std::path::{Path, PathBuf};
use std::process::Command;

fn sh(dir: &Path, cmd: &str) {
    let out = Command::new("sh").arg("-c").arg(cmd).current_dir(dir).output().expect("sh");
    assert!(out.status.success(), "{cmd}: {}", String::from_utf8_lossy(&out.stderr));
}

/// A CMS signing key and certificate (`{name}.key`, `{name}.pem`) in `dir`.
pub fn signing_key(dir: &Path, name: &str) -> PathBuf {
    sh(dir, &format!("openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN={name} -addext keyUsage=digitalSignature -addext extendedKeyUsage=emailProtection -keyout {name}.key -out {name}.pem 2>/dev/null"));
    dir.join(format!("{name}.pem"))
}

/// A bundle in `dir/{name}.swu` installing `payload` to `target`; the sw-description carries the
/// sha256 of `digest_of` (pass the payload itself for an honest bundle).
pub fn bundle(dir: &Path, name: &str, payload: &[u8], digest_of: &[u8], signer: &str, target: &Path) -> PathBuf {
    use sha2::Digest;
    let d = dir.join(format!("{name}.d"));
    std::fs::create_dir_all(&d).unwrap();
    std::fs::write(d.join("payload.bin"), payload).unwrap();
    let sha = hex::encode(sha2::Sha256::digest(digest_of));
    let desc = format!(
        "software = {{\n  version = \"1.0.1\";\n  hardware-compatibility = [\"1.0\"];\n  files: (\n    {{ filename = \"payload.bin\"; path = \"{}\"; sha256 = \"{sha}\"; }}\n  );\n}}\n",
        target.display()
    );
    std::fs::write(d.join("sw-description"), desc).unwrap();
    sh(&d, &format!("openssl cms -sign -in sw-description -out sw-description.sig -signer ../{signer}.pem -inkey ../{signer}.key -outform DER -nosmimecap -binary"));
    sh(&d, &format!("printf '%s\\n' sw-description sw-description.sig payload.bin | cpio -o -H crc --quiet > ../{name}.swu"));
    dir.join(format!("{name}.swu"))
}

/// A private SWUpdate daemon (hardware `enos-test:1.0`) with its sockets under `tmpdir`.
pub struct Daemon(pub std::process::Child);

impl Daemon {
    pub fn start(tmpdir: &Path, cert: &Path) -> Daemon {
        let log = std::fs::File::create(tmpdir.join("swupdate.log")).unwrap();
        let child = Command::new("swupdate")
            .args(["-v", "-H", "enos-test:1.0", "-k"])
            .arg(cert)
            .env("TMPDIR", tmpdir)
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("swupdate (scripts/setup-host installs it)");
        for _ in 0..400 {
            if tmpdir.join("sockinstctrl").exists() && tmpdir.join("swupdateprog").exists() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(25));
        }
        Daemon(child)
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
