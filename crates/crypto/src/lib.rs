//! Keys and signatures: secp256k1 accounts (Ethereum-compatible) and Ed25519 node keys.
//!
//! Sender recovery uses libsecp256k1 through the `secp256k1` crate (about five times the
//! pure-Rust alternative on these machines) and fans out over rayon for whole batches.

mod account;
pub mod keystore;
mod node_key;

pub use account::{
    recover_sender, recover_senders, recover_unknown_senders, AccountKey, RecoveryError,
    SECP256K1N_HALF,
};
pub use node_key::{parse_public_key, NodeKey, NodeKeyError, NodePublicKey};
