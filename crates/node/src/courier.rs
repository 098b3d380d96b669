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
//! It keeps no state that matters: what it last sent only keeps it from sending the same
//! anchor again while the first is in the pool. Anchors are verified on chain, so a courier
//! needs no trust; several backbone nodes sending the same anchor cost the chain only the
//! cheap no-op of a known header.

use alloy_consensus::TxLegacy;
use alloy_eips::eip2718::Encodable2718;
use alloy_primitives::{TxKind, U256};
use alloy_sol_types::SolCall;
use std::collections::HashMap;
use std::time::{Duration, Instant};
use tracing::{debug, info, warn};
use trellis_crypto::AccountKey;
use trellis_execution::system_slots;
use trellis_primitives::Height;
use trellis_rpc::Backend as _;
use trellis_system::clients::abi;
use trellis_system::{LightClients, LIGHT_CLIENTS_ADDRESS};

use crate::chain::Chain;

/// How often the courier looks.
const TICK: Duration = Duration::from_millis(200);
/// How long an anchor sent stays "in flight" before the courier sends it again.
const IN_FLIGHT: Duration = Duration::from_secs(30);
/// How long the courier waits after a chain refused its transaction.
const BACKOFF: Duration = Duration::from_secs(30);
/// Most heights one tick reads while looking for a set change.
const SCAN: u64 = 1_000;

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
}

/// One anchor to send: to `dest`, the header of `height` of chain `source`.
struct Send {
    dest: usize,
    source: u64,
    height: u64,
    input: Vec<u8>,
    gas: u64,
    /// The account's nonce in `dest`'s state when planned (the pool adds its own).
    state_nonce: u64,
}

/// Looks at `chains` every [`TICK`] until `closing`: `chains` answers the chains hosted now.
pub async fn run(
    courier: Courier,
    chains: impl Fn() -> Option<Vec<Chain>>,
    mut closing: tokio::sync::watch::Receiver<bool>,
) {
    info!(account = %courier.account.address(), "courier started");
    let mut pairs: HashMap<(u64, u64), Pair> = HashMap::new();
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
            let sends = plan(&hosted, &mut pairs, heartbeat, account);
            (hosted, pairs, sends)
        })
        .await;
        let (hosted, returned, sends) = match planned {
            Ok(p) => p,
            Err(e) => {
                warn!(error = %e, "courier: planning failed");
                return;
            }
        };
        pairs = returned;
        for send in sends {
            let dest = &hosted[send.dest];
            let key = (dest.chain_id(), send.source);
            let outcome = submit(
                dest,
                &courier.account,
                send.input,
                send.gas,
                send.state_nonce,
            )
            .await;
            let pair = pairs.entry(key).or_default();
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
                }
            }
        }
    }
}

/// The anchors due now (blocking reads).
fn plan(
    chains: &[Chain],
    pairs: &mut HashMap<(u64, u64), Pair>,
    heartbeat: Duration,
    account: alloy_primitives::Address,
) -> Vec<Send> {
    let now = Instant::now();
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
                Ok(_) => continue,
                Err(e) => {
                    warn!(chain = to, follows = from, error = %e, "courier: cannot read the client");
                    continue;
                }
            };
            let pair = pairs.entry((to, from)).or_default();
            let tip = source.height();
            let anchored = client.latest.height;
            if tip <= anchored || pair.quiet_until.is_some_and(|t| now < t) {
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
            let state_nonce = match view.account(&account) {
                Ok(a) => a.map_or(0, |a| a.nonce),
                Err(e) => {
                    warn!(chain = to, error = %e, "courier: cannot read its account");
                    continue;
                }
            };
            match anchor_call(source, height) {
                Ok(Some((input, gas))) => sends.push(Send {
                    dest: d,
                    source: from,
                    height,
                    input,
                    gas: gas.min(dest.max_transaction_gas()),
                    state_nonce,
                }),
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
        to: TxKind::Call(LIGHT_CLIENTS_ADDRESS),
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
