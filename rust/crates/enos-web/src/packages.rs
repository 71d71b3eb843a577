//! Resource packages uploaded by an admin (`docs/packages.md`): the file goes to the collector's
//! `InstallPackage` as it came, the same path as `enosctl package install` and the cloud's
//! `applyResourcePackage`. The collector checks the signature, validates and applies; this module
//! only carries the bytes and says the outcome in words. See `docs/web-api.md`.

use crate::access::Caller;
use crate::http::{header, json, ok, read_body, ApiError, ApiResult};
use crate::state::App;
use hyper::body::Incoming;
use hyper::header::CONTENT_TYPE;
use hyper::{Request, StatusCode};
use serde_json::{json, Value};

/// The largest package accepted: the uplink's default bound for a package from the cloud
/// (`packages.max_bytes`); packages are text files of a few KiB to a few MiB.
pub const MAX_PACKAGE_BYTES: usize = 16 << 20;

/// `GET /api/packages`: the installed package and the history (newest last), as the collector
/// keeps them.
pub async fn list(app: &App) -> ApiResult {
    ok(&app.bus.packages().await?)
}

/// `POST /api/packages`: the body is the package file (`application/octet-stream` or
/// `application/json`). Answers when the collector has installed, refused or rolled it back
/// (the devices of a new configuration get the collector's health deadline, 60 s by default).
pub async fn install(app: &App, req: Request<Incoming>, c: Caller) -> ApiResult {
    let ct = header(req.headers(), CONTENT_TYPE.as_str()).unwrap_or("");
    let media = ct.split(';').next().unwrap_or("").trim();
    if !media.eq_ignore_ascii_case("application/octet-stream") && !media.eq_ignore_ascii_case("application/json") {
        return Err(ApiError::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, "send the package file as application/octet-stream"));
    }
    let Some((_, bytes)) = read_body(req, MAX_PACKAGE_BYTES).await.map_err(|e| {
        if e.status == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, format!("a package may have at most {} MiB", MAX_PACKAGE_BYTES >> 20))
        } else {
            e
        }
    })?
    else {
        return Err(ApiError::bad_request("the upload is empty: choose a package file"));
    };
    let user = &c.session.user;
    let out = app.bus.install_package(&bytes).await.inspect_err(|e| {
        log::warn!("{user:?} uploaded a resource package ({} bytes), not handed to the collector: {}", bytes.len(), e.message);
    })?;
    let (name, version) = (out["name"].as_str().unwrap_or(""), out["version"].as_str().unwrap_or(""));
    let reason = out["reason"].as_str().unwrap_or("");
    let outcome = out["outcome"].as_str().unwrap_or("");
    log::warn!("{user:?} uploaded a resource package ({} bytes): {}", bytes.len(), said(name, version, outcome, reason));
    if out["ok"] == true {
        return Ok(json(StatusCode::OK, &out));
    }
    Err(ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, said(name, version, outcome, reason)).with_details(problems(reason)))
}

/// The outcome in a sentence: "package site 1.2.0 installed", "the package was refused: ...".
fn said(name: &str, version: &str, outcome: &str, reason: &str) -> String {
    let which = if name.is_empty() { "the package".to_string() } else { format!("package {name} {version}") };
    let what = match outcome {
        "installed" => "installed",
        "rolled-back" => "was rolled back",
        "refused" => "was refused",
        other => other,
    };
    if reason.is_empty() {
        format!("{which} {what}")
    } else {
        format!("{which} {what}: {reason}")
    }
}

/// The collector's reason, one problem a line (a configuration's findings are one a line), for
/// the page to list.
fn problems(reason: &str) -> Value {
    json!(reason.lines().map(str::trim).filter(|l| !l.is_empty()).collect::<Vec<_>>())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_are_sentences() {
        assert_eq!(said("site", "1.0.0", "installed", ""), "package site 1.0.0 installed");
        assert_eq!(said("", "", "refused", "the package is not signed"), "the package was refused: the package is not signed");
        assert_eq!(
            said("site", "2.0.0", "rolled-back", "device \"inv01\" was not collecting"),
            "package site 2.0.0 was rolled back: device \"inv01\" was not collecting"
        );
    }
}
