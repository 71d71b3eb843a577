//! Who may do what: the session cookie, roles, CSRF tokens and same-origin checks. The route
//! table declares an `Access` per route; `guard` is the one place it is applied.

use crate::accounts::Role;
use crate::auth::{secret_eq, Session};
use crate::http::{cookie, header, ApiError};
use crate::state::{App, Conn};
use hyper::body::Incoming;
use hyper::header::HeaderValue;
use hyper::{Request, StatusCode};
use std::sync::atomic::Ordering;
use std::time::Instant;

/// What a route asks of the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone (pages, the session probe, public metrics).
    Open,
    /// Anyone, but only from the web center's own pages (sign-in, setup): no cross-site request.
    OpenChange,
    /// A session with at least this role.
    Read(Role),
    /// A session with at least this role, from the web center's own pages, with the session's
    /// CSRF token in `X-CSRF-Token`.
    Change(Role),
}

/// The signed-in caller of a guarded route.
pub struct Caller {
    /// The session's key (its cookie), to end it.
    pub token: String,
    pub session: Session,
}

/// Applies `access` to the request: the caller when a session was required.
pub fn guard(app: &App, req: &Request<Incoming>, access: Access) -> Result<Option<Caller>, ApiError> {
    let role = match access {
        Access::Open => return Ok(None),
        Access::OpenChange => {
            same_origin(req)?;
            return Ok(None);
        }
        Access::Read(role) | Access::Change(role) => role,
    };
    let Some(caller) = session_of(app, req) else {
        return Err(ApiError::new(StatusCode::UNAUTHORIZED, "sign in first (no session, or it has expired)"));
    };
    if matches!(access, Access::Change(_)) {
        same_origin(req)?;
        let sent = header(req.headers(), "x-csrf-token").unwrap_or("");
        if sent.is_empty() || !secret_eq(sent, &caller.session.csrf) {
            app.counters.csrf_refused.fetch_add(1, Ordering::Relaxed);
            return Err(ApiError::forbidden("the request lacks this session's CSRF token (reload the page)"));
        }
    }
    if caller.session.role < role {
        return Err(ApiError::forbidden(format!(
            "the {} role may not do this; it needs {} rights",
            caller.session.role.as_str(),
            if role == Role::Admin { "admin" } else { "operator or admin" }
        )));
    }
    Ok(Some(caller))
}

/// The session the request's cookie names, if it is still open.
pub fn session_of(app: &App, req: &Request<Incoming>) -> Option<Caller> {
    let token = cookie(req.headers(), cookie_name(conn(req).tls))?;
    if token.len() != 64 {
        return None;
    }
    let session = app.sessions.lock().unwrap().get(&token, Instant::now())?;
    Some(Caller { token, session })
}

/// The connection the request came on (put there by the router).
pub fn conn(req: &Request<Incoming>) -> Conn {
    *req.extensions().get::<Conn>().expect("set by the router")
}

pub fn cookie_name(tls: bool) -> &'static str {
    if tls {
        "__Host-enos_session"
    } else {
        "enos_session"
    }
}

pub fn set_cookie(tls: bool, token: &str) -> HeaderValue {
    let secure = if tls { "; Secure" } else { "" };
    HeaderValue::from_str(&format!("{}={token}; Path=/; HttpOnly; SameSite=Strict{secure}", cookie_name(tls))).expect("hex token")
}

pub fn clear_cookie(tls: bool) -> HeaderValue {
    let secure = if tls { "; Secure" } else { "" };
    HeaderValue::from_str(&format!("{}=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict{secure}", cookie_name(tls))).expect("ascii")
}

/// A state-changing request from a page of another site is refused even before the CSRF check:
/// the browser says where it comes from in `Origin` / `Sec-Fetch-Site`.
fn same_origin(req: &Request<Incoming>) -> Result<(), ApiError> {
    if header(req.headers(), "sec-fetch-site").is_some_and(|v| v == "cross-site" || v == "same-site") {
        return Err(ApiError::forbidden("cross-site request refused"));
    }
    if let Some(origin) = header(req.headers(), "origin") {
        let host = header(req.headers(), "host").unwrap_or("");
        let o = origin.split_once("://").map(|(_, h)| h).unwrap_or("");
        if o.is_empty() || !o.eq_ignore_ascii_case(host) {
            return Err(ApiError::forbidden("cross-origin request refused"));
        }
    }
    Ok(())
}
