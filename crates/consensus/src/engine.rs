//! Starting Malachite for one chain: networking, WAL, sync and the consensus actor, wired to
//! an [`Application`] through the channel interface.

use async_trait::async_trait;
use malachitebft_app_channel::app::config::{
    BootstrapProtocol, ConsensusConfig, DiscoveryConfig, P2pConfig, PubSubProtocol, Selector,
    TimeoutConfig, ValuePayload, ValueSyncConfig,
};
use malachitebft_app_channel::app::events::{RxEvent, TxEvent};
use malachitebft_app_channel::app::node::{EngineHandle, Node, NodeConfig, NodeHandle};
use malachitebft_app_channel::app::types::Keypair;
use malachitebft_signing_ed25519::{PrivateKey, PublicKey};
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use tokio::task::JoinHandle;
use tracing::Instrument;

pub use multiaddr::Multiaddr;

pub use malachitebft_app_channel::app::config::TransportProtocol;
pub use malachitebft_app_channel::app::types::core::Round;

use crate::app::{AppLoop, Application};
use crate::codec::TrellisCodec;
use crate::context::{TrellisContext, ValidatorAddress, ValidatorSet};
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

    fn value_sync(&self) -> &ValueSyncConfig {
        &self.value_sync
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
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = ids;
        n
    }

    /// Adds and then removes keys (a committed block's governance changes).
    pub fn update(
        &self,
        added: impl IntoIterator<Item = [u8; 32]>,
        removed: impl IntoIterator<Item = [u8; 32]>,
    ) {
        let peer = |k: [u8; 32]| malachitebft_network::gate::peer_id_from_ed25519(&k);
        let mut ids = self.0.write().unwrap_or_else(|e| e.into_inner());
        ids.extend(added.into_iter().filter_map(peer));
        for id in removed.into_iter().filter_map(peer) {
            ids.remove(&id);
        }
    }

    pub fn allows(&self, key: &[u8; 32]) -> bool {
        malachitebft_network::gate::peer_id_from_ed25519(key).is_some_and(|id| {
            self.0
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .contains(&id)
        })
    }
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
    pub timeouts: TimeoutConfig,
    /// Which peers may connect; `None` admits any (tests of the engine alone).
    pub allowlist: Option<PeerAllowlist>,
}

impl EngineSettings {
    fn engine_config(&self) -> EngineConfig {
        EngineConfig {
            moniker: self.moniker.clone(),
            consensus: ConsensusConfig {
                timeouts: self.timeouts,
                p2p: P2pConfig {
                    listen_addr: self.listen.clone(),
                    persistent_peers: self.peers.clone(),
                    // Discovery repairs outbound connections when they close (a peer
                    // restarts, a link drops); without it Malachite 0.5 never redials after
                    // its initial attempts and a healed partition can stay split.
                    discovery: DiscoveryConfig {
                        enabled: !self.peers.is_empty(),
                        bootstrap_protocol: BootstrapProtocol::Full,
                        selector: Selector::Random,
                        num_outbound_peers: self.peers.len(),
                        num_inbound_peers: self.peers.len().max(1) * 4,
                        ..DiscoveryConfig::default()
                    },
                    protocol: PubSubProtocol::default(),
                    pubsub_max_size: bytesize(8 * 1024 * 1024),
                    rpc_max_size: bytesize(128 * 1024 * 1024),
                },
                value_payload: ValuePayload::ProposalAndParts,
                queue_capacity: 100,
            },
            value_sync: ValueSyncConfig::default(),
        }
    }
}

fn bytesize(n: u64) -> bytesize::ByteSize {
    bytesize::ByteSize::b(n)
}

/// Adapter giving Malachite access to the node key and configuration.
#[derive(Clone)]
struct EngineNode {
    home: PathBuf,
    key: PrivateKey,
    config: EngineConfig,
    chain_id: u64,
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

    /// Stops consensus and the application loop.
    pub async fn stop(self) {
        let _ = self.engine.actor.kill_and_wait(None).await;
        self.app.abort();
        self.engine.handle.abort();
    }

    /// Resolves when the application loop ends (which only happens on failure).
    pub async fn wait(self) -> eyre::Result<()> {
        self.app.await?
    }
}

#[async_trait]
impl NodeHandle<TrellisContext> for ConsensusHandle {
    fn subscribe(&self) -> RxEvent<TrellisContext> {
        self.events.subscribe()
    }

    async fn kill(&self, _reason: Option<String>) -> eyre::Result<()> {
        self.engine.actor.kill_and_wait(None).await?;
        self.app.abort();
        self.engine.handle.abort();
        Ok(())
    }
}

#[async_trait]
impl Node for EngineNode {
    type Context = TrellisContext;
    type Config = EngineConfig;
    type Genesis = ();
    type PrivateKeyFile = PrivateKey;
    type SigningProvider = Ed25519Signer;
    type NodeHandle = ConsensusHandle;

    async fn start(&self) -> eyre::Result<ConsensusHandle> {
        Err(eyre::eyre!(
            "Trellis starts consensus through trellis_consensus::start"
        ))
    }

    async fn run(self) -> eyre::Result<()> {
        Err(eyre::eyre!(
            "Trellis starts consensus through trellis_consensus::start"
        ))
    }

    fn get_home_dir(&self) -> PathBuf {
        self.home.clone()
    }

    fn load_config(&self) -> eyre::Result<EngineConfig> {
        Ok(self.config.clone())
    }

    fn get_address(&self, pk: &PublicKey) -> ValidatorAddress {
        ValidatorAddress::from_public_key(pk)
    }

    fn get_public_key(&self, pk: &PrivateKey) -> PublicKey {
        pk.public_key()
    }

    fn get_keypair(&self, pk: PrivateKey) -> Keypair {
        Keypair::ed25519_from_bytes(pk.inner().to_bytes())
            .expect("a 32-byte Ed25519 secret is always a valid libp2p key")
    }

    fn load_private_key(&self, file: PrivateKey) -> PrivateKey {
        file
    }

    fn load_private_key_file(&self) -> eyre::Result<PrivateKey> {
        Ok(self.key.clone())
    }

    fn load_genesis(&self) -> eyre::Result<()> {
        Ok(())
    }

    fn get_signing_provider(&self, private_key: PrivateKey) -> Ed25519Signer {
        Ed25519Signer::new(private_key, self.chain_id)
    }
}

/// Starts Malachite for one chain and the loop that serves it from `app`.
pub async fn start<A: Application>(
    settings: EngineSettings,
    key: PrivateKey,
    initial_validators: ValidatorSet,
    app: Arc<A>,
) -> eyre::Result<ConsensusHandle> {
    std::fs::create_dir_all(&settings.home)?;
    if let Some(list) = settings.allowlist.clone() {
        let local = malachitebft_network::gate::peer_id_from_ed25519(key.public_key().as_bytes())
            .ok_or_else(|| eyre::eyre!("the node key is not a valid Ed25519 key"))?;
        malachitebft_network::gate::set_peer_filter(
            local,
            Arc::new(move |peer| {
                list.0
                    .read()
                    .unwrap_or_else(|e| e.into_inner())
                    .contains(peer)
            }),
        );
    }
    let ctx = TrellisContext {
        chain_id: settings.chain_id,
    };
    let node = EngineNode {
        home: settings.home.clone(),
        key: key.clone(),
        config: settings.engine_config(),
        chain_id: settings.chain_id,
    };
    let (channels, engine) = malachitebft_app_channel::start_engine(
        ctx,
        node,
        settings.engine_config(),
        TrellisCodec,
        TrellisCodec,
        None,
        initial_validators,
    )
    .await?;
    let events = channels.events.clone();
    let address = ValidatorAddress::from_public_key(&key.public_key());
    let app_loop = AppLoop::new(
        settings.chain_id,
        address,
        Ed25519Signer::new(key, settings.chain_id),
        app,
    );
    let span =
        tracing::info_span!("consensus", chain = settings.chain_id, node = %settings.moniker);
    let app = tokio::spawn(app_loop.run(channels).instrument(span));
    Ok(ConsensusHandle {
        engine,
        app,
        events,
    })
}
