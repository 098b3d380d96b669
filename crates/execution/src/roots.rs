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
