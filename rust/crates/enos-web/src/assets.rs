//! The pages, embedded in the binary. Only the paths in this table exist: a request never
//! reaches the file system, so `..`, encoded slashes and the like can only ever be "not found".

use crate::http::{text, Resp};
use hyper::header::HeaderValue;
use hyper::StatusCode;
use sha2::{Digest, Sha256};
use std::sync::OnceLock;

struct Asset {
    path: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

const ASSETS: &[Asset] = &[
    Asset { path: "/", content_type: "text/html; charset=utf-8", body: include_bytes!("../assets/index.html") },
    Asset { path: "/app.js", content_type: "text/javascript; charset=utf-8", body: include_bytes!("../assets/app.js") },
    Asset { path: "/app.css", content_type: "text/css; charset=utf-8", body: include_bytes!("../assets/app.css") },
    Asset { path: "/icon.svg", content_type: "image/svg+xml", body: include_bytes!("../assets/icon.svg") },
    Asset { path: "/opcua.js", content_type: "text/javascript; charset=utf-8", body: include_bytes!("../assets/opcua.js") },
    Asset { path: "/packages.js", content_type: "text/javascript; charset=utf-8", body: include_bytes!("../assets/packages.js") },
    Asset { path: "/plugins.js", content_type: "text/javascript; charset=utf-8", body: include_bytes!("../assets/plugins.js") },
];

fn etags() -> &'static Vec<String> {
    static ETAGS: OnceLock<Vec<String>> = OnceLock::new();
    ETAGS.get_or_init(|| ASSETS.iter().map(|a| format!("\"{}\"", hex::encode(&Sha256::digest(a.body)[..12]))).collect())
}

/// Total bytes of the pages (what a first visit downloads, uncompressed).
pub fn total_bytes() -> usize {
    ASSETS.iter().map(|a| a.body.len()).sum()
}

/// The asset at exactly `path`, honouring `If-None-Match`.
pub fn serve(path: &str, if_none_match: Option<&str>) -> Option<Resp> {
    let i = ASSETS.iter().position(|a| a.path == path)?;
    let a = &ASSETS[i];
    let etag = &etags()[i];
    let mut r = if if_none_match.is_some_and(|v| v.split(',').any(|t| t.trim() == etag)) {
        text(StatusCode::NOT_MODIFIED, a.content_type, &b""[..])
    } else {
        text(StatusCode::OK, a.content_type, a.body)
    };
    r.headers_mut().insert("etag", HeaderValue::from_str(etag).expect("hex"));
    // Revalidate every time: an update of the box must show its new pages at once.
    r.headers_mut().insert("cache-control", HeaderValue::from_static("no-cache"));
    Some(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_listed_paths() {
        assert!(serve("/", None).is_some());
        assert!(serve("/app.js", None).is_some());
        for p in ["/../Cargo.toml", "/app.js/..", "/%2e%2e/src/main.rs", "//etc/passwd", "/assets/../app.js", "/APP.JS", ""] {
            assert!(serve(p, None).is_none(), "{p}");
        }
    }

    #[test]
    fn etag_revalidation() {
        let r = serve("/app.css", None).unwrap();
        let tag = r.headers()["etag"].to_str().unwrap().to_string();
        assert_eq!(serve("/app.css", Some(&tag)).unwrap().status(), StatusCode::NOT_MODIFIED);
        assert_eq!(serve("/app.css", Some("\"other\"")).unwrap().status(), StatusCode::OK);
    }
}
