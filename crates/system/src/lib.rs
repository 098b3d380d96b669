//! Trellis system contracts: native services at reserved addresses with Solidity interfaces
//! (`contracts/src/ITrellis*.sol`), reached by transactions, by Solidity contracts and by
//! `eth_call` exactly like deployed contracts.
//!
//! Each contract is plain logic over its own account storage, seen through [`Slots`], so it
//! runs the same inside the EVM (the execution crate adapts revm's journal), over a state
//! snapshot (admission checks, RPC reads) and in unit tests. Records are laid out by
//! [`kv`]; everything lives in ordinary storage under the state root.
//!
//! ```
//! use trellis_system::{governance::Governance, kv::MapSlots};
//! let mut slots = MapSlots::empty();
//! assert_eq!(Governance::new(&mut slots).organization_count().unwrap(), 0);
//! ```

pub mod clients;
pub mod contract;
pub mod dids;
pub mod evidence;
pub mod governance;
pub mod identifiers;
pub mod kv;
pub mod proof;
pub mod subchain;
pub mod xchain;

pub use clients::{LightClients, LIGHT_CLIENTS_ADDRESS};
pub use contract::{
    genesis_addresses, system_addresses, system_contract, SystemContract, SystemEnv,
    SYSTEM_CONTRACTS,
};
pub use dids::{Dids, DIDS_ADDRESS};
pub use evidence::{Evidence, EVIDENCE_ADDRESS};
pub use governance::{Governance, PermissionError, Permissions, GOVERNANCE_ADDRESS};
pub use identifiers::{Identifiers, IDENTIFIERS_ADDRESS};
pub use kv::{MapSlots, SlotError, Slots};
pub use xchain::{CrossChain, XCHAIN_ADDRESS};

use alloy_primitives::{Address, Bytes, Log, B256, U256};

/// Code placed at every system-contract address so that Solidity's `extcodesize` checks pass
/// and the account is never "empty" (which would let EIP-161 delete its storage). It is never
/// run: calls are answered natively. `0xfe` is INVALID.
pub const SYSTEM_CODE: &[u8] = &[0xfe];

/// Who calls, from where, in which block.
#[derive(Clone, Copy, Debug)]
pub struct CallContext {
    pub caller: Address,
    pub height: u64,
    /// Hash of the enclosing transaction (zero in `eth_call`).
    pub tx_hash: B256,
    /// A `STATICCALL`: any state change is refused.
    pub is_static: bool,
}

/// A successful system call.
#[derive(Clone, Debug, Default)]
pub struct CallOutput {
    pub output: Bytes,
    pub logs: Vec<Log>,
    /// Gas for work beyond slot accesses and logs (signature checks), charged with the rest.
    pub extra_gas: u64,
    /// Native value the contract pays out of its own balance (escrow released), in order.
    pub payouts: Vec<(Address, U256)>,
}

/// Why a system call did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// Refused: the transaction reverts with this reason (ABI `Error(string)`).
    #[error("{0}")]
    Revert(String),
    /// The storage underneath failed; this node cannot execute the block.
    #[error(transparent)]
    Storage(SlotError),
}

/// A state the layout refuses fails the call (the same on every node); a failing storage
/// underneath fails the block on this node alone.
impl From<SlotError> for CallError {
    fn from(e: SlotError) -> Self {
        match e {
            SlotError::Invalid(reason) => CallError::Revert(reason),
            e @ SlotError::Unavailable(_) => CallError::Storage(e),
        }
    }
}

/// Result of a system call.
pub(crate) type Result<T, E = CallError> = std::result::Result<T, E>;

/// Refuses a call with `reason`.
pub(crate) fn revert<T>(reason: impl Into<String>) -> Result<T> {
    Err(CallError::revert(reason))
}

impl CallError {
    pub fn revert(reason: impl Into<String>) -> CallError {
        CallError::Revert(reason.into())
    }

    /// Revert data in Solidity's `Error(string)` encoding, which every client decodes.
    pub fn revert_data(reason: &str) -> Bytes {
        use alloy_sol_types::SolError;
        alloy_sol_types::Revert::from(reason).abi_encode().into()
    }
}
