//! Cross-chain messages and value transfers (`ITrellisCrossChain`): state commitments on the
//! source chain, proven on the destination against a header its light client anchored.
//!
//! The protocol, for message `n` from chain S to chain D:
//! 1. S commits it: the word at [`outbox_slot`]`(D, n)` holds its [`Message::commitment`];
//!    the message itself is kept beside it until it completes.
//! 2. D receives it with a Merkle proof of that word against an anchored header of S (or of
//!    the main chain, which anchored S: a two-hop proof). D refuses it after its timeout (by
//!    D's block time) and a second time (the word at [`receipt_slot`]`(S, n)`, written once,
//!    holds [`ack_commitment`] of the outcome). The application's refusal is an outcome too:
//!    it is acknowledged, never a failed block.
//! 3. S clears it on a proof of D's receipt word (the outcome); a refused transfer refunds.
//!    Or S refunds it on a proof that D's receipt word was empty at an anchored header of D
//!    whose time had reached the timeout: D's timestamps never decrease, so D can no longer
//!    receive it.
//!
//! Value: a transfer escrows the call's value here (`escrowed(D)`); D mints vouchers of S's
//! value to the receiver. Vouchers go back only to their origin: D burns them and sends a
//! message, and S releases that much of D's escrow. A chain can therefore never release more
//! than was sent to it: escrow for D = vouchers of S on D + transfers in flight.
//!
//! Layout (this contract's storage):
//! - word `trellis.xc.out` ‖ be64(D) ‖ be64(n): the commitment of pending message n to D;
//! - word `trellis.xc.rcpt` ‖ be64(S) ‖ be64(n): the acknowledgement of message n of S;
//! - record `xm:` ‖ be64(D) ‖ be64(n): the pending message; set `xp:` ‖ be64(D): pending
//!   sequence numbers; counter `xn:` ‖ be64(D): the last sequence number used;
//! - record `xr:` ‖ be64(S) ‖ be64(n): the outcome and its reason; record `xd:` ‖ …: a
//!   delivered data message;
//! - words `trellis.xc.v` ‖ be64(origin) ‖ holder, `trellis.xc.vs` ‖ be64(origin): vouchers and
//!   their supply; word `trellis.xc.esc` ‖ be64(counterparty): escrow.

use alloy_primitives::{address, keccak256, Address, Bytes, Log, B256, U256};
use alloy_sol_types::{sol, SolEvent, SolInterface, SolValue};
use serde::{Deserialize, Serialize};

use crate::clients::{self, Anchored};
use crate::governance::{self, GOVERNANCE_ADDRESS};
use crate::kv::{self, SlotError, Slots};
use crate::{revert, CallError, CallOutput, LightClients, Result, LIGHT_CLIENTS_ADDRESS};

sol!(
    #[sol(all_derives)]
    "../../contracts/src/ITrellisCrossChain.sol"
);

pub use ITrellisCrossChain as abi;

/// Reserved address of the cross-chain contract.
pub const XCHAIN_ADDRESS: Address = address!("0000000000000000000000000000000000001005");

/// What every cross-chain call pays before its slots.
pub const BASE_GAS: u64 = 5_000;
/// Gas per trie node a proof carries (a keccak-256 of up to 532 bytes and an RLP decode).
pub const PROOF_NODE_GAS: u64 = 3_000;
/// Largest payload of a data message.
pub const MAX_PAYLOAD_BYTES: usize = 4_096;
/// Largest encoded proof.
pub const MAX_PROOF_BYTES: usize = 64 * 1024;
/// Most trie nodes one proof carries (a path is at most 65 nodes deep per trie).
pub const MAX_PROOF_NODES: usize = 512;
/// How much older (by block time) than this chain's newest anchor of the hub a hub header a
/// two-hop proof is against may be: a freeze of the hub's client of the source hides from
/// proofs at most this long.
pub const HUB_WINDOW_MS: u64 = 60_000;
/// Most sequence numbers one `pendingMessages` call returns.
pub const MAX_PAGE: u64 = 1_000;

/// A data message: its payload's hash is delivered.
pub const APP_DATA: u8 = 0;
/// A value transfer: `abi.encode(uint64 origin, uint256 amount)`.
pub const APP_VALUE: u8 = 1;
/// A governance packet from the hub's governance contract: a `propose…` call this chain's
/// governance applies at the end of the block that receives it ([`governance::packet_action`]).
pub const APP_GOVERNANCE: u8 = 2;

/// Governance packets received and not yet applied: (source, sequence), in arrival order.
const PACKETS: kv::Set<'static> = kv::Set::new(b"xg");

/// A message between chains.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    pub source: u64,
    pub destination: u64,
    pub sequence: u64,
    pub sender: Address,
    pub receiver: Address,
    pub app: u8,
    pub payload: Vec<u8>,
    /// Destination block time (ms) from which on it can no longer be received.
    pub timeout_ms: u64,
}

impl Message {
    /// What the source commits: keccak-256 of the ABI encoding of every field, the payload by
    /// its hash.
    pub fn commitment(&self) -> B256 {
        keccak256(
            (
                self.source,
                self.destination,
                self.sequence,
                self.sender,
                self.receiver,
                // uint8 encodes as the same word.
                U256::from(self.app),
                keccak256(&self.payload),
                self.timeout_ms,
            )
                .abi_encode_params(),
        )
    }

    pub fn to_abi(&self) -> abi::Message {
        abi::Message {
            source: self.source,
            destination: self.destination,
            sequence: self.sequence,
            sender: self.sender,
            receiver: self.receiver,
            app: self.app,
            payload: Bytes::copy_from_slice(&self.payload),
            timeoutMs: self.timeout_ms,
        }
    }

    pub fn from_abi(m: &abi::Message) -> Message {
        Message {
            source: m.source,
            destination: m.destination,
            sequence: m.sequence,
            sender: m.sender,
            receiver: m.receiver,
            app: m.app,
            payload: m.payload.to_vec(),
            timeout_ms: m.timeoutMs,
        }
    }
}

/// What the destination writes in its receipt word: the commitment and the outcome.
pub fn ack_commitment(commitment: B256, success: bool) -> B256 {
    keccak256([commitment.as_slice(), &[u8::from(success)]].concat())
}

/// The word holding the commitment of message `sequence` to `destination`.
pub fn outbox_slot(destination: u64, sequence: u64) -> U256 {
    kv::word_slot(
        b"trellis.xc.out",
        &[&destination.to_be_bytes(), &sequence.to_be_bytes()],
    )
}

/// The word holding the acknowledgement of message `sequence` of `source`.
pub fn receipt_slot(source: u64, sequence: u64) -> U256 {
    kv::word_slot(
        b"trellis.xc.rcpt",
        &[&source.to_be_bytes(), &sequence.to_be_bytes()],
    )
}

/// The slots of the hub's light-client record of `chain` at `height` whose record is `len`
/// bytes (header first), as a two-hop proof carries them.
pub fn hub_anchor_slots(chain: u64, height: u64, len: usize) -> Vec<U256> {
    kv::record_slots(&clients::anchor_key(chain, height), len)
}

/// The length of the light-client record of `chain` at `height` in a hub's storage `slots`
/// (what [`hub_anchor_slots`] needs); `None` while the hub has not anchored that height.
pub fn hub_record_len(
    slots: &mut impl Slots,
    chain: u64,
    height: u64,
) -> Result<Option<usize>, SlotError> {
    Ok(kv::get(slots, &clients::anchor_key(chain, height))?.map(|r| r.len()))
}

fn key(tag: &[u8], chain: u64, sequence: u64) -> Vec<u8> {
    [tag, &chain.to_be_bytes(), &sequence.to_be_bytes()].concat()
}

fn pending_name(destination: u64) -> Vec<u8> {
    [b"xp:".as_slice(), &destination.to_be_bytes()].concat()
}

fn sequence_counter(destination: u64) -> Vec<u8> {
    [b"xn:".as_slice(), &destination.to_be_bytes()].concat()
}

fn voucher_slot(origin: u64, holder: &Address) -> U256 {
    kv::word_slot(b"trellis.xc.v", &[&origin.to_be_bytes(), holder.as_slice()])
}

fn supply_slot(origin: u64) -> U256 {
    kv::word_slot(b"trellis.xc.vs", &[&origin.to_be_bytes()])
}

fn escrow_slot(counterparty: u64) -> U256 {
    kv::word_slot(b"trellis.xc.esc", &[&counterparty.to_be_bytes()])
}

/// The outcome of a received message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Receipt {
    pub success: bool,
    pub reason: String,
    pub height: u64,
}

/// A received data message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delivery {
    pub sender: Address,
    pub receiver: Address,
    pub payload_hash: B256,
}

/// One call as the contract sees it.
#[derive(Clone, Copy, Debug)]
pub struct Call {
    /// This chain's id.
    pub chain_id: u64,
    pub caller: Address,
    pub height: u64,
    pub timestamp_ms: u64,
    pub value: U256,
    pub is_static: bool,
    /// Gas the call may spend beyond its base and slots (on proof nodes).
    pub budget: u64,
}

/// The value payload: the origin chain of the value and the amount.
pub fn value_payload(origin: u64, amount: U256) -> Vec<u8> {
    (origin, amount).abi_encode_params()
}

/// The payload of a data message carrying only a document's digest (`abi.encode(uint8
/// algorithm, bytes32 digest)`, the algorithm's code as `ITrellisEvidence` numbers it): a
/// contract on the destination checks a document against `delivered` with
/// `keccak256(abi.encode(uint8(1), sha256(document)))`.
pub fn digest_payload(algorithm: crate::evidence::HashAlgorithm, digest: B256) -> Vec<u8> {
    use alloy_sol_types::{sol_data, SolType};
    <(sol_data::Uint<8>, sol_data::FixedBytes<32>)>::abi_encode_params(&(algorithm.code(), digest))
}

/// The trie nodes `proof` carries, hops included: what the contract charges
/// [`PROOF_NODE_GAS`] for.
pub fn proof_nodes(proof: &abi::Proof) -> usize {
    let hops: usize = proof
        .via
        .iter()
        .map(|h| {
            h.account.nodes.len()
                + h.slotProofs.iter().map(Vec::len).sum::<usize>()
                + h.statusProof.len()
        })
        .sum();
    proof.account.nodes.len() + proof.slotProof.len() + hops
}

/// A proof as the contract's `proof` arguments take it (`abi.encode(proof)`).
pub fn encode_proof(proof: &abi::Proof) -> Vec<u8> {
    proof.abi_encode()
}

fn decode_value(payload: &[u8]) -> std::result::Result<(u64, U256), String> {
    <(u64, U256)>::abi_decode_params(payload).map_err(|e| format!("malformed value payload: {e}"))
}

/// The cross-chain contract over its storage and the light clients' (read only).
pub struct CrossChain<'s, S: Slots, C: Slots + ?Sized> {
    slots: &'s mut S,
    clients: ReadOnly<'s, C>,
    logs: Vec<Log>,
    payouts: Vec<(Address, U256)>,
    proof_gas: u64,
}

/// The light clients' storage, read only: a proof never writes there.
struct ReadOnly<'a, C: Slots + ?Sized>(&'a mut C);

impl<C: Slots + ?Sized> Slots for ReadOnly<'_, C> {
    fn load(&mut self, slot: U256) -> Result<U256, SlotError> {
        self.0.load(slot)
    }

    fn store(&mut self, _: U256, _: U256) -> Result<(), SlotError> {
        Err(SlotError::invalid("the light clients are read only here"))
    }
}

impl<'s, S: Slots, C: Slots + ?Sized> CrossChain<'s, S, C> {
    pub fn new(slots: &'s mut S, clients: &'s mut C) -> Self {
        CrossChain {
            slots,
            clients: ReadOnly(clients),
            logs: Vec::new(),
            payouts: Vec::new(),
            proof_gas: 0,
        }
    }

    /// The light clients, read only.
    fn clients(&mut self) -> LightClients<'_, ReadOnly<'s, C>> {
        LightClients::new(&mut self.clients)
    }

    fn emit<E: SolEvent>(&mut self, event: E) {
        self.logs.push(Log {
            address: XCHAIN_ADDRESS,
            data: event.encode_log_data(),
        });
    }

    fn word(&mut self, slot: U256) -> Result<U256, SlotError> {
        self.slots.load(slot)
    }

    // ---- reads ----

    /// The next sequence number to `destination` and the number of pending messages.
    pub fn outbox(&mut self, destination: u64) -> Result<(u64, u64), SlotError> {
        let last = kv::counter(self.slots, &sequence_counter(destination))?;
        let pending = kv::Set::new(&pending_name(destination)).len(self.slots)?;
        Ok((last + 1, pending))
    }

    /// Pending sequence numbers to `destination`.
    pub fn pending(
        &mut self,
        destination: u64,
        offset: u64,
        limit: u64,
    ) -> Result<Vec<u64>, SlotError> {
        kv::Set::new(&pending_name(destination))
            .page(self.slots, offset, limit.min(MAX_PAGE))?
            .into_iter()
            .map(|s| {
                <[u8; 8]>::try_from(s.as_slice())
                    .map(u64::from_be_bytes)
                    .map_err(|_| SlotError::invalid("corrupt pending sequence number"))
            })
            .collect()
    }

    /// The pending message `sequence` to `destination`.
    pub fn message(
        &mut self,
        destination: u64,
        sequence: u64,
    ) -> Result<Option<Message>, SlotError> {
        kv::get_decoded(
            self.slots,
            &key(b"xm:", destination, sequence),
            "cross-chain message",
        )
    }

    /// The outcome of message `sequence` of `source`, if it was received here.
    pub fn receipt(&mut self, source: u64, sequence: u64) -> Result<Option<Receipt>, SlotError> {
        kv::get_decoded(self.slots, &key(b"xr:", source, sequence), "receipt")
    }

    pub fn delivered(&mut self, source: u64, sequence: u64) -> Result<Option<Delivery>, SlotError> {
        kv::get_decoded(self.slots, &key(b"xd:", source, sequence), "delivery")
    }

    pub fn vouchers(&mut self, origin: u64, holder: &Address) -> Result<U256, SlotError> {
        self.word(voucher_slot(origin, holder))
    }

    pub fn voucher_supply(&mut self, origin: u64) -> Result<U256, SlotError> {
        self.word(supply_slot(origin))
    }

    pub fn escrowed(&mut self, counterparty: u64) -> Result<U256, SlotError> {
        self.word(escrow_slot(counterparty))
    }

    // ---- sending ----

    fn commit(&mut self, call: &Call, mut message: Message) -> Result<u64> {
        let destination = message.destination;
        if destination == call.chain_id {
            return revert(format!("chain {destination} is this chain"));
        }
        if message.timeout_ms <= call.timestamp_ms {
            return revert(format!(
                "timeout {} ms is not after this block's time {} ms",
                message.timeout_ms, call.timestamp_ms
            ));
        }
        // A chain this one follows is reached directly. Data reaches any other through the
        // hub (a sub-chain's main chain, which anchors every sub-chain); value only goes
        // where a timeout can be proven if the destination never answers, so directly.
        let mut clients = self.clients();
        let client = clients.client(destination)?;
        // A frozen client proves nothing any more: neither an acknowledgement nor a timeout
        // could ever settle the message.
        if client.as_ref().is_some_and(|c| c.frozen) {
            return revert(format!(
                "the client of chain {destination} is frozen: nothing sent there could settle"
            ));
        }
        if client.is_none() {
            if message.app != APP_DATA {
                return revert(format!(
                    "value goes only to chains this chain follows, and it does not follow \
                     chain {destination}"
                ));
            }
            if clients.hub()?.is_none() {
                return revert(format!(
                    "this chain neither follows chain {destination} nor has a hub: no route"
                ));
            }
        }
        let counter = sequence_counter(destination);
        let sequence = kv::counter(self.slots, &counter)? + 1;
        kv::set_counter(self.slots, &counter, sequence)?;
        message.sequence = sequence;
        let commitment = message.commitment();
        self.slots
            .store(outbox_slot(destination, sequence), commitment.into())?;
        kv::put_encoded(
            self.slots,
            &key(b"xm:", destination, sequence),
            &message,
            "cross-chain message",
        )?;
        kv::Set::new(&pending_name(destination)).insert(self.slots, &sequence.to_be_bytes())?;
        self.emit(abi::MessageSent {
            destination,
            sequence,
            commitment,
            message: message.to_abi(),
        });
        Ok(sequence)
    }

    /// A message from the caller, numbered when committed.
    fn outgoing(
        call: &Call,
        destination: u64,
        receiver: Address,
        app: u8,
        payload: Vec<u8>,
        timeout_ms: u64,
    ) -> Message {
        Message {
            source: call.chain_id,
            destination,
            sequence: 0,
            sender: call.caller,
            receiver,
            app,
            payload,
            timeout_ms,
        }
    }

    /// Commits a data message.
    pub fn send(
        &mut self,
        call: &Call,
        destination: u64,
        receiver: Address,
        payload: &[u8],
        timeout_ms: u64,
    ) -> Result<u64> {
        if payload.len() > MAX_PAYLOAD_BYTES {
            return revert(format!("payload over {MAX_PAYLOAD_BYTES} bytes"));
        }
        let message = Self::outgoing(
            call,
            destination,
            receiver,
            APP_DATA,
            payload.to_vec(),
            timeout_ms,
        );
        self.commit(call, message)
    }

    /// Escrows the call's value and sends it.
    pub fn transfer(
        &mut self,
        call: &Call,
        destination: u64,
        receiver: Address,
        timeout_ms: u64,
    ) -> Result<u64> {
        if call.value.is_zero() {
            return revert("a transfer carries value");
        }
        let escrow = self.escrowed(destination)?;
        let escrow = escrow
            .checked_add(call.value)
            .ok_or_else(|| CallError::revert("escrow overflow"))?;
        let payload = value_payload(call.chain_id, call.value);
        let message = Self::outgoing(call, destination, receiver, APP_VALUE, payload, timeout_ms);
        // Checked before anything is written: a refused call writes nothing.
        let sequence = self.commit(call, message)?;
        self.slots.store(escrow_slot(destination), escrow)?;
        Ok(sequence)
    }

    /// Burns the caller's vouchers of `origin` and sends them home.
    pub fn return_vouchers(
        &mut self,
        call: &Call,
        origin: u64,
        receiver: Address,
        amount: U256,
        timeout_ms: u64,
    ) -> Result<u64> {
        if amount.is_zero() {
            return revert("nothing to return");
        }
        let held = self.vouchers(origin, &call.caller)?;
        if held < amount {
            return revert(format!(
                "{} holds {held} vouchers of chain {origin}, not {amount}",
                call.caller
            ));
        }
        let payload = value_payload(origin, amount);
        let message = Self::outgoing(call, origin, receiver, APP_VALUE, payload, timeout_ms);
        let sequence = self.commit(call, message)?;
        self.burn(origin, &call.caller, amount)?;
        Ok(sequence)
    }

    /// Moves vouchers between holders on this chain.
    pub fn transfer_vouchers(
        &mut self,
        call: &Call,
        origin: u64,
        to: Address,
        amount: U256,
    ) -> Result<()> {
        self.burn(origin, &call.caller, amount)?;
        self.mint(origin, &to, amount)
    }

    fn burn(&mut self, origin: u64, holder: &Address, amount: U256) -> Result<()> {
        let held = self.vouchers(origin, holder)?;
        let Some(left) = held.checked_sub(amount) else {
            return revert(format!(
                "{holder} holds {held} vouchers of chain {origin}, not {amount}"
            ));
        };
        self.slots.store(voucher_slot(origin, holder), left)?;
        let supply = self.voucher_supply(origin)?;
        let supply = supply
            .checked_sub(amount)
            .ok_or_else(|| SlotError::invalid("voucher supply below a holder's balance"))?;
        self.slots.store(supply_slot(origin), supply)?;
        Ok(())
    }

    fn mint(&mut self, origin: u64, holder: &Address, amount: U256) -> Result<()> {
        let held = self.vouchers(origin, holder)?;
        let supply = self.voucher_supply(origin)?;
        let (Some(held), Some(supply)) = (held.checked_add(amount), supply.checked_add(amount))
        else {
            return revert("voucher overflow");
        };
        self.slots.store(voucher_slot(origin, holder), held)?;
        self.slots.store(supply_slot(origin), supply)?;
        Ok(())
    }

    // ---- proofs ----

    /// The header of `chain` at `height` this chain trusts: anchored by its own client, which
    /// must not be frozen.
    fn anchored(&mut self, chain: u64, height: u64) -> Result<Anchored> {
        let mut clients = self.clients();
        let Some(client) = clients.client(chain)? else {
            return revert(format!("this chain does not follow chain {chain}"));
        };
        if client.frozen {
            return revert(format!("the client of chain {chain} is frozen"));
        }
        if let Ok(floor) = clients.usable_from(chain)? {
            if height < floor {
                return revert(format!(
                    "anchors of chain {chain} below height {floor}, where a vote reset its \
                     client, prove nothing"
                ));
            }
        }
        clients.anchor_at(chain, height)?.ok_or_else(|| {
            CallError::revert(format!(
                "no anchored header of chain {chain} at height {height}"
            ))
        })
    }

    /// Charges `nodes` trie nodes against the call's budget, before any is hashed.
    fn charge(&mut self, call: &Call, nodes: usize) -> Result<()> {
        if nodes > MAX_PROOF_NODES {
            return revert(format!("a proof of over {MAX_PROOF_NODES} trie nodes"));
        }
        let gas = PROOF_NODE_GAS * nodes as u64;
        if self.proof_gas + gas > call.budget {
            return revert(format!(
                "out of gas: a proof of {nodes} trie nodes needs {gas} gas beyond the call's base"
            ));
        }
        self.proof_gas += gas;
        Ok(())
    }

    /// Checks that the word `slot` of `chain`'s cross-chain contract held `expected` (zero:
    /// absent) at the header `proof` names, and answers that header.
    fn prove_word(
        &mut self,
        call: &Call,
        chain: u64,
        slot: U256,
        expected: U256,
        proof: &[u8],
    ) -> Result<Anchored> {
        if proof.len() > MAX_PROOF_BYTES {
            return revert(format!("proof over {MAX_PROOF_BYTES} bytes"));
        }
        let proof = <abi::Proof as SolValue>::abi_decode(proof)
            .map_err(|e| CallError::revert(format!("malformed proof: {e}")))?;
        self.charge(call, proof_nodes(&proof))?;
        let header = match proof.via.as_slice() {
            [] => self.anchored(chain, proof.height)?,
            [hop] => self.through_hub(chain, proof.height, hop)?,
            _ => return revert("a proof goes through at most one hub"),
        };
        trellis_light::verify_against_root(
            header.state_root,
            XCHAIN_ADDRESS,
            &proven_account(&proof.account),
            &proof.account.nodes,
            std::iter::once((B256::from(slot), expected, proof.slotProof)),
        )
        .map_err(|e| {
            CallError::revert(format!(
                "proof against chain {chain} at height {}: {e}",
                proof.height
            ))
        })?;
        Ok(header)
    }

    /// `chain`'s header at `height` as the hub anchored it: the hub's light-client record,
    /// proven against the hub's header this chain anchored.
    fn through_hub(&mut self, chain: u64, height: u64, hop: &abi::Hop) -> Result<Anchored> {
        let mut clients = self.clients();
        // Only the hub vouches for chains, and only for those this chain does not follow
        // itself (its own client, frozen or not, is the one it trusts for them).
        if clients.hub()? != Some(hop.chainId) {
            return revert(format!("chain {} is not this chain's hub", hop.chainId));
        }
        if clients.client(chain)?.is_some() {
            return revert(format!(
                "this chain follows chain {chain}: prove against its own client"
            ));
        }
        // A recent hub header, so that its client of `chain` is proven not frozen as of
        // lately: an old one would hide a freeze that came since. Not the newest exactly —
        // anyone may anchor a newer hub header at any time, and relays in flight must land.
        let Some(newest) = clients.client(hop.chainId)? else {
            return revert(format!(
                "this chain does not follow its hub {}",
                hop.chainId
            ));
        };
        let hub = self.anchored(hop.chainId, hop.height)?;
        let age = newest.latest.timestamp_ms.saturating_sub(hub.timestamp_ms);
        if age > HUB_WINDOW_MS {
            return revert(format!(
                "a hub proof must be against a hub header at most {} s older than this chain's \
                 newest anchor of the hub (height {}); height {} is {age} ms older",
                HUB_WINDOW_MS / 1_000,
                newest.latest.height,
                hop.height,
            ));
        }
        let Some(first) = hop.values.first() else {
            return revert("a hub proof without its record");
        };
        let len = usize::try_from(*first)
            .ok()
            .and_then(|h| h.checked_sub(1))
            .filter(|l| *l <= 256)
            .ok_or_else(|| {
                CallError::revert(format!(
                    "chain {} holds no anchor of chain {chain} at height {height}",
                    hop.chainId
                ))
            })?;
        let slots = hub_anchor_slots(chain, height, len);
        if hop.values.len() != slots.len() || hop.slotProofs.len() != slots.len() {
            return revert(format!(
                "a hub record of {len} bytes takes {} slots",
                slots.len()
            ));
        }
        // The record, and the hub's client of `chain` not frozen (nor reset above it).
        match clients::usable_from(hop.statusWord) {
            Err(fork) => {
                return revert(format!(
                    "chain {}'s client of chain {chain} is frozen (a fork at height {fork})",
                    hop.chainId
                ))
            }
            Ok(floor) if height < floor => {
                return revert(format!(
                    "chain {}'s anchors of chain {chain} below height {floor}, where a vote \
                     reset its client, prove nothing",
                    hop.chainId
                ))
            }
            Ok(_) => {}
        }
        let status = (
            B256::from(clients::status_slot(chain)),
            hop.statusWord,
            hop.statusProof.clone(),
        );
        trellis_light::verify_against_root(
            hub.state_root,
            LIGHT_CLIENTS_ADDRESS,
            &proven_account(&hop.account),
            &hop.account.nodes,
            slots
                .iter()
                .zip(&hop.values)
                .zip(&hop.slotProofs)
                .map(|((slot, value), proof)| (B256::from(*slot), *value, proof.clone()))
                .chain(std::iter::once(status)),
        )
        .map_err(|e| {
            CallError::revert(format!(
                "hub proof against chain {} at height {}: {e}",
                hop.chainId, hop.height
            ))
        })?;
        let mut bytes: Vec<u8> = hop.values[1..]
            .iter()
            .flat_map(|w| w.to_be_bytes::<32>())
            .collect();
        bytes.truncate(len);
        let anchored: Anchored = postcard::from_bytes(&bytes)
            .map_err(|e| CallError::revert(format!("undecodable hub anchor record: {e}")))?;
        if anchored.height != height {
            return revert(format!(
                "the hub's record is of height {}, the proof claims {height}",
                anchored.height
            ));
        }
        Ok(anchored)
    }

    // ---- receiving ----

    /// Accepts `message` proven by `proof`; the application's outcome.
    pub fn receive(&mut self, call: &Call, message: &Message, proof: &[u8]) -> Result<bool> {
        let (source, sequence) = (message.source, message.sequence);
        if message.destination != call.chain_id {
            return revert(format!(
                "message for chain {}, this is chain {}",
                message.destination, call.chain_id
            ));
        }
        if source == call.chain_id {
            return revert("a message from this chain to itself");
        }
        if !self.word(receipt_slot(source, sequence))?.is_zero() {
            return revert(format!(
                "message {sequence} of chain {source} was already received"
            ));
        }
        if call.timestamp_ms >= message.timeout_ms {
            return revert(format!(
                "message {sequence} of chain {source} timed out at {} ms (block time {} ms)",
                message.timeout_ms, call.timestamp_ms
            ));
        }
        let commitment = message.commitment();
        self.prove_word(
            call,
            source,
            outbox_slot(call.chain_id, sequence),
            commitment.into(),
            proof,
        )?;
        let outcome = match message.app {
            APP_DATA => {
                kv::put_encoded(
                    self.slots,
                    &key(b"xd:", source, sequence),
                    &Delivery {
                        sender: message.sender,
                        receiver: message.receiver,
                        payload_hash: keccak256(&message.payload),
                    },
                    "delivery",
                )?;
                Ok(())
            }
            APP_VALUE => self.credit(call, message)?,
            APP_GOVERNANCE => self.accept_packet(message)?,
            app => Err(format!("unknown application {app}")),
        };
        let (success, reason) = match outcome {
            Ok(()) => (true, String::new()),
            Err(reason) => (false, reason),
        };
        self.slots.store(
            receipt_slot(source, sequence),
            ack_commitment(commitment, success).into(),
        )?;
        kv::put_encoded(
            self.slots,
            &key(b"xr:", source, sequence),
            &Receipt {
                success,
                reason: reason.clone(),
                height: call.height,
            },
            "receipt",
        )?;
        self.emit(abi::MessageReceived {
            source,
            sequence,
            success,
            reason,
        });
        Ok(success)
    }

    /// A received value transfer: vouchers of the source's value, or this chain's own value
    /// coming home out of the source's escrow. `Err` is the application's refusal (nothing
    /// written).
    fn credit(
        &mut self,
        call: &Call,
        message: &Message,
    ) -> Result<std::result::Result<(), String>> {
        let (origin, amount) = match decode_value(&message.payload) {
            Ok(v) => v,
            Err(reason) => return Ok(Err(reason)),
        };
        if origin == message.source {
            return match self.mint(origin, &message.receiver, amount) {
                Ok(()) => Ok(Ok(())),
                Err(CallError::Revert(reason)) => Ok(Err(reason)),
                Err(e) => Err(e),
            };
        }
        if origin != call.chain_id {
            return Ok(Err(format!(
                "vouchers of chain {origin} travel only between chain {origin} and their holder's chain"
            )));
        }
        let escrow = self.escrowed(message.source)?;
        let Some(left) = escrow.checked_sub(amount) else {
            return Ok(Err(format!(
                "chain {} returns {amount}, but only {escrow} is escrowed for it",
                message.source
            )));
        };
        self.slots.store(escrow_slot(message.source), left)?;
        self.payouts.push((message.receiver, amount));
        Ok(Ok(()))
    }

    // ---- completing ----

    fn pending_message(&mut self, destination: u64, sequence: u64) -> Result<Message> {
        self.message(destination, sequence)?.ok_or_else(|| {
            CallError::revert(format!(
                "no pending message {sequence} to chain {destination}"
            ))
        })
    }

    fn clear(&mut self, message: &Message) -> Result<()> {
        let (destination, sequence) = (message.destination, message.sequence);
        self.slots
            .store(outbox_slot(destination, sequence), U256::ZERO)?;
        kv::delete(self.slots, &key(b"xm:", destination, sequence))?;
        kv::Set::new(&pending_name(destination)).remove(self.slots, &sequence.to_be_bytes())?;
        Ok(())
    }

    /// Queues a governance packet for the end of the block, if it comes from this chain's
    /// hub's governance contract and carries an action a packet may carry; else the refusal,
    /// which its receipt records.
    fn accept_packet(
        &mut self,
        message: &Message,
    ) -> Result<std::result::Result<(), String>, SlotError> {
        let hub = self.clients().hub()?;
        if hub != Some(message.source) {
            return Ok(Err(match hub {
                Some(hub) => format!(
                    "governance packets come only from this chain's hub, chain {hub}, not chain {}",
                    message.source
                ),
                None => "this chain has no hub: it takes no governance packets".into(),
            }));
        }
        if message.sender != GOVERNANCE_ADDRESS {
            return Ok(Err(format!(
                "governance packets come only from the hub's governance contract, not {}",
                message.sender
            )));
        }
        if let Err(reason) = governance::packet_action(&message.payload) {
            return Ok(Err(reason));
        }
        let id = [message.source.to_be_bytes(), message.sequence.to_be_bytes()].concat();
        kv::put(
            self.slots,
            &[b"xg:".as_slice(), &id].concat(),
            &message.payload,
        )?;
        PACKETS.insert(self.slots, &id)?;
        Ok(Ok(()))
    }

    /// The governance packets received since the last call, oldest first, taken out of the
    /// queue: (source, sequence, the `propose…` call).
    pub fn take_packets(&mut self) -> Result<Vec<(u64, u64, Vec<u8>)>, SlotError> {
        let count = PACKETS.len(self.slots)?;
        if count == 0 {
            // Nothing written: most blocks of most chains receive no packet.
            return Ok(Vec::new());
        }
        let mut packets = Vec::new();
        for i in 0..count {
            let id = PACKETS.get(self.slots, i)?;
            let (Ok(source), Ok(sequence)) = (
                <[u8; 8]>::try_from(&id[..id.len().min(8)]),
                <[u8; 8]>::try_from(&id[id.len().min(8)..]),
            ) else {
                return Err(SlotError::invalid("corrupt governance packet id"));
            };
            let key = [b"xg:".as_slice(), &id].concat();
            let call = kv::get(self.slots, &key)?.unwrap_or_default();
            kv::delete(self.slots, &key)?;
            packets.push((
                u64::from_be_bytes(source),
                u64::from_be_bytes(sequence),
                call,
            ));
        }
        PACKETS.clear(self.slots)?;
        Ok(packets)
    }

    /// Commits a governance packet from this chain's governance contract to sub-chain
    /// `destination` (at the end of the block a `proposeToSubchain` takes effect in); its
    /// sequence number.
    pub fn send_packet(
        &mut self,
        call: &Call,
        destination: u64,
        payload: Vec<u8>,
        timeout_ms: u64,
    ) -> Result<u64> {
        let message = Message {
            source: call.chain_id,
            destination,
            sequence: 0,
            sender: GOVERNANCE_ADDRESS,
            receiver: Address::ZERO,
            app: APP_GOVERNANCE,
            payload,
            timeout_ms,
        };
        self.commit(call, message)
    }

    /// Gives a message's value back to its sender: this chain's value out of the escrow, or
    /// the vouchers it burned.
    fn refund(&mut self, call: &Call, message: &Message) -> Result<()> {
        if message.app != APP_VALUE {
            return Ok(());
        }
        let (origin, amount) = decode_value(&message.payload)
            .map_err(|e| SlotError::invalid(format!("a committed transfer: {e}")))?;
        if origin == call.chain_id {
            let escrow = self.escrowed(message.destination)?;
            let left = escrow
                .checked_sub(amount)
                .ok_or_else(|| SlotError::invalid("escrow below a pending transfer"))?;
            self.slots.store(escrow_slot(message.destination), left)?;
            self.payouts.push((message.sender, amount));
            Ok(())
        } else {
            self.mint(origin, &message.sender, amount)
        }
    }

    /// Completes message `sequence` to `destination` on a proof of its acknowledgement.
    pub fn acknowledge(
        &mut self,
        call: &Call,
        destination: u64,
        sequence: u64,
        success: bool,
        proof: &[u8],
    ) -> Result<()> {
        let message = self.pending_message(destination, sequence)?;
        let ack = ack_commitment(message.commitment(), success);
        self.prove_word(
            call,
            destination,
            receipt_slot(call.chain_id, sequence),
            ack.into(),
            proof,
        )?;
        self.clear(&message)?;
        if !success {
            self.refund(call, &message)?;
        }
        self.emit(abi::MessageAcknowledged {
            destination,
            sequence,
            success,
        });
        Ok(())
    }

    /// Refunds message `sequence` to `destination` on a proof that the destination had not
    /// received it at a header whose time reached its timeout.
    pub fn timeout(
        &mut self,
        call: &Call,
        destination: u64,
        sequence: u64,
        proof: &[u8],
    ) -> Result<()> {
        let message = self.pending_message(destination, sequence)?;
        let header = self.prove_word(
            call,
            destination,
            receipt_slot(call.chain_id, sequence),
            U256::ZERO,
            proof,
        )?;
        if header.timestamp_ms < message.timeout_ms {
            return revert(format!(
                "chain {destination}'s header at height {} is of {} ms, before the timeout {} ms",
                header.height, header.timestamp_ms, message.timeout_ms
            ));
        }
        self.clear(&message)?;
        self.refund(call, &message)?;
        self.emit(abi::MessageTimedOut {
            destination,
            sequence,
        });
        Ok(())
    }

    /// Runs one ABI-encoded call.
    pub fn call(&mut self, call: &Call, input: &[u8]) -> Result<CallOutput> {
        use abi::ITrellisCrossChainCalls as C;
        let decoded = C::abi_decode(input).map_err(|e| {
            CallError::revert(format!(
                "cross-chain: unknown function or malformed arguments ({e})"
            ))
        })?;
        let writes = matches!(
            decoded,
            C::send(_)
                | C::transfer(_)
                | C::returnVouchers(_)
                | C::transferVouchers(_)
                | C::receiveMessage(_)
                | C::acknowledge(_)
                | C::timeout(_)
        );
        if writes && call.is_static {
            return revert("cross-chain: state change in a static call");
        }
        if !call.value.is_zero() && !matches!(decoded, C::transfer(_)) {
            return revert("cross-chain: only transfer takes value");
        }
        let output: Vec<u8> = match decoded {
            C::send(c) => self
                .send(call, c.destination, c.receiver, &c.payload, c.timeoutMs)?
                .abi_encode(),
            C::transfer(c) => self
                .transfer(call, c.destination, c.receiver, c.timeoutMs)?
                .abi_encode(),
            C::returnVouchers(c) => self
                .return_vouchers(call, c.origin, c.receiver, c.amount, c.timeoutMs)?
                .abi_encode(),
            C::transferVouchers(c) => {
                self.transfer_vouchers(call, c.origin, c.to, c.amount)?;
                Vec::new()
            }
            C::receiveMessage(c) => {
                // A governance packet may name a whole validator set (a light client's reset).
                let most = match c.message.app {
                    APP_GOVERNANCE => governance::MAX_PACKET_BYTES,
                    _ => MAX_PAYLOAD_BYTES,
                };
                if c.message.payload.len() > most {
                    return revert(format!("payload over {most} bytes"));
                }
                self.receive(call, &Message::from_abi(&c.message), &c.proof)?
                    .abi_encode()
            }
            C::acknowledge(c) => {
                self.acknowledge(call, c.destination, c.sequence, c.success, &c.proof)?;
                Vec::new()
            }
            C::timeout(c) => {
                self.timeout(call, c.destination, c.sequence, &c.proof)?;
                Vec::new()
            }
            C::outbox(c) => self.outbox(c.destination)?.abi_encode_params(),
            C::pendingMessages(c) => self.pending(c.destination, c.offset, c.limit)?.abi_encode(),
            C::message(c) => match self.message(c.destination, c.sequence)? {
                Some(m) => (true, m.to_abi()).abi_encode_params(),
                None => (false, Message::default().to_abi()).abi_encode_params(),
            },
            C::receipt(c) => match self.receipt(c.source, c.sequence)? {
                Some(r) => (true, r.success, r.reason).abi_encode_params(),
                None => (false, false, String::new()).abi_encode_params(),
            },
            C::delivered(c) => match self.delivered(c.source, c.sequence)? {
                Some(d) => (true, d.sender, d.receiver, d.payload_hash).abi_encode_params(),
                None => (false, Address::ZERO, Address::ZERO, B256::ZERO).abi_encode_params(),
            },
            C::voucherBalance(c) => self.vouchers(c.origin, &c.holder)?.abi_encode(),
            C::voucherSupply(c) => self.voucher_supply(c.origin)?.abi_encode(),
            C::escrowed(c) => self.escrowed(c.counterparty)?.abi_encode(),
        };
        Ok(CallOutput {
            output: output.into(),
            logs: std::mem::take(&mut self.logs),
            extra_gas: self.proof_gas,
            payouts: std::mem::take(&mut self.payouts),
        })
    }
}

fn proven_account(a: &abi::AccountProof) -> trellis_light::ProvenAccount {
    trellis_light::ProvenAccount {
        nonce: a.nonce,
        balance: a.balance,
        storage_root: a.storageRoot,
        code_hash: a.codeHash,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kv::MapSlots;
    use alloy_primitives::Bloom;
    use alloy_sol_types::SolCall;
    use alloy_trie::proof::ProofRetainer;
    use alloy_trie::{HashBuilder, Nibbles, TrieAccount};
    use ed25519_consensus::SigningKey;
    use rand::{Rng, SeedableRng};
    use std::collections::BTreeMap;
    use trellis_primitives::Header;

    /// A trie over `leaves` (key → RLP value, keys hashed with keccak-256, as Ethereum's
    /// state and storage tries are), its root and the proof of each of `targets`.
    fn trie(leaves: &BTreeMap<Vec<u8>, Vec<u8>>, targets: &[Vec<u8>]) -> (B256, Vec<Vec<Bytes>>) {
        let mut sorted: Vec<(Nibbles, &Vec<u8>)> = leaves
            .iter()
            .map(|(k, v)| (Nibbles::unpack(keccak256(k)), v))
            .collect();
        sorted.sort_by_key(|a| a.0);
        let wanted: Vec<Nibbles> = targets
            .iter()
            .map(|t| Nibbles::unpack(keccak256(t)))
            .collect();
        let mut builder =
            HashBuilder::default().with_proof_retainer(ProofRetainer::from_iter(wanted.clone()));
        for (key, value) in &sorted {
            builder.add_leaf(*key, value);
        }
        let root = builder.root();
        let nodes = builder.take_proof_nodes();
        let proofs = wanted
            .iter()
            .map(|t| {
                nodes
                    .matching_nodes_sorted(t)
                    .into_iter()
                    .map(|(_, n)| n)
                    .collect()
            })
            .collect();
        (root, proofs)
    }

    fn storage_leaves(slots: &MapSlots<'_>) -> BTreeMap<Vec<u8>, Vec<u8>> {
        slots
            .writes
            .iter()
            .filter(|(_, v)| !v.is_zero())
            .map(|(k, v)| {
                (
                    B256::from(*k).to_vec(),
                    alloy_rlp::encode_fixed_size(v).to_vec(),
                )
            })
            .collect()
    }

    /// A chain as the tests see it: its two multi-chain contracts' storage, its height and
    /// time, and its validators.
    struct Chain {
        id: u64,
        xc: MapSlots<'static>,
        lc: MapSlots<'static>,
        height: u64,
        time: u64,
        keys: Vec<SigningKey>,
    }

    impl Chain {
        fn new(id: u64) -> Chain {
            Chain {
                id,
                xc: MapSlots::empty(),
                lc: MapSlots::empty(),
                height: 0,
                time: 1_000,
                keys: (1..=4)
                    .map(|i| SigningKey::from([id as u8 * 16 + i; 32]))
                    .collect(),
            }
        }

        fn members(&self) -> Vec<(B256, u64)> {
            self.keys
                .iter()
                .map(|k| (B256::from(k.verification_key().to_bytes()), 1))
                .collect()
        }

        fn follow(&mut self, other: &Chain) {
            let root = Anchored {
                height: 0,
                hash: B256::ZERO,
                state_root: B256::ZERO,
                timestamp_ms: 0,
            };
            LightClients::new(&mut self.lc)
                .create(other.id, root, &other.members())
                .expect("client");
        }

        fn call(&self, caller: Address, value: u64) -> Call {
            Call {
                chain_id: self.id,
                caller,
                height: self.height,
                timestamp_ms: self.time,
                value: U256::from(value),
                is_static: false,
                budget: u64::MAX,
            }
        }

        fn xc(&mut self) -> CrossChain<'_, MapSlots<'static>, MapSlots<'static>> {
            CrossChain::new(&mut self.xc, &mut self.lc)
        }

        /// Runs `f` as a call from `caller` with `value`, in this chain's current block.
        fn run<T>(
            &mut self,
            caller: Address,
            value: u64,
            f: impl FnOnce(&mut CrossChain<'_, MapSlots<'static>, MapSlots<'static>>, &Call) -> T,
        ) -> T {
            let call = self.call(caller, value);
            f(&mut self.xc(), &call)
        }

        /// Proofs of the given slots of `address` in the current state, and the state root.
        fn prove(
            &self,
            address: Address,
            slots: &[U256],
        ) -> (B256, abi::AccountProof, Vec<Vec<Bytes>>) {
            let targets: Vec<Vec<u8>> = slots.iter().map(|s| B256::from(*s).to_vec()).collect();
            let mut accounts = BTreeMap::new();
            let mut wanted = None;
            for (a, storage) in [
                (XCHAIN_ADDRESS, &self.xc),
                (LIGHT_CLIENTS_ADDRESS, &self.lc),
            ] {
                let (storage_root, proofs) = trie(&storage_leaves(storage), &targets);
                let account = TrieAccount {
                    nonce: 1,
                    balance: U256::ZERO,
                    storage_root,
                    code_hash: keccak256(crate::SYSTEM_CODE),
                };
                accounts.insert(a.to_vec(), alloy_rlp::encode(account));
                if a == address {
                    wanted = Some((account, proofs));
                }
            }
            let (account, slot_proofs) = wanted.expect("a proven contract");
            let (state_root, mut account_proofs) = trie(&accounts, &[address.to_vec()]);
            let account_proofs = account_proofs.remove(0);
            (
                state_root,
                abi::AccountProof {
                    nonce: account.nonce,
                    balance: account.balance,
                    storageRoot: account.storage_root,
                    codeHash: account.code_hash,
                    nodes: account_proofs,
                },
                slot_proofs,
            )
        }

        /// Ends a block: the header of the current state, certified by the validators.
        fn commit(&mut self, advance_ms: u64) -> (Vec<u8>, Vec<u8>) {
            self.height += 1;
            self.time += advance_ms;
            let (state_root, _, _) = self.prove(XCHAIN_ADDRESS, &[]);
            let header = Header {
                chain_id: self.id,
                height: self.height,
                parent_hash: B256::ZERO,
                timestamp_ms: self.time,
                proposer: Address::ZERO,
                transactions_root: B256::ZERO,
                receipts_root: B256::ZERO,
                state_root,
                logs_bloom: Bloom::ZERO,
                gas_limit: 1,
                gas_used: 0,
                validators_hash: trellis_light::members_hash(&self.members()),
                next_validators_hash: Some(trellis_light::members_hash(&self.members())),
            };
            let certificate =
                trellis_light::certify(self.id, self.height, header.hash(), &self.keys);
            (alloy_rlp::encode(&header), certificate)
        }

        /// Anchors `header` (of another chain) here.
        fn anchor(&mut self, header: &(Vec<u8>, Vec<u8>)) {
            LightClients::new(&mut self.lc)
                .submit(&header.0, &header.1, &[], u64::MAX)
                .expect("anchored");
        }

        /// A one-hop proof of word `slot` of the cross-chain contract at the current state
        /// (committed as `height`).
        fn proof_of(&self, slot: U256) -> Vec<u8> {
            let (_, account, mut slots) = self.prove(XCHAIN_ADDRESS, &[slot]);
            abi::Proof {
                height: self.height,
                account,
                slotProof: slots.remove(0),
                via: vec![],
            }
            .abi_encode()
        }
    }

    const ALICE: Address = Address::repeat_byte(0xa1);
    const BOB: Address = Address::repeat_byte(0xb0);

    /// Chains 1 and 2, each following the other.
    fn pair() -> (Chain, Chain) {
        let (mut a, mut b) = (Chain::new(1), Chain::new(2));
        a.follow(&b);
        b.follow(&a);
        (a, b)
    }

    fn reason<T: std::fmt::Debug>(r: Result<T>) -> String {
        match r {
            Err(CallError::Revert(reason)) => reason,
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn a_data_message_is_received_once_and_acknowledged_once() {
        let (mut a, mut b) = pair();
        let seq = a
            .run(ALICE, 0, |x, c| {
                x.send(c, 2, BOB, b"certificate of origin", 60_000)
            })
            .expect("sent");
        assert_eq!(seq, 1);
        let message = a.xc().message(2, 1).expect("read").expect("pending");
        let header = a.commit(1_000);
        b.anchor(&header);
        let proof = a.proof_of(outbox_slot(2, 1));

        // Tampered, claimed from elsewhere, or proven at a height not anchored: refused.
        let mut tampered = message.clone();
        tampered.payload = b"certificate of forgery".to_vec();
        assert!(reason(b.run(BOB, 0, |x, c| x.receive(c, &tampered, &proof))).contains("proof"));
        let mut elsewhere = message.clone();
        elsewhere.source = 3;
        assert!(reason(b.run(BOB, 0, |x, c| x.receive(c, &elsewhere, &proof))).contains("follow"));
        let mut unanchored = abi::Proof::abi_decode(&proof).expect("decode");
        unanchored.height = 7;
        assert!(reason(b.run(BOB, 0, |x, c| x.receive(
            c,
            &message,
            &unanchored.abi_encode()
        )))
        .contains("no anchored header"));
        assert!(
            reason(b.run(BOB, 0, |x, c| x.receive(c, &message, &[1, 2, 3]))).contains("malformed")
        );
        assert!(b.xc.writes.is_empty(), "refusals write nothing");

        assert!(b
            .run(BOB, 0, |x, c| x.receive(c, &message, &proof))
            .expect("received"));
        let delivered = b.xc().delivered(1, 1).expect("read").expect("delivered");
        assert_eq!(delivered.payload_hash, keccak256(b"certificate of origin"));
        assert!(reason(b.run(BOB, 0, |x, c| x.receive(c, &message, &proof))).contains("already"));

        // Back on the source: the acknowledgement's proof clears it, once.
        let header = b.commit(1_000);
        a.anchor(&header);
        let ack = b.proof_of(receipt_slot(1, 1));
        assert!(
            reason(a.run(BOB, 0, |x, c| x.acknowledge(c, 2, 1, false, &ack))).contains("proof")
        );
        a.run(BOB, 0, |x, c| x.acknowledge(c, 2, 1, true, &ack))
            .expect("acknowledged");
        assert_eq!(a.xc().outbox(2).expect("read"), (2, 0));
        assert!(
            reason(a.run(BOB, 0, |x, c| x.acknowledge(c, 2, 1, true, &ack))).contains("no pending")
        );
        assert!(reason(a.run(BOB, 0, |x, c| x.timeout(c, 2, 1, &ack))).contains("no pending"));
    }

    #[test]
    fn an_application_refusal_is_acknowledged_and_refunded_not_a_failed_call() {
        let (mut a, mut b) = pair();
        let home = value_payload(1, U256::from(30));
        // Chain 2 claims to return 30 of chain 1's value, but nothing was escrowed for it;
        // and a message for an application nobody runs.
        for (app, payload, sequence) in [(APP_VALUE, home, 1), (9, vec![], 2)] {
            let message = Message {
                source: 2,
                destination: 1,
                sequence: 0,
                sender: BOB,
                receiver: ALICE,
                app,
                payload,
                timeout_ms: 60_000,
            };
            let call = b.call(BOB, 0);
            assert_eq!(b.xc().commit(&call, message).expect("committed"), sequence);
        }
        let header = b.commit(1_000);
        a.anchor(&header);
        for (sequence, why) in [(1, "escrowed"), (2, "unknown application")] {
            let message = b.xc().message(1, sequence).expect("read").expect("pending");
            let proof = b.proof_of(outbox_slot(1, sequence));
            let success = a.run(ALICE, 0, |x, c| x.receive(c, &message, &proof));
            assert!(!success.expect("received"), "refused by the application");
            let receipt = a.xc().receipt(2, sequence).expect("read").expect("kept");
            assert!(receipt.reason.contains(why), "{}", receipt.reason);
        }
        let header = a.commit(1_000);
        b.anchor(&header);
        let ack = a.proof_of(receipt_slot(2, 1));
        let out = b
            .run(BOB, 0, |x, c| {
                x.call(
                    c,
                    &abi::acknowledgeCall {
                        destination: 1,
                        sequence: 1,
                        success: false,
                        proof: ack.into(),
                    }
                    .abi_encode(),
                )
            })
            .expect("acknowledged");
        assert!(out.payouts.is_empty());
        // The "returned" vouchers come back to their sender.
        assert_eq!(b.xc().vouchers(1, &BOB).expect("read"), U256::from(30));
        assert_eq!(b.xc().outbox(1).expect("read"), (3, 1));
    }

    #[test]
    fn a_message_times_out_only_when_proven_absent_after_its_timeout() {
        let (mut a, mut b) = pair();
        a.run(ALICE, 500, |x, c| {
            x.transfer(c, 2, BOB, c.timestamp_ms + 5_000)
        })
        .expect("sent");
        assert_eq!(a.xc().escrowed(2).expect("read"), U256::from(500));
        let message = a.xc().message(2, 1).expect("read").expect("pending");
        let header = a.commit(1_000);
        b.anchor(&header);
        let proof = a.proof_of(outbox_slot(2, 1));

        // B's header before the timeout proves absence too early.
        let early = b.commit(1_000);
        a.anchor(&early);
        let absent = b.proof_of(receipt_slot(1, 1));
        assert!(reason(a.run(ALICE, 0, |x, c| x.timeout(c, 2, 1, &absent)))
            .contains("before the timeout"));

        // Past the timeout B refuses the message, and a proof of absence refunds it once.
        let late = b.commit(10_000);
        assert!(reason(b.run(BOB, 0, |x, c| x.receive(c, &message, &proof))).contains("timed out"));
        a.anchor(&late);
        let absent = b.proof_of(receipt_slot(1, 1));
        let out = a
            .run(ALICE, 0, |x, c| {
                x.call(
                    c,
                    &abi::timeoutCall {
                        destination: 2,
                        sequence: 1,
                        proof: absent.clone().into(),
                    }
                    .abi_encode(),
                )
            })
            .expect("timed out");
        assert_eq!(out.payouts, vec![(ALICE, U256::from(500))]);
        assert_eq!(a.xc().escrowed(2).expect("read"), U256::ZERO);
        assert!(reason(a.run(ALICE, 0, |x, c| x.timeout(c, 2, 1, &absent))).contains("no pending"));
    }

    #[test]
    fn a_received_message_cannot_be_timed_out() {
        let (mut a, mut b) = pair();
        a.run(ALICE, 7, |x, c| {
            x.transfer(c, 2, BOB, c.timestamp_ms + 3_000)
        })
        .expect("sent");
        let message = a.xc().message(2, 1).expect("read").expect("pending");
        let header = a.commit(1_000);
        b.anchor(&header);
        let proof = a.proof_of(outbox_slot(2, 1));
        b.run(BOB, 0, |x, c| x.receive(c, &message, &proof))
            .expect("received");
        let late = b.commit(10_000);
        a.anchor(&late);
        let present = b.proof_of(receipt_slot(1, 1));
        assert!(reason(a.run(ALICE, 0, |x, c| x.timeout(c, 2, 1, &present))).contains("proof"));
        assert_eq!(b.xc().vouchers(1, &BOB).expect("read"), U256::from(7));
    }

    #[test]
    fn sends_are_checked_and_value_only_goes_with_transfer() {
        let (mut a, _) = pair();
        let now = a.time;
        assert!(
            reason(a.run(ALICE, 0, |x, c| x.send(c, 1, BOB, b"x", now + 1))).contains("this chain")
        );
        assert!(reason(a.run(ALICE, 0, |x, c| x.send(c, 2, BOB, b"x", now))).contains("not after"));
        let big = vec![0; MAX_PAYLOAD_BYTES + 1];
        assert!(
            reason(a.run(ALICE, 0, |x, c| x.send(c, 2, BOB, &big, now + 1))).contains("payload")
        );
        assert!(
            reason(a.run(ALICE, 0, |x, c| x.transfer(c, 2, BOB, now + 1)))
                .contains("carries value")
        );
        let send = abi::sendCall {
            destination: 2,
            receiver: BOB,
            payload: Bytes::new(),
            timeoutMs: now + 1,
        }
        .abi_encode();
        assert!(reason(a.run(ALICE, 1, |x, c| x.call(c, &send))).contains("only transfer"));
        let mut stat = a.call(ALICE, 0);
        stat.is_static = true;
        assert!(reason(a.xc().call(&stat, &send)).contains("static"));
        assert!(reason(a.run(ALICE, 0, |x, c| x.return_vouchers(
            c,
            2,
            BOB,
            U256::from(1),
            now + 1
        )))
        .contains("holds 0 vouchers"));
        let mut lonely = Chain::new(9);
        assert!(
            reason(lonely.run(ALICE, 0, |x, c| x.send(c, 2, BOB, b"x", now + 1)))
                .contains("no route")
        );
        assert!(
            reason(a.run(ALICE, 3, |x, c| x.transfer(c, 5, BOB, now + 1)))
                .contains("value goes only")
        );
        assert!(a.xc.writes.is_empty() && lonely.xc.writes.is_empty());
    }

    #[test]
    fn a_digest_payload_is_what_solidity_encodes() {
        let digest = B256::repeat_byte(0xab);
        let payload = digest_payload(crate::evidence::HashAlgorithm::Sm3, digest);
        // abi.encode(uint8(3), digest): two words.
        let mut expected = [0u8; 64];
        expected[31] = 3;
        expected[32..].copy_from_slice(digest.as_slice());
        assert_eq!(payload, expected);
    }

    #[test]
    fn governance_packets_come_only_from_the_hubs_governance() {
        // Chain 1 is 2's hub; 3 is followed by 2 but is not its hub.
        let (mut main, mut sub, mut other) = (Chain::new(1), Chain::new(2), Chain::new(3));
        main.follow(&sub);
        other.follow(&sub);
        sub.follow(&main);
        sub.follow(&other);
        LightClients::new(&mut sub.lc).set_hub(1).expect("hub");
        let freeze = crate::governance::abi::proposeFreezeCall {
            target: ALICE,
            effectiveHeight: 0,
        }
        .abi_encode();
        let deliver = |from: &mut Chain, sub: &mut Chain, seq: u64| {
            let message = from.xc().message(2, seq).expect("read").expect("pending");
            let header = from.commit(1_000);
            sub.anchor(&header);
            let proof = from.proof_of(outbox_slot(2, seq));
            sub.run(BOB, 0, |x, c| x.receive(c, &message, &proof))
                .expect("settled")
        };
        // From the hub's governance: queued for the end of the block, once.
        main.run(ALICE, 0, |x, c| {
            x.send_packet(c, 2, freeze.clone(), c.timestamp_ms + 60_000)
        })
        .expect("sent");
        assert!(deliver(&mut main, &mut sub, 1));
        assert_eq!(
            sub.xc().take_packets().expect("read"),
            vec![(1, 1, freeze.clone())]
        );
        assert!(sub.xc().take_packets().expect("read").is_empty());
        // From another chain's governance, or not from a governance contract, or carrying
        // what a packet may not: received, refused, nothing queued.
        other
            .run(ALICE, 0, |x, c| {
                x.send_packet(c, 2, freeze.clone(), c.timestamp_ms + 60_000)
            })
            .expect("sent");
        assert!(!deliver(&mut other, &mut sub, 1));
        let receipt = sub.xc().receipt(3, 1).expect("read").expect("settled");
        assert!(
            receipt.reason.contains("only from this chain's hub"),
            "{}",
            receipt.reason
        );
        let forged = Message {
            source: 1,
            destination: 2,
            sender: ALICE,
            app: APP_GOVERNANCE,
            payload: freeze.clone(),
            timeout_ms: main.time + 60_000,
            ..Message::default()
        };
        main.run(ALICE, 0, |x, c| x.commit(c, forged.clone()))
            .expect("committed by a user");
        assert!(!deliver(&mut main, &mut sub, 2));
        let receipt = sub.xc().receipt(1, 2).expect("read").expect("settled");
        assert!(
            receipt.reason.contains("governance contract"),
            "{}",
            receipt.reason
        );
        let threshold = crate::governance::abi::proposeSetThresholdCall {
            numerator: 2,
            denominator: 3,
            effectiveHeight: 0,
        }
        .abi_encode();
        main.run(ALICE, 0, |x, c| {
            x.send_packet(c, 2, threshold, c.timestamp_ms + 60_000)
        })
        .expect("sent");
        assert!(!deliver(&mut main, &mut sub, 3));
        assert!(sub.xc().take_packets().expect("read").is_empty());
    }

    #[test]
    fn anchors_below_a_reset_prove_nothing() {
        let (mut a, mut b) = pair();
        a.run(ALICE, 0, |x, c| {
            x.send(c, 2, BOB, b"old", c.timestamp_ms + 60_000)
        })
        .expect("sent");
        let message = a.xc().message(2, 1).expect("read").expect("pending");
        let header = a.commit(1_000);
        b.anchor(&header);
        let proof = a.proof_of(outbox_slot(2, 1));
        // A vote resets b's client of a above that anchor: the old record proves nothing.
        let root = Anchored {
            height: 5,
            hash: B256::repeat_byte(5),
            state_root: B256::repeat_byte(6),
            timestamp_ms: a.time + 1,
        };
        LightClients::new(&mut b.lc)
            .reset(1, root, &a.members())
            .expect("reset");
        assert!(
            reason(b.run(BOB, 0, |x, c| x.receive(c, &message, &proof))).contains("below height 5")
        );
    }

    #[test]
    fn a_sub_chain_reaches_another_through_the_main_chains_anchor() {
        // Main chain 1 follows 2 and 3; each of them follows only the main chain.
        let (mut main, mut a, mut b) = (Chain::new(1), Chain::new(2), Chain::new(3));
        main.follow(&a);
        main.follow(&b);
        for sub in [&mut a, &mut b] {
            sub.follow(&main);
            LightClients::new(&mut sub.lc).set_hub(1).expect("hub");
        }
        // Value goes only where a timeout can be proven: to chains followed directly.
        assert!(reason(a.run(ALICE, 5, |x, c| {
            x.transfer(c, 3, BOB, c.timestamp_ms + 60_000)
        }))
        .contains("value goes only"));
        a.run(ALICE, 0, |x, c| {
            x.send(c, 3, BOB, b"hello", c.timestamp_ms + 60_000)
        })
        .expect("routed through the main chain");
        let message = a.xc().message(3, 1).expect("read").expect("pending");
        let a_header = a.commit(1_000);
        let a_proof = a.proof_of(outbox_slot(3, 1));
        main.anchor(&a_header);
        let main_header = main.commit(1_000);
        b.anchor(&main_header);

        let hop = |main: &Chain, chain: u64, height: u64| {
            let record_len = kv::get(
                &mut MapSlots::over(|s| Ok(main.lc.writes.get(&s).copied().unwrap_or_default())),
                &clients::anchor_key(chain, height),
            )
            .expect("read")
            .expect("main anchored it")
            .len();
            let slots = hub_anchor_slots(chain, height, record_len);
            let with_status: Vec<U256> = slots
                .iter()
                .copied()
                .chain([clients::status_slot(chain)])
                .collect();
            let (_, account, mut proofs) = main.prove(LIGHT_CLIENTS_ADDRESS, &with_status);
            let status_proof = proofs.pop().expect("the status word's proof");
            let word = |s: &U256| main.lc.writes.get(s).copied().unwrap_or_default();
            abi::Hop {
                chainId: main.id,
                height: main.height,
                account,
                values: slots.iter().map(word).collect(),
                slotProofs: proofs,
                statusWord: word(&clients::status_slot(chain)),
                statusProof: status_proof,
            }
        };
        let mut proof = abi::Proof::abi_decode(&a_proof).expect("decode");
        proof.via = vec![hop(&main, 2, 1)];
        assert!(b
            .run(BOB, 0, |x, c| x.receive(c, &message, &proof.abi_encode()))
            .expect("received through the hub"));

        // A hub record of another height, or a forged value in it, is refused.
        let mut other = proof.clone();
        other.height = 2;
        assert!(
            reason(b.run(BOB, 0, |x, c| x.receive(c, &message, &other.abi_encode())))
                .contains("already")
        );
        let mut b2 = Chain::new(3);
        b2.follow(&main);
        b2.anchor(&main_header);
        // Only the hub vouches (b2 has none yet).
        assert!(
            reason(b2.run(BOB, 0, |x, c| x.receive(c, &message, &proof.abi_encode())))
                .contains("not this chain's hub")
        );
        LightClients::new(&mut b2.lc).set_hub(1).expect("hub");
        let mut forged = proof.clone();
        forged.via[0].values[1] ^= U256::from(1);
        assert!(
            reason(b2.run(BOB, 0, |x, c| x.receive(c, &message, &forged.abi_encode())))
                .contains("hub proof")
        );
        let mut claimed = proof.clone();
        claimed.height = 5;
        assert!(
            reason(b2.run(BOB, 0, |x, c| x.receive(c, &message, &claimed.abi_encode())))
                .contains("hub")
        );
        let mut two = proof.clone();
        two.via.push(two.via[0].clone());
        assert!(
            reason(b2.run(BOB, 0, |x, c| x.receive(c, &message, &two.abi_encode())))
                .contains("at most one hub")
        );
        // The hub vouches only for chains not followed directly.
        b2.follow(&a);
        assert!(
            reason(b2.run(BOB, 0, |x, c| x.receive(c, &message, &proof.abi_encode())))
                .contains("its own client")
        );

        // The hub's client of the source frozen: its records vouch for nothing, and an
        // older hub header (from before the freeze) is not accepted either.
        let mut b3 = Chain::new(3);
        b3.follow(&main);
        LightClients::new(&mut b3.lc).set_hub(1).expect("hub");
        b3.anchor(&main_header);
        main.lc
            .writes
            .insert(clients::status_slot(2), U256::from(2));
        let frozen_header = main.commit(HUB_WINDOW_MS + 1);
        b3.anchor(&frozen_header);
        assert!(
            reason(b3.run(BOB, 0, |x, c| x.receive(c, &message, &proof.abi_encode())))
                .contains("at most 60 s older")
        );
        let mut stale = proof.clone();
        stale.via = vec![hop(&main, 2, 1)];
        assert!(
            reason(b3.run(BOB, 0, |x, c| x.receive(c, &message, &stale.abi_encode())))
                .contains("is frozen (a fork at height 1)")
        );
        // A hop claiming the word is zero does not prove.
        let mut hidden = stale.clone();
        hidden.via[0].statusWord = U256::ZERO;
        assert!(
            reason(b3.run(BOB, 0, |x, c| x.receive(c, &message, &hidden.abi_encode())))
                .contains("hub proof")
        );
        // Reset by a vote above the record: the record proves nothing any more.
        main.lc
            .writes
            .insert(clients::status_slot(2), clients::RESET | U256::from(5));
        let reset_header = main.commit(1_000);
        b3.anchor(&reset_header);
        let mut below = proof.clone();
        below.via = vec![hop(&main, 2, 1)];
        assert!(
            reason(b3.run(BOB, 0, |x, c| x.receive(c, &message, &below.abi_encode())))
                .contains("below height 5")
        );
    }

    #[test]
    fn nothing_is_sent_to_a_chain_whose_client_froze() {
        let (mut a, mut b) = pair();
        let first = b.commit(1_000);
        a.anchor(&first);
        // Chain 2's validators sign a second header at the same height: a's client freezes.
        b.height -= 1;
        b.xc.writes.insert(U256::from(1), U256::from(1));
        let fork = b.commit(0);
        a.anchor(&fork);
        let refused = a.run(ALICE, 9, |x, c| {
            x.transfer(c, 2, BOB, c.timestamp_ms + 1_000)
        });
        assert!(reason(refused).contains("frozen"));
        let refused = a.run(ALICE, 0, |x, c| {
            x.send(c, 2, BOB, b"x", c.timestamp_ms + 1_000)
        });
        assert!(reason(refused).contains("frozen"));
        assert!(a.xc.writes.is_empty());
    }

    /// Random transfers both ways between two chains, each delivered, refused or timed out:
    /// every chain's escrow for the other equals the other's vouchers of it plus what is in
    /// flight, after every step.
    #[test]
    fn value_is_conserved_across_random_transfers() {
        for seed in 0..8u64 {
            let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
            let (mut a, mut b) = pair();
            let holders = [ALICE, BOB, Address::repeat_byte(0xc0)];
            let mut paid_out = [U256::ZERO, U256::ZERO];
            for step in 0..40 {
                let forward = rng.gen_bool(0.5);
                let (src, dst) = if forward {
                    (&mut a, &mut b)
                } else {
                    (&mut b, &mut a)
                };
                let who = holders[rng.gen_range(0..holders.len())];
                let to = holders[rng.gen_range(0..holders.len())];
                let timeout = src.time.max(dst.time) + rng.gen_range(1_500..4_000);
                // Return the destination's own value when the sender holds vouchers of it.
                let held = src.xc().vouchers(dst.id, &who).expect("read");
                let sent = if !held.is_zero() && rng.gen_bool(0.5) {
                    let amount = U256::from(rng.gen_range(1..=held.to::<u64>()));
                    src.run(who, 0, |x, c| {
                        x.return_vouchers(c, dst.id, to, amount, timeout)
                    })
                } else {
                    let value = rng.gen_range(1..1_000u64);
                    src.run(who, value, |x, c| x.transfer(c, dst.id, to, timeout))
                };
                let seq = sent.unwrap_or_else(|e| panic!("seed {seed} step {step}: {e}"));
                let message = src
                    .xc()
                    .message(dst.id, seq)
                    .expect("read")
                    .expect("pending");
                let header = src.commit(1_000);
                dst.anchor(&header);
                let proof = src.proof_of(outbox_slot(dst.id, seq));
                let delivered = rng.gen_bool(0.7);
                if delivered {
                    let call = dst.call(ALICE, 0);
                    let out = dst
                        .xc()
                        .call(
                            &call,
                            &abi::receiveMessageCall {
                                message: message.to_abi(),
                                proof: proof.into(),
                            }
                            .abi_encode(),
                        )
                        .unwrap_or_else(|e| panic!("seed {seed} step {step}: {e}"));
                    for (_, v) in out.payouts {
                        paid_out[(dst.id - 1) as usize] += v;
                    }
                } else {
                    dst.time = dst.time.max(message.timeout_ms);
                }
                let dst_header = dst.commit(1_000);
                src.anchor(&dst_header);
                let receipt = dst.proof_of(receipt_slot(src.id, seq));
                let input = if delivered {
                    let success = dst
                        .xc()
                        .receipt(src.id, seq)
                        .expect("read")
                        .expect("kept")
                        .success;
                    abi::acknowledgeCall {
                        destination: dst.id,
                        sequence: seq,
                        success,
                        proof: receipt.into(),
                    }
                    .abi_encode()
                } else {
                    abi::timeoutCall {
                        destination: dst.id,
                        sequence: seq,
                        proof: receipt.into(),
                    }
                    .abi_encode()
                };
                let out = src
                    .run(ALICE, 0, |x, c| x.call(c, &input))
                    .unwrap_or_else(|e| panic!("seed {seed} step {step}: {e}"));
                for (_, v) in out.payouts {
                    paid_out[(src.id - 1) as usize] += v;
                }
                // Nothing is in flight now: escrow = vouchers, both ways.
                let conserved = |x: &mut Chain, y: &mut Chain| {
                    let escrow = x.xc().escrowed(y.id).expect("read");
                    let supply = y.xc().voucher_supply(x.id).expect("read");
                    let held: U256 = holders
                        .iter()
                        .map(|h| y.xc().vouchers(x.id, h).expect("read"))
                        .fold(U256::ZERO, |s, v| s + v);
                    assert_eq!(escrow, supply, "seed {seed} step {step}");
                    assert_eq!(supply, held, "seed {seed} step {step}");
                };
                conserved(&mut a, &mut b);
                conserved(&mut b, &mut a);
            }
        }
    }
}
