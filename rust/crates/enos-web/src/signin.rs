//! Sign-in: the session probe, claiming a fresh box, sign-in and out, a password change.

use crate::access::{clear_cookie, conn, session_of, set_cookie, Caller};
use crate::accounts::{self, Role};
use crate::auth::{Refused, Session};
use crate::http::{json, ok, read_json, ApiError, ApiResult, Resp};
use crate::state::{App, Conn};
use hyper::body::Incoming;
use hyper::{Request, StatusCode};
use serde::Deserialize;
use std::net::IpAddr;
use std::sync::atomic::Ordering;
use std::time::Instant;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Credentials {
    #[serde(default = "admin_name")]
    name: String,
    password: String,
}
fn admin_name() -> String {
    "admin".into()
}

/// `POST /api/setup`: the first admin account; over the network also the box's setup code.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SetupRequest {
    #[serde(default = "admin_name")]
    name: String,
    password: String,
    #[serde(default)]
    setup_code: Option<String>,
}

/// A sign-in (or setup) refused by the limiter, in words, with Retry-After.
fn refused(app: &App, r: Refused) -> ApiError {
    app.counters.signins_failed.fetch_add(1, Ordering::Relaxed);
    let (left, message) = match r {
        Refused::LockedOut(s) => (s, format!("too many failed sign-ins: try again in {s} s")),
        Refused::Busy(s) => {
            (s, format!("too many failed sign-ins from many addresses: sign-in over the network pauses; try again in {s} s"))
        }
    };
    ApiError { status: StatusCode::TOO_MANY_REQUESTS, message, retry_after: Some(left), details: None }
}

fn session_doc(app: &App, tls: bool, s: &Session) -> serde_json::Value {
    serde_json::json!({
        "setup_required": false,
        "signed_in": true,
        "user": s.user,
        "role": s.role,
        "csrf": s.csrf,
        "tls": tls,
        "min_password_len": app.cfg.auth.min_password_len,
    })
}

/// `GET /api/session`: who is signed in, or what the sign-in page must offer.
pub async fn session_info(app: &App, req: Request<Incoming>) -> ApiResult {
    let Conn { tls, local } = conn(&req);
    if let Some(c) = session_of(app, &req) {
        return ok(&session_doc(app, tls, &c.session));
    }
    let setup_required = app.accounts.lock().await.is_empty();
    ok(&serde_json::json!({
        "setup_required": setup_required,
        // over the network, claiming the box needs the one-time code from its label or console
        "setup_code_required": setup_required && !local,
        "signed_in": false,
        "tls": tls,
        "tls_fingerprint": app.tls_fingerprint,
        "min_password_len": app.cfg.auth.min_password_len,
    }))
}

/// Runs Argon2 on a blocking thread, at most two at once.
pub async fn hash(app: &App, password: String) -> Result<String, ApiError> {
    let _permit = app.hashing.acquire().await.map_err(|_| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "shutting down"))?;
    tokio::task::spawn_blocking(move || accounts::hash_password(&password))
        .await
        .map_err(|_| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "hashing failed"))?
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))
}

async fn verify(app: &App, password: String, hash: String) -> bool {
    let Ok(_permit) = app.hashing.acquire().await else { return false };
    tokio::task::spawn_blocking(move || accounts::verify_password(&password, &hash)).await.unwrap_or(false)
}

fn signed_in(app: &App, tls: bool, user: &str, role: Role) -> Resp {
    let (token, s) = app.sessions.lock().unwrap().create(user, role, Instant::now());
    let mut r = json(StatusCode::OK, &session_doc(app, tls, &s));
    r.headers_mut().insert(hyper::header::SET_COOKIE, set_cookie(tls, &token));
    r
}

/// An account the store refused, in words; a storage failure is logged, not shown.
pub fn invalid(e: accounts::AccountError) -> ApiError {
    match e {
        accounts::AccountError::Invalid(m) => ApiError::bad_request(m),
        e @ accounts::AccountError::Storage { .. } => {
            log::error!("{e}");
            ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "the accounts could not be saved (see the service log)")
        }
    }
}

/// First visit on an unclaimed box: sets the admin password and signs in. On the box's own
/// listener (kiosk) that is all; over the network the request must carry the setup code.
pub async fn setup(app: &App, peer: IpAddr, req: Request<Incoming>) -> ApiResult {
    let Conn { tls, local } = conn(&req);
    let c: SetupRequest = read_json(req, app.body_limit()).await?;
    let mut accts = app.accounts.lock().await;
    if !accts.is_empty() {
        return Err(ApiError::new(StatusCode::CONFLICT, "this box has an admin account already: sign in"));
    }
    if !local {
        let now = Instant::now();
        app.limiter.lock().unwrap().check("(setup)", peer, false, now).map_err(|r| refused(app, r))?;
        let good = match (app.setup_code.lock().unwrap().as_ref(), c.setup_code.as_deref()) {
            (Some(code), Some(given)) => code.matches(given),
            _ => false,
        };
        if !good {
            app.counters.signins_failed.fetch_add(1, Ordering::Relaxed);
            app.limiter.lock().unwrap().failed("(setup)", peer, now);
            log::warn!(
                "setup of the first admin account from {peer} refused: {} setup code",
                if c.setup_code.is_some() { "wrong" } else { "no" }
            );
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "to claim this box over the network, enter its one-time setup code (on the box's label, its screen \
                 or the web center's log); or set the password on the box's own screen",
            ));
        }
    }
    accounts::check_name(&c.name).map_err(invalid)?;
    accounts::check_password(&c.password, app.cfg.auth.min_password_len).map_err(invalid)?;
    let h = hash(app, c.password).await?;
    accts.add(&c.name, Role::Admin, h).map_err(invalid)?;
    if let Some(code) = app.setup_code.lock().unwrap().take() {
        code.spent();
    }
    let how = if local { "on the box itself" } else { "over the network with the setup code" };
    log::warn!("first admin account {:?} created from {peer} ({how})", c.name);
    Ok(signed_in(app, tls, &c.name, Role::Admin))
}

/// `POST /api/login`.
pub async fn login(app: &App, peer: IpAddr, req: Request<Incoming>) -> ApiResult {
    let Conn { tls, local } = conn(&req);
    let c: Credentials = read_json(req, app.body_limit()).await?;
    let now = Instant::now();
    app.limiter.lock().unwrap().check(&c.name, peer, local, now).map_err(|r| refused(app, r))?;
    let (hash, role) = {
        let accts = app.accounts.lock().await;
        if accts.is_empty() {
            return Err(ApiError::new(StatusCode::CONFLICT, "no account exists yet: set the admin password first"));
        }
        match accts.get(&c.name) {
            Some(a) => (a.password_hash.clone(), Some(a.role)),
            None => (accounts::dummy_hash().to_string(), None),
        }
    };
    let good = verify(app, c.password, hash).await && role.is_some();
    let shown = if accounts::check_name(&c.name).is_ok() { c.name.as_str() } else { "(not a valid name)" };
    let Some(role) = role.filter(|_| good) else {
        app.counters.signins_failed.fetch_add(1, Ordering::Relaxed);
        let locked = app.limiter.lock().unwrap().failed(&c.name, peer, Instant::now());
        if let Some(s) = locked {
            app.counters.lockouts.fetch_add(1, Ordering::Relaxed);
            log::warn!("failed sign-in as {shown:?} from {peer}; sign-in locked for {s} s");
        } else {
            log::warn!("failed sign-in as {shown:?} from {peer}");
        }
        return Err(ApiError::new(StatusCode::UNAUTHORIZED, "wrong account name or password"));
    };
    app.limiter.lock().unwrap().succeeded(&c.name, peer);
    app.counters.signins_ok.fetch_add(1, Ordering::Relaxed);
    log::info!("{shown:?} signed in from {peer}");
    Ok(signed_in(app, tls, &c.name, role))
}

/// `POST /api/logout`.
pub async fn logout(app: &App, req: Request<Incoming>, c: Caller) -> ApiResult {
    app.sessions.lock().unwrap().remove(&c.token);
    log::info!("{:?} signed out", c.session.user);
    let mut r = json(StatusCode::OK, &serde_json::json!({ "ok": true }));
    r.headers_mut().insert(hyper::header::SET_COOKIE, clear_cookie(conn(&req).tls));
    Ok(r)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PasswordChange {
    current: String,
    new: String,
}

/// `POST /api/password`: the caller's own password; every other session of the account ends.
pub async fn change_password(app: &App, peer: IpAddr, req: Request<Incoming>, c: Caller) -> ApiResult {
    let s = c.session;
    let Conn { tls, local } = conn(&req);
    let p: PasswordChange = read_json(req, app.body_limit()).await?;
    app.limiter.lock().unwrap().check(&s.user, peer, local, Instant::now()).map_err(|r| refused(app, r))?;
    accounts::check_password(&p.new, app.cfg.auth.min_password_len).map_err(invalid)?;
    let current = app.accounts.lock().await.get(&s.user).map(|a| a.password_hash.clone());
    let Some(current) = current else { return Err(ApiError::new(StatusCode::UNAUTHORIZED, "the account no longer exists")) };
    if !verify(app, p.current, current).await {
        app.limiter.lock().unwrap().failed(&s.user, peer, Instant::now());
        return Err(ApiError::forbidden("the current password is wrong"));
    }
    let h = hash(app, p.new).await?;
    app.accounts.lock().await.set_password(&s.user, h).map_err(invalid)?;
    app.sessions.lock().unwrap().remove_user(&s.user);
    log::info!("{:?} changed their password", s.user);
    Ok(signed_in(app, tls, &s.user, s.role))
}
