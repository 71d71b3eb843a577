//! One session to one server and its subscriptions.

use crate::order::{lock, Deliver, Ordered, Shared};
use crate::{pki, status::words, Error};
use futures::StreamExt;
use opcua::client::services::CreateMonitoredItems;
use opcua::client::{ClientBuilder, IdentityToken, Session, SessionConnectMode, SessionPollResult, UARequest};
use opcua::crypto::{CertificateStore, SecurityPolicy};
use opcua::types::{
    AttributeId, DataChangeFilter, DataChangeTrigger, DataValue, ExtensionObject, MessageSecurityMode, MonitoredItemCreateRequest,
    MonitoringMode, MonitoringParameters, NodeId, NumericRange, QualifiedName, ReadValueId, StatusCode, TimestampsToReturn, VariableId,
    Variant, WriteValue,
};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

const APP_NAME: &str = "EnOS Edge collector";
const APP_URI: &str = "urn:enos-edge:collector";

/// What the session needs to know, in async-opcua's types.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `opc.tcp://host:port/path`; also the URL the session uses, whatever URL the server
    /// advertises for itself (servers often name a host the gateway cannot resolve).
    pub endpoint: String,
    pub policy: SecurityPolicy,
    pub mode: MessageSecurityMode,
    pub identity: Identity,
    pub pki_dir: PathBuf,
    pub session_timeout: Duration,
    pub request_timeout: Duration,
    pub reconnect_min: Duration,
    pub reconnect_max: Duration,
}

#[derive(Clone)]
pub enum Identity {
    Anonymous,
    UserName {
        user: String,
        password: String,
    },
    /// A user certificate (DER or PEM) and its private key (PEM).
    Certificate {
        cert: PathBuf,
        key: PathBuf,
    },
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Identity::Anonymous => f.write_str("anonymous"),
            Identity::UserName { user, .. } => write!(f, "user {user}"),
            Identity::Certificate { cert, .. } => write!(f, "user certificate {}", cert.display()),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Deadband {
    Absolute(f64),
    Percent(f64),
}

/// A node to monitor. `namespace_uri` (an `nsu=` node id) replaces the node's namespace index
/// once the session knows the server's namespace array.
#[derive(Debug, Clone)]
pub struct Item {
    pub node: NodeId,
    pub namespace_uri: Option<String>,
    /// `None`: the publishing interval.
    pub sampling: Option<Duration>,
    pub queue_size: u32,
    pub deadband: Option<Deadband>,
}

#[derive(Clone)]
pub struct SubscriptionSpec {
    pub publishing_interval: Duration,
    pub items: Arc<dyn Items>,
}

/// The monitored items of a subscription, each made when the subscription is made (at every
/// new session), so that the caller keeps its nodes in one place and no copy is held here for
/// the session's life (the collector: its configuration; 10,000 items held as [`Item`]s were
/// 1 MB, twice).
pub trait Items: Send + Sync {
    fn len(&self) -> usize;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// The item at `index` (`0..len`), or why there is none (reported as the item refused).
    fn item(&self, index: usize) -> Result<Item, String>;
}

#[derive(Debug)]
pub enum Event {
    /// The session is up: `resumed` when the server still had it after a break (its
    /// subscriptions and their queued changes with it), else a new session whose subscriptions
    /// were transferred or created again.
    Up { resumed: bool },
    /// The connection was lost, or an attempt to connect failed, in words.
    Down { reason: String },
    /// The server refused to monitor an item (`subscription`, `item` index the specs).
    ItemRefused { subscription: usize, item: usize, reason: String },
    /// A change of a monitored item. `after_gap`: the first value of the item after a break in
    /// which changes may have been lost (the server lost the session, or no longer had what it
    /// sent to the dead connection): it is the value the server has now.
    Value { subscription: usize, item: usize, value: DataValue, after_gap: bool },
    /// After a break, the server no longer had `messages` notification messages of a
    /// subscription (its retransmission queue was full or the session was lost).
    Lost { subscription: usize, messages: u32 },
    /// This client gave up (the server's certificate changed): connect a new one.
    Ended { reason: String },
}

pub struct Client {
    pub(crate) session: Arc<Session>,
    /// Nodes per Read call: ours, or the server's MaxNodesPerRead when lower (kept once the
    /// server answered).
    per_read: tokio::sync::OnceCell<usize>,
    /// Ends the event loop (and with it the reconnect attempts) when the client is dropped.
    _close: opcua::client::SessionDropGuard,
}

impl Client {
    /// Asks the server for its endpoints, picks the configured one and starts the session and
    /// its event loop; the subscriptions are made at the first connect and kept by async-opcua
    /// across breaks. Fails only when there is no server to talk to or no matching endpoint
    /// (the caller tries again); everything later arrives as [`Event`]s.
    pub async fn connect(s: &Settings, subs: Arc<[SubscriptionSpec]>) -> Result<(Client, mpsc::UnboundedReceiver<Event>), Error> {
        // off the runtime: making the gateway's RSA key takes seconds (tens in a debug build),
        // during which a worker thread of the collector served no D-Bus call (the web center's
        // calls timed out while a new OPC UA device connected for the first time)
        let dir = s.pki_dir.clone();
        tokio::task::spawn_blocking(move || {
            pki::prepare(&dir)?;
            pki::ensure_own(&dir, APP_NAME, APP_URI)?;
            crate::trust::normalise_trusted(&dir).map(|_| ())
        })
        .await
        .map_err(|e| Error::Setup(format!("the certificate store could not be prepared: {e}")))?
        .map_err(Error::Setup)?;
        let mut client = ClientBuilder::new()
            .application_name(APP_NAME)
            .application_uri(APP_URI)
            .product_uri("urn:enos-edge")
            .create_sample_keypair(true)
            .pki_dir(&s.pki_dir)
            .trust_server_certs(false)
            .verify_server_certs(true)
            .session_retry_limit(-1)
            .session_retry_initial(s.reconnect_min)
            .session_retry_max(s.reconnect_max)
            .session_timeout(u32::try_from(s.session_timeout.as_millis()).unwrap_or(u32::MAX))
            .request_timeout(s.request_timeout)
            .session_name("enos-collector")
            // async-opcua's own remake after a server restart delivered nothing here (asyncua
            // 2.1 server); `pump` makes them afresh instead
            .recreate_subscriptions(false)
            // asyncua (and other servers) ignore MaxNotificationsPerPublish: a Publish response
            // carries every queued change, 10,000 items' first values at once, so the defaults
            // (arrays of 1,000, 320 kB messages) dropped the connection at every try
            // (BadDecodingError); room for every item's whole queue of a large device, bounded
            .max_array_length(MAX_ARRAY_LENGTH)
            .max_message_size(MAX_MESSAGE_BYTES)
            .max_chunk_count(MAX_MESSAGE_BYTES.div_ceil(65_535))
            .client()
            .map_err(|e| Error::Setup(format!("the OPC UA client settings cannot work: {}", e.join("; "))))?;
        let unreachable = |e: opcua::types::Error| Error::Unreachable { url: s.endpoint.clone(), why: words(e.status()) };
        // bounded: a peer that answers Hello with garbage otherwise holds the call forever
        let offered = tokio::time::timeout(s.request_timeout, client.get_server_endpoints_from_url(s.endpoint.as_str()))
            .await
            .map_err(|_| Error::Unreachable {
                url: s.endpoint.clone(),
                why: format!("no OPC UA answer to GetEndpoints within {} ms", s.request_timeout.as_millis()),
            })?
            .map_err(unreachable)?;
        let want = s.policy.to_uri();
        let Some(mut endpoint) = offered.iter().find(|e| e.security_policy_uri.as_ref() == want && e.security_mode == s.mode).cloned()
        else {
            let list: Vec<String> = offered
                .iter()
                .map(|e| format!("{} {}", SecurityPolicy::from_uri(e.security_policy_uri.as_ref()).to_str(), e.security_mode))
                .collect();
            return Err(Error::NoEndpoint {
                url: s.endpoint.clone(),
                policy: s.policy.to_str().into(),
                mode: s.mode.to_string(),
                offered: list.join(", "),
            });
        };
        endpoint.endpoint_url = s.endpoint.as_str().into();
        let identity = match &s.identity {
            Identity::Anonymous => IdentityToken::Anonymous,
            Identity::UserName { user, password } => IdentityToken::new_user_name(user.clone(), password.clone()),
            Identity::Certificate { cert, key } => {
                let c = CertificateStore::read_cert(cert).map_err(|e| Error::Setup(format!("user certificate {}: {e}", cert.display())))?;
                let k = CertificateStore::read_pkey(key).map_err(|e| Error::Setup(format!("user key {}: {e}", key.display())))?;
                IdentityToken::X509(Box::new(c), Box::new(k))
            }
        };
        let (session, event_loop) = client
            .connect_to_endpoint_directly(endpoint.clone(), identity)
            .map_err(|e| Error::Setup(format!("the session cannot start: {e}")))?;
        let (tx, rx) = mpsc::unbounded_channel();
        let close = session.close_on_drop();
        let server = Server {
            client,
            url: s.endpoint.clone(),
            certificate: endpoint.server_certificate,
            pki_dir: s.pki_dir.clone(),
            timeout: s.request_timeout,
        };
        tokio::spawn(pump(session.clone(), event_loop, subs, tx, server));
        Ok((Client { session, per_read: tokio::sync::OnceCell::new(), _close: close }, rx))
    }

    /// The node id on this server (an `nsu=` URI replaced by its namespace index).
    pub async fn resolve(&self, node: &NodeId, namespace_uri: Option<&str>) -> Result<NodeId, StatusCode> {
        resolve(&self.session, node, namespace_uri).await
    }

    /// How many nodes one [`Client::read`] call reads at most: 500, or the server's
    /// MaxNodesPerRead when lower. Callers with more nodes read them in calls of this size, so
    /// that only one call's request and answer are held at a time.
    pub async fn nodes_per_read(&self) -> usize {
        if let Some(n) = self.per_read.get() {
            return *n;
        }
        match limit(&self.session, VariableId::Server_ServerCapabilities_OperationLimits_MaxNodesPerRead).await {
            Ok(l) => {
                let n = l.map_or(MAX_ITEMS_PER_CALL, |l| l.min(MAX_ITEMS_PER_CALL));
                let _ = self.per_read.set(n);
                n
            }
            // not asked (the session is down): ours for now, asked again next time
            Err(()) => MAX_ITEMS_PER_CALL,
        }
    }

    /// Reads the values of `nodes`, with source and server timestamps (in calls of at most
    /// [`Client::nodes_per_read`]).
    pub async fn read(&self, nodes: Vec<NodeId>) -> Result<Vec<DataValue>, StatusCode> {
        let per_call = self.nodes_per_read().await;
        let ids: Vec<ReadValueId> = nodes.into_iter().map(ReadValueId::from).collect();
        if ids.len() <= per_call {
            return self.session.read(&ids, TimestampsToReturn::Both, 0.0).await.map_err(|e| e.status());
        }
        let mut all = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(per_call) {
            all.extend(self.session.read(chunk, TimestampsToReturn::Both, 0.0).await.map_err(|e| e.status())?);
        }
        Ok(all)
    }

    /// Writes a value; the server's answer for it (`Good` or why not).
    pub async fn write(&self, node: NodeId, value: Variant) -> Result<(), StatusCode> {
        let w = WriteValue {
            node_id: node,
            attribute_id: AttributeId::Value as u32,
            index_range: NumericRange::None,
            value: DataValue { value: Some(value), ..DataValue::null() },
        };
        let codes = self.session.write(&[w]).await.map_err(|e| e.status())?;
        match codes.first() {
            Some(c) if c.is_good() => Ok(()),
            Some(c) => Err(*c),
            None => Err(StatusCode::BadUnknownResponse),
        }
    }
}

async fn resolve(session: &Session, node: &NodeId, namespace_uri: Option<&str>) -> Result<NodeId, StatusCode> {
    let Some(uri) = namespace_uri else { return Ok(node.clone()) };
    let ns = session.get_namespace_index(uri).await.map_err(|e| e.status())?;
    Ok(NodeId { namespace: ns, identifier: node.identifier.clone() })
}

/// Drives the session's event loop and says what happens, in words.
///
/// After a break the server kept the session through (async-opcua reactivates it on a new
/// connection), its subscriptions go on: what the server sent to the dead connection is asked
/// for again with Republish and delivered in order before anything newer (`order`). A new
/// session (the first, or one after the server lost the old one, e.g. restarted) gets its
/// subscriptions made afresh: the monitored items' first notifications are the values the
/// server has now, marked as after a gap when a session came before.
///
/// The session keeps the server certificate it was started with; a server that now presents
/// another one (replaced, or another machine at the address) never answers it. After a failed
/// attempt the certificate is asked for again, and if it changed the stream ends: the driver
/// starts a new client, which checks the new certificate against the trust list.
async fn pump(
    session: Arc<Session>,
    event_loop: opcua::client::SessionEventLoop<opcua::client::transport::TcpConnector>,
    subs: Arc<[SubscriptionSpec]>,
    tx: mpsc::UnboundedSender<Event>,
    server: Server,
) {
    // the subscriptions of the current session; one remake or recovery at a time
    let made: Arc<tokio::sync::Mutex<Vec<Made>>> = Arc::default();
    let (gap_tx, mut gaps) = mpsc::unbounded_channel::<usize>();
    let stream = event_loop.enter();
    tokio::pin!(stream);
    loop {
        let next = tokio::select! {
            next = stream.next() => next,
            // a message came after a gap on the live connection: fill it
            Some(si) = gaps.recv() => {
                let (session, subs, tx, made, gap_tx) = (session.clone(), subs.clone(), tx.clone(), made.clone(), gap_tx.clone());
                tokio::spawn(async move { recover(&session, &subs, &tx, &gap_tx, &made, Some(si)).await });
                continue;
            }
        };
        let ev = match next {
            None => return,
            Some(Err(code)) => Event::Down { reason: format!("the session ended: {}", words(code)) },
            Some(Ok(SessionPollResult::Reconnected(mode))) => {
                let resumed = matches!(mode, SessionConnectMode::ReactivatedSession(_));
                if resumed {
                    // async-opcua's publish loop of the new connection sends nothing until told
                    // to (it is told only when a subscription is created or transferred): without
                    // this the changes the server queued for the session, and every later one,
                    // were never asked for
                    session.trigger_publish_now();
                }
                let (session, subs, tx, made, gap_tx) = (session.clone(), subs.clone(), tx.clone(), made.clone(), gap_tx.clone());
                tokio::spawn(async move {
                    if resumed {
                        recover(&session, &subs, &tx, &gap_tx, &made, None).await;
                    } else {
                        remake(&session, &subs, &tx, &gap_tx, &made).await;
                    }
                });
                Event::Up { resumed }
            }
            Some(Ok(SessionPollResult::ConnectionLost(code))) => {
                Event::Down { reason: format!("the connection to the server was lost: {}", words(code)) }
            }
            Some(Ok(SessionPollResult::ReconnectFailed(code))) => {
                if server.certificate_changed().await {
                    let reason = "the server presents another certificate than at connect: connecting anew to check it".to_string();
                    let _ = tx.send(Event::Ended { reason });
                    return;
                }
                Event::Down { reason: connect_failed(code, &server.pki_dir) }
            }
            Some(Ok(_)) => continue,
        };
        if tx.send(ev).is_err() {
            return;
        }
    }
}

/// A subscription made for the current session.
struct Made {
    /// Its index in the specs, and the server's id for it.
    spec: usize,
    id: u32,
    order: Shared,
}

/// Makes the subscriptions afresh (a new session), deleting those of the old one.
async fn remake(
    session: &Session,
    subs: &[SubscriptionSpec],
    tx: &mpsc::UnboundedSender<Event>,
    gaps: &mpsc::UnboundedSender<usize>,
    made: &tokio::sync::Mutex<Vec<Made>>,
) {
    let mut made = made.lock().await;
    let after_gap = !made.is_empty();
    if after_gap {
        let ids: Vec<u32> = made.drain(..).map(|m| m.id).collect();
        let _ = session.delete_subscriptions(&ids).await;
    }
    if let Err(reason) = subscribe(session, subs, tx, gaps, after_gap, &mut made).await {
        let _ = tx.send(Event::Down { reason });
    }
}

/// Asks the server again for the messages of the subscriptions (`only` one, or all after a
/// reactivated session) that it sent but this client did not get: from the one after the last
/// delivered, until the server has no more. A gap the server cannot fill any more is given up
/// (its items' next values marked). A server that no longer knows a subscription gets them
/// all made again.
async fn recover(
    session: &Session,
    subs: &[SubscriptionSpec],
    tx: &mpsc::UnboundedSender<Event>,
    gaps: &mpsc::UnboundedSender<usize>,
    made: &tokio::sync::Mutex<Vec<Made>>,
    only: Option<usize>,
) {
    let lost_subscription = {
        let made = made.lock().await;
        let mut lost_subscription = false;
        for m in made.iter().filter(|m| only.is_none_or(|s| s == m.spec)) {
            let mut again = 0;
            loop {
                let Some((next, held)) = lock(&m.order).missing() else { break };
                match session.republish(m.id, next).await {
                    Ok(msg) if msg.sequence_number == next && msg.notification_data.as_ref().is_some_and(|d| !d.is_empty()) => {
                        again += 1;
                        lock(&m.order).offer(msg)
                    }
                    Err(e) if matches!(e.status().sub_code().name(), "BadSubscriptionIdInvalid" | "BadNoSubscription") => {
                        lost_subscription = true;
                        break;
                    }
                    // not there any more (BadMessageNotAvailable; asyncua answers an empty message)
                    _ if held => {
                        let lost = lock(&m.order).give_up(next);
                        log::warn!("OPC UA subscription {}: the server no longer had {lost} notification messages", m.id);
                    }
                    _ => break,
                }
            }
            if again > 0 {
                log::info!(
                    "OPC UA subscription {}: {again} notification messages the server had sent to a lost connection received by Republish",
                    m.id
                );
            }
        }
        lost_subscription
    };
    if lost_subscription {
        remake(session, subs, tx, gaps, made).await;
    }
}

/// The server as the session was started with it.
struct Server {
    client: opcua::client::Client,
    url: String,
    /// The certificate of the endpoint in use (empty with security None).
    certificate: opcua::types::ByteString,
    pki_dir: PathBuf,
    timeout: Duration,
}

impl Server {
    /// Whether the server (answering GetEndpoints) now presents another certificate.
    async fn certificate_changed(&self) -> bool {
        if self.certificate.is_null_or_empty() {
            return false;
        }
        match tokio::time::timeout(self.timeout, self.client.get_server_endpoints_from_url(self.url.as_str())).await {
            Ok(Ok(offered)) => !offered.iter().any(|e| e.server_certificate == self.certificate),
            _ => false,
        }
    }
}

/// Why a connect attempt failed; an untrusted server certificate says where it was put.
fn connect_failed(code: StatusCode, pki_dir: &std::path::Path) -> String {
    let untrusted = matches!(code.sub_code().name(), "BadCertificateUntrusted" | "BadSecurityChecksFailed" | "BadCertificateInvalid");
    match pki::newest_rejected(pki_dir).filter(|_| untrusted) {
        Some(p) => {
            let sha256 = crate::trust::list(pki_dir).into_iter().find(|c| c.path == p).map(|c| c.sha256).unwrap_or_default();
            format!(
                "the server's certificate is not trusted ({}): it was put in {} (SHA-256 {sha256}); to trust this server, \
                 trust it among the device's server certificates (web center, or enosctl opcua-certs trust) or move it to {}",
                code.sub_code().name(),
                p.display(),
                pki_dir.join("trusted").display()
            )
        }
        None => format!("cannot connect to the server: {}", words(code)),
    }
}

/// Creates each subscription and its monitored items; items the server refuses are reported
/// one by one, a failure of the whole is the error. `after_gap`: the first values follow a lost
/// session.
async fn subscribe(
    session: &Session,
    subs: &[SubscriptionSpec],
    tx: &mpsc::UnboundedSender<Event>,
    gaps: &mpsc::UnboundedSender<usize>,
    after_gap: bool,
    made: &mut Vec<Made>,
) -> Result<(), String> {
    for (si, spec) in subs.iter().enumerate() {
        if spec.items.is_empty() {
            continue;
        }
        let publishing = spec.publishing_interval.max(Duration::from_millis(10));
        // The server keeps the subscription for lifetime × interval without a publish request:
        // long enough to ride out a break the session itself survives.
        let keep_alive = (10_000 / publishing.as_millis().max(1) as u32).clamp(1, 1000);
        let lifetime = (keep_alive * 3).max((120_000 / publishing.as_millis().max(1)) as u32);
        let sequence = Ordered::new(si, spec.items.len(), after_gap, tx.clone(), gaps.clone());
        let id = session
            .create_subscription(publishing, lifetime, keep_alive, MAX_NOTIFICATIONS_PER_PUBLISH, 0, true, Deliver(sequence.clone()))
            .await
            .map_err(|e| format!("the server refused the subscription: {}", words(e.status())))?;
        made.push(Made { spec: si, id, order: sequence });
        // in calls of at most `per_call` items, each call's requests made just before it: 10,000
        // in one request were 510 kB, more than the message size asyncua and async-opcua agree
        // on (BadRequestTooLarge), and a server may limit the items per call
        // (MaxMonitoredItemsPerCall)
        let per_call =
            per_call(session, MAX_ITEMS_PER_CALL, VariableId::Server_ServerCapabilities_OperationLimits_MaxMonitoredItemsPerCall).await;
        for first in (0..spec.items.len()).step_by(per_call) {
            let mut requests = Vec::with_capacity(per_call.min(spec.items.len() - first));
            for ii in first..(first + per_call).min(spec.items.len()) {
                let item = match spec.items.item(ii) {
                    Ok(item) => item,
                    Err(reason) => {
                        let _ = tx.send(Event::ItemRefused { subscription: si, item: ii, reason });
                        continue;
                    }
                };
                match resolve(session, &item.node, item.namespace_uri.as_deref()).await {
                    Ok(node) => requests.push(request(node, &item, ii)),
                    Err(code) => {
                        let reason = format!("namespace {}: {}", item.namespace_uri.as_deref().unwrap_or_default(), words(code));
                        let _ = tx.send(Event::ItemRefused { subscription: si, item: ii, reason });
                    }
                }
            }
            if requests.is_empty() {
                continue;
            }
            // The request itself, not `Session::create_monitored_items`: that keeps a copy of
            // every item in async-opcua's subscription state (hash maps, about 330 bytes an item
            // at 10,000), used only by its own remake of subscriptions (off here) and by the item
            // map given to the callback (`Deliver` maps client handles itself).
            let created = CreateMonitoredItems::new(id, session)
                .timestamps_to_return(TimestampsToReturn::Both)
                .items_to_create(requests)
                .send(session.channel())
                .await
                .map_err(|e| format!("the server refused the monitored items: {}", words(e.status())))?;
            for c in created.results.iter().filter(|c| !c.result.status_code.is_good()) {
                // the client handle is the item's index + 1 (`request`)
                let item = c.requested_parameters.client_handle as usize - 1;
                let _ = tx.send(Event::ItemRefused { subscription: si, item, reason: words(c.result.status_code) });
            }
        }
    }
    Ok(())
}

/// Notifications per Publish response asked of the server (it sends the rest in the next ones);
/// a server that ignores it is met by the larger decoding limits below.
const MAX_NOTIFICATIONS_PER_PUBLISH: u32 = 1000;
/// Elements of one array in a message: 10,000 items with queues of 10.
const MAX_ARRAY_LENGTH: usize = 100_000;
/// One message at most (async-opcua's default: 5 chunks of 64 KiB).
const MAX_MESSAGE_BYTES: usize = 8 << 20;

/// Items per CreateMonitoredItems and nodes per Read at most: well under async-opcua's message
/// size with long string node ids (about 600 bytes an item).
const MAX_ITEMS_PER_CALL: usize = 500;

/// `ours`, or the server's own operation limit `limit` when that is lower (none, or not asked:
/// `ours`).
async fn per_call(session: &Session, ours: usize, limit: VariableId) -> usize {
    self::limit(session, limit).await.ok().flatten().map_or(ours, |l| ours.min(l))
}

/// The server's operation limit `var`: `None` when it has none (0, or no such node), `Err` when
/// it could not be asked (the session is down).
async fn limit(session: &Session, var: VariableId) -> Result<Option<usize>, ()> {
    let id = ReadValueId::from(NodeId::from(var));
    let answer = session.read(&[id], TimestampsToReturn::Neither, 0.0).await.map_err(|_| ())?;
    Ok(match answer.into_iter().next().and_then(|d| d.value) {
        Some(Variant::UInt32(n)) if n > 0 => Some(n as usize),
        _ => None,
    })
}

/// A monitored item's request; its client handle is its index + 1 (`order` maps it back).
fn request(node: NodeId, item: &Item, index: usize) -> MonitoredItemCreateRequest {
    let filter = match item.deadband {
        None => ExtensionObject::null(),
        Some(d) => {
            let (kind, value) = match d {
                Deadband::Absolute(v) => (1, v),
                Deadband::Percent(v) => (2, v),
            };
            ExtensionObject::from_message(DataChangeFilter {
                trigger: DataChangeTrigger::StatusValue,
                deadband_type: kind,
                deadband_value: value,
            })
        }
    };
    MonitoredItemCreateRequest::new(
        ReadValueId {
            node_id: node,
            attribute_id: AttributeId::Value as u32,
            index_range: NumericRange::None,
            data_encoding: QualifiedName::null(),
        },
        MonitoringMode::Reporting,
        MonitoringParameters {
            client_handle: index as u32 + 1,
            // -1 asks for the publishing interval
            sampling_interval: item.sampling.map_or(-1.0, |d| d.as_secs_f64() * 1000.0),
            filter,
            queue_size: item.queue_size,
            discard_oldest: true,
        },
    )
}
