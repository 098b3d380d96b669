//! Identifier resolution in the Handle.net proxy's JSON shape:
//! `GET /api/handles/{identifier}[?type=URL&index=1]` and the batch `POST /api/handles`.
//!
//! Answers come from a read-optimised cache of rendered records, kept coherent with finalized
//! state: after each committed block the cache drops every identifier the block's
//! identifiers-contract events name, then advances its height; an entry is used only while the
//! cache is at the committed height, and an entry read from an older snapshot is never stored.

use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use axum::Json;
use base64::Engine;
use bytes::Bytes;
use parking_lot::RwLock;
use serde_json::{json, Value as JsonValue};
use std::collections::HashMap;
use std::sync::Arc;
use tokio::sync::watch;
use trellis_storage::StateView;
use trellis_system::identifiers::{logged_identifier, Identifier, Record, IDENTIFIERS_ADDRESS};
use trellis_system::Identifiers;

use crate::rest::{read, Charge, RestError};
use crate::Backend;

/// Most identifiers one batch request may resolve.
pub const MAX_BATCH: usize = 1_000;
/// Most identifiers one batch may resolve with proofs (`?proof=true`): each proof reads and
/// hashes trie paths and adds kilobytes to the answer.
pub const MAX_PROOF_BATCH: usize = 100;
/// Most entries the cache holds (beyond it, answers are read from state without caching).
const MAX_ENTRIES: usize = 1_000_000;

/// Handle response codes.
const FOUND: u8 = 1;
const ERROR: u8 = 2;
const NOT_FOUND: u8 = 100;
const VALUES_NOT_FOUND: u8 = 200;

/// A resolution as cached: the record (for filtered answers) and the unfiltered body.
enum Resolved {
    Found { record: Record, body: Bytes },
    Missing,
}

impl Resolved {
    fn record(&self) -> Option<&Record> {
        match self {
            Resolved::Found { record, .. } => Some(record),
            Resolved::Missing => None,
        }
    }
}

struct CacheState {
    height: u64,
    entries: HashMap<String, Arc<Resolved>>,
}

/// Resolution cache shared by the REST handlers and the task that follows commits.
pub struct HandleCache {
    state: RwLock<CacheState>,
    committed: watch::Receiver<u64>,
    /// Counts resolutions by where they were answered from.
    metrics: trellis_metrics::RpcMetrics,
}

impl HandleCache {
    /// A cache following `backend`'s commits (spawns the follower on the current runtime).
    pub fn start<B: Backend>(
        backend: Arc<B>,
        metrics: trellis_metrics::RpcMetrics,
    ) -> Arc<HandleCache> {
        let committed = backend.subscribe_heights();
        let height = *committed.borrow();
        let cache = Arc::new(HandleCache {
            state: RwLock::new(CacheState {
                height,
                entries: HashMap::new(),
            }),
            committed: committed.clone(),
            metrics,
        });
        // The follower holds the chain weakly: it must not keep a stopped chain (and its
        // database) alive, and it ends when the chain is dropped (its height sender with it).
        let follower = cache.clone();
        let backend = Arc::downgrade(&backend);
        tokio::spawn(async move { follower.follow(backend, committed).await });
        cache
    }

    async fn follow<B: Backend>(
        &self,
        backend: std::sync::Weak<B>,
        mut committed: watch::Receiver<u64>,
    ) {
        while committed.changed().await.is_ok() {
            let Some(backend) = backend.upgrade() else {
                return;
            };
            let tip = *committed.borrow_and_update();
            let from = self.read_state().height + 1;
            let touched = backend
                .view()
                .map_err(|e| e.to_string())
                .and_then(|view| touched_identifiers(&view, from, tip));
            let mut state = self.write_state();
            match touched {
                Ok(ids) => {
                    for id in ids {
                        state.entries.remove(&id);
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "identifier cache cleared: cannot read committed blocks");
                    state.entries.clear();
                }
            }
            state.height = state.height.max(tip);
        }
    }

    fn read_state(&self) -> parking_lot::RwLockReadGuard<'_, CacheState> {
        self.state.read()
    }

    fn write_state(&self) -> parking_lot::RwLockWriteGuard<'_, CacheState> {
        self.state.write()
    }

    fn lookup(&self, id: &str) -> Option<Arc<Resolved>> {
        let state = self.read_state();
        if state.height != *self.committed.borrow() {
            return None;
        }
        let hit = state.entries.get(id).cloned();
        if hit.is_some() {
            self.metrics.identifier_resolved("cache");
        }
        hit
    }

    fn store(&self, id: &str, at_height: u64, resolved: Arc<Resolved>) {
        let mut state = self.write_state();
        if state.height == at_height && state.entries.len() < MAX_ENTRIES {
            state.entries.insert(id.to_owned(), resolved);
        }
    }
}

fn touched_identifiers(view: &StateView, from: u64, to: u64) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    for height in from..=to {
        let receipts = view
            .receipts(trellis_primitives::Height(height))
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("receipts of block {height} missing"))?;
        for receipt in &receipts {
            for log in receipt.logs() {
                if log.address == IDENTIFIERS_ADDRESS {
                    out.extend(logged_identifier(&log.data));
                }
            }
        }
    }
    Ok(out)
}

fn handle_value(v: &trellis_system::identifiers::Value) -> JsonValue {
    let data = match std::str::from_utf8(&v.data) {
        Ok(s) => json!({ "format": "string", "value": s }),
        Err(_) => json!({
            "format": "base64",
            "value": base64::engine::general_purpose::STANDARD.encode(&v.data),
        }),
    };
    json!({ "index": v.index, "type": v.kind, "data": data, "ttl": v.ttl })
}

fn found_json(id: &str, record: &Record, values: Vec<JsonValue>) -> JsonValue {
    json!({
        "responseCode": FOUND,
        "handle": id,
        "values": values,
        "org": record.org.as_str(),
        "created": record.created,
        "updated": record.updated,
    })
}

/// Which values a request asks for (`type=` and `index=`, repeated or comma-separated).
#[derive(Default)]
struct Filter {
    types: Vec<String>,
    indexes: Vec<u32>,
    /// `proof=true`: answer from one snapshot with a Merkle proof of the record.
    proof: bool,
}

impl Filter {
    fn parse(query: Option<&str>) -> Result<Filter, RestError> {
        let mut filter = Filter::default();
        for (k, v) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
            for part in v.split(',').filter(|p| !p.is_empty()) {
                match k.as_ref() {
                    "type" => filter.types.push(part.to_owned()),
                    "index" => filter.indexes.push(part.parse().map_err(|_| {
                        RestError::bad_request(format!("index {part:?} is not a number"))
                    })?),
                    "proof" => filter.proof = part == "true" || part == "1",
                    _ => {}
                }
            }
        }
        Ok(filter)
    }

    fn is_empty(&self) -> bool {
        self.types.is_empty() && self.indexes.is_empty()
    }

    fn keeps(&self, v: &trellis_system::identifiers::Value) -> bool {
        (self.types.is_empty() || self.types.iter().any(|t| t.eq_ignore_ascii_case(&v.kind)))
            && (self.indexes.is_empty() || self.indexes.contains(&v.index))
    }
}

/// Resolves one identifier: from the cache, or from state (then cached).
fn resolve<B: Backend>(
    backend: &B,
    cache: &HandleCache,
    id: &Identifier,
) -> Result<Arc<Resolved>, RestError> {
    if let Some(hit) = cache.lookup(id.as_str()) {
        return Ok(hit);
    }
    let view = backend.view()?;
    let height = view.tip()?.unwrap_or_default().0;
    let mut own = trellis_execution::system_slots(&view, IDENTIFIERS_ADDRESS);
    let mut gov = trellis_execution::governance_slots(&view);
    cache.metrics.identifier_resolved("state");
    let resolved = Arc::new(match Identifiers::new(&mut own, &mut gov).get(id)? {
        Some(record) => {
            let values = record.values.iter().map(handle_value).collect();
            let body = serde_json::to_vec(&found_json(id.as_str(), &record, values))
                .map_err(|e| RestError::internal(e.to_string()))?;
            Resolved::Found {
                record,
                body: body.into(),
            }
        }
        None => Resolved::Missing,
    });
    cache.store(id.as_str(), height, resolved.clone());
    Ok(resolved)
}

/// The Handle answer for `raw` as (HTTP status, JSON).
fn answer<B: Backend>(
    backend: &B,
    cache: &HandleCache,
    raw: &str,
    filter: &Filter,
) -> Result<(StatusCode, JsonValue), RestError> {
    let id = match Identifier::parse(raw) {
        Ok(id) => id,
        Err(e) => {
            let body = json!({ "responseCode": ERROR, "handle": raw, "message": e.to_string() });
            return Ok((StatusCode::BAD_REQUEST, body));
        }
    };
    if filter.proof {
        return proven(backend, &id, filter);
    }
    Ok(render(raw, resolve(backend, cache, &id)?.record(), filter))
}

/// The Handle answer for a record (or its absence).
fn render(raw: &str, record: Option<&Record>, filter: &Filter) -> (StatusCode, JsonValue) {
    let Some(record) = record else {
        return (
            StatusCode::NOT_FOUND,
            json!({ "responseCode": NOT_FOUND, "handle": raw }),
        );
    };
    let values: Vec<JsonValue> = record
        .values
        .iter()
        .filter(|v| filter.keeps(v))
        .map(handle_value)
        .collect();
    if values.is_empty() && !filter.is_empty() {
        (
            StatusCode::OK,
            json!({ "responseCode": VALUES_NOT_FOUND, "handle": raw, "values": [] }),
        )
    } else {
        (StatusCode::OK, found_json(raw, record, values))
    }
}

/// The answer read straight from one snapshot, with a proof of the record (or of its
/// absence) against that snapshot's finalized header.
/// The record of `id` (`None`: not registered) with the proof of it, or of its absence, at
/// the finalized tip.
pub fn identifier_with_proof<B: Backend>(
    backend: &B,
    id: &Identifier,
) -> Result<(Option<Record>, trellis_system::proof::StateProof), RestError> {
    let view = backend.view()?;
    let mut own = trellis_execution::system_slots(&view, IDENTIFIERS_ADDRESS);
    let mut gov = trellis_execution::governance_slots(&view);
    let mut ids = Identifiers::new(&mut own, &mut gov);
    let record = ids.get(id)?;
    let slots: Vec<alloy_primitives::B256> =
        ids.proof_slots(id)?.into_iter().map(Into::into).collect();
    let proof = crate::rest::state_proof(backend.chain_id(), &view, IDENTIFIERS_ADDRESS, &slots)?;
    Ok((record, proof))
}

fn proven<B: Backend>(
    backend: &B,
    id: &Identifier,
    filter: &Filter,
) -> Result<(StatusCode, JsonValue), RestError> {
    let (record, proof) = identifier_with_proof(backend, id)?;
    let (status, mut body) = render(id.as_str(), record.as_ref(), filter);
    body["proof"] = serde_json::to_value(proof).map_err(|e| RestError::internal(e.to_string()))?;
    Ok((status, body))
}

/// Handler state: the backend and the cache.
pub struct HandleState<B> {
    pub backend: Arc<B>,
    pub cache: Arc<HandleCache>,
}

impl<B> Clone for HandleState<B> {
    fn clone(&self) -> Self {
        HandleState {
            backend: self.backend.clone(),
            cache: self.cache.clone(),
        }
    }
}

/// `GET /api/handles/{identifier}`. A cached answer is served on the spot; anything that
/// reads state runs on the blocking pool.
pub async fn get_handle<B: Backend>(
    State(s): State<HandleState<B>>,
    Extension(charge): Extension<Charge>,
    Path(raw): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Response, RestError> {
    let filter = Filter::parse(query.as_deref())?;
    if filter.proof {
        charge.proofs(1)?;
    }
    let cached = match Identifier::parse(&raw) {
        Ok(id) if !filter.proof => s.cache.lookup(id.as_str()).map(|hit| (id, hit)),
        _ => None,
    };
    let resolved = match cached {
        Some(hit) => Some(hit.1),
        None => {
            let state = s.clone();
            let (raw, proof) = (raw.clone(), filter.proof);
            read(move || match Identifier::parse(&raw) {
                Ok(id) if !proof => resolve(&*state.backend, &state.cache, &id).map(Some),
                _ => Ok(None),
            })
            .await?
        }
    };
    let (status, body) = match resolved {
        // The common case, an unfiltered record, is answered with its stored bytes.
        Some(resolved) => match &*resolved {
            Resolved::Found { body, .. } if filter.is_empty() => {
                return Ok((
                    [(header::CONTENT_TYPE, "application/json")],
                    Body::from(body.clone()),
                )
                    .into_response())
            }
            other => render(&raw, other.record(), &filter),
        },
        // Malformed identifiers and proofs.
        None => read(move || answer(&*s.backend, &s.cache, &raw, &filter)).await?,
    };
    Ok((status, Json(body)).into_response())
}

#[derive(serde::Deserialize)]
pub struct BatchRequest {
    handles: Vec<String>,
}

/// `POST /api/handles` with `{"handles": [...]}`: one Handle answer per identifier, in order.
/// Each identifier counts against the client's allowance (a proof, [`crate::PROOF_COST`]).
pub async fn post_batch<B: Backend>(
    State(s): State<HandleState<B>>,
    Extension(charge): Extension<Charge>,
    RawQuery(query): RawQuery,
    Json(request): Json<BatchRequest>,
) -> Result<Json<JsonValue>, RestError> {
    let filter = Filter::parse(query.as_deref())?;
    let n = request.handles.len();
    let max = if filter.proof {
        MAX_PROOF_BATCH
    } else {
        MAX_BATCH
    };
    if n > max {
        return Err(RestError::bad_request(format!(
            "at most {max} identifiers per batch{}, got {n}",
            if filter.proof { " with proofs" } else { "" }
        )));
    }
    if filter.proof {
        charge.proofs(n)?;
    } else {
        charge.extra(u32::try_from(n.saturating_sub(1)).unwrap_or(u32::MAX))?;
    }
    read(move || {
        let mut results = Vec::with_capacity(n);
        for raw in &request.handles {
            results.push(answer(&*s.backend, &s.cache, raw, &filter)?.1);
        }
        Ok(Json(json!({ "results": results })))
    })
    .await
}
