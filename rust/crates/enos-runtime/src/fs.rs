//! Files replaced as a whole, the one way every service does it.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// Replaces `file` with `bytes` so that a reader, a crash or a power cut sees the old content or
/// the new, never a mix: a temp file beside it, created new (`O_EXCL` under a random name, so a
/// file or symlink planted there is never written through, which matters for the root-run OTA
/// agent), with `mode`, fsynced, renamed over `file`, then the directory fsynced so the rename
/// itself survives a power cut. The directory must exist.
pub fn write_atomic(file: &Path, bytes: &[u8], mode: u32) -> std::io::Result<()> {
    let dir = file.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = file.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let (tmp, mut f) = create_temp(dir, &name, mode)?;
    let result = (|| {
        f.write_all(bytes)?;
        f.sync_all()?;
        drop(f);
        std::fs::rename(&tmp, file)?;
        std::fs::File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// A new file `.{name}.{random}.tmp` in `dir`; a name that exists already is drawn again.
fn create_temp(dir: &Path, name: &str, mode: u32) -> std::io::Result<(PathBuf, std::fs::File)> {
    let mut last = None;
    for _ in 0..8 {
        let tmp = dir.join(format!(".{name}.{:016x}.tmp", random_u64()?));
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&tmp)
        {
            Ok(f) => {
                // The umask may have narrowed `mode`; the caller's mode is what the file gets.
                f.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(mode))?;
                return Ok((tmp, f));
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => last = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last.unwrap_or_else(|| std::io::Error::other("no free temp name")))
}

fn random_u64() -> std::io::Result<u64> {
    let mut buf = [0u8; 8];
    // SAFETY: getrandom writes at most `buf.len()` bytes into the buffer it is given.
    let n = unsafe { libc::getrandom(buf.as_mut_ptr().cast(), buf.len(), 0) };
    if n != buf.len() as isize {
        return Err(std::io::Error::last_os_error());
    }
    Ok(u64::from_ne_bytes(buf))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn dir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("enos-runtime-fs-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn replaces_the_file_with_the_mode_given_and_leaves_no_temp_file() {
        let d = dir("replace");
        let f = d.join("secret");
        write_atomic(&f, b"one", 0o644).unwrap();
        write_atomic(&f, b"two", 0o600).unwrap();
        assert_eq!(std::fs::read(&f).unwrap(), b"two");
        assert_eq!(std::fs::metadata(&f).unwrap().permissions().mode() & 0o777, 0o600);
        let names: Vec<_> = std::fs::read_dir(&d).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, vec![std::ffi::OsString::from("secret")]);
        std::fs::remove_dir_all(d).unwrap();
    }

    #[test]
    fn a_symlink_at_the_destination_is_replaced_not_written_through() {
        let d = dir("symlink");
        let victim = d.join("victim");
        std::fs::write(&victim, "untouched").unwrap();
        std::os::unix::fs::symlink(&victim, d.join("job.json")).unwrap();
        write_atomic(&d.join("job.json"), b"{}", 0o600).unwrap();
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "untouched");
        assert!(!std::fs::symlink_metadata(d.join("job.json")).unwrap().file_type().is_symlink());
        std::fs::remove_dir_all(d).unwrap();
    }

    #[test]
    fn a_missing_directory_is_an_error_and_creates_nothing() {
        let d = dir("missing");
        let e = write_atomic(&d.join("no/such/file"), b"x", 0o644).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::NotFound);
        assert!(!d.join("no").exists());
        std::fs::remove_dir_all(d).unwrap();
    }
}
