//! Why a chain instance could not open, build or commit. Each variant is one situation an
//! operator can act on; the engine logs it and, for a commit, restarts the height.

use alloy_primitives::B256;
use trellis_consensus::{ValidatorSetError, VerifyError};
use trellis_execution::ExecutionError;
use trellis_storage::StoreError;
use trellis_system::SlotError;

use super::state::NotNext;

#[derive(Debug, thiserror::Error)]
pub enum ChainError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Execution(#[from] ExecutionError),
    /// Governance state could not be read (or holds what its layout refuses).
    #[error("governance state: {0}")]
    Governance(#[from] SlotError),
    /// Genesis or governance names a validator set the engine cannot use.
    #[error("validator set: {0}")]
    Validators(#[from] ValidatorSetError),
    #[error(transparent)]
    NotNext(#[from] NotNext),
    #[error("no validator set known for height {0}")]
    UnknownValidators(u64),
    #[error("rebuilt state root {rebuilt} differs from the tip's {expected}")]
    RebuiltRoot { rebuilt: B256, expected: B256 },
    #[error("store has no genesis block")]
    NoGenesis,
    #[error(
        "the data directory belongs to another chain: stored genesis {stored} but genesis file gives {given}"
    )]
    ForeignGenesis { stored: B256, given: B256 },
    #[error("tip block {0} missing from store")]
    MissingTip(u64),
    #[error("decided block {hash} conflicts with committed block {height}")]
    Conflict { hash: B256, height: u64 },
    #[error("decided block {0} was never built or verified here")]
    NeverSeen(B256),
    #[error("kept proposal {hash} no longer verifies: {source}")]
    KeptInvalid { hash: B256, source: VerifyError },
    #[error("decided block {0} vanished after reloading")]
    Vanished(B256),
    #[error("decided block {hash} is for height {block_height}, not {height}")]
    WrongHeight {
        hash: B256,
        block_height: u64,
        height: u64,
    },
}
