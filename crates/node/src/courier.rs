//! The courier: a node that hosts two chains (a backbone node) carries each chain's headers
//! to the light client the other keeps of it (`ITrellisLightClients`), as transactions signed
//! by the node's anchoring account.
//!
//! For each pair of hosted chains where one follows the other, every tick it compares the
//! client's newest anchor with the followed chain's tip and submits:
//! - at once, the first new block that changes the followed chain's validator set (with the
//!   set it names): a client can only follow set changes in order, one at a time;
//! - otherwise the tip, once `heartbeat` has passed since its last anchor of that chain.
//!
//! It also relays cross-chain messages (`ITrellisCrossChain`) between the pair: a message
//! pending in one chain's outbox and not yet received by the other is received there, and a
//! message the other received (or could no longer receive: its time passed the timeout) is
//! acknowledged (or timed out) at its source. Each goes with a proof from one snapshot of the
//! proving chain, after an anchor of exactly that snapshot's height when the client lacks it.
//! Between two chains where neither follows the other (two sub-chains), it relays through the
//! destination's hub when it hosts all three: a two-hop proof ([`plan_through_hub`]).
//!
//! It keeps no state that matters: what it last sent only keeps it from sending the same
//! anchor or relay again while the first is in the pool. Anchors and proofs are verified on
//! chain, so a courier needs no trust; several backbone nodes sending the same anchor cost the
//! chain only the cheap no-op of a known header, and a message already received is refused.

use alloy_consensus::TxLegacy;
use alloy_eips::eip2718::Encodable2718;
use alloy_primitives::{Address, TxKind, U256};
use alloy_sol_types::SolCall;
use std::collections::HashMap;
use std::time::{Duration, Instant};
use tracing::{debug, info, warn};
use trellis_crypto::AccountKey;
use trellis_execution::system_slots;
use trellis_primitives::Height;
use trellis_rpc::Backend as _;
use trellis_system::clients::abi;
use trellis_system::xchain::{self, CrossChain};
use trellis_system::{LightClients, LIGHT_CLIENTS_ADDRESS, XCHAIN_ADDRESS};

use crate::chain::Chain;

/// How often the courier looks.
const TICK: Duration = Duration::from_millis(200);
/// How long an anchor sent stays "in flight" before the courier sends it again.
const IN_FLIGHT: Duration = Duration::from_secs(30);
/// How long the courier waits after a chain refused its transaction.
const BACKOFF: Duration = Duration::from_secs(30);
/// Most heights one tick reads while looking for a set change.
const SCAN: u64 = 1_000;
/// How long a relayed message stays "in flight" before the courier relays it again.
const RELAY_IN_FLIGHT: Duration = Duration::from_secs(10);
/// The longest a relay still due waits before it is sent again.
const RELAY_MAX_WAIT: Duration = Duration::from_secs(600);
/// Most messages one tick relays each way between two chains.
const RELAYS: u64 = 64;

/// What the courier signs with and how often it anchors.
pub struct Courier {
    pub account: AccountKey,
    pub heartbeat: Duration,
}

/// What the courier remembers of one (following chain, followed chain) pair.
#[derive(Default)]
struct Pair {
    /// When it last sent an anchor, and of which height.
    sent: Option<(Instant, u64)>,
    /// An anchor sent that never advanced the client was reported (its height).
    reported: Option<u64>,
    /// Heights up to here were checked for set changes.
    scanned: u64,
    /// Do not send before then (the chain refused the last one).
    quiet_until: Option<Instant>,
    /// Do not plan relays before then (planning failed); anchors go on.
    relays_quiet_until: Option<Instant>,
}

/// What the courier remembers between ticks.
#[derive(Default)]
struct Memory {
    pairs: HashMap<(u64, u64), Pair>,
    /// Relays sent: (executing chain, counterparty, sequence, action) → when last, and how
    /// many times. A relay still due after [`RELAY_IN_FLIGHT`] is sent again, waiting twice as
    /// long each time (up to [`RELAY_MAX_WAIT`]): one that reverts on chain (a frozen contract,
    /// say) is not resent every few seconds.
    relays: HashMap<RelayKey, (Instant, u32)>,
    /// Relays to a chain from one it does not follow, by (that chain, source), proven and
    /// waiting for the hub to anchor the source's height they are proven at.
    held: HashMap<(u64, u64), Held>,
}

/// Relays proven at `height` of their source, waiting for the hub's anchor of that height
/// (see [`plan_through_hub`]).
struct Held {
    height: u64,
    since: Instant,
    relays: Vec<(Relay, xchain::abi::Proof)>,
}

type RelayKey = (u64, u64, u64, &'static str);

/// How long a relay waits after its `attempts`-th sending before it is sent again.
fn relay_wait(attempts: u32) -> Duration {
    RELAY_IN_FLIGHT
        .saturating_mul(1 << attempts.saturating_sub(1).min(6))
        .min(RELAY_MAX_WAIT)
}

/// One transaction to send to `dest`: an anchor of the header of `height` of chain `source`,
/// or a relay proven against it.
struct Send {
    dest: usize,
    source: u64,
    /// The height of `source` anchored, or a relay is proven at.
    height: u64,
    to: Address,
    input: Vec<u8>,
    gas: u64,
    /// The account's nonce in `dest`'s state when planned (the pool adds its own).
    state_nonce: u64,
    /// `None`: an anchor; else the relay's action and sequence number.
    relay: Option<(&'static str, u64)>,
    /// The hub a relay is proven through (`None`: proven against `source`'s own anchor).
    via: Option<u64>,
}

impl Send {
    /// The anchor of block `height` of chain `source` to the light clients of `dest` (the
    /// `d`-th hosted chain), with at most the gas `dest` allows a transaction.
    fn anchor(
        d: usize,
        dest: &Chain,
        source: u64,
        height: u64,
        input: Vec<u8>,
        gas: u64,
        state_nonce: u64,
    ) -> Send {
        Send {
            dest: d,
            source,
            height,
            to: LIGHT_CLIENTS_ADDRESS,
            input,
            gas: gas.min(dest.max_transaction_gas()),
            state_nonce,
            relay: None,
            via: None,
        }
    }

    /// `relay` to `dest` (the `d`-th hosted chain) with `proof` of `source`'s state (through
    /// hub `via`), recorded as one more attempt in `sent`.
    #[allow(clippy::too_many_arguments)]
    fn relay(
        d: usize,
        dest: &Chain,
        source: u64,
        via: Option<u64>,
        relay: Relay,
        proof: &xchain::abi::Proof,
        state_nonce: u64,
        (sent, now): (&mut HashMap<RelayKey, (Instant, u32)>, Instant),
    ) -> Send {
        let sequence = relay.sequence();
        // The one-hop part is within RELAY_GAS; the hop's nodes come on top.
        let hop_nodes = xchain::proof_nodes(proof)
            .saturating_sub(proof.account.nodes.len() + proof.slotProof.len());
        let (action, input) = relay.call(source, xchain::encode_proof(proof));
        let key = (dest.chain_id(), source, sequence, action);
        let attempts = sent.get(&key).map_or(0, |(_, n)| *n);
        sent.insert(key, (now, attempts + 1));
        let gas = RELAY_GAS + xchain::PROOF_NODE_GAS * hop_nodes as u64 + 16 * input.len() as u64;
        Send {
            dest: d,
            source,
            height: proof.height,
            to: XCHAIN_ADDRESS,
            gas: gas.min(dest.max_transaction_gas()),
            input,
            state_nonce,
            relay: Some((action, sequence)),
            via,
        }
    }
}

/// Looks at `chains` every [`TICK`] until `closing`: `chains` answers the chains hosted now.
pub async fn run(
    courier: Courier,
    chains: impl Fn() -> Option<Vec<Chain>>,
    mut closing: tokio::sync::watch::Receiver<bool>,
) {
    info!(account = %courier.account.address(), "courier started");
    let mut memory = Memory::default();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(TICK) => {}
            _ = closing.changed() => return,
        }
        if *closing.borrow() {
            return;
        }
        let Some(hosted) = chains() else { return };
        if hosted.len() < 2 {
            continue;
        }
        let heartbeat = courier.heartbeat;
        let account = courier.account.address();
        let planned = tokio::task::spawn_blocking(move || {
            let sends = plan(&hosted, &mut memory, heartbeat, account);
            (hosted, memory, sends)
        })
        .await;
        let (hosted, returned, sends) = match planned {
            Ok(p) => p,
            Err(e) => {
                warn!(error = %e, "courier: planning failed");
                return;
            }
        };
        memory = returned;
        // A pair whose anchor was refused sends none of the relays proven against it.
        let mut refused: Vec<(u64, u64)> = Vec::new();
        for send in sends {
            let dest = &hosted[send.dest];
            let key = (dest.chain_id(), send.source);
            let proven_by = (key.0, send.via.unwrap_or(send.source));
            if let (Some((action, sequence)), true) = (send.relay, refused.contains(&proven_by)) {
                // Never sent: it does not count as an attempt.
                memory.relays.remove(&(key.0, key.1, sequence, action));
                continue;
            }
            let outcome = submit(
                dest,
                &courier.account,
                send.to,
                send.input,
                send.gas,
                send.state_nonce,
            )
            .await;
            if let Some((action, sequence)) = send.relay {
                match outcome {
                    Ok(hash) => {
                        debug!(chain = key.0, counterparty = key.1, sequence, action, %hash, "relayed")
                    }
                    Err(e) => warn!(
                        chain = key.0,
                        counterparty = key.1,
                        sequence,
                        action,
                        error = %e,
                        "courier: the chain refused a relay; trying again later (waiting longer \
                         each time, up to {}s)",
                        RELAY_MAX_WAIT.as_secs()
                    ),
                }
                continue;
            }
            let pair = memory.pairs.entry(key).or_default();
            match outcome {
                Ok(hash) => {
                    debug!(chain = key.0, follows = key.1, height = send.height, %hash, "anchor sent");
                    pair.sent = Some((Instant::now(), send.height));
                }
                Err(e) => {
                    warn!(
                        chain = key.0,
                        follows = key.1,
                        height = send.height,
                        error = %e,
                        "courier: the chain refused the anchor; trying again in {}s \
                         (is [anchoring]'s account registered there?)",
                        BACKOFF.as_secs()
                    );
                    pair.quiet_until = Some(Instant::now() + BACKOFF);
                    refused.push(key);
                }
            }
        }
    }
}

/// The anchors due now (blocking reads).
fn plan(chains: &[Chain], memory: &mut Memory, heartbeat: Duration, account: Address) -> Vec<Send> {
    let now = Instant::now();
    memory
        .relays
        .retain(|_, (at, _)| now.duration_since(*at) < 2 * RELAY_MAX_WAIT);
    memory
        .held
        .retain(|_, held| now.duration_since(held.since) < IN_FLIGHT);
    let mut sends = Vec::new();
    for (d, dest) in chains.iter().enumerate() {
        let view = match dest.store().view() {
            Ok(v) => v,
            Err(e) => {
                warn!(chain = dest.chain_id(), error = %e, "courier: cannot read the chain");
                continue;
            }
        };
        for source in chains {
            let (to, from) = (dest.chain_id(), source.chain_id());
            if to == from {
                continue;
            }
            let mut slots = system_slots(&view, LIGHT_CLIENTS_ADDRESS);
            let client = match LightClients::new(&mut slots).client(from) {
                Ok(Some(c)) if !c.frozen => c,
                Ok(Some(_)) => continue,
                // Not followed: perhaps through the hub.
                Ok(None) => {
                    let pair = memory.pairs.entry((to, from)).or_default();
                    if pair.relays_quiet_until.is_some_and(|t| now < t) {
                        continue;
                    }
                    match plan_through_hub(chains, d, &view, source, memory, account, now) {
                        Ok(planned) => sends.extend(planned),
                        Err(e) => {
                            warn!(chain = to, counterparty = from, error = %e, "courier: cannot plan relays through the hub");
                            memory
                                .pairs
                                .entry((to, from))
                                .or_default()
                                .relays_quiet_until = Some(now + BACKOFF);
                        }
                    }
                    continue;
                }
                Err(e) => {
                    warn!(chain = to, follows = from, error = %e, "courier: cannot read the client");
                    continue;
                }
            };
            let Memory { pairs, relays, .. } = &mut *memory;
            let pair = pairs.entry((to, from)).or_default();
            let tip = source.height();
            let anchored = client.latest.height;
            if pair.quiet_until.is_some_and(|t| now < t) {
                continue;
            }
            let state_nonce = match account_nonce(&view, account) {
                Ok(n) => n,
                Err(e) => {
                    warn!(chain = to, error = %e, "courier: cannot read its account");
                    continue;
                }
            };
            // Messages first: they anchor the height they are proven at themselves.
            let planned = match pair.relays_quiet_until.is_some_and(|t| now < t) {
                true => Ok(Vec::new()),
                false => plan_relays(d, dest, &view, source, pair, anchored, relays, state_nonce),
            };
            match planned {
                Ok(planned) if !planned.is_empty() => {
                    if let Some(first) = planned.first().filter(|s| s.relay.is_none()) {
                        pair.sent = Some((now, first.height));
                    }
                    sends.extend(planned);
                    continue;
                }
                Ok(_) => {}
                // Anchoring goes on (a set change must not wait on a relay's trouble).
                Err(e) => {
                    warn!(chain = to, counterparty = from, error = %e, "courier: cannot plan relays");
                    pair.relays_quiet_until = Some(now + BACKOFF);
                }
            }
            if tip <= anchored {
                continue;
            }
            if let Some((at, height)) = pair.sent {
                if height > anchored && now.duration_since(at) < IN_FLIGHT {
                    continue;
                }
                // Included but refused, or never included: say so once, then try again.
                if height > anchored && pair.reported != Some(height) {
                    pair.reported = Some(height);
                    warn!(
                        chain = to,
                        follows = from,
                        height,
                        "courier: an anchor sent {}s ago has not advanced the client; sending \
                         again (its transaction may have run out of gas or been refused: see \
                         its receipt)",
                        IN_FLIGHT.as_secs()
                    );
                }
            }
            let height = match first_set_change(source, pair, anchored, tip) {
                Some(h) => h,
                None if pair
                    .sent
                    .is_none_or(|(at, _)| now.duration_since(at) >= heartbeat) =>
                {
                    // Only as far as the scan got: a set change above it must come first.
                    if pair.scanned <= anchored {
                        continue;
                    }
                    pair.scanned.min(tip)
                }
                None => continue,
            };
            match anchor_call(source, height) {
                Ok(Some((input, gas))) => {
                    sends.push(Send::anchor(d, dest, from, height, input, gas, state_nonce))
                }
                Ok(None) => {}
                Err(e) => {
                    warn!(chain = to, follows = from, height, error = %e, "courier: no anchor");
                    pair.quiet_until = Some(now + BACKOFF);
                }
            }
        }
    }
    sends
}

/// The relays due on `dest` proven from `source`'s state (messages `source` sent that `dest`
/// has not received; `dest`'s messages that `source` received or can no longer receive), each
/// with a proof at `source`'s tip, led by an anchor of that tip when `dest` lacks it. Nothing
/// while a set change of `source` waits to be anchored (it must go first).
#[allow(clippy::too_many_arguments)]
fn plan_relays(
    d: usize,
    dest: &Chain,
    dest_view: &trellis_storage::StateView,
    source: &Chain,
    pair: &mut Pair,
    anchored: u64,
    relays: &mut HashMap<RelayKey, (Instant, u32)>,
    state_nonce: u64,
) -> Result<Vec<Send>, String> {
    let (to, from) = (dest.chain_id(), source.chain_id());
    let source_view = source.store().view().map_err(|e| e.to_string())?;
    let now = Instant::now();
    let Some((height, due)) = due_relays(dest_view, &source_view, to, from, relays, now)? else {
        return Ok(Vec::new());
    };
    if set_change_first(source, pair, anchored, height) {
        return Ok(Vec::new());
    }
    let mut sends = Vec::new();
    let mut dest_lc = system_slots(dest_view, LIGHT_CLIENTS_ADDRESS);
    let known = LightClients::new(&mut dest_lc)
        .anchor_at(from, height)
        .map_err(|e| e.to_string())?
        .is_some();
    if !known {
        let Some((input, gas)) = anchor_call(source, height)? else {
            return Ok(Vec::new());
        };
        sends.push(Send::anchor(d, dest, from, height, input, gas, state_nonce));
    }
    // Every proof first: a relay counts as sent only once the whole batch is built.
    let built = prove_relays(&source_view, to, due)?;
    for (relay, proof) in built {
        sends.push(Send::relay(
            d,
            dest,
            from,
            None,
            relay,
            &proof,
            state_nonce,
            (relays, now),
        ));
    }
    Ok(sends)
}

/// The relays due on `dest` from `from` that were not sent lately, and the height of
/// `source_view` they are to be proven at; `None` when nothing is due.
fn due_relays(
    dest_view: &trellis_storage::StateView,
    source_view: &trellis_storage::StateView,
    to: u64,
    from: u64,
    relays: &HashMap<RelayKey, (Instant, u32)>,
    now: Instant,
) -> Result<Option<(u64, Vec<Relay>)>, String> {
    let err = |e: trellis_system::SlotError| e.to_string();
    let Some(height) = source_view.tip().map_err(|e| e.to_string())?.map(|h| h.0) else {
        return Ok(None);
    };
    let (source_time, dest_time) = (tip_time(source_view)?, tip_time(dest_view)?);
    let (mut source_xc, mut source_lc) = (
        system_slots(source_view, XCHAIN_ADDRESS),
        system_slots(source_view, LIGHT_CLIENTS_ADDRESS),
    );
    let (mut dest_xc, mut dest_lc) = (
        system_slots(dest_view, XCHAIN_ADDRESS),
        system_slots(dest_view, LIGHT_CLIENTS_ADDRESS),
    );
    let mut at_source = CrossChain::new(&mut source_xc, &mut source_lc);
    let mut at_dest = CrossChain::new(&mut dest_xc, &mut dest_lc);
    let fresh = |seq: u64, action: &'static str| {
        relays
            .get(&(to, from, seq, action))
            .is_none_or(|(at, attempts)| now.duration_since(*at) >= relay_wait(*attempts))
    };
    let mut due: Vec<Relay> = Vec::new();
    // Messages from `source` to `dest` that `dest` has not received and still can.
    for seq in at_source.pending(to, 0, RELAYS).map_err(err)? {
        if !fresh(seq, "receive") || at_dest.receipt(from, seq).map_err(err)?.is_some() {
            continue;
        }
        match at_source.message(to, seq).map_err(err)? {
            Some(message) if dest_time < message.timeout_ms => due.push(Relay::Receive(message)),
            _ => {}
        }
    }
    // Messages from `dest` to `source`: received there (acknowledge), or past their timeout
    // by `source`'s time without a receipt (time out).
    for seq in at_dest.pending(from, 0, RELAYS).map_err(err)? {
        if let Some(receipt) = at_source.receipt(to, seq).map_err(err)? {
            if fresh(seq, "acknowledge") {
                due.push(Relay::Acknowledge(seq, receipt.success));
            }
        } else if let Some(message) = at_dest.message(from, seq).map_err(err)? {
            if source_time >= message.timeout_ms && fresh(seq, "timeout") {
                due.push(Relay::Timeout(seq));
            }
        }
    }
    Ok((!due.is_empty()).then_some((height, due)))
}

/// Whether a set change of `source` in `(anchored, height]` must be anchored (by the anchor
/// logic) before anything proven at `height` is sent: a client follows set changes in order.
fn set_change_first(source: &Chain, pair: &mut Pair, anchored: u64, height: u64) -> bool {
    height > anchored
        && (first_set_change(source, pair, anchored, height).is_some() || pair.scanned < height)
}

/// The proof of each relay's word in `source_view` (of the chain relays to `to` are proven
/// from), at its tip.
fn prove_relays(
    source_view: &trellis_storage::StateView,
    to: u64,
    due: Vec<Relay>,
) -> Result<Vec<(Relay, xchain::abi::Proof)>, String> {
    due.into_iter()
        .map(|relay| {
            let slot = match &relay {
                Relay::Receive(m) => xchain::outbox_slot(to, m.sequence),
                Relay::Acknowledge(seq, _) | Relay::Timeout(seq) => xchain::receipt_slot(to, *seq),
            };
            let proof =
                trellis_rpc::xchain::word_proof(source_view, slot).map_err(|e| e.to_string())?;
            Ok((relay, proof))
        })
        .collect()
}

/// The relays due on `dest` from `source`, a chain `dest` does not follow but its hub does:
/// proven through the hub's anchor of `source` (a two-hop proof), when this host runs the hub.
///
/// Two steps, a tick or more apart. First the proofs are built at `source`'s tip and held,
/// and that height is anchored on the hub when it lacks it. Once the hub's state holds that
/// anchor, the hop (its record, proven at the hub's tip) is added to each proof, the hub's tip
/// is anchored on `dest` when it lacks it, and the relays are sent. Proofs held longer than
/// [`IN_FLIGHT`] without the hub anchoring their height are dropped and planned again. Nothing
/// is planned while either chain refuses this courier's anchors.
fn plan_through_hub(
    chains: &[Chain],
    d: usize,
    dest_view: &trellis_storage::StateView,
    source: &Chain,
    memory: &mut Memory,
    account: Address,
    now: Instant,
) -> Result<Vec<Send>, String> {
    let err = |e: trellis_system::SlotError| e.to_string();
    let dest = &chains[d];
    let (to, from) = (dest.chain_id(), source.chain_id());
    let mut dest_lc = system_slots(dest_view, LIGHT_CLIENTS_ADDRESS);
    let mut clients = LightClients::new(&mut dest_lc);
    let Some(hub_id) = clients.hub().map_err(err)?.filter(|h| *h != from) else {
        return Ok(Vec::new());
    };
    let (Some(h), Some(dest_of_hub)) = (
        chains.iter().position(|c| c.chain_id() == hub_id),
        clients
            .client(hub_id)
            .map_err(|e| e.to_string())?
            .filter(|c| !c.frozen),
    ) else {
        return Ok(Vec::new());
    };
    let hub = &chains[h];
    let hub_view = hub.store().view().map_err(|e| e.to_string())?;
    let mut hub_lc = system_slots(&hub_view, LIGHT_CLIENTS_ADDRESS);
    let Some(hub_of_source) = LightClients::new(&mut hub_lc)
        .client(from)
        .map_err(|e| e.to_string())?
        .filter(|c| !c.frozen)
    else {
        return Ok(Vec::new());
    };

    // Nothing while `dest` or the hub refuses this courier's anchors (see `run`): each round
    // would cost the hub another anchor of the source.
    let quiet = |pairs: &HashMap<(u64, u64), Pair>, key| {
        pairs
            .get(&key)
            .and_then(|p: &Pair| p.quiet_until)
            .is_some_and(|t| now < t)
    };
    if quiet(&memory.pairs, (to, hub_id)) || quiet(&memory.pairs, (hub_id, from)) {
        return Ok(Vec::new());
    }

    // The held proofs stay held until they are sent (or expire: see `plan`).
    if let Some(height) = memory.held.get(&(to, from)).map(|h| h.height) {
        let hop = trellis_rpc::xchain::hub_hop(&hub_view, hub_id, from, height)
            .map_err(|e| e.to_string())?;
        let Some(hop) = hop else {
            return Ok(Vec::new());
        };
        // A set change of the hub not yet anchored on `dest` goes first.
        let pair = memory.pairs.entry((to, hub_id)).or_default();
        if set_change_first(hub, pair, dest_of_hub.latest.height, hop.height) {
            return Ok(Vec::new());
        }
        let state_nonce = account_nonce(dest_view, account)?;
        let mut sends = Vec::new();
        if LightClients::new(&mut dest_lc)
            .anchor_at(hub_id, hop.height)
            .map_err(err)?
            .is_none()
        {
            let Some((input, gas)) = anchor_call(hub, hop.height)? else {
                return Ok(Vec::new());
            };
            sends.push(Send::anchor(
                d,
                dest,
                hub_id,
                hop.height,
                input,
                gas,
                state_nonce,
            ));
        }
        let Some(held) = memory.held.remove(&(to, from)) else {
            return Ok(Vec::new());
        };
        for (relay, mut proof) in held.relays {
            proof.via = vec![hop.clone()];
            sends.push(Send::relay(
                d,
                dest,
                from,
                Some(hub_id),
                relay,
                &proof,
                state_nonce,
                (&mut memory.relays, now),
            ));
        }
        return Ok(sends);
    }

    let source_view = source.store().view().map_err(|e| e.to_string())?;
    let Some((height, due)) = due_relays(dest_view, &source_view, to, from, &memory.relays, now)?
    else {
        return Ok(Vec::new());
    };
    // A set change of `source` not yet anchored on the hub goes first.
    let pair = memory.pairs.entry((hub_id, from)).or_default();
    if set_change_first(source, pair, hub_of_source.latest.height, height) {
        return Ok(Vec::new());
    }
    let proven = prove_relays(&source_view, to, due)?;
    let mut sends = Vec::new();
    if LightClients::new(&mut hub_lc)
        .anchor_at(from, height)
        .map_err(err)?
        .is_none()
    {
        let Some((input, gas)) = anchor_call(source, height)? else {
            return Ok(Vec::new());
        };
        let state_nonce = account_nonce(&hub_view, account)?;
        sends.push(Send::anchor(h, hub, from, height, input, gas, state_nonce));
    }
    memory.held.insert(
        (to, from),
        Held {
            height,
            since: now,
            relays: proven,
        },
    );
    Ok(sends)
}

/// The courier account's nonce in `view`'s state.
fn account_nonce(view: &trellis_storage::StateView, account: Address) -> Result<u64, String> {
    Ok(view
        .account(&account)
        .map_err(|e| e.to_string())?
        .map_or(0, |a| a.nonce))
}

/// Gas for a relay before its calldata: the contract's base, a proof of up to about 20 trie
/// nodes (3,000 each), the receipt, delivery or voucher records it writes and its event.
const RELAY_GAS: u64 = 400_000;

/// One relay due on a chain.
enum Relay {
    Receive(xchain::Message),
    Acknowledge(u64, bool),
    Timeout(u64),
}

impl Relay {
    fn sequence(&self) -> u64 {
        match self {
            Relay::Receive(m) => m.sequence,
            Relay::Acknowledge(seq, _) | Relay::Timeout(seq) => *seq,
        }
    }

    /// The call carrying `proof` of `counterparty`'s state, and its name for logs.
    fn call(self, counterparty: u64, proof: Vec<u8>) -> (&'static str, Vec<u8>) {
        use xchain::abi;
        match self {
            Relay::Receive(message) => (
                "receive",
                abi::receiveMessageCall {
                    message: message.to_abi(),
                    proof: proof.into(),
                }
                .abi_encode(),
            ),
            Relay::Acknowledge(sequence, success) => (
                "acknowledge",
                abi::acknowledgeCall {
                    destination: counterparty,
                    sequence,
                    success,
                    proof: proof.into(),
                }
                .abi_encode(),
            ),
            Relay::Timeout(sequence) => (
                "timeout",
                abi::timeoutCall {
                    destination: counterparty,
                    sequence,
                    proof: proof.into(),
                }
                .abi_encode(),
            ),
        }
    }
}

/// The time of `view`'s tip block.
fn tip_time(view: &trellis_storage::StateView) -> Result<u64, String> {
    let tip = view.tip().map_err(|e| e.to_string())?.unwrap_or_default();
    Ok(view
        .block(tip)
        .map_err(|e| e.to_string())?
        .map_or(0, |b| b.header.timestamp_ms))
}

/// The first height in `(anchored, tip]` whose header changes `source`'s validator set.
fn first_set_change(source: &Chain, pair: &mut Pair, anchored: u64, tip: u64) -> Option<u64> {
    let from = pair.scanned.max(anchored) + 1;
    let to = tip.min(from.saturating_add(SCAN - 1));
    let view = source.store().view().ok()?;
    for height in from..=to {
        let Ok(Some(block)) = view.block(Height(height)) else {
            return None;
        };
        let h = &block.header;
        pair.scanned = height;
        if h.next_validators_hash
            .is_some_and(|n| n != h.validators_hash)
        {
            // Scanned again next time until it is anchored.
            pair.scanned = height - 1;
            return Some(height);
        }
    }
    None
}

/// The `submitAnchor` call for block `height` of `source`, and the gas to give it.
fn anchor_call(source: &Chain, height: u64) -> Result<Option<(Vec<u8>, u64)>, String> {
    let Some(anchor) = trellis_rpc::anchor_data(source, height).map_err(|e| e.to_string())? else {
        return Ok(None);
    };
    let next = anchor.next_validators.unwrap_or_default();
    let signatures = trellis_light::decode_certificate(&anchor.certificate)
        .map_err(|e| e.to_string())?
        .signatures
        .len() as u64;
    // The set that decided the header is the one the client trusts.
    let trusted = source
        .validators_at(height)
        .map_or_else(|| source.validators().len(), |set| set.len()) as u64;
    let keys = trusted.max(signatures) + next.len() as u64;
    let call = abi::submitAnchorCall {
        header: anchor.header,
        certificate: anchor.certificate,
        nextKeys: next.iter().map(|m| m.public_key).collect(),
        nextPowers: next.iter().map(|m| m.power).collect(),
    };
    let input = call.abi_encode();
    // The contract's price (20,000 + 25,000 a signature + 5,000 a key parsed), the client
    // record it rewrites (about 40 bytes, i.e. under 10,000 gas, per key), the calldata
    // (16 a byte), and room for the per-height record, the event and the call itself.
    let gas = 200_000 + 25_000 * signatures + 15_000 * keys + 16 * input.len() as u64;
    Ok(Some((input, gas)))
}

/// Signs and admits one anchor transaction on `dest`.
async fn submit(
    dest: &Chain,
    account: &AccountKey,
    to: Address,
    input: Vec<u8>,
    gas: u64,
    state_nonce: u64,
) -> Result<alloy_primitives::B256, String> {
    let address = account.address();
    let tx = account.sign_tx(TxLegacy {
        chain_id: Some(dest.chain_id()),
        nonce: dest.pending_nonce(address, state_nonce),
        gas_price: 0,
        gas_limit: gas,
        to: TxKind::Call(to),
        value: U256::ZERO,
        input: input.into(),
    });
    dest.admit(tx.encoded_2718())
        .await
        .map_err(|e| e.to_string())
}

/// The account in the keystore `path`, opened with the password in `password_file` (its
/// first line).
pub fn open_keystore(
    path: &std::path::Path,
    password_file: &std::path::Path,
) -> Result<AccountKey, String> {
    let password = std::fs::read_to_string(password_file)
        .map_err(|e| format!("{}: {e}", password_file.display()))?;
    let password = password.lines().next().unwrap_or_default();
    trellis_crypto::keystore::decrypt(path, password).map_err(|e| e.to_string())
}
