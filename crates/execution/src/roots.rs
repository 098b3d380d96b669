//! State commitment: an Ethereum Merkle-Patricia state root over the committed state plus a
//! block's changes, so that `eth_getProof`-style proofs stay possible.
//!
//! The tries are stored node by node ([`crate::trie`]); a block updates only the paths of
//! the accounts and slots it changed, and the node writes travel in
//! [`StateChanges::trie_nodes`] to be committed with the block.

use crate::trie::{self, NodeSource, Trie};
use alloy_primitives::{keccak256, Address, B256, U256};
use alloy_trie::TrieAccount;
use std::collections::BTreeMap;
use trellis_storage::{
    AccountState, StateChanges, StateView, StoreError, ACCOUNT_TRIE_OWNER, EMPTY_ROOT,
};

fn trie_account(acc: &AccountState) -> TrieAccount {
    TrieAccount {
        nonce: acc.nonce,
        balance: acc.balance,
        storage_root: acc.storage_root,
        code_hash: acc.code_hash,
    }
}

fn account_leaf(acc: &AccountState) -> Vec<u8> {
    alloy_rlp::encode(trie_account(acc))
}

fn slot_leaf(value: &U256) -> Vec<u8> {
    alloy_rlp::encode_fixed_size(value).to_vec()
}

/// Fills in the storage roots of changed accounts, records the trie nodes to write in
/// `changes.trie_nodes` and returns the new state root.
pub fn finalize_state_root(
    view: &StateView,
    changes: &mut StateChanges,
) -> Result<B256, StoreError> {
    update_tries(view, changes, |address| {
        Ok(view.account(address)?.map(|p| p.storage_root))
    })
}

/// State root of `changes` applied to an empty state (genesis), filling in storage roots and
/// the trie nodes to write.
pub fn fresh_state_root(changes: &mut StateChanges) -> Result<B256, StoreError> {
    update_tries(&trie::Empty, changes, |_| Ok(None))
}

fn update_tries<S: NodeSource>(
    source: &S,
    changes: &mut StateChanges,
    previous_storage_root: impl Fn(&Address) -> Result<Option<B256>, StoreError>,
) -> Result<B256, StoreError> {
    let mut writes = std::mem::take(&mut changes.trie_nodes);
    let mut account_leaves: BTreeMap<B256, Option<Vec<u8>>> = BTreeMap::new();
    for (address, account) in changes.accounts.iter_mut() {
        let hashed = keccak256(address);
        let Some(acc) = account else {
            // Its storage trie goes with `wiped_storage`.
            account_leaves.insert(hashed, None);
            continue;
        };
        let wiped = changes.wiped_storage.contains(address);
        let slot_changes = changes.storage.get(address).filter(|s| !s.is_empty());
        acc.storage_root = match (wiped, slot_changes) {
            (false, None) => previous_storage_root(address)?.unwrap_or(EMPTY_ROOT),
            (wiped, slots) => {
                let leaves: BTreeMap<B256, Option<Vec<u8>>> = slots
                    .into_iter()
                    .flatten()
                    .map(|(slot, value)| {
                        let leaf = (!value.is_zero()).then(|| slot_leaf(value));
                        (keccak256(slot.to_be_bytes::<32>()), leaf)
                    })
                    .collect();
                // A wiped account's old nodes are dropped before these writes are applied.
                if wiped {
                    Trie::new(&trie::Empty, &mut writes, hashed).apply(&leaves)?
                } else {
                    Trie::new(source, &mut writes, hashed).apply(&leaves)?
                }
            }
        };
        account_leaves.insert(hashed, Some(account_leaf(acc)));
    }
    let root = Trie::new(source, &mut writes, ACCOUNT_TRIE_OWNER).apply(&account_leaves)?;
    changes.trie_nodes = writes;
    Ok(root)
}

/// Trie nodes for the whole committed state, and its root.
pub struct RebuiltTries {
    pub root: B256,
    pub writes: trie::NodeWrites,
}

/// Builds every trie from the committed accounts and slots (for data directories written
/// before the tries were stored). O(state).
pub fn rebuild_tries(view: &StateView) -> Result<RebuiltTries, StoreError> {
    let mut writes = trie::NodeWrites::new();
    let mut accounts = Vec::new();
    view.for_each_account(|address, acc| accounts.push((address, acc)))?;
    let mut account_leaves = BTreeMap::new();
    for (address, mut acc) in accounts {
        let hashed = keccak256(address);
        let mut slots = BTreeMap::new();
        view.for_each_slot(&address, |k, v| {
            slots.insert(keccak256(k.to_be_bytes::<32>()), Some(slot_leaf(&v)));
        })?;
        acc.storage_root = Trie::new(&trie::Empty, &mut writes, hashed).apply(&slots)?;
        account_leaves.insert(hashed, Some(account_leaf(&acc)));
    }
    let root = Trie::new(&trie::Empty, &mut writes, ACCOUNT_TRIE_OWNER).apply(&account_leaves)?;
    writes.retain(|_, node| node.is_some());
    Ok(RebuiltTries { root, writes })
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

/// Reads the proof nodes along the account's and the slots' paths (O(depth) each).
pub fn prove_account(
    view: &StateView,
    address: &Address,
    slots: &[B256],
) -> Result<AccountProof, StoreError> {
    let mut none = trie::NodeWrites::new();
    let hashed = keccak256(address);
    let account_proof = Trie::new(view, &mut none, ACCOUNT_TRIE_OWNER).proof(&hashed)?;
    let storage = Trie::new(view, &mut none, hashed);
    let mut storage_proofs = Vec::with_capacity(slots.len());
    for slot in slots {
        let value = view.storage(address, &U256::from_be_bytes(slot.0))?;
        storage_proofs.push((*slot, value, storage.proof(&keccak256(slot))?));
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
    use rand::{Rng, SeedableRng};
    use trellis_primitives::{Block, Bloom, Header};
    use trellis_storage::{BlockCommit, Store};

    fn header(height: u64, parent: B256, state_root: B256) -> Block {
        Block {
            header: Header {
                chain_id: 1,
                height,
                parent_hash: parent,
                timestamp_ms: height,
                proposer: Address::ZERO,
                transactions_root: EMPTY_ROOT,
                receipts_root: EMPTY_ROOT,
                state_root,
                logs_bloom: Bloom::ZERO,
                gas_limit: 1,
                gas_used: 0,
                validators_hash: B256::ZERO,
                next_validators_hash: None,
            },
            transactions: vec![],
        }
    }

    /// The root rebuilt from every committed account and slot (the pre-incremental method).
    fn full_rebuild(view: &StateView) -> B256 {
        let mut accounts = Vec::new();
        view.for_each_account(|address, acc| accounts.push((address, acc)))
            .expect("accounts");
        let mut leaves = Vec::new();
        for (address, mut acc) in accounts {
            let mut slots = Vec::new();
            view.for_each_slot(&address, |k, v| slots.push((B256::from(k), v)))
                .expect("slots");
            acc.storage_root = alloy_trie::root::storage_root_unhashed(slots);
            leaves.push((address, trie_account(&acc)));
        }
        alloy_trie::root::state_root_unhashed(leaves)
    }

    #[test]
    fn committed_blocks_keep_the_root_equal_to_a_full_rebuild() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(&dir.path().join("db")).expect("open");
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let addresses: Vec<Address> = (1..=12u8).map(Address::repeat_byte).collect();
        let mut genesis = StateChanges::default();
        for a in &addresses[..6] {
            genesis.accounts.insert(*a, Some(AccountState::default()));
            genesis
                .storage
                .insert(*a, [(U256::from(1), U256::from(1))].into());
        }
        let root = fresh_state_root(&mut genesis).expect("root");
        let mut parent = header(0, B256::ZERO, root);
        store.init_genesis(&genesis, &parent).expect("genesis");
        assert_eq!(full_rebuild(&store.view().expect("view")), root);

        for height in 1..=40u64 {
            let view = store.view().expect("view");
            let mut changes = StateChanges::default();
            for _ in 0..rng.gen_range(1..6) {
                let a = addresses[rng.gen_range(0..addresses.len())];
                match rng.gen_range(0..10) {
                    // Deleted (self-destructed) with its storage.
                    0 => {
                        changes.accounts.insert(a, None);
                        changes.wiped_storage.insert(a);
                        changes.storage.remove(&a);
                    }
                    // Re-created: old storage wiped, some new slots.
                    1 => {
                        changes.accounts.insert(a, Some(AccountState::default()));
                        changes.wiped_storage.insert(a);
                        changes.storage.insert(
                            a,
                            [(U256::from(rng.gen_range(0..20u8)), U256::from(9))].into(),
                        );
                    }
                    _ => {
                        let mut acc = view.account(&a).expect("read").unwrap_or_default();
                        acc.nonce += 1;
                        changes.accounts.insert(a, Some(acc));
                        let slots = changes.storage.entry(a).or_default();
                        for _ in 0..rng.gen_range(0..30) {
                            let value = if rng.gen_bool(0.3) {
                                0
                            } else {
                                rng.gen::<u64>()
                            };
                            slots.insert(U256::from(rng.gen_range(0..60u8)), U256::from(value));
                        }
                    }
                }
            }
            let root = finalize_state_root(&view, &mut changes).expect("root");
            drop(view);
            let block = header(height, parent.hash(), root);
            store
                .commit_block(BlockCommit {
                    block: &block,
                    certificate: &[],
                    receipts: &[],
                    senders: &[],
                    reverts: &[],
                    changes: &changes,
                })
                .expect("commit");
            let view = store.view().expect("view");
            assert_eq!(full_rebuild(&view), root, "height {height}");
            for a in &addresses {
                let proof = prove_account(&view, a, &[]).expect("prove");
                let expected = proof
                    .account
                    .map(|acc| alloy_rlp::encode(trie_account(&acc)));
                verify_proof(
                    root,
                    Nibbles::unpack(keccak256(a)),
                    expected,
                    &proof.account_proof,
                )
                .expect("account proof");
            }
            parent = block;
        }
        let view = store.view().expect("view");
        assert_eq!(
            rebuild_tries(&view).expect("rebuild").root,
            full_rebuild(&view)
        );
    }

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
        let root = fresh_state_root(&mut changes).expect("root");
        let genesis = header(0, B256::ZERO, root);
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
