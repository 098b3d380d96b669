//! Who may read: the node's read access control (`rpc.read_access`).
//!
//! Under [`ReadPolicy::Open`] (the default, and what `trellis dev` runs) anyone who reaches
//! the port reads. Otherwise every request — JSON-RPC over HTTP or WebSocket, REST — must
//! carry `Authorization: Bearer <token>`, where the token is either the node's admin token
//! (its operator) or a read token an organisation's admin issued on chain
//! (`ITrellisGovernance.issueReadToken`; only its keccak256 hash is recorded). Over TLS
//! ([`crate::tls`]) a client certificate an organisation registered the same way stands for
//! a read token when the request sends no header. Then:
//!
//! - [`ReadPolicy::Consortium`]: any member or supervisor organisation reads;
//! - [`ReadPolicy::Organization`]: the organisation that registered this node reads, and
//!   supervisors read everything; other members read through their own nodes.
//!
//! `public_resolution` leaves the resolution paths ([`PUBLIC_PATHS`]: DIDs, identifiers,
//! evidence) and `/health` open to anyone while the rest stays closed.
//!
//! A missing, unknown, revoked or expired token is refused with HTTP 401, a valid token of
//! an organisation this node does not serve (or one that left) with 403; nothing is served
//! either way. Verdicts are cached per token for one committed height, so a revocation
//! takes effect with the next block; a cache miss reads governance state on the blocking
//! pool and costs the client one unit of its rate allowance, so random tokens cannot make
//! the node do unbounded work. WebSocket connections are checked when they open and again
//! at every call they make.

use alloy_primitives::B256;
use jsonrpsee::core::middleware::{Batch, BatchEntry, Notification, RpcServiceT};
use jsonrpsee::core::server::BatchResponseBuilder;
use jsonrpsee::server::MethodResponse;
use jsonrpsee::types::{ErrorObject, Request};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use trellis_execution::governance_slots;
use trellis_system::governance::{read_token_hash, ReadRefusal};
use trellis_system::Governance;

use crate::admin::UNAUTHORIZED;
use crate::limits::{ClientAddr, ClientLimiter};
use crate::rest::REST_PREFIXES;
use crate::tls::ClientCertificate;
use crate::Backend;

/// Who may read from this node's RPC port.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReadPolicy {
    /// Anyone who reaches the port.
    #[default]
    Open,
    /// Callers with a read token of any member or supervisor organisation.
    Consortium,
    /// Callers with a read token of this node's organisation, and supervisors.
    Organization,
}

/// Read access control of one server.
#[derive(Clone, Debug, Default)]
pub struct ReadAccess {
    pub policy: ReadPolicy,
    /// Serves [`PUBLIC_PATHS`], `/health` and `/health/ready` to anyone under a closed
    /// policy.
    pub public_resolution: bool,
    /// This node's key, whose registered organisation [`ReadPolicy::Organization`] serves.
    pub node_key: Option<B256>,
}

/// Resolution paths `public_resolution` opens: DID documents, identifier handles, evidence.
pub const PUBLIC_PATHS: &[&str] = &["/1.0/identifiers/", "/api/handles", "/v1/evidence/"];

/// Explorer paths open under every policy: signing in and out, and the stylesheet.
pub const SIGN_IN_PATHS: &[&str] = &["/explorer/login", "/explorer/logout", "/explorer/style.css"];

/// The cookie a browser presents a token in after signing in to the explorer. It is read
/// only for GET (and HEAD) requests of explorer pages, never for JSON-RPC or REST, so another
/// site cannot act with it.
pub const SESSION_COOKIE: &str = "trellis_token";

/// `Set-Cookie` value that signs a browser in to the explorer with `token` (hex-encoded:
/// a token may hold characters a cookie cannot), for the browser session only.
pub fn session_cookie(token: &str) -> String {
    format!(
        "{SESSION_COOKIE}={}; HttpOnly; SameSite=Strict; Path=/explorer",
        alloy_primitives::hex::encode(token.trim().as_bytes())
    )
}

/// `Set-Cookie` value that signs a browser out.
pub fn session_cookie_cleared() -> String {
    format!("{SESSION_COOKIE}=; HttpOnly; SameSite=Strict; Path=/explorer; Max-Age=0")
}

/// The token in a request's explorer session cookie, if any.
fn session_token(headers: &http::HeaderMap) -> Option<String> {
    headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|pair| pair.trim().strip_prefix(SESSION_COOKIE)?.strip_prefix('='))
        .and_then(|hex| alloy_primitives::hex::decode(hex).ok())
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .filter(|t| !t.is_empty())
}

/// Shortest and longest bearer token looked up (the CLI issues 68-character tokens).
const MIN_TOKEN: usize = 16;
const MAX_TOKEN: usize = 256;

/// Verdicts kept for one height; beyond this many tokens the cache starts over.
const MAX_CACHED: usize = 4_096;

/// Why a request is not served.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    /// 401: authenticate (again); 403: authenticated, but not served here.
    pub status: http::StatusCode,
    /// Metric label.
    pub reason: &'static str,
    pub message: String,
}

impl Refusal {
    fn unauthorized(reason: &'static str, message: impl Into<String>) -> Self {
        Refusal {
            status: http::StatusCode::UNAUTHORIZED,
            reason,
            message: message.into(),
        }
    }

    fn forbidden(reason: &'static str, message: impl Into<String>) -> Self {
        Refusal {
            status: http::StatusCode::FORBIDDEN,
            reason,
            message: message.into(),
        }
    }

    /// The answer: a page for the explorer, a REST error for REST paths, a JSON-RPC error
    /// otherwise.
    fn response(&self, path: &str) -> http::Response<jsonrpsee::server::HttpBody> {
        if path.starts_with("/explorer") {
            return self.page();
        }
        let body = if REST_PREFIXES.iter().any(|p| path.starts_with(p)) {
            let code = if self.status == http::StatusCode::FORBIDDEN {
                "forbidden"
            } else {
                "unauthorized"
            };
            json!({ "error": { "code": code, "message": self.message } })
        } else {
            json!({
                "jsonrpc": "2.0",
                "id": null,
                "error": { "code": UNAUTHORIZED, "message": self.message },
            })
        };
        let mut response = http::Response::new(jsonrpsee::server::HttpBody::from(
            serde_json::to_vec(&body).unwrap_or_default(),
        ));
        *response.status_mut() = self.status;
        let headers = response.headers_mut();
        headers.insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/json"),
        );
        if self.status == http::StatusCode::UNAUTHORIZED {
            headers.insert(
                http::header::WWW_AUTHENTICATE,
                http::HeaderValue::from_static("Bearer realm=\"trellis\""),
            );
        }
        response
    }
}

impl Refusal {
    /// An explorer page saying why, with the way to sign in.
    fn page(&self) -> http::Response<jsonrpsee::server::HttpBody> {
        let message = self
            .message
            .replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;");
        let html = format!(
            "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Sign in · Trellis explorer</title><link rel=\"icon\" href=\"data:,\"><link rel=\"stylesheet\" href=\"/explorer/style.css\"></head><body><main><h1>Sign in</h1><p class=\"error\">{message}</p><p><a id=\"sign-in\" href=\"/explorer/login\">Sign in with a read token</a></p></main></body></html>"
        );
        let mut response =
            http::Response::new(jsonrpsee::server::HttpBody::from(html.into_bytes()));
        *response.status_mut() = self.status;
        response.headers_mut().insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("text/html; charset=utf-8"),
        );
        response
    }
}

/// What a granted request presented, kept in its extensions so that every call of a
/// WebSocket connection is checked again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Credential {
    Operator,
    Token(B256),
}

struct Cache {
    height: u64,
    verdicts: HashMap<B256, Result<(), Refusal>>,
}

/// Reads governance state: whose token a hash is and whether this node serves it. The
/// outer error is a failed read (not cached); the inner one the verdict.
type Decide = dyn Fn(&B256) -> Result<Result<(), Refusal>, Refusal> + Send + Sync;

/// The shared state of the HTTP layer and the per-call check.
pub struct Gate {
    decide: Arc<Decide>,
    access: ReadAccess,
    admin_token: Option<Arc<str>>,
    limiter: Arc<ClientLimiter>,
    metrics: trellis_metrics::RpcMetrics,
    heights: tokio::sync::watch::Receiver<u64>,
    cache: Mutex<Cache>,
}

impl Gate {
    pub fn new<B: Backend>(
        backend: Arc<B>,
        access: ReadAccess,
        admin_token: Option<String>,
        limiter: Arc<ClientLimiter>,
        metrics: trellis_metrics::RpcMetrics,
    ) -> Arc<Self> {
        let heights = backend.subscribe_heights();
        let policy = access.policy;
        let node_key = access.node_key;
        Arc::new(Gate {
            decide: Arc::new(move |hash| decide(&*backend, hash, policy, node_key)),
            access,
            admin_token: admin_token.map(Arc::from),
            limiter,
            metrics,
            heights,
            cache: Mutex::new(Cache {
                height: 0,
                verdicts: HashMap::new(),
            }),
        })
    }

    fn is_open(&self, path: &str) -> bool {
        self.access.policy == ReadPolicy::Open
            || SIGN_IN_PATHS.contains(&path)
            || (self.access.public_resolution
                && (path == "/health"
                    || path == "/health/ready"
                    || PUBLIC_PATHS.iter().any(|p| path.starts_with(p))))
    }

    /// Who a request says it comes from: its `Authorization` header, or for explorer pages
    /// read with GET its session cookie, or else the TLS client certificate its connection
    /// presented.
    fn credential(
        &self,
        method: &http::Method,
        path: &str,
        headers: &http::HeaderMap,
        certificate: Option<ClientCertificate>,
    ) -> Result<Credential, Refusal> {
        let cookie = (matches!(*method, http::Method::GET | http::Method::HEAD)
            && path.starts_with("/explorer"))
        .then(|| session_token(headers))
        .flatten();
        let presented = headers
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .or(cookie.as_deref());
        let presented = match (presented, certificate) {
            (Some(presented), _) => presented,
            (None, Some(certificate)) => return Ok(Credential::Token(certificate.0)),
            (None, None) => {
                return Err(Refusal::unauthorized(
                    "missing",
                    "authentication required: this node restricts reads; send 'Authorization: Bearer <read token>' (an organisation admin issues one with `trellis org token issue`), or over TLS a client certificate your organisation registered",
                ))
            }
        };
        if let Some(admin) = &self.admin_token {
            if crate::admin::same_secret(admin.as_bytes(), presented.as_bytes()) {
                return Ok(Credential::Operator);
            }
        }
        if !(MIN_TOKEN..=MAX_TOKEN).contains(&presented.len()) {
            return Err(Refusal::unauthorized(
                "malformed",
                format!("malformed read token: expected {MIN_TOKEN} to {MAX_TOKEN} characters"),
            ));
        }
        Ok(Credential::Token(read_token_hash(presented)))
    }

    /// The verdict on `hash` cached for `height`, if any.
    fn cached(&self, hash: &B256, height: u64) -> Option<Result<(), Refusal>> {
        let cache = self.cache.lock();
        (cache.height == height)
            .then(|| cache.verdicts.get(hash).cloned())
            .flatten()
    }

    fn remember(&self, hash: B256, height: u64, verdict: &Result<(), Refusal>) {
        let mut cache = self.cache.lock();
        if cache.height != height || cache.verdicts.len() >= MAX_CACHED {
            cache.height = height;
            cache.verdicts.clear();
        }
        cache.verdicts.insert(hash, verdict.clone());
    }

    /// Whether `credential` may read now.
    fn check(
        self: Arc<Self>,
        credential: Credential,
        client: Option<ClientAddr>,
    ) -> Pin<Box<dyn Future<Output = Result<(), Refusal>> + Send>> {
        let Credential::Token(hash) = credential else {
            return Box::pin(std::future::ready(Ok(())));
        };
        let height = *self.heights.borrow();
        if let Some(verdict) = self.cached(&hash, height) {
            return Box::pin(std::future::ready(verdict));
        }
        if let Err(m) = self.limiter.admit(client, 1) {
            return Box::pin(std::future::ready(Err(Refusal::unauthorized(
                "rate_limited",
                m,
            ))));
        }
        Box::pin(async move {
            let decide = self.decide.clone();
            let verdict = trellis_storage::blocking(move || decide(&hash))
                .await
                .unwrap_or_else(|e| Err(internal(e)))?;
            self.remember(hash, height, &verdict);
            verdict
        })
    }
}

/// See [`Decide`].
fn decide<B: Backend>(
    backend: &B,
    hash: &B256,
    policy: ReadPolicy,
    node_key: Option<B256>,
) -> Result<Result<(), Refusal>, Refusal> {
    let view = backend.view().map_err(internal)?;
    let mut slots = governance_slots(&view);
    let mut gov = Governance::new(&mut slots);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let reader = match gov.reader(hash, now).map_err(internal)? {
        Ok(reader) => reader,
        Err(refusal) => {
            let reason = match refusal {
                ReadRefusal::Unknown => "unknown",
                ReadRefusal::Revoked(..) => "revoked",
                ReadRefusal::Expired(..) => "expired",
                ReadRefusal::OrganizationGone(..) => {
                    return Ok(Err(Refusal::forbidden(
                        "organization_gone",
                        refusal.to_string(),
                    )))
                }
            };
            return Ok(Err(Refusal::unauthorized(reason, refusal.to_string())));
        }
    };
    if policy != ReadPolicy::Organization || reader.supervisor {
        return Ok(Ok(()));
    }
    let own = match node_key {
        Some(key) => gov.node(&key).map_err(internal)?.map(|n| n.org),
        None => None,
    };
    Ok(match own {
            Some(own) if own == reader.org => Ok(()),
            Some(own) => Err(Refusal::forbidden(
                "other_organization",
                format!(
                    "this node serves organisation {own} and supervisors; organisation {} reads through its own nodes",
                    reader.org
                ),
            )),
            None => Err(Refusal::forbidden(
                "other_organization",
                format!(
                    "this node is not registered to any organisation yet, so it serves only supervisors and its operator, not organisation {}",
                    reader.org
                ),
            )),
        })
}

fn internal(e: impl std::fmt::Display) -> Refusal {
    tracing::error!(error = %e, "read access check failed");
    Refusal {
        status: http::StatusCode::SERVICE_UNAVAILABLE,
        reason: "internal",
        message: format!("read access check failed: {e}"),
    }
}

/// HTTP middleware that refuses requests the policy does not allow.
pub struct AccessLayer {
    gate: Arc<Gate>,
}

impl Clone for AccessLayer {
    fn clone(&self) -> Self {
        AccessLayer {
            gate: self.gate.clone(),
        }
    }
}

impl AccessLayer {
    pub fn new(gate: Arc<Gate>) -> Self {
        AccessLayer { gate }
    }
}

impl<S> tower::Layer<S> for AccessLayer {
    type Service = AccessService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AccessService {
            inner,
            gate: self.gate.clone(),
        }
    }
}

pub struct AccessService<S> {
    inner: S,
    gate: Arc<Gate>,
}

impl<S: Clone> Clone for AccessService<S> {
    fn clone(&self) -> Self {
        AccessService {
            inner: self.inner.clone(),
            gate: self.gate.clone(),
        }
    }
}

type RpcBody = jsonrpsee::server::HttpBody;

impl<S, Body> tower::Service<http::Request<Body>> for AccessService<S>
where
    S: tower::Service<http::Request<Body>, Response = http::Response<RpcBody>>,
    S::Future: Send + 'static,
{
    type Response = http::Response<RpcBody>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<Body>) -> Self::Future {
        let path = request.uri().path().to_owned();
        if self.gate.is_open(&path) {
            return Box::pin(self.inner.call(request));
        }
        let certificate = request.extensions().get::<ClientCertificate>().copied();
        let credential =
            match self
                .gate
                .credential(request.method(), &path, request.headers(), certificate)
            {
                Ok(credential) => credential,
                Err(refusal) => {
                    self.gate.metrics.access_refused(refusal.reason);
                    let response = refusal.response(&path);
                    return Box::pin(async move { Ok(response) });
                }
            };
        let client = request.extensions().get::<ClientAddr>().copied();
        let check = self.gate.clone().check(credential, client);
        request.extensions_mut().insert(credential);
        // The inner service is called now but its answer awaited only once the check passes
        // (a future cannot hold the service itself). Nothing is served before: HTTP and REST
        // answers are lazy futures, and a WebSocket upgrade completes only when its `101`
        // response is returned, which a refusal replaces.
        let serve = self.inner.call(request);
        let metrics = self.gate.metrics.clone();
        Box::pin(async move {
            match check.await {
                Ok(()) => serve.await,
                Err(refusal) => {
                    drop(serve);
                    metrics.access_refused(refusal.reason);
                    Ok(refusal.response(&path))
                }
            }
        })
    }
}

/// JSON-RPC middleware that checks the credential again at each call, so that a WebSocket
/// connection opened with a token stops being served once the token is revoked.
pub struct Recheck<S> {
    inner: S,
    gate: Arc<Gate>,
}

impl<S: Clone> Clone for Recheck<S> {
    fn clone(&self) -> Self {
        Recheck {
            inner: self.inner.clone(),
            gate: self.gate.clone(),
        }
    }
}

impl<S> Recheck<S> {
    pub fn new(inner: S, gate: Arc<Gate>) -> Self {
        Recheck { inner, gate }
    }
}

/// The credential and client a call's extensions carry, to check again.
fn presented(extensions: &jsonrpsee::Extensions) -> Option<(Credential, Option<ClientAddr>)> {
    let credential = extensions.get::<Credential>().copied()?;
    Some((credential, extensions.get::<ClientAddr>().copied()))
}

/// `None`: go on; `Some(refusal)`: refuse the call.
async fn recheck(
    gate: Arc<Gate>,
    presented: Option<(Credential, Option<ClientAddr>)>,
) -> Option<Refusal> {
    let (credential, client) = presented?;
    let refusal = gate.clone().check(credential, client).await.err()?;
    gate.metrics.access_refused(refusal.reason);
    Some(refusal)
}

fn refused_call(id: jsonrpsee::types::Id<'_>, refusal: &Refusal) -> MethodResponse {
    MethodResponse::error(
        id,
        ErrorObject::owned(UNAUTHORIZED, refusal.message.clone(), None::<()>),
    )
}

impl<S> RpcServiceT for Recheck<S>
where
    S: RpcServiceT<
            MethodResponse = MethodResponse,
            BatchResponse = MethodResponse,
            NotificationResponse = MethodResponse,
        > + Send
        + Sync
        + Clone
        + 'static,
{
    type MethodResponse = MethodResponse;
    type NotificationResponse = MethodResponse;
    type BatchResponse = MethodResponse;

    fn call<'a>(
        &self,
        request: Request<'a>,
    ) -> impl Future<Output = Self::MethodResponse> + Send + 'a {
        let check = recheck(self.gate.clone(), presented(request.extensions()));
        let inner = self.inner.clone();
        async move {
            match check.await {
                Some(refusal) => refused_call(request.id, &refusal),
                None => inner.call(request).await,
            }
        }
    }

    fn batch<'a>(
        &self,
        mut batch: Batch<'a>,
    ) -> impl Future<Output = Self::BatchResponse> + Send + 'a {
        let check = recheck(self.gate.clone(), presented(batch.extensions()));
        let inner = self.inner.clone();
        async move {
            let Some(refusal) = check.await else {
                return inner.batch(batch).await;
            };
            // Every call of the batch gets the refusal, under its own id.
            let mut answers = BatchResponseBuilder::new_with_limit(usize::MAX);
            for entry in batch {
                if let Ok(BatchEntry::Call(call)) = entry {
                    if let Err(full) = answers.append(refused_call(call.id, &refusal)) {
                        return full;
                    }
                }
            }
            if answers.is_empty() {
                return refused_call(jsonrpsee::types::Id::Null, &refusal);
            }
            MethodResponse::from_batch(answers.finish())
        }
    }

    fn notification<'a>(
        &self,
        n: Notification<'a>,
    ) -> impl Future<Output = Self::NotificationResponse> + Send + 'a {
        let check = recheck(self.gate.clone(), presented(n.extensions()));
        let inner = self.inner.clone();
        async move {
            match check.await {
                Some(_) => MethodResponse::notification(),
                None => inner.notification(n).await,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gate(policy: ReadPolicy, public_resolution: bool) -> Gate {
        let (_tx, heights) = tokio::sync::watch::channel(0);
        Gate {
            decide: Arc::new(|_| Ok(Err(Refusal::unauthorized("unknown", "unknown read token")))),
            access: ReadAccess {
                policy,
                public_resolution,
                node_key: None,
            },
            admin_token: Some(Arc::from("operator-secret-0123456789")),
            limiter: ClientLimiter::new(1_000.0, 1_000).expect("limits"),
            metrics: trellis_metrics::RpcMetrics::default(),
            heights,
            cache: Mutex::new(Cache {
                height: 0,
                verdicts: HashMap::new(),
            }),
        }
    }

    fn headers(authorization: &str) -> http::HeaderMap {
        let mut h = http::HeaderMap::new();
        h.insert(
            http::header::AUTHORIZATION,
            authorization.parse().expect("header"),
        );
        h
    }

    #[test]
    fn open_paths_follow_the_policy() {
        let open = gate(ReadPolicy::Open, false);
        assert!(open.is_open("/") && open.is_open("/v1/evidence/0x01"));
        let closed = gate(ReadPolicy::Organization, false);
        for path in ["/", "/health", "/v1/evidence/0x01", "/api/handles/MA.1/x"] {
            assert!(!closed.is_open(path), "{path}");
        }
        let public = gate(ReadPolicy::Consortium, true);
        for path in [
            "/health",
            "/v1/evidence/0x01",
            "/api/handles",
            "/api/handles/MA.1/x",
            "/1.0/identifiers/did:trellis:1:0x01",
        ] {
            assert!(public.is_open(path), "{path}");
        }
        for path in ["/", "/healthz", "/v1/other", "/ws"] {
            assert!(!public.is_open(path), "{path}");
        }
    }

    #[test]
    fn credentials_are_the_admin_token_or_a_hashed_read_token() {
        let g = gate(ReadPolicy::Consortium, false);
        let missing = g
            .credential(&http::Method::POST, "/", &http::HeaderMap::new(), None)
            .unwrap_err();
        assert_eq!(
            (missing.status, missing.reason),
            (http::StatusCode::UNAUTHORIZED, "missing")
        );
        let basic = g
            .credential(&http::Method::POST, "/", &headers("Basic abc"), None)
            .unwrap_err();
        assert_eq!(basic.reason, "missing");
        assert_eq!(
            g.credential(
                &http::Method::POST,
                "/",
                &headers("Bearer operator-secret-0123456789"),
                None
            ),
            Ok(Credential::Operator)
        );
        let short = g
            .credential(&http::Method::POST, "/", &headers("Bearer abc"), None)
            .unwrap_err();
        assert_eq!(short.reason, "malformed");
        let long = g
            .credential(
                &http::Method::POST,
                "/",
                &headers(&format!("Bearer {}", "x".repeat(257))),
                None,
            )
            .unwrap_err();
        assert_eq!(long.reason, "malformed");
        let token = "trt_0123456789abcdef0123456789abcdef";
        assert_eq!(
            g.credential(
                &http::Method::POST,
                "/",
                &headers(&format!("Bearer {token}")),
                None
            ),
            Ok(Credential::Token(read_token_hash(token)))
        );
    }

    #[test]
    fn explorer_pages_read_a_session_cookie_and_nothing_else_does() {
        let g = gate(ReadPolicy::Organization, false);
        let token = "trt_0123456789abcdef0123456789abcdef";
        let mut h = http::HeaderMap::new();
        let cookie = session_cookie(token);
        let pair = cookie.split(';').next().expect("pair");
        h.insert(
            http::header::COOKIE,
            format!("other=1; {pair}").parse().expect("header"),
        );
        let expected = Ok(Credential::Token(read_token_hash(token)));
        assert_eq!(
            g.credential(&http::Method::GET, "/explorer/block/1", &h, None),
            expected
        );
        for (method, path) in [
            (http::Method::POST, "/explorer/block/1"),
            (http::Method::GET, "/v1/evidence/0x01"),
            (http::Method::POST, "/"),
        ] {
            let refused = g.credential(&method, path, &h, None).unwrap_err();
            assert_eq!(refused.reason, "missing", "{method} {path}");
        }
        assert!(g.is_open("/explorer/login") && g.is_open("/explorer/style.css"));
        // A TLS client certificate stands for a token only when no header is sent.
        let cert = ClientCertificate(B256::repeat_byte(7));
        assert_eq!(
            g.credential(
                &http::Method::POST,
                "/",
                &http::HeaderMap::new(),
                Some(cert)
            ),
            Ok(Credential::Token(cert.0))
        );
        assert_eq!(
            g.credential(&http::Method::GET, "/explorer/block/1", &h, Some(cert)),
            expected,
            "an explicit credential wins over the certificate"
        );
        assert!(!g.is_open("/explorer/audit.csv"));
        assert!(session_cookie_cleared().contains("Max-Age=0"));
    }

    #[tokio::test]
    async fn verdicts_are_cached_for_one_height() {
        let g = Arc::new(gate(ReadPolicy::Consortium, false));
        let token = Credential::Token(B256::repeat_byte(1));
        let refused = g.clone().check(token, None).await.unwrap_err();
        assert_eq!(refused.reason, "unknown");
        assert!(g.cached(&B256::repeat_byte(1), 0).is_some());
        assert!(
            g.cached(&B256::repeat_byte(1), 1).is_none(),
            "a new height asks again"
        );
        assert_eq!(g.clone().check(Credential::Operator, None).await, Ok(()));
    }

    #[test]
    fn refusals_answer_in_the_door_s_shape() {
        let r = Refusal::forbidden("other_organization", "not served here");
        let rest = r.response("/v1/evidence/0x01");
        assert_eq!(rest.status(), http::StatusCode::FORBIDDEN);
        assert!(rest.headers().get(http::header::WWW_AUTHENTICATE).is_none());
        let r = Refusal::unauthorized("missing", "authentication required");
        let rpc = r.response("/");
        assert_eq!(rpc.status(), http::StatusCode::UNAUTHORIZED);
        assert!(rpc.headers().get(http::header::WWW_AUTHENTICATE).is_some());
    }
}
