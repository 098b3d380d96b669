//! Light clients of other chains (`ITrellisLightClients`): the chain's own record of the
//! headers of the chains it follows, each accepted only on a commit certificate of the set
//! the client trusts. The rule is `trellis_light::ClientState::update`, the same code the SDK
//! verifies with; this module stores its state and answers the Solidity interface.
//!
//! Layout (`kv` records, postcard):
//! - `lc:` ‖ be64(chain) → the client: its newest anchor, the trusted set, whether frozen;
//! - `lca:` ‖ be64(chain) ‖ be64(height) → each anchored header (hash, state root, time), one
//!   record per height, so proofs against any anchored height stay answerable;
//! - `lcx:` ‖ be64(chain) → the fork evidence that froze the client (header and certificate);
//! - the set `lcs` → the followed chain ids in creation order;
//! - word `trellis.lc.frozen` ‖ be64(chain) → the height of the fork that froze the client,
//!   plus one (zero: not frozen), one word so that another chain can prove it cheaply;
//! - word `trellis.lc.hub` → the hub's chain id plus one: the chain a sub-chain's genesis
//!   roots it in (the main chain), through whose anchors it reaches chains it does not follow.
//!
//! Clients are created by the chain's genesis (a sub-chain's genesis names the main chain's
//! validators as its trust root), never by a transaction; so the contract writes only where a
//! genesis created its account (`SystemContract::at_genesis` is false for it: chains that
//! started before it keep their genesis hash).

use alloy_primitives::{address, Address, Log, B256};
use alloy_sol_types::{sol, SolCall, SolEvent, SolInterface, SolValue};
use serde::{Deserialize, Serialize};
use trellis_light::{Anchor, ClientState, ValidatorSet, Verdict};

use crate::kv::{self, SlotError, Slots};
use crate::{revert, CallContext, CallError, CallOutput, Result};

sol!(
    #[sol(all_derives)]
    "../../contracts/src/ITrellisLightClients.sol"
);

pub use ITrellisLightClients as abi;

/// Reserved address of the light-client contract.
pub const LIGHT_CLIENTS_ADDRESS: Address = address!("0000000000000000000000000000000000001004");

/// Largest header accepted (a Trellis header is about 600 bytes).
pub const MAX_HEADER_BYTES: usize = 2 * 1024;
/// Largest certificate accepted (about 300 signatures).
pub const MAX_CERTIFICATE_BYTES: usize = 32 * 1024;
/// Most validators a followed chain's set may have.
pub const MAX_VALIDATORS: usize = 256;
/// Most chain ids one `chains` call returns.
pub const MAX_PAGE: u64 = 1_000;
/// Gas per signature an anchor's certificate carries, assuming an Ed25519 check takes about
/// 50 µs, 20,000 gas at the 400 Mgas/s the gas schedule is set for (not yet measured here).
pub const SIGNATURE_GAS: u64 = 25_000;
/// Gas per validator key an anchor parses (the trusted set and a carried next set): a point
/// decompression, about 12 µs.
pub const KEY_GAS: u64 = 5_000;

const CHAINS: kv::Set<'static> = kv::Set::new(b"lcs");

/// What the chain keeps of one followed chain.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Client {
    latest: Anchored,
    /// The trusted set: node keys and powers.
    validators: Vec<(B256, u64)>,
    /// The height from which on the trusted set decides (the root's, or the handover's).
    trusted_since: u64,
    /// The height of the fork that froze it.
    frozen_at: Option<u64>,
}

/// One anchored header.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Anchored {
    pub height: u64,
    pub hash: B256,
    pub state_root: B256,
    pub timestamp_ms: u64,
}

impl From<Anchor> for Anchored {
    fn from(a: Anchor) -> Self {
        Anchored {
            height: a.height,
            hash: a.hash,
            state_root: a.state_root,
            timestamp_ms: a.timestamp_ms,
        }
    }
}

impl From<Anchored> for Anchor {
    fn from(a: Anchored) -> Self {
        Anchor {
            height: a.height,
            hash: a.hash,
            state_root: a.state_root,
            timestamp_ms: a.timestamp_ms,
        }
    }
}

/// The fork evidence kept for a frozen client.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Evidence {
    height: u64,
    anchored: B256,
    header: Vec<u8>,
    certificate: Vec<u8>,
}

/// A client as the views show it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientView {
    pub chain_id: u64,
    pub latest: Anchored,
    pub validators_hash: B256,
    pub frozen: bool,
}

fn client_key(chain: u64) -> Vec<u8> {
    [b"lc:".as_slice(), &chain.to_be_bytes()].concat()
}

pub(crate) fn anchor_key(chain: u64, height: u64) -> Vec<u8> {
    [
        b"lca:".as_slice(),
        &chain.to_be_bytes(),
        &height.to_be_bytes(),
    ]
    .concat()
}

/// The status word of the client of `chain`, which two-hop proofs carry: zero while it was
/// never frozen nor reset; the fork height plus one while frozen; [`RESET`] plus the root
/// height once a vote reset it (anchors below that height prove nothing any more).
pub fn status_slot(chain: u64) -> alloy_primitives::U256 {
    kv::word_slot(b"trellis.lc.frozen", &[&chain.to_be_bytes()])
}

/// The flag of a status word written by a reset.
pub const RESET: alloy_primitives::U256 = alloy_primitives::U256::from_limbs([0, 0, 0, 1 << 63]);

/// What a client's status word allows: anchors at this height and above prove; `Err` with the
/// fork height while the client is frozen (a corrupt word counts as frozen at its value).
pub fn usable_from(word: alloy_primitives::U256) -> Result<u64, u64> {
    if word.is_zero() {
        return Ok(0);
    }
    if word & RESET == RESET {
        return u64::try_from(word ^ RESET).map_err(|_| u64::MAX);
    }
    Err(u64::try_from(word - alloy_primitives::U256::from(1)).unwrap_or(u64::MAX))
}

fn hub_slot() -> alloy_primitives::U256 {
    kv::word_slot(b"trellis.lc.hub", &[])
}

fn evidence_key(chain: u64) -> Vec<u8> {
    [b"lcx:".as_slice(), &chain.to_be_bytes()].concat()
}

/// Refuses a set a client of `chain_id` may not trust: over [`MAX_VALIDATORS`], or not a
/// valid validator set.
fn check_trusted(chain_id: u64, validators: &[(B256, u64)]) -> Result<(), CallError> {
    if validators.len() > MAX_VALIDATORS {
        return revert(format!(
            "light client of chain {chain_id}: more than {MAX_VALIDATORS} validators"
        ));
    }
    ValidatorSet::from_keys(validators.iter().copied())
        .map_err(|e| CallError::revert(format!("light client of chain {chain_id}: {e}")))?;
    Ok(())
}

/// The light-client contract over its storage.
pub struct LightClients<'s, S: Slots> {
    slots: &'s mut S,
    logs: Vec<Log>,
}

impl<'s, S: Slots> LightClients<'s, S> {
    pub fn new(slots: &'s mut S) -> Self {
        LightClients {
            slots,
            logs: Vec::new(),
        }
    }

    fn read<T: serde::de::DeserializeOwned>(&mut self, key: &[u8]) -> Result<Option<T>, SlotError> {
        kv::get_decoded(self.slots, key, "light client")
    }

    fn write<T: Serialize>(&mut self, key: &[u8], value: &T) -> Result<(), SlotError> {
        kv::put_encoded(self.slots, key, value, "light client")
    }

    fn emit<E: SolEvent>(&mut self, event: E) {
        self.logs.push(Log {
            address: LIGHT_CLIENTS_ADDRESS,
            data: event.encode_log_data(),
        });
    }

    /// Starts following `chain_id` from `root` (its genesis block, or a later agreed anchor),
    /// trusting `validators` (node key, power) to decide the headers after it. Genesis only.
    pub fn create(
        &mut self,
        chain_id: u64,
        root: Anchored,
        validators: &[(B256, u64)],
    ) -> Result<(), CallError> {
        check_trusted(chain_id, validators)?;
        if self.read::<Client>(&client_key(chain_id))?.is_some() {
            return revert(format!("chain {chain_id} already has a light client"));
        }
        let client = Client {
            latest: root,
            validators: validators.to_vec(),
            trusted_since: root.height,
            frozen_at: None,
        };
        self.write(&client_key(chain_id), &client)?;
        self.write(&anchor_key(chain_id, root.height), &root)?;
        CHAINS.insert(self.slots, &chain_id.to_be_bytes())?;
        Ok(())
    }

    /// Resets the client of `chain_id` by a governance vote (at the end of a block: no event,
    /// the audit log says it) — the only way a frozen client takes anchors again: it trusts
    /// `validators` (node key, power) to decide the headers after `root`, a header the vote
    /// agreed on above every anchor so far. Anchors below `root` stay on record but prove
    /// nothing any more (they may be of either side of a fork); the fork's evidence stays too.
    pub fn reset(
        &mut self,
        chain_id: u64,
        root: Anchored,
        validators: &[(B256, u64)],
    ) -> Result<(), CallError> {
        check_trusted(chain_id, validators)?;
        let Some(mut client) = self.read::<Client>(&client_key(chain_id))? else {
            return revert(format!("this chain does not follow chain {chain_id}"));
        };
        if root.height <= client.latest.height {
            return revert(format!(
                "a reset trusts a header above the newest anchor of chain {chain_id} (height {}), \
                 not height {}",
                client.latest.height, root.height
            ));
        }
        client.latest = root;
        client.validators = validators.to_vec();
        client.trusted_since = root.height;
        client.frozen_at = None;
        self.write(&client_key(chain_id), &client)?;
        self.write(&anchor_key(chain_id, root.height), &root)?;
        self.slots.store(
            status_slot(chain_id),
            RESET | alloy_primitives::U256::from(root.height),
        )?;
        Ok(())
    }

    /// The lowest height whose anchor of `chain_id` proves anything (above a reset), or
    /// `Err(fork height)` while its client is frozen.
    pub fn usable_from(&mut self, chain_id: u64) -> Result<Result<u64, u64>, SlotError> {
        Ok(usable_from(self.slots.load(status_slot(chain_id))?))
    }

    /// Names the followed chain `chain_id` as the hub (genesis only: a sub-chain's trust
    /// root, the main chain).
    pub fn set_hub(&mut self, chain_id: u64) -> Result<(), CallError> {
        if self.read::<Client>(&client_key(chain_id))?.is_none() {
            return revert(format!("the hub {chain_id} is not a followed chain"));
        }
        self.slots.store(
            hub_slot(),
            alloy_primitives::U256::from(chain_id) + alloy_primitives::U256::from(1),
        )?;
        Ok(())
    }

    /// The hub, if this chain has one.
    pub fn hub(&mut self) -> Result<Option<u64>, SlotError> {
        let word = self.slots.load(hub_slot())?;
        if word.is_zero() {
            return Ok(None);
        }
        u64::try_from(word - alloy_primitives::U256::from(1))
            .map(Some)
            .map_err(|_| SlotError::invalid("corrupt hub"))
    }

    /// The client of `chain_id`, if the chain follows it.
    pub fn client(&mut self, chain_id: u64) -> Result<Option<ClientView>, CallError> {
        let Some(client) = self.read::<Client>(&client_key(chain_id))? else {
            return Ok(None);
        };
        Ok(Some(ClientView {
            chain_id,
            latest: client.latest,
            validators_hash: trellis_light::members_hash(&client.validators),
            frozen: client.frozen_at.is_some(),
        }))
    }

    /// The header anchored at `height` of `chain_id`.
    pub fn anchor_at(&mut self, chain_id: u64, height: u64) -> Result<Option<Anchored>, SlotError> {
        self.read(&anchor_key(chain_id, height))
    }

    /// Followed chain ids, in creation order.
    pub fn chains(&mut self, offset: u64, limit: u64) -> Result<Vec<u64>, SlotError> {
        CHAINS
            .page(self.slots, offset, limit.min(MAX_PAGE))?
            .into_iter()
            .map(|id| {
                <[u8; 8]>::try_from(id.as_slice())
                    .map(u64::from_be_bytes)
                    .map_err(|_| SlotError::invalid("corrupt chain id in the client list"))
            })
            .collect()
    }

    /// Checks and records an anchor; see `ITrellisLightClients.submitAnchor`. The signature
    /// checks and key parsing it needs are priced ([`SIGNATURE_GAS`], [`KEY_GAS`]) and
    /// refused before they run if they cost more than `budget`; the verdict comes with their
    /// gas.
    pub fn submit(
        &mut self,
        header: &[u8],
        certificate: &[u8],
        next: &[(B256, u64)],
        budget: u64,
    ) -> Result<(Verdict, u64), CallError> {
        if header.len() > MAX_HEADER_BYTES {
            return revert(format!("header over {MAX_HEADER_BYTES} bytes"));
        }
        if certificate.len() > MAX_CERTIFICATE_BYTES {
            return revert(format!("certificate over {MAX_CERTIFICATE_BYTES} bytes"));
        }
        if next.len() > MAX_VALIDATORS {
            return revert(format!("more than {MAX_VALIDATORS} next validators"));
        }
        let decoded =
            trellis_light::decode_header(header).map_err(|e| CallError::revert(e.to_string()))?;
        let chain_id = decoded.chain_id;
        let Some(stored) = self.read::<Client>(&client_key(chain_id))? else {
            return revert(format!("this chain does not follow chain {chain_id}"));
        };
        if let Some(height) = stored.frozen_at {
            return revert(format!(
                "the client of chain {chain_id} is frozen: its validators signed two headers at height {height}"
            ));
        }
        // A header already anchored is a cheap no-op: nothing to verify, nothing charged.
        let known = match decoded.height.cmp(&stored.latest.height) {
            std::cmp::Ordering::Less => self.anchor_at(chain_id, decoded.height)?.map(|a| a.hash),
            std::cmp::Ordering::Equal => Some(stored.latest.hash),
            std::cmp::Ordering::Greater => None,
        };
        if known == Some(decoded.hash()) {
            return Ok((Verdict::Known, 0));
        }
        // The work is priced before it is done: a call that cannot pay does none of it.
        let signatures = trellis_light::decode_certificate(certificate)
            .map_err(|e| CallError::revert(format!("chain {chain_id}: commit certificate: {e}")))?
            .signatures
            .len() as u64;
        let keys = (stored.validators.len() + next.len()) as u64;
        let gas = SIGNATURE_GAS * signatures + KEY_GAS * keys;
        if gas > budget {
            return revert(format!(
                "out of gas: an anchor with {signatures} signatures and {keys} validator keys \
                 needs {gas} gas beyond the call's base"
            ));
        }
        // Still priced per key above: the cache only makes it cheaper for this node.
        let trusted = ValidatorSet::from_keys_cached(&stored.validators)
            .map_err(|e| SlotError::invalid(format!("stored validator set: {e}")))?;
        let next_set = match next.is_empty() {
            true => None,
            false => Some(
                ValidatorSet::from_keys(next.iter().copied())
                    .map_err(|e| CallError::revert(format!("next validator set: {e}")))?,
            ),
        };
        let mut state = ClientState::new(chain_id, stored.latest.into(), trusted);
        state.trusted_since = stored.trusted_since;
        // The anchor the update compares an older height with (read above).
        let verdict = state
            .update_decoded(&decoded, header, certificate, next_set.as_ref(), |_| known)
            .map_err(|e| CallError::revert(format!("chain {chain_id}: {e}")))?;
        match &verdict {
            Verdict::Advanced {
                anchor,
                set_changed,
            } => {
                let anchored = Anchored::from(*anchor);
                let mut client = stored;
                client.latest = anchored;
                if *set_changed {
                    client.validators = next.to_vec();
                    client.trusted_since = anchored.height;
                    self.emit(abi::ValidatorSetChanged {
                        chainId: chain_id,
                        height: anchored.height,
                        validatorsHash: state.validators.hash(),
                    });
                }
                self.write(&client_key(chain_id), &client)?;
                self.record(chain_id, anchored)?;
            }
            Verdict::Backfilled(anchor) => self.record(chain_id, (*anchor).into())?,
            Verdict::Known => {}
            Verdict::Froze(evidence) => {
                let mut client = stored;
                client.frozen_at = Some(evidence.height);
                self.write(&client_key(chain_id), &client)?;
                self.slots.store(
                    status_slot(chain_id),
                    alloy_primitives::U256::from(evidence.height) + alloy_primitives::U256::from(1),
                )?;
                self.write(
                    &evidence_key(chain_id),
                    &Evidence {
                        height: evidence.height,
                        anchored: evidence.anchored,
                        header: evidence.header.clone(),
                        certificate: evidence.certificate.clone(),
                    },
                )?;
                self.emit(abi::ClientFrozen {
                    chainId: chain_id,
                    height: evidence.height,
                    anchoredHash: evidence.anchored,
                    conflictingHash: decoded.hash(),
                });
            }
        }
        Ok((verdict, gas))
    }

    fn record(&mut self, chain_id: u64, anchored: Anchored) -> Result<(), SlotError> {
        self.write(&anchor_key(chain_id, anchored.height), &anchored)?;
        self.emit(abi::Anchored {
            chainId: chain_id,
            height: anchored.height,
            blockHash: anchored.hash,
            stateRoot: anchored.state_root,
        });
        Ok(())
    }

    /// Runs one ABI-encoded call that may spend `budget` gas beyond its base and slots.
    pub fn call(&mut self, ctx: &CallContext, budget: u64, input: &[u8]) -> Result<CallOutput> {
        use abi::ITrellisLightClientsCalls as C;
        let call = C::abi_decode(input).map_err(|e| {
            CallError::revert(format!(
                "light clients: unknown function or malformed arguments ({e})"
            ))
        })?;
        if matches!(call, C::submitAnchor(_)) && ctx.is_static {
            return revert("light clients: state change in a static call");
        }
        let mut extra_gas = 0;
        let output: Vec<u8> = match call {
            C::submitAnchor(c) => {
                if c.nextKeys.len() != c.nextPowers.len() {
                    return revert("nextKeys and nextPowers differ in length");
                }
                let next: Vec<(B256, u64)> = c.nextKeys.into_iter().zip(c.nextPowers).collect();
                let (verdict, gas) = self.submit(&c.header, &c.certificate, &next, budget)?;
                extra_gas = gas;
                let code: u8 = match verdict {
                    Verdict::Advanced { .. } => 1,
                    Verdict::Backfilled(_) => 2,
                    Verdict::Known => 3,
                    Verdict::Froze(_) => 4,
                };
                abi::submitAnchorCall::abi_encode_returns(&code)
            }
            C::client(c) => match self.client(c.chainId)? {
                Some(v) => (
                    true,
                    v.latest.height,
                    v.latest.hash,
                    v.latest.state_root,
                    v.latest.timestamp_ms,
                    v.validators_hash,
                    v.frozen,
                )
                    .abi_encode_params(),
                None => (false, 0u64, B256::ZERO, B256::ZERO, 0u64, B256::ZERO, false)
                    .abi_encode_params(),
            },
            C::anchorAt(c) => match self.anchor_at(c.chainId, c.height)? {
                Some(a) => (true, a.hash, a.state_root).abi_encode_params(),
                None => (false, B256::ZERO, B256::ZERO).abi_encode_params(),
            },
            C::chains(c) => self.chains(c.offset, c.limit)?.abi_encode(),
        };
        Ok(CallOutput {
            output: output.into(),
            logs: std::mem::take(&mut self.logs),
            extra_gas,
            payouts: Vec::new(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kv::MapSlots;
    use alloy_primitives::{Bloom, U256};
    use alloy_rlp::Encodable;
    use alloy_sol_types::SolCall;
    use ed25519_consensus::SigningKey;
    use trellis_primitives::Header;

    const CHAIN: u64 = 42;

    fn keys(seeds: std::ops::RangeInclusive<u8>) -> Vec<SigningKey> {
        seeds.map(|s| SigningKey::from([s; 32])).collect()
    }

    fn members(keys: &[SigningKey]) -> Vec<(B256, u64)> {
        keys.iter()
            .map(|k| (B256::from(k.verification_key().to_bytes()), 1))
            .collect()
    }

    fn header(height: u64, salt: u8, deciding: &[SigningKey], next: &[SigningKey]) -> Header {
        Header {
            chain_id: CHAIN,
            height,
            parent_hash: B256::repeat_byte(salt),
            timestamp_ms: 1_000 + height,
            proposer: Address::ZERO,
            transactions_root: B256::ZERO,
            receipts_root: B256::ZERO,
            state_root: B256::repeat_byte(height as u8),
            logs_bloom: Bloom::ZERO,
            gas_limit: 1,
            gas_used: 0,
            validators_hash: trellis_light::members_hash(&members(deciding)),
            next_validators_hash: Some(trellis_light::members_hash(&members(next))),
        }
    }

    /// The header's RLP and its certificate signed by `signers`.
    fn signed(header: &Header, signers: &[SigningKey]) -> (Vec<u8>, Vec<u8>) {
        let certificate = trellis_light::certify(CHAIN, header.height, header.hash(), signers);
        let mut rlp = Vec::new();
        header.encode(&mut rlp);
        (rlp, certificate)
    }

    fn root() -> Anchored {
        Anchored {
            height: 0,
            hash: B256::repeat_byte(0xaa),
            state_root: B256::ZERO,
            timestamp_ms: 0,
        }
    }

    fn ctx(is_static: bool) -> CallContext {
        CallContext {
            caller: Address::repeat_byte(1),
            height: 9,
            tx_hash: B256::ZERO,
            is_static,
        }
    }

    fn submit_call(anchor: &(Vec<u8>, Vec<u8>), next: &[(B256, u64)]) -> Vec<u8> {
        abi::submitAnchorCall {
            header: anchor.0.clone().into(),
            certificate: anchor.1.clone().into(),
            nextKeys: next.iter().map(|m| m.0).collect(),
            nextPowers: next.iter().map(|m| m.1).collect(),
        }
        .abi_encode()
    }

    fn verdict(out: &CallOutput) -> u8 {
        abi::submitAnchorCall::abi_decode_returns(&out.output).expect("a verdict")
    }

    #[test]
    fn anchors_advance_the_client_follow_a_set_change_and_are_recorded_per_height() {
        let (old, new) = (keys(1..=4), keys(11..=14));
        let mut slots = MapSlots::empty();
        let mut lc = LightClients::new(&mut slots);
        lc.create(CHAIN, root(), &members(&old)).expect("created");
        assert!(
            lc.create(CHAIN, root(), &members(&old)).is_err(),
            "one client per chain"
        );
        assert_eq!(lc.chains(0, 10).expect("list"), vec![CHAIN]);

        let first = signed(&header(1, 0, &old, &old), &old);
        let out = lc
            .call(&ctx(false), u64::MAX, &submit_call(&first, &[]))
            .expect("anchored");
        assert_eq!(verdict(&out), 1);
        assert_eq!(out.logs.len(), 1);
        // Again: a no-op without events, and without the signature checks' gas.
        assert_eq!(out.extra_gas, 120_000);
        let again = lc
            .call(&ctx(false), u64::MAX, &submit_call(&first, &[]))
            .expect("known");
        assert_eq!(
            (verdict(&again), again.logs.len(), again.extra_gas),
            (3, 0, 0)
        );

        // Block 5 hands over to the new set; it must carry it.
        let handover = signed(&header(5, 0, &old, &new), &old);
        assert!(lc
            .call(&ctx(false), u64::MAX, &submit_call(&handover, &[]))
            .is_err());
        let out = lc
            .call(
                &ctx(false),
                u64::MAX,
                &submit_call(&handover, &members(&new)),
            )
            .expect("handover");
        assert_eq!(
            (verdict(&out), out.logs.len()),
            (1, 2),
            "anchored and set changed"
        );
        // The old set can no longer anchor anything newer; the new one can.
        let by_old = signed(&header(6, 0, &old, &old), &old);
        let refused = lc.call(&ctx(false), u64::MAX, &submit_call(&by_old, &[]));
        assert!(matches!(refused, Err(CallError::Revert(r)) if r.contains("trusts set")));
        let by_new = signed(&header(6, 0, &new, &new), &new);
        assert_eq!(
            verdict(
                &lc.call(&ctx(false), u64::MAX, &submit_call(&by_new, &[]))
                    .expect("6")
            ),
            1
        );

        let view = lc.client(CHAIN).expect("read").expect("exists");
        assert_eq!(view.latest.height, 6);
        assert_eq!(
            view.validators_hash,
            trellis_light::members_hash(&members(&new))
        );
        assert!(!view.frozen);
        for height in [0, 1, 5, 6] {
            assert!(
                lc.anchor_at(CHAIN, height).expect("read").is_some(),
                "{height}"
            );
        }
        assert!(lc.anchor_at(CHAIN, 3).expect("read").is_none());
    }

    #[test]
    fn a_fork_freezes_the_client_and_keeps_the_evidence() {
        let set = keys(1..=4);
        let mut slots = MapSlots::empty();
        let mut lc = LightClients::new(&mut slots);
        lc.create(CHAIN, root(), &members(&set)).expect("created");
        for height in 1..=3 {
            let anchor = signed(&header(height, 0, &set, &set), &set);
            lc.call(&ctx(false), u64::MAX, &submit_call(&anchor, &[]))
                .expect("anchored");
        }
        let fork = signed(&header(2, 0x77, &set, &set), &set);
        let out = lc
            .call(&ctx(false), u64::MAX, &submit_call(&fork, &[]))
            .expect("evidence");
        assert_eq!(verdict(&out), 4);
        let frozen = abi::ClientFrozen::decode_log_data(&out.logs[0].data).expect("event");
        assert_eq!(frozen.height, 2);
        assert!(lc.client(CHAIN).expect("read").expect("exists").frozen);
        let kept: Evidence = lc.read(&evidence_key(CHAIN)).expect("read").expect("kept");
        assert_eq!(kept.header, fork.0);
        let next = signed(&header(4, 0, &set, &set), &set);
        let refused = lc.call(&ctx(false), u64::MAX, &submit_call(&next, &[]));
        assert!(matches!(refused, Err(CallError::Revert(r)) if r.contains("frozen")));
    }

    #[test]
    fn a_reset_by_vote_unfreezes_above_every_anchor_and_retires_the_ones_below() {
        let (set, recovered) = (keys(1..=4), keys(21..=24));
        let mut slots = MapSlots::empty();
        let mut lc = LightClients::new(&mut slots);
        lc.create(CHAIN, root(), &members(&set)).expect("created");
        assert_eq!(lc.usable_from(CHAIN).expect("read"), Ok(0));
        for height in 1..=3 {
            let anchor = signed(&header(height, 0, &set, &set), &set);
            lc.call(&ctx(false), u64::MAX, &submit_call(&anchor, &[]))
                .expect("anchored");
        }
        let fork = signed(&header(2, 0x77, &set, &set), &set);
        lc.call(&ctx(false), u64::MAX, &submit_call(&fork, &[]))
            .expect("evidence");
        assert_eq!(lc.usable_from(CHAIN).expect("read"), Err(2));

        let agreed = |height: u64| Anchored {
            height,
            hash: B256::repeat_byte(0x5e),
            state_root: B256::repeat_byte(0x5f),
            // Headers' times are 1,000 + height here.
            timestamp_ms: 1_000 + height,
        };
        // Not at or below the newest anchor (either side of the fork may be there), not of a
        // chain it does not follow, not with an empty set.
        for (chain, height, set, reason) in [
            (CHAIN, 3, members(&recovered), "above the newest anchor"),
            (CHAIN + 1, 10, members(&recovered), "does not follow"),
            (CHAIN, 10, Vec::new(), "light client of chain"),
        ] {
            let refused = lc.reset(chain, agreed(height), &set);
            assert!(
                matches!(&refused, Err(CallError::Revert(r)) if r.contains(reason)),
                "{reason}: {refused:?}"
            );
        }
        lc.reset(CHAIN, agreed(10), &members(&recovered))
            .expect("reset");
        let view = lc.client(CHAIN).expect("read").expect("exists");
        assert!(!view.frozen);
        assert_eq!(view.latest, agreed(10));
        assert_eq!(
            view.validators_hash,
            trellis_light::members_hash(&members(&recovered))
        );
        assert_eq!(lc.usable_from(CHAIN).expect("read"), Ok(10));
        assert_eq!(lc.anchor_at(CHAIN, 10).expect("read"), Some(agreed(10)));
        // The recovered set anchors what follows; the old one nothing.
        let by_old = signed(&header(11, 0, &set, &set), &set);
        assert!(lc
            .call(&ctx(false), u64::MAX, &submit_call(&by_old, &[]))
            .is_err());
        let by_new = signed(&header(11, 0, &recovered, &recovered), &recovered);
        let out = lc
            .call(&ctx(false), u64::MAX, &submit_call(&by_new, &[]))
            .expect("anchored after the reset");
        assert_eq!(verdict(&out), 1);
    }

    #[test]
    fn a_status_word_says_frozen_reset_or_neither() {
        assert_eq!(usable_from(U256::ZERO), Ok(0));
        assert_eq!(usable_from(U256::from(8)), Err(7));
        assert_eq!(usable_from(RESET | U256::from(12)), Ok(12));
        assert_eq!(usable_from(U256::MAX), Err(u64::MAX));
    }

    #[test]
    fn a_freeze_through_the_contract_table_writes_an_audit_entry() {
        use crate::contract::{LightClientsContract, SystemContract, SystemEnv};
        use crate::Governance;
        let submitter = Address::repeat_byte(1);
        let genesis = trellis_primitives::Genesis::from_json(&format!(
            r#"{{"chainId": 7, "validators": [{{"publicKey": "{}", "power": 1, "org": "acme"}}],
                "governance": {{"organizations": [{{"id": "acme", "admins": ["{submitter}"]}}]}}}}"#,
            B256::repeat_byte(3),
        ))
        .expect("genesis");
        let mut governance = MapSlots::empty();
        Governance::new(&mut governance)
            .init(&genesis)
            .expect("governance");
        let before = Governance::new(&mut governance)
            .config()
            .expect("config")
            .audits;
        let set = keys(1..=4);
        let mut slots = MapSlots::empty();
        LightClients::new(&mut slots)
            .create(CHAIN, root(), &members(&set))
            .expect("created");
        let honest = signed(&header(1, 0, &set, &set), &set);
        let fork = signed(&header(1, 0x77, &set, &set), &set);
        for (anchor, frozen) in [(honest, false), (fork, true)] {
            let mut env = SystemEnv::new(ctx(false), submitter, 1_000, &mut governance);
            let out = LightClientsContract
                .call(&mut env, &mut slots, &submit_call(&anchor, &[]))
                .expect("accepted");
            assert_eq!(verdict(&out) == 4, frozen);
        }
        let mut gov = Governance::new(&mut governance);
        assert_eq!(gov.config().expect("config").audits, before + 1);
        let entry = gov.audit_entry(before).expect("read").expect("written");
        assert_eq!(entry.action, "light client frozen");
        assert_eq!((entry.org.as_str(), entry.actor), ("acme", submitter));
        assert!(entry.detail.contains("chain 42"), "{}", entry.detail);
    }

    #[test]
    fn bad_submissions_are_refused_and_write_nothing() {
        let set = keys(1..=4);
        let mut slots = MapSlots::empty();
        LightClients::new(&mut slots)
            .create(CHAIN, root(), &members(&set))
            .expect("created");
        let anchor = signed(&header(1, 0, &set, &set), &set);
        let mut unknown_chain = header(1, 0, &set, &set);
        unknown_chain.chain_id = CHAIN + 1;
        let mismatched = abi::submitAnchorCall {
            header: anchor.0.clone().into(),
            certificate: anchor.1.clone().into(),
            nextKeys: vec![B256::ZERO],
            nextPowers: vec![],
        }
        .abi_encode();
        let cases: Vec<(&str, Vec<u8>, bool)> = vec![
            ("static", submit_call(&anchor, &[]), true),
            ("malformed", vec![0xde, 0xad, 0xbe, 0xef], false),
            (
                "does not follow",
                submit_call(&signed(&unknown_chain, &set), &[]),
                false,
            ),
            ("differ in length", mismatched, false),
            (
                "two thirds",
                submit_call(&signed(&header(1, 0, &set, &set), &set[..2]), &[]),
                false,
            ),
            (
                "over",
                submit_call(&(vec![0; MAX_HEADER_BYTES + 1], anchor.1.clone()), &[]),
                false,
            ),
        ];
        // Four signatures over four keys cost 120,000 gas: a call that cannot pay does nothing.
        {
            let mut overlay = MapSlots::over(|slot| slots.load(slot));
            let refused = LightClients::new(&mut overlay).call(
                &ctx(false),
                119_999,
                &submit_call(&anchor, &[]),
            );
            assert!(
                matches!(&refused, Err(CallError::Revert(r)) if r.contains("needs 120000 gas")),
                "{refused:?}"
            );
            assert!(overlay.writes.is_empty());
            let paid = LightClients::new(&mut overlay)
                .call(&ctx(false), 120_000, &submit_call(&anchor, &[]))
                .expect("paid for");
            assert_eq!(paid.extra_gas, 120_000);
        }

        for (reason, input, is_static) in cases {
            let mut overlay = MapSlots::over(|slot| slots.load(slot));
            let refused = LightClients::new(&mut overlay).call(&ctx(is_static), u64::MAX, &input);
            assert!(
                matches!(&refused, Err(CallError::Revert(r)) if r.contains(reason)),
                "{reason}: {refused:?}"
            );
            assert!(overlay.writes.is_empty(), "{reason}");
        }
    }
}
