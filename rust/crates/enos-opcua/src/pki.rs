//! The gateway's certificate store, as async-opcua lays it out under the PKI directory:
//! `own/cert.der` and `private/private.pem` (this gateway, made on first start),
//! `trusted/` (server certificates an administrator trusts, DER) and `rejected/` (those refused,
//! copied there by async-opcua so an administrator can move them to `trusted/`).

use std::path::{Path, PathBuf};

/// Creates the directories, the private key's readable by this service only.
pub fn prepare(dir: &Path) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    for sub in ["own", "private", "trusted", "rejected"] {
        let d = dir.join(sub);
        std::fs::create_dir_all(&d).map_err(|e| format!("cannot create the OPC UA PKI directory {}: {e}", d.display()))?;
    }
    let private = dir.join("private");
    std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o700))
        .map_err(|e| format!("cannot restrict {}: {e}", private.display()))
}

/// The most recently refused server certificate, if any.
pub fn newest_rejected(dir: &Path) -> Option<PathBuf> {
    std::fs::read_dir(dir.join("rejected"))
        .ok()?
        .filter_map(|e| e.ok())
        .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
        .max()
        .map(|(_, p)| p)
}
