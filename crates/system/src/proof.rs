//! What a node hands a light client so it can check system-contract state without trusting
//! the node: a finalized header, its commit certificate, and Merkle proofs of one contract
//! account and some of its storage slots against the header's state root.
//!
//! Nodes build it (the REST server); `trellis_light::verify_state` checks it. The types
//! are defined in `trellis-light` and re-exported here.

pub use trellis_light::{ProvenAccount, SlotProof, StateProof};
