//! A chain's beginning: the height-0 block and state a genesis file describes, and the
//! validator sets that genesis and governance state name.

use alloy_primitives::{keccak256, Address, B256};
use trellis_consensus::ValidatorSet;
use trellis_execution::governance_slots;
use trellis_primitives::{Block, Bloom, Genesis, Header};
use trellis_storage::{AccountState, StateChanges, StateView, EMPTY_CODE_HASH, EMPTY_ROOT};
use trellis_system::Governance;

use super::ChainError;

fn validator_set(
    members: impl IntoIterator<Item = (B256, u64)>,
) -> Result<ValidatorSet, ChainError> {
    Ok(ValidatorSet::from_keys(members)?)
}

/// The validator set described by a genesis file.
pub fn genesis_validators(genesis: &Genesis) -> Result<ValidatorSet, ChainError> {
    validator_set(genesis.validators.iter().map(|v| (v.public_key, v.power)))
}

/// The validator set governance state in `view` names: it decides the height after `view`'s.
pub fn validators_in_state(view: &StateView) -> Result<ValidatorSet, ChainError> {
    let members = Governance::new(&mut governance_slots(view)).validators()?;
    validator_set(members)
}

/// Genesis state changes and the height-0 block that commits to them.
pub fn genesis_block(genesis: &Genesis) -> Result<(StateChanges, Block), ChainError> {
    let validators = genesis_validators(genesis)?;
    let mut changes = StateChanges::default();
    trellis_execution::genesis_system_state(genesis, &mut changes)?;
    for (address, account) in &genesis.alloc {
        let code_hash = if account.code.is_empty() {
            EMPTY_CODE_HASH
        } else {
            let hash = keccak256(&account.code);
            changes.codes.insert(hash, account.code.clone());
            hash
        };
        changes.accounts.insert(
            *address,
            Some(AccountState {
                nonce: account.nonce,
                balance: account.balance,
                code_hash,
                storage_root: EMPTY_ROOT,
            }),
        );
        if !account.storage.is_empty() {
            changes.storage.insert(
                *address,
                account
                    .storage
                    .iter()
                    .map(|(k, v)| ((*k).into(), (*v).into()))
                    .collect(),
            );
        }
    }
    let state_root = trellis_execution::fresh_state_root(&mut changes)?;
    let block = Block {
        header: Header {
            chain_id: genesis.chain_id.0,
            height: 0,
            parent_hash: B256::ZERO,
            timestamp_ms: genesis.timestamp_ms,
            proposer: Address::ZERO,
            transactions_root: Block::compute_transactions_root(&[]),
            receipts_root: EMPTY_ROOT,
            state_root,
            logs_bloom: Bloom::ZERO,
            gas_limit: genesis.gas_limit,
            gas_used: 0,
            validators_hash: validators.hash(),
            next_validators_hash: None,
        },
        transactions: vec![],
    };
    Ok((changes, block))
}
