//! What a node hands a light client so it can check system-contract state without trusting
//! the node: a finalized header, its commit certificate, and Merkle proofs of one contract
//! account and some of its storage slots against the header's state root.
//!
//! Nodes build it (the REST server); the SDK verifies it (`trellis_sdk::proof`).

use alloy_primitives::{Address, Bytes, B256, U256};
use serde::{Deserialize, Serialize};

/// Proof of some storage slots of `address` at a finalized height.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StateProof {
    pub chain_id: u64,
    pub height: u64,
    /// RLP encoding of the block header at `height` (its keccak-256 is the block hash).
    pub header: Bytes,
    /// The commit certificate of `height`, encoded as nodes store and sync it.
    pub certificate: Bytes,
    pub address: Address,
    pub account: ProvenAccount,
    /// Trie nodes from the state root to the account's leaf.
    pub account_proof: Vec<Bytes>,
    pub storage_proofs: Vec<SlotProof>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProvenAccount {
    pub nonce: u64,
    pub balance: U256,
    pub storage_root: B256,
    pub code_hash: B256,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlotProof {
    pub slot: B256,
    pub value: U256,
    /// Trie nodes from the storage root to the slot's leaf (or to where it would be).
    pub proof: Vec<Bytes>,
}
