//! Starting Malachite for one chain: networking, WAL, sync and the consensus actor, wired to
//! an [`Application`] through the channel interface.

use malachitebft_app_channel::app::config::NodeConfig;
use malachitebft_app_channel::app::config::{
    BootstrapProtocol, ConsensusConfig, DiscoveryConfig, P2pConfig, ProtocolNames, PubSubProtocol,
    Selector, ValuePayload, ValueSyncConfig,
};
use malachitebft_app_channel::app::events::{RxEvent, TxEvent};
use malachitebft_app_channel::app::types::Keypair;
use malachitebft_app_channel::{
    ConsensusContext, EngineHandle, NetworkContext, NetworkIdentity, RequestContext, Signer,
    SyncContext, WalContext,
};
use malachitebft_codec::Codec;
use malachitebft_core_types::LinearTimeouts;
use malachitebft_signing_ed25519::PrivateKey;
use parking_lot::RwLock;
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;
use tracing::Instrument;

pub use multiaddr::Multiaddr;

pub use malachitebft_app_channel::app::config::TransportProtocol;
pub use malachitebft_app_channel::app::types::core::Round;

use crate::app::{AppLoop, Application};
use crate::codec::TrellisCodec;
use crate::context::{TrellisContext, ValidatorAddress};
use crate::guard::{FileSignLog, SignGuard};
use crate::signing::Ed25519Signer;

/// Malachite's view of the node configuration.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct EngineConfig {
    pub moniker: String,
    pub consensus: ConsensusConfig,
    pub value_sync: ValueSyncConfig,
}

impl NodeConfig for EngineConfig {
    fn moniker(&self) -> &str {
        &self.moniker
    }

    fn consensus(&self) -> &ConsensusConfig {
        &self.consensus
    }

    fn consensus_mut(&mut self) -> &mut ConsensusConfig {
        &mut self.consensus
    }

    fn value_sync(&self) -> &ValueSyncConfig {
        &self.value_sync
    }

    fn value_sync_mut(&mut self) -> &mut ValueSyncConfig {
        &mut self.value_sync
    }
}

/// Node keys allowed to connect to this node's consensus network. The node keeps it equal to
/// the nodes registered in governance; connections from other keys are refused during the
/// libp2p handshake, before any gossip, sync or discovery traffic.
#[derive(Clone, Debug, Default)]
pub struct PeerAllowlist(Arc<RwLock<HashSet<malachitebft_network::behaviour::PeerId>>>);

impl PeerAllowlist {
    /// Replaces the allowed keys (Ed25519 public keys); returns how many are allowed.
    pub fn replace(&self, keys: impl IntoIterator<Item = [u8; 32]>) -> usize {
        let ids: HashSet<_> = keys
            .into_iter()
            .filter_map(|k| malachitebft_network::gate::peer_id_from_ed25519(&k))
            .collect();
        let n = ids.len();
        *self.0.write() = ids;
        n
    }

    /// Adds and then removes keys (a committed block's governance changes).
    pub fn update(
        &self,
        added: impl IntoIterator<Item = [u8; 32]>,
        removed: impl IntoIterator<Item = [u8; 32]>,
    ) {
        let peer = |k: [u8; 32]| malachitebft_network::gate::peer_id_from_ed25519(&k);
        let mut ids = self.0.write();
        ids.extend(added.into_iter().filter_map(peer));
        for id in removed.into_iter().filter_map(peer) {
            ids.remove(&id);
        }
    }

    fn allows_peer(&self, peer: &malachitebft_network::behaviour::PeerId) -> bool {
        self.0.read().contains(peer)
    }

    /// The allowlist as a network gate's filter (the consensus network's, and the node's
    /// transaction gossip): it follows every later change.
    pub fn filter(&self) -> malachitebft_network::gate::PeerFilter {
        let list = self.clone();
        Arc::new(move |peer| list.allows_peer(peer))
    }

    pub fn allows(&self, key: &[u8; 32]) -> bool {
        malachitebft_network::gate::peer_id_from_ed25519(key)
            .is_some_and(|id| self.0.read().contains(&id))
    }
}

/// The node key as a libp2p identity: one key signs votes and authenticates the node on
/// every p2p network it joins.
pub fn libp2p_keypair(key: &PrivateKey) -> eyre::Result<Keypair> {
    Keypair::ed25519_from_bytes(key.inner().to_bytes())
        .map_err(|e| eyre::eyre!("the node key is not a valid libp2p key: {e}"))
}

/// What a node needs to start consensus for one chain.
#[derive(Clone, Debug)]
pub struct EngineSettings {
    pub moniker: String,
    /// Directory for the consensus write-ahead log.
    pub home: PathBuf,
    pub chain_id: u64,
    pub listen: Multiaddr,
    pub peers: Vec<Multiaddr>,
    pub timeouts: LinearTimeouts,
    /// Which peers may connect; `None` admits any (tests of the engine alone).
    pub allowlist: Option<PeerAllowlist>,
}

/// Largest sync response: one block at the block size limit with its certificate.
const MAX_SYNC_RESPONSE: u64 = trellis_primitives::MAX_BLOCK_BYTES as u64 + 8 * 1024 * 1024;

impl EngineSettings {
    fn engine_config(&self) -> EngineConfig {
        // The chain id is in every protocol name: nodes of different chains (or of the
        // Malachite 0.5 wire format) never talk.
        let protocol = |name: &str| format!("/trellis/{}/{name}/2", self.chain_id);
        EngineConfig {
            moniker: self.moniker.clone(),
            consensus: ConsensusConfig {
                p2p: P2pConfig {
                    listen_addr: self.listen.clone(),
                    persistent_peers: self.peers.clone(),
                    // Malachite redials persistent peers itself; discovery lets a node that
                    // knows one peer find the others. Which peers may connect at all is the
                    // gate's business (`PeerAllowlist`), decided in the handshake.
                    discovery: DiscoveryConfig {
                        enabled: !self.peers.is_empty(),
                        bootstrap_protocol: BootstrapProtocol::Full,
                        selector: Selector::Random,
                        num_outbound_peers: self.peers.len(),
                        num_inbound_peers: self.peers.len().max(1) * 4,
                        // Loopback testnets put every node on one address.
                        max_connections_per_ip: 64,
                        ip_throttle_duration: Duration::from_secs(1),
                        ..DiscoveryConfig::default()
                    },
                    protocol: PubSubProtocol::default(),
                    pubsub_max_size: bytesize(8 * 1024 * 1024),
                    rpc_max_size: bytesize(MAX_SYNC_RESPONSE + 16 * 1024 * 1024),
                    protocol_names: ProtocolNames {
                        consensus: protocol("consensus"),
                        discovery_kad: protocol("kad"),
                        discovery_regres: protocol("discovery"),
                        sync: protocol("sync"),
                        validator_proof: protocol("validator-proof"),
                    },
                    ..P2pConfig::default()
                },
                value_payload: ValuePayload::ProposalAndParts,
                queue_capacity: 100,
                ..ConsensusConfig::default()
            },
            value_sync: ValueSyncConfig {
                max_response_size: bytesize(MAX_SYNC_RESPONSE),
                request_timeout: Duration::from_secs(30),
                ..ValueSyncConfig::default()
            },
        }
    }
}

fn bytesize(n: u64) -> bytesize::ByteSize {
    bytesize::ByteSize::b(n)
}

/// A running consensus engine.
pub struct ConsensusHandle {
    engine: EngineHandle,
    app: JoinHandle<eyre::Result<()>>,
    events: TxEvent<TrellisContext>,
}

impl ConsensusHandle {
    pub fn subscribe(&self) -> RxEvent<TrellisContext> {
        self.events.subscribe()
    }

    /// Stops consensus and the application loop, and returns once both have ended (and
    /// dropped the application).
    pub async fn stop(self) {
        let _ = self.engine.actor.kill_and_wait(None).await;
        self.app.abort();
        self.engine.handle.abort();
        let _ = self.app.await;
        let _ = self.engine.handle.await;
    }

    /// Resolves when the application loop ends (which only happens on failure).
    pub async fn wait(self) -> eyre::Result<()> {
        self.app.await?
    }
}

/// Starts Malachite for one chain and the loop that serves it from `app`.
pub async fn start<A: Application>(
    settings: EngineSettings,
    key: PrivateKey,
    app: Arc<A>,
) -> eyre::Result<ConsensusHandle> {
    std::fs::create_dir_all(settings.home.join("wal"))?;
    let ctx = TrellisContext {
        chain_id: settings.chain_id,
    };
    // What this validator signed, beside the consensus log: checked before every signature.
    let guard = SignGuard::open(FileSignLog::new(settings.home.join("wal").join("signed")))
        .map_err(|e| eyre::eyre!("{e}"))?;
    let signer = Ed25519Signer::new(key.clone(), settings.chain_id).with_guard(Arc::new(guard));
    let address = ValidatorAddress::from_public_key(&key.public_key());
    let keypair = libp2p_keypair(&key)?;
    // Every node may become a validator by a vote, so each announces its proof (ADR-006).
    let proof = signer
        .sign_validator_proof(
            key.public_key().as_bytes().to_vec(),
            keypair.public().to_peer_id().to_bytes(),
        )
        .await
        .map_err(|e| eyre::eyre!("signing the validator proof: {e}"))?;
    let mut identity = NetworkIdentity::new_validator(
        settings.moniker.clone(),
        keypair,
        address.to_string(),
        TrellisCodec.encode(&proof)?,
    );
    if let Some(list) = &settings.allowlist {
        identity = identity.with_peer_filter(list.filter());
    }
    let (channels, engine) = malachitebft_app_channel::start_engine(
        ctx,
        settings.engine_config(),
        WalContext::new(
            settings.home.join("wal").join("consensus.wal"),
            TrellisCodec,
        ),
        NetworkContext::new(identity, TrellisCodec),
        ConsensusContext::new_validator(
            address,
            Box::new(signer.verifier()),
            Box::new(signer.clone()),
        ),
        SyncContext::new(TrellisCodec),
        RequestContext::new(100),
    )
    .await?;
    let events = channels.events.clone();
    let app_loop = AppLoop::new(settings.chain_id, address, signer, settings.timeouts, app);
    let span =
        tracing::info_span!("consensus", chain = settings.chain_id, node = %settings.moniker);
    let app = tokio::spawn(app_loop.run(channels).instrument(span));
    Ok(ConsensusHandle {
        engine,
        app,
        events,
    })
}
