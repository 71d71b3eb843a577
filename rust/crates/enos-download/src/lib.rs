//! Downloads with resume (one home: `enos-ota`'s update bundles, the uplink's resource
//! packages): a broken connection continues where it stopped (HTTP Range), the size
//! is bounded before and during the transfer, the file is synced before it is used.

use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use std::path::Path;
use std::time::Duration;
use tokio::io::AsyncWriteExt;

#[derive(Debug, thiserror::Error)]
pub enum DownloadError {
    #[error("{0}")]
    Refused(String),
    #[error("download failed after {attempts} attempts: {last}")]
    GaveUp { attempts: u32, last: String },
    #[error("writing {path}: {source}")]
    Io { path: String, source: std::io::Error },
}

pub struct Limits {
    pub expected: Option<u64>,
    pub max: u64,
    pub allow_http: bool,
    pub attempts: u32,
    /// Bytes that must stay free beside the download: the telemetry cache's reserve on the
    /// same partition (`cache.keep_free_bytes` of the uplink), so an update never costs data.
    pub keep_free: u64,
}

/// Fetches `url` into `dest`; `on_progress(bytes, total)` sees the advance.
pub async fn fetch(url: &str, dest: &Path, lim: &Limits, mut on_progress: impl FnMut(u64, Option<u64>)) -> Result<(), DownloadError> {
    let uri: hyper::Uri = url.parse().map_err(|e| DownloadError::Refused(format!("bad URL {url:?}: {e}")))?;
    match uri.scheme_str() {
        Some("https") => {}
        Some("http") if lim.allow_http => {}
        Some("http") => {
            return Err(DownloadError::Refused("plain http:// downloads are not allowed (set allow_http for a test network)".into()))
        }
        _ => return Err(DownloadError::Refused(format!("unsupported URL {url:?}"))),
    }
    if let Some(e) = lim.expected {
        if e > lim.max {
            return Err(DownloadError::Refused(format!("the download of {e} bytes exceeds the limit of {} bytes", lim.max)));
        }
    }
    let part = dest.with_extension("part");
    if let Some(e) = lim.expected {
        // Checked before the transfer: a bundle that cannot fit would fill the data partition
        // (the cache lives there) and fail anyway, after a long download.
        let dir = dest.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        if let Some(disk) = enos_runtime::sys::Disk::of(dir) {
            let have = std::fs::metadata(&part).map(|m| m.len()).unwrap_or(0);
            check_space(dir, e, have, disk.free_bytes, lim.keep_free)?;
        }
    }
    let https = hyper_rustls::HttpsConnectorBuilder::new().with_webpki_roots().https_or_http().enable_http1().build();
    let client: Client<_, Empty<Bytes>> = Client::builder(TokioExecutor::new()).build(https);
    let io = |source| DownloadError::Io { path: part.display().to_string(), source };
    let mut last = String::new();
    for attempt in 1..=lim.attempts {
        let have = tokio::fs::metadata(&part).await.map(|m| m.len()).unwrap_or(0);
        if lim.expected == Some(have) && have > 0 {
            break;
        }
        let mut req = hyper::Request::get(uri.clone());
        if have > 0 {
            req = req.header(hyper::header::RANGE, format!("bytes={have}-"));
        }
        let req = req.body(Empty::new()).expect("request");
        let resp = match tokio::time::timeout(Duration::from_secs(30), client.request(req)).await {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => {
                last = format!("connect: {e}");
                backoff(attempt).await;
                continue;
            }
            Err(_) => {
                last = "no response in 30 s".into();
                backoff(attempt).await;
                continue;
            }
        };
        let status = resp.status();
        let (append, total) = match status.as_u16() {
            206 => (true, lim.expected),
            200 => (false, resp.headers().get(hyper::header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse().ok()).or(lim.expected)),
            416 if have > 0 => {
                // asked past the end: start over
                tokio::fs::remove_file(&part).await.map_err(io)?;
                continue;
            }
            404 | 403 | 401 | 410 => return Err(DownloadError::Refused(format!("server answered {status} for {url}"))),
            _ => {
                last = format!("server answered {status}");
                backoff(attempt).await;
                continue;
            }
        };
        if let Some(t) = total {
            if t > lim.max {
                return Err(DownloadError::Refused(format!("the download of {t} bytes exceeds the limit of {} bytes", lim.max)));
            }
        }
        let mut f =
            tokio::fs::OpenOptions::new().create(true).write(true).append(append).truncate(!append).open(&part).await.map_err(io)?;
        let mut got = if append { have } else { 0 };
        let mut body = resp.into_body();
        let mut broke = None;
        loop {
            match tokio::time::timeout(Duration::from_secs(30), body.frame()).await {
                Ok(Some(Ok(frame))) => {
                    if let Some(d) = frame.data_ref() {
                        got += d.len() as u64;
                        if got > lim.max || lim.expected.is_some_and(|e| got > e) {
                            drop(f);
                            let _ = tokio::fs::remove_file(&part).await;
                            return Err(DownloadError::Refused(format!(
                                "the server sent more than the announced {} bytes",
                                lim.expected.unwrap_or(lim.max)
                            )));
                        }
                        f.write_all(d).await.map_err(io)?;
                        on_progress(got, total);
                    }
                }
                Ok(Some(Err(e))) => {
                    broke = Some(format!("connection broke at {got} bytes: {e}"));
                    break;
                }
                Ok(None) => break,
                Err(_) => {
                    broke = Some(format!("stalled at {got} bytes"));
                    break;
                }
            }
        }
        f.sync_all().await.map_err(io)?;
        if let Some(b) = broke {
            log::warn!("download: {b}; resuming");
            last = b;
            backoff(attempt).await;
            continue;
        }
        if lim.expected.is_none_or(|e| e == got) {
            tokio::fs::rename(&part, dest).await.map_err(io)?;
            return Ok(());
        }
        last = format!("got {got} of {} bytes", lim.expected.unwrap_or(0));
        backoff(attempt).await;
    }
    if lim.expected.is_some_and(|e| std::fs::metadata(&part).map(|m| m.len() == e).unwrap_or(false)) {
        tokio::fs::rename(&part, dest).await.map_err(io)?;
        return Ok(());
    }
    Err(DownloadError::GaveUp { attempts: lim.attempts, last })
}

/// Refuses a download of `size` bytes when what is still to come (`size - have`, `have` already
/// downloaded) and `keep` bytes left free exceed `free` bytes in `dir`.
fn check_space(dir: &Path, size: u64, have: u64, free: u64, keep: u64) -> Result<(), DownloadError> {
    let need = size.saturating_sub(have);
    if need.saturating_add(keep) > free {
        let kept = if keep > 0 { format!(", and {keep} must stay free for the data cache") } else { String::new() };
        return Err(DownloadError::Refused(format!(
            "the download needs {need} more bytes (of {size}) but only {free} are free on {}{kept}: refused before downloading",
            dir.display()
        )));
    }
    Ok(())
}

async fn backoff(attempt: u32) {
    tokio::time::sleep(Duration::from_millis(500 * (1 << attempt.min(6)))).await;
}

/// The digest the cloud announced, checked case-insensitively.
pub fn verify_digest(path: &Path, method: &str, expected: &str) -> Result<(), String> {
    let hexdigest = match method.to_ascii_lowercase().as_str() {
        "md5" => hash_file::<md5::Md5>(path)?,
        "sha256" => hash_file::<sha2::Sha256>(path)?,
        other => return Err(format!("unsupported signMethod {other:?} (md5, sha256)")),
    };
    if hexdigest.eq_ignore_ascii_case(expected.trim()) {
        Ok(())
    } else {
        Err(format!("{method} of the download is {hexdigest}, expected {expected}"))
    }
}

fn hash_file<D: sha2::Digest>(path: &Path) -> Result<String, String> {
    use std::io::Read;
    let mut f = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut buf = vec![0u8; 1 << 20];
    let mut h = D::new();
    loop {
        let n = f.read(&mut buf).map_err(|e| e.to_string())?;
        if n == 0 {
            return Ok(hex::encode(h.finalize()));
        }
        h.update(&buf[..n]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_bundle_that_does_not_fit_is_refused_in_words_before_downloading() {
        let dir = tempfile::tempdir().unwrap();
        let free = enos_runtime::sys::Disk::of(dir.path()).unwrap().free_bytes;
        // nothing listens on port 9: a download attempt would fail to connect instead
        let lim = Limits { expected: Some(free + (1 << 30)), max: u64::MAX, allow_http: true, attempts: 1, keep_free: 0 };
        let dest = dir.path().join("bundle.swu");
        let e = fetch("http://127.0.0.1:9/b.swu", &dest, &lim, |_, _| {}).await.unwrap_err();
        let text = e.to_string();
        assert!(matches!(e, DownloadError::Refused(_)), "{text}");
        assert!(
            text.starts_with("the download needs ") && text.contains(" free on ") && text.contains(&dir.path().display().to_string()),
            "{text}"
        );
        assert!(!dest.with_extension("part").exists(), "nothing was written");
    }

    #[test]
    fn what_is_downloaded_already_counts_toward_the_space() {
        assert!(check_space(Path::new("/data"), 100, 40, 60, 0).is_ok());
        let e = check_space(Path::new("/data"), 100, 40, 59, 0).unwrap_err().to_string();
        assert_eq!(e, "the download needs 60 more bytes (of 100) but only 59 are free on /data: refused before downloading");
        // and the data cache's reserve stays free
        assert!(check_space(Path::new("/data"), 100, 40, 70, 10).is_ok());
        let e = check_space(Path::new("/data"), 100, 40, 70, 11).unwrap_err().to_string();
        assert_eq!(
            e,
            "the download needs 60 more bytes (of 100) but only 70 are free on /data, and 11 must stay free for the data cache: refused before downloading"
        );
    }
}
