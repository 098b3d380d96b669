//! REST endpoints of the built-in services, served on the JSON-RPC port: requests whose path
//! starts with one of [`REST_PREFIXES`] go to an axum router, everything else to jsonrpsee.
//!
//! Reads come from one snapshot of committed state, so a record and its proof always belong
//! to the same finalized height, and run on the blocking pool. Errors are JSON
//! `{"error": {"code", "message"}}` with the matching HTTP status.
//!
//! REST requests draw from the same per-client allowance as JSON-RPC ([`crate::limits`]): one
//! unit per request on entry, and handlers charge what they do beyond it ([`Charge`]) — one
//! unit per identifier of a batch, [`PROOF_COST`] per proof.

use alloy_primitives::{Bytes, B256};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Extension;
use axum::{Json, Router};
use serde_json::json;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tower::ServiceExt;
use trellis_storage::{StateView, StoreError};
use trellis_system::evidence::{evidence_id, HashAlgorithm};
use trellis_system::proof::{ProvenAccount, SlotProof, StateProof};
use trellis_system::{Evidence, EVIDENCE_ADDRESS};

use crate::limits::{ClientAddr, ClientLimiter, PROOF_COST};
use crate::{dids, handles, Backend};

/// Paths served by the REST router rather than JSON-RPC.
pub const REST_PREFIXES: &[&str] = &["/v1/", "/api/", "/1.0/", "/health", "/explorer"];

/// A REST failure: HTTP status, a stable machine-readable code and a message.
#[derive(Debug)]
pub struct RestError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl std::fmt::Display for RestError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl RestError {
    pub fn bad_request(message: impl Into<String>) -> Self {
        RestError {
            status: StatusCode::BAD_REQUEST,
            code: "invalidRequest",
            message: message.into(),
        }
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        RestError {
            status: StatusCode::NOT_FOUND,
            code: "notFound",
            message: message.into(),
        }
    }

    fn rate_limited(message: String) -> Self {
        RestError {
            status: StatusCode::TOO_MANY_REQUESTS,
            code: "rateLimited",
            message,
        }
    }

    /// The HTTP status it answers with.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// What went wrong, for people.
    pub fn message(&self) -> &str {
        &self.message
    }

    pub fn internal(message: impl Into<String>) -> Self {
        RestError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            code: "internalError",
            message: message.into(),
        }
    }
}

impl From<StoreError> for RestError {
    fn from(e: StoreError) -> Self {
        tracing::error!(error = %e, "REST read failed");
        RestError::internal(e.to_string())
    }
}

/// The allowance a REST request draws from, for handlers whose work costs more than the one
/// unit charged on entry.
#[derive(Clone)]
pub struct Charge {
    limiter: Arc<ClientLimiter>,
    client: Option<ClientAddr>,
}

impl Charge {
    /// Takes `units` more from the client's allowance, or refuses the request (429).
    pub fn extra(&self, units: u32) -> Result<(), RestError> {
        if units == 0 {
            return Ok(());
        }
        self.limiter
            .admit(self.client, units)
            .map_err(RestError::rate_limited)
    }

    /// Charges for the proofs an answer carries.
    pub fn proofs(&self, proofs: usize) -> Result<(), RestError> {
        self.extra(
            u32::try_from(proofs)
                .unwrap_or(u32::MAX)
                .saturating_mul(PROOF_COST),
        )
    }
}

/// Runs a read of committed state on the blocking pool.
pub(crate) async fn read<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, RestError> + Send + 'static,
) -> Result<T, RestError> {
    trellis_storage::blocking(work).await?
}

impl From<trellis_system::SlotError> for RestError {
    fn from(e: trellis_system::SlotError) -> Self {
        tracing::error!(error = %e, "REST read failed");
        RestError::internal(e.to_string())
    }
}

impl IntoResponse for RestError {
    fn into_response(self) -> Response {
        let body = json!({ "error": { "code": self.code, "message": self.message } });
        (self.status, Json(body)).into_response()
    }
}

/// The REST routes over `backend`, with `pages` (the node's explorer, under `/explorer`)
/// beside them; `host` serves `/v1/chains` (the chains hosted beside this one).
pub fn router<B: Backend>(
    backend: Arc<B>,
    pages: Router,
    metrics: trellis_metrics::RpcMetrics,
    host: Option<Arc<dyn crate::HostControl>>,
) -> Router {
    Router::new()
        .route("/v1/chain", get(crate::chains::rest_status::<B>))
        .route("/v1/chains", get(crate::chains::rest_chains::<B>))
        .with_state(crate::chains::ChainsState {
            backend: backend.clone(),
            host,
        })
        .merge(
            Router::new()
                .route("/health", get(health::<B>))
                .route("/health/ready", get(ready::<B>))
                .route("/1.0/identifiers/{*did}", get(dids::resolve::<B>))
                .route("/v1/evidence/{id}", get(evidence_by_id::<B>))
                .route(
                    "/v1/evidence/{algorithm}/{digest}",
                    get(evidence_by_digest::<B>),
                )
                .fallback(|| async { RestError::not_found("no such endpoint") })
                .with_state(backend.clone()),
        )
        .merge(
            Router::new()
                .route("/api/handles", post(handles::post_batch::<B>))
                .route("/api/handles/{*identifier}", get(handles::get_handle::<B>))
                .with_state(handles::HandleState {
                    cache: handles::HandleCache::start(backend.clone(), metrics),
                    backend,
                }),
        )
        .merge(pages)
}

/// Liveness for load balancers and orchestrators: the chain id and the committed height.
async fn health<B: Backend>(
    State(backend): State<Arc<B>>,
) -> Result<Json<serde_json::Value>, RestError> {
    let reader = backend.clone();
    let height = read(move || Ok(reader.view()?.tip()?.unwrap_or_default())).await?;
    Ok(Json(
        json!({ "status": "ok", "chainId": backend.chain_id(), "height": height.0 }),
    ))
}

/// No block committed here for this long: the chain (or this node) is stalled.
pub const STALLED_AFTER_MS: u64 = 30_000;
/// The committed block is this much older than the clock: the node is catching up.
pub const SYNCING_BEHIND_MS: u64 = 30_000;

/// Why a node should not get traffic yet, if it should not: no peers while other validators
/// exist, no block committed for [`STALLED_AFTER_MS`], or a committed block more than
/// [`SYNCING_BEHIND_MS`] old (catching up). Chains propose an empty block every second or so
/// when idle, so a quiet chain stays ready.
pub fn not_ready(h: &crate::Health) -> Vec<String> {
    let mut reasons = Vec::new();
    if h.validators > 1 && h.peers == Some(0) {
        reasons.push("no peers connected".to_string());
    }
    match h.since_commit_ms {
        Some(ms) if ms > STALLED_AFTER_MS => reasons.push(format!(
            "stalled: no block committed for {} s (height {})",
            ms / 1000,
            h.height
        )),
        _ if h.block_age_ms > SYNCING_BEHIND_MS => reasons.push(format!(
            "syncing: the committed block {} is {} s old",
            h.height,
            h.block_age_ms / 1000
        )),
        _ => {}
    }
    reasons
}

/// Readiness for load balancers and orchestrators: 200 when the node follows the chain, 503
/// with the reasons otherwise.
async fn ready<B: Backend>(State(backend): State<Arc<B>>) -> Response {
    let h = backend.health();
    let reasons = not_ready(&h);
    let body = json!({
        "status": if reasons.is_empty() { "ready" } else { "not ready" },
        "reasons": reasons,
        "chainId": backend.chain_id(),
        "height": h.height,
        "blockAgeMs": h.block_age_ms,
        "sinceCommitMs": h.since_commit_ms,
        "peers": h.peers,
        "validators": h.validators,
    });
    let status = if reasons.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body)).into_response()
}

fn parse_b256(what: &str, s: &str) -> Result<B256, RestError> {
    s.parse::<B256>()
        .map_err(|_| RestError::bad_request(format!("{what} must be 32 bytes of 0x-prefixed hex")))
}

async fn evidence_by_id<B: Backend>(
    State(backend): State<Arc<B>>,
    Extension(charge): Extension<Charge>,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, RestError> {
    let id = parse_b256("evidence id", &id)?;
    charge.proofs(1)?;
    read(move || evidence(&*backend, id)).await
}

async fn evidence_by_digest<B: Backend>(
    State(backend): State<Arc<B>>,
    Extension(charge): Extension<Charge>,
    Path((algorithm, digest)): Path<(String, String)>,
) -> Result<Json<serde_json::Value>, RestError> {
    let algorithm = HashAlgorithm::parse(&algorithm).ok_or_else(|| {
        RestError::bad_request(format!(
            "unknown hash algorithm {algorithm:?} (sha256, keccak256, sm3)"
        ))
    })?;
    let digest = parse_b256("digest", &digest)?;
    charge.proofs(1)?;
    read(move || evidence(&*backend, evidence_id(algorithm, &digest))).await
}

fn evidence<B: Backend>(backend: &B, id: B256) -> Result<Json<serde_json::Value>, RestError> {
    let (record, proof) = evidence_with_proof(backend, id)?;
    Ok(Json(json!({ "record": record, "proof": proof })))
}

/// Evidence record `id` with the proof of it at the finalized tip (404 when absent).
pub fn evidence_with_proof<B: Backend>(
    backend: &B,
    id: B256,
) -> Result<(trellis_system::evidence::Record, StateProof), RestError> {
    let view = backend.view()?;
    let mut slots = trellis_execution::system_slots(&view, EVIDENCE_ADDRESS);
    let record = Evidence::new(&mut slots)
        .get(&id)?
        .ok_or_else(|| RestError::not_found(format!("evidence {id} not found")))?;
    let proof_slots = Evidence::new(&mut slots).proof_slots(&id)?;
    let proof = state_proof(
        backend.chain_id(),
        &view,
        EVIDENCE_ADDRESS,
        &proof_slots
            .iter()
            .map(|s| B256::from(*s))
            .collect::<Vec<_>>(),
    )?;
    Ok((record, proof))
}

/// Proof of `slots` of `address` at the snapshot's (finalized) tip.
pub fn state_proof(
    chain_id: u64,
    view: &StateView,
    address: alloy_primitives::Address,
    slots: &[B256],
) -> Result<StateProof, RestError> {
    let height = view.tip()?.unwrap_or_default();
    let block = view
        .block(height)?
        .ok_or_else(|| RestError::internal(format!("block {height} missing")))?;
    // Genesis has no certificate: it is trusted by its hash.
    let certificate = view.certificate(height)?.unwrap_or_default();
    let proof = trellis_execution::prove_account(view, &address, slots)?;
    let account = proof.account.unwrap_or_default();
    Ok(StateProof {
        chain_id,
        height: height.0,
        header: Bytes::from(alloy_rlp::encode(&block.header)),
        certificate: Bytes::from(certificate),
        address,
        account: ProvenAccount {
            nonce: account.nonce,
            balance: account.balance,
            storage_root: account.storage_root,
            code_hash: account.code_hash,
        },
        account_proof: proof.account_proof,
        storage_proofs: proof
            .storage_proofs
            .into_iter()
            .map(|(slot, value, proof)| SlotProof { slot, value, proof })
            .collect(),
    })
}

/// HTTP middleware putting the REST router in front of the JSON-RPC service.
#[derive(Clone)]
pub struct RestLayer {
    router: Router,
    limiter: Arc<ClientLimiter>,
    metrics: trellis_metrics::RpcMetrics,
}

impl RestLayer {
    pub fn new(
        router: Router,
        limiter: Arc<ClientLimiter>,
        metrics: trellis_metrics::RpcMetrics,
    ) -> Self {
        RestLayer {
            router,
            limiter,
            metrics,
        }
    }
}

impl<S> tower::Layer<S> for RestLayer {
    type Service = RestService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RestService {
            router: self.router.clone(),
            limiter: self.limiter.clone(),
            metrics: self.metrics.clone(),
            inner,
        }
    }
}

#[derive(Clone)]
pub struct RestService<S> {
    router: Router,
    limiter: Arc<ClientLimiter>,
    metrics: trellis_metrics::RpcMetrics,
    inner: S,
}

type RpcBody = jsonrpsee::server::HttpBody;

impl<S, B> tower::Service<http::Request<B>> for RestService<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<RpcBody>>,
    S::Future: Send + 'static,
    B: http_body::Body<Data = bytes::Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Response = http::Response<RpcBody>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let path = request.uri().path();
        if let Some(route) = REST_PREFIXES.iter().copied().find(|p| path.starts_with(p)) {
            let started = std::time::Instant::now();
            let router = self.router.clone();
            let metrics = self.metrics.clone();
            let charge = Charge {
                limiter: self.limiter.clone(),
                client: request.extensions().get::<ClientAddr>().copied(),
            };
            let mut request = request.map(axum::body::Body::new);
            if let Err(refused) = charge.extra(1) {
                let response = refused.into_response().map(RpcBody::new);
                metrics.rate_limited("rest");
                metrics.rest(
                    route,
                    response.status().as_u16(),
                    started.elapsed().as_secs_f64(),
                );
                return Box::pin(async move { Ok(response) });
            }
            request.extensions_mut().insert(charge);
            Box::pin(async move {
                let response = match router.oneshot(request).await {
                    Ok(response) => response,
                    Err(never) => match never {},
                };
                if response.status() == http::StatusCode::TOO_MANY_REQUESTS {
                    metrics.rate_limited("rest");
                }
                metrics.rest(
                    route,
                    response.status().as_u16(),
                    started.elapsed().as_secs_f64(),
                );
                Ok(response.map(RpcBody::new))
            })
        } else {
            Box::pin(self.inner.call(request))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Health;

    #[test]
    fn readiness_names_what_is_wrong() {
        let live = Health {
            height: 10,
            block_age_ms: 900,
            since_commit_ms: Some(900),
            peers: Some(3),
            validators: 4,
        };
        assert!(not_ready(&live).is_empty());
        let alone = Health {
            peers: Some(0),
            validators: 1,
            ..live.clone()
        };
        assert!(
            not_ready(&alone).is_empty(),
            "a single validator needs no peers"
        );
        let cut_off = Health {
            peers: Some(0),
            ..live.clone()
        };
        assert_eq!(not_ready(&cut_off), ["no peers connected"]);
        let stalled = Health {
            since_commit_ms: Some(45_000),
            block_age_ms: 45_000,
            ..live.clone()
        };
        assert_eq!(
            not_ready(&stalled),
            ["stalled: no block committed for 45 s (height 10)"]
        );
        let catching_up = Health {
            block_age_ms: 3_600_000,
            since_commit_ms: Some(5),
            ..live.clone()
        };
        assert_eq!(
            not_ready(&catching_up),
            ["syncing: the committed block 10 is 3600 s old"]
        );
        let restarted_behind = Health {
            block_age_ms: 3_600_000,
            since_commit_ms: None,
            ..live
        };
        assert_eq!(not_ready(&restarted_behind).len(), 1);
    }
}
