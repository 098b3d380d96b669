//! Core data types shared by every Trellis crate: ids, block header, block, genesis.
//!
//! Everything that crosses a crate boundary or the network is defined here, together
//! with its canonical encoding (RLP for headers and blocks, EIP-2718 for transactions).

mod block;
mod genesis;
mod ids;

pub use block::{Block, BlockDecodeError, Header, MAX_BLOCK_BYTES};
pub use genesis::{
    Genesis, GenesisAccount, GenesisClientValidator, GenesisError, GenesisGovernance,
    GenesisLightClient, GenesisNode, GenesisOrganization, GenesisValidator, NodeRole, Threshold,
    DEFAULT_GAS_LIMIT, DEFAULT_MAX_TRANSACTION_GAS,
};
pub use ids::{ChainId, Height, InvalidOrgId, OrgId};

pub use alloy_consensus::{ReceiptEnvelope, TxEnvelope};
pub use alloy_primitives::{Address, Bloom, Bytes, B256, U256};
