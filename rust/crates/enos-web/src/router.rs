//! Every request enters here: the `Host` check, the route table (path, method, who may call
//! it), the access guard, then the handler. See `docs/web-api.md` for the contract.

use crate::access::{guard, Access, Caller};
use crate::accounts::Role;
use crate::http::{self, add_security_headers, decode_segment, header, ApiError, ApiResult, Resp};
use crate::state::{App, Conn};
use crate::{assets, devcfg, devices, live, maint, metrics, packages, signin, users};
use hyper::body::Incoming;
use hyper::{Method, Request, StatusCode};
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;

type Fut<'a> = Pin<Box<dyn Future<Output = ApiResult> + Send + 'a>>;

enum Handler<'a> {
    Open(Box<dyn FnOnce(Request<Incoming>) -> Fut<'a> + Send + 'a>),
    Signed(Box<dyn FnOnce(Request<Incoming>, Caller) -> Fut<'a> + Send + 'a>),
}

/// One method of one path: who may call it, and what runs.
struct Route<'a> {
    method: Method,
    access: Access,
    handler: Handler<'a>,
}

/// Anyone; `same_origin`: only from the web center's own pages (a sign-in, a setup).
fn open<'a, F, R>(method: Method, same_origin: bool, f: F) -> Route<'a>
where
    F: FnOnce(Request<Incoming>) -> R + Send + 'a,
    R: Future<Output = ApiResult> + Send + 'a,
{
    let access = if same_origin { Access::OpenChange } else { Access::Open };
    Route { method, access, handler: Handler::Open(Box::new(move |req| Box::pin(f(req)))) }
}

/// A session with at least `role`.
fn read<'a, F, R>(method: Method, role: Role, f: F) -> Route<'a>
where
    F: FnOnce(Request<Incoming>, Caller) -> R + Send + 'a,
    R: Future<Output = ApiResult> + Send + 'a,
{
    Route { method, access: Access::Read(role), handler: Handler::Signed(Box::new(move |req, c| Box::pin(f(req, c)))) }
}

/// A session with at least `role`, from our own pages, with its CSRF token.
fn change<'a, F, R>(method: Method, role: Role, f: F) -> Route<'a>
where
    F: FnOnce(Request<Incoming>, Caller) -> R + Send + 'a,
    R: Future<Output = ApiResult> + Send + 'a,
{
    Route { method, access: Access::Change(role), handler: Handler::Signed(Box::new(move |req, c| Box::pin(f(req, c)))) }
}

/// Every request enters here.
pub async fn handle(app: Arc<App>, peer: SocketAddr, conn: Conn, mut req: Request<Incoming>) -> Result<Resp, std::convert::Infallible> {
    app.counters.requests.fetch_add(1, Ordering::Relaxed);
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    req.extensions_mut().insert(conn);
    let mut resp = match dispatch(&app, peer.ip(), req).await {
        Ok(r) => r,
        Err(e) => e.response(),
    };
    add_security_headers(resp.headers_mut());
    log::debug!("{} {method} {path} -> {}", peer.ip(), resp.status().as_u16());
    Ok(resp)
}

async fn dispatch(app: &App, peer: IpAddr, req: Request<Incoming>) -> ApiResult {
    if !app.host_allowed(header(req.headers(), "host")) {
        let shown: String = header(req.headers(), "host").unwrap_or("").chars().take(64).filter(|c| !c.is_control()).collect();
        return Err(ApiError::new(
            StatusCode::MISDIRECTED_REQUEST,
            format!("this gateway does not answer to the name {shown:?}: use its address, or add the name to tls.hostnames in web.toml"),
        ));
    }
    let path = req.uri().path().to_string();
    let seg: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let routes = table(app, peer, &seg, &path)?;
    // HEAD is answered as GET (hyper leaves the body out)
    let m = if req.method() == Method::HEAD { Method::GET } else { req.method().clone() };
    let allowed: Vec<String> = routes.iter().map(|r| r.method.to_string()).collect();
    let Some(route) = routes.into_iter().find(|r| r.method == m) else {
        return Err(ApiError::new(StatusCode::METHOD_NOT_ALLOWED, format!("use {} here", allowed.join(" or "))));
    };
    match (route.handler, guard(app, &req, route.access)?) {
        (Handler::Open(f), _) => f(req).await,
        (Handler::Signed(f), Some(caller)) => f(req, caller).await,
        (Handler::Signed(_), None) => {
            log::error!("the route {} {path} runs a signed-in handler without a session check", route.method);
            Err(ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "this route is declared wrongly (see the service log)"))
        }
    }
}

/// A path segment, percent-decoded; an undecodable one is a path that does not exist.
fn arg(s: &str) -> Result<String, ApiError> {
    decode_segment(s).ok_or_else(ApiError::not_found)
}

/// The route table: the methods of a path, each with the access it needs.
fn table<'a>(app: &'a App, peer: IpAddr, seg: &[&str], path: &str) -> Result<Vec<Route<'a>>, ApiError> {
    use Method as M;
    use Role::{Admin, Operator, Viewer};
    Ok(match seg {
        // sign-in and accounts
        ["api", "session"] => vec![open(M::GET, false, move |req| signin::session_info(app, req))],
        ["api", "setup"] => vec![open(M::POST, true, move |req| signin::setup(app, peer, req))],
        ["api", "login"] => vec![open(M::POST, true, move |req| signin::login(app, peer, req))],
        ["api", "logout"] => vec![change(M::POST, Viewer, move |req, c| signin::logout(app, req, c))],
        ["api", "password"] => vec![change(M::POST, Viewer, move |req, c| signin::change_password(app, peer, req, c))],
        ["api", "users"] => {
            vec![read(M::GET, Admin, move |_, _| users::list(app)), change(M::POST, Admin, move |req, c| users::create(app, req, c))]
        }
        ["api", "users", name] => {
            let name = arg(name)?;
            vec![change(M::DELETE, Admin, move |_, c| async move { users::delete(app, c, &name).await })]
        }
        // dashboard and control
        ["api", "status"] => vec![read(M::GET, Viewer, move |_, _| devices::status(app))],
        ["api", "devices"] => vec![read(M::GET, Viewer, move |_, _| devices::list(app))],
        ["api", "devices", id, "read"] => {
            let id = arg(id)?;
            vec![change(M::POST, Viewer, move |req, _| async move { devices::read(app, req, &id).await })]
        }
        ["api", "live"] => vec![read(M::GET, Viewer, move |_, _| live::all(app))],
        ["api", "devices", id, "writable"] => {
            let id = arg(id)?;
            vec![read(M::GET, Viewer, move |_, _| async move { devices::writable(app, &id).await })]
        }
        ["api", "devices", id, "points", point, "write"] => {
            let (id, point) = (arg(id)?, arg(point)?);
            vec![change(M::POST, Operator, move |req, c| async move { devices::write(app, req, c, &id, &point).await })]
        }
        // device configuration and engineering
        ["api", "config"] => vec![read(M::GET, Viewer, move |_, _| devcfg::get_config(app))],
        ["api", "protocols"] => vec![read(M::GET, Viewer, move |_, _| devcfg::protocols())],
        ["api", "device-models"] => vec![read(M::GET, Viewer, move |_, _| devcfg::device_models(app))],
        ["api", "plugins"] => vec![read(M::GET, Viewer, move |_, _| devcfg::plugins(app))],
        ["api", "points-csv"] => vec![change(M::POST, Admin, move |req, _| devcfg::parse_csv(req))],
        ["api", "devices", id, "config"] => {
            let id = arg(id)?;
            let (a, b) = (id.clone(), id.clone());
            vec![
                read(M::GET, Viewer, move |_, _| async move { devcfg::get_device(app, &id).await }),
                change(M::PUT, Admin, move |req, c| async move { devcfg::put_device(app, req, c, &a).await }),
                change(M::DELETE, Admin, move |_, c| async move { devcfg::delete_device(app, c, &b).await }),
            ]
        }
        ["api", "devices", id, "points.csv"] => {
            let id = arg(id)?;
            vec![read(M::GET, Viewer, move |_, _| async move { devcfg::export_csv(app, &id).await })]
        }
        ["api", "devices", id, "raw-read"] => {
            let id = arg(id)?;
            vec![change(M::POST, Viewer, move |req, c| async move { devcfg::raw_read(app, req, c, &id).await })]
        }
        ["api", "devices", id, "last-sent"] => {
            let id = arg(id)?;
            vec![read(M::GET, Viewer, move |_, _| async move { devcfg::last_sent(app, &id).await })]
        }
        ["api", "devices", id, "live"] => {
            let id = arg(id)?;
            vec![read(M::GET, Viewer, move |req, _| async move { devcfg::live(app, req, &id).await })]
        }
        // an OPC UA device's server certificates (trusting a server is an admin's decision)
        ["api", "devices", id, "opcua-certificates"] => {
            let id = arg(id)?;
            vec![read(M::GET, Admin, move |_, _| async move { devcfg::opcua_certificates(app, &id).await })]
        }
        ["api", "devices", id, "opcua-certificates", sha256, action @ ("trust" | "remove")] => {
            let (id, sha256, trust) = (arg(id)?, arg(sha256)?, *action == "trust");
            vec![change(M::POST, Admin, move |_, c| async move { devcfg::opcua_certificate(app, c, &id, &sha256, trust).await })]
        }
        // cloud settings and maintenance
        ["api", "cloud"] => vec![
            read(M::GET, Viewer, move |_, _| maint::get_cloud(app)),
            change(M::POST, Admin, move |req, c| maint::set_cloud(app, req, c)),
        ],
        ["api", "cloud", "test"] => vec![change(M::POST, Admin, move |req, c| maint::test_cloud(app, req, c))],
        ["api", "update"] => vec![read(M::GET, Viewer, move |_, _| maint::update_status(app))],
        ["api", "update", "upload"] => vec![change(M::POST, Admin, move |req, c| maint::upload(app, req, c))],
        ["api", "logs"] => vec![read(M::GET, Admin, move |req, _| maint::logs(req))],
        ["api", "services", name, "restart"] => {
            let name = arg(name)?;
            vec![change(M::POST, Admin, move |_, c| async move { maint::restart(app, c, &name).await })]
        }
        ["api", "system"] => vec![read(M::GET, Viewer, move |_, _| maint::system(app))],
        ["api", "system", "reboot"] => vec![change(M::POST, Admin, move |_, c| maint::reboot(app, c))],
        ["api", "diagnostics"] => vec![read(M::GET, Admin, move |_, c| maint::diagnostics(app, c))],
        // resource packages (docs/packages.md)
        ["api", "packages"] => vec![
            read(M::GET, Viewer, move |_, _| packages::list(app)),
            change(M::POST, Admin, move |req, c| packages::install(app, req, c)),
        ],
        ["api", ..] => return Err(ApiError::not_found()),
        ["metrics"] => {
            let run = move || async move {
                let st = app.bus.status().await;
                Ok(http::text(StatusCode::OK, "text/plain; version=0.0.4; charset=utf-8", metrics::render(app, &st)))
            };
            if app.cfg.metrics_public {
                vec![open(M::GET, false, move |_| run())]
            } else {
                vec![read(M::GET, Viewer, move |_, _| run())]
            }
        }
        // the pages
        _ => {
            let path = path.to_string();
            vec![open(M::GET, false, move |req| async move {
                let inm = header(req.headers(), "if-none-match");
                assets::serve(&path, inm).ok_or_else(ApiError::not_found)
            })]
        }
    })
}
