//! Package versions: dot-separated numbers ("1.4.12"); missing parts count as 0.

use std::cmp::Ordering;

/// The numbers of a version, or why it is not one.
pub fn parse(v: &str) -> Result<Vec<u64>, String> {
    if v.is_empty() || v.len() > 64 {
        return Err(format!("version \"{v}\" must be 1 to 64 characters of dot-separated numbers"));
    }
    v.split('.').map(|p| p.parse::<u64>().map_err(|_| format!("version \"{v}\" is not dot-separated numbers (e.g. 1.2.0)"))).collect()
}

/// Compares two valid versions (1.2 == 1.2.0).
pub fn compare(a: &[u64], b: &[u64]) -> Ordering {
    let n = a.len().max(b.len());
    (0..n).map(|i| a.get(i).unwrap_or(&0).cmp(b.get(i).unwrap_or(&0))).find(|o| o.is_ne()).unwrap_or(Ordering::Equal)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_compare_as_numbers() {
        let v = |s| parse(s).unwrap();
        assert_eq!(compare(&v("1.10"), &v("1.9")), Ordering::Greater);
        assert_eq!(compare(&v("1.2"), &v("1.2.0")), Ordering::Equal);
        assert_eq!(compare(&v("2"), &v("10.0")), Ordering::Less);
        assert!(parse("1.x").unwrap_err().contains("dot-separated numbers"));
        assert!(parse("").is_err());
    }
}
