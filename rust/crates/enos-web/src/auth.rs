//! Sessions, CSRF tokens and the sign-in limiter. All in memory: a restart signs everyone out,
//! which is the safe direction.
//!
//! - A session is a 256-bit random token in an HttpOnly, SameSite=Strict cookie. The store keys
//!   sessions by the SHA-256 of the token, so a lookup never compares secrets byte by byte.
//! - Each session has its own 256-bit CSRF token that every state-changing request must echo in
//!   `X-CSRF-Token`; it is compared in constant time.
//! - Failed sign-ins are counted per account name and per client address; past the limit, that
//!   name or address is locked out for `lockout_s` (even the right password is refused then).

use crate::accounts::Role;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};
use subtle::ConstantTimeEq;

/// Sessions beyond this many: the least recently used goes.
const MAX_SESSIONS: usize = 256;
/// Limiter entries kept at most (stale ones are dropped first).
const MAX_LIMITER_ENTRIES: usize = 4096;

pub fn random_token() -> String {
    let mut b = [0u8; 32];
    rand::fill(&mut b);
    hex::encode(b)
}

fn token_key(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// Constant-time equality of two secrets (length is not hidden; tokens have a fixed length).
pub fn secret_eq(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

#[derive(Debug, Clone)]
pub struct Session {
    pub user: String,
    pub role: Role,
    pub csrf: String,
    pub created: Instant,
    pub last_seen: Instant,
}

pub struct Sessions {
    by_key: HashMap<[u8; 32], Session>,
    idle: Duration,
    max_age: Duration,
}

impl Sessions {
    pub fn new(idle: Duration, max_age: Duration) -> Sessions {
        Sessions { by_key: HashMap::new(), idle, max_age }
    }

    /// Starts a session; returns its token (for the cookie) and the session.
    pub fn create(&mut self, user: &str, role: Role, now: Instant) -> (String, Session) {
        self.expire(now);
        if self.by_key.len() >= MAX_SESSIONS {
            if let Some(k) = self.by_key.iter().min_by_key(|(_, s)| s.last_seen).map(|(k, _)| *k) {
                self.by_key.remove(&k);
            }
        }
        let token = random_token();
        let s = Session { user: user.to_string(), role, csrf: random_token(), created: now, last_seen: now };
        self.by_key.insert(token_key(&token), s.clone());
        (token, s)
    }

    /// The live session for a cookie token, touched (idle timer restarts).
    pub fn get(&mut self, token: &str, now: Instant) -> Option<Session> {
        let key = token_key(token);
        let s = self.by_key.get_mut(&key)?;
        if now.duration_since(s.last_seen) > self.idle || now.duration_since(s.created) > self.max_age {
            self.by_key.remove(&key);
            return None;
        }
        s.last_seen = now;
        Some(s.clone())
    }

    pub fn remove(&mut self, token: &str) {
        self.by_key.remove(&token_key(token));
    }

    /// Ends every session of `user` (password changed, account removed).
    pub fn remove_user(&mut self, user: &str) {
        self.by_key.retain(|_, s| s.user != user);
    }

    pub fn expire(&mut self, now: Instant) {
        let (idle, max_age) = (self.idle, self.max_age);
        self.by_key.retain(|_, s| now.duration_since(s.last_seen) <= idle && now.duration_since(s.created) <= max_age);
    }

    pub fn len(&self) -> usize {
        self.by_key.len()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Who {
    Name(u64),
    Addr(IpAddr),
}

#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    last: Instant,
    locked_until: Option<Instant>,
}

/// Counts failed sign-ins by account name and by client address.
pub struct Limiter {
    entries: HashMap<Who, Failures>,
    max_failed: u32,
    lockout: Duration,
}

fn name_key(name: &str) -> u64 {
    let d = Sha256::digest(name.as_bytes());
    u64::from_le_bytes(d[..8].try_into().expect("8 bytes"))
}

impl Limiter {
    pub fn new(max_failed: u32, lockout: Duration) -> Limiter {
        Limiter { entries: HashMap::new(), max_failed, lockout }
    }

    /// `Some(seconds left)` when this name or address is locked out now.
    pub fn locked(&mut self, name: &str, addr: IpAddr, now: Instant) -> Option<u64> {
        let mut left: Option<Duration> = None;
        for who in [Who::Name(name_key(name)), Who::Addr(addr)] {
            if let Some(f) = self.entries.get_mut(&who) {
                match f.locked_until {
                    Some(t) if t > now => left = Some(left.unwrap_or_default().max(t - now)),
                    Some(_) => *f = Failures { count: 0, last: now, locked_until: None },
                    None => {}
                }
            }
        }
        left.map(|d| d.as_secs().max(1))
    }

    /// Records a failure; returns `Some(seconds)` when it started a lockout.
    pub fn failed(&mut self, name: &str, addr: IpAddr, now: Instant) -> Option<u64> {
        if self.entries.len() >= MAX_LIMITER_ENTRIES {
            let lockout = self.lockout;
            self.entries.retain(|_, f| f.locked_until.is_some_and(|t| t > now) || now.duration_since(f.last) < lockout);
        }
        let mut started = None;
        for who in [Who::Name(name_key(name)), Who::Addr(addr)] {
            if self.entries.len() >= MAX_LIMITER_ENTRIES && !self.entries.contains_key(&who) {
                continue;
            }
            let f = self.entries.entry(who).or_insert(Failures { count: 0, last: now, locked_until: None });
            // Failures long ago do not add up to a lockout today.
            if now.duration_since(f.last) > self.lockout * 4 {
                f.count = 0;
            }
            f.count += 1;
            f.last = now;
            if f.count >= self.max_failed {
                f.locked_until = Some(now + self.lockout);
                f.count = 0;
                started = Some(self.lockout.as_secs().max(1));
            }
        }
        started
    }

    /// A successful sign-in clears the account's and the address's failures.
    pub fn succeeded(&mut self, name: &str, addr: IpAddr) {
        self.entries.remove(&Who::Name(name_key(name)));
        self.entries.remove(&Who::Addr(addr));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_expire_when_idle_or_old() {
        let mut s = Sessions::new(Duration::from_secs(60), Duration::from_secs(600));
        let t0 = Instant::now();
        let (tok, sess) = s.create("admin", Role::Admin, t0);
        assert_eq!(tok.len(), 64);
        assert_ne!(tok, sess.csrf);
        assert!(s.get(&tok, t0 + Duration::from_secs(50)).is_some());
        assert!(s.get(&tok, t0 + Duration::from_secs(100)).is_some(), "touched at 50 s");
        assert!(s.get(&tok, t0 + Duration::from_secs(200)).is_none(), "idle 100 s");
        let (tok, _) = s.create("admin", Role::Admin, t0);
        for i in 1..=11 {
            let r = s.get(&tok, t0 + Duration::from_secs(55 * i));
            assert_eq!(r.is_some(), 55 * i <= 600, "at {} s", 55 * i);
        }
        assert!(s.get("nope", t0).is_none());
    }

    #[test]
    fn remove_user_ends_their_sessions() {
        let mut s = Sessions::new(Duration::from_secs(60), Duration::from_secs(600));
        let t0 = Instant::now();
        let (a, _) = s.create("a", Role::Viewer, t0);
        let (b, _) = s.create("b", Role::Viewer, t0);
        s.remove_user("a");
        assert!(s.get(&a, t0).is_none());
        assert!(s.get(&b, t0).is_some());
    }

    #[test]
    fn limiter_locks_name_and_address() {
        let mut l = Limiter::new(3, Duration::from_secs(300));
        let t0 = Instant::now();
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let ip2: IpAddr = "127.0.0.2".parse().unwrap();
        assert_eq!(l.failed("admin", ip, t0), None);
        assert_eq!(l.failed("admin", ip, t0), None);
        assert_eq!(l.failed("admin", ip, t0), Some(300));
        assert!(l.locked("admin", ip, t0).is_some());
        assert!(l.locked("admin", ip2, t0).is_some(), "the name is locked from any address");
        assert!(l.locked("other", ip, t0).is_some(), "the address is locked for any name");
        assert!(l.locked("other", ip2, t0).is_none());
        assert!(l.locked("admin", ip, t0 + Duration::from_secs(301)).is_none());
        l.failed("x", ip2, t0);
        l.succeeded("x", ip2);
        l.failed("x", ip2, t0);
        l.failed("x", ip2, t0);
        assert!(l.locked("x", ip2, t0).is_none(), "success reset the count");
    }

    #[test]
    fn secret_eq_works() {
        assert!(secret_eq("abc", "abc"));
        assert!(!secret_eq("abc", "abd"));
        assert!(!secret_eq("abc", "abcd"));
        assert!(!secret_eq("", "a"));
    }
}
