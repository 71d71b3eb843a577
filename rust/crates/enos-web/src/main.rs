//! enos-web: the local Web Configuration Center. A hyper server that serves its pages from the
//! binary and talks to the other services only over D-Bus.

mod access;
mod accounts;
mod assets;
mod auth;
mod bus;
mod config;
mod devcfg;
mod devices;
mod http;
mod live;
mod maint;
mod metrics;
mod own_bus;
mod packages;
mod quality;
mod router;
mod setup_code;
mod signin;
mod state;
mod tarball;
mod tls;
mod users;

use anyhow::{bail, Context};
use clap::Parser;
use config::WebConfig;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;

#[derive(Parser)]
#[command(version, about = "EnOS Edge web configuration center")]
struct Args {
    /// Config file (default: /data/enos/config/web/web.toml, else /etc/enos/web.toml; built-in
    /// defaults when neither exists).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Check the config file and exit.
    #[arg(long)]
    check: bool,
}

/// Argon2 takes 19 MiB per hash. After the first such block is freed, glibc raises its mmap
/// threshold and later blocks come from the heap arenas, which keep them: RSS grew by ~40 MiB
/// after two sign-ins. A fixed threshold keeps big blocks in mmap, handed back when freed.
fn return_big_blocks_to_the_kernel() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes an allocator tunable; called before any other thread exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 256 * 1024);
    }
}

fn main() {
    return_big_blocks_to_the_kernel();
    enos_runtime::run_service("enos-web", run);
}

fn load_config(path: Option<PathBuf>) -> anyhow::Result<(WebConfig, String)> {
    match path {
        Some(p) => Ok((WebConfig::load(&p)?, p.display().to_string())),
        None => {
            let p = enos_config::default_config_path("web");
            if p.exists() {
                Ok((WebConfig::load(&p)?, p.display().to_string()))
            } else {
                Ok((WebConfig::default(), "built-in defaults".into()))
            }
        }
    }
}

/// The state directory, private to the service.
fn prepare_state_dir(dir: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(dir).with_context(|| format!("{}: cannot create the state directory", dir.display()))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
        .with_context(|| format!("{}: cannot set mode 0700", dir.display()))?;
    Ok(())
}

/// Per-device provisioning: the first admin password from a file, used once.
fn provision(cfg: &WebConfig, accts: &mut accounts::Accounts) -> anyhow::Result<()> {
    let Some(file) = &cfg.auth.provisioning_file else { return Ok(()) };
    if !accts.is_empty() || !file.exists() {
        return Ok(());
    }
    let text = std::fs::read_to_string(file).with_context(|| format!("{}: cannot read the provisioning file", file.display()))?;
    let password = text.lines().next().unwrap_or("").to_string();
    if let Err(e) = accounts::check_password(&password, cfg.auth.min_password_len) {
        bail!("{}: the provisioned admin password is not acceptable: {e}", file.display());
    }
    accts.add("admin", accounts::Role::Admin, accounts::hash_password(&password)?).context("storing the provisioned admin account")?;
    match std::fs::remove_file(file) {
        Ok(()) => log::warn!("admin account created from the provisioning file {} (file removed)", file.display()),
        Err(e) => log::warn!("admin account created from the provisioning file {}; it could not be removed: {e}", file.display()),
    }
    Ok(())
}

async fn run() -> anyhow::Result<()> {
    let args = Args::parse();
    let (cfg, source) = load_config(args.config)?;
    if args.check {
        let kiosk = cfg.kiosk_listen.as_ref().map(|k| format!(", kiosk {k} plain HTTP")).unwrap_or_default();
        println!("{source}: ok (listen {}, {}{kiosk})", cfg.listen, if cfg.plain_http { "plain HTTP" } else { "HTTPS" });
        return Ok(());
    }
    prepare_state_dir(&cfg.state_dir)?;
    let mut accts = accounts::Accounts::open(&cfg.state_dir)?;
    provision(&cfg, &mut accts)?;
    let setup = if accts.is_empty() {
        let code = setup_code::SetupCode::prepare(cfg.auth.setup_code_file.as_deref(), &cfg.state_dir)?;
        let kiosk = if cfg.kiosk_listen.is_some() { "on the kiosk screen, or " } else { "" };
        log::warn!(
            "no account yet: set the admin password {kiosk}over the network with the one-time setup code {} (from {})",
            code.shown(),
            code.source
        );
        Some(code)
    } else {
        None
    };
    // Made now, so that the first sign-in with an unknown name takes no longer than the others.
    tokio::task::spawn_blocking(accounts::dummy_hash).await?;
    let (tls, fingerprint) = if cfg.plain_http {
        (None, None)
    } else {
        let (sc, print) = tls::server_config(&cfg)?;
        log::info!("TLS certificate SHA-256 fingerprint {print}");
        (Some(tokio_rustls::TlsAcceptor::from(sc)), Some(print))
    };
    let bus = enos_bus::connect().await.context("connecting to the bus (is dbus running? ENOS_BUS_ADDRESS?)")?;
    own_bus::serve(&bus).await;
    let addr = cfg.listen_addr();
    let listener = TcpListener::bind(addr).await.with_context(|| format!("listening on {addr}"))?;
    let kiosk = match cfg.kiosk_addr() {
        Some(k) => Some(TcpListener::bind(k).await.with_context(|| format!("listening on {k} (kiosk_listen)"))?),
        None => None,
    };
    let slots = Arc::new(tokio::sync::Semaphore::new(cfg.limits.max_connections));
    let kiosk_slots = Arc::new(tokio::sync::Semaphore::new(cfg.limits.kiosk_connections));
    // Plain HTTP is only ever on loopback (validated): whoever reaches it is on the box itself.
    let local = tls.is_none();
    let app = Arc::new(state::App::new(cfg, accts, setup, fingerprint, &bus).await?);
    log::info!(
        "serving on {}://{} ({} bytes of pages)",
        if tls.is_some() { "https" } else { "http" },
        listener.local_addr()?,
        assets::total_bytes()
    );
    tokio::spawn(accept_loop(listener, tls, local, app.clone(), slots));
    if let Some(k) = kiosk {
        log::info!("serving the kiosk on http://{}", k.local_addr()?);
        tokio::spawn(accept_loop(k, None, true, app.clone(), kiosk_slots));
    }
    enos_runtime::notify_ready();
    enos_runtime::shutdown_signal().await;
    enos_runtime::notify_stopping();
    log::info!("stopping");
    Ok(())
}

/// Accepts connections for ever; at most `slots` are served at once (each listener has its own).
/// `local`: the listener is reachable from the box itself only (loopback, plain HTTP).
async fn accept_loop(
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    local: bool,
    app: Arc<state::App>,
    slots: Arc<tokio::sync::Semaphore>,
) {
    loop {
        let permit = slots.clone().acquire_owned().await.expect("semaphore open");
        let (stream, peer) = match listener.accept().await {
            Ok(a) => a,
            Err(e) => {
                log::warn!("accept: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            let _permit = permit;
            match tls {
                None => serve(app, peer, state::Conn { tls: false, local }, stream).await,
                Some(acceptor) => match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(stream)).await {
                    Ok(Ok(s)) => serve(app, peer, state::Conn { tls: true, local }, s).await,
                    Ok(Err(e)) => log::debug!("{peer}: TLS handshake failed: {e}"),
                    Err(_) => log::debug!("{peer}: TLS handshake timed out"),
                },
            }
        });
    }
}

async fn serve<S: AsyncRead + AsyncWrite + Unpin + Send + 'static>(
    app: Arc<state::App>,
    peer: std::net::SocketAddr,
    conn: state::Conn,
    io: S,
) {
    let svc = service_fn(move |req| router::handle(app.clone(), peer, conn, req));
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(15))
        .max_buf_size(16 * 1024)
        .serve_connection(TokioIo::new(io), svc);
    if let Err(e) = conn.await {
        log::debug!("{peer}: {e}");
    }
}
