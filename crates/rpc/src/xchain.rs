//! Proofs of cross-chain state (`ITrellisCrossChain.Proof`): what a courier submits with a
//! message, an acknowledgement or a timeout, built from one snapshot of the proving chain.

use alloy_primitives::{B256, U256};
use trellis_storage::{StateView, StoreError};
use trellis_system::xchain::abi;
use trellis_system::XCHAIN_ADDRESS;

/// The one-hop proof of word `slot` of the cross-chain contract in `view`'s state, at
/// `view`'s tip (the height the receiving chain must have anchored), ABI-encoded; and that
/// height.
pub fn word_proof(view: &StateView, slot: U256) -> Result<(u64, Vec<u8>), StoreError> {
    let height = view.tip()?.map_or(0, |h| h.0);
    let proof = trellis_execution::prove_account(view, &XCHAIN_ADDRESS, &[B256::from(slot)])?;
    let account = proof.account.unwrap_or_default();
    let slot_proof = proof
        .storage_proofs
        .into_iter()
        .next()
        .map(|(_, _, nodes)| nodes)
        .unwrap_or_default();
    let encoded = trellis_system::xchain::encode_proof(&abi::Proof {
        height,
        account: abi::AccountProof {
            nonce: account.nonce,
            balance: account.balance,
            storageRoot: account.storage_root,
            codeHash: account.code_hash,
            nodes: proof.account_proof,
        },
        slotProof: slot_proof,
        via: Vec::new(),
    });
    Ok((height, encoded))
}
