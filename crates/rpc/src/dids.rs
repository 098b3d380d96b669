//! DID resolution in the DIF Universal Resolver's HTTP shape:
//! `GET /1.0/identifiers/{did}[?versionId=N | ?versionTime=RFC3339]` (docs/did-method.md).

use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};
use trellis_system::dids::{Did, DidError, Version, CONTROLLER_FRAGMENT, DIDS_ADDRESS};
use trellis_system::Dids;

use crate::rest::RestError;
use crate::Backend;

const RESOLUTION_TYPE: &str = "application/ld+json;profile=\"https://w3id.org/did-resolution\"";
const DOCUMENT_TYPE: &str = "application/did+ld+json";

fn xml_time(ms: u64) -> String {
    humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_millis(ms)).to_string()
}

/// The W3C DID Core document of `did` as of version `v`.
pub fn document(did: &Did, v: &Version) -> Value {
    let id = did.to_did_string();
    let d = &v.document;
    let controller = Did {
        chain_id: did.chain_id,
        address: d.controller,
    }
    .to_did_string();
    let reference = |fragment: &String| format!("{id}#{fragment}");
    let mut methods = vec![json!({
        "id": format!("{id}#{CONTROLLER_FRAGMENT}"),
        "type": "EcdsaSecp256k1RecoveryMethod2020",
        "controller": controller,
        "blockchainAccountId": format!("eip155:{}:{:#x}", did.chain_id, d.controller),
    })];
    methods.extend(d.methods.iter().map(|m| {
        json!({
            "id": reference(&m.id),
            "type": m.kind,
            "controller": id,
            "publicKeyMultibase": m.public_key_multibase,
        })
    }));
    let mut authentication = vec![format!("{id}#{CONTROLLER_FRAGMENT}")];
    authentication.extend(
        d.authentication
            .iter()
            .filter(|f| f.as_str() != CONTROLLER_FRAGMENT)
            .map(reference),
    );
    json!({
        "@context": [
            "https://www.w3.org/ns/did/v1",
            "https://w3id.org/security/suites/secp256k1recovery-2020/v2",
        ],
        "id": id,
        "controller": controller,
        "verificationMethod": methods,
        "authentication": authentication,
        "assertionMethod": d.assertion.iter().map(reference).collect::<Vec<_>>(),
        "service": d.services.iter().map(|s| json!({
            "id": reference(&s.id),
            "type": s.kind,
            "serviceEndpoint": s.endpoint,
        })).collect::<Vec<_>>(),
    })
}

fn failure(status: StatusCode, error: &str, message: String) -> Response {
    let body = json!({
        "@context": "https://w3id.org/did-resolution/v1",
        "didDocument": null,
        "didResolutionMetadata": { "error": error, "errorMessage": message },
        "didDocumentMetadata": {},
    });
    (
        status,
        [(header::CONTENT_TYPE, RESOLUTION_TYPE)],
        body.to_string(),
    )
        .into_response()
}

enum Selector {
    Latest,
    Id(u64),
    Time(u64),
}

/// `proof=true` asks for a Merkle proof of the DID's state and the resolved version.
fn wants_proof(query: Option<&str>) -> bool {
    form_urlencoded::parse(query.unwrap_or("").as_bytes())
        .any(|(k, v)| k == "proof" && (v == "true" || v == "1"))
}

fn selector(query: Option<&str>) -> Result<Selector, String> {
    let mut out = Selector::Latest;
    for (k, v) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        match k.as_ref() {
            "versionId" => {
                out = Selector::Id(
                    v.parse()
                        .map_err(|_| format!("versionId {v:?} is not a version number"))?,
                )
            }
            "versionTime" => {
                let t = humantime::parse_rfc3339_weak(&v)
                    .map_err(|_| format!("versionTime {v:?} is not an RFC 3339 time"))?;
                let ms = t
                    .duration_since(UNIX_EPOCH)
                    .map_err(|_| format!("versionTime {v:?} is before 1970"))?
                    .as_millis();
                out = Selector::Time(u64::try_from(ms).unwrap_or(u64::MAX));
            }
            _ => {}
        }
    }
    Ok(out)
}

/// `GET /1.0/identifiers/{did}`.
pub async fn resolve<B: Backend>(
    State(backend): State<Arc<B>>,
    Extension(charge): Extension<crate::rest::Charge>,
    Path(raw): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Result<Response, RestError> {
    let did = match Did::parse(&raw) {
        Ok(did) => did,
        Err(e @ DidError::MethodNotSupported(_)) => {
            return Ok(failure(
                StatusCode::NOT_IMPLEMENTED,
                "methodNotSupported",
                e.to_string(),
            ))
        }
        Err(e) => {
            return Ok(failure(
                StatusCode::BAD_REQUEST,
                "invalidDid",
                e.to_string(),
            ))
        }
    };
    let selector = match selector(query.as_deref()) {
        Ok(s) => s,
        Err(m) => return Ok(failure(StatusCode::BAD_REQUEST, "invalidOptions", m)),
    };
    if did.chain_id != backend.chain_id() {
        return Ok(failure(
            StatusCode::NOT_FOUND,
            "notFound",
            format!(
                "this node serves chain {}, not {}",
                backend.chain_id(),
                did.chain_id
            ),
        ));
    }
    let proof = wants_proof(query.as_deref());
    if proof {
        charge.proofs(1)?;
    }
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|a| a.to_str().ok())
        .unwrap_or("")
        .to_owned();
    crate::rest::read(move || answer(&*backend, &did, selector, proof, &accept)).await
}

/// The resolution of `did` from one snapshot of committed state.
/// The proof of `did`'s state and of its version `version` at the snapshot's tip.
fn version_proof(
    chain_id: u64,
    view: &trellis_storage::StateView,
    did: &Did,
    version: u64,
) -> Result<trellis_system::proof::StateProof, RestError> {
    let mut slots = trellis_execution::system_slots(view, DIDS_ADDRESS);
    let proven: Vec<alloy_primitives::B256> = Dids::new(&mut slots)
        .proof_slots(&did.address, version)?
        .into_iter()
        .map(Into::into)
        .collect();
    crate::rest::state_proof(chain_id, view, DIDS_ADDRESS, &proven)
}

/// The latest version of `did` (`None`: never created) with the proof of it at the finalized
/// tip.
pub fn latest_with_proof<B: Backend>(
    backend: &B,
    did: &Did,
) -> Result<Option<(Version, trellis_system::proof::StateProof)>, RestError> {
    let view = backend.view()?;
    let mut slots = trellis_execution::system_slots(&view, DIDS_ADDRESS);
    let Some(latest) = Dids::new(&mut slots).latest(&did.address)? else {
        return Ok(None);
    };
    let proof = version_proof(backend.chain_id(), &view, did, latest.version)?;
    Ok(Some((latest, proof)))
}

fn answer<B: Backend>(
    backend: &B,
    did: &Did,
    selector: Selector,
    proof: bool,
    accept: &str,
) -> Result<Response, RestError> {
    let view = backend.view()?;
    let mut slots = trellis_execution::system_slots(&view, DIDS_ADDRESS);
    let mut dids = Dids::new(&mut slots);
    let not_found = |m: String| Ok(failure(StatusCode::NOT_FOUND, "notFound", m));
    let Some(latest) = dids.latest(&did.address)? else {
        return not_found(format!("{} does not exist", did.to_did_string()));
    };
    let chosen = match selector {
        Selector::Latest => Some(latest.clone()),
        Selector::Id(n) => dids.version(&did.address, n)?,
        Selector::Time(t) => {
            // Versions are numbered in time order: find the last one from t's second or
            // before by bisection (a DID may have any number of versions). Times are
            // published to the second, so a version counts from its second on.
            let (mut lo, mut hi) = (1u64, latest.version);
            let mut found = None;
            while lo <= hi {
                let mid = lo + (hi - lo) / 2;
                match dids.version(&did.address, mid)? {
                    Some(v) if v.timestamp_ms / 1000 <= t / 1000 => {
                        found = Some(v);
                        lo = mid + 1;
                    }
                    Some(_) => hi = mid - 1,
                    None => {
                        return Err(RestError::internal(format!(
                            "{} lost version {mid}",
                            did.to_did_string()
                        )))
                    }
                }
            }
            found
        }
    };
    let Some(version) = chosen else {
        return not_found(format!("{} has no such version", did.to_did_string()));
    };
    let created = dids
        .first(&did.address)?
        .map_or(version.timestamp_ms, |v| v.timestamp_ms);
    let mut metadata = json!({
        "created": xml_time(created),
        "versionId": version.version.to_string(),
        "deactivated": version.deactivated,
    });
    if version.version > 1 {
        metadata["updated"] = json!(xml_time(version.timestamp_ms));
    }
    if version.version < latest.version {
        metadata["nextVersionId"] = json!((version.version + 1).to_string());
    }
    let doc = document(did, &version);
    let status = if version.deactivated {
        StatusCode::GONE
    } else {
        StatusCode::OK
    };
    if accept.contains("application/did+ld+json") || accept.contains("application/did+json") {
        return Ok((
            status,
            [(header::CONTENT_TYPE, DOCUMENT_TYPE)],
            doc.to_string(),
        )
            .into_response());
    }
    let mut body = json!({
        "@context": "https://w3id.org/did-resolution/v1",
        "didDocument": doc,
        "didResolutionMetadata": { "contentType": DOCUMENT_TYPE },
        "didDocumentMetadata": metadata,
    });
    if proof {
        let proof = version_proof(backend.chain_id(), &view, did, version.version)?;
        body["proof"] =
            serde_json::to_value(proof).map_err(|e| RestError::internal(e.to_string()))?;
    }
    Ok((
        status,
        [(header::CONTENT_TYPE, RESOLUTION_TYPE)],
        body.to_string(),
    )
        .into_response())
}
