//! Why a node or one of its chains could not start or stopped. Every message names what to
//! change (the config key, the file) and carries the cause in its text, so one line tells an
//! operator what happened.

use std::net::SocketAddr;
use std::path::PathBuf;

use crate::chain::ChainError;

/// The consensus engine's own errors (Malachite reports `eyre` values), kept as their source.
type EngineError = Box<dyn std::error::Error + Send + Sync + 'static>;

#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error("chain {chain_id} is configured twice: {} and {}", first.display(), second.display())]
    ConfiguredTwice {
        chain_id: u64,
        first: PathBuf,
        second: PathBuf,
    },
    /// One hosted chain failed to start (the others were stopped).
    #[error("starting the chain of {}: {source}", genesis.display())]
    Hosted {
        genesis: PathBuf,
        #[source]
        source: Box<NodeError>,
    },
    #[error(transparent)]
    Genesis(#[from] trellis_primitives::GenesisError),
    #[error(transparent)]
    NodeKey(#[from] trellis_crypto::NodeKeyError),
    #[error("opening the database: {0}")]
    Store(#[from] trellis_storage::StoreError),
    #[error(transparent)]
    Chain(#[from] ChainError),
    /// A config value the node cannot use.
    #[error("{key}: {reason}")]
    Config { key: &'static str, reason: String },
    #[error("loading rpc.tls: {0}")]
    Tls(#[from] trellis_rpc::tls::TlsError),
    #[error("starting JSON-RPC on {addr}: {source}")]
    Rpc {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("serving metrics on {addr}: {source}")]
    Metrics {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("transaction gossip: {0}")]
    Gossip(#[from] trellis_gossip::GossipError),
    #[error("consensus engine: {0}")]
    Engine(#[source] EngineError),
}

impl NodeError {
    pub(crate) fn config(key: &'static str, reason: impl Into<String>) -> NodeError {
        NodeError::Config {
            key,
            reason: reason.into(),
        }
    }

    pub(crate) fn engine(report: eyre::Report) -> NodeError {
        NodeError::Engine(report.into())
    }
}
