//! State commitment: an Ethereum Merkle-Patricia state root over the committed state plus a
//! block's changes, so that `eth_getProof`-style proofs stay possible.
//!
//! The root is rebuilt from the hashed tables on every block (O(accounts)); changed storage
//! tries are rebuilt per touched account. Incremental tries are future work once state
//! sizes demand it (see docs/BENCHMARKS.md).

use alloy_primitives::{keccak256, B256, U256};
use alloy_trie::TrieAccount;
use std::collections::BTreeMap;
use trellis_storage::{AccountState, StateChanges, StateView, StoreError, EMPTY_ROOT};

fn trie_account(acc: &AccountState) -> TrieAccount {
    TrieAccount {
        nonce: acc.nonce,
        balance: acc.balance,
        storage_root: acc.storage_root,
        code_hash: acc.code_hash,
    }
}

fn storage_root_of(
    view: &StateView,
    changes: &StateChanges,
    address: &alloy_primitives::Address,
    previous: Option<&AccountState>,
) -> Result<B256, StoreError> {
    let wiped = changes.wiped_storage.contains(address);
    let slot_changes = changes.storage.get(address);
    if !wiped && slot_changes.is_none_or(|s| s.is_empty()) {
        return Ok(previous.map(|p| p.storage_root).unwrap_or(EMPTY_ROOT));
    }
    let hashed = keccak256(address);
    let mut slots: BTreeMap<B256, U256> = BTreeMap::new();
    if !wiped {
        view.for_each_hashed_slot(&hashed, |k, v| {
            slots.insert(k, v);
        })?;
    }
    for (slot, value) in slot_changes.into_iter().flatten() {
        let key = keccak256(slot.to_be_bytes::<32>());
        if value.is_zero() {
            slots.remove(&key);
        } else {
            slots.insert(key, *value);
        }
    }
    Ok(alloy_trie::root::storage_root(slots))
}

/// Fills in the storage roots of changed accounts and returns the new state root.
pub fn finalize_state_root(
    view: &StateView,
    changes: &mut StateChanges,
) -> Result<B256, StoreError> {
    let addresses: Vec<_> = changes.accounts.keys().copied().collect();
    for address in addresses {
        let previous = view.account(&address)?;
        let root = storage_root_of(view, changes, &address, previous.as_ref())?;
        if let Some(Some(acc)) = changes.accounts.get_mut(&address) {
            acc.storage_root = root;
        }
    }
    state_root(view, changes)
}

/// State root of `view` with `changes` (whose storage roots are already filled in) applied.
pub fn state_root(view: &StateView, changes: &StateChanges) -> Result<B256, StoreError> {
    let pending: BTreeMap<B256, Option<AccountState>> = changes
        .accounts
        .iter()
        .map(|(a, acc)| (keccak256(a), *acc))
        .collect();
    let mut pending = pending.into_iter().peekable();
    let mut leaves: Vec<(B256, TrieAccount)> = Vec::new();
    view.for_each_hashed_account(|key, acc| {
        while let Some((pk, pacc)) = pending.next_if(|(pk, _)| *pk < key) {
            if let Some(p) = pacc {
                leaves.push((pk, trie_account(&p)));
            }
        }
        match pending.next_if(|(pk, _)| *pk == key) {
            Some((_, Some(p))) => leaves.push((key, trie_account(&p))),
            Some((_, None)) => {}
            None => leaves.push((key, trie_account(&acc))),
        }
    })?;
    for (pk, pacc) in pending {
        if let Some(p) = pacc {
            leaves.push((pk, trie_account(&p)));
        }
    }
    Ok(alloy_trie::root::state_root(leaves))
}

/// State root of `changes` applied to an empty state (genesis), filling in storage roots.
pub fn fresh_state_root(changes: &mut StateChanges) -> B256 {
    for (address, account) in changes.accounts.iter_mut() {
        let Some(acc) = account else { continue };
        acc.storage_root = match changes.storage.get(address) {
            Some(slots) => alloy_trie::root::storage_root_unsorted(
                slots
                    .iter()
                    .filter(|(_, v)| !v.is_zero())
                    .map(|(k, v)| (keccak256(k.to_be_bytes::<32>()), *v)),
            ),
            None => EMPTY_ROOT,
        };
    }
    alloy_trie::root::state_root_unsorted(
        changes
            .accounts
            .iter()
            .filter_map(|(a, acc)| acc.as_ref().map(|acc| (keccak256(a), trie_account(acc)))),
    )
}

/// Merkle proofs of one account and some of its storage slots against the state root.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccountProof {
    /// `None` when the account does not exist (the proof then proves its absence).
    pub account: Option<AccountState>,
    /// Trie nodes from the root to the account's leaf, RLP-encoded.
    pub account_proof: Vec<alloy_primitives::Bytes>,
    /// (slot, value, nodes from the storage root to the slot's leaf).
    pub storage_proofs: Vec<(B256, U256, Vec<alloy_primitives::Bytes>)>,
}

/// Builds the proof by rebuilding the tries with a proof retainer (O(state), like the root).
pub fn prove_account(
    view: &StateView,
    address: &alloy_primitives::Address,
    slots: &[B256],
) -> Result<AccountProof, StoreError> {
    use alloy_rlp::Encodable;
    use alloy_trie::proof::ProofRetainer;
    use alloy_trie::{HashBuilder, Nibbles};

    let hashed = keccak256(address);
    let target = Nibbles::unpack(hashed);
    let mut builder = HashBuilder::default().with_proof_retainer(ProofRetainer::new(vec![target]));
    let mut buf = Vec::new();
    view.for_each_hashed_account(|key, acc| {
        buf.clear();
        trie_account(&acc).encode(&mut buf);
        builder.add_leaf(Nibbles::unpack(key), &buf);
    })?;
    builder.root();
    let account_proof = builder
        .take_proof_nodes()
        .matching_nodes_sorted(&target)
        .into_iter()
        .map(|(_, node)| node)
        .collect();

    let slot_targets: Vec<Nibbles> = slots
        .iter()
        .map(|s| Nibbles::unpack(keccak256(s)))
        .collect();
    let mut storage =
        HashBuilder::default().with_proof_retainer(ProofRetainer::new(slot_targets.clone()));
    view.for_each_hashed_slot(&hashed, |key, value| {
        storage.add_leaf(
            Nibbles::unpack(key),
            alloy_rlp::encode_fixed_size(&value).as_ref(),
        );
    })?;
    storage.root();
    let nodes = storage.take_proof_nodes();
    let mut storage_proofs = Vec::with_capacity(slots.len());
    for (slot, target) in slots.iter().zip(&slot_targets) {
        let value = view.storage(address, &U256::from_be_bytes(slot.0))?;
        let proof = nodes
            .matching_nodes_sorted(target)
            .into_iter()
            .map(|(_, node)| node)
            .collect();
        storage_proofs.push((*slot, value, proof));
    }
    Ok(AccountProof {
        account: view.account(address)?,
        account_proof,
        storage_proofs,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy_primitives::Address;
    use alloy_trie::proof::verify_proof;
    use alloy_trie::Nibbles;
    use trellis_primitives::{Block, Bloom, Header};
    use trellis_storage::Store;

    #[test]
    fn proofs_verify_against_the_state_root() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(&dir.path().join("db")).expect("open");
        let mut changes = StateChanges::default();
        for i in 1..=50u8 {
            changes.accounts.insert(
                Address::repeat_byte(i),
                Some(AccountState {
                    balance: U256::from(i),
                    nonce: i as u64,
                    ..Default::default()
                }),
            );
        }
        let rich = Address::repeat_byte(7);
        changes.storage.insert(
            rich,
            (1..=20u64)
                .map(|k| (U256::from(k), U256::from(k * 10)))
                .collect(),
        );
        let root = fresh_state_root(&mut changes);
        let genesis = Block {
            header: Header {
                chain_id: 1,
                height: 0,
                parent_hash: B256::ZERO,
                timestamp_ms: 0,
                proposer: Address::ZERO,
                transactions_root: EMPTY_ROOT,
                receipts_root: EMPTY_ROOT,
                state_root: root,
                logs_bloom: Bloom::ZERO,
                gas_limit: 1,
                gas_used: 0,
                validators_hash: B256::ZERO,
            },
            transactions: vec![],
        };
        store.init_genesis(&changes, &genesis).expect("genesis");
        let view = store.view().expect("view");

        let slot = B256::from(U256::from(3));
        let missing_slot = B256::from(U256::from(999));
        let proof = prove_account(&view, &rich, &[slot, missing_slot]).expect("prove");
        let account = proof.account.expect("exists");
        let mut encoded = Vec::new();
        alloy_rlp::Encodable::encode(&trie_account(&account), &mut encoded);
        verify_proof(
            root,
            Nibbles::unpack(keccak256(rich)),
            Some(encoded),
            &proof.account_proof,
        )
        .expect("account proof verifies");

        let (_, value, nodes) = &proof.storage_proofs[0];
        assert_eq!(*value, U256::from(30));
        verify_proof(
            account.storage_root,
            Nibbles::unpack(keccak256(slot)),
            Some(alloy_rlp::encode_fixed_size(value).to_vec()),
            nodes,
        )
        .expect("storage proof verifies");
        let (_, zero, absent) = &proof.storage_proofs[1];
        assert_eq!(*zero, U256::ZERO);
        verify_proof(
            account.storage_root,
            Nibbles::unpack(keccak256(missing_slot)),
            None,
            absent,
        )
        .expect("absence of a slot verifies");

        let nobody = Address::repeat_byte(0xee);
        let absent = prove_account(&view, &nobody, &[]).expect("prove");
        assert!(absent.account.is_none());
        verify_proof(
            root,
            Nibbles::unpack(keccak256(nobody)),
            None,
            &absent.account_proof,
        )
        .expect("absence of an account verifies");
        // A proof for one account does not prove another.
        assert!(verify_proof(
            root,
            Nibbles::unpack(keccak256(nobody)),
            Some(vec![1]),
            &proof.account_proof
        )
        .is_err());
    }
}
