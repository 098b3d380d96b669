//! Light-client verification of system-contract state.

use alloy_primitives::{keccak256, Address, U256};
use alloy_rlp::Decodable;
use alloy_trie::proof::verify_proof;
use alloy_trie::{Nibbles, TrieAccount};
use std::collections::BTreeMap;
use std::path::Path;
use trellis_consensus::{verify_certificate, CertificateError, ValidatorSet};
use trellis_primitives::{Genesis, Header};
use trellis_system::proof::StateProof;
use trellis_system::{MapSlots, SlotError};

/// What the client trusts: the chain id and the validator set whose signatures finalize
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

impl VerifiedState {
    /// The proven slots as contract storage: reading a slot the proof does not cover fails,
    /// so a system contract's own decoder reads exactly what was proven.
    pub fn storage(&self) -> MapSlots<'_> {
        MapSlots::over(|slot| {
            self.slots
                .get(&slot)
                .copied()
                .ok_or_else(|| SlotError::invalid(format!("slot {slot:#x} is not in the proof")))
        })
    }
}

/// Why a service record could not be verified.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error(transparent)]
    Proof(#[from] ProofError),
    #[error("the proof is about {0}, not the expected system contract")]
    WrongContract(Address),
    #[error("the proven state does not hold the record: {0}")]
    NotProven(String),
    #[error("the node's record differs from the proven one")]
    RecordMismatch,
    #[error("record id {id} is not the evidence id of its digest")]
    WrongId { id: alloy_primitives::B256 },
}

/// [`verify`], and that the proof is about the contract at `address`.
pub fn verify_contract(
    proof: &StateProof,
    trusted: &Trusted,
    address: Address,
) -> Result<VerifiedState, VerifyError> {
    if proof.address != address {
        return Err(VerifyError::WrongContract(proof.address));
    }
    Ok(verify(proof, trusted)?)
}

/// Checks the header's certificate against `trusted`, the account against the header's state
/// root and every slot against the account's storage root.
pub fn verify(proof: &StateProof, trusted: &Trusted) -> Result<VerifiedState, ProofError> {
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

    let account = TrieAccount {
        nonce: proof.account.nonce,
        balance: proof.account.balance,
        storage_root: proof.account.storage_root,
        code_hash: proof.account.code_hash,
    };
    verify_proof(
        header.state_root,
        Nibbles::unpack(keccak256(proof.address)),
        Some(alloy_rlp::encode(account)),
        &proof.account_proof,
    )
    .map_err(|e| ProofError::Account(e.to_string()))?;

    let mut slots = BTreeMap::new();
    for p in &proof.storage_proofs {
        let slot = U256::from_be_bytes(p.slot.0);
        let expected =
            (!p.value.is_zero()).then(|| alloy_rlp::encode_fixed_size(&p.value).to_vec());
        verify_proof(
            proof.account.storage_root,
            Nibbles::unpack(keccak256(p.slot)),
            expected,
            &p.proof,
        )
        .map_err(|e| ProofError::Slot {
            slot,
            reason: e.to_string(),
        })?;
        slots.insert(slot, p.value);
    }
    Ok(VerifiedState { header, slots })
}
