//! System contracts inside revm: a precompile provider that answers calls to the reserved
//! addresses natively (over the EVM journal, so reverts roll their writes back) and refuses
//! calls into frozen contracts at any depth.

use alloy_primitives::{Address, Bytes, Log, B256, U256};
use revm::context::Cfg;
use revm::context_interface::{ContextTr, JournalTr, Transaction};
use revm::handler::{EthPrecompiles, PrecompileProvider};
use revm::interpreter::{CallInputs, Gas, InstructionResult, InterpreterResult};
use revm::primitives::hardfork::SpecId;
use revm::primitives::AddressSet;
use std::cell::RefCell;
use trellis_system::contract::BASE_GAS;
use trellis_system::{
    system_addresses, system_contract, CallContext, CallError, Governance, SlotError, Slots,
    SystemEnv, GOVERNANCE_ADDRESS, LIGHT_CLIENTS_ADDRESS,
};

/// Gas charged by a system call beyond its contract's base ([`SystemContract::base_gas`]):
/// per slot read and written, per log.
///
/// [`SystemContract::base_gas`]: trellis_system::SystemContract::base_gas
const READ_GAS: u64 = 200;
const WRITE_GAS: u64 = 5_000;
const LOG_GAS: u64 = 375;
const LOG_BYTE_GAS: u64 = 8;
/// Gas per payout out of a system contract's balance (a value transfer's 9,000, as CALL
/// charges), and for one that creates its recipient's account.
const PAYOUT_GAS: u64 = 9_000;
const NEW_ACCOUNT_GAS: u64 = 25_000;

/// Ethereum's precompiles plus Trellis's system contracts.
#[derive(Clone, Debug)]
pub struct TrellisPrecompiles {
    eth: EthPrecompiles,
    warm: AddressSet,
    /// Whether governance froze anything as of the block's start; only then is each call's
    /// target looked up (freezes take effect between blocks, so the set is fixed within one).
    pub any_frozen: bool,
    pub height: u64,
    /// Block timestamp in milliseconds (the EVM sees seconds).
    pub timestamp_ms: u64,
    /// Hash of the transaction being executed, for the audit log.
    pub tx_hash: B256,
}

/// Ethereum's Prague precompiles, with modexp priced as from Osaka (EIP-7883, and EIP-7823's
/// 1,024-byte bound on its operands): Prague's price lets one block of modexp calls run for
/// seconds (docs/BENCHMARKS.md, "Gas per second").
fn precompile_set() -> &'static revm::precompile::Precompiles {
    static SET: std::sync::OnceLock<revm::precompile::Precompiles> = std::sync::OnceLock::new();
    SET.get_or_init(|| {
        let mut set = revm::precompile::Precompiles::prague().clone();
        set.extend([revm::precompile::modexp::OSAKA]);
        set
    })
}

impl TrellisPrecompiles {
    pub fn new(spec: SpecId, height: u64, timestamp_ms: u64, any_frozen: bool) -> Self {
        let eth = EthPrecompiles {
            precompiles: precompile_set(),
            spec,
        };
        let mut warm = eth.warm_addresses().clone();
        warm.extend(system_addresses());
        TrellisPrecompiles {
            eth,
            warm,
            any_frozen,
            height,
            timestamp_ms,
            tx_hash: B256::ZERO,
        }
    }
}

/// One system contract's storage through the EVM journal, counting accesses for gas. The
/// context is shared so that a contract can read another's storage (governance) while it runs.
struct JournalSlots<'a, 'c, CTX> {
    ctx: &'a RefCell<&'c mut CTX>,
    address: Address,
    reads: u64,
    writes: u64,
}

impl<'a, 'c, CTX: ContextTr> JournalSlots<'a, 'c, CTX> {
    fn open(ctx: &'a RefCell<&'c mut CTX>, address: Address) -> Result<Self, String> {
        ctx.borrow_mut()
            .journal_mut()
            .load_account(address)
            .map_err(|e| e.to_string())?;
        Ok(JournalSlots {
            ctx,
            address,
            reads: 0,
            writes: 0,
        })
    }
}

impl<CTX: ContextTr> Slots for JournalSlots<'_, '_, CTX> {
    fn load(&mut self, slot: U256) -> Result<U256, SlotError> {
        self.reads += 1;
        self.ctx
            .borrow_mut()
            .journal_mut()
            .sload(self.address, slot)
            .map(|s| s.data)
            .map_err(SlotError::unavailable)
    }

    fn store(&mut self, slot: U256, value: U256) -> Result<(), SlotError> {
        self.writes += 1;
        self.ctx
            .borrow_mut()
            .journal_mut()
            .sstore(self.address, slot, value)
            .map(|_| ())
            .map_err(SlotError::unavailable)
    }
}

/// Whether governance state (as the journal sees it) freezes `target`.
fn target_frozen<CTX: ContextTr>(ctx: &mut CTX, target: &Address) -> Result<bool, String> {
    let shared = RefCell::new(ctx);
    let mut gov = JournalSlots::open(&shared, GOVERNANCE_ADDRESS)?;
    Governance::new(&mut gov)
        .is_frozen(target)
        .map_err(|e| e.to_string())
}

fn result(
    status: InstructionResult,
    output: Bytes,
    gas_used: u64,
    gas_limit: u64,
) -> InterpreterResult {
    if gas_used > gas_limit {
        return out_of_gas(gas_limit);
    }
    let mut gas = Gas::new(gas_limit);
    let _ = gas.record_regular_cost(gas_used);
    InterpreterResult::new(status, output, gas)
}

/// A call that cannot pay its price: all its gas spent, nothing done.
fn out_of_gas(gas_limit: u64) -> InterpreterResult {
    let mut gas = Gas::new(gas_limit);
    gas.spend_all();
    InterpreterResult::new(InstructionResult::PrecompileOOG, Bytes::new(), gas)
}

fn revert(reason: &str, gas_used: u64, gas_limit: u64) -> InterpreterResult {
    result(
        InstructionResult::Revert,
        CallError::revert_data(reason),
        gas_used,
        gas_limit,
    )
}

impl TrellisPrecompiles {
    /// Runs an Ethereum precompile at Trellis's price: `multiplier` times Ethereum's plus
    /// [`crate::gas::PRECOMPILE_CALL_GAS`]. It runs with the share of the gas that price
    /// allows; what it spent is multiplied and the call's price added.
    fn run_repriced<CTX: ContextTr<Cfg: Cfg<Spec = SpecId>>>(
        &mut self,
        ctx: &mut CTX,
        inputs: &CallInputs,
        multiplier: u64,
    ) -> Result<Option<InterpreterResult>, String> {
        let call_gas = crate::gas::PRECOMPILE_CALL_GAS;
        if inputs.gas_limit < call_gas {
            return Ok(Some(out_of_gas(inputs.gas_limit)));
        }
        let mut scaled = inputs.clone();
        scaled.gas_limit = (inputs.gas_limit - call_gas) / multiplier;
        let Some(mut out) =
            <EthPrecompiles as PrecompileProvider<CTX>>::run(&mut self.eth, ctx, &scaled)?
        else {
            return Ok(None);
        };
        let mut gas = Gas::new(inputs.gas_limit);
        if out.result.is_ok() {
            let spent = out.gas.total_gas_spent().saturating_mul(multiplier) + call_gas;
            let _ = gas.record_regular_cost(spent);
        } else {
            gas.spend_all();
        }
        out.gas = gas;
        Ok(Some(out))
    }
}

impl<CTX: ContextTr<Cfg: Cfg<Spec = SpecId>>> PrecompileProvider<CTX> for TrellisPrecompiles {
    type Output = InterpreterResult;

    fn set_spec(&mut self, spec: <CTX::Cfg as Cfg>::Spec) -> bool {
        let changed = <EthPrecompiles as PrecompileProvider<CTX>>::set_spec(&mut self.eth, spec);
        if changed {
            self.eth.precompiles = precompile_set();
            self.warm = self.eth.warm_addresses().clone();
            self.warm.extend(system_addresses());
        }
        changed
    }

    fn run(&mut self, ctx: &mut CTX, inputs: &CallInputs) -> Result<Option<Self::Output>, String> {
        if self.any_frozen && target_frozen(ctx, &inputs.target_address)? {
            let reason = format!("contract {} is frozen", inputs.target_address);
            return Ok(Some(revert(&reason, 0, inputs.gas_limit)));
        }
        let address = inputs.bytecode_address;
        let Some(contract) = system_contract(&address) else {
            if !self.eth.contains(&address) {
                return Ok(None);
            }
            let multiplier = crate::gas::precompile_multiplier(&address);
            return self.run_repriced(ctx, inputs, multiplier);
        };
        if inputs.target_address != address {
            return Ok(Some(revert(
                "system contracts cannot be delegate-called",
                BASE_GAS,
                inputs.gas_limit,
            )));
        }
        if !inputs.value.get().is_zero() && !contract.accepts_value() {
            return Ok(Some(revert(
                "system contracts do not accept value",
                BASE_GAS,
                inputs.gas_limit,
            )));
        }
        // A call that cannot pay the contract's base does none of its work.
        if inputs.gas_limit < contract.base_gas() {
            return Ok(Some(out_of_gas(inputs.gas_limit)));
        }
        let input = inputs.input.bytes(ctx);
        let call = CallContext {
            caller: inputs.caller,
            height: self.height,
            tx_hash: self.tx_hash,
            is_static: inputs.is_static,
        };
        let origin = ctx.tx().caller();
        let shared = RefCell::new(&mut *ctx);
        let mut slots = JournalSlots::open(&shared, address)?;
        let mut gov = JournalSlots::open(&shared, GOVERNANCE_ADDRESS)?;
        let mut clients = match contract.reads_light_clients() {
            true => Some(JournalSlots::open(&shared, LIGHT_CLIENTS_ADDRESS)?),
            false => None,
        };
        let mut env = SystemEnv::new(call, origin, self.timestamp_ms, &mut gov);
        if let Some(clients) = clients.as_mut() {
            env = env.with_light_clients(clients);
        }
        env.gas_limit = inputs.gas_limit;
        env.value = inputs.value.get();
        let outcome = contract.call(&mut env, &mut slots, &input);
        let (client_reads, client_writes) = clients.map_or((0, 0), |c| (c.reads, c.writes));
        let (reads, writes) = (
            slots.reads + gov.reads + client_reads,
            slots.writes + gov.writes + client_writes,
        );
        let ctx = shared.into_inner();
        let gas = contract.base_gas() + reads * READ_GAS + writes * WRITE_GAS;
        match outcome {
            Ok(out) => {
                let log_gas: u64 = out
                    .logs
                    .iter()
                    .map(|l| {
                        LOG_GAS * (1 + l.data.topics().len() as u64)
                            + LOG_BYTE_GAS * l.data.data.len() as u64
                    })
                    .sum();
                // A payout to an account that does not exist creates it, priced as a value
                // call creating one is (EIP-150's 25,000).
                let mut payout_gas = 0;
                for (to, _) in &out.payouts {
                    let empty = ctx
                        .journal_mut()
                        .load_account(*to)
                        .map_err(|e| e.to_string())?
                        .data
                        .is_empty();
                    payout_gas += PAYOUT_GAS + if empty { NEW_ACCOUNT_GAS } else { 0 };
                }
                let gas = gas + log_gas + out.extra_gas + payout_gas;
                if gas <= inputs.gas_limit {
                    // Value the contract releases leaves its own balance; its books and its
                    // balance disagreeing is a fault of its state, refused like any other.
                    for (to, value) in out.payouts {
                        let balance = ctx
                            .journal_mut()
                            .load_account(to)
                            .map_err(|e| e.to_string())?
                            .data
                            .info
                            .balance;
                        let refused = match balance.checked_add(value) {
                            None => Some(format!("{to}'s balance would overflow")),
                            Some(_) => ctx
                                .journal_mut()
                                .transfer(address, to, value)
                                .map_err(|e| e.to_string())?
                                .map(|e| format!("{e:?}")),
                        };
                        if let Some(e) = refused {
                            let reason =
                                format!("{}: cannot pay {value} to {to}: {e}", contract.name());
                            return Ok(Some(revert(&reason, gas, inputs.gas_limit)));
                        }
                    }
                    for log in out.logs {
                        ctx.journal_mut().log(Log {
                            address: log.address,
                            data: log.data,
                        });
                    }
                }
                Ok(Some(result(
                    InstructionResult::Return,
                    out.output,
                    gas,
                    inputs.gas_limit,
                )))
            }
            Err(CallError::Revert(reason)) => Ok(Some(revert(&reason, gas, inputs.gas_limit))),
            Err(CallError::Storage(e)) => Err(e.to_string()),
        }
    }

    fn warm_addresses(&self) -> &AddressSet {
        &self.warm
    }

    fn contains(&self, address: &Address) -> bool {
        self.warm.contains(address)
    }
}
