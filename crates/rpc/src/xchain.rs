//! Proofs of cross-chain state (`ITrellisCrossChain.Proof`): what a courier submits with a
//! message, an acknowledgement or a timeout, built from one snapshot of the proving chain —
//! and, for a chain the destination does not follow, the hop through the destination's hub.

use alloy_primitives::{B256, U256};
use trellis_storage::{StateView, StoreError};
use trellis_system::xchain::{self, abi};
use trellis_system::{clients, SlotError, LIGHT_CLIENTS_ADDRESS, XCHAIN_ADDRESS};

/// Why a proof could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ProofError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Slots(#[from] SlotError),
}

/// `view`'s tip height (0 before the first block).
fn tip(view: &StateView) -> Result<u64, StoreError> {
    Ok(view.tip()?.map_or(0, |h| h.0))
}

/// The account fields of a proof, as the contract takes them.
fn account_proof(proof: &trellis_execution::AccountProof) -> abi::AccountProof {
    let account = proof.account.unwrap_or_default();
    abi::AccountProof {
        nonce: account.nonce,
        balance: account.balance,
        storageRoot: account.storage_root,
        codeHash: account.code_hash,
        nodes: proof.account_proof.clone(),
    }
}

/// The one-hop proof of word `slot` of the cross-chain contract in `view`'s state, at
/// `view`'s tip (`proof.height`: the height the receiving chain must have anchored).
/// [`xchain::encode_proof`] makes the call's argument of it.
pub fn word_proof(view: &StateView, slot: U256) -> Result<abi::Proof, StoreError> {
    let height = tip(view)?;
    let mut proof = trellis_execution::prove_account(view, &XCHAIN_ADDRESS, &[B256::from(slot)])?;
    let slot_proof = proof
        .storage_proofs
        .pop()
        .map(|(_, _, nodes)| nodes)
        .unwrap_or_default();
    Ok(abi::Proof {
        height,
        account: account_proof(&proof),
        slotProof: slot_proof,
        via: Vec::new(),
    })
}

/// The hop through `hub` (the chain of `view`) for a proof against `chain`'s header at
/// `height`: the hub's light-client record of that header and its status word of its client of
/// `chain` (not frozen, not reset above `height`: the destination checks), at `view`'s tip (which the destination must have anchored). `None`
/// while the hub has not anchored that height.
pub fn hub_hop(
    view: &StateView,
    hub: u64,
    chain: u64,
    height: u64,
) -> Result<Option<abi::Hop>, ProofError> {
    let mut slots = trellis_execution::system_slots(view, LIGHT_CLIENTS_ADDRESS);
    let Some(len) = xchain::hub_record_len(&mut slots, chain, height)? else {
        return Ok(None);
    };
    let record = xchain::hub_anchor_slots(chain, height, len);
    let asked: Vec<B256> = record
        .iter()
        .chain([&clients::status_slot(chain)])
        .map(|s| B256::from(*s))
        .collect();
    let mut proof = trellis_execution::prove_account(view, &LIGHT_CLIENTS_ADDRESS, &asked)?;
    let status = proof.storage_proofs.pop();
    let (values, slot_proofs) = proof
        .storage_proofs
        .iter()
        .map(|(_, value, nodes)| (*value, nodes.clone()))
        .unzip();
    Ok(Some(abi::Hop {
        chainId: hub,
        height: tip(view)?,
        account: account_proof(&proof),
        values,
        slotProofs: slot_proofs,
        statusWord: status.as_ref().map_or(U256::ZERO, |(_, word, _)| *word),
        statusProof: status.map(|(_, _, nodes)| nodes).unwrap_or_default(),
    }))
}
