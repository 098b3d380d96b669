//! Account records and the set of state changes a block produces.

use alloy_primitives::{b256, Address, Bytes, B256, U256};
use std::collections::{BTreeMap, BTreeSet};

/// keccak-256 of the empty byte string: the code hash of accounts without code.
pub const EMPTY_CODE_HASH: B256 =
    b256!("c5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470");
/// Root of an empty Merkle-Patricia trie.
pub const EMPTY_ROOT: B256 =
    b256!("56e81f171bcc55a6ff8345e692c0f86e5b48e01b996cadc001622fb5e363b421");

/// An account as stored: the Ethereum account tuple.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AccountState {
    pub nonce: u64,
    pub balance: U256,
    pub code_hash: B256,
    pub storage_root: B256,
}

impl Default for AccountState {
    fn default() -> Self {
        AccountState {
            nonce: 0,
            balance: U256::ZERO,
            code_hash: EMPTY_CODE_HASH,
            storage_root: EMPTY_ROOT,
        }
    }
}

pub(crate) const ACCOUNT_BYTES: usize = 8 + 32 + 32 + 32;

impl AccountState {
    pub(crate) fn to_bytes(self) -> [u8; ACCOUNT_BYTES] {
        let mut out = [0u8; ACCOUNT_BYTES];
        out[..8].copy_from_slice(&self.nonce.to_be_bytes());
        out[8..40].copy_from_slice(&self.balance.to_be_bytes::<32>());
        out[40..72].copy_from_slice(self.code_hash.as_slice());
        out[72..].copy_from_slice(self.storage_root.as_slice());
        out
    }

    pub(crate) fn from_bytes(bytes: &[u8]) -> Option<AccountState> {
        if bytes.len() != ACCOUNT_BYTES {
            return None;
        }
        let mut nonce = [0u8; 8];
        nonce.copy_from_slice(&bytes[..8]);
        Some(AccountState {
            nonce: u64::from_be_bytes(nonce),
            balance: U256::from_be_slice(&bytes[8..40]),
            code_hash: B256::from_slice(&bytes[40..72]),
            storage_root: B256::from_slice(&bytes[72..]),
        })
    }
}

/// Everything a block changed in the state, ready to be written atomically.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StateChanges {
    /// New account records; `None` deletes the account.
    pub accounts: BTreeMap<Address, Option<AccountState>>,
    /// Accounts whose whole storage is wiped before `storage` is applied.
    pub wiped_storage: BTreeSet<Address>,
    /// Changed slots; a zero value deletes the slot.
    pub storage: BTreeMap<Address, BTreeMap<U256, U256>>,
    /// Newly deployed code by hash.
    pub codes: BTreeMap<B256, Bytes>,
    /// Merkle-Patricia trie nodes written (`Some`) or removed (`None`), keyed by
    /// [`trie_node_key`]. Applied after the tries of `wiped_storage` accounts are dropped.
    pub trie_nodes: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
}

/// Owner of the account trie's nodes; a storage trie's owner is keccak(address).
pub const ACCOUNT_TRIE_OWNER: B256 = B256::ZERO;

/// Key of the trie node at `path` (one nibble per byte) in `owner`'s trie.
pub fn trie_node_key(owner: &B256, path: impl IntoIterator<Item = u8>) -> Vec<u8> {
    let mut key = Vec::with_capacity(32 + 64);
    key.extend_from_slice(owner.as_slice());
    key.extend(path);
    key
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn account_bytes_roundtrip() {
        let acc = AccountState {
            nonce: 42,
            balance: U256::from(1_000_000_007u64),
            code_hash: B256::repeat_byte(5),
            storage_root: B256::repeat_byte(6),
        };
        assert_eq!(AccountState::from_bytes(&acc.to_bytes()), Some(acc));
        assert_eq!(AccountState::from_bytes(&[0u8; 3]), None);
    }

    #[test]
    fn empty_constants_are_what_ethereum_uses() {
        assert_eq!(alloy_primitives::keccak256([]), EMPTY_CODE_HASH);
        assert_eq!(alloy_primitives::keccak256([0x80]), EMPTY_ROOT);
    }
}
