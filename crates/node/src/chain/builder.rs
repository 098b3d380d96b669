//! Blocks over execution: building the block a proposer offers from the transactions it
//! picked, and re-executing a received block to check what its header claims. Both are
//! synchronous functions of a state view and the chain's constants; the chain instance
//! supplies the tip, the pool's selection and the clock, and keeps what comes out.

use alloy_consensus::TxEnvelope;
use alloy_primitives::{Address, B256};
use trellis_execution::{execute_block, BlockEnvInput, ExecutedBlock, ExecutionError, Mode};
use trellis_primitives::{Block, Header};
use trellis_storage::StateView;

use super::state::Tip;

/// The constants of one chain that every block it builds or checks shares.
#[derive(Clone, Copy, Debug)]
pub struct BlockBuilder {
    pub chain_id: u64,
    pub gas_limit: u64,
    /// Gas one transaction may ask for (genesis `maxTransactionGas`).
    pub max_tx_gas: u64,
}

/// The block to build: where it goes and who proposes it.
#[derive(Clone, Copy, Debug)]
pub struct NextBlock {
    pub parent: Tip,
    /// Later than the parent's (the caller clamps its clock).
    pub timestamp_ms: u64,
    pub proposer: Address,
    /// The hash of the set deciding this height, committed in the header.
    pub validators_hash: B256,
}

/// The `nextValidatorsHash` a block's header must carry: the set its governance effects
/// leave, or the set that decided it (`validators_hash`) when they changed nothing.
fn next_validators_hash(executed: &ExecutedBlock, validators_hash: B256) -> B256 {
    executed
        .next_validators
        .as_deref()
        .map_or(validators_hash, trellis_light::members_hash)
}

/// A built block with what executing it produced.
#[derive(Debug)]
pub struct Built {
    pub block: Block,
    pub executed: ExecutedBlock,
    /// Why the picked transactions could not be executed at all, when the block was built
    /// empty instead (a bug, not a transaction's fault: those are left out one by one).
    pub fell_back: Option<ExecutionError>,
}

impl BlockBuilder {
    fn env(&self, height: u64, timestamp_ms: u64, proposer: Address) -> BlockEnvInput {
        BlockEnvInput {
            chain_id: self.chain_id,
            height,
            timestamp_ms,
            proposer,
            gas_limit: self.gas_limit,
            max_tx_gas: self.max_tx_gas,
        }
    }

    /// Executes `txs` (signed by `senders`) on `view` and assembles the block of
    /// `next.parent.height + 1`. Transactions that cannot execute are left out and listed in
    /// `executed.rejected`; if execution fails as a whole, the block is built without
    /// transactions so the chain goes on (`fell_back` says why). Fails only if even the
    /// empty block cannot be executed.
    pub fn build(
        &self,
        view: &StateView,
        next: &NextBlock,
        txs: Vec<TxEnvelope>,
        senders: Vec<Address>,
    ) -> Result<Built, ExecutionError> {
        let height = next.parent.height + 1;
        let env = self.env(height, next.timestamp_ms, next.proposer);
        let (executed, fell_back) =
            match execute_block(view, &env, txs.clone(), senders, Mode::Build) {
                Ok(executed) => (executed, None),
                Err(e) if !txs.is_empty() => (
                    execute_block(view, &env, Vec::new(), Vec::new(), Mode::Build)?,
                    Some(e),
                ),
                Err(e) => return Err(e),
            };
        let block = Block {
            header: Header {
                chain_id: self.chain_id,
                height,
                parent_hash: next.parent.hash,
                timestamp_ms: next.timestamp_ms,
                proposer: next.proposer,
                transactions_root: Block::compute_transactions_root(&executed.transactions),
                receipts_root: executed.receipts_root,
                state_root: executed.state_root,
                logs_bloom: executed.logs_bloom,
                gas_limit: self.gas_limit,
                gas_used: executed.gas_used,
                validators_hash: next.validators_hash,
                next_validators_hash: Some(next_validators_hash(&executed, next.validators_hash)),
            },
            transactions: executed.transactions.clone(),
        };
        Ok(Built {
            block,
            executed,
            fell_back,
        })
    }

    /// Executes a received `block` (its transactions signed by `senders`) on `view`, the
    /// state of its parent, and checks that the header's state root, receipts root, gas used,
    /// logs bloom and next validator-set hash are what execution produced. Every transaction must execute: a block
    /// that carries one that cannot is refused, with the reason.
    pub fn reexecute(
        &self,
        view: &StateView,
        block: &Block,
        senders: Vec<Address>,
    ) -> Result<ExecutedBlock, String> {
        let h = &block.header;
        let env = self.env(h.height, h.timestamp_ms, h.proposer);
        let executed = execute_block(
            view,
            &env,
            block.transactions.clone(),
            senders,
            Mode::Verify,
        )
        .map_err(|e| e.to_string())?;
        if executed.state_root != h.state_root {
            return Err("state root mismatch".into());
        }
        if executed.receipts_root != h.receipts_root {
            return Err("receipts root mismatch".into());
        }
        if executed.gas_used != h.gas_used || executed.logs_bloom != h.logs_bloom {
            return Err("gas used or logs bloom mismatch".into());
        }
        // Whether it must be named is the header check's (blocks finalized before the field
        // existed have none); named, it must be what execution left.
        if let Some(named) = h.next_validators_hash {
            if named != next_validators_hash(&executed, h.validators_hash) {
                return Err("next validator-set hash mismatch".into());
            }
        }
        Ok(executed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy_consensus::TxLegacy;
    use alloy_primitives::{TxKind, U256};
    use trellis_crypto::AccountKey;
    use trellis_primitives::{Genesis, Height};
    use trellis_storage::{MemoryDisk, Store};

    /// A store holding the genesis state of a chain where `sender` has a balance.
    fn chain_with(sender: Address) -> (Store, BlockBuilder, Tip) {
        let key = ed25519_consensus::SigningKey::from([7; 32]);
        let key = B256::from(key.verification_key().to_bytes());
        let genesis = Genesis::from_json(&format!(
            r#"{{"chainId": 9,
                "alloc": {{"{sender}": {{"balance": "0x1000000000000000000"}}}},
                "validators": [{{"publicKey": "{key}", "power": 1, "org": "org1"}}],
                "governance": {{"organizations": [{{"id": "org1", "admins": ["{sender}"]}}]}}}}"#
        ))
        .expect("genesis");
        let (changes, block0) = super::super::genesis_block(&genesis).expect("genesis block");
        let store = Store::open_on(&MemoryDisk::default()).expect("store");
        store
            .init_genesis(&changes, &block0)
            .expect("genesis written");
        let builder = BlockBuilder {
            chain_id: 9,
            gas_limit: genesis.gas_limit,
            max_tx_gas: genesis.max_transaction_gas,
        };
        let tip = Tip::of(&block0);
        (store, builder, tip)
    }

    fn transfer(key: &AccountKey, nonce: u64, gas_limit: u64) -> TxEnvelope {
        key.sign_tx(TxLegacy {
            chain_id: Some(9),
            nonce,
            gas_price: 0,
            gas_limit,
            to: TxKind::Call(Address::repeat_byte(0x22)),
            value: U256::from(5),
            input: Default::default(),
        })
    }

    #[test]
    fn a_built_block_reexecutes_to_its_header_and_a_tampered_one_does_not() {
        let key = AccountKey::from_bytes(&[3; 32]).expect("key");
        let (store, builder, parent) = chain_with(key.address());
        let view = store.view().expect("view");
        let next = NextBlock {
            parent,
            timestamp_ms: parent.timestamp_ms + 1,
            proposer: Address::repeat_byte(0x11),
            validators_hash: B256::repeat_byte(0x33),
        };
        // The second transaction repeats the first's nonce: left out, with its reason.
        let txs = vec![transfer(&key, 0, 21_000), transfer(&key, 0, 30_000)];
        let built = builder
            .build(&view, &next, txs.clone(), vec![key.address(); 2])
            .expect("builds");
        assert!(built.fell_back.is_none());
        let h = &built.block.header;
        assert_eq!((h.height, h.parent_hash, h.chain_id), (1, parent.hash, 9));
        assert_eq!(h.validators_hash, next.validators_hash);
        // No proposal changed the set: the next one is the same.
        assert_eq!(h.next_validators_hash, Some(next.validators_hash));
        assert_eq!(built.block.transactions, vec![txs[0].clone()]);
        assert_eq!(built.executed.rejected.len(), 1);
        assert_eq!(built.executed.rejected[0].0, *txs[1].tx_hash());
        assert_eq!(h.gas_used, 21_000);

        let again = builder
            .reexecute(&view, &built.block, vec![key.address()])
            .expect("its own block re-executes to the same header");
        assert_eq!(again.state_root, h.state_root);

        let mut tampered = built.block.clone();
        tampered.header.state_root = B256::repeat_byte(9);
        assert_eq!(
            builder
                .reexecute(&view, &tampered, vec![key.address()])
                .err()
                .as_deref(),
            Some("state root mismatch")
        );
        let mut tampered = built.block.clone();
        tampered.header.next_validators_hash = Some(B256::repeat_byte(9));
        assert_eq!(
            builder
                .reexecute(&view, &tampered, vec![key.address()])
                .err()
                .as_deref(),
            Some("next validator-set hash mismatch")
        );
        let mut tampered = built.block.clone();
        tampered.header.gas_used += 1;
        assert!(builder
            .reexecute(&view, &tampered, vec![key.address()])
            .is_err());
        // A received block must carry only transactions that execute.
        let mut carrying = built.block.clone();
        carrying.transactions = txs;
        assert!(builder
            .reexecute(&view, &carrying, vec![key.address(); 2])
            .is_err());
        assert_eq!(
            store.view().expect("view").tip().expect("tip"),
            Some(Height(0))
        );
    }
}
