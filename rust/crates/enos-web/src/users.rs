//! Accounts, for admins: list, create, remove.

use crate::access::Caller;
use crate::accounts::{self, Role};
use crate::http::{json, ok, read_json, ApiError, ApiResult};
use crate::signin::{hash, invalid};
use crate::state::App;
use hyper::body::Incoming;
use hyper::{Request, StatusCode};
use serde::Deserialize;

/// `GET /api/users`.
pub async fn list(app: &App) -> ApiResult {
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

/// `POST /api/users`.
pub async fn create(app: &App, req: Request<Incoming>, c: Caller) -> ApiResult {
    let u: NewUser = read_json(req, app.body_limit()).await?;
    let role = Role::parse(&u.role).ok_or_else(|| ApiError::bad_request("role must be viewer, operator or admin"))?;
    accounts::check_name(&u.name).map_err(invalid)?;
    accounts::check_password(&u.password, app.cfg.auth.min_password_len).map_err(invalid)?;
    if app.accounts.lock().await.get(&u.name).is_some() {
        return Err(ApiError::new(StatusCode::CONFLICT, format!("an account named {:?} exists already", u.name)));
    }
    let h = hash(app, u.password).await?;
    app.accounts.lock().await.add(&u.name, role, h).map_err(invalid)?;
    log::info!("{:?} created the {} account {:?}", c.session.user, role.as_str(), u.name);
    Ok(json(StatusCode::CREATED, &serde_json::json!({ "name": u.name, "role": role })))
}

/// `DELETE /api/users/{name}`: the account and its sessions.
pub async fn delete(app: &App, c: Caller, name: &str) -> ApiResult {
    if name == c.session.user {
        return Err(ApiError::bad_request("you cannot remove your own account"));
    }
    let mut accts = app.accounts.lock().await;
    if accts.get(name).is_none() {
        return Err(ApiError::new(StatusCode::NOT_FOUND, format!("no account named {name:?}")));
    }
    accts.remove(name).map_err(invalid)?;
    app.sessions.lock().unwrap().remove_user(name);
    log::info!("{:?} removed the account {name:?}", c.session.user);
    ok(&serde_json::json!({ "ok": true }))
}
