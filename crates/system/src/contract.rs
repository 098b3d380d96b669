//! The system contracts as one table: each row is a [`SystemContract`] at its reserved
//! address, called with one [`SystemEnv`] and its own storage. The EVM adapter
//! (`trellis-execution`), genesis and the warm-address set all read [`SYSTEM_CONTRACTS`];
//! adding a contract is adding a row here (and its Solidity interface in `contracts/`).
//!
//! ```
//! use trellis_system::{system_contract, EVIDENCE_ADDRESS};
//! assert_eq!(system_contract(&EVIDENCE_ADDRESS).map(|c| c.name()), Some("evidence"));
//! ```

use crate::evidence::Submitter;
use crate::{
    CallContext, CallOutput, Dids, Evidence, Governance, Identifiers, LightClients, Result,
    SlotError, Slots, DIDS_ADDRESS, EVIDENCE_ADDRESS, GOVERNANCE_ADDRESS, IDENTIFIERS_ADDRESS,
    LIGHT_CLIENTS_ADDRESS,
};
use alloy_primitives::{Address, B256, U256};
use trellis_primitives::OrgId;

/// Gas every system call pays before its slot accesses and logs.
pub const BASE_GAS: u64 = 2_000;

/// Everything a system call sees besides its input and its own storage: who calls, from which
/// transaction, in which block, and governance's state to read.
pub struct SystemEnv<'g> {
    /// The immediate caller (a contract when called from Solidity).
    pub caller: Address,
    /// The transaction's sender.
    pub origin: Address,
    pub height: u64,
    /// Block timestamp in milliseconds.
    pub timestamp_ms: u64,
    /// Hash of the enclosing transaction (zero in `eth_call`).
    pub tx_hash: B256,
    /// A `STATICCALL`: any state change is refused.
    pub is_static: bool,
    /// Gas the call may spend: a contract whose work grows with its input (signature checks)
    /// refuses before doing work it cannot pay for. Unbounded unless the caller sets it.
    pub gas_limit: u64,
    /// Native value the call carries (only contracts that [`SystemContract::accepts_value`]
    /// are reached with any).
    pub value: U256,
    governance: &'g mut dyn Slots,
    /// The light-client contract's storage, for contracts that
    /// [`SystemContract::reads_light_clients`].
    light_clients: Option<&'g mut dyn Slots>,
}

impl<'g> SystemEnv<'g> {
    /// An environment reading governance through `governance` (the governance contract's
    /// storage, as the same journal or snapshot the call runs over).
    pub fn new(
        call: CallContext,
        origin: Address,
        timestamp_ms: u64,
        governance: &'g mut dyn Slots,
    ) -> Self {
        SystemEnv {
            caller: call.caller,
            origin,
            height: call.height,
            timestamp_ms,
            tx_hash: call.tx_hash,
            is_static: call.is_static,
            gas_limit: u64::MAX,
            value: U256::ZERO,
            governance,
            light_clients: None,
        }
    }

    /// The same environment, also reading the light-client contract's storage.
    pub fn with_light_clients(mut self, light_clients: &'g mut dyn Slots) -> Self {
        self.light_clients = Some(light_clients);
        self
    }

    /// The call as the contracts' own entry points take it.
    pub fn context(&self) -> CallContext {
        CallContext {
            caller: self.caller,
            height: self.height,
            tx_hash: self.tx_hash,
            is_static: self.is_static,
        }
    }

    /// Governance's state, read (and charged) only by the calls that need it.
    pub fn governance(&mut self) -> Governance<'_, &'g mut dyn Slots> {
        Governance::new(&mut self.governance)
    }

    /// The organisation of the transaction's sender, if it belongs to one.
    pub fn origin_org(&mut self) -> Result<Option<OrgId>, SlotError> {
        let origin = self.origin;
        self.governance().account_org(&origin)
    }
}

/// One system contract: native logic at a reserved address over its own account storage.
pub trait SystemContract: Sync {
    /// The reserved address it answers at.
    fn address(&self) -> Address;

    /// A short name for logs and errors.
    fn name(&self) -> &'static str;

    /// Gas paid before slot accesses and logs.
    fn base_gas(&self) -> u64 {
        BASE_GAS
    }

    /// Whether calls may carry native value (kept in the contract's account).
    fn accepts_value(&self) -> bool {
        false
    }

    /// Whether it reads the light clients' anchored headers ([`SystemEnv::with_light_clients`]).
    fn reads_light_clients(&self) -> bool {
        false
    }

    /// Whether every chain's genesis creates its account. A contract added after chains were
    /// running answers `false` (their genesis hash must not change): a genesis that configures
    /// it creates its account, and without one it keeps no state (it answers views and
    /// refuses what would write).
    fn at_genesis(&self) -> bool {
        true
    }

    /// Runs one ABI-encoded call over `slots` (this contract's storage). A refusal is
    /// [`crate::CallError::Revert`] and changes nothing the caller keeps.
    fn call(
        &self,
        env: &mut SystemEnv<'_>,
        slots: &mut dyn Slots,
        input: &[u8],
    ) -> Result<CallOutput>;
}

/// The rows: every system contract, in the order genesis creates their accounts.
pub static SYSTEM_CONTRACTS: &[&dyn SystemContract] = &[
    &GovernanceContract,
    &EvidenceContract,
    &IdentifiersContract,
    &DidsContract,
    &LightClientsContract,
    &CrossChainContract,
];

/// The system contract at `address`, if one is reserved there.
pub fn system_contract(address: &Address) -> Option<&'static dyn SystemContract> {
    SYSTEM_CONTRACTS
        .iter()
        .copied()
        .find(|c| c.address() == *address)
}

/// Every reserved address.
pub fn system_addresses() -> impl Iterator<Item = Address> {
    SYSTEM_CONTRACTS.iter().map(|c| c.address())
}

/// The reserved addresses every genesis creates an account at.
pub fn genesis_addresses() -> impl Iterator<Item = Address> {
    SYSTEM_CONTRACTS
        .iter()
        .filter(|c| c.at_genesis())
        .map(|c| c.address())
}

/// Organisations, members, nodes, roles, proposals and votes ([`Governance`]).
pub struct GovernanceContract;

/// Proposals and votes do bookkeeping beyond their slots (votes re-counted, schedules, audit
/// entries), measured at 290 Mgas/s with the ordinary base (docs/BENCHMARKS.md); governance is
/// not a throughput path.
pub const GOVERNANCE_BASE_GAS: u64 = 20_000;

impl SystemContract for GovernanceContract {
    fn address(&self) -> Address {
        GOVERNANCE_ADDRESS
    }

    fn name(&self) -> &'static str {
        "governance"
    }

    fn base_gas(&self) -> u64 {
        GOVERNANCE_BASE_GAS
    }

    /// To refuse, when proposed, a sub-chain's own vote to reset a client other than its
    /// hub's (only the main chain's vote resets those, by a packet).
    fn reads_light_clients(&self) -> bool {
        true
    }

    fn call(
        &self,
        env: &mut SystemEnv<'_>,
        mut slots: &mut dyn Slots,
        input: &[u8],
    ) -> Result<CallOutput> {
        use crate::governance::abi::proposeResetLightClientCall as Reset;
        use alloy_sol_types::SolCall;
        if input.starts_with(&Reset::SELECTOR) {
            if let (Ok(reset), Some(mut clients)) =
                (Reset::abi_decode(input), env.light_clients.as_deref_mut())
            {
                if let Some(hub) = crate::LightClients::new(&mut clients).hub()? {
                    if hub != reset.chainId {
                        return crate::revert(format!(
                            "this sub-chain's client of chain {} is reset only by a vote of its \
                             main chain {hub} (proposeToSubchain there); its own vote resets \
                             only its client of the main chain",
                            reset.chainId
                        ));
                    }
                }
            }
        }
        Governance::new(&mut slots).call(&env.context(), input)
    }
}

/// Notarized digests ([`Evidence`]); a record keeps the sender's organisation.
pub struct EvidenceContract;

impl SystemContract for EvidenceContract {
    fn address(&self) -> Address {
        EVIDENCE_ADDRESS
    }

    fn name(&self) -> &'static str {
        "evidence"
    }

    fn call(
        &self,
        env: &mut SystemEnv<'_>,
        mut slots: &mut dyn Slots,
        input: &[u8],
    ) -> Result<CallOutput> {
        let by = Submitter {
            address: env.caller,
            org: env.origin_org()?,
            timestamp_ms: env.timestamp_ms,
        };
        Evidence::new(&mut slots).call(&env.context(), &by, input)
    }
}

/// Industrial identifiers under organisation prefixes ([`Identifiers`]).
pub struct IdentifiersContract;

impl SystemContract for IdentifiersContract {
    fn address(&self) -> Address {
        IDENTIFIERS_ADDRESS
    }

    fn name(&self) -> &'static str {
        "identifiers"
    }

    fn call(
        &self,
        env: &mut SystemEnv<'_>,
        mut slots: &mut dyn Slots,
        input: &[u8],
    ) -> Result<CallOutput> {
        let ctx = env.context();
        Identifiers::new(&mut slots, &mut env.governance).call(&ctx, input)
    }
}

/// Decentralized identifiers ([`Dids`]).
pub struct DidsContract;

impl SystemContract for DidsContract {
    fn address(&self) -> Address {
        DIDS_ADDRESS
    }

    fn name(&self) -> &'static str {
        "dids"
    }

    fn call(
        &self,
        env: &mut SystemEnv<'_>,
        mut slots: &mut dyn Slots,
        input: &[u8],
    ) -> Result<CallOutput> {
        Dids::new(&mut slots).call(&env.context(), env.timestamp_ms, input)
    }
}

/// Light clients of other chains ([`LightClients`]).
pub struct LightClientsContract;

/// What every light-client call pays before its slots; an anchor adds
/// [`crate::clients::SIGNATURE_GAS`] per signature and [`crate::clients::KEY_GAS`] per
/// validator key it parses, refused before the work when the call's gas cannot pay them.
pub const LIGHT_CLIENTS_BASE_GAS: u64 = 20_000;

impl SystemContract for LightClientsContract {
    fn address(&self) -> Address {
        LIGHT_CLIENTS_ADDRESS
    }

    fn name(&self) -> &'static str {
        "light clients"
    }

    fn base_gas(&self) -> u64 {
        LIGHT_CLIENTS_BASE_GAS
    }

    fn at_genesis(&self) -> bool {
        false
    }

    fn call(
        &self,
        env: &mut SystemEnv<'_>,
        mut slots: &mut dyn Slots,
        input: &[u8],
    ) -> Result<CallOutput> {
        let budget = env.gas_limit.saturating_sub(LIGHT_CLIENTS_BASE_GAS);
        let out = LightClients::new(&mut slots).call(&env.context(), budget, input)?;
        // A fork proven against a followed chain's validators goes in the audit log, with
        // who proved it.
        for log in &out.logs {
            use alloy_sol_types::SolEvent;
            if let Ok(frozen) = crate::clients::abi::ClientFrozen::decode_log_data(&log.data) {
                let org = env.origin_org()?;
                let ctx = env.context();
                env.governance().record_audit(
                    &ctx,
                    "light client frozen",
                    org.as_ref(),
                    &format!(
                        "chain {}'s validators certified two headers at height {}: {} (anchored) \
                         and {}; its client here is frozen",
                        frozen.chainId, frozen.height, frozen.anchoredHash, frozen.conflictingHash
                    ),
                )?;
            }
        }
        Ok(out)
    }
}

/// Cross-chain messages and value transfers ([`crate::CrossChain`]), proven against the light
/// clients' anchored headers.
pub struct CrossChainContract;

impl SystemContract for CrossChainContract {
    fn address(&self) -> Address {
        crate::XCHAIN_ADDRESS
    }

    fn name(&self) -> &'static str {
        "cross-chain"
    }

    fn base_gas(&self) -> u64 {
        crate::xchain::BASE_GAS
    }

    fn accepts_value(&self) -> bool {
        true
    }

    fn reads_light_clients(&self) -> bool {
        true
    }

    fn at_genesis(&self) -> bool {
        false
    }

    fn call(
        &self,
        env: &mut SystemEnv<'_>,
        mut slots: &mut dyn Slots,
        input: &[u8],
    ) -> Result<CallOutput> {
        if env.light_clients.is_none() {
            return crate::revert("cross-chain: this chain keeps no light clients");
        }
        let chain_id = env.governance().config()?.chain_id;
        let call = crate::xchain::Call {
            chain_id,
            caller: env.caller,
            height: env.height,
            timestamp_ms: env.timestamp_ms,
            value: env.value,
            is_static: env.is_static,
            budget: env.gas_limit.saturating_sub(crate::xchain::BASE_GAS),
        };
        let Some(clients) = env.light_clients.as_deref_mut() else {
            return crate::revert("cross-chain: this chain keeps no light clients");
        };
        crate::CrossChain::new(&mut slots, clients).call(&call, input)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kv::MapSlots;
    use crate::CallError;
    use alloy_sol_types::SolCall;

    #[test]
    fn every_row_has_its_own_address_and_name() {
        let addresses: std::collections::BTreeSet<_> = system_addresses().collect();
        let names: std::collections::BTreeSet<_> =
            SYSTEM_CONTRACTS.iter().map(|c| c.name()).collect();
        assert_eq!(addresses.len(), SYSTEM_CONTRACTS.len());
        assert_eq!(names.len(), SYSTEM_CONTRACTS.len());
        for contract in SYSTEM_CONTRACTS {
            let found = system_contract(&contract.address()).map(|c| c.name());
            assert_eq!(found, Some(contract.name()));
        }
        assert!(system_contract(&Address::repeat_byte(0x42)).is_none());
    }

    fn env<'a>(governance: &'a mut MapSlots<'static>, is_static: bool) -> SystemEnv<'a> {
        let call = CallContext {
            caller: Address::repeat_byte(1),
            height: 7,
            tx_hash: B256::repeat_byte(9),
            is_static,
        };
        SystemEnv::new(call, Address::repeat_byte(1), 1_000, governance)
    }

    #[test]
    fn every_row_refuses_garbage_with_its_name_and_writes_nothing() {
        for contract in SYSTEM_CONTRACTS {
            let mut governance = MapSlots::empty();
            let mut slots = MapSlots::empty();
            let out = contract.call(&mut env(&mut governance, false), &mut slots, &[0xde, 0xad]);
            match out {
                Err(CallError::Revert(reason)) => {
                    assert!(reason.starts_with(contract.name()), "{reason}")
                }
                other => panic!("{}: {other:?}", contract.name()),
            }
            assert!(slots.writes.is_empty() && governance.writes.is_empty());
        }
    }

    #[test]
    fn evidence_through_the_table_records_the_senders_organisation() {
        use crate::evidence::abi as E;
        let member = Address::repeat_byte(1);
        let genesis = trellis_primitives::Genesis::from_json(&format!(
            r#"{{"chainId": 7, "validators": [{{"publicKey": "{}", "power": 1, "org": "acme"}}],
                "governance": {{"organizations": [{{"id": "acme", "admins": ["{}"], "accounts": ["{member}"]}}]}}}}"#,
            B256::repeat_byte(3),
            Address::repeat_byte(2),
        ))
        .expect("genesis");
        let mut governance = MapSlots::empty();
        Governance::new(&mut governance)
            .init(&genesis)
            .expect("governance");
        let contract = system_contract(&EVIDENCE_ADDRESS).expect("evidence row");
        let submit = |digest: u8| {
            E::submitCall {
                algorithm: 1,
                digest: B256::repeat_byte(digest),
                contentType: "text/plain".into(),
                metadata: Default::default(),
            }
            .abi_encode()
        };
        let call = |caller: Address, is_static: bool| CallContext {
            caller,
            height: 7,
            tx_hash: B256::repeat_byte(9),
            is_static,
        };
        let mut slots = MapSlots::empty();
        for (origin, digest, org) in [
            (member, 7, Some("acme")),
            (Address::repeat_byte(5), 8, None),
        ] {
            let mut env = SystemEnv::new(call(origin, false), origin, 1_000, &mut governance);
            let out = contract
                .call(&mut env, &mut slots, &submit(digest))
                .expect("submitted");
            assert_eq!(out.logs.len(), 1);
            let id = B256::from_slice(&out.output[..32]);
            let record = Evidence::new(&mut slots)
                .get(&id)
                .expect("read")
                .expect("recorded");
            assert_eq!(record.org.as_ref().map(|o| o.as_str()), org);
            assert_eq!(record.timestamp_ms, 1_000);
        }
        // The same call in a static context is refused and writes nothing.
        let mut slots = MapSlots::empty();
        let mut env = SystemEnv::new(call(member, true), member, 1_000, &mut governance);
        let refused = contract.call(&mut env, &mut slots, &submit(7));
        assert!(matches!(refused, Err(CallError::Revert(r)) if r.contains("static")));
        assert!(slots.writes.is_empty());
    }
}
