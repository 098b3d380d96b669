//! Malachite (Tendermint) consensus for Trellis chains.
//!
//! [`context`] defines the consensus types (the decided value is a block hash), [`codec`]
//! their wire encoding, [`signing`] the Ed25519 signatures, [`app`] the loop that answers
//! Malachite through an [`Application`] implemented by the node, and [`engine`] starts it all.

pub mod app;
pub mod certificate;
pub mod codec;
pub mod context;
pub mod engine;
pub mod guard;
pub mod signing;

pub use app::{Application, VerifyError};
pub use codec::{decode_certificate, encode_certificate, CodecError, TrellisCodec};
pub use context::{
    BlockHash, Height, TrellisContext, Validator, ValidatorAddress, ValidatorSet, ValidatorSetError,
};
pub use engine::{libp2p_keypair, start, ConsensusHandle, EngineSettings, PeerAllowlist};
pub use malachitebft_core_types::{CommitCertificate, LinearTimeouts};
pub use signing::{Ed25519Signer, Ed25519Verifier};
