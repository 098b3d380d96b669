//! The genesis of each sub-chain this chain's governance creates.
//!
//! A sub-chain's genesis is a function of the governance state after the block whose end
//! applied its creation, and of that block's header ([`trellis_system::subchain`]). This
//! node keeps only its latest state, so it derives the genesis when it commits that block,
//! from a snapshot of exactly that state, and keeps it in the chain's directory
//! (`subchains/<id>.json`) with a witness: every governance slot the derivation read, with
//! its Merkle proof against the block's state root. Anyone re-runs the derivation over the
//! proven slots (`trellis chain genesis --verify`); hosts start the sub-chain from the file.

use alloy_primitives::{B256, U256};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use trellis_light::StateWitness;
use trellis_primitives::{Genesis, Header};
use trellis_rpc::api::SubchainGenesis;
use trellis_storage::StateView;
use trellis_system::governance::GOVERNANCE_ADDRESS;
use trellis_system::kv::{SlotError, Slots};

use super::genesis_block;

/// Why a sub-chain's genesis could not be derived, checked or kept.
#[derive(Debug, thiserror::Error)]
pub enum SubchainGenesisError {
    #[error(transparent)]
    Derive(#[from] trellis_system::subchain::DeriveError),
    #[error("cannot prove the governance state: {0}")]
    Proof(String),
    #[error("the derived genesis does not start a chain: {0}")]
    Genesis(String),
    #[error("{path}: {reason}")]
    File { path: PathBuf, reason: String },
}

/// Reads governance storage from a snapshot, noting every slot read.
struct Recording<'v> {
    view: &'v StateView,
    read: BTreeSet<U256>,
}

impl Slots for Recording<'_> {
    fn load(&mut self, slot: U256) -> Result<U256, SlotError> {
        self.read.insert(slot);
        self.view
            .storage(&GOVERNANCE_ADDRESS, &slot)
            .map_err(SlotError::unavailable)
    }

    fn store(&mut self, _slot: U256, _value: U256) -> Result<(), SlotError> {
        Err(SlotError::invalid("deriving a genesis writes nothing"))
    }
}

/// Derives sub-chain `sub`'s genesis from `view`, which must be the state right after
/// `header`'s block was committed (with its certificate).
pub fn derive(
    view: &StateView,
    header: &Header,
    sub: u64,
) -> Result<SubchainGenesis, SubchainGenesisError> {
    let mut slots = Recording {
        view,
        read: BTreeSet::new(),
    };
    let genesis = trellis_system::subchain::derive_genesis(&mut slots, sub, header)?;
    let read: Vec<B256> = slots.read.iter().map(|s| B256::from(*s)).collect();
    let proof = trellis_rpc::rest::state_proof(header.chain_id, view, GOVERNANCE_ADDRESS, &read)
        .map_err(|e| SubchainGenesisError::Proof(e.to_string()))?;
    if proof.height != header.height {
        return Err(SubchainGenesisError::Proof(format!(
            "the snapshot is at height {}, not {}",
            proof.height, header.height
        )));
    }
    Ok(SubchainGenesis {
        chain_id: alloy_primitives::U64::from(sub),
        main_height: alloy_primitives::U64::from(header.height),
        genesis_hash: genesis_hash(&genesis)?,
        genesis,
        witness: StateWitness::from_proof(proof),
    })
}

/// The hash of the block 0 `genesis` describes.
pub fn genesis_hash(genesis: &Genesis) -> Result<B256, SubchainGenesisError> {
    let (_, block) =
        genesis_block(genesis).map_err(|e| SubchainGenesisError::Genesis(e.to_string()))?;
    Ok(block.hash())
}

/// Where sub-chain `sub`'s derived genesis is kept under `dir`.
pub fn path(dir: &Path, sub: u64) -> PathBuf {
    dir.join(format!("{sub}.json"))
}

/// Keeps `derived` under `dir`, replacing the file whole (written aside, then renamed).
pub fn save(dir: &Path, derived: &SubchainGenesis) -> Result<(), SubchainGenesisError> {
    let file = path(dir, derived.chain_id.saturating_to());
    let fail = |reason: String| SubchainGenesisError::File {
        path: file.clone(),
        reason,
    };
    std::fs::create_dir_all(dir).map_err(|e| fail(e.to_string()))?;
    let json = serde_json::to_vec_pretty(derived).map_err(|e| fail(e.to_string()))?;
    let aside = file.with_extension("json.tmp");
    std::fs::write(&aside, json).map_err(|e| fail(e.to_string()))?;
    std::fs::rename(&aside, &file).map_err(|e| fail(e.to_string()))
}

/// Sub-chain `sub`'s derived genesis kept under `dir`, if any.
pub fn load(dir: &Path, sub: u64) -> Result<Option<SubchainGenesis>, SubchainGenesisError> {
    let file = path(dir, sub);
    let bytes = match std::fs::read(&file) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(SubchainGenesisError::File {
                path: file,
                reason: e.to_string(),
            })
        }
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| SubchainGenesisError::File {
            path: file,
            reason: e.to_string(),
        })
}

/// Re-runs the derivation over `derived.witness`'s proven slots, after checking them
/// against the main-chain block `trusted_hash` (a block the caller's own node finalized),
/// and answers the genesis hash if everything matches. What `trellis chain genesis
/// --verify` and a host starting a sub-chain from another node's file check.
pub fn verify(derived: &SubchainGenesis, trusted_hash: B256) -> Result<B256, SubchainGenesisError> {
    if derived.witness.height != derived.main_height.saturating_to::<u64>() {
        return Err(SubchainGenesisError::Proof(format!(
            "the witness is of block {}, the genesis claims block {}",
            derived.witness.height, derived.main_height
        )));
    }
    let proven = derived
        .witness
        .verify_with_hash(trusted_hash)
        .map_err(|e| SubchainGenesisError::Proof(e.to_string()))?;
    if derived.witness.address != GOVERNANCE_ADDRESS {
        return Err(SubchainGenesisError::Proof(format!(
            "the witness proves {}, not the governance contract",
            derived.witness.address
        )));
    }
    let mut slots =
        trellis_system::kv::MapSlots::over(|slot| {
            proven.slots.get(&slot).copied().ok_or_else(|| {
                SlotError::invalid(format!("the witness does not prove slot {slot:#x}"))
            })
        });
    let sub = derived.chain_id.saturating_to();
    let genesis = trellis_system::subchain::derive_genesis(&mut slots, sub, &proven.header)?;
    if genesis != derived.genesis {
        return Err(SubchainGenesisError::Genesis(
            "the genesis differs from the one the main chain's state derives".into(),
        ));
    }
    let hash = genesis_hash(&genesis)?;
    if hash != derived.genesis_hash {
        return Err(SubchainGenesisError::Genesis(format!(
            "the genesis hashes to {hash}, not {}",
            derived.genesis_hash
        )));
    }
    Ok(hash)
}
