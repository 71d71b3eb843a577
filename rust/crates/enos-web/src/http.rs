//! Small HTTP helpers: responses, errors in plain words, cookies, bounded JSON bodies, paths.

use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::header::{HeaderMap, HeaderValue, CONTENT_LENGTH, CONTENT_TYPE};
use hyper::{Request, Response, StatusCode};
use serde::de::DeserializeOwned;
use serde::Serialize;

pub type Body = Full<Bytes>;

/// Longest time a request body may take to arrive.
pub const BODY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(20);
pub type Resp = Response<Body>;

/// An API failure: an HTTP status and a sentence for the technician (`{"error": "..."}`).
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
    pub retry_after: Option<u64>,
    /// Itemised problems (`errors` in the answer), e.g. each bad row of a point table.
    pub details: Option<serde_json::Value>,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError { status, message: message.into(), retry_after: None, details: None }
    }
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }
    pub fn forbidden(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::FORBIDDEN, message)
    }
    pub fn not_found() -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "no such page or API")
    }
    pub fn with_details(mut self, details: serde_json::Value) -> ApiError {
        self.details = Some(details);
        self
    }
    pub fn response(&self) -> Resp {
        let mut doc = serde_json::json!({ "error": self.message });
        if let Some(d) = &self.details {
            doc["errors"] = d.clone();
        }
        let mut r = json(self.status, &doc);
        if let Some(s) = self.retry_after {
            r.headers_mut().insert("retry-after", HeaderValue::from(s));
        }
        r
    }
}

pub type ApiResult = Result<Resp, ApiError>;

pub fn json<T: Serialize + ?Sized>(status: StatusCode, v: &T) -> Resp {
    let body = serde_json::to_vec(v).expect("serializable");
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r.headers_mut().insert("cache-control", HeaderValue::from_static("no-store"));
    r
}

pub fn ok<T: Serialize + ?Sized>(v: &T) -> ApiResult {
    Ok(json(StatusCode::OK, v))
}

pub fn text(status: StatusCode, content_type: &'static str, body: impl Into<Bytes>) -> Resp {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    r.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

/// Headers every answer carries: the pages load nothing from elsewhere and cannot be framed.
pub fn add_security_headers(h: &mut HeaderMap) {
    h.insert(
        "content-security-policy",
        HeaderValue::from_static(
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; \
             base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
        ),
    );
    h.insert("x-content-type-options", HeaderValue::from_static("nosniff"));
    h.insert("x-frame-options", HeaderValue::from_static("DENY"));
    h.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    h.insert("cross-origin-opener-policy", HeaderValue::from_static("same-origin"));
    h.insert("cross-origin-resource-policy", HeaderValue::from_static("same-origin"));
}

/// The value of cookie `name` from the request's `Cookie` headers.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    for v in headers.get_all(hyper::header::COOKIE) {
        let Ok(s) = v.to_str() else { continue };
        for part in s.split(';') {
            if let Some((k, v)) = part.trim().split_once('=') {
                if k == name {
                    return Some(v.to_string());
                }
            }
        }
    }
    None
}

pub fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// Reads the whole body, refusing more than `limit` bytes (by `Content-Length` before reading a
/// byte, and while reading for chunked bodies). An empty body is `Ok(None)`.
pub async fn read_body(req: Request<Incoming>, limit: usize) -> Result<Option<(HeaderMap, Bytes)>, ApiError> {
    let too_large = || ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, format!("the request is too large (at most {limit} bytes)"));
    if let Some(n) = header(req.headers(), CONTENT_LENGTH.as_str()) {
        match n.parse::<u64>() {
            Ok(n) if n > limit as u64 => return Err(too_large()),
            Ok(_) => {}
            Err(_) => return Err(ApiError::bad_request("bad Content-Length")),
        }
    }
    let (parts, body) = req.into_parts();
    // A body trickling in byte by byte must not hold a connection slot for ever.
    let read = tokio::time::timeout(BODY_TIMEOUT, Limited::new(body, limit).collect()).await;
    let bytes = match read {
        Err(_) => return Err(ApiError::new(StatusCode::REQUEST_TIMEOUT, "the request body did not arrive in time")),
        Ok(Ok(c)) => c.to_bytes(),
        Ok(Err(e)) if e.downcast_ref::<LengthLimitError>().is_some() => return Err(too_large()),
        Ok(Err(_)) => return Err(ApiError::bad_request("the request body could not be read")),
    };
    if bytes.is_empty() {
        Ok(None)
    } else {
        Ok(Some((parts.headers, bytes)))
    }
}

/// The JSON body as `T`; it must be declared `application/json` (which a cross-site form cannot
/// send without the browser asking first).
pub async fn read_json<T: DeserializeOwned>(req: Request<Incoming>, limit: usize) -> Result<T, ApiError> {
    match read_json_opt(req, limit).await? {
        Some(v) => Ok(v),
        None => Err(ApiError::bad_request("the request needs a JSON body")),
    }
}

pub async fn read_json_opt<T: DeserializeOwned>(req: Request<Incoming>, limit: usize) -> Result<Option<T>, ApiError> {
    let Some((headers, bytes)) = read_body(req, limit).await? else { return Ok(None) };
    let ct = header(&headers, CONTENT_TYPE.as_str()).unwrap_or("");
    if ct.split(';').next().map(str::trim).map(|m| m.eq_ignore_ascii_case("application/json")) != Some(true) {
        return Err(ApiError::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, "send the body as application/json"));
    }
    serde_json::from_slice(&bytes).map(Some).map_err(|e| ApiError::bad_request(format!("the JSON body is not as expected: {e}")))
}

/// Decodes `%XX` escapes of one path segment; refuses invalid escapes, non-UTF-8, control
/// characters and slashes (a segment never names a path).
pub fn decode_segment(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = b.get(i + 1..i + 3)?;
            let v = u8::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok()?;
            out.push(v);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    let s = String::from_utf8(out).ok()?;
    if s.is_empty() || s.len() > 128 || s.chars().any(|c| c.is_control() || c == '/' || c == '\\') || s == "." || s == ".." {
        return None;
    }
    Some(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments() {
        assert_eq!(decode_segment("inv01").as_deref(), Some("inv01"));
        assert_eq!(decode_segment("pump%201").as_deref(), Some("pump 1"));
        assert_eq!(decode_segment("caf%C3%A9").as_deref(), Some("café"));
        assert_eq!(decode_segment("%2e%2e"), None);
        assert_eq!(decode_segment("a%2fb"), None);
        assert_eq!(decode_segment("a%00"), None);
        assert_eq!(decode_segment("%zz"), None);
        assert_eq!(decode_segment("%4"), None);
        assert_eq!(decode_segment("%ff"), None);
        assert_eq!(decode_segment(""), None);
    }

    #[test]
    fn cookies() {
        let mut h = HeaderMap::new();
        h.append(hyper::header::COOKIE, HeaderValue::from_static("a=1; enos_session=abc; b=2"));
        assert_eq!(cookie(&h, "enos_session").as_deref(), Some("abc"));
        assert_eq!(cookie(&h, "enos"), None);
    }
}
