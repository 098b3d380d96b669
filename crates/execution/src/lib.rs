//! Block execution with revm over the node's store.
//!
//! [`execute_block`] runs a block's transactions against a [`StateView`] snapshot and returns
//! receipts, the state changes to commit and the roots that go into the header. Proposers use
//! [`Mode::Build`] (transactions that cannot run are left out); validators use
//! [`Mode::Verify`] (any such transaction makes the block invalid). [`call`] serves
//! `eth_call` without changing anything.

mod db;
pub mod gas;
mod roots;
mod system;
pub mod trie;

pub use db::StoreDb;
pub use roots::{
    finalize_state_root, fresh_state_root, prove_account, rebuild_tries, AccountProof, RebuiltTries,
};
pub use system::TrellisPrecompiles;

use alloy_consensus::{
    Eip658Value, Receipt, ReceiptEnvelope, ReceiptWithBloom, Transaction, TxEnvelope, TxType,
    Typed2718,
};
use alloy_primitives::{logs_bloom, Address, Bloom, Bytes, TxKind, B256, U256};
use revm::context::result::{EVMError, ExecutionResult, HaltReason, InvalidTransaction};
use revm::context::{BlockEnv, CfgEnv, TxEnv};
use revm::database::CacheDB;
use revm::primitives::hardfork::SpecId;
use revm::state::EvmState;
use revm::{Context, ExecuteCommitEvm, ExecuteEvm, MainBuilder, MainContext};
use trellis_storage::{AccountState, StateChanges, StateView, StoreError, EMPTY_CODE_HASH};
use trellis_system::{Governance, MapSlots, Permissions, SlotError, Slots, GOVERNANCE_ADDRESS};

/// The EVM revision every Trellis chain runs.
pub const SPEC: SpecId = SpecId::PRAGUE;

/// Environment of the block being executed.
#[derive(Clone, Debug)]
pub struct BlockEnvInput {
    pub chain_id: u64,
    pub height: u64,
    pub timestamp_ms: u64,
    pub proposer: Address,
    /// Gas all of the block's transactions may use together.
    pub gas_limit: u64,
    /// Gas one transaction may ask for at most (no more than `gas_limit`).
    pub max_tx_gas: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Building a proposal: skip transactions that cannot be included.
    Build,
    /// Checking a received block: every transaction must be includable.
    Verify,
}

#[derive(Debug, thiserror::Error)]
pub enum ExecutionError {
    #[error("storage: {0}")]
    Store(#[from] StoreError),
    #[error("transaction {index} is invalid: {reason}")]
    InvalidTransaction { index: usize, reason: String },
    #[error("block gas limit exceeded")]
    GasLimitExceeded,
    #[error("transaction {index} asks for {gas} gas, above the {limit} one transaction may use")]
    TransactionGasExceeded { index: usize, gas: u64, limit: u64 },
    #[error(transparent)]
    System(#[from] SlotError),
}

/// A system contract's storage as of a snapshot, read-only.
pub struct ViewSlots<'a> {
    view: &'a StateView,
    address: alloy_primitives::Address,
}

impl Slots for ViewSlots<'_> {
    fn load(&mut self, slot: U256) -> Result<U256, SlotError> {
        self.view
            .storage(&self.address, &slot)
            .map_err(SlotError::unavailable)
    }

    fn store(&mut self, _slot: U256, _value: U256) -> Result<(), SlotError> {
        Err(SlotError::invalid("write through a read-only snapshot"))
    }
}

/// Governance storage as of `view`, read-only.
pub fn governance_slots(view: &StateView) -> ViewSlots<'_> {
    system_slots(view, GOVERNANCE_ADDRESS)
}

/// Read-only storage of the system contract at `address` in `view`.
pub fn system_slots(view: &StateView, address: alloy_primitives::Address) -> ViewSlots<'_> {
    ViewSlots { view, address }
}

/// The permission checker for transactions executed on top of `view`.
pub fn permissions(view: &StateView) -> Result<Permissions, SlotError> {
    Permissions::load(&mut Governance::new(&mut governance_slots(view)))
}

/// Most bytes of a reverted transaction's returned data kept with its block (an
/// `Error(string)` with a 4,000-character reason fits).
pub const MAX_REVERT_DATA: usize = 4_096;

/// Validators as governance lists them: node key and voting power.
pub type Validators = Vec<(B256, u64)>;

/// The outcome of executing a block.
#[derive(Clone, Debug)]
pub struct ExecutedBlock {
    /// Transactions actually included (in `Build` mode some may be dropped).
    pub transactions: Vec<TxEnvelope>,
    pub senders: Vec<Address>,
    /// Transactions dropped in `Build` mode, with the reason.
    pub rejected: Vec<(B256, String)>,
    /// What the governance proposals applied after the transactions changed.
    pub governance: trellis_system::governance::Effects,
    /// The validators governance names for the next height, when the proposals applied at
    /// the end of this block changed them; `None`: unchanged.
    pub next_validators: Option<Validators>,
    pub receipts: Vec<ReceiptEnvelope>,
    /// The data each reverted transaction returned (by index among `transactions`), cut to
    /// [`MAX_REVERT_DATA`] bytes: receipts do not carry it, and no older state is kept to
    /// replay the transaction later, so it is recorded with the block.
    pub reverts: Vec<(u32, Bytes)>,
    pub changes: StateChanges,
    pub gas_used: u64,
    pub state_root: B256,
    pub receipts_root: B256,
    pub logs_bloom: Bloom,
}

fn block_env(env: &BlockEnvInput) -> BlockEnv {
    BlockEnv {
        number: U256::from(env.height),
        beneficiary: env.proposer,
        timestamp: U256::from(env.timestamp_ms / 1000),
        gas_limit: env.gas_limit,
        basefee: 0,
        difficulty: U256::ZERO,
        prevrandao: Some(B256::ZERO),
        ..Default::default()
    }
}

fn cfg_env(chain_id: u64) -> CfgEnv {
    let mut cfg = CfgEnv::new_with_spec_and_gas_params(SPEC, gas::gas_params(SPEC));
    cfg.chain_id = chain_id;
    cfg
}

/// Maps a signed transaction and its recovered sender onto revm's transaction environment.
pub fn tx_env(tx: &TxEnvelope, sender: Address) -> TxEnv {
    let gas_price = match tx.tx_type() {
        TxType::Legacy | TxType::Eip2930 => tx.gas_price().unwrap_or_default(),
        _ => tx.max_fee_per_gas(),
    };
    TxEnv {
        tx_type: tx.ty(),
        caller: sender,
        gas_limit: tx.gas_limit(),
        gas_price,
        kind: tx.kind(),
        value: tx.value(),
        data: tx.input().clone(),
        nonce: tx.nonce(),
        chain_id: tx.chain_id(),
        access_list: tx.access_list().cloned().unwrap_or_default(),
        gas_priority_fee: tx.max_priority_fee_per_gas(),
        ..Default::default()
    }
}

fn receipt_for(
    tx: &TxEnvelope,
    success: bool,
    cumulative_gas_used: u64,
    logs: Vec<alloy_primitives::Log>,
) -> ReceiptEnvelope {
    let bloom = logs_bloom(logs.iter());
    let receipt = ReceiptWithBloom {
        receipt: Receipt {
            status: Eip658Value::Eip658(success),
            cumulative_gas_used,
            logs,
        },
        logs_bloom: bloom,
    };
    match tx.tx_type() {
        TxType::Eip2930 => ReceiptEnvelope::Eip2930(receipt),
        TxType::Eip1559 => ReceiptEnvelope::Eip1559(receipt),
        _ => ReceiptEnvelope::Legacy(receipt),
    }
}

/// Folds one transaction's state diff into the block's accumulated changes.
fn accumulate(changes: &mut StateChanges, state: &EvmState) {
    for (address, account) in state {
        if !account.is_touched() {
            continue;
        }
        if account.is_selfdestructed() || account.is_empty() {
            changes.accounts.insert(*address, None);
            changes.wiped_storage.insert(*address);
            changes.storage.remove(address);
            continue;
        }
        if account.is_created() {
            changes.wiped_storage.insert(*address);
            changes.storage.remove(address);
        }
        let info = &account.info;
        if let Some(code) = &info.code {
            if info.code_hash != EMPTY_CODE_HASH && !code.is_empty() {
                changes
                    .codes
                    .entry(info.code_hash)
                    .or_insert_with(|| code.original_bytes());
            }
        }
        changes.accounts.insert(
            *address,
            Some(AccountState {
                nonce: info.nonce,
                balance: info.balance,
                code_hash: info.code_hash,
                // Filled in by the state-root pass.
                storage_root: B256::ZERO,
            }),
        );
        let slots = changes.storage.entry(*address).or_default();
        for (slot, value) in account.changed_storage_slots() {
            slots.insert(*slot, value.present_value);
        }
    }
}

fn invalid_reason<E: std::fmt::Display>(e: &EVMError<E, InvalidTransaction>) -> String {
    e.to_string()
}

/// Executes `txs` (with their recovered `senders`) on top of `view`.
pub fn execute_block(
    view: &StateView,
    env: &BlockEnvInput,
    txs: Vec<TxEnvelope>,
    senders: Vec<Address>,
    mode: Mode,
) -> Result<ExecutedBlock, ExecutionError> {
    let mut gov_slots = governance_slots(view);
    let mut permissions = Permissions::load(&mut Governance::new(&mut gov_slots))?;
    let db = CacheDB::new(StoreDb::new(view));
    let mut evm = Context::mainnet()
        .with_db(db)
        .with_block(block_env(env))
        .with_cfg(cfg_env(env.chain_id))
        .build_mainnet()
        .with_precompiles(TrellisPrecompiles::new(
            SPEC,
            env.height,
            env.timestamp_ms,
            permissions.any_frozen(),
        ));

    let mut out = ExecutedBlock {
        transactions: Vec::with_capacity(txs.len()),
        senders: Vec::with_capacity(txs.len()),
        rejected: Vec::new(),
        governance: Default::default(),
        next_validators: None,
        receipts: Vec::with_capacity(txs.len()),
        reverts: Vec::new(),
        changes: StateChanges::default(),
        gas_used: 0,
        state_root: B256::ZERO,
        receipts_root: B256::ZERO,
        logs_bloom: Bloom::ZERO,
    };

    for (index, (tx, sender)) in txs.into_iter().zip(senders).enumerate() {
        if tx.gas_limit() > env.max_tx_gas {
            let error = ExecutionError::TransactionGasExceeded {
                index,
                gas: tx.gas_limit(),
                limit: env.max_tx_gas,
            };
            match mode {
                Mode::Build => {
                    out.rejected.push((*tx.tx_hash(), error.to_string()));
                    continue;
                }
                Mode::Verify => return Err(error),
            }
        }
        if out.gas_used.saturating_add(tx.gas_limit()) > env.gas_limit {
            match mode {
                Mode::Build => {
                    // Block is full; the rest stays in the pool for the next block.
                    break;
                }
                Mode::Verify => return Err(ExecutionError::GasLimitExceeded),
            }
        }
        let allowed = permissions.check(
            &mut Governance::new(&mut gov_slots),
            &sender,
            tx.to().as_ref(),
        )?;
        if let Err(refusal) = allowed {
            match mode {
                Mode::Build => {
                    out.rejected.push((*tx.tx_hash(), refusal.to_string()));
                    continue;
                }
                Mode::Verify => {
                    return Err(ExecutionError::InvalidTransaction {
                        index,
                        reason: refusal.to_string(),
                    })
                }
            }
        }
        evm.precompiles.tx_hash = *tx.tx_hash();
        let result = evm.transact(tx_env(&tx, sender));
        let outcome = match result {
            Ok(outcome) => outcome,
            Err(EVMError::Database(e)) => return Err(ExecutionError::Store(e.0)),
            Err(e) => match mode {
                Mode::Build => {
                    out.rejected.push((*tx.tx_hash(), invalid_reason(&e)));
                    continue;
                }
                Mode::Verify => {
                    return Err(ExecutionError::InvalidTransaction {
                        index,
                        reason: invalid_reason(&e),
                    })
                }
            },
        };
        accumulate(&mut out.changes, &outcome.state);
        evm.commit(outcome.state);
        let result: ExecutionResult<HaltReason> = outcome.result;
        out.gas_used += result.tx_gas_used();
        if let ExecutionResult::Revert { output, .. } = &result {
            let kept = output.slice(..output.len().min(MAX_REVERT_DATA));
            out.reverts.push((out.transactions.len() as u32, kept));
        }
        let receipt = receipt_for(&tx, result.is_success(), out.gas_used, result.into_logs());
        out.logs_bloom.accrue_bloom(receipt.logs_bloom());
        out.receipts.push(receipt);
        out.transactions.push(tx);
        out.senders.push(sender);
    }
    drop(evm);
    (out.governance, out.next_validators) = end_block(view, env, &mut out.changes)?;

    out.receipts_root = alloy_consensus::proofs::calculate_receipt_root(&out.receipts);
    out.state_root = roots::finalize_state_root(view, &mut out.changes)?;
    Ok(out)
}

/// Adds the system contracts' genesis state (accounts, marker code, governance records).
pub fn genesis_system_state(
    genesis: &trellis_primitives::Genesis,
    changes: &mut StateChanges,
) -> Result<(), SlotError> {
    let mut slots = MapSlots::empty();
    Governance::new(&mut slots).init(genesis)?;
    let code = alloy_primitives::Bytes::from_static(trellis_system::SYSTEM_CODE);
    let code_hash = alloy_primitives::keccak256(&code);
    changes.codes.insert(code_hash, code);
    let mut clients = MapSlots::empty();
    for c in &genesis.light_clients {
        let root = trellis_system::clients::Anchored {
            height: c.root_height,
            hash: c.root_hash,
            state_root: c.root_state_root,
            timestamp_ms: c.root_timestamp_ms,
        };
        let validators: Vec<(B256, u64)> = c
            .validators
            .iter()
            .map(|v| (v.public_key, v.power))
            .collect();
        trellis_system::LightClients::new(&mut clients)
            .create(c.chain_id.0, root, &validators)
            .map_err(|e| SlotError::invalid(format!("genesis lightClients: {e}")))?;
    }
    // A chain whose genesis names a hub (a sub-chain: the main chain) reaches the chains it
    // does not follow through it.
    if let Some(hub) = genesis.light_clients.iter().find(|c| c.hub) {
        trellis_system::LightClients::new(&mut clients)
            .set_hub(hub.chain_id.0)
            .map_err(|e| SlotError::invalid(format!("genesis lightClients: {e}")))?;
    }
    // Contracts added after chains were running get an account here only when configured.
    let configured = match genesis.light_clients.is_empty() {
        true => vec![],
        false => vec![
            trellis_system::LIGHT_CLIENTS_ADDRESS,
            trellis_system::XCHAIN_ADDRESS,
        ],
    };
    for address in trellis_system::genesis_addresses().chain(configured.iter().copied()) {
        changes.accounts.insert(
            address,
            Some(AccountState {
                nonce: 1,
                balance: U256::ZERO,
                code_hash,
                storage_root: B256::ZERO,
            }),
        );
    }
    changes.storage.insert(
        GOVERNANCE_ADDRESS,
        slots
            .writes
            .into_iter()
            .filter(|(_, v)| !v.is_zero())
            .collect(),
    );
    if !configured.is_empty() {
        changes.storage.insert(
            trellis_system::LIGHT_CLIENTS_ADDRESS,
            clients
                .writes
                .into_iter()
                .filter(|(_, v)| !v.is_zero())
                .collect(),
        );
    }
    Ok(())
}

/// The storage of the system contract at `address` as the block's changes so far leave it:
/// their writes over `view`, new writes kept aside.
fn pending_slots<'a>(
    view: &'a StateView,
    changes: &'a StateChanges,
    address: Address,
) -> MapSlots<'a> {
    let pending = changes.storage.get(&address);
    MapSlots::over(move |slot| match pending.and_then(|p| p.get(&slot)) {
        Some(v) => Ok(*v),
        None => view
            .storage(&address, &slot)
            .map_err(SlotError::unavailable),
    })
}

/// Applies the governance packets this block received and the proposals due at the next
/// height on top of the block's changes, then what they ask of other contracts: light clients
/// reset, packets sent to sub-chains, clients of sub-chains created.
///
/// A proposal that cannot be applied is recorded as failed by governance itself; should the
/// governance state be refused as a whole (a corrupt record, the same on every node), the
/// end-of-block step is skipped with an error in the log rather than failing the block, so
/// the chain goes on and operators see it. Only a failing database fails the block here.
fn end_block(
    view: &StateView,
    env: &BlockEnvInput,
    changes: &mut StateChanges,
) -> Result<(trellis_system::governance::Effects, Option<Validators>), ExecutionError> {
    let height = env.height;
    // The packets are taken out of their queue only if governance applies them: should its
    // state be refused, they wait (and the error is logged) instead of being lost.
    let (packets, queue_writes) = match take_packets(view, changes) {
        Ok(taken) => taken,
        Err(SlotError::Invalid(reason)) => {
            tracing::error!(
                height,
                %reason,
                "the governance packet queue is refused by the state; packets skipped for this block"
            );
            (Vec::new(), Default::default())
        }
        Err(e) => return Err(e.into()),
    };
    let (effects, from_packets, next_validators, writes, created) = {
        let mut slots = pending_slots(view, changes, GOVERNANCE_ADDRESS);
        let ended = (|| {
            // Packets first: like the proposals due now, they hold from the next height on.
            let mut from_packets = trellis_system::governance::Effects::default();
            for (source, sequence, call) in &packets {
                from_packets.merge(
                    Governance::new(&mut slots).apply_packet(height, *source, *sequence, call)?,
                );
            }
            let mut effects = Governance::new(&mut slots).end_block(height)?;
            // The set the applied proposals leave, read through their writes.
            let next = match effects.validators_changed || from_packets.validators_changed {
                true => Some(Governance::new(&mut slots).validators()?),
                false => None,
            };
            // The validators of each sub-chain created: the main chain's client of it
            // trusts them.
            let mut created = Vec::new();
            for &sub in &effects.subchains_created {
                if let Some(record) = Governance::new(&mut slots).subchain(sub)? {
                    let set: Vec<(B256, u64)> = record
                        .validators
                        .iter()
                        .map(|v| (v.public_key, v.power))
                        .collect();
                    created.push((sub, set));
                }
            }
            // What the node follows outside state comes from both.
            effects
                .nodes_added
                .extend(from_packets.nodes_added.iter().copied());
            effects
                .nodes_removed
                .extend(from_packets.nodes_removed.iter().copied());
            effects.validators_changed |= from_packets.validators_changed;
            Ok::<_, SlotError>((effects, from_packets, next, created))
        })();
        match ended {
            Ok((effects, from_packets, next, created)) => {
                (effects, from_packets, next, slots.writes, created)
            }
            Err(SlotError::Invalid(reason)) => {
                tracing::error!(
                    height,
                    %reason,
                    "governance end-of-block step refused by the state; skipped for this block"
                );
                return Ok(Default::default());
            }
            Err(e) => return Err(e.into()),
        }
    };
    write_storage(view, changes, trellis_system::XCHAIN_ADDRESS, queue_writes)?;
    if writes.is_empty() {
        return Ok((effects, next_validators));
    }
    write_storage(view, changes, GOVERNANCE_ADDRESS, writes)?;
    if !created.is_empty() {
        follow_subchains(view, height, &created, changes)?;
    }
    let mut audits = reset_clients(view, &effects.clients_reset, false, changes)?;
    audits.extend(reset_clients(
        view,
        &from_packets.clients_reset,
        true,
        changes,
    )?);
    audits.extend(send_packets(view, env, &effects.packets, changes)?);
    if !audits.is_empty() {
        let writes = {
            let mut slots = pending_slots(view, changes, GOVERNANCE_ADDRESS);
            let ctx = trellis_system::CallContext {
                caller: Address::ZERO,
                height,
                tx_hash: B256::ZERO,
                is_static: false,
            };
            let mut recorded = Ok(());
            for (action, detail) in &audits {
                recorded = Governance::new(&mut slots).record_audit(&ctx, action, None, detail);
                if recorded.is_err() {
                    break;
                }
            }
            match recorded {
                Ok(()) => slots.writes,
                // What was done stays done; only its record is missing, and the log says so.
                Err(SlotError::Invalid(reason)) => {
                    tracing::error!(height, %reason, ?audits, "audit entries not recorded");
                    Default::default()
                }
                Err(e) => return Err(e.into()),
            }
        };
        write_storage(view, changes, GOVERNANCE_ADDRESS, writes)?;
    }
    Ok((effects, next_validators))
}

/// Adds `writes` to the storage of system contract `address` in `changes`, with its account.
fn write_storage(
    view: &StateView,
    changes: &mut StateChanges,
    address: Address,
    writes: std::collections::BTreeMap<U256, U256>,
) -> Result<(), ExecutionError> {
    if writes.is_empty() {
        return Ok(());
    }
    system_account_in(view, changes, address)?;
    changes.storage.entry(address).or_default().extend(writes);
    Ok(())
}

/// Puts system contract `address`'s account in `changes`, created as genesis would when the
/// chain never had it (a chain whose genesis configured no light client has neither that
/// contract's account nor the cross-chain contract's; a transaction of this block may even
/// have touched the empty address, recorded as no account).
fn system_account_in(
    view: &StateView,
    changes: &mut StateChanges,
    address: Address,
) -> Result<(), ExecutionError> {
    let account = match changes.accounts.get(&address).cloned() {
        Some(Some(account)) => account,
        Some(None) => system_account(),
        None => view.account(&address)?.unwrap_or_else(system_account),
    };
    changes.accounts.insert(address, Some(account));
    let code = alloy_primitives::Bytes::from_static(trellis_system::SYSTEM_CODE);
    changes
        .codes
        .insert(alloy_primitives::keccak256(&code), code);
    Ok(())
}

/// The governance packets this block's transactions received, as taken out of the cross-chain
/// contract's queue.
/// The packets and the writes that empty the queue (not yet applied to `changes`).
type TakenPackets = (
    Vec<(u64, u64, Vec<u8>)>,
    std::collections::BTreeMap<U256, U256>,
);

fn take_packets(view: &StateView, changes: &StateChanges) -> Result<TakenPackets, SlotError> {
    use trellis_system::{CrossChain, LIGHT_CLIENTS_ADDRESS, XCHAIN_ADDRESS};
    let mut xc = pending_slots(view, changes, XCHAIN_ADDRESS);
    let mut lc = pending_slots(view, changes, LIGHT_CLIENTS_ADDRESS);
    let packets = CrossChain::new(&mut xc, &mut lc).take_packets()?;
    Ok((packets, xc.writes))
}

/// Resets the light clients a vote asked to (`by_packet`: the main chain's, in a packet); the
/// audit entries saying what came of each. On a chain with a hub (a sub-chain), its own vote
/// resets only its client of the hub — no packet could reach it while that one is frozen —
/// and the others only a main-chain vote does.
fn reset_clients(
    view: &StateView,
    resets: &[trellis_system::governance::ClientReset],
    by_packet: bool,
    changes: &mut StateChanges,
) -> Result<Vec<(&'static str, String)>, ExecutionError> {
    use trellis_system::{LightClients, LIGHT_CLIENTS_ADDRESS};
    if resets.is_empty() {
        return Ok(Vec::new());
    }
    let mut audits = Vec::new();
    let writes = {
        let mut slots = pending_slots(view, changes, LIGHT_CLIENTS_ADDRESS);
        for trellis_system::governance::ClientReset {
            chain_id: chain,
            root,
            validators,
        } in resets
        {
            let hub = LightClients::new(&mut slots).hub()?;
            let refused = match hub {
                Some(hub) if !by_packet && hub != *chain => Some(format!(
                    "this sub-chain's client of chain {chain} is reset only by a vote of its \
                     main chain {hub} (a governance packet)"
                )),
                _ => None,
            };
            let outcome = match refused {
                Some(reason) => Err(reason),
                None => {
                    let mut overlay = MapSlots::over(|slot| slots.load(slot));
                    match LightClients::new(&mut overlay).reset(*chain, *root, validators) {
                        Ok(()) => {
                            let written = std::mem::take(&mut overlay.writes);
                            drop(overlay);
                            for (slot, value) in written {
                                slots.store(slot, value)?;
                            }
                            Ok(())
                        }
                        Err(trellis_system::CallError::Storage(e @ SlotError::Unavailable(_))) => {
                            return Err(e.into())
                        }
                        Err(e) => Err(e.to_string()),
                    }
                }
            };
            audits.push(match outcome {
                Ok(()) => (
                    "light client reset",
                    format!(
                        "the light client of chain {chain} trusts {} validators from its block {} \
                         ({}) on",
                        validators.len(),
                        root.height,
                        root.hash
                    ),
                ),
                Err(reason) => (
                    "light client not reset",
                    format!("the light client of chain {chain} was not reset: {reason}"),
                ),
            });
        }
        slots.writes
    };
    write_storage(view, changes, LIGHT_CLIENTS_ADDRESS, writes)?;
    Ok(audits)
}

/// How long a governance packet may wait for its sub-chain (by the sub-chain's block time)
/// before it times out unapplied.
pub const PACKET_TIMEOUT_MS: u64 = 24 * 60 * 60 * 1_000;

/// Commits the governance packets a vote sends to sub-chains, from the governance contract;
/// the audit entries saying what came of each.
fn send_packets(
    view: &StateView,
    env: &BlockEnvInput,
    packets: &[(u64, Vec<u8>)],
    changes: &mut StateChanges,
) -> Result<Vec<(&'static str, String)>, ExecutionError> {
    use trellis_system::{CrossChain, LIGHT_CLIENTS_ADDRESS, XCHAIN_ADDRESS};
    if packets.is_empty() {
        return Ok(Vec::new());
    }
    let call = trellis_system::xchain::Call {
        chain_id: env.chain_id,
        caller: GOVERNANCE_ADDRESS,
        height: env.height,
        timestamp_ms: env.timestamp_ms,
        value: U256::ZERO,
        is_static: false,
        budget: 0,
    };
    let mut audits = Vec::new();
    let writes = {
        let mut xc = pending_slots(view, changes, XCHAIN_ADDRESS);
        let mut lc = pending_slots(view, changes, LIGHT_CLIENTS_ADDRESS);
        for (chain, payload) in packets {
            let mut overlay = MapSlots::over(|slot| xc.load(slot));
            let sent = CrossChain::new(&mut overlay, &mut lc).send_packet(
                &call,
                *chain,
                payload.clone(),
                env.timestamp_ms.saturating_add(PACKET_TIMEOUT_MS),
            );
            audits.push(match sent {
                Ok(sequence) => {
                    let written = std::mem::take(&mut overlay.writes);
                    drop(overlay);
                    for (slot, value) in written {
                        xc.store(slot, value)?;
                    }
                    (
                        "packet sent",
                        format!(
                            "governance packet to sub-chain {chain} sent as message {sequence}"
                        ),
                    )
                }
                Err(trellis_system::CallError::Storage(e @ SlotError::Unavailable(_))) => {
                    return Err(e.into())
                }
                Err(e) => (
                    "packet not sent",
                    format!("governance packet to sub-chain {chain} not sent: {e}"),
                ),
            });
        }
        xc.writes
    };
    write_storage(view, changes, XCHAIN_ADDRESS, writes)?;
    Ok(audits)
}

/// A system contract's account as genesis creates it: the shared marker code, no balance.
fn system_account() -> AccountState {
    AccountState {
        nonce: 1,
        balance: U256::ZERO,
        code_hash: alloy_primitives::keccak256(trellis_system::SYSTEM_CODE),
        storage_root: B256::ZERO,
    }
}

/// Creates this chain's light client of each sub-chain just created, trusting the
/// validators its creation named from its first block on. The sub-chain's genesis is derived
/// from the state this block leaves, so its hash is not known here: the client's root is
/// height 0 with a zero hash, and it accepts the sub-chain's headers from height 1. A client
/// the contract refuses (one of that chain id exists already) is logged and skipped: the same
/// on every node.
fn follow_subchains(
    view: &StateView,
    height: u64,
    created: &[(u64, Vec<(B256, u64)>)],
    changes: &mut StateChanges,
) -> Result<(), ExecutionError> {
    use trellis_system::{clients::Anchored, LightClients, LIGHT_CLIENTS_ADDRESS};
    let writes = {
        let mut slots = pending_slots(view, changes, LIGHT_CLIENTS_ADDRESS);
        for (sub, validators) in created {
            let root = Anchored {
                height: 0,
                hash: B256::ZERO,
                state_root: B256::ZERO,
                timestamp_ms: 0,
            };
            let mut overlay = MapSlots::over(|slot| slots.load(slot));
            match LightClients::new(&mut overlay).create(*sub, root, validators) {
                Ok(()) => {
                    let written = std::mem::take(&mut overlay.writes);
                    drop(overlay);
                    for (slot, value) in written {
                        slots.store(slot, value)?;
                    }
                }
                Err(trellis_system::CallError::Storage(e @ SlotError::Unavailable(_))) => {
                    return Err(e.into())
                }
                Err(e) => tracing::error!(
                    height,
                    sub_chain = sub,
                    error = %e,
                    "no light client of the new sub-chain: the contract refused it"
                ),
            }
        }
        slots.writes
    };
    if writes.is_empty() {
        return Ok(());
    }
    // Both contracts' accounts exist from this block on: the cross-chain contract proves
    // against the clients.
    write_storage(view, changes, LIGHT_CLIENTS_ADDRESS, writes)?;
    system_account_in(view, changes, trellis_system::XCHAIN_ADDRESS)
}

/// A read-only message call (`eth_call`), against the state in `view`.
#[derive(Clone, Debug, Default)]
pub struct CallRequest {
    pub from: Option<Address>,
    pub to: Option<Address>,
    pub gas: Option<u64>,
    pub value: Option<U256>,
    pub data: Bytes,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallOutcome {
    Success { output: Bytes, gas_used: u64 },
    Revert { output: Bytes, gas_used: u64 },
    Halt { reason: String, gas_used: u64 },
}

pub fn call(
    view: &StateView,
    env: &BlockEnvInput,
    req: &CallRequest,
) -> Result<CallOutcome, ExecutionError> {
    let db = CacheDB::new(StoreDb::new(view));
    let mut cfg = cfg_env(env.chain_id);
    cfg.disable_nonce_check = true;
    cfg.disable_balance_check = true;
    let any_frozen = permissions(view)?.any_frozen();
    let mut evm = Context::mainnet()
        .with_db(db)
        .with_block(block_env(env))
        .with_cfg(cfg)
        .build_mainnet()
        .with_precompiles(TrellisPrecompiles::new(
            SPEC,
            env.height,
            env.timestamp_ms,
            any_frozen,
        ));
    let tx = TxEnv {
        caller: req.from.unwrap_or_default(),
        gas_limit: req.gas.unwrap_or(env.max_tx_gas).min(env.max_tx_gas),
        gas_price: 0,
        kind: req.to.map(TxKind::Call).unwrap_or(TxKind::Create),
        value: req.value.unwrap_or_default(),
        data: req.data.clone(),
        chain_id: Some(env.chain_id),
        ..Default::default()
    };
    match evm.transact(tx) {
        Ok(outcome) => Ok(match outcome.result {
            ExecutionResult::Success { output, gas, .. } => CallOutcome::Success {
                output: output.into_data(),
                gas_used: gas.tx_gas_used(),
            },
            ExecutionResult::Revert { output, gas, .. } => CallOutcome::Revert {
                output,
                gas_used: gas.tx_gas_used(),
            },
            ExecutionResult::Halt { reason, gas, .. } => CallOutcome::Halt {
                reason: format!("{reason:?}"),
                gas_used: gas.tx_gas_used(),
            },
        }),
        Err(EVMError::Database(e)) => Err(ExecutionError::Store(e.0)),
        Err(e) => Err(ExecutionError::InvalidTransaction {
            index: 0,
            reason: e.to_string(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy_consensus::TxLegacy;
    use trellis_crypto::AccountKey;
    use trellis_primitives::{Block, Header};
    use trellis_storage::{BlockCommit, Store};

    fn env(height: u64) -> BlockEnvInput {
        BlockEnvInput {
            chain_id: 1337,
            height,
            timestamp_ms: 1_000 * height,
            proposer: Address::ZERO,
            gas_limit: 30_000_000,
            max_tx_gas: 30_000_000,
        }
    }

    fn transfer(key: &AccountKey, nonce: u64, to: Address, value: u64) -> TxEnvelope {
        key.sign_tx(TxLegacy {
            chain_id: Some(1337),
            nonce,
            gas_price: 0,
            gas_limit: 21_000,
            to: TxKind::Call(to),
            value: U256::from(value),
            input: Default::default(),
        })
    }

    pub(crate) fn test_genesis(admin: Address) -> trellis_primitives::Genesis {
        trellis_primitives::Genesis::from_json(&format!(
            r#"{{"chainId": 1337,
                "validators": [{{"publicKey": "{}", "power": 1, "org": "org1"}}],
                "governance": {{"organizations": [{{"id": "org1", "admins": ["{admin}"]}}]}}}}"#,
            B256::from(
                trellis_crypto::NodeKey::generate()
                    .public()
                    .as_bytes()
                    .to_owned()
            )
        ))
        .expect("test genesis")
    }

    fn genesis_store(funded: Address) -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(&dir.path().join("db")).expect("open");
        let mut changes = StateChanges::default();
        genesis_system_state(&test_genesis(funded), &mut changes).expect("system state");
        changes.accounts.insert(
            funded,
            Some(AccountState {
                balance: U256::from(1_000_000u64),
                ..Default::default()
            }),
        );
        let view = store.view().expect("view");
        let root = roots::finalize_state_root(&view, &mut changes).expect("root");
        let genesis = Block {
            header: Header {
                chain_id: 1337,
                height: 0,
                parent_hash: B256::ZERO,
                timestamp_ms: 0,
                proposer: Address::ZERO,
                transactions_root: Block::compute_transactions_root(&[]),
                receipts_root: B256::ZERO,
                state_root: root,
                logs_bloom: Bloom::ZERO,
                gas_limit: 30_000_000,
                gas_used: 0,
                validators_hash: B256::ZERO,
                next_validators_hash: None,
            },
            transactions: vec![],
        };
        store.init_genesis(&changes, &genesis).expect("genesis");
        (dir, store)
    }

    #[test]
    fn transfers_execute_and_roots_match_an_independent_computation() {
        let alice = AccountKey::dev(0);
        let bob = Address::repeat_byte(0xb0);
        let (_dir, store) = genesis_store(alice.address());
        let view = store.view().expect("view");
        let txs = vec![transfer(&alice, 0, bob, 10), transfer(&alice, 1, bob, 5)];
        let out = execute_block(&view, &env(1), txs, vec![alice.address(); 2], Mode::Verify)
            .expect("executes");
        assert_eq!(out.receipts.len(), 2);
        assert_eq!(out.gas_used, 42_000);
        let bob_acc = out.changes.accounts[&bob].expect("bob exists");
        assert_eq!(bob_acc.balance, U256::from(15));

        // Every account the block touched, plus the untouched system contracts.
        let system = trellis_system::genesis_addresses().map(|a| {
            let acc = view
                .account(&a)
                .expect("read")
                .expect("system account exists");
            (a, trie_account_for_test(&acc))
        });
        let expected = alloy_trie::root::state_root_unhashed(
            out.changes
                .accounts
                .iter()
                .filter_map(|(a, acc)| acc.map(|acc| (*a, trie_account_for_test(&acc))))
                .chain(system),
        );
        assert_eq!(out.state_root, expected);
    }

    fn trie_account_for_test(acc: &AccountState) -> alloy_trie::TrieAccount {
        alloy_trie::TrieAccount {
            nonce: acc.nonce,
            balance: acc.balance,
            storage_root: acc.storage_root,
            code_hash: acc.code_hash,
        }
    }

    #[test]
    fn fresh_root_matches_root_over_an_empty_store() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(&dir.path().join("db")).expect("open");
        let mut changes = StateChanges::default();
        let a = Address::repeat_byte(1);
        changes.accounts.insert(
            a,
            Some(AccountState {
                balance: U256::from(7),
                ..Default::default()
            }),
        );
        changes
            .storage
            .insert(a, [(U256::from(1), U256::from(2))].into());
        let mut other = changes.clone();
        let view = store.view().expect("view");
        let expected = roots::finalize_state_root(&view, &mut changes).expect("root");
        assert_eq!(fresh_state_root(&mut other).expect("root"), expected);
        assert_eq!(other, changes);
    }

    #[test]
    fn bad_nonce_is_dropped_when_building_and_fatal_when_verifying() {
        let alice = AccountKey::dev(0);
        let (_dir, store) = genesis_store(alice.address());
        let view = store.view().expect("view");
        let txs = vec![transfer(&alice, 5, Address::ZERO, 1)];
        let built = execute_block(
            &view,
            &env(1),
            txs.clone(),
            vec![alice.address()],
            Mode::Build,
        )
        .expect("build");
        assert!(built.transactions.is_empty());
        assert_eq!(built.rejected.len(), 1);
        assert!(matches!(
            execute_block(&view, &env(1), txs, vec![alice.address()], Mode::Verify),
            Err(ExecutionError::InvalidTransaction { index: 0, .. })
        ));
    }

    #[test]
    fn deploy_contract_then_call_it() {
        let alice = AccountKey::dev(0);
        let (_dir, store) = genesis_store(alice.address());
        // Init code that stores 42 at slot 0 and returns runtime code that returns sload(0).
        // runtime: PUSH1 0 SLOAD PUSH1 0 MSTORE PUSH1 32 PUSH1 0 RETURN
        let runtime = hex_bytes("60005460005260206000f3");
        let mut init = hex_bytes("602a600055"); // SSTORE(0, 42)
                                                // copy runtime (11 bytes) from code offset 0x13? build: PUSH1 len PUSH1 offset PUSH1 0 CODECOPY PUSH1 len PUSH1 0 RETURN
        init.extend(hex_bytes(
            "600b601160003960 0b6000f3".replace(' ', "").as_str(),
        ));
        init.extend(runtime.iter().copied());
        let deploy = alice.sign_tx(TxLegacy {
            chain_id: Some(1337),
            nonce: 0,
            gas_price: 0,
            gas_limit: 200_000,
            to: TxKind::Create,
            value: U256::ZERO,
            input: init.into(),
        });
        let view = store.view().expect("view");
        let out = execute_block(
            &view,
            &env(1),
            vec![deploy.clone()],
            vec![alice.address()],
            Mode::Verify,
        )
        .expect("deploys");
        assert!(out.receipts[0].status());
        let contract = alice.address().create(0);
        let block = Block {
            header: Header {
                chain_id: 1337,
                height: 1,
                parent_hash: view
                    .block(trellis_primitives::Height(0))
                    .expect("read")
                    .expect("genesis")
                    .hash(),
                timestamp_ms: 1000,
                proposer: Address::ZERO,
                transactions_root: Block::compute_transactions_root(std::slice::from_ref(&deploy)),
                receipts_root: out.receipts_root,
                state_root: out.state_root,
                logs_bloom: out.logs_bloom,
                gas_limit: 30_000_000,
                gas_used: out.gas_used,
                validators_hash: B256::ZERO,
                next_validators_hash: None,
            },
            transactions: vec![deploy],
        };
        store
            .commit_block(BlockCommit {
                block: &block,
                certificate: &[],
                receipts: &out.receipts,
                senders: &out.senders,
                reverts: &out.reverts,
                changes: &out.changes,
            })
            .expect("commit");
        let view = store.view().expect("view");
        let result = call(
            &view,
            &env(2),
            &CallRequest {
                to: Some(contract),
                ..Default::default()
            },
        )
        .expect("call");
        let CallOutcome::Success { output, .. } = result else {
            panic!("call failed: {result:?}");
        };
        assert_eq!(U256::from_be_slice(&output), U256::from(42));
    }

    fn call_tx(key: &AccountKey, nonce: u64, to: Address, input: Vec<u8>) -> TxEnvelope {
        key.sign_tx(TxLegacy {
            chain_id: Some(1337),
            nonce,
            gas_price: 0,
            gas_limit: 5_000_000,
            to: TxKind::Call(to),
            value: U256::ZERO,
            input: input.into(),
        })
    }

    /// Applies `out` to `store` as block `height`.
    fn commit(store: &Store, height: u64, txs: Vec<TxEnvelope>, out: &ExecutedBlock) {
        let view = store.view().expect("view");
        let parent = view
            .block(trellis_primitives::Height(height - 1))
            .expect("read")
            .expect("parent");
        let block = Block {
            header: Header {
                chain_id: 1337,
                height,
                parent_hash: parent.hash(),
                timestamp_ms: 1000 * height,
                proposer: Address::ZERO,
                transactions_root: Block::compute_transactions_root(&txs),
                receipts_root: out.receipts_root,
                state_root: out.state_root,
                logs_bloom: out.logs_bloom,
                gas_limit: 30_000_000,
                gas_used: out.gas_used,
                validators_hash: B256::ZERO,
                next_validators_hash: None,
            },
            transactions: txs,
        };
        store
            .commit_block(BlockCommit {
                block: &block,
                certificate: &[],
                receipts: &out.receipts,
                senders: &out.senders,
                reverts: &out.reverts,
                changes: &out.changes,
            })
            .expect("commit");
    }

    #[test]
    fn snapshot_slots_refuse_writes() {
        let (_dir, store) = genesis_store(AccountKey::dev(0).address());
        let view = store.view().expect("view");
        let mut slots = governance_slots(&view);
        assert!(slots.store(U256::ZERO, U256::from(1)).is_err());
    }

    #[test]
    fn unregistered_senders_are_dropped_when_building_and_fatal_when_verifying() {
        let alice = AccountKey::dev(0);
        let (_dir, store) = genesis_store(alice.address());
        let view = store.view().expect("view");
        let stranger = AccountKey::dev(7);
        let txs = vec![transfer(&stranger, 0, Address::ZERO, 0)];
        let built = execute_block(
            &view,
            &env(1),
            txs.clone(),
            vec![stranger.address()],
            Mode::Build,
        )
        .expect("build");
        assert!(built.transactions.is_empty());
        assert!(
            built.rejected[0].1.contains("not registered"),
            "{:?}",
            built.rejected
        );
        let err = execute_block(&view, &env(1), txs, vec![stranger.address()], Mode::Verify)
            .expect_err("verify refuses");
        assert!(err.to_string().contains("not registered"), "{err}");
    }

    /// A governance transaction runs natively inside the EVM: it emits its events, its
    /// effect lands at the end of the block, the state root covers it, and a contract that
    /// calls a frozen contract is refused at depth too.
    #[test]
    fn governance_runs_in_the_evm_and_freezes_bind_internal_calls() {
        use alloy_sol_types::SolCall;
        use trellis_system::governance::abi;
        let alice = AccountKey::dev(0);
        let (_dir, store) = genesis_store(alice.address());

        // Block 1: deploy a target that returns 42, and a caller whose runtime CALLs the
        // target and returns the call's success flag.
        let target = alice.address().create(0);
        let runtime = hex_bytes("602a60005260206000f3");
        let mut init = hex_bytes("600a600c600039600a6000f3");
        init.extend(&runtime);
        // PUSH1 0 (x4: out/in sizes and offsets) PUSH1 0 (value) PUSH20 target GAS CALL
        // PUSH1 0 MSTORE PUSH1 32 PUSH1 0 RETURN
        let mut caller_rt = hex_bytes("6000600060006000600073");
        caller_rt.extend(target.as_slice());
        caller_rt.extend(hex_bytes("5af160005260206000f3"));
        let mut caller_init = hex_bytes("60");
        caller_init.push(caller_rt.len() as u8);
        caller_init.extend(hex_bytes("600c60003960"));
        caller_init.push(caller_rt.len() as u8);
        caller_init.extend(hex_bytes("6000f3"));
        caller_init.extend(&caller_rt);
        let deploy = |nonce, code: Vec<u8>| {
            alice.sign_tx(TxLegacy {
                chain_id: Some(1337),
                nonce,
                gas_price: 0,
                gas_limit: 500_000,
                to: TxKind::Create,
                value: U256::ZERO,
                input: code.into(),
            })
        };
        let txs = vec![deploy(0, init), deploy(1, caller_init)];
        let caller = alice.address().create(1);
        let view = store.view().expect("view");
        let out = execute_block(
            &view,
            &env(1),
            txs.clone(),
            vec![alice.address(); 2],
            Mode::Verify,
        )
        .expect("deploys");
        assert!(out.receipts.iter().all(|r| r.status()));
        commit(&store, 1, txs, &out);
        let view = store.view().expect("view");
        let through = call(
            &view,
            &env(2),
            &CallRequest {
                to: Some(caller),
                ..Default::default()
            },
        )
        .expect("call");
        let CallOutcome::Success { output, .. } = through else {
            panic!("{through:?}")
        };
        assert_eq!(
            U256::from_be_slice(&output),
            U256::from(1),
            "the inner call succeeds"
        );

        // Block 2: the only member proposes freezing the target: it passes at once and takes
        // effect at the end of the block.
        let propose = abi::proposeFreezeCall {
            target,
            effectiveHeight: 0,
        }
        .abi_encode();
        let txs = vec![call_tx(&alice, 2, GOVERNANCE_ADDRESS, propose)];
        let out = execute_block(
            &view,
            &env(2),
            txs.clone(),
            vec![alice.address()],
            Mode::Verify,
        )
        .expect("governance tx");
        assert!(
            out.receipts[0].status(),
            "the proposal transaction succeeds"
        );
        assert_eq!(
            out.receipts[0].logs().len(),
            3,
            "ProposalCreated, Voted, ProposalPassed"
        );
        assert!(out.changes.storage.contains_key(&GOVERNANCE_ADDRESS));
        commit(&store, 2, txs, &out);

        let view = store.view().expect("view");
        assert!(Governance::new(&mut governance_slots(&view))
            .is_frozen(&target)
            .expect("read"));
        assert!(permissions(&view).expect("permissions").any_frozen());
        // Directly: refused before execution. Through the caller contract: the inner CALL fails.
        let direct = vec![call_tx(&alice, 3, target, vec![])];
        let err = execute_block(&view, &env(3), direct, vec![alice.address()], Mode::Verify)
            .expect_err("frozen");
        assert!(
            err.to_string()
                .contains(&format!("contract {target} is frozen")),
            "{err}"
        );
        let through = call(
            &view,
            &env(3),
            &CallRequest {
                to: Some(caller),
                ..Default::default()
            },
        )
        .expect("call");
        let CallOutcome::Success { output, .. } = through else {
            panic!("{through:?}")
        };
        assert_eq!(
            U256::from_be_slice(&output),
            U256::ZERO,
            "the inner call to a frozen contract fails"
        );
        // Revert reasons reach eth_call callers in Solidity's Error(string) encoding.
        let vote = abi::voteCall {
            proposalId: 9,
            approve: true,
        }
        .abi_encode();
        let outcome = call(
            &view,
            &env(3),
            &CallRequest {
                from: Some(alice.address()),
                to: Some(GOVERNANCE_ADDRESS),
                data: vote.into(),
                ..Default::default()
            },
        )
        .expect("call");
        let CallOutcome::Revert { output, .. } = outcome else {
            panic!("{outcome:?}")
        };
        let reason = <alloy_sol_types::Revert as alloy_sol_types::SolError>::abi_decode(&output)
            .expect("Error(string)");
        assert_eq!(reason.reason, "no proposal 9");
    }

    fn hex_bytes(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
            .collect()
    }
}
