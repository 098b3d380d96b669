//! Light-client verification of system-contract state: [`trellis_light::verify_state`] (the
//! header's certificate against trusted validators, the account and slot proofs), and that
//! the proof is about the expected system contract, whose own decoder then reads the proven
//! slots ([`ProvenStorage`]).

use alloy_primitives::Address;
use trellis_system::proof::StateProof;
use trellis_system::{MapSlots, SlotError};

pub use trellis_light::{ProofError, Trusted, VerifiedState};

/// The proven slots of a [`VerifiedState`] as contract storage: reading a slot the proof
/// does not cover fails, so a system contract's own decoder reads exactly what was proven.
pub trait ProvenStorage {
    fn storage(&self) -> MapSlots<'_>;
}

impl ProvenStorage for VerifiedState {
    fn storage(&self) -> MapSlots<'_> {
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
    trellis_light::verify_state(proof, trusted)
}
