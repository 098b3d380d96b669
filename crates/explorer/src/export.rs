//! Audit log export: CSV (RFC 4180, via the `csv` crate) and JSON, oldest first, up to
//! [`MAX_ROWS`] entries a file from `?offset=N`, each row with its block number and hash and
//! its transaction hash, so that a regulator can check every row against the chain.

use alloy_primitives::{Address, B256};
use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Extension;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::Arc;
use trellis_execution::{governance_slots, ViewSlots};
use trellis_primitives::Height;
use trellis_rpc::Backend;
use trellis_system::{Governance, SlotError};

use crate::pages::{read, PageError};
use crate::Explorer;
use trellis_rpc::rest::{Charge, RestError};
use trellis_system::GOVERNANCE_ADDRESS;

/// Most entries one export file holds.
pub const MAX_ROWS: u64 = 1_000;

/// One audit entry as exported.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditRow {
    pub seq: u64,
    pub block_number: u64,
    pub block_hash: B256,
    /// Zero for entries written at the end of a block (proposals taking effect).
    pub transaction_hash: B256,
    pub action: String,
    pub org: String,
    pub actor: Address,
    pub detail: String,
}

#[derive(Deserialize)]
pub struct Range {
    offset: Option<u64>,
    limit: Option<u64>,
}

async fn rows<B: Backend>(x: &Arc<Explorer<B>>, range: Range) -> Result<Vec<AuditRow>, PageError> {
    let offset = range.offset.unwrap_or(0);
    let limit = range.limit.unwrap_or(MAX_ROWS);
    if limit == 0 || limit > MAX_ROWS {
        return Err(PageError::bad_request(format!(
            "limit must be 1 to {MAX_ROWS}"
        )));
    }
    read(x, move |_, view| {
        let mut slots = governance_slots(view);
        let mut gov = Governance::new(&mut slots);
        let end = gov
            .config()
            .map_err(PageError::internal)?
            .audits
            .min(offset.saturating_add(limit));
        let mut hashes: HashMap<u64, B256> = HashMap::new();
        let mut out = Vec::new();
        for seq in offset..end {
            let Some(entry) = gov.audit_entry(seq).map_err(PageError::internal)? else {
                continue;
            };
            let block_hash = match hashes.get(&entry.height) {
                Some(h) => *h,
                None => {
                    let h = view
                        .block(Height(entry.height))
                        .map_err(PageError::internal)?
                        .map(|b| b.header.hash())
                        .unwrap_or_default();
                    hashes.insert(entry.height, h);
                    h
                }
            };
            out.push(AuditRow {
                seq: entry.seq,
                block_number: entry.height,
                block_hash,
                transaction_hash: entry.tx_hash,
                action: entry.action,
                org: entry.org,
                actor: entry.actor,
                detail: entry.detail,
            });
        }
        Ok(out)
    })
    .await
}

pub(crate) async fn audit_csv<B: Backend>(
    State(x): State<Arc<Explorer<B>>>,
    Query(range): Query<Range>,
) -> Result<Response, PageError> {
    csv_file(
        &[
            "seq",
            "blockNumber",
            "blockHash",
            "transactionHash",
            "action",
            "org",
            "actor",
            "detail",
        ],
        &rows(&x, range).await?,
        "trellis-audit.csv",
    )
}

pub(crate) async fn audit_json<B: Backend>(
    State(x): State<Arc<Explorer<B>>>,
    Query(range): Query<Range>,
) -> Result<Response, PageError> {
    let rows = rows(&x, range).await?;
    Ok(axum::Json(rows).into_response())
}

/// Most entries one proof bundle holds (`trellis_sdk::audit::MAX_BUNDLE`).
const MAX_BUNDLE: u64 = 100;

/// A run of entries (JSON) and the storage slots that prove it.
type Proven = (serde_json::Value, Vec<alloy_primitives::U256>);

/// A proof bundle of a run of a governance list at the finalized tip: `items(gov, from,
/// end)` gives the run's entries (JSON) and the slots proving them; `total(gov)` the list's
/// length. Answers `{chainId, from, <name>: [...], proof}` with one storage proof of the
/// run and of its length. Costs the client [`trellis_rpc::PROOF_COST`] per entry asked for.
async fn governance_bundle<B: Backend>(
    x: Arc<Explorer<B>>,
    charge: Charge,
    range: Range,
    name: &'static str,
    total: fn(&mut Governance<'_, ViewSlots<'_>>) -> Result<u64, SlotError>,
    items: fn(&mut Governance<'_, ViewSlots<'_>>, u64, u64) -> Result<Proven, SlotError>,
) -> Result<axum::Json<serde_json::Value>, RestError> {
    let from = range.offset.unwrap_or(0);
    let limit = range.limit.unwrap_or(MAX_BUNDLE);
    if limit == 0 || limit > MAX_BUNDLE {
        return Err(RestError::bad_request(format!(
            "limit must be 1 to {MAX_BUNDLE}"
        )));
    }
    charge.proofs(limit as usize)?;
    let backend = x.backend.clone();
    trellis_storage::blocking(move || {
        let view = backend.view()?;
        let mut slots = governance_slots(&view);
        let mut gov = Governance::new(&mut slots);
        let total = total(&mut gov)?;
        if from > total {
            return Err(RestError::not_found(format!(
                "the list holds {total} entries; none from {from}"
            )));
        }
        let end = total.min(from.saturating_add(limit));
        let (entries, proven) = items(&mut gov, from, end)?;
        let proof = trellis_rpc::rest::state_proof(
            backend.chain_id(),
            &view,
            GOVERNANCE_ADDRESS,
            &proven.into_iter().map(B256::from).collect::<Vec<_>>(),
        )?;
        Ok(axum::Json(serde_json::json!({
            "chainId": backend.chain_id(),
            "from": from,
            name: entries,
            "proof": proof,
        })))
    })
    .await
    .map_err(|e| RestError::internal(e.to_string()))?
}

/// A proof bundle of audit entries `offset..offset + limit` (at most 100): the entries and
/// one storage proof of them and of the configuration record that counts them.
pub(crate) async fn audit_bundle<B: Backend>(
    State(x): State<Arc<Explorer<B>>>,
    Extension(charge): Extension<Charge>,
    Query(range): Query<Range>,
) -> Result<axum::Json<serde_json::Value>, RestError> {
    governance_bundle(
        x,
        charge,
        range,
        "entries",
        |gov| Ok(gov.config()?.audits),
        |gov, from, end| {
            let mut entries = Vec::new();
            let mut proven = gov.config_proof_slots()?;
            for seq in from..end {
                entries.extend(gov.audit_entry(seq)?);
                proven.extend(gov.audit_proof_slots(seq)?);
            }
            Ok((serde_json::json!(entries), proven))
        },
    )
    .await
}

/// A proof bundle of the freeze list from `offset`, at most `limit` (100) addresses: the
/// frozen addresses and one storage proof of them and of the list's length.
pub(crate) async fn frozen_bundle<B: Backend>(
    State(x): State<Arc<Explorer<B>>>,
    Extension(charge): Extension<Charge>,
    Query(range): Query<Range>,
) -> Result<axum::Json<serde_json::Value>, RestError> {
    governance_bundle(
        x,
        charge,
        range,
        "frozen",
        |gov| gov.frozen_count(),
        |gov, from, end| {
            let frozen = gov.frozen(from, end - from)?;
            let proven = gov.frozen_proof_slots(from, end - from)?;
            Ok((serde_json::json!(frozen), proven))
        },
    )
    .await
}

/// One frozen account or contract as exported, with the proposal that froze it when known.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FrozenRow {
    pub address: Address,
    /// The block at whose end the freeze took effect, and its hash (the votes' transactions
    /// are in the audit log).
    pub block_number: Option<u64>,
    pub block_hash: Option<B256>,
    pub proposal_id: Option<u64>,
    pub proposed_at: Option<u64>,
    pub proposer_org: Option<String>,
    pub proposer: Option<Address>,
    /// Approving organisations, `;`-separated.
    pub approvals: String,
    /// The supervisor organisations among them, `;`-separated.
    pub supervisor_cosigners: String,
}

async fn frozen_rows<B: Backend>(
    x: &Arc<Explorer<B>>,
    range: Range,
) -> Result<Vec<FrozenRow>, PageError> {
    let offset = range.offset.unwrap_or(0);
    let limit = range.limit.unwrap_or(MAX_ROWS);
    if limit == 0 || limit > MAX_ROWS {
        return Err(PageError::bad_request(format!(
            "limit must be 1 to {MAX_ROWS}"
        )));
    }
    read(x, move |_, view| {
        let mut slots = governance_slots(view);
        let mut gov = Governance::new(&mut slots);
        let frozen = gov.frozen(offset, limit).map_err(PageError::internal)?;
        let by = crate::pages::freezes(&mut gov)?;
        let mut out = Vec::new();
        for address in frozen {
            let row = match by.get(&address) {
                Some((p, votes)) => FrozenRow {
                    address,
                    block_number: Some(p.effective_height),
                    block_hash: view
                        .block(Height(p.effective_height))
                        .map_err(PageError::internal)?
                        .map(|b| b.header.hash()),
                    proposal_id: Some(p.id),
                    proposed_at: Some(p.created_at),
                    proposer_org: Some(p.proposer_org.to_string()),
                    proposer: Some(p.proposer),
                    approvals: votes
                        .approvals
                        .iter()
                        .map(|o| o.as_str())
                        .collect::<Vec<_>>()
                        .join(";"),
                    supervisor_cosigners: crate::pages::supervisors_among(
                        &mut gov,
                        &votes.approvals,
                    )?
                    .join(";"),
                },
                None => FrozenRow {
                    address,
                    block_number: None,
                    block_hash: None,
                    proposal_id: None,
                    proposed_at: None,
                    proposer_org: None,
                    proposer: None,
                    approvals: String::new(),
                    supervisor_cosigners: String::new(),
                },
            };
            out.push(row);
        }
        Ok(out)
    })
    .await
}

pub(crate) async fn frozen_csv<B: Backend>(
    State(x): State<Arc<Explorer<B>>>,
    Query(range): Query<Range>,
) -> Result<Response, PageError> {
    csv_file(
        &[
            "address",
            "blockNumber",
            "blockHash",
            "proposalId",
            "proposedAt",
            "proposerOrg",
            "proposer",
            "approvals",
            "supervisorCosigners",
        ],
        &frozen_rows(&x, range).await?,
        "trellis-frozen.csv",
    )
}

/// A CSV download: the `columns` row (also when there are no rows), then `rows`.
fn csv_file<T: Serialize>(
    columns: &[&str],
    rows: &[T],
    filename: &str,
) -> Result<Response, PageError> {
    let mut out = csv::WriterBuilder::new()
        .has_headers(false)
        .from_writer(Vec::new());
    out.write_record(columns).map_err(PageError::internal)?;
    for row in rows {
        out.serialize(row).map_err(PageError::internal)?;
    }
    let body = out.into_inner().map_err(PageError::internal)?;
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{filename}\""),
            ),
        ],
        body,
    )
        .into_response())
}

pub(crate) async fn frozen_json<B: Backend>(
    State(x): State<Arc<Explorer<B>>>,
    Query(range): Query<Range>,
) -> Result<Response, PageError> {
    Ok(axum::Json(frozen_rows(&x, range).await?).into_response())
}
