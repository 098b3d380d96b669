//! Transaction gossip between the registered nodes of one chain.
//!
//! Each node runs a small libp2p swarm of its own beside the consensus engine's: TCP, Noise,
//! Yamux and gossipsub on one topic per chain, behind the same gate as consensus (a
//! [`PeerFilter`] over the keys governance has registered; any other key is refused right
//! after the Noise handshake, before gossipsub runs). Malachite 0.8 publishes only proposal
//! parts for the application, and a second swarm keeps the engine unpatched beyond the gate;
//! its cost is one more port per node (`p2p.gossip_listen`).
//!
//! **Format.** A message is a batch: the RLP list of the raw signed transactions (EIP-2718
//! bytes), at most [`MAX_BATCH_TXS`] or [`MAX_BATCH_BYTES`], sent [`BATCH_WINDOW`] after
//! its first transaction at the latest. Messages are identified by the SHA-256 of their
//! content, so a batch seen twice is dropped by gossipsub before it reaches the node. They
//! are not signed (gossipsub's anonymous mode): every connection is already authenticated
//! as a registered node by Noise and the gate, and every transaction carries its sender's
//! signature, which admission checks; an author signature would cost an Ed25519 signing per
//! batch and a verification per copy received (measured: 7 % of all CPU of a saturated
//! 4-validator testnet) and prove nothing more.
//!
//! **Relay.** A received batch is checked (relaying peer registered, well-formed RLP within
//! the size limit) and only then forwarded by gossipsub to the rest of the mesh: a node that
//! only its p2p port reaches still gets and relays every transaction.
//!
//! **Back-pressure.** Both directions are bounded queues. When the node cannot keep up, new
//! outgoing transactions and incoming batches are dropped and counted ([`GossipStats`]);
//! the transactions stay in the pool of the node that admitted them, which includes them
//! when it proposes.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use alloy_primitives::Bytes;
use alloy_rlp::Decodable;
use futures::StreamExt;
use libp2p::core::ConnectedPoint;
use libp2p::gossipsub::{self, IdentTopic, MessageAcceptance, MessageAuthenticity};
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{identity::Keypair, noise, tcp, yamux, Multiaddr, PeerId, Swarm, SwarmBuilder};
pub use malachitebft_network::gate::PeerFilter;
use malachitebft_network::gate::PeerGate;
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

/// Most transactions in one batch.
pub const MAX_BATCH_TXS: usize = 2_000;
/// Most bytes of transactions in one batch.
pub const MAX_BATCH_BYTES: usize = 1 << 20;
/// Largest message accepted from a peer: a full batch and its RLP headers.
pub const MAX_MESSAGE_BYTES: usize = MAX_BATCH_BYTES + 64 * 1024;
/// How long a batch waits for more transactions after its first.
pub const BATCH_WINDOW: Duration = Duration::from_millis(5);
/// Outgoing transactions waiting to be batched.
pub const OUTBOUND_CAPACITY: usize = 100_000;
/// Received batches waiting for admission.
pub const INBOUND_CAPACITY: usize = 256;
/// Peers each node forwards a batch to.
const MESH_DEGREE: usize = 3;
/// How often configured peers that are not connected are dialled again.
const REDIAL: Duration = Duration::from_secs(2);

/// Where the swarm listens and whom it dials.
#[derive(Clone, Debug)]
pub struct GossipConfig {
    pub chain_id: u64,
    pub listen: Multiaddr,
    /// Gossip addresses of other nodes of the chain; dialled and redialled while down.
    pub peers: Vec<Multiaddr>,
}

#[derive(Debug, thiserror::Error)]
pub enum GossipError {
    #[error("gossip transport: {0}")]
    Transport(String),
    #[error("gossip cannot listen on {addr}: {reason}")]
    Listen { addr: Multiaddr, reason: String },
}

/// What the gossip has done since it started.
#[derive(Debug, Default)]
pub struct GossipStats {
    pub batches_sent: AtomicU64,
    pub txs_sent: AtomicU64,
    /// Outgoing transactions dropped: the queue was full, or no peer was subscribed.
    pub txs_not_sent: AtomicU64,
    pub batches_received: AtomicU64,
    pub txs_received: AtomicU64,
    /// Received batches refused: an author or relay not registered, or not a batch.
    pub batches_refused: AtomicU64,
    /// Received batches dropped because admission was behind.
    pub batches_dropped: AtomicU64,
    /// Peers connected now (a level, not a count).
    pub peers: AtomicU64,
}

impl GossipStats {
    fn add(counter: &AtomicU64, n: usize) {
        counter.fetch_add(n as u64, Ordering::Relaxed);
    }

    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}

/// The sending side handed to the node: queue a raw transaction for the other nodes.
#[derive(Clone, Debug)]
pub struct GossipSender {
    tx: mpsc::Sender<Vec<u8>>,
    stats: Arc<GossipStats>,
}

impl GossipSender {
    /// Queues `raw` for gossip; when the queue is full the transaction is not gossiped (it
    /// stays in this node's pool) and counted.
    pub fn send(&self, raw: Vec<u8>) {
        if self.tx.try_send(raw).is_err() {
            GossipStats::add(&self.stats.txs_not_sent, 1);
        }
    }

    /// Gossip peers connected now.
    pub fn peers(&self) -> u64 {
        GossipStats::get(&self.stats.peers)
    }
}

/// A running gossip swarm.
pub struct Gossip {
    pub peer_id: PeerId,
    /// The address it listens on (the port resolved when the configuration asked for 0).
    pub listen_addr: Multiaddr,
    pub stats: Arc<GossipStats>,
    pub sender: GossipSender,
    /// Batches received from peers, for admission.
    pub inbound: mpsc::Receiver<Vec<Vec<u8>>>,
    pub task: tokio::task::JoinHandle<()>,
}

#[derive(NetworkBehaviour)]
struct Behaviour {
    // First, so that a peer it refuses never reaches gossipsub.
    gate: PeerGate,
    gossipsub: gossipsub::Behaviour,
}

/// Encodes a batch of raw transactions as one message.
pub fn encode_batch(txs: &[Bytes]) -> Vec<u8> {
    let mut out = Vec::with_capacity(txs.iter().map(|t| t.len() + 5).sum::<usize>() + 9);
    alloy_rlp::encode_list::<Bytes, Bytes>(txs, &mut out);
    out
}

/// Decodes a message into its raw transactions; `None` unless it is exactly one RLP list of
/// byte strings.
pub fn decode_batch(mut data: &[u8]) -> Option<Vec<Vec<u8>>> {
    if data.len() > MAX_MESSAGE_BYTES {
        return None;
    }
    let txs = Vec::<Bytes>::decode(&mut data).ok()?;
    if !data.is_empty() || txs.len() > MAX_BATCH_TXS {
        return None;
    }
    Some(txs.into_iter().map(Vec::from).collect())
}

/// Starts the swarm: listens, subscribes to the chain's topic and dials `config.peers`.
pub async fn start(
    keypair: Keypair,
    config: GossipConfig,
    filter: PeerFilter,
) -> Result<Gossip, GossipError> {
    let topic = IdentTopic::new(format!("trellis/{}/txs/1", config.chain_id));
    let gossipsub_config = gossipsub::ConfigBuilder::default()
        .protocol_id_prefix(format!("/trellis/{}/txs", config.chain_id))
        .validation_mode(gossipsub::ValidationMode::Anonymous)
        .validate_messages()
        .max_transmit_size(MAX_MESSAGE_BYTES)
        .message_id_fn(|m: &gossipsub::Message| {
            gossipsub::MessageId::from(Sha256::digest(&m.data).to_vec())
        })
        .heartbeat_interval(Duration::from_millis(500))
        // The author sends a batch to every peer (no extra hop on a fully connected network);
        // each node then forwards it to at most MESH_DEGREE mesh peers, so a batch costs about
        // n x MESH_DEGREE copies instead of the (n-1)^2 of gossipsub's default mesh (six) on
        // networks of up to seven nodes. Publishing to the mesh only (two hops) cost about a
        // quarter of the flat-out throughput of four validators (docs/BENCHMARKS.md,
        // 2026-12-01).
        .mesh_n(MESH_DEGREE)
        .mesh_n_low(MESH_DEGREE - 1)
        .mesh_n_high(MESH_DEGREE + 1)
        .mesh_outbound_min(1)
        .build()
        .map_err(|e| GossipError::Transport(e.to_string()))?;
    let gate_filter = filter.clone();
    let mut swarm = SwarmBuilder::with_existing_identity(keypair)
        .with_tokio()
        .with_tcp(
            tcp::Config::default().nodelay(true),
            noise::Config::new,
            yamux::Config::default,
        )
        .map_err(|e| GossipError::Transport(e.to_string()))?
        .with_behaviour(|_| {
            Ok(Behaviour {
                gate: PeerGate::new(Some(gate_filter)),
                gossipsub: gossipsub::Behaviour::new(
                    MessageAuthenticity::Anonymous,
                    gossipsub_config,
                )?,
            })
        })
        .map_err(|e| GossipError::Transport(e.to_string()))?
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(60)))
        .build();
    swarm
        .behaviour_mut()
        .gossipsub
        .subscribe(&topic)
        .map_err(|e| GossipError::Transport(e.to_string()))?;
    let listen = |reason: String| GossipError::Listen {
        addr: config.listen.clone(),
        reason,
    };
    swarm
        .listen_on(config.listen.clone())
        .map_err(|e| listen(e.to_string()))?;
    let listen_addr = loop {
        match swarm.select_next_some().await {
            SwarmEvent::NewListenAddr { address, .. } => break address,
            SwarmEvent::ListenerError { error, .. } => return Err(listen(error.to_string())),
            SwarmEvent::ListenerClosed { reason, .. } => {
                return Err(listen(format!("{reason:?}")));
            }
            _ => {}
        }
    };
    let peer_id = *swarm.local_peer_id();
    info!(%listen_addr, %peer_id, "transaction gossip listening");
    let stats = Arc::new(GossipStats::default());
    let (out_tx, out_rx) = mpsc::channel(OUTBOUND_CAPACITY);
    let (in_tx, in_rx) = mpsc::channel(INBOUND_CAPACITY);
    let worker = Worker {
        swarm,
        topic,
        filter,
        peers: config.peers,
        up: HashMap::new(),
        stats: stats.clone(),
        inbound: in_tx,
    };
    let task = tokio::spawn(worker.run(out_rx));
    Ok(Gossip {
        peer_id,
        listen_addr,
        sender: GossipSender {
            tx: out_tx,
            stats: stats.clone(),
        },
        stats,
        inbound: in_rx,
        task,
    })
}

struct Worker {
    swarm: Swarm<Behaviour>,
    topic: IdentTopic,
    filter: PeerFilter,
    peers: Vec<Multiaddr>,
    /// Configured addresses with a connection, and the peer behind each.
    up: HashMap<Multiaddr, PeerId>,
    stats: Arc<GossipStats>,
    inbound: mpsc::Sender<Vec<Vec<u8>>>,
}

impl Worker {
    async fn run(mut self, mut outbound: mpsc::Receiver<Vec<u8>>) {
        let mut batch: Vec<Bytes> = Vec::new();
        let mut batch_bytes = 0;
        let flush = tokio::time::sleep(Duration::ZERO);
        tokio::pin!(flush);
        let mut redial = tokio::time::interval(REDIAL);
        loop {
            tokio::select! {
                raw = outbound.recv() => {
                    let Some(raw) = raw else { break };
                    if batch.is_empty() {
                        flush.as_mut().reset(tokio::time::Instant::now() + BATCH_WINDOW);
                    }
                    batch_bytes += raw.len();
                    batch.push(raw.into());
                    if batch.len() >= MAX_BATCH_TXS || batch_bytes >= MAX_BATCH_BYTES {
                        self.publish(std::mem::take(&mut batch));
                        batch_bytes = 0;
                    }
                }
                () = &mut flush, if !batch.is_empty() => {
                    self.publish(std::mem::take(&mut batch));
                    batch_bytes = 0;
                }
                event = self.swarm.select_next_some() => self.on_event(event),
                _ = redial.tick() => self.redial(),
            }
        }
        debug!("transaction gossip stopped: the node closed its sender");
    }

    fn publish(&mut self, batch: Vec<Bytes>) {
        let n = batch.len();
        let data = encode_batch(&batch);
        match self
            .swarm
            .behaviour_mut()
            .gossipsub
            .publish(self.topic.clone(), data)
        {
            Ok(_) => {
                GossipStats::add(&self.stats.batches_sent, 1);
                GossipStats::add(&self.stats.txs_sent, n);
            }
            Err(gossipsub::PublishError::Duplicate) => {}
            Err(e) => {
                GossipStats::add(&self.stats.txs_not_sent, n);
                debug!(txs = n, error = %e, "a transaction batch was not gossiped");
            }
        }
    }

    fn on_event(&mut self, event: SwarmEvent<BehaviourEvent>) {
        if matches!(
            event,
            SwarmEvent::ConnectionEstablished { .. } | SwarmEvent::ConnectionClosed { .. }
        ) {
            let peers = self.swarm.connected_peers().count();
            self.stats.peers.store(peers as u64, Ordering::Relaxed);
        }
        match event {
            SwarmEvent::Behaviour(BehaviourEvent::Gossipsub(gossipsub::Event::Message {
                propagation_source,
                message_id,
                message,
            })) => {
                let registered = (self.filter)(&propagation_source);
                let txs = registered.then(|| decode_batch(&message.data)).flatten();
                let acceptance = match txs {
                    Some(txs) => {
                        GossipStats::add(&self.stats.batches_received, 1);
                        GossipStats::add(&self.stats.txs_received, txs.len());
                        if self.inbound.try_send(txs).is_err() {
                            GossipStats::add(&self.stats.batches_dropped, 1);
                        }
                        MessageAcceptance::Accept
                    }
                    None => {
                        GossipStats::add(&self.stats.batches_refused, 1);
                        warn!(peer = %propagation_source,
                            "refused a gossip message: not a transaction batch from a registered node");
                        MessageAcceptance::Reject
                    }
                };
                self.swarm
                    .behaviour_mut()
                    .gossipsub
                    .report_message_validation_result(&message_id, &propagation_source, acceptance);
            }
            SwarmEvent::ConnectionEstablished {
                peer_id,
                endpoint: ConnectedPoint::Dialer { address, .. },
                ..
            } => {
                debug!(%peer_id, %address, "gossip peer connected");
                self.up.insert(address, peer_id);
            }
            SwarmEvent::ConnectionClosed {
                peer_id,
                num_established: 0,
                ..
            } => {
                // `redial` drops it from `up` against the swarm's connected peers.
                debug!(%peer_id, "gossip peer disconnected");
            }
            SwarmEvent::OutgoingConnectionError { error, .. } => {
                debug!(%error, "gossip dial failed");
            }
            SwarmEvent::IncomingConnectionError { error, .. } => {
                debug!(%error, "gossip connection refused");
            }
            _ => {}
        }
    }

    fn redial(&mut self) {
        let connected: HashSet<PeerId> = self.swarm.connected_peers().copied().collect();
        self.up.retain(|_, p| connected.contains(p));
        for addr in &self.peers {
            if !self.up.contains_key(addr) {
                if let Err(e) = self.swarm.dial(addr.clone()) {
                    debug!(%addr, error = %e, "gossip dial not started");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_round_trips_and_anything_else_is_refused() {
        let txs: Vec<Bytes> = vec![vec![2u8; 120].into(), Bytes::new(), vec![0xf8; 3].into()];
        let data = encode_batch(&txs);
        let back = decode_batch(&data).expect("a batch");
        assert_eq!(back, txs.iter().map(|t| t.to_vec()).collect::<Vec<_>>());
        // Trailing bytes, a bare string, a truncated list, an oversized message.
        let mut trailing = data.clone();
        trailing.push(0);
        assert!(decode_batch(&trailing).is_none());
        assert!(decode_batch(&alloy_rlp::encode(Bytes::from(vec![1u8; 4]))).is_none());
        assert!(decode_batch(&data[..data.len() - 1]).is_none());
        assert!(decode_batch(&vec![0u8; MAX_MESSAGE_BYTES + 1]).is_none());
        let too_many: Vec<Bytes> = vec![Bytes::from_static(&[1]); MAX_BATCH_TXS + 1];
        assert!(decode_batch(&encode_batch(&too_many)).is_none());
    }
}
