//! The router and the handlers: sign-in, accounts, and the JSON API over the services' D-Bus
//! interfaces. See `docs/web-api.md` for the contract.

use crate::accounts::{self, Accounts, Role};
use crate::auth::{secret_eq, Limiter, Refused, Session, Sessions};
use crate::config::WebConfig;
use crate::http::{
    self, add_security_headers, cookie, decode_segment, header, json, ok, read_json, read_json_opt, ApiError, ApiResult, Resp,
};
use crate::metrics;
use crate::setup_code::SetupCode;
use enos_bus::{
    CollectorProxy, CollectorStats, DeviceStatus, OtaProxy, PointReading, UplinkInspectProxy, UplinkProxy, UplinkSettingsProxy,
    UplinkStatus, WriteOutcome,
};
use hyper::body::Incoming;
use hyper::header::HeaderValue;
use hyper::{Method, Request, StatusCode};
use serde::Deserialize;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Default)]
pub struct Counters {
    pub requests: AtomicU64,
    pub signins_ok: AtomicU64,
    pub signins_failed: AtomicU64,
    pub lockouts: AtomicU64,
    pub csrf_refused: AtomicU64,
    pub writes: AtomicU64,
    pub writes_failed: AtomicU64,
    pub reads: AtomicU64,
}

pub struct App {
    pub cfg: WebConfig,
    pub accounts: tokio::sync::Mutex<Accounts>,
    pub sessions: Mutex<Sessions>,
    pub limiter: Mutex<Limiter>,
    /// Argon2 runs at most this many at once (each takes ~19 MiB and a core for a moment).
    pub hashing: tokio::sync::Semaphore,
    pub collector: CollectorProxy<'static>,
    pub uplink: UplinkProxy<'static>,
    pub inspect: UplinkInspectProxy<'static>,
    pub ota: OtaProxy<'static>,
    pub cloud: UplinkSettingsProxy<'static>,
    /// The bus connection (systemd and logind calls, name owners).
    pub bus: zbus::Connection,
    /// `/proc/stat` totals at the previous `GET /api/system` (CPU use in between).
    pub cpu_last: Mutex<Option<(u64, u64)>>,
    pub counters: Counters,
    pub started: Instant,
    /// Names the box answers to besides IP addresses (lower case): `localhost`, its host name
    /// (and `<name>.local`), `tls.hostnames`. Other `Host` headers are refused: that stops DNS
    /// rebinding, where a page of another site reaches the box under that site's name.
    pub host_names: Vec<String>,
    /// Device changes are read-modify-write of the collector's configuration: one at a time.
    pub config_edit: tokio::sync::Mutex<()>,
    /// While the box is unclaimed: the code a setup over the network must carry.
    pub setup_code: Mutex<Option<SetupCode>>,
    /// Of the HTTPS certificate, shown on the sign-in page (the kiosk) to compare with the browser's.
    pub tls_fingerprint: Option<String>,
}

impl App {
    pub async fn new(
        cfg: WebConfig,
        accounts: Accounts,
        setup_code: Option<SetupCode>,
        tls_fingerprint: Option<String>,
        bus: &zbus::Connection,
    ) -> anyhow::Result<App> {
        let collector = CollectorProxy::builder(bus).cache_properties(zbus::proxy::CacheProperties::No).build().await?;
        let uplink = UplinkProxy::builder(bus).cache_properties(zbus::proxy::CacheProperties::No).build().await?;
        let inspect = UplinkInspectProxy::builder(bus).cache_properties(zbus::proxy::CacheProperties::No).build().await?;
        let ota = OtaProxy::builder(bus).cache_properties(zbus::proxy::CacheProperties::No).build().await?;
        let cloud = UplinkSettingsProxy::builder(bus).cache_properties(zbus::proxy::CacheProperties::No).build().await?;
        let a = &cfg.auth;
        let mut host_names = vec!["localhost".to_string()];
        if let Some(h) = crate::tls::host_name() {
            host_names.push(format!("{h}.local"));
            host_names.push(h);
        }
        host_names.extend(cfg.tls.hostnames.iter().filter(|h| h.parse::<IpAddr>().is_err()).cloned());
        host_names.iter_mut().for_each(|h| h.make_ascii_lowercase());
        Ok(App {
            host_names,
            sessions: Mutex::new(Sessions::new(
                Duration::from_secs(a.session_idle_minutes * 60),
                Duration::from_secs(a.session_max_hours * 3600),
            )),
            limiter: Mutex::new(Limiter::new(a.max_failed_signins, Duration::from_secs(a.lockout_s))),
            hashing: tokio::sync::Semaphore::new(2),
            accounts: tokio::sync::Mutex::new(accounts),
            collector,
            uplink,
            inspect,
            ota,
            cloud,
            bus: bus.clone(),
            cpu_last: Mutex::new(None),
            counters: Counters::default(),
            config_edit: tokio::sync::Mutex::new(()),
            setup_code: Mutex::new(setup_code),
            tls_fingerprint,
            started: Instant::now(),
            cfg,
        })
    }

    fn session_of(&self, req: &Request<Incoming>) -> Option<(String, Session)> {
        let token = cookie(req.headers(), cookie_name(conn(req).tls))?;
        if token.len() != 64 {
            return None;
        }
        let s = self.sessions.lock().unwrap().get(&token, Instant::now())?;
        Some((token, s))
    }

    /// The caller's session, with at least `role`; for a change (`change = true`) also the
    /// session's CSRF token in `X-CSRF-Token` and no cross-site origin.
    pub(crate) fn require(&self, req: &Request<Incoming>, role: Role, change: bool) -> Result<(String, Session), ApiError> {
        let Some((token, s)) = self.session_of(req) else {
            return Err(ApiError::new(StatusCode::UNAUTHORIZED, "sign in first (no session, or it has expired)"));
        };
        if change {
            same_origin(req)?;
            let sent = header(req.headers(), "x-csrf-token").unwrap_or("");
            if sent.is_empty() || !secret_eq(sent, &s.csrf) {
                self.counters.csrf_refused.fetch_add(1, Ordering::Relaxed);
                return Err(ApiError::forbidden("the request lacks this session's CSRF token (reload the page)"));
            }
        }
        if s.role < role {
            return Err(ApiError::forbidden(format!(
                "the {} role may not do this; it needs {} rights",
                s.role.as_str(),
                if role == Role::Admin { "admin" } else { "operator or admin" }
            )));
        }
        Ok((token, s))
    }

    /// Whether the `Host` header names this box: an IP address, or one of `host_names`.
    pub fn host_allowed(&self, host: Option<&str>) -> bool {
        let Some(host) = host else { return false };
        let name = if let Some(rest) = host.strip_prefix('[') {
            return rest.split_once(']').is_some_and(|(ip, port)| {
                ip.parse::<std::net::Ipv6Addr>().is_ok()
                    && (port.is_empty() || port.strip_prefix(':').is_some_and(|p| p.parse::<u16>().is_ok()))
            });
        } else {
            match host.rsplit_once(':') {
                Some((n, port)) if port.parse::<u16>().is_ok() => n,
                Some(_) => return false,
                None => host,
            }
        };
        let name = name.strip_suffix('.').unwrap_or(name);
        name.parse::<std::net::Ipv4Addr>().is_ok() || self.host_names.iter().any(|n| n.eq_ignore_ascii_case(name))
    }

    pub(crate) fn bus_timeout(&self) -> Duration {
        Duration::from_secs(self.cfg.limits.bus_timeout_s)
    }

    pub(crate) fn device_timeout(&self) -> Duration {
        Duration::from_secs(self.cfg.limits.device_timeout_s)
    }

    pub(crate) fn body_limit(&self) -> usize {
        self.cfg.limits.max_body_bytes
    }
}

/// The connection a request came on, put into its extensions by `handle`.
#[derive(Debug, Clone, Copy)]
pub struct Conn {
    /// Over TLS: the session cookie gets `Secure` and the `__Host-` prefix.
    pub tls: bool,
    /// On a listener only the box itself reaches (the kiosk, or plain HTTP on loopback): the
    /// person is at the box, so claiming it needs no setup code and sign-in failures of the
    /// network never lock them out.
    pub local: bool,
}

fn conn(req: &Request<Incoming>) -> Conn {
    *req.extensions().get::<Conn>().expect("set by handle")
}

pub fn cookie_name(tls: bool) -> &'static str {
    if tls {
        "__Host-enos_session"
    } else {
        "enos_session"
    }
}

fn set_cookie(tls: bool, token: &str) -> HeaderValue {
    let secure = if tls { "; Secure" } else { "" };
    HeaderValue::from_str(&format!("{}={token}; Path=/; HttpOnly; SameSite=Strict{secure}", cookie_name(tls))).expect("hex token")
}

fn clear_cookie(tls: bool) -> HeaderValue {
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

/// Every request enters here.
pub async fn handle(app: Arc<App>, peer: SocketAddr, conn: Conn, mut req: Request<Incoming>) -> Result<Resp, std::convert::Infallible> {
    app.counters.requests.fetch_add(1, Ordering::Relaxed);
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    req.extensions_mut().insert(conn);
    let mut resp = match route(&app, peer.ip(), req).await {
        Ok(r) => r,
        Err(e) => e.response(),
    };
    add_security_headers(resp.headers_mut());
    log::debug!("{} {method} {path} -> {}", peer.ip(), resp.status().as_u16());
    Ok(resp)
}

async fn route(app: &App, peer: IpAddr, req: Request<Incoming>) -> ApiResult {
    if !app.host_allowed(header(req.headers(), "host")) {
        let shown: String = header(req.headers(), "host").unwrap_or("").chars().take(64).filter(|c| !c.is_control()).collect();
        return Err(ApiError::new(
            StatusCode::MISDIRECTED_REQUEST,
            format!("this gateway does not answer to the name {shown:?}: use its address, or add the name to tls.hostnames in web.toml"),
        ));
    }
    let path = req.uri().path().to_string();
    let m = req.method().clone();
    let seg: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let is = |allowed: &Method| {
        if m == *allowed || (allowed == Method::GET && m == Method::HEAD) {
            Ok(())
        } else {
            Err(ApiError::new(StatusCode::METHOD_NOT_ALLOWED, format!("use {allowed} here")))
        }
    };
    match seg.as_slice() {
        ["api", "session"] => {
            is(&Method::GET)?;
            session_info(app, &req).await
        }
        ["api", "setup"] => {
            is(&Method::POST)?;
            setup(app, peer, req).await
        }
        ["api", "login"] => {
            is(&Method::POST)?;
            login(app, peer, req).await
        }
        ["api", "logout"] => {
            is(&Method::POST)?;
            logout(app, req)
        }
        ["api", "password"] => {
            is(&Method::POST)?;
            change_password(app, peer, req).await
        }
        ["api", "users"] if m == Method::POST => create_user(app, req).await,
        ["api", "users"] => {
            is(&Method::GET)?;
            list_users(app, req).await
        }
        ["api", "users", name] => {
            is(&Method::DELETE)?;
            let name = decode_segment(name).ok_or_else(ApiError::not_found)?;
            delete_user(app, req, &name).await
        }
        ["api", "status"] => {
            is(&Method::GET)?;
            app.require(&req, Role::Viewer, false)?;
            ok(&status(app).await)
        }
        ["api", "devices"] => {
            is(&Method::GET)?;
            app.require(&req, Role::Viewer, false)?;
            devices(app).await
        }
        ["api", "devices", id, "read"] => {
            is(&Method::POST)?;
            let id = decode_segment(id).ok_or_else(ApiError::not_found)?;
            read_device(app, req, &id).await
        }
        ["api", "devices", id, "points", point, "write"] => {
            is(&Method::POST)?;
            let id = decode_segment(id).ok_or_else(ApiError::not_found)?;
            let point = decode_segment(point).ok_or_else(ApiError::not_found)?;
            write_point(app, req, &id, &point).await
        }
        ["api", "config"] => {
            is(&Method::GET)?;
            crate::devcfg::get_config(app, req).await
        }
        ["api", "device-models"] => {
            is(&Method::GET)?;
            crate::devcfg::device_models(app, req).await
        }
        ["api", "points-csv"] => {
            is(&Method::POST)?;
            crate::devcfg::parse_csv(app, req).await
        }
        ["api", "devices", id, "config"] => {
            let id = decode_segment(id).ok_or_else(ApiError::not_found)?;
            match m {
                Method::PUT => crate::devcfg::put_device(app, req, &id).await,
                Method::DELETE => crate::devcfg::delete_device(app, req, &id).await,
                _ => {
                    is(&Method::GET)?;
                    crate::devcfg::get_device(app, req, &id).await
                }
            }
        }
        ["api", "devices", id, "points.csv"] => {
            is(&Method::GET)?;
            let id = decode_segment(id).ok_or_else(ApiError::not_found)?;
            crate::devcfg::export_csv(app, req, &id).await
        }
        ["api", "devices", id, "raw-read"] => {
            is(&Method::POST)?;
            let id = decode_segment(id).ok_or_else(ApiError::not_found)?;
            crate::devcfg::raw_read(app, req, &id).await
        }
        ["api", "devices", id, "last-sent"] => {
            is(&Method::GET)?;
            let id = decode_segment(id).ok_or_else(ApiError::not_found)?;
            crate::devcfg::last_sent(app, req, &id).await
        }
        ["api", "devices", id, "live"] => {
            is(&Method::GET)?;
            let id = decode_segment(id).ok_or_else(ApiError::not_found)?;
            crate::devcfg::live(app, req, &id).await
        }
        ["api", "cloud"] if m == Method::POST => crate::maint::set_cloud(app, req).await,
        ["api", "cloud"] => {
            is(&Method::GET)?;
            crate::maint::get_cloud(app, req).await
        }
        ["api", "cloud", "test"] => {
            is(&Method::POST)?;
            crate::maint::test_cloud(app, req).await
        }
        ["api", "update"] => {
            is(&Method::GET)?;
            crate::maint::update_status(app, req).await
        }
        ["api", "update", "upload"] => {
            is(&Method::POST)?;
            crate::maint::upload(app, req).await
        }
        ["api", "logs"] => {
            is(&Method::GET)?;
            crate::maint::logs(app, req).await
        }
        ["api", "services", name, "restart"] => {
            is(&Method::POST)?;
            let name = decode_segment(name).ok_or_else(ApiError::not_found)?;
            crate::maint::restart(app, req, &name).await
        }
        ["api", "system"] => {
            is(&Method::GET)?;
            crate::maint::system(app, req).await
        }
        ["api", "system", "reboot"] => {
            is(&Method::POST)?;
            crate::maint::reboot(app, req).await
        }
        ["api", "diagnostics"] => {
            is(&Method::GET)?;
            crate::maint::diagnostics(app, req).await
        }
        ["api", ..] => Err(ApiError::not_found()),
        ["metrics"] => {
            is(&Method::GET)?;
            if !app.cfg.metrics_public {
                app.require(&req, Role::Viewer, false)?;
            }
            let st = status(app).await;
            Ok(http::text(StatusCode::OK, "text/plain; version=0.0.4; charset=utf-8", metrics::render(app, &st)))
        }
        _ => {
            is(&Method::GET)?;
            let inm = header(req.headers(), "if-none-match");
            crate::assets::serve(&path, inm).ok_or_else(ApiError::not_found)
        }
    }
}

// ---- sign-in and accounts ----

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

async fn session_info(app: &App, req: &Request<Incoming>) -> ApiResult {
    let tls = conn(req).tls;
    if let Some((_, s)) = app.session_of(req) {
        return ok(&session_doc(app, tls, &s));
    }
    let setup_required = app.accounts.lock().await.is_empty();
    ok(&serde_json::json!({
        "setup_required": setup_required,
        // over the network, claiming the box needs the one-time code from its label or console
        "setup_code_required": setup_required && !conn(req).local,
        "signed_in": false,
        "tls": tls,
        "tls_fingerprint": app.tls_fingerprint,
        "min_password_len": app.cfg.auth.min_password_len,
    }))
}

/// Runs Argon2 on a blocking thread, at most two at once.
async fn hash(app: &App, password: String) -> Result<String, ApiError> {
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

fn invalid(e: accounts::AccountError) -> ApiError {
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
async fn setup(app: &App, peer: IpAddr, req: Request<Incoming>) -> ApiResult {
    same_origin(&req)?;
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

async fn login(app: &App, peer: IpAddr, req: Request<Incoming>) -> ApiResult {
    same_origin(&req)?;
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
    if !good {
        app.counters.signins_failed.fetch_add(1, Ordering::Relaxed);
        let locked = app.limiter.lock().unwrap().failed(&c.name, peer, Instant::now());
        if let Some(s) = locked {
            app.counters.lockouts.fetch_add(1, Ordering::Relaxed);
            log::warn!("failed sign-in as {shown:?} from {peer}; sign-in locked for {s} s");
        } else {
            log::warn!("failed sign-in as {shown:?} from {peer}");
        }
        return Err(ApiError::new(StatusCode::UNAUTHORIZED, "wrong account name or password"));
    }
    app.limiter.lock().unwrap().succeeded(&c.name, peer);
    app.counters.signins_ok.fetch_add(1, Ordering::Relaxed);
    log::info!("{shown:?} signed in from {peer}");
    Ok(signed_in(app, tls, &c.name, role.expect("checked")))
}

fn logout(app: &App, req: Request<Incoming>) -> ApiResult {
    let (token, s) = app.require(&req, Role::Viewer, true)?;
    app.sessions.lock().unwrap().remove(&token);
    log::info!("{:?} signed out", s.user);
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

/// Changes the caller's own password; every other session of the account ends.
async fn change_password(app: &App, peer: IpAddr, req: Request<Incoming>) -> ApiResult {
    let (_, s) = app.require(&req, Role::Viewer, true)?;
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

async fn list_users(app: &App, req: Request<Incoming>) -> ApiResult {
    app.require(&req, Role::Admin, false)?;
    let accts = app.accounts.lock().await;
    let list: Vec<_> = accts
        .list()
        .iter()
        .map(|a| serde_json::json!({ "name": a.name, "role": a.role, "created_ms": a.created_ms, "password_changed_ms": a.password_changed_ms }))
        .collect();
    ok(&list)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewUser {
    name: String,
    password: String,
    role: String,
}

async fn create_user(app: &App, req: Request<Incoming>) -> ApiResult {
    let (_, s) = app.require(&req, Role::Admin, true)?;
    let u: NewUser = read_json(req, app.body_limit()).await?;
    let role = Role::parse(&u.role).ok_or_else(|| ApiError::bad_request("role must be viewer, operator or admin"))?;
    accounts::check_name(&u.name).map_err(invalid)?;
    accounts::check_password(&u.password, app.cfg.auth.min_password_len).map_err(invalid)?;
    if app.accounts.lock().await.get(&u.name).is_some() {
        return Err(ApiError::new(StatusCode::CONFLICT, format!("an account named {:?} exists already", u.name)));
    }
    let h = hash(app, u.password).await?;
    app.accounts.lock().await.add(&u.name, role, h).map_err(invalid)?;
    log::info!("{:?} created the {} account {:?}", s.user, role.as_str(), u.name);
    Ok(json(StatusCode::CREATED, &serde_json::json!({ "name": u.name, "role": role })))
}

async fn delete_user(app: &App, req: Request<Incoming>, name: &str) -> ApiResult {
    let (_, s) = app.require(&req, Role::Admin, true)?;
    if name == s.user {
        return Err(ApiError::bad_request("you cannot remove your own account"));
    }
    let mut accts = app.accounts.lock().await;
    if accts.get(name).is_none() {
        return Err(ApiError::new(StatusCode::NOT_FOUND, format!("no account named {name:?}")));
    }
    accts.remove(name).map_err(invalid)?;
    app.sessions.lock().unwrap().remove_user(name);
    log::info!("{:?} removed the account {name:?}", s.user);
    ok(&serde_json::json!({ "ok": true }))
}

// ---- the services over D-Bus ----

/// A D-Bus call with a deadline, its failure in plain words.
pub(crate) async fn call<F>(what: &'static str, timeout: Duration, fut: F) -> Result<String, ApiError>
where
    F: std::future::Future<Output = zbus::Result<String>>,
{
    match tokio::time::timeout(timeout, fut).await {
        Err(_) => {
            Err(ApiError::new(StatusCode::GATEWAY_TIMEOUT, format!("the {what} service did not answer within {} s", timeout.as_secs())))
        }
        Ok(Ok(s)) => Ok(s),
        Ok(Err(e)) => Err(bus_error(what, e)),
    }
}

fn bus_error(what: &str, e: zbus::Error) -> ApiError {
    let (name, detail) = match &e {
        zbus::Error::MethodError(name, detail, _) => (name.as_str().to_string(), detail.clone().unwrap_or_default()),
        zbus::Error::FDO(f) => match f.as_ref() {
            zbus::fdo::Error::ServiceUnknown(m) => ("org.freedesktop.DBus.Error.ServiceUnknown".into(), m.clone()),
            zbus::fdo::Error::NameHasNoOwner(m) => ("org.freedesktop.DBus.Error.NameHasNoOwner".into(), m.clone()),
            zbus::fdo::Error::InvalidArgs(m) => ("org.freedesktop.DBus.Error.InvalidArgs".into(), m.clone()),
            other => (String::new(), other.to_string()),
        },
        other => (String::new(), other.to_string()),
    };
    match name.as_str() {
        "org.freedesktop.DBus.Error.ServiceUnknown" | "org.freedesktop.DBus.Error.NameHasNoOwner" => {
            ApiError::new(StatusCode::SERVICE_UNAVAILABLE, format!("the {what} service is not running"))
        }
        "org.freedesktop.DBus.Error.InvalidArgs" => ApiError::new(StatusCode::NOT_FOUND, detail),
        "org.freedesktop.DBus.Error.AccessDenied" => {
            ApiError::new(StatusCode::BAD_GATEWAY, format!("the bus policy does not let the web center call the {what} service"))
        }
        _ => ApiError::new(StatusCode::BAD_GATEWAY, format!("the {what} service failed: {detail}")),
    }
}

pub(crate) fn parse<T: serde::de::DeserializeOwned>(what: &str, s: &str) -> Result<T, ApiError> {
    serde_json::from_str(s)
        .map_err(|e| ApiError::new(StatusCode::BAD_GATEWAY, format!("the {what} service answered something unexpected: {e}")))
}

/// Everything the dashboard shows; a service that does not answer leaves its part `null` and
/// says why in `errors`.
pub struct Status {
    pub uplink: Result<UplinkStatus, String>,
    pub collector: Result<CollectorStats, String>,
    pub devices: Result<Vec<DeviceStatus>, String>,
}

pub async fn status(app: &App) -> Status {
    let t = app.bus_timeout();
    let (u, c, d) = tokio::join!(
        call("uplink", t, app.uplink.status()),
        call("collector", t, app.collector.stats()),
        call("collector", t, app.collector.list_devices())
    );
    Status {
        uplink: u.and_then(|s| parse("uplink", &s)).map_err(|e| e.message),
        collector: c.and_then(|s| parse("collector", &s)).map_err(|e| e.message),
        devices: d.and_then(|s| parse("collector", &s)).map_err(|e| e.message),
    }
}

impl serde::Serialize for Status {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut errors = serde_json::Map::new();
        for (k, e) in
            [("uplink", self.uplink.as_ref().err()), ("collector", self.collector.as_ref().err()), ("devices", self.devices.as_ref().err())]
        {
            if let Some(e) = e {
                errors.insert(k.into(), e.clone().into());
            }
        }
        serde_json::json!({
            "time_ms": enos_batch::now_ms(),
            "uplink": self.uplink.as_ref().ok(),
            "collector": self.collector.as_ref().ok(),
            "devices": self.devices.as_ref().ok(),
            "errors": errors,
        })
        .serialize(s)
    }
}

async fn devices(app: &App) -> ApiResult {
    let s = call("collector", app.bus_timeout(), app.collector.list_devices()).await?;
    let list: Vec<DeviceStatus> = parse("collector", &s)?;
    ok(&list)
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ReadRequest {
    #[serde(default)]
    points: Vec<String>,
}

fn quality_words(r: &PointReading) -> String {
    use enos_batch::Quality::*;
    let base = match r.quality {
        Good => "good",
        DeviceException => "the device answered with an error",
        CommFailure => "no answer from the device",
        DecodeError => "the answer does not decode as configured",
        Offline => "the device is offline",
    };
    match &r.error {
        Some(e) if r.quality != Good => format!("{base}: {e}"),
        _ => base.to_string(),
    }
}

/// Communication test: reads the points from the device now.
async fn read_device(app: &App, req: Request<Incoming>, id: &str) -> ApiResult {
    app.require(&req, Role::Viewer, true)?;
    let r: ReadRequest = read_json_opt(req, app.body_limit()).await?.unwrap_or_default();
    if r.points.len() > 1000 {
        return Err(ApiError::bad_request("at most 1000 points at once"));
    }
    app.counters.reads.fetch_add(1, Ordering::Relaxed);
    let names: Vec<&str> = r.points.iter().map(String::as_str).collect();
    let t0 = Instant::now();
    let s = call("collector", app.device_timeout(), app.collector.read_points(id, &names)).await?;
    let readings: Vec<PointReading> = parse("collector", &s)?;
    let out: Vec<_> = readings
        .iter()
        .map(|p| {
            let mut v = serde_json::to_value(p).expect("reading");
            v["text"] = quality_words(p).into();
            v
        })
        .collect();
    let good = readings.iter().filter(|p| p.quality == enos_batch::Quality::Good).count();
    ok(&serde_json::json!({
        "device": id,
        "took_ms": t0.elapsed().as_millis() as u64,
        "good": good,
        "total": readings.len(),
        "readings": out,
    }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WriteRequest {
    value: serde_json::Value,
}

/// Control: writes one point and returns the device's answer.
async fn write_point(app: &App, req: Request<Incoming>, id: &str, point: &str) -> ApiResult {
    let (_, s) = app.require(&req, Role::Operator, true)?;
    let w: WriteRequest = read_json(req, app.body_limit()).await?;
    if !(w.value.is_number() || w.value.is_boolean() || w.value.is_string()) {
        return Err(ApiError::bad_request("value must be a number, true/false or a string"));
    }
    let value = w.value.to_string();
    app.counters.writes.fetch_add(1, Ordering::Relaxed);
    let t0 = Instant::now();
    let res = call("collector", app.device_timeout(), app.collector.write_point(id, point, &value)).await;
    let outcome: WriteOutcome = match res {
        Ok(s) => parse("collector", &s)?,
        Err(e) => {
            app.counters.writes_failed.fetch_add(1, Ordering::Relaxed);
            log::warn!("write by {:?}: {id}.{point} = {value}: {}", s.user, e.message);
            return Err(e);
        }
    };
    if !outcome.ok {
        app.counters.writes_failed.fetch_add(1, Ordering::Relaxed);
    }
    log::info!("write by {:?}: {id}.{point} = {value}: {}", s.user, outcome.message);
    ok(&serde_json::json!({
        "device": id,
        "point": point,
        "value": w.value,
        "ok": outcome.ok,
        "failure": outcome.failure,
        "code": outcome.failure.map(|f| f.cloud_code()).unwrap_or(200),
        "message": outcome.message,
        "took_ms": t0.elapsed().as_millis() as u64,
    }))
}
