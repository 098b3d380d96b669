//! Trellis SDK: what an application needs to use the built-in services from Rust.
//!
//! - [`rest`]: a small HTTP client for the services' REST endpoints.
//! - [`proof`]: checks a [`StateProof`](trellis_system::proof::StateProof) against a trusted
//!   validator set — header, commit certificate, account and storage Merkle proofs — so a
//!   client need not trust the node that answered (with `trellis-light`: the SDK depends on
//!   neither the consensus engine nor libp2p).
//! - [`evidence`]: hashing files the way the chain records them, the calldata of
//!   submissions, and verification of an evidence record with its proof.
//! - [`identifiers`], [`dids`]: verification of resolutions fetched with `?proof=true`.
//! - [`audit`]: verification of governance audit exports (entries with their proof).
//! - [`api`]: the node's JSON-RPC API as typed jsonrpsee clients (`trellis_*` governance and
//!   chain reads, `admin_*`, and the `eth_*` methods Trellis's tools use) with serde answers:
//!   the same definitions the node serves and the CLI calls.
//!
//! Transactions are ordinary Ethereum transactions to the system contracts' addresses: sign
//! them with any Ethereum library (or `trellis_crypto`) and send them with
//! `eth_sendRawTransaction`.

pub use trellis_api as api;

pub mod audit;
pub mod dids;
pub mod evidence;
pub mod identifiers;
pub mod proof;
pub mod rest;
pub mod tls;

pub use proof::{ProofError, ProvenStorage, Trusted, VerifiedState, VerifyError};
pub use rest::{RestClient, RestError};
