//! State proofs: what a node hands a light client so it can check contract state without
//! trusting the node — a finalized header, its commit certificate, and Merkle proofs of one
//! account and some of its storage slots against the header's state root. Nodes build them
//! (the REST server); [`verify_state`] checks them.

use alloy_primitives::{keccak256, Address, Bytes, B256, U256};
use alloy_rlp::Decodable;
use alloy_trie::proof::verify_proof;
use alloy_trie::{Nibbles, TrieAccount};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;
use trellis_primitives::{Genesis, Header};

use crate::certificate::{verify_certificate, CertificateError};
use crate::validators::ValidatorSet;

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

/// What a client trusts: the chain id and the validator set whose signatures finalize
/// blocks. Taken from the genesis file, or from a later set the consortium published; when
/// governance has changed the validators since, verification fails with
/// [`ProofError::Certificate`] until the trusted set is updated.
#[derive(Clone, Debug)]
pub struct Trusted {
    pub chain_id: u64,
    pub validators: ValidatorSet,
}

#[derive(Debug, thiserror::Error)]
pub enum ProofError {
    #[error("cannot read the trusted genesis: {0}")]
    Genesis(String),
    #[error("proof is for chain {got}, trusted chain is {expected}")]
    WrongChain { expected: u64, got: u64 },
    #[error("undecodable header: {0}")]
    Header(alloy_rlp::Error),
    #[error("header is for height {header}, proof claims {claimed}")]
    HeightMismatch { header: u64, claimed: u64 },
    #[error("header hashes to {got}, the trusted block is {expected}")]
    HeaderHash { expected: B256, got: B256 },
    #[error("the witness refers to trie node {0}, which it does not hold")]
    MissingNode(u32),
    #[error("genesis state has no commit certificate; ask again once block 1 is final")]
    Genesis0,
    #[error("commit certificate: {0}")]
    Certificate(#[from] CertificateError),
    #[error("account proof does not match the header's state root: {0}")]
    Account(String),
    #[error("storage proof of slot {slot} does not match the account's storage root: {reason}")]
    Slot { slot: U256, reason: String },
}

impl Trusted {
    pub fn from_genesis(genesis: &Genesis) -> Result<Trusted, ProofError> {
        let validators =
            ValidatorSet::from_keys(genesis.validators.iter().map(|v| (v.public_key, v.power)))
                .map_err(|e| ProofError::Genesis(e.to_string()))?;
        Ok(Trusted {
            chain_id: genesis.chain_id.0,
            validators,
        })
    }

    pub fn from_genesis_file(path: &Path) -> Result<Trusted, ProofError> {
        let genesis = Genesis::load(path).map_err(|e| ProofError::Genesis(e.to_string()))?;
        Trusted::from_genesis(&genesis)
    }
}

/// State a proof established: the finalized header and the proven slot values.
#[derive(Clone, Debug)]
pub struct VerifiedState {
    pub header: Header,
    /// Proven values (zero for proven-absent slots).
    pub slots: BTreeMap<U256, U256>,
}

/// Checks the header's certificate against `trusted`, the account against the header's state
/// root and every slot against the account's storage root.
pub fn verify_state(proof: &StateProof, trusted: &Trusted) -> Result<VerifiedState, ProofError> {
    if proof.chain_id != trusted.chain_id {
        return Err(ProofError::WrongChain {
            expected: trusted.chain_id,
            got: proof.chain_id,
        });
    }
    let header = Header::decode(&mut proof.header.as_ref()).map_err(ProofError::Header)?;
    if header.height != proof.height {
        return Err(ProofError::HeightMismatch {
            header: header.height,
            claimed: proof.height,
        });
    }
    if header.height == 0 {
        return Err(ProofError::Genesis0);
    }
    verify_certificate(
        trusted.chain_id,
        &proof.certificate,
        header.height,
        header.hash(),
        &trusted.validators,
    )?;
    let slots = verify_against_root(
        header.state_root,
        proof.address,
        &proof.account,
        &proof.account_proof,
        proof
            .storage_proofs
            .iter()
            .map(|p| (p.slot, p.value, p.proof.clone())),
    )?;
    Ok(VerifiedState { header, slots })
}

/// Checks the account against `state_root` and every slot against the account's storage
/// root (a zero value: proven absent); the proven values. This is the whole check once the
/// state root is trusted (an anchored header's, on chain).
pub fn verify_against_root(
    state_root: B256,
    address: Address,
    account: &ProvenAccount,
    account_proof: &[Bytes],
    slots: impl Iterator<Item = (B256, U256, Vec<Bytes>)>,
) -> Result<BTreeMap<U256, U256>, ProofError> {
    let leaf = TrieAccount {
        nonce: account.nonce,
        balance: account.balance,
        storage_root: account.storage_root,
        code_hash: account.code_hash,
    };
    verify_proof(
        state_root,
        Nibbles::unpack(keccak256(address)),
        Some(alloy_rlp::encode(leaf)),
        account_proof,
    )
    .map_err(|e| ProofError::Account(e.to_string()))?;
    let mut proven = BTreeMap::new();
    for (key, value, proof) in slots {
        let slot = U256::from_be_bytes(key.0);
        let expected = (!value.is_zero()).then(|| alloy_rlp::encode_fixed_size(&value).to_vec());
        verify_proof(
            account.storage_root,
            Nibbles::unpack(keccak256(key)),
            expected,
            &proof,
        )
        .map_err(|e| ProofError::Slot {
            slot,
            reason: e.to_string(),
        })?;
        proven.insert(slot, value);
    }
    Ok(proven)
}

/// Many slots of one account at one height, proven with each trie node stored once: what a
/// [`StateProof`] of thousands of slots would repeat (the nodes near the roots) is shared.
/// Proofs refer to [`StateWitness::nodes`] by index.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StateWitness {
    pub chain_id: u64,
    pub height: u64,
    /// RLP encoding of the block header at `height`.
    pub header: Bytes,
    /// The commit certificate of `height`.
    pub certificate: Bytes,
    pub address: Address,
    pub account: ProvenAccount,
    pub account_proof: Vec<u32>,
    pub slots: Vec<WitnessSlot>,
    /// Every trie node the proofs use, once.
    pub nodes: Vec<Bytes>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WitnessSlot {
    pub slot: B256,
    pub value: U256,
    pub proof: Vec<u32>,
}

impl StateWitness {
    /// The witness of the slots `proof` proves, each node stored once.
    pub fn from_proof(proof: StateProof) -> StateWitness {
        let mut nodes = Vec::new();
        let mut index = std::collections::HashMap::new();
        let mut intern = |list: Vec<Bytes>| -> Vec<u32> {
            list.into_iter()
                .map(|node| {
                    *index.entry(node.clone()).or_insert_with(|| {
                        nodes.push(node);
                        (nodes.len() - 1) as u32
                    })
                })
                .collect()
        };
        let account_proof = intern(proof.account_proof);
        let slots = proof
            .storage_proofs
            .into_iter()
            .map(|p| WitnessSlot {
                slot: p.slot,
                value: p.value,
                proof: intern(p.proof),
            })
            .collect();
        StateWitness {
            chain_id: proof.chain_id,
            height: proof.height,
            header: proof.header,
            certificate: proof.certificate,
            address: proof.address,
            account: proof.account,
            account_proof,
            slots,
            nodes,
        }
    }

    fn path(&self, indices: &[u32]) -> Result<Vec<Bytes>, ProofError> {
        indices
            .iter()
            .map(|i| {
                self.nodes
                    .get(*i as usize)
                    .cloned()
                    .ok_or_else(|| ProofError::Account(format!("the witness has no trie node {i}")))
            })
            .collect()
    }

    /// Checks every proof against the header, which the caller trusts by its hash (a block
    /// hash its own node finalized): no certificate is needed. Answers the proven slots.
    pub fn verify_with_hash(&self, trusted_hash: B256) -> Result<VerifiedState, ProofError> {
        let header = Header::decode(&mut self.header.as_ref()).map_err(ProofError::Header)?;
        if header.height != self.height {
            return Err(ProofError::HeightMismatch {
                header: header.height,
                claimed: self.height,
            });
        }
        if header.chain_id != self.chain_id {
            return Err(ProofError::WrongChain {
                expected: self.chain_id,
                got: header.chain_id,
            });
        }
        if header.hash() != trusted_hash {
            return Err(ProofError::HeaderHash {
                expected: trusted_hash,
                got: header.hash(),
            });
        }
        let mut slots = Vec::with_capacity(self.slots.len());
        for s in &self.slots {
            slots.push((s.slot, s.value, self.path(&s.proof)?));
        }
        let proven = verify_against_root(
            header.state_root,
            self.address,
            &self.account,
            &self.path(&self.account_proof)?,
            slots.into_iter(),
        )?;
        Ok(VerifiedState {
            header,
            slots: proven,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::certificate::{encode_certificate, precommit_sign_bytes, Certificate};
    use crate::validators::validator_address;
    use alloy_primitives::Bloom;
    use alloy_trie::proof::ProofRetainer;
    use alloy_trie::HashBuilder;
    use ed25519_consensus::SigningKey;

    /// The root of a trie of `leaves` under the keccak-256 of their keys, and the proof of
    /// the leaf under `target`'s.
    fn trie(leaves: &[(Vec<u8>, Vec<u8>)], target: &[u8]) -> (B256, Vec<Bytes>) {
        let mut sorted: Vec<(Nibbles, &Vec<u8>)> = leaves
            .iter()
            .map(|(k, v)| (Nibbles::unpack(keccak256(k)), v))
            .collect();
        sorted.sort_by_key(|a| a.0);
        let target = Nibbles::unpack(keccak256(target));
        let mut builder =
            HashBuilder::default().with_proof_retainer(ProofRetainer::from_iter([target]));
        for (key, value) in &sorted {
            builder.add_leaf(*key, value);
        }
        let root = builder.root();
        let proof = builder
            .take_proof_nodes()
            .into_nodes_sorted()
            .into_iter()
            .map(|(_, node)| node)
            .collect();
        (root, proof)
    }

    /// A proof of slot 7 (= 42) of a contract holding three slots, at height 3 of chain 9,
    /// certified by 3 of 4 validators; and the trusted set.
    fn proof() -> (StateProof, Trusted) {
        let contract = Address::repeat_byte(0xc0);
        let slots = [(7u64, 42u64), (8, 1), (1_000, 5)];
        let storage: Vec<(Vec<u8>, Vec<u8>)> = slots
            .iter()
            .map(|(s, v)| {
                (
                    B256::from(U256::from(*s)).to_vec(),
                    alloy_rlp::encode_fixed_size(&U256::from(*v)).to_vec(),
                )
            })
            .collect();
        let slot = B256::from(U256::from(7));
        let (storage_root, slot_proof) = trie(&storage, slot.as_slice());
        let account = TrieAccount {
            nonce: 1,
            balance: U256::ZERO,
            storage_root,
            code_hash: keccak256([]),
        };
        let other = TrieAccount {
            nonce: 5,
            ..account
        };
        let accounts = vec![
            (contract.to_vec(), alloy_rlp::encode(account)),
            (Address::repeat_byte(1).to_vec(), alloy_rlp::encode(other)),
        ];
        let (state_root, account_proof) = trie(&accounts, contract.as_slice());

        let header = Header {
            chain_id: 9,
            height: 3,
            parent_hash: B256::repeat_byte(2),
            timestamp_ms: 3_000,
            proposer: Address::ZERO,
            transactions_root: B256::ZERO,
            receipts_root: B256::ZERO,
            state_root,
            logs_bloom: Bloom::ZERO,
            gas_limit: 1,
            gas_used: 0,
            validators_hash: B256::ZERO,
            next_validators_hash: None,
        };
        let keys: Vec<SigningKey> = (1u8..=4).map(|i| SigningKey::from([i; 32])).collect();
        let signatures = keys[..3]
            .iter()
            .map(|k| {
                let address = validator_address(&k.verification_key().to_bytes());
                let message = precommit_sign_bytes(9, 3, Some(0), header.hash(), address);
                (
                    address,
                    bytes::Bytes::copy_from_slice(&k.sign(&message).to_bytes()),
                )
            })
            .collect();
        let certificate = encode_certificate(&Certificate {
            height: 3,
            round: Some(0),
            block_hash: header.hash(),
            signatures,
        });
        let trusted = Trusted {
            chain_id: 9,
            validators: ValidatorSet::from_keys(
                keys.iter()
                    .map(|k| (B256::from(k.verification_key().to_bytes()), 1)),
            )
            .expect("set"),
        };
        let proof = StateProof {
            chain_id: 9,
            height: 3,
            header: alloy_rlp::encode(&header).into(),
            certificate: certificate.into(),
            address: contract,
            account: ProvenAccount {
                nonce: 1,
                balance: U256::ZERO,
                storage_root,
                code_hash: keccak256([]),
            },
            account_proof,
            storage_proofs: vec![SlotProof {
                slot,
                value: U256::from(42),
                proof: slot_proof,
            }],
        };
        (proof, trusted)
    }

    #[test]
    fn a_certified_proof_verifies_and_any_change_is_caught() {
        let (proof, trusted) = proof();
        let state = verify_state(&proof, &trusted).expect("valid");
        assert_eq!(state.header.height, 3);
        assert_eq!(state.slots.get(&U256::from(7)), Some(&U256::from(42)));

        let mut p = proof.clone();
        p.storage_proofs[0].value = U256::from(43);
        assert!(matches!(
            verify_state(&p, &trusted),
            Err(ProofError::Slot { .. })
        ));
        let mut p = proof.clone();
        p.account.nonce = 2;
        assert!(matches!(
            verify_state(&p, &trusted),
            Err(ProofError::Account(_))
        ));
        let mut p = proof.clone();
        p.chain_id = 10;
        assert!(matches!(
            verify_state(&p, &trusted),
            Err(ProofError::WrongChain { .. })
        ));
        let mut p = proof.clone();
        p.height = 4;
        assert!(matches!(
            verify_state(&p, &trusted),
            Err(ProofError::HeightMismatch { .. })
        ));
        // Another chain's validators do not certify it.
        let strangers = Trusted {
            chain_id: 9,
            validators: ValidatorSet::from_keys([(
                B256::from(SigningKey::from([9; 32]).verification_key().to_bytes()),
                1,
            )])
            .expect("set"),
        };
        assert!(matches!(
            verify_state(&proof, &strangers),
            Err(ProofError::Certificate(_))
        ));
    }
}
