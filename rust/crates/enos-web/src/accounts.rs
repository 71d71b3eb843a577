//! Local accounts: name, role, Argon2id password hash, kept in `<state_dir>/accounts.json`
//! (mode 0600, replaced atomically: written to a temp file, synced, renamed, directory synced).
//!
//! There is no default account. While the file holds no account the box is "unclaimed": the
//! first visitor sets the admin password (or the provisioning file provides it).

use argon2::password_hash::PasswordHasher;
use argon2::password_hash::PasswordVerifier;
use argon2::Argon2;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

pub const SCHEMA_VERSION: u32 = 1;
/// Longest password accepted: Argon2 hashes any length, but the work must stay bounded.
pub const MAX_PASSWORD_LEN: usize = 256;

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Sees status, devices and values; may run a communication test.
    Viewer,
    /// And writes points.
    Operator,
    /// And manages accounts and configuration.
    Admin,
}

impl Role {
    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "viewer" => Some(Role::Viewer),
            "operator" => Some(Role::Operator),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Admin => "admin",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Account {
    pub name: String,
    pub role: Role,
    /// PHC string (`$argon2id$v=19$m=...,t=...,p=...$salt$hash`).
    pub password_hash: String,
    pub created_ms: u64,
    pub password_changed_ms: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
struct AccountsFile {
    schema_version: u32,
    accounts: Vec<Account>,
}

#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    #[error("{0}")]
    Invalid(String),
    #[error("{file}: {reason}")]
    Storage { file: PathBuf, reason: String },
}

pub struct Accounts {
    file: PathBuf,
    accounts: Vec<Account>,
}

/// Account names: what a technician can type on a touch keyboard, and safe in logs and paths.
pub fn check_name(name: &str) -> Result<(), AccountError> {
    let ok = (1..=32).contains(&name.len())
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-'))
        && name.chars().next().is_some_and(|c| c.is_ascii_alphanumeric());
    if ok {
        Ok(())
    } else {
        Err(AccountError::Invalid(
            "the account name must be 1 to 32 characters: lower-case letters, digits, '.', '_' or '-', starting with a letter or digit"
                .into(),
        ))
    }
}

pub fn check_password(password: &str, min_len: usize) -> Result<(), AccountError> {
    let n = password.chars().count();
    if n < min_len {
        return Err(AccountError::Invalid(format!("the password must have at least {min_len} characters")));
    }
    if password.len() > MAX_PASSWORD_LEN {
        return Err(AccountError::Invalid(format!("the password must have at most {MAX_PASSWORD_LEN} bytes")));
    }
    Ok(())
}

/// Argon2id with the crate's defaults (19 MiB, 2 passes, 1 lane: OWASP's recommendation).
/// Slow on purpose: call it from a blocking thread.
pub fn hash_password(password: &str) -> Result<String, AccountError> {
    Argon2::default()
        .hash_password(password.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| AccountError::Invalid(format!("cannot hash the password: {e}")))
}

/// Whether `password` matches the PHC string `hash` (constant time in the comparison; the
/// parameters come from the string).
pub fn verify_password(password: &str, hash: &str) -> bool {
    Argon2::default().verify_password(password.as_bytes(), hash).is_ok()
}

/// A hash no password matches in practice, verified when an account does not exist so that a
/// wrong name costs as much time as a wrong password (no account enumeration by timing).
pub fn dummy_hash() -> &'static str {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DUMMY.get_or_init(|| {
        let mut pw = [0u8; 24];
        rand::fill(&mut pw);
        hash_password(&hex::encode(pw)).expect("argon2 with default parameters")
    })
}

impl Accounts {
    /// Opens the accounts file in `state_dir`; a missing file means no account yet.
    pub fn open(state_dir: &Path) -> Result<Accounts, AccountError> {
        let file = state_dir.join("accounts.json");
        let err = |reason: String| AccountError::Storage { file: file.clone(), reason };
        let accounts = match std::fs::read(&file) {
            Ok(bytes) => {
                let doc: AccountsFile = serde_json::from_slice(&bytes).map_err(|e| err(format!("not an accounts file: {e}")))?;
                if doc.schema_version > SCHEMA_VERSION {
                    return Err(err(format!(
                        "schema version {} is newer than this release understands ({SCHEMA_VERSION})",
                        doc.schema_version
                    )));
                }
                doc.accounts
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(err(format!("cannot read: {e}"))),
        };
        Ok(Accounts { file, accounts })
    }

    pub fn is_empty(&self) -> bool {
        self.accounts.is_empty()
    }

    pub fn get(&self, name: &str) -> Option<&Account> {
        self.accounts.iter().find(|a| a.name == name)
    }

    pub fn list(&self) -> &[Account] {
        &self.accounts
    }

    /// Adds an account whose password is already hashed; refuses a duplicate name.
    pub fn add(&mut self, name: &str, role: Role, password_hash: String) -> Result<(), AccountError> {
        check_name(name)?;
        if self.get(name).is_some() {
            return Err(AccountError::Invalid(format!("an account named {name:?} exists already")));
        }
        let now = enos_batch::now_ms();
        let mut next = self.accounts.clone();
        next.push(Account { name: name.to_string(), role, password_hash, created_ms: now, password_changed_ms: now });
        self.store(next)
    }

    pub fn set_password(&mut self, name: &str, password_hash: String) -> Result<(), AccountError> {
        let mut next = self.accounts.clone();
        let a = next.iter_mut().find(|a| a.name == name).ok_or_else(|| AccountError::Invalid(format!("no account named {name:?}")))?;
        a.password_hash = password_hash;
        a.password_changed_ms = enos_batch::now_ms();
        self.store(next)
    }

    /// Removes an account; the last admin cannot be removed.
    pub fn remove(&mut self, name: &str) -> Result<(), AccountError> {
        let a = self.get(name).ok_or_else(|| AccountError::Invalid(format!("no account named {name:?}")))?;
        if a.role == Role::Admin && self.accounts.iter().filter(|a| a.role == Role::Admin).count() == 1 {
            return Err(AccountError::Invalid("the last admin account cannot be removed".into()));
        }
        let next = self.accounts.iter().filter(|a| a.name != name).cloned().collect();
        self.store(next)
    }

    /// Writes the new list durably, then adopts it: a failed write changes nothing.
    fn store(&mut self, next: Vec<Account>) -> Result<(), AccountError> {
        let doc = AccountsFile { schema_version: SCHEMA_VERSION, accounts: next };
        let bytes = serde_json::to_vec_pretty(&doc).expect("accounts serialize");
        enos_runtime::fs::write_atomic(&self.file, &bytes, 0o600)
            .map_err(|e| AccountError::Storage { file: self.file.clone(), reason: e.to_string() })?;
        self.accounts = doc.accounts;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn hash_and_verify() {
        let h = hash_password("correct horse battery").unwrap();
        assert!(h.starts_with("$argon2id$"), "{h}");
        assert!(verify_password("correct horse battery", &h));
        assert!(!verify_password("correct horse batterY", &h));
        assert!(!verify_password("correct horse battery", "not a hash"));
        assert!(!verify_password("", dummy_hash()));
    }

    #[test]
    fn store_round_trip_mode_and_rules() {
        let dir = tempfile::tempdir().unwrap();
        let mut a = Accounts::open(dir.path()).unwrap();
        assert!(a.is_empty());
        a.add("admin", Role::Admin, hash_password("0123456789").unwrap()).unwrap();
        a.add("op-1", Role::Operator, "x".into()).unwrap();
        assert!(a.add("admin", Role::Viewer, "x".into()).unwrap_err().to_string().contains("exists already"));
        assert!(a.add("Bad Name", Role::Viewer, "x".into()).is_err());
        assert!(a.add("../etc", Role::Viewer, "x".into()).is_err());
        assert!(a.remove("admin").unwrap_err().to_string().contains("last admin"));
        a.remove("op-1").unwrap();

        let file = dir.path().join("accounts.json");
        assert_eq!(std::fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o600);
        let b = Accounts::open(dir.path()).unwrap();
        assert_eq!(b.list().len(), 1);
        assert!(verify_password("0123456789", &b.get("admin").unwrap().password_hash));
        // no temp files left behind
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn refuses_newer_schema_and_garbage() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("accounts.json"), r#"{"schema_version":99,"accounts":[]}"#).unwrap();
        assert!(Accounts::open(dir.path()).err().unwrap().to_string().contains("newer"));
        std::fs::write(dir.path().join("accounts.json"), "{").unwrap();
        assert!(Accounts::open(dir.path()).err().unwrap().to_string().contains("not an accounts file"));
    }

    #[test]
    fn password_rules() {
        assert!(check_password("short", 10).is_err());
        assert!(check_password("long enough", 10).is_ok());
        assert!(check_password(&"x".repeat(300), 10).is_err());
    }
}
