//! Light-client verification of Trellis chains: what anyone needs to trust a chain's state
//! without running consensus or the EVM, and without trusting the node that answers.
//!
//! - [`validators`]: a validator set as light clients hold it (Ed25519 keys and voting power,
//!   ordered by address) and its hash, the `validatorsHash` of headers;
//! - [`certificate`]: the commit certificate as nodes store and sync it, the bytes a
//!   precommit signs, and the check that more than two thirds of a trusted set's power
//!   signed a block;
//! - [`client`]: a light client of another chain — the trusted set, the latest anchored
//!   header, and the rule that accepts certified headers, follows set changes in order and
//!   freezes on a fork;
//! - [`state`]: a state proof (a finalized header, its certificate, and Merkle proofs of an
//!   account and some of its storage slots) and its verification, and a witness (many
//!   slots, each trie node once) of the state a sub-chain's genesis is derived from.
//!
//! These definitions are the only ones: the consensus engine signs and encodes through them,
//! the node serves what they check, the SDK and the CLI verify with them, and an on-chain
//! light client of another chain can run the same code. The crate depends on neither the
//! engine (Malachite, libp2p) nor the EVM.

pub mod certificate;
pub mod client;
pub mod state;
pub mod validators;

pub use certificate::{
    certify, decode_certificate, encode_certificate, precommit_sign_bytes, verify_certificate,
    Certificate, CertificateError, WireVote,
};
pub use client::{decode_header, Anchor, ClientError, ClientState, Misbehaviour, Verdict};
pub use state::{
    verify_against_root, verify_state, ProofError, ProvenAccount, SlotProof, StateProof,
    StateWitness, Trusted, VerifiedState, WitnessSlot,
};
pub use validators::{
    members_hash, validator_address, validators_hash, LightValidator, ValidatorSet,
    ValidatorSetError,
};
