//! Replacing a file so a reader sees the old or the new content, never a mix, and no other
//! writer of the directory (`/data/enos/config` is group-writable) can redirect the write.

use rand::Rng;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// Writes `data` to `file` with `mode`: a temporary file of a random name, created exclusively
/// (O_CREAT|O_EXCL, O_NOFOLLOW: a link planted there fails the open instead of being followed),
/// fsynced, renamed over `file`, then the directory fsynced (the rename survives a power cut).
pub fn write_atomic(file: &Path, data: &[u8], mode: u32) -> std::io::Result<()> {
    let dir = file.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = file.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let tmp = dir.join(format!(".{name}.tmp-{:016x}", rand::rng().random::<u64>()));
    let res = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .custom_flags(nix::fcntl::OFlag::O_NOFOLLOW.bits())
            .mode(mode)
            .open(&tmp)?;
        // the umask may have taken bits away; never more than asked for either way
        f.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(mode))?;
        f.write_all(data)?;
        f.sync_all()?;
        std::fs::rename(&tmp, file)?;
        std::fs::File::open(dir)?.sync_all()
    })();
    if res.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    res
}
