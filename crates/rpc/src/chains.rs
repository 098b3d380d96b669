//! The chains of a node's process, on one port: `trellis_getChains` lists them,
//! `trellis_chainStatus` (and `GET /v1/chain`) shows one chain's place among them, and
//! [`HostRouterLayer`] serves every hosted chain's JSON-RPC, WebSocket and REST under
//! `/chains/{id}` of any hosted chain's port.
//!
//! A request under `/chains/{id}` goes, with that prefix taken off, through chain `id`'s whole
//! HTTP stack — its read access, rate limits, admin token and methods — exactly as if it had
//! come to that chain's own port: reading a chain through another's port grants nothing the
//! chain itself would not.

use alloy_primitives::U256;
use jsonrpsee::server::HttpBody;
use std::sync::Arc;
use std::task::{Context, Poll};
use trellis_api::{self as api, ChainsApiServer};
use trellis_execution::{governance_slots, system_slots};
use trellis_system::{CrossChain, Governance, LightClients, LIGHT_CLIENTS_ADDRESS, XCHAIN_ADDRESS};

use axum::extract::State;
use axum::Json;

use crate::error::RpcError;
use crate::methods::RpcResult;
use crate::rest::RestError;
use crate::{Backend, HostControl};

/// Errors as the HTTP stack returns them.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// What a [`Dispatch`] and the router answer.
pub type Answer = std::pin::Pin<
    Box<dyn std::future::Future<Output = Result<http::Response<HttpBody>, BoxError>> + Send>,
>;

/// A chain's whole HTTP service, callable in process (what `/chains/{id}` forwards to).
pub type Dispatch = Arc<dyn Fn(http::Request<HttpBody>) -> Answer + Send + Sync>;

/// Where a hosted chain is served on every hosted chain's port.
pub fn chain_path(chain_id: u64) -> String {
    format!("/chains/{chain_id}")
}

/// The status of `backend`'s chain at its committed height; `host` tells the heights of the
/// chains hosted beside it (for the clients' lag).
pub fn chain_status<B: Backend + ?Sized>(
    backend: &B,
    host: Option<&dyn HostControl>,
) -> Result<api::ChainStatus, RpcError> {
    let internal = |e: trellis_system::SlotError| RpcError::Internal(e.to_string());
    let view = backend.view()?;
    let height = crate::methods::tip(&view)?;
    let block_time_ms = view
        .block(trellis_primitives::Height(height))?
        .map_or(0, |b| b.header.timestamp_ms);
    let (mut members, mut supervisors) = (Vec::new(), Vec::new());
    {
        let mut slots = governance_slots(&view);
        for org in Governance::new(&mut slots)
            .organizations(0, api::MAX_PAGE)
            .map_err(internal)?
        {
            if org.member {
                members.push(org.id.as_str().to_owned());
            }
            if org.supervisor {
                supervisors.push(org.id.as_str().to_owned());
            }
        }
    }
    let hosted: Vec<(u64, u64)> = host
        .map(|h| h.chains().iter().map(|c| (c.chain_id, c.height)).collect())
        .unwrap_or_default();
    let (mut xc, mut lc) = (
        system_slots(&view, XCHAIN_ADDRESS),
        system_slots(&view, LIGHT_CLIENTS_ADDRESS),
    );
    let (hub, followed) = {
        let mut clients = LightClients::new(&mut lc);
        (
            clients.hub().map_err(internal)?,
            clients.chains(0, api::MAX_PAGE).map_err(internal)?,
        )
    };
    let mut clients = Vec::with_capacity(followed.len());
    for chain_id in followed {
        let Some(client) = LightClients::new(&mut lc)
            .client(chain_id)
            .map_err(|e| RpcError::Internal(e.to_string()))?
        else {
            continue;
        };
        let mut xchain = CrossChain::new(&mut xc, &mut lc);
        let (next, pending) = xchain.outbox(chain_id).map_err(internal)?;
        let (escrowed, vouchers): (U256, U256) = (
            xchain.escrowed(chain_id).map_err(internal)?,
            xchain.voucher_supply(chain_id).map_err(internal)?,
        );
        let anchored = client.latest;
        clients.push(api::ClientStatus {
            chain_id,
            hub: hub == Some(chain_id),
            frozen: client.frozen,
            anchored_height: anchored.height,
            anchored_time_ms: anchored.timestamp_ms,
            anchor_age_ms: block_time_ms.saturating_sub(anchored.timestamp_ms),
            lag_blocks: hosted
                .iter()
                .find(|(id, _)| *id == chain_id)
                .map(|(_, tip)| tip.saturating_sub(anchored.height)),
            messages_sent: next.saturating_sub(1),
            messages_pending: pending,
            escrowed,
            vouchers,
        });
    }
    Ok(api::ChainStatus {
        chain_id: backend.chain_id(),
        height,
        block_time_ms,
        hub,
        members,
        supervisors,
        validators: backend
            .validators()
            .into_iter()
            .map(|v| api::SetMember {
                public_key: v.public_key,
                power: v.power,
            })
            .collect(),
        clients,
    })
}

/// The hosted chains as `trellis_getChains` lists them: this one alone outside a host.
fn entries<B: Backend + ?Sized>(
    backend: &B,
    host: Option<&dyn HostControl>,
) -> Vec<api::ChainEntry> {
    let entry = |chain_id, height| api::ChainEntry {
        chain_id,
        height,
        path: chain_path(chain_id),
    };
    match host.map(|h| h.chains()).filter(|c| !c.is_empty()) {
        Some(chains) => chains
            .into_iter()
            .map(|c| entry(c.chain_id, c.height))
            .collect(),
        None => vec![entry(backend.chain_id(), backend.health().height)],
    }
}

/// `trellis_getChains` and `trellis_chainStatus`.
pub(crate) struct ChainsRpc<B> {
    pub backend: Arc<B>,
    pub host: Option<Arc<dyn HostControl>>,
}

impl<B: Backend> ChainsApiServer for ChainsRpc<B> {
    fn chains(&self) -> RpcResult<Vec<api::ChainEntry>> {
        Ok(entries(&*self.backend, self.host.as_deref()))
    }

    fn chain_status(&self) -> RpcResult<api::ChainStatus> {
        Ok(chain_status(&*self.backend, self.host.as_deref())?)
    }
}

/// What the REST handlers read.
pub(crate) struct ChainsState<B> {
    pub backend: Arc<B>,
    pub host: Option<Arc<dyn HostControl>>,
}

impl<B> Clone for ChainsState<B> {
    fn clone(&self) -> Self {
        ChainsState {
            backend: self.backend.clone(),
            host: self.host.clone(),
        }
    }
}

/// `GET /v1/chain`: this chain's status.
pub(crate) async fn rest_status<B: Backend>(
    State(state): State<ChainsState<B>>,
    axum::Extension(charge): axum::Extension<crate::rest::Charge>,
) -> Result<Json<api::ChainStatus>, RestError> {
    // It reads up to a page of organisations and of clients: priced like a proof.
    charge.extra(crate::PROOF_COST)?;
    let status = crate::rest::read(move || {
        chain_status(&*state.backend, state.host.as_deref())
            .map_err(|e| RestError::internal(e.to_string()))
    })
    .await?;
    Ok(Json(status))
}

/// How long `/v1/chains` waits for one chain's status.
const STATUS_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// Most bytes of one chain's status read back from its service.
const MAX_STATUS_BYTES: usize = 4 * 1024 * 1024;

/// `GET /v1/chains`: every hosted chain with its status — each read through that chain's own
/// service as the caller (its token, certificate and address), so a chain the caller may not
/// read answers why instead.
pub(crate) async fn rest_chains<B: Backend>(
    State(state): State<ChainsState<B>>,
    axum::Extension(charge): axum::Extension<crate::rest::Charge>,
    request: axum::extract::Request,
) -> Result<Json<Vec<api::ChainOverview>>, RestError> {
    // This chain's status is read here; the others' are charged by their own services.
    charge.extra(crate::PROOF_COST)?;
    let caller = Caller::of(&request);
    drop(request);
    let own = state.backend.chain_id();
    let listed = entries(&*state.backend, state.host.as_deref());
    let mut out = Vec::with_capacity(listed.len());
    for entry in listed {
        let answer = if entry.chain_id == own {
            let state = state.clone();
            crate::rest::read(move || {
                chain_status(&*state.backend, state.host.as_deref())
                    .map_err(|e| RestError::internal(e.to_string()))
            })
            .await
            .map_err(|e| e.message().to_owned())
        } else {
            match state.host.as_ref().and_then(|h| h.dispatch(entry.chain_id)) {
                Some(dispatch) => status_through(&dispatch, &caller).await,
                None => Err("stopped since it was listed".to_owned()),
            }
        };
        let (status, error) = match answer {
            Ok(status) => (Some(status), None),
            Err(e) => (None, Some(e)),
        };
        out.push(api::ChainOverview {
            entry,
            status,
            error,
        });
    }
    Ok(Json(out))
}

/// Who asked, as another chain's service sees a caller: its token, address and certificate.
struct Caller {
    authorization: Option<http::HeaderValue>,
    client: Option<crate::ClientAddr>,
    certificate: Option<crate::tls::ClientCertificate>,
}

impl Caller {
    fn of(request: &axum::extract::Request) -> Caller {
        Caller {
            authorization: request.headers().get(http::header::AUTHORIZATION).cloned(),
            client: request.extensions().get().copied(),
            certificate: request.extensions().get().copied(),
        }
    }
}

/// `GET /v1/chain` through `dispatch`, as `caller`.
async fn status_through(dispatch: &Dispatch, caller: &Caller) -> Result<api::ChainStatus, String> {
    let mut request = http::Request::new(HttpBody::empty());
    *request.uri_mut() = http::Uri::from_static("/v1/chain");
    if let Some(auth) = &caller.authorization {
        request
            .headers_mut()
            .insert(http::header::AUTHORIZATION, auth.clone());
    }
    if let Some(client) = caller.client {
        request.extensions_mut().insert(client);
    }
    if let Some(certificate) = caller.certificate {
        request.extensions_mut().insert(certificate);
    }
    let response = tokio::time::timeout(STATUS_TIMEOUT, dispatch(request))
        .await
        .map_err(|_| format!("no answer within {} s", STATUS_TIMEOUT.as_secs()))?
        .map_err(|e| e.to_string())?;
    let status = response.status();
    let body = axum::body::to_bytes(
        axum::body::Body::new(response.into_body()),
        MAX_STATUS_BYTES,
    )
    .await
    .map_err(|e| e.to_string())?;
    if !status.is_success() {
        let said = String::from_utf8_lossy(&body);
        return Err(format!("{status}: {}", said.trim()));
    }
    serde_json::from_slice(&body).map_err(|e| format!("an unreadable status: {e}"))
}

/// Where a request's path leads.
#[derive(Debug, PartialEq, Eq)]
enum Route<'a> {
    /// Not under `/chains/`: this chain serves it.
    Here,
    /// Chain `id`, at `path` (`/` for the prefix alone).
    Chain { id: u64, path: &'a str },
    /// Under `/chains/` without a chain id, or nested.
    Invalid,
}

fn route(path: &str) -> Route<'_> {
    let Some(rest) = path.strip_prefix("/chains/") else {
        return Route::Here;
    };
    let (id, tail) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    match id.parse::<u64>() {
        // One spelling per chain (no "+5" or "007"), and no chain inside a chain.
        Ok(n) if n.to_string() == id && !tail.starts_with("/chains/") => Route::Chain {
            id: n,
            path: if tail.is_empty() { "/" } else { tail },
        },
        _ => Route::Invalid,
    }
}

/// HTTP middleware that serves `/chains/{id}` from chain `id` (this one, or another the
/// process hosts, through its [`Dispatch`]).
#[derive(Clone)]
pub struct HostRouterLayer {
    chain_id: u64,
    host: Option<Arc<dyn HostControl>>,
}

impl HostRouterLayer {
    pub fn new(chain_id: u64, host: Option<Arc<dyn HostControl>>) -> Self {
        HostRouterLayer { chain_id, host }
    }
}

impl<S> tower::Layer<S> for HostRouterLayer {
    type Service = HostRouter<S>;

    fn layer(&self, inner: S) -> Self::Service {
        HostRouter {
            chain_id: self.chain_id,
            host: self.host.clone(),
            inner,
        }
    }
}

#[derive(Clone)]
pub struct HostRouter<S> {
    chain_id: u64,
    host: Option<Arc<dyn HostControl>>,
    inner: S,
}

/// A plain-text answer with `status`.
fn refuse(status: http::StatusCode, message: String) -> http::Response<HttpBody> {
    let mut response = http::Response::new(HttpBody::from(message));
    *response.status_mut() = status;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

impl<S, B> tower::Service<http::Request<B>> for HostRouter<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<HttpBody>, Error = BoxError>,
    S::Future: Send + 'static,
    B: http_body::Body<Data = bytes::Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    type Response = http::Response<HttpBody>;
    type Error = BoxError;
    type Future = Answer;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        let (id, path) = match route(request.uri().path()) {
            Route::Here => return Box::pin(self.inner.call(request)),
            Route::Invalid => {
                let message = "use /chains/{chain id}/… (trellis_getChains lists them)".to_owned();
                return Box::pin(async move { Ok(refuse(http::StatusCode::NOT_FOUND, message)) });
            }
            Route::Chain { id, path } if path.starts_with("/explorer") && id != self.chain_id => {
                // Its pages link and sign in at absolute paths: served on its own port only.
                let message = format!("the explorer of chain {id} is served on its own port");
                return Box::pin(async move { Ok(refuse(http::StatusCode::NOT_FOUND, message)) });
            }
            Route::Chain { id, path } => (id, path.to_owned()),
        };
        let mut uri = http::uri::Parts::from(request.uri().clone());
        let path_and_query = match request.uri().query() {
            Some(q) => format!("{path}?{q}"),
            None => path,
        };
        uri.path_and_query = path_and_query.parse().ok();
        match http::Uri::from_parts(uri) {
            Ok(uri) => *request.uri_mut() = uri,
            Err(e) => {
                let message = format!("bad path: {e}");
                return Box::pin(async move { Ok(refuse(http::StatusCode::BAD_REQUEST, message)) });
            }
        }
        if id == self.chain_id {
            return Box::pin(self.inner.call(request));
        }
        match self.host.as_ref().and_then(|h| h.dispatch(id)) {
            Some(dispatch) => dispatch(request.map(HttpBody::new)),
            None => {
                let message = format!("chain {id} is not hosted by this node");
                Box::pin(async move { Ok(refuse(http::StatusCode::NOT_FOUND, message)) })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_under_chains_name_a_chain_and_what_follows() {
        assert_eq!(route("/"), Route::Here);
        assert_eq!(route("/v1/evidence/0x1"), Route::Here);
        assert_eq!(route("/chains"), Route::Here);
        assert_eq!(
            route("/chains/1338"),
            Route::Chain {
                id: 1338,
                path: "/"
            }
        );
        assert_eq!(
            route("/chains/1338/"),
            Route::Chain {
                id: 1338,
                path: "/"
            }
        );
        assert_eq!(
            route("/chains/1338/v1/chain"),
            Route::Chain {
                id: 1338,
                path: "/v1/chain"
            }
        );
        for invalid in [
            "/chains/",
            "/chains/abc",
            "/chains/-1/",
            "/chains/+5",
            "/chains/007",
            "/chains/99999999999999999999",
            "/chains/1/chains/2",
        ] {
            assert_eq!(route(invalid), Route::Invalid, "{invalid}");
        }
    }
}
