//! What an update bundle (`.swu`) says about itself before anything is installed: the `version`
//! of its `sw-description`, the first member of the cpio archive. The daemon checks the signature
//! of that file; the agent reads it only to refuse a downgrade early and in words (the daemon,
//! started with `-N`/`-R`, refuses it anyway).

use std::io::Read;
use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    #[error("{0}: {1}")]
    Io(String, std::io::Error),
    #[error("{0}: not an update bundle ({1})")]
    NotABundle(String, String),
}

/// newc (`070701`) and newc with CRC (`070702`): 110-byte header, name padded to 4, data to 4.
const HEADER: usize = 110;
/// A sw-description is a few KiB; anything far larger is not one.
const MAX_DESCRIPTION: usize = 1 << 20;

pub fn version(path: &Path) -> Result<String, BundleError> {
    let name = path.display().to_string();
    let bad = |why: &str| BundleError::NotABundle(name.clone(), why.to_string());
    let mut f = std::fs::File::open(path).map_err(|e| BundleError::Io(name.clone(), e))?;
    let mut head = [0u8; HEADER];
    f.read_exact(&mut head).map_err(|_| bad("shorter than a cpio header"))?;
    if &head[..6] != b"070701" && &head[..6] != b"070702" {
        return Err(bad("no cpio newc header"));
    }
    let field = |i: usize| std::str::from_utf8(&head[6 + 8 * i..14 + 8 * i]).ok().and_then(|h| usize::from_str_radix(h, 16).ok());
    let (size, namesize) = (field(6).ok_or_else(|| bad("bad header"))?, field(11).ok_or_else(|| bad("bad header"))?);
    if size > MAX_DESCRIPTION || namesize > 4096 {
        return Err(bad("the first member is not a sw-description"));
    }
    let name_pad = (HEADER + namesize).next_multiple_of(4) - HEADER;
    let mut rest = vec![0u8; name_pad + size];
    f.read_exact(&mut rest).map_err(|_| bad("truncated"))?;
    if &rest[..namesize] != b"sw-description\0" {
        return Err(bad("its first member is not sw-description"));
    }
    let text = String::from_utf8_lossy(&rest[name_pad..]);
    description_version(&text).ok_or_else(|| bad("sw-description has no version"))
}

/// The first `version = "..."` setting of a libconfig text, outside comments.
fn description_version(text: &str) -> Option<String> {
    let mut in_block = false;
    for line in text.lines() {
        let mut l = line.trim();
        if in_block {
            let Some(end) = l.find("*/") else { continue };
            l = l[end + 2..].trim();
            in_block = false;
        }
        if let Some(start) = l.find("/*") {
            in_block = !l[start..].contains("*/");
            l = &l[..start];
        }
        let l = l.split("//").next().unwrap_or("").trim();
        let Some(rest) = l.strip_prefix("version") else { continue };
        let rest = rest.trim_start().strip_prefix(['=', ':'])?.trim_start().strip_prefix('"')?;
        return rest.split_once('"').map(|(v, _)| v.to_string());
    }
    None
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A bundle as scripts/make-bundle lays it out: sw-description first (newc with CRC).
    pub fn write_bundle(path: &Path, description: &str) {
        let mut out = Vec::new();
        for (name, data) in [("sw-description", description.as_bytes()), ("TRAILER!!!", &b""[..])] {
            let namez = format!("{name}\0");
            out.extend_from_slice(b"070702");
            for v in [0, 0o100644, 0, 0, 1, 0, data.len(), 0, 0, 0, 0, namez.len(), 0] {
                out.extend_from_slice(format!("{v:08X}").as_bytes());
            }
            out.extend_from_slice(namez.as_bytes());
            while out.len() % 4 != 0 {
                out.push(0);
            }
            out.extend_from_slice(data);
            while out.len() % 4 != 0 {
                out.push(0);
            }
        }
        std::fs::write(path, out).unwrap();
    }

    #[test]
    fn the_version_of_the_sw_description_is_read() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("b.swu");
        write_bundle(&p, "/* version = \"0.0.1\"; in a comment */\nsoftware =\n{\n\tversion = \"2.0.0\";\n\tdescription = \"x\";\n}\n");
        assert_eq!(version(&p).unwrap(), "2.0.0");
    }

    #[test]
    fn what_is_not_a_bundle_is_said_in_words() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("notes.txt");
        std::fs::write(&p, "hello").unwrap();
        let e = version(&p).unwrap_err().to_string();
        assert!(e.ends_with("notes.txt: not an update bundle (shorter than a cpio header)"), "{e}");
        write_bundle(&p, "software = { description = \"no version\"; }\n");
        let e = version(&p).unwrap_err().to_string();
        assert!(e.contains("sw-description has no version"), "{e}");
    }
}
