//! Deterministic simulation of a Trellis network under faults.
//!
//! A scenario is drawn from one seed: how many validators, the latency, jitter, loss and
//! duplication of every link, partitions, lossy and slow periods, crashes and restarts of one
//! validator or of every honest one within a moment (the database, the consensus write-ahead
//! log and the double-sign guard's record survive, unflushed log entries do not), and at
//! most `f` byzantine validators that equivocate, send forged messages, propose invalid
//! blocks or stay silent. Clients send transfers throughout at a fixed rate. Every node runs
//! the real parts — Malachite's consensus state machine, Trellis's consensus host
//! ([`trellis_consensus::app::AppLoop`]), the chain with revm and redb — on one thread, in
//! simulated time: an event queue ordered by (time, sequence) decides what happens next, and
//! one seeded generator draws every random choice, so a seed replays exactly.
//!
//! Why drive `malachitebft-core-consensus` rather than put a simulated transport under the
//! engine: the engine is a set of actors (ractor) on tokio with wall-clock timers, a WAL
//! thread, and a sync actor that draws peers from OS entropy; none of it can be put on
//! simulated time or made to replay a seed without patching upstream. The state machine is
//! sans-IO by design: every effect (timers, signing, publishing, WAL appends, host calls) is
//! handed to the driver, and the driver here ([`node`]) mirrors the engine's handling of each
//! effect. What the harness does not exercise is the engine's actor plumbing and libp2p;
//! the real-process tests (`bin/trellis/tests/faults.rs`, `netns.rs`) cover those.
//!
//! Invariants, checked as the run goes and at its end (any failure names its seed):
//! one block per height on every node, hence one state root; no honest node leaves consensus
//! with an error, fails to build a block or is refused a signature by its double-sign guard
//! (which would have been a second message for one height, round and kind); every acknowledged transaction is in the block it
//! was acknowledged in on every node, and no transaction is included twice; after the last
//! fault ends, every honest node commits at least two heights beyond the highest one reached
//! when it ended.

pub mod net;
pub mod node;

use alloy_consensus::{Transaction, TxEnvelope, TxLegacy};
use alloy_eips::eip2718::Encodable2718;
use alloy_primitives::{keccak256, Address, TxKind, B256, U256};
use bytes::Bytes;
use malachitebft_app_channel::app::types::PeerId;
use malachitebft_core_types::{ThresholdParams, Timeout};
use malachitebft_signing_ed25519::PrivateKey;
use parking_lot::Mutex;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use tracing::debug;
use trellis_crypto::{AccountKey, RecoveryError};
use trellis_node::config::ConsensusConfig;
use trellis_node::{Chain, ChainSettings, Clock, NodeConfig};
use trellis_primitives::{
    ChainId, Genesis, GenesisAccount, GenesisGovernance, GenesisOrganization, GenesisValidator,
};
use trellis_storage::{MemoryDisk, Store};

pub use net::{LinkFault, Network, Time, Window, MS};
pub use node::Byzantine;
use node::{Later, Message, Out, SharedVerifier, SimNode, Wal};
use trellis_consensus::guard::MemorySignLog;
use trellis_consensus::ValidatorAddress;

/// One simulated second.
pub const SEC: Time = 1_000 * MS;
const CHAIN_ID: u64 = 7_357;
/// 2026-01-01T00:00:00Z: block timestamps are this plus simulated time.
const GENESIS_MS: u64 = 1_767_225_600_000;
/// Accounts the clients send from, and how many transfers each keeps in flight.
const SENDERS: u32 = 48;
const WINDOW: usize = 6;
/// Most transactions in one block: small, so that load can exceed what the chain takes.
pub const MAX_BLOCK_TXS: usize = 12;
const CLIENT_TICK: Time = 10 * MS;
const SYNC_TICK: Time = 250 * MS;
/// A client sends its unacknowledged transactions again after this long.
const RESEND_AFTER: Time = 1_500 * MS;
/// How long the run goes on after the last fault ends.
pub const SETTLE: Time = 10 * SEC;

/// A validator process stopped at `at` and started again `down_for` later.
#[derive(Clone, Debug)]
pub struct Crash {
    pub node: usize,
    pub at: Time,
    pub down_for: Time,
    pub kind: CrashKind,
}

/// How a validator process stops. Its database keeps every committed block either way (redb
/// syncs each commit).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CrashKind {
    /// Killed between two steps: its write-ahead log keeps every append.
    Kill,
    /// Killed at its next decision, after the log is flushed and before the block is
    /// committed: it must decide the same block again from its log.
    AtDecision,
    /// The machine loses power: the log keeps only what was flushed.
    PowerLoss,
}

/// A validator whose block building takes `extra` longer during `window` (a slow disk, a
/// busy machine), so that its proposals may come after the others' propose timeout.
#[derive(Clone, Debug)]
pub struct SlowBuilder {
    pub node: usize,
    pub extra: Time,
    pub window: Window,
}

/// Everything one run does, drawn from its seed.
#[derive(Clone, Debug)]
pub struct Scenario {
    pub seed: u64,
    pub validators: usize,
    pub network: Network,
    pub crashes: Vec<Crash>,
    pub slow_builders: Vec<SlowBuilder>,
    pub byzantine: Option<(usize, Byzantine)>,
    /// Transfers the clients offer per simulated second.
    pub load: u32,
    /// Faults run from 0 to at most this time.
    pub fault_span: Time,
    /// Consensus thresholds: Malachite's (more than 2/3 for a quorum) except in the test that
    /// weakens them to show the checks catch a fork.
    pub thresholds: ThresholdParams,
}

impl Scenario {
    /// The scenario of `seed`: 4 to 7 validators, every class of fault with some probability,
    /// clients offering `load` transfers a second.
    pub fn generate(seed: u64, load: u32) -> Scenario {
        let mut rng = StdRng::seed_from_u64(seed);
        let validators = *[4, 4, 4, 5, 7].get(rng.gen_range(0..5)).unwrap_or(&4);
        let fault_span = rng.gen_range(3..=8) * SEC;
        let duplicate = if rng.gen_bool(0.3) {
            rng.gen_range(0.0..0.05)
        } else {
            0.0
        };
        let jitter = rng.gen_range(0..=20) * MS;
        let mut network = Network::new(validators, &mut rng, 10 * MS..80 * MS, jitter, duplicate);
        let window = |rng: &mut StdRng, longest: Time| {
            let from = rng.gen_range(SEC / 2..fault_span);
            let to = (from + rng.gen_range(200 * MS..=longest)).min(fault_span);
            Window { from, to }
        };
        for _ in 0..rng.gen_range(0..=3) {
            let fault = match rng.gen_range(0..3) {
                0 => {
                    let size = rng.gen_range(1..validators);
                    let mut side: Vec<usize> = (0..validators).collect();
                    side.shuffle(&mut rng);
                    side.truncate(size);
                    side.sort_unstable();
                    LinkFault::Partition {
                        side,
                        window: window(&mut rng, 4 * SEC),
                    }
                }
                1 => LinkFault::Lossy {
                    loss: rng.gen_range(0.2..0.7),
                    window: window(&mut rng, 3 * SEC),
                },
                _ => LinkFault::Slow {
                    node: rng.gen_range(0..validators),
                    extra: rng.gen_range(100..=1_200) * MS,
                    window: window(&mut rng, 4 * SEC),
                },
            };
            network.faults.push(fault);
        }
        // One byzantine validator: within f for every network size drawn (f >= 1).
        let byzantine = rng.gen_bool(0.5).then(|| {
            let kind = match rng.gen_range(0..4) {
                0 => Byzantine::Equivocate,
                1 => Byzantine::Garbage,
                2 => Byzantine::BadBlocks,
                _ => Byzantine::Silent,
            };
            (rng.gen_range(0..validators), kind)
        });
        let mut crashes = Vec::new();
        for _ in 0..rng.gen_range(0..=3) {
            let node = rng.gen_range(0..validators);
            if byzantine.is_some_and(|(b, _)| b == node) {
                continue;
            }
            let at = rng.gen_range(SEC / 4..fault_span);
            let down_for = rng.gen_range(50..=3_000) * MS;
            let kind = match rng.gen_range(0..3) {
                0 => CrashKind::Kill,
                1 => CrashKind::AtDecision,
                _ => CrashKind::PowerLoss,
            };
            crashes.push(Crash {
                node,
                at,
                down_for,
                kind,
            });
        }
        let slow_builders = if rng.gen_bool(0.25) {
            let node = rng.gen_range(0..validators);
            let extra = rng.gen_range(200..=1_500) * MS;
            vec![SlowBuilder {
                node,
                extra,
                window: window(&mut rng, 4 * SEC),
            }]
        } else {
            Vec::new()
        };
        // Every honest validator restarts within one moment (a site losing power, an operator
        // restarting the fleet), so that no running process remembers the height's blocks.
        // Drawn last so that the draws above, and the seeds recorded against them, stay.
        if rng.gen_bool(0.15) {
            let at = rng.gen_range(SEC / 2..fault_span);
            for node in 0..validators {
                if byzantine.is_some_and(|(b, _)| b == node) {
                    continue;
                }
                crashes.push(Crash {
                    node,
                    at: at + rng.gen_range(0..=150) * MS,
                    down_for: rng.gen_range(50..=1_500) * MS,
                    kind: if rng.gen_bool(0.5) {
                        CrashKind::Kill
                    } else {
                        CrashKind::PowerLoss
                    },
                });
            }
        }
        Scenario {
            seed,
            validators,
            network,
            crashes,
            slow_builders,
            byzantine,
            load,
            fault_span,
            thresholds: ThresholdParams::default(),
        }
    }

    /// The same set-up with no fault at all: the baseline a faulty run is compared with.
    pub fn fault_free(seed: u64, validators: usize, load: u32) -> Scenario {
        let mut rng = StdRng::seed_from_u64(seed);
        Scenario {
            seed,
            validators,
            network: Network::new(validators, &mut rng, 10 * MS..80 * MS, 10 * MS, 0.0),
            crashes: Vec::new(),
            slow_builders: Vec::new(),
            byzantine: None,
            load,
            fault_span: 5 * SEC,
            thresholds: ThresholdParams::default(),
        }
    }

    /// When the last fault ends (the last crashed node is back).
    pub fn faults_end(&self) -> Time {
        self.crashes
            .iter()
            .map(|c| c.at + c.down_for)
            .chain(self.slow_builders.iter().map(|s| s.window.to))
            .chain([self.network.faults_end(), self.fault_span])
            .max()
            .unwrap_or(0)
    }
}

/// What a run that kept every invariant did.
#[derive(Clone, Debug)]
pub struct Report {
    pub seed: u64,
    /// Lowest committed height of the honest nodes at the end.
    pub height: u64,
    /// Transfers the clients sent (not counting sends again) and those acknowledged.
    pub offered: usize,
    pub acknowledged: usize,
    /// Events the run processed.
    pub events: u64,
    /// Simulated time the run covered.
    pub duration: Time,
    /// Hash over every commit of every node in order: equal for two runs of one seed.
    pub fingerprint: B256,
}

/// A broken invariant (or a harness fault), with what is needed to replay it.
#[derive(Debug)]
pub struct Failure {
    pub seed: u64,
    pub at: Time,
    pub reason: String,
    pub scenario: String,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "seed {}: {} (at {} ms of simulated time); replay with TRELLIS_SIM_SEED={}\nscenario: {}",
            self.seed,
            self.reason,
            self.at / MS,
            self.seed,
            self.scenario
        )
    }
}

impl std::error::Error for Failure {}

/// Runs `scenario` to its end and checks every invariant.
pub fn run(scenario: &Scenario) -> Result<Report, Failure> {
    let mut world = World::new(scenario).map_err(|reason| Failure {
        seed: scenario.seed,
        at: 0,
        reason,
        scenario: format!("{scenario:?}"),
    })?;
    world.run().map_err(|reason| Failure {
        seed: scenario.seed,
        at: world.now,
        reason,
        scenario: format!("{scenario:?}"),
    })
}

enum Event {
    Deliver {
        to: usize,
        from: usize,
        message: Message,
    },
    Timer {
        node: usize,
        epoch: u64,
        timeout: Timeout,
        generation: u64,
    },
    Later {
        node: usize,
        epoch: u64,
        later: Later,
    },
    SyncTick {
        node: usize,
        epoch: u64,
    },
    Crash {
        node: usize,
        down_for: Time,
        kind: CrashKind,
    },
    Restart {
        node: usize,
    },
    /// A client's transaction reaches a node.
    Submit {
        node: usize,
        raw: Bytes,
    },
    Client,
    FaultsEnded,
}

/// A validator's place in the world: what survives its crashes, and its running incarnation.
struct Slot {
    disk: MemoryDisk,
    wal: Wal,
    /// What the validator signed at its current height (the double-sign guard's record).
    signed: MemorySignLog,
    node: Option<SimNode>,
    epoch: u64,
    key: PrivateKey,
    byzantine: Option<Byzantine>,
    /// How long the node stays down after a crash at its next decision.
    down_for: Time,
}

/// A client account: the transfers it has in flight, by nonce.
struct Sender {
    index: u32,
    next: u64,
    sent: BTreeMap<u64, Time>,
}

struct Clients {
    senders: Vec<Sender>,
    credit: f64,
    cursor: usize,
    offered: usize,
    /// Every transfer sent: who sent it, with which nonce.
    sent: HashMap<B256, (usize, u64)>,
    /// Acknowledged transfers: the height and block they were committed in.
    acked: HashMap<B256, (u64, B256)>,
}

struct World<'a> {
    scenario: &'a Scenario,
    rng: StdRng,
    now: Time,
    clock: Arc<AtomicU64>,
    queue: BTreeMap<(Time, u64), Event>,
    seq: u64,
    slots: Vec<Slot>,
    peers: Vec<PeerId>,
    /// Validator address of each node, by index.
    addresses: Vec<ValidatorAddress>,
    genesis: Genesis,
    /// The block every height decided, as the first node to commit it saw it.
    decided: BTreeMap<u64, B256>,
    clients: Clients,
    events: u64,
    fingerprint: B256,
    /// Highest honest height when the last fault ended.
    healed_at: Option<u64>,
    /// When the last fault ends: the scenario's plan, pushed later when a crash that waits
    /// for a decision fires late and its node is down past it.
    healed_time: Time,
    verifier: SharedVerifier,
}

fn node_key(seed: u64, index: usize) -> PrivateKey {
    let mut secret = [0u8; 32];
    secret[..8].copy_from_slice(&seed.to_le_bytes());
    secret[8..16].copy_from_slice(&(index as u64).to_le_bytes());
    PrivateKey::from(keccak256(secret).0)
}

fn peer_id(key: &PrivateKey) -> Result<PeerId, String> {
    let mut secret = key.inner().to_bytes();
    let keypair = libp2p_identity::Keypair::ed25519_from_bytes(&mut secret)
        .map_err(|e| format!("peer key: {e}"))?;
    PeerId::from_bytes(&keypair.public().to_peer_id().to_bytes())
        .map_err(|e| format!("peer id: {e}"))
}

/// Signed transfers by (sender, nonce): the same in every scenario (one chain id, one genesis
/// for the accounts), so each is signed once per process.
fn transfer(sender: u32, nonce: u64) -> Bytes {
    static SIGNED: OnceLock<Mutex<HashMap<(u32, u64), Bytes>>> = OnceLock::new();
    let cache = SIGNED.get_or_init(Default::default);
    let mut cache = cache.lock();
    cache
        .entry((sender, nonce))
        .or_insert_with(|| {
            let tx = AccountKey::dev(sender).sign_tx(TxLegacy {
                chain_id: Some(CHAIN_ID),
                nonce,
                gas_price: 0,
                gas_limit: 21_000,
                to: TxKind::Call(Address::repeat_byte(0x42)),
                value: U256::from(1),
                input: Default::default(),
            });
            Bytes::from(tx.encoded_2718())
        })
        .clone()
}

/// Signature recovery, each transaction recovered once per process (the simulation sends
/// the same signed transfers in every scenario, and every node admits each of them).
pub fn recover_once(tx: &TxEnvelope) -> Result<Address, RecoveryError> {
    static SENDERS: OnceLock<Mutex<HashMap<B256, Address>>> = OnceLock::new();
    let cache = SENDERS.get_or_init(Default::default);
    let hash = *tx.tx_hash();
    if let Some(sender) = cache.lock().get(&hash) {
        return Ok(*sender);
    }
    let sender = trellis_crypto::recover_sender(tx)?;
    cache.lock().insert(hash, sender);
    Ok(sender)
}

fn genesis(keys: &[PrivateKey]) -> Genesis {
    let validators = keys
        .iter()
        .enumerate()
        .map(|(i, k)| GenesisValidator {
            name: format!("node-{i}"),
            public_key: B256::from(k.public_key().as_bytes().to_owned()),
            power: 1,
            org: format!("org{i}"),
        })
        .collect();
    let organizations = (0..keys.len())
        .map(|i| GenesisOrganization {
            id: format!("org{i}"),
            name: format!("org{i}"),
            admins: vec![AccountKey::dev(10_000 + i as u32).address()],
            member: true,
            supervisor: false,
            accounts: (0..SENDERS)
                .filter(|s| *s as usize % keys.len() == i)
                .map(|s| AccountKey::dev(s).address())
                .collect(),
        })
        .collect();
    let alloc = (0..SENDERS)
        .map(|s| {
            (
                AccountKey::dev(s).address(),
                GenesisAccount {
                    balance: U256::from(10u64).pow(U256::from(24u64)),
                    ..Default::default()
                },
            )
        })
        .collect();
    Genesis {
        chain_id: ChainId(CHAIN_ID),
        timestamp_ms: GENESIS_MS,
        gas_limit: trellis_primitives::DEFAULT_GAS_LIMIT,
        max_transaction_gas: trellis_primitives::DEFAULT_MAX_TRANSACTION_GAS,
        validators,
        governance: GenesisGovernance {
            organizations,
            nodes: Vec::new(),
            threshold: Default::default(),
            proposal_ttl_blocks: 100_000,
        },
        alloc,
        light_clients: Vec::new(),
    }
}

/// Timeouts of the simulated nodes, derived as production derives them from a config with
/// shorter base durations (simulated links are fast; long timeouts only make runs longer).
fn sim_timeouts() -> trellis_consensus::LinearTimeouts {
    trellis_node::timeouts(&ConsensusConfig {
        timeout_propose_ms: 600,
        timeout_prevote_ms: 200,
        timeout_precommit_ms: 200,
        ..Default::default()
    })
}

impl<'a> World<'a> {
    fn new(scenario: &'a Scenario) -> Result<World<'a>, String> {
        let keys: Vec<PrivateKey> = (0..scenario.validators)
            .map(|i| node_key(scenario.seed, i))
            .collect();
        let peers = keys.iter().map(peer_id).collect::<Result<Vec<_>, _>>()?;
        let addresses = keys
            .iter()
            .map(|k| ValidatorAddress::from_public_key(&k.public_key()))
            .collect();
        let genesis = genesis(&keys);
        let slots = keys
            .into_iter()
            .enumerate()
            .map(|(i, key)| Slot {
                disk: MemoryDisk::default(),
                wal: Wal::default(),
                signed: MemorySignLog::default(),
                node: None,
                epoch: 0,
                down_for: 0,
                key,
                byzantine: scenario
                    .byzantine
                    .and_then(|(b, kind)| (b == i).then_some(kind)),
            })
            .collect();
        let senders = (0..SENDERS)
            .map(|index| Sender {
                index,
                next: 0,
                sent: BTreeMap::new(),
            })
            .collect();
        Ok(World {
            scenario,
            // The scenario was drawn from the seed; the run draws from a stream of its own.
            rng: StdRng::seed_from_u64(scenario.seed ^ 0x5eed_5eed_5eed_5eed),
            now: 0,
            clock: Arc::new(AtomicU64::new(GENESIS_MS)),
            queue: BTreeMap::new(),
            seq: 0,
            slots,
            peers,
            addresses,
            genesis,
            decided: BTreeMap::new(),
            clients: Clients {
                senders,
                credit: 0.0,
                cursor: 0,
                offered: 0,
                sent: HashMap::new(),
                acked: HashMap::new(),
            },
            events: 0,
            fingerprint: B256::ZERO,
            healed_at: None,
            healed_time: 0,
            verifier: SharedVerifier::new(CHAIN_ID),
        })
    }

    fn at(&mut self, time: Time, event: Event) {
        self.seq += 1;
        self.queue.insert((time, self.seq), event);
    }

    fn is_honest(&self, node: usize) -> bool {
        self.slots[node].byzantine.is_none()
    }

    fn run(&mut self) -> Result<Report, String> {
        for node in 0..self.slots.len() {
            self.start(node)?;
        }
        for crash in &self.scenario.crashes {
            self.at(
                crash.at,
                Event::Crash {
                    node: crash.node,
                    down_for: crash.down_for,
                    kind: crash.kind,
                },
            );
        }
        self.at(0, Event::Client);
        self.healed_time = self.scenario.faults_end();
        self.at(self.healed_time, Event::FaultsEnded);
        while let Some(entry) = self.queue.first_entry() {
            let (time, _) = *entry.key();
            if time > self.healed_time + SETTLE {
                break;
            }
            let event = entry.remove();
            let _span = tracing::debug_span!("sim", ms = time / MS).entered();
            self.now = time;
            self.clock.store(GENESIS_MS + time / MS, Ordering::Relaxed);
            self.events += 1;
            self.handle(event)?;
        }
        self.now = self.healed_time + SETTLE;
        self.check_end()
    }

    /// Starts (or restarts) the node of `index` on what its disk and log hold.
    fn start(&mut self, index: usize) -> Result<(), String> {
        let clock = self.clock.clone();
        let config = NodeConfig::default();
        let store = Store::open_on(&self.slots[index].disk)
            .map_err(|e| format!("node {index}: store: {e}"))?;
        let chain = Chain::open(
            store,
            &self.genesis,
            ChainSettings {
                empty_block_interval: std::time::Duration::from_millis(100),
                max_block_txs: MAX_BLOCK_TXS,
                pool: config.pool_config(),
                clock: Clock::from_fn(move || clock.load(Ordering::Relaxed)),
                subchain_dir: None,
            },
        )
        .map_err(|e| format!("node {index}: opening the chain: {e:#}"))?;
        let slot = &mut self.slots[index];
        slot.epoch += 1;
        let mut node = SimNode::new(
            index,
            chain,
            slot.key.clone(),
            CHAIN_ID,
            sim_timeouts(),
            self.peers.clone(),
            slot.byzantine,
            self.verifier.clone(),
            self.scenario.thresholds,
            slot.signed.clone(),
        )
        .map_err(|e| format!("node {index}: {e}"))?;
        let mut out = Vec::new();
        node.boot(&mut slot.wal, &mut out);
        if let (None, Some(error)) = (slot.byzantine, &node.error) {
            return Err(format!("honest node {index} failed to start: {error}"));
        }
        let epoch = slot.epoch;
        slot.node = Some(node);
        let first_tick = self.rng.gen_range(0..SYNC_TICK);
        self.at(
            self.now + first_tick,
            Event::SyncTick { node: index, epoch },
        );
        self.route(index, out)
    }

    fn handle(&mut self, event: Event) -> Result<(), String> {
        match event {
            Event::Deliver { to, from, message } => self.with_node(to, None, |node, wal, out| {
                node.on_message(from, message, wal, out)
            }),
            Event::Timer {
                node,
                epoch,
                timeout,
                generation,
            } => self.with_node(node, Some(epoch), |n, wal, out| {
                n.on_timer(timeout, generation, wal, out)
            }),
            Event::Later { node, epoch, later } => {
                self.with_node(node, Some(epoch), |n, wal, out| n.on_later(later, wal, out))
            }
            Event::SyncTick { node, epoch } => {
                if self.slots[node].epoch != epoch || self.slots[node].node.is_none() {
                    return Ok(());
                }
                let now = self.now;
                let mut rng = StdRng::seed_from_u64(self.rng.gen());
                self.with_node(node, Some(epoch), |n, wal, out| {
                    n.sync_tick(now, &mut rng, wal, out)
                })?;
                self.at(now + SYNC_TICK, Event::SyncTick { node, epoch });
                Ok(())
            }
            Event::Crash {
                node,
                down_for,
                kind,
            } => {
                match kind {
                    CrashKind::AtDecision => {
                        if let Some(n) = self.slots[node].node.as_mut() {
                            n.crash_at_decide = true;
                            self.slots[node].down_for = down_for;
                        }
                    }
                    CrashKind::Kill | CrashKind::PowerLoss => self.stop(node, down_for, kind),
                }
                Ok(())
            }
            Event::Restart { node } => {
                debug!(node, "restarts");
                self.start(node)
            }
            Event::Submit { node, raw } => {
                let gossip = match self.slots[node].node.as_ref() {
                    Some(n) => {
                        n.chain.admit_blocking(&raw, recover_once).is_ok()
                            && n.byzantine != Some(Byzantine::Silent)
                    }
                    None => false,
                };
                if gossip {
                    self.route(node, vec![Out::Broadcast(Message::Txs(vec![raw]))])?;
                }
                Ok(())
            }
            Event::Client => {
                self.client_tick();
                self.at(self.now + CLIENT_TICK, Event::Client);
                Ok(())
            }
            Event::FaultsEnded => {
                // A stale one: a late crash moved the end of the faults.
                if self.now == self.healed_time {
                    self.healed_at = Some(self.honest_heights().max().unwrap_or(0));
                }
                Ok(())
            }
        }
    }

    /// Stops the node of `index` (if it runs) as `kind` says, and starts it `down_for` later.
    fn stop(&mut self, index: usize, down_for: Time, kind: CrashKind) {
        let slot = &mut self.slots[index];
        if slot.node.take().is_none() {
            return;
        }
        match kind {
            CrashKind::PowerLoss => slot.wal.power_loss(),
            CrashKind::Kill | CrashKind::AtDecision => slot.wal.kill(),
        }
        // What the database had committed is on disk; the process's handles are gone.
        slot.disk = slot.disk.image();
        debug!(node = index, ?kind, down_ms = down_for / MS, "crashed");
        let restart = self.now + down_for;
        self.at(restart, Event::Restart { node: index });
        if restart > self.healed_time {
            // A crash armed for the next decision fired late: the faults last until its
            // node is back, and liveness is judged from then.
            self.healed_time = restart;
            self.healed_at = None;
            self.at(restart, Event::FaultsEnded);
        }
    }

    /// Runs `f` on the live node `index` (of incarnation `epoch`, if given) and routes what
    /// it asks for.
    fn with_node(
        &mut self,
        index: usize,
        epoch: Option<u64>,
        f: impl FnOnce(&mut SimNode, &mut Wal, &mut Vec<Out>),
    ) -> Result<(), String> {
        let slot = &mut self.slots[index];
        if epoch.is_some_and(|e| e != slot.epoch) {
            return Ok(());
        }
        let Some(node) = slot.node.as_mut() else {
            return Ok(());
        };
        let _span = tracing::debug_span!("node", i = index).entered();
        let mut out = Vec::new();
        f(node, &mut slot.wal, &mut out);
        if let Some(done) = node.killed_after {
            // Killed mid-step: what it sent before counts, nothing after happened.
            out.truncate(done);
            let down_for = slot.down_for;
            self.route(index, out)?;
            self.stop(index, down_for, CrashKind::AtDecision);
            return Ok(());
        }
        if slot.byzantine.is_none() {
            if let Some(error) = &node.error {
                return Err(format!("honest node {index} left consensus: {error}"));
            }
            if node.chain.build_failures() > 0 {
                return Err(format!("honest node {index} failed to build a block"));
            }
        }
        self.route(index, out)
    }

    fn send(&mut self, from: usize, to: usize, message: Message) {
        let times = self
            .scenario
            .network
            .deliveries(&mut self.rng, self.now, from, to);
        for time in times {
            self.at(
                time,
                Event::Deliver {
                    to,
                    from,
                    message: message.clone(),
                },
            );
        }
    }

    fn route(&mut self, from: usize, out: Vec<Out>) -> Result<(), String> {
        let epoch = self.slots[from].epoch;
        let n = self.slots.len();
        for o in out {
            match o {
                Out::Broadcast(message) => {
                    for to in (0..n).filter(|to| *to != from) {
                        self.send(from, to, message.clone());
                    }
                }
                Out::Send(to, message) => self.send(from, to, message),
                Out::Split(pair) => {
                    let (first, second) = *pair;
                    for to in (0..n).filter(|to| *to != from) {
                        let message = if to % 2 == 0 { &first } else { &second };
                        self.send(from, to, message.clone());
                    }
                }
                Out::Timer {
                    timeout,
                    after,
                    generation,
                } => self.at(
                    self.now + after,
                    Event::Timer {
                        node: from,
                        epoch,
                        timeout,
                        generation,
                    },
                ),
                Out::Later { after, later } => {
                    let slow: Time = self
                        .scenario
                        .slow_builders
                        .iter()
                        .filter(|s| s.node == from && s.window.holds(self.now))
                        .map(|s| s.extra)
                        .sum();
                    self.at(
                        self.now + after + slow,
                        Event::Later {
                            node: from,
                            epoch,
                            later,
                        },
                    )
                }
                Out::Committed(height) => self.committed(from, height)?,
                Out::Refused {
                    proposer,
                    height,
                    synced,
                } => {
                    let by = self.addresses.iter().position(|a| *a == proposer);
                    if self.is_honest(from) && synced {
                        return Err(format!(
                            "honest node {from} found invalid the block decided at height {height} (it came with a commit certificate)"
                        ));
                    }
                    if let Some(by) = by.filter(|b| self.is_honest(from) && self.is_honest(*b)) {
                        return Err(format!(
                            "honest node {from} found invalid the block honest node {by} proposed at height {height}"
                        ));
                    }
                }
            }
        }
        Ok(())
    }

    /// Node `index` committed `height`: it must be the block every other node committed, and
    /// the transfers in it are acknowledged.
    fn committed(&mut self, index: usize, height: u64) -> Result<(), String> {
        let Some(node) = self.slots[index].node.as_ref() else {
            return Ok(());
        };
        let block = node
            .chain
            .store()
            .view()
            .ok()
            .and_then(|v| v.block(trellis_primitives::Height(height)).ok().flatten())
            .ok_or_else(|| {
                format!("node {index} reported height {height} committed but has no block")
            })?;
        let hash = block.hash();
        debug!(node = index, height, %hash, txs = block.transactions.len(), "committed");
        let mut fp = self.fingerprint.to_vec();
        fp.extend_from_slice(&(index as u64).to_le_bytes());
        fp.extend_from_slice(&height.to_le_bytes());
        fp.extend_from_slice(hash.as_slice());
        self.fingerprint = keccak256(fp);
        match self.decided.get(&height) {
            Some(first) if *first != hash => {
                return Err(format!(
                    "two blocks at height {height}: {first} and {hash} (node {index})"
                ))
            }
            Some(_) => return Ok(()),
            None => {
                self.decided.insert(height, hash);
            }
        }
        if !self.is_honest(index) {
            return Ok(());
        }
        for tx in &block.transactions {
            let tx_hash = *tx.tx_hash();
            let Some(&(sender, nonce)) = self.clients.sent.get(&tx_hash) else {
                continue;
            };
            if nonce != tx.nonce() {
                return Err(format!("transfer {tx_hash} committed with another nonce"));
            }
            self.clients.acked.insert(tx_hash, (height, hash));
            let s = &mut self.clients.senders[sender];
            s.sent.retain(|n, _| *n > nonce);
        }
        Ok(())
    }

    fn honest_heights(&self) -> impl Iterator<Item = u64> + '_ {
        self.slots
            .iter()
            .filter(|s| s.byzantine.is_none())
            .filter_map(|s| s.node.as_ref().map(|n| n.chain.height()))
    }

    /// Clients send what their rate allows, and send again what was not acknowledged in time.
    fn client_tick(&mut self) {
        let rate = self.scenario.load as f64 * CLIENT_TICK as f64 / SEC as f64;
        self.clients.credit = (self.clients.credit + rate).min(rate * 10.0);
        let live: Vec<usize> = (0..self.slots.len())
            .filter(|i| self.slots[*i].node.is_some())
            .collect();
        if live.is_empty() {
            return;
        }
        let count = self.clients.senders.len();
        let mut tried = 0;
        while self.clients.credit >= 1.0 && tried < count {
            let s = self.clients.cursor;
            self.clients.cursor = (s + 1) % count;
            tried += 1;
            let sender = &mut self.clients.senders[s];
            if sender.sent.len() >= WINDOW {
                continue;
            }
            tried = 0;
            let nonce = sender.next;
            sender.next += 1;
            sender.sent.insert(nonce, self.now);
            let raw = transfer(sender.index, nonce);
            self.clients.sent.insert(keccak256(&raw), (s, nonce));
            self.clients.credit -= 1.0;
            self.clients.offered += 1;
            self.submit(&live, raw);
        }
        // Sends again, to another node, what waited too long (its node may have crashed
        // with it, or a partition kept it from every proposer).
        let now = self.now;
        let mut again = Vec::new();
        for sender in &mut self.clients.senders {
            if sender
                .sent
                .values()
                .next()
                .is_some_and(|sent| now.saturating_sub(*sent) > RESEND_AFTER)
            {
                for (nonce, sent) in sender.sent.iter_mut() {
                    *sent = now;
                    again.push(transfer(sender.index, *nonce));
                }
            }
        }
        for raw in again {
            self.submit(&live, raw);
        }
    }

    fn submit(&mut self, live: &[usize], raw: Bytes) {
        let node = live[self.rng.gen_range(0..live.len())];
        let delay = self.rng.gen_range(MS..5 * MS);
        self.at(self.now + delay, Event::Submit { node, raw });
    }

    /// The checks at the end of a run.
    fn check_end(&mut self) -> Result<Report, String> {
        let healed = self.healed_at.unwrap_or(0);
        let target = healed + 2;
        let mut lowest = u64::MAX;
        for (i, slot) in self.slots.iter().enumerate() {
            if slot.byzantine.is_some() {
                continue;
            }
            let Some(node) = slot.node.as_ref() else {
                return Err(format!("honest node {i} is not running at the end"));
            };
            let height = node.chain.height();
            if height < target {
                return Err(format!(
                    "liveness: node {i} is at height {height}, short of {target} ({} s after the faults ended at height {healed})",
                    SETTLE / SEC
                ));
            }
            lowest = lowest.min(height);
            // Each node's own chain: the decided block at every height, no transfer twice,
            // every acknowledged one where it was acknowledged.
            let view = node
                .chain
                .store()
                .view()
                .map_err(|e| format!("node {i}: {e}"))?;
            let mut seen: HashMap<B256, u64> = HashMap::new();
            for h in 1..=height {
                let block = view
                    .block(trellis_primitives::Height(h))
                    .map_err(|e| format!("node {i}: {e}"))?
                    .ok_or_else(|| format!("node {i} lacks block {h} below its tip"))?;
                if self.decided.get(&h) != Some(&block.hash()) {
                    return Err(format!("node {i} holds another block at height {h}"));
                }
                for tx in block.tx_hashes() {
                    if let Some(first) = seen.insert(tx, h) {
                        return Err(format!(
                            "transaction {tx} included twice, at heights {first} and {h}"
                        ));
                    }
                }
            }
            for (tx, (h, _)) in &self.clients.acked {
                if *h <= height && seen.get(tx) != Some(h) {
                    return Err(format!(
                        "node {i}: acknowledged transfer {tx} is not at height {h}"
                    ));
                }
            }
        }
        Ok(Report {
            seed: self.scenario.seed,
            height: lowest,
            offered: self.clients.offered,
            acknowledged: self.clients.acked.len(),
            events: self.events,
            duration: self.now,
            fingerprint: self.fingerprint,
        })
    }
}
