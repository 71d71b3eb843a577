//! Sessions, CSRF tokens and the sign-in limiter. All in memory: a restart signs everyone out,
//! which is the safe direction.
//!
//! - A session is a 256-bit random token in an HttpOnly, SameSite=Strict cookie. The store keys
//!   sessions by the SHA-256 of the token, so a lookup never compares secrets byte by byte.
//! - Each session has its own 256-bit CSRF token that every state-changing request must echo in
//!   `X-CSRF-Token`; it is compared in constant time.
//! - Failed sign-ins are counted per (account name, client address) and per client address; past
//!   the limit that pair or address is locked out for `lockout_s` (even the right password is
//!   refused then). See `Limiter` for why an account is never locked out as such.

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
    /// One account name tried from one address.
    Pair(u64, IpAddr),
    /// One address, whatever names it tries.
    Addr(IpAddr),
}

#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    last: Instant,
    locked_until: Option<Instant>,
}

/// Why a sign-in is refused before the password is even checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// This address, or this name from this address, failed too often: seconds left.
    LockedOut(u64),
    /// The table of failures is full of live lockouts (many addresses failing at once): new
    /// addresses of the network wait rather than go uncounted.
    Busy(u64),
}

/// Counts failed sign-ins per (account, address) and per address.
///
/// There is no lockout of an account as such: that would let anyone on the network keep `admin`
/// locked out from everywhere, the kiosk included. Guessing one account from many addresses is
/// bounded per address and slowed by Argon2; the kiosk's (local) sign-ins are never refused for
/// what the network did. When the table is full of live entries it fails closed for new network
/// addresses instead of no longer counting.
pub struct Limiter {
    entries: HashMap<Who, Failures>,
    max_failed: u32,
    lockout: Duration,
    capacity: usize,
}

fn name_key(name: &str) -> u64 {
    let d = Sha256::digest(name.as_bytes());
    u64::from_le_bytes(d[..8].try_into().expect("8 bytes"))
}

impl Limiter {
    pub fn new(max_failed: u32, lockout: Duration) -> Limiter {
        Limiter::with_capacity(max_failed, lockout, MAX_LIMITER_ENTRIES)
    }

    fn with_capacity(max_failed: u32, lockout: Duration, capacity: usize) -> Limiter {
        Limiter { entries: HashMap::new(), max_failed, lockout, capacity }
    }

    fn keys(name: &str, addr: IpAddr) -> [Who; 2] {
        [Who::Pair(name_key(name), addr), Who::Addr(addr)]
    }

    /// Entries that no longer matter: not locked, last failure long ago.
    fn purge(&mut self, now: Instant) {
        let stale = self.lockout * 4;
        self.entries.retain(|_, f| f.locked_until.is_some_and(|t| t > now) || now.duration_since(f.last) < stale);
    }

    /// Refused now (before checking the password)? `local`: on the box's own listener.
    pub fn check(&mut self, name: &str, addr: IpAddr, local: bool, now: Instant) -> Result<(), Refused> {
        let mut left: Option<Duration> = None;
        for who in Self::keys(name, addr) {
            if let Some(f) = self.entries.get_mut(&who) {
                match f.locked_until {
                    Some(t) if t > now => left = Some(left.unwrap_or_default().max(t - now)),
                    Some(_) => *f = Failures { count: 0, last: now, locked_until: None },
                    None => {}
                }
            }
        }
        if let Some(d) = left {
            return Err(Refused::LockedOut(d.as_secs().max(1)));
        }
        if !local && self.entries.len() >= self.capacity && !self.entries.contains_key(&Who::Addr(addr)) {
            self.purge(now);
            if self.entries.len() >= self.capacity {
                return Err(Refused::Busy(self.lockout.as_secs().max(1)));
            }
        }
        Ok(())
    }

    /// Records a failure; returns `Some(seconds)` when it started a lockout.
    pub fn failed(&mut self, name: &str, addr: IpAddr, now: Instant) -> Option<u64> {
        if self.entries.len() + 2 > self.capacity {
            self.purge(now);
        }
        let mut started = None;
        for who in Self::keys(name, addr) {
            if self.entries.len() >= self.capacity && !self.entries.contains_key(&who) {
                // Full of live entries: make room by dropping the oldest that is not locked;
                // when every entry is a live lockout, `check` refuses new addresses instead.
                let oldest = self.entries.iter().filter(|(_, f)| f.locked_until.is_none()).min_by_key(|(_, f)| f.last).map(|(k, _)| *k);
                match oldest {
                    Some(k) => {
                        self.entries.remove(&k);
                    }
                    None => continue,
                }
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

    /// A successful sign-in clears the account's failures from that address, and the address's.
    pub fn succeeded(&mut self, name: &str, addr: IpAddr) {
        for who in Self::keys(name, addr) {
            self.entries.remove(&who);
        }
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
    fn limiter_locks_an_address_and_a_name_from_it_but_never_the_name_everywhere() {
        let mut l = Limiter::new(3, Duration::from_secs(300));
        let t0 = Instant::now();
        let ip: IpAddr = "192.0.2.10".parse().unwrap();
        let ip2: IpAddr = "192.0.2.11".parse().unwrap();
        let kiosk: IpAddr = "127.0.0.1".parse().unwrap();
        assert_eq!(l.failed("admin", ip, t0), None);
        assert_eq!(l.failed("admin", ip, t0), None);
        assert_eq!(l.failed("admin", ip, t0), Some(300));
        assert_eq!(l.check("admin", ip, false, t0), Err(Refused::LockedOut(300)));
        assert_eq!(l.check("other", ip, false, t0), Err(Refused::LockedOut(300)), "the address is locked for any name");
        assert_eq!(l.check("admin", ip2, false, t0), Ok(()), "admin from elsewhere is not locked out");
        assert_eq!(l.check("admin", kiosk, true, t0), Ok(()), "nor on the kiosk");
        assert_eq!(l.check("admin", ip, false, t0 + Duration::from_secs(301)), Ok(()));
        l.failed("x", ip2, t0);
        l.succeeded("x", ip2);
        l.failed("x", ip2, t0);
        l.failed("x", ip2, t0);
        assert_eq!(l.check("x", ip2, false, t0), Ok(()), "success reset the count");
    }

    #[test]
    fn a_full_limiter_refuses_new_network_addresses_instead_of_forgetting() {
        let mut l = Limiter::with_capacity(1, Duration::from_secs(60), 8);
        let t0 = Instant::now();
        // four addresses locked out: 8 live entries (pair + address each)
        for i in 0..4 {
            let ip: IpAddr = format!("192.0.2.{i}").parse().unwrap();
            assert_eq!(l.failed("admin", ip, t0), Some(60));
        }
        let fresh: IpAddr = "192.0.2.99".parse().unwrap();
        assert_eq!(l.check("admin", fresh, false, t0), Err(Refused::Busy(60)), "fails closed, not open");
        assert_eq!(l.check("admin", "127.0.0.1".parse().unwrap(), true, t0), Ok(()), "the kiosk still gets in");
        // the locked ones are still locked: nothing was forgotten to make room
        for i in 0..4 {
            let ip: IpAddr = format!("192.0.2.{i}").parse().unwrap();
            assert!(matches!(l.check("admin", ip, false, t0), Err(Refused::LockedOut(_))));
        }
        // once the lockouts run out, room again
        assert_eq!(l.check("admin", fresh, false, t0 + Duration::from_secs(61 + 240)), Ok(()));
    }

    #[test]
    fn secret_eq_works() {
        assert!(secret_eq("abc", "abc"));
        assert!(!secret_eq("abc", "abd"));
        assert!(!secret_eq("abc", "abcd"));
        assert!(!secret_eq("", "a"));
    }
}
