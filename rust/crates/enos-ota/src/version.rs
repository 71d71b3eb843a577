//! Which release is newer. The same order as SWUpdate's `-N`/`-R` checks (2022.12), so the agent
//! and the daemon agree on what a downgrade is: dotted numbers (up to four fields, each at most
//! 65535; missing fields are 0) compare as numbers; otherwise semantic versions
//! (`1.2.3-rc.1+build`: a pre-release is older than its release, build data is ignored);
//! otherwise the texts compare byte by byte.

use std::cmp::Ordering;

pub fn compare(a: &str, b: &str) -> Ordering {
    if let (Some(x), Some(y)) = (dotted(a), dotted(b)) {
        return x.cmp(&y);
    }
    if let (Some(x), Some(y)) = (Semver::parse(a), Semver::parse(b)) {
        return x.cmp(&y);
    }
    a.as_bytes().cmp(b.as_bytes())
}

/// Strictly newer: what an update must be (an equal one would re-install the running release).
pub fn is_newer(candidate: &str, running: &str) -> bool {
    compare(candidate, running) == Ordering::Greater
}

/// Only digits and dots, at most four fields that fit 16 bits; fields after the fourth are ignored
/// (as SWUpdate does).
fn dotted(v: &str) -> Option<[u16; 4]> {
    if v.is_empty() || !v.bytes().all(|c| c.is_ascii_digit() || c == b'.') {
        return None;
    }
    let mut out = [0u16; 4];
    for (i, field) in v.split('.').take(4).enumerate() {
        out[i] = if field.is_empty() { 0 } else { field.parse().ok()? };
    }
    Some(out)
}

#[derive(Debug, PartialEq, Eq)]
struct Semver<'a> {
    core: [u64; 3],
    pre: Vec<&'a str>,
}

impl<'a> Semver<'a> {
    fn parse(v: &'a str) -> Option<Semver<'a>> {
        let v = v.split_once('+').map_or(v, |(v, _build)| v);
        let (core, pre) = match v.split_once('-') {
            Some((c, p)) if !p.is_empty() => (c, p.split('.').collect()),
            Some(_) => return None,
            None => (v, Vec::new()),
        };
        let mut nums = core.split('.').map(|n| if n.is_empty() || !n.bytes().all(|c| c.is_ascii_digit()) { None } else { n.parse().ok() });
        let core = [nums.next()??, nums.next()??, nums.next()??];
        if nums.next().is_some() || pre.iter().any(|p: &&str| p.is_empty()) {
            return None;
        }
        Some(Semver { core, pre })
    }
}

impl Ord for Semver<'_> {
    fn cmp(&self, o: &Self) -> Ordering {
        self.core.cmp(&o.core).then_with(|| match (self.pre.is_empty(), o.pre.is_empty()) {
            (true, true) => Ordering::Equal,
            (true, false) => Ordering::Greater,
            (false, true) => Ordering::Less,
            (false, false) => {
                for (x, y) in self.pre.iter().zip(&o.pre) {
                    let c = match (x.parse::<u64>(), y.parse::<u64>()) {
                        (Ok(x), Ok(y)) => x.cmp(&y),
                        (Ok(_), Err(_)) => Ordering::Less,
                        (Err(_), Ok(_)) => Ordering::Greater,
                        (Err(_), Err(_)) => x.cmp(y),
                    };
                    if c != Ordering::Equal {
                        return c;
                    }
                }
                self.pre.len().cmp(&o.pre.len())
            }
        })
    }
}

impl PartialOrd for Semver<'_> {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dotted_numbers_compare_as_numbers() {
        assert!(is_newer("2.0.0", "1.0.0"));
        assert!(is_newer("1.10.0", "1.9.9"));
        assert!(is_newer("1.0.0.1", "1.0.0"));
        assert_eq!(compare("1.0", "1.0.0"), Ordering::Equal);
        assert!(!is_newer("1.0.0", "1.0.0"), "a re-install is not newer");
        assert!(!is_newer("0.9.0", "1.0.0"));
    }

    #[test]
    fn semantic_versions_put_a_pre_release_before_its_release() {
        assert!(is_newer("9.0.0-badhealth", "1.0.0"));
        assert!(is_newer("2.0.0", "2.0.0-rc.2"));
        assert!(is_newer("2.0.0-rc.10", "2.0.0-rc.2"));
        assert!(is_newer("2.0.0-rc.1", "2.0.0-1"), "letters after numbers");
        assert_eq!(compare("2.0.0+a", "2.0.0+b"), Ordering::Equal, "build data does not count");
        assert!(!is_newer("1.0.0-rc.1", "1.0.0"));
    }

    #[test]
    fn anything_else_compares_as_text() {
        assert!(is_newer("release-b", "release-a"));
        assert!(!is_newer("unknown", "unknown"));
    }
}
