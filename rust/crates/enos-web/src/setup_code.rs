//! The one-time setup code: what a person claiming an unclaimed box over the network must know.
//!
//! On a fresh box the first `POST /api/setup` makes its sender admin. On the kiosk listener (the
//! screen on the box itself) that is fine; over the network anyone on the LAN could be first.
//! So a setup over the network must carry this code, which only someone at the box has: printed
//! on its label at manufacturing (`auth.setup_code_file`, provisioned per box), or made on the
//! first start, kept in `<state_dir>/setup-code` (0600) and written to the service's log (the
//! console). Once an account exists, setup is closed and the generated file is removed.

use crate::auth::secret_eq;
use anyhow::{bail, Context};
use enos_runtime::fs::write_atomic;
use std::path::{Path, PathBuf};

/// Letters and digits that cannot be misread on a label or a small screen (no 0/O, 1/I/L).
const ALPHABET: &[u8] = b"23456789ABCDEFGHJKMNPQRSTUVWXYZ";
/// 12 characters of 31: about 59 bits, far beyond what the sign-in limiter lets anyone try.
const LEN: usize = 12;
/// A provisioned code shorter than this is refused: it could be guessed.
const MIN_PROVISIONED: usize = 8;

pub struct SetupCode {
    code: String,
    /// The generated file, removed once the box is claimed (a provisioned file is the OEM's).
    generated: Option<PathBuf>,
    pub source: String,
}

fn normalise(s: &str) -> String {
    s.chars().filter(|c| !c.is_whitespace() && *c != '-').map(|c| c.to_ascii_uppercase()).collect()
}

/// `XXXX-XXXX-XXXX`, as printed.
pub fn display(code: &str) -> String {
    code.as_bytes().chunks(4).map(|c| String::from_utf8_lossy(c).into_owned()).collect::<Vec<_>>().join("-")
}

impl SetupCode {
    /// The provisioned code when configured, else the generated one (made now if absent).
    pub fn prepare(provisioned: Option<&Path>, state_dir: &Path) -> anyhow::Result<SetupCode> {
        if let Some(f) = provisioned {
            let text = std::fs::read_to_string(f).with_context(|| format!("{}: cannot read the setup code file", f.display()))?;
            let code = normalise(text.lines().next().unwrap_or(""));
            if code.len() < MIN_PROVISIONED {
                bail!("{}: the setup code must have at least {MIN_PROVISIONED} letters or digits", f.display());
            }
            return Ok(SetupCode { code, generated: None, source: format!("the provisioned file {}", f.display()) });
        }
        let f = state_dir.join("setup-code");
        if let Ok(text) = std::fs::read_to_string(&f) {
            let code = normalise(&text);
            if code.len() == LEN && code.bytes().all(|b| ALPHABET.contains(&b)) {
                return Ok(SetupCode { code, generated: Some(f.clone()), source: f.display().to_string() });
            }
            log::warn!("{}: not a setup code; making a new one", f.display());
        }
        let mut raw = [0u8; LEN];
        rand::fill(&mut raw);
        let code: String = raw.iter().map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char).collect();
        write_atomic(&f, format!("{}\n", display(&code)).as_bytes(), 0o600).with_context(|| format!("writing {}", f.display()))?;
        Ok(SetupCode { code, generated: Some(f.clone()), source: f.display().to_string() })
    }

    /// Compares in constant time; dashes, spaces and case do not matter.
    pub fn matches(&self, given: &str) -> bool {
        secret_eq(&normalise(given), &self.code)
    }

    pub fn shown(&self) -> String {
        display(&self.code)
    }

    /// The box is claimed: the code is spent.
    pub fn spent(&self) {
        if let Some(f) = &self.generated {
            if let Err(e) = std::fs::remove_file(f) {
                log::warn!("{}: the spent setup code could not be removed: {e}", f.display());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn generated_once_kept_private_and_forgiving_in_form() {
        let dir = tempfile::tempdir().unwrap();
        let a = SetupCode::prepare(None, dir.path()).unwrap();
        let f = dir.path().join("setup-code");
        assert_eq!(std::fs::metadata(&f).unwrap().permissions().mode() & 0o777, 0o600);
        let b = SetupCode::prepare(None, dir.path()).unwrap();
        assert_eq!(a.shown(), b.shown(), "a restart keeps the code");
        assert_eq!(a.shown().len(), 14);
        assert!(a.matches(&a.shown().to_lowercase().replace('-', " ")));
        assert!(!a.matches(""));
        assert!(!a.matches("AAAA-AAAA-AAAA"));
        a.spent();
        assert!(!f.exists());
        assert_ne!(SetupCode::prepare(None, dir.path()).unwrap().shown(), a.shown(), "a new code after the old one was spent");
    }

    #[test]
    fn a_provisioned_code_wins_and_a_short_one_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("label");
        std::fs::write(&p, "kq7m-44zt-pp9x\n").unwrap();
        let c = SetupCode::prepare(Some(&p), dir.path()).unwrap();
        assert!(c.matches("KQ7M44ZTPP9X"));
        c.spent();
        assert!(p.exists(), "the OEM's file is not ours to remove");
        std::fs::write(&p, "abc\n").unwrap();
        let e = SetupCode::prepare(Some(&p), dir.path()).err().unwrap().to_string();
        assert!(e.contains("at least 8"), "{e}");
    }
}
