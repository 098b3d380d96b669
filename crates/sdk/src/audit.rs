//! Verifiable audit exports: a run of governance audit entries (or of the freeze list) with
//! the storage proof that backs them, checked offline against a trusted validator set.
//!
//! A node serves a bundle (`GET /explorer/audit.bundle?offset=N&limit=M`, at most
//! [`MAX_BUNDLE`] entries): the entries, and one proof of the governance contract's state at a
//! finalized height covering each entry's slots and the configuration record (which holds
//! the number of entries). [`verify`] checks the header's commit certificate, the account and
//! slot proofs, decodes every entry from the proven slots alone and compares it with the
//! served one, so neither a changed entry nor a hidden one inside the range passes. `trellis
//! audit export` writes bundles covering the whole log; `trellis audit verify` checks them
//! (and a CSV export against them).

use crate::proof::ProvenStorage as _;
use alloy_primitives::{Address, B256};
use serde::{Deserialize, Serialize};
use trellis_system::governance::AuditEntry;
use trellis_system::proof::StateProof;
use trellis_system::{Governance, GOVERNANCE_ADDRESS};

use crate::proof::{self, Trusted, VerifyError};
use crate::rest::{RestClient, RestError};

/// Most entries one bundle holds (its proof grows with each).
pub const MAX_BUNDLE: u64 = 100;

/// Audit entries `from..from + entries.len()` with their proof.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditBundle {
    pub chain_id: u64,
    pub from: u64,
    pub entries: Vec<AuditEntry>,
    pub proof: StateProof,
}

/// What a bundle proved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedAudit {
    pub entries: Vec<AuditEntry>,
    /// Entries the log held at the proven height.
    pub total: u64,
    /// Height and hash of the finalized block whose state holds them.
    pub proven_at: u64,
    pub block_hash: B256,
    /// Precommit signatures the block's certificate carries.
    pub signatures: usize,
}

/// Verifies `bundle` without trusting the node that served it.
pub fn verify(bundle: &AuditBundle, trusted: &Trusted) -> Result<VerifiedAudit, VerifyError> {
    let state = proof::verify_contract(&bundle.proof, trusted, GOVERNANCE_ADDRESS)?;
    let mut slots = state.storage();
    let mut gov = Governance::new(&mut slots);
    let not_proven = |e: trellis_system::SlotError| VerifyError::NotProven(e.to_string());
    let total = gov.config().map_err(not_proven)?.audits;
    for (i, entry) in bundle.entries.iter().enumerate() {
        let seq = bundle.from + i as u64;
        let proven = gov
            .audit_entry(seq)
            .map_err(not_proven)?
            .ok_or_else(|| VerifyError::NotProven(format!("audit entry {seq} is absent")))?;
        if &proven != entry {
            return Err(VerifyError::NotProven(format!(
                "audit entry {seq} differs from the proven one"
            )));
        }
    }
    Ok(VerifiedAudit {
        entries: bundle.entries.clone(),
        total,
        proven_at: state.header.height,
        block_hash: state.header.hash(),
        signatures: signatures(&bundle.proof),
    })
}

/// Frozen addresses `from..from + frozen.len()` of the freeze list, with their proof.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FrozenBundle {
    pub chain_id: u64,
    pub from: u64,
    pub frozen: Vec<Address>,
    pub proof: StateProof,
}

/// What a freeze-list bundle proved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedFrozen {
    pub frozen: Vec<Address>,
    /// Addresses the freeze list held at the proven height.
    pub total: u64,
    pub proven_at: u64,
    pub block_hash: B256,
    pub signatures: usize,
}

/// Verifies a freeze-list bundle without trusting the node that served it: the addresses
/// are decoded from the proven slots and must equal the served ones; `total` (proven too)
/// tells whether the list goes on.
pub fn verify_frozen(
    bundle: &FrozenBundle,
    trusted: &Trusted,
) -> Result<VerifiedFrozen, VerifyError> {
    let state = proof::verify_contract(&bundle.proof, trusted, GOVERNANCE_ADDRESS)?;
    let mut slots = state.storage();
    let mut gov = Governance::new(&mut slots);
    let not_proven = |e: trellis_system::SlotError| VerifyError::NotProven(e.to_string());
    let total = gov.frozen_count().map_err(not_proven)?;
    let proven = gov
        .frozen(bundle.from, bundle.frozen.len() as u64)
        .map_err(not_proven)?;
    if proven != bundle.frozen {
        return Err(VerifyError::NotProven(format!(
            "the frozen addresses from {} differ from the proven ones",
            bundle.from
        )));
    }
    Ok(VerifiedFrozen {
        frozen: proven,
        total,
        proven_at: state.header.height,
        block_hash: state.header.hash(),
        signatures: signatures(&bundle.proof),
    })
}

fn signatures(proof: &StateProof) -> usize {
    trellis_light::decode_certificate(&proof.certificate)
        .map(|c| c.signatures.len())
        .unwrap_or_default()
}

/// `GET /explorer/frozen.bundle?offset=N&limit=M`.
pub async fn frozen_bundle(
    client: &RestClient,
    from: u64,
    limit: u64,
) -> Result<FrozenBundle, RestError> {
    client
        .get(&format!(
            "/explorer/frozen.bundle?offset={from}&limit={limit}"
        ))
        .await
}

/// `GET /explorer/audit.bundle?offset=N&limit=M`.
pub async fn bundle(client: &RestClient, from: u64, limit: u64) -> Result<AuditBundle, RestError> {
    client
        .get(&format!(
            "/explorer/audit.bundle?offset={from}&limit={limit}"
        ))
        .await
}
