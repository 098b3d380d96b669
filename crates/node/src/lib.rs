//! A Trellis node: composes storage, the chain, Malachite consensus, the JSON-RPC server and
//! transaction gossip (`trellis-gossip`) for each chain it hosts, from one [`NodeConfig`].
//!
//! [`start`] starts one chain instance; [`ChainHost`] starts every chain a config names (the
//! top level's and each `[[chains]]`) side by side in one process. Instances share nothing
//! but the process and the node key: each has its own store and consensus log under
//! `data_dir/chain-<id>/`, its own engine, pool, RPC port, p2p ports and peer gate (filled
//! from its own governance), and its own metrics.

pub mod chain;
pub mod config;
mod courier;
mod error;
mod recovery;

pub use chain::{genesis_block, genesis_validators, Chain, ChainError, ChainSettings, Clock};
pub use config::{ChainConfig, ConfigError, LogFormat, NodeConfig};
pub use error::NodeError;

use jsonrpsee::server::ServerHandle;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;
use tracing::info;
use trellis_consensus::{ConsensusHandle, EngineSettings, LinearTimeouts};
use trellis_crypto::NodeKey;
use trellis_primitives::Genesis;
use trellis_rpc::RpcLimits;
use trellis_storage::Store;

/// A started node. Dropping it does not stop it; call [`RunningNode::stop`].
pub struct RunningNode {
    pub chain: Chain,
    pub rpc_addr: SocketAddr,
    /// Where `/metrics` is served, when the config asks for it.
    pub metrics_addr: Option<SocketAddr>,
    /// Its RPC server's whole HTTP service, for `/chains/{id}` on the other chains' ports.
    dispatch: trellis_rpc::chains::Dispatch,
    /// Its engine, RPC server and tasks.
    parts: Starting,
}

/// Consensus timeouts derived from the configured base durations (the growth per round and
/// the rebroadcast interval follow from them).
pub fn timeouts(c: &config::ConsensusConfig) -> LinearTimeouts {
    let propose = Duration::from_millis(c.timeout_propose_ms);
    let prevote = Duration::from_millis(c.timeout_prevote_ms);
    let precommit = Duration::from_millis(c.timeout_precommit_ms);
    LinearTimeouts {
        propose,
        propose_delta: propose / 6,
        prevote,
        prevote_delta: prevote / 2,
        precommit,
        precommit_delta: precommit / 2,
        rebroadcast: propose + prevote + precommit,
        ..LinearTimeouts::default()
    }
}

/// What a host shows of one running chain.
#[derive(Clone)]
pub struct HostedNode {
    pub chain: Chain,
    pub rpc_addr: SocketAddr,
    /// Where `/metrics` is served, when the config asks for it.
    pub metrics_addr: Option<SocketAddr>,
}

impl HostedNode {
    fn of(node: &RunningNode) -> HostedNode {
        HostedNode {
            chain: node.chain.clone(),
            rpc_addr: node.rpc_addr,
            metrics_addr: node.metrics_addr,
        }
    }
}

/// The chains one process hosts, by chain id. Each chain's `admin_chains` and
/// `admin_stopChain` act on it (through a weak handle: a chain's server does not keep the
/// host alive).
pub struct ChainHost {
    shared: Arc<Hosted>,
}

struct Hosted {
    chains: parking_lot::Mutex<BTreeMap<u64, RunningNode>>,
    /// Chains an operator asked to stop, stopping in the background.
    stopping: parking_lot::Mutex<Vec<JoinHandle<()>>>,
    /// Sub-chains the follower does not start again until the process restarts: an
    /// operator stopped them, or they failed to start.
    held: parking_lot::Mutex<std::collections::BTreeSet<u64>>,
    /// Tells the sub-chain follower and the courier to end (the host is stopping).
    closing: tokio::sync::watch::Sender<bool>,
    /// The sub-chain follower and the courier, when they run.
    background: parking_lot::Mutex<Vec<JoinHandle<()>>>,
}

impl Hosted {
    fn take(&self, chain_id: u64) -> Option<RunningNode> {
        self.chains.lock().remove(&chain_id)
    }

    /// Takes a chain an operator stops, and holds it (in one step, so that the sub-chain
    /// follower never sees it neither running nor held).
    fn take_held(&self, chain_id: u64) -> Option<RunningNode> {
        let mut chains = self.chains.lock();
        let node = chains.remove(&chain_id)?;
        self.held.lock().insert(chain_id);
        Some(node)
    }
}

/// [`trellis_rpc::HostControl`] over a host, for the admin methods.
struct Control(std::sync::Weak<Hosted>);

impl trellis_rpc::HostControl for Control {
    fn chains(&self) -> Vec<trellis_rpc::api::HostedChain> {
        let Some(host) = self.0.upgrade() else {
            return Vec::new();
        };
        let chains = host.chains.lock();
        chains
            .values()
            .map(|node| trellis_rpc::api::HostedChain {
                chain_id: node.chain.chain_id(),
                height: node.chain.height(),
                rpc: node.rpc_addr.to_string(),
                metrics: node.metrics_addr.map(|a| a.to_string()),
            })
            .collect()
    }

    fn dispatch(&self, chain_id: u64) -> Option<trellis_rpc::chains::Dispatch> {
        let host = self.0.upgrade()?;
        let chains = host.chains.lock();
        chains.get(&chain_id).map(|node| node.dispatch.clone())
    }

    fn stop_chain(&self, chain_id: u64) -> bool {
        let Some(host) = self.0.upgrade() else {
            return false;
        };
        // Held from taking the chain to recording its stop, so that ChainHost::stop, which
        // takes what is left and then waits for what is stopping, misses neither.
        let mut stopping = host.stopping.lock();
        let Some(node) = host.take_held(chain_id) else {
            return false;
        };
        // Stopped off the caller's request: it may be the chain whose port was called.
        let task = tokio::spawn(async move {
            node.stop().await;
            info!(chain_id, "chain stopped");
        });
        stopping.retain(|t| !t.is_finished());
        stopping.push(task);
        true
    }
}

impl ChainHost {
    /// Starts every chain `config` names, the top level's first. Two entries of one chain id
    /// are refused before anything starts; if a chain fails to start, those already started
    /// are stopped and the error names the chain's genesis file.
    pub async fn start(config: NodeConfig) -> Result<ChainHost, NodeError> {
        config
            .check_chains()
            .map_err(|e| NodeError::config("chains", e.to_string()))?;
        let hosted = config.hosted_chains();
        let subchains = config.subchains();
        // Every chain's id, the top level's first: sub-chains by their configured id.
        let mut named = Vec::new();
        for one in &hosted {
            named.push((Genesis::load(&one.genesis)?.chain_id.0, one.genesis.clone()));
        }
        named.extend(subchains.iter().map(|(id, c)| (*id, c.genesis.clone())));
        let main_id = named.first().map(|(id, _)| *id).unwrap_or_default();
        let mut ids = BTreeMap::new();
        for (id, genesis) in named {
            if let Some(first) = ids.insert(id, genesis.clone()) {
                return Err(NodeError::ConfiguredTwice {
                    chain_id: id,
                    first,
                    second: genesis,
                });
            }
        }
        let courier = match &config.anchoring.keystore {
            None => None,
            Some(keystore) => {
                let password = config.anchoring.password_file.clone().ok_or_else(|| {
                    NodeError::config(
                        "anchoring.password_file",
                        "needed with anchoring.keystore: a file whose first line is its password",
                    )
                })?;
                let keystore = keystore.clone();
                let account = tokio::task::spawn_blocking(move || {
                    courier::open_keystore(&keystore, &password)
                })
                .await
                .map_err(|e| NodeError::config("anchoring.keystore", e.to_string()))?
                .map_err(|e| NodeError::config("anchoring.keystore", e))?;
                Some(courier::Courier {
                    account,
                    heartbeat: Duration::from_secs(config.anchoring.heartbeat_secs.max(1)),
                })
            }
        };
        let host = ChainHost {
            shared: Arc::new(Hosted {
                chains: Default::default(),
                stopping: Default::default(),
                held: Default::default(),
                closing: tokio::sync::watch::channel(false).0,
                background: Default::default(),
            }),
        };
        let control: Arc<dyn trellis_rpc::HostControl> =
            Arc::new(Control(Arc::downgrade(&host.shared)));
        for one in hosted {
            let genesis = one.genesis.clone();
            match start_in(one, Some(control.clone())).await {
                Ok(node) => {
                    host.shared
                        .chains
                        .lock()
                        .insert(node.chain.chain_id(), node);
                }
                Err(e) => {
                    host.stop().await;
                    return Err(NodeError::Hosted {
                        genesis,
                        source: Box::new(e),
                    });
                }
            }
        }
        if let Some(courier) = courier {
            let weak = Arc::downgrade(&host.shared);
            let chains = move || {
                weak.upgrade()
                    .map(|h| h.chains.lock().values().map(|n| n.chain.clone()).collect())
            };
            let task = tokio::spawn(courier::run(
                courier,
                chains,
                host.shared.closing.subscribe(),
            ));
            host.shared.background.lock().push(task);
        }
        if !subchains.is_empty() {
            let follower = tokio::spawn(follow_subchains(
                Arc::downgrade(&host.shared),
                main_id,
                subchains,
                control,
            ));
            host.shared.background.lock().push(follower);
        }
        Ok(host)
    }

    /// The running chain `chain_id`.
    pub fn chain(&self, chain_id: u64) -> Option<HostedNode> {
        self.shared.chains.lock().get(&chain_id).map(HostedNode::of)
    }

    /// Every running chain, by chain id.
    pub fn chains(&self) -> Vec<HostedNode> {
        self.shared
            .chains
            .lock()
            .values()
            .map(HostedNode::of)
            .collect()
    }

    /// Stops one chain (its engine, RPC and tasks); the others run on. Answers whether it
    /// was running.
    pub async fn stop_chain(&self, chain_id: u64) -> bool {
        // A sub-chain stays stopped: the follower does not start it again.
        match self.shared.take_held(chain_id) {
            Some(node) => {
                node.stop().await;
                info!(chain_id, "chain stopped");
                true
            }
            None => false,
        }
    }

    /// Stops every chain, and waits for those an operator asked to stop.
    pub async fn stop(self) {
        // The follower and the courier first, so that they start or send nothing once the
        // chains are taken.
        self.shared.closing.send_replace(true);
        let background = std::mem::take(&mut *self.shared.background.lock());
        for task in background {
            let _ = task.await;
        }
        let chains = std::mem::take(&mut *self.shared.chains.lock());
        for (_, node) in chains {
            node.stop().await;
        }
        let stopping = std::mem::take(&mut *self.shared.stopping.lock());
        for task in stopping {
            let _ = task.await;
        }
    }
}

/// Starts and stops the configured sub-chains (`[[chains]] subchain = ID`) as the main
/// chain's governance creates, retires and recovers them: checked at every main-chain
/// height, until the host stops or the main chain does. It holds the host only while it
/// looks, never across a chain's start or stop.
async fn follow_subchains(
    host: std::sync::Weak<Hosted>,
    main_id: u64,
    entries: Vec<(u64, NodeConfig)>,
    control: Arc<dyn trellis_rpc::HostControl>,
) {
    let (mut heights, mut closing) = {
        let Some(shared) = host.upgrade() else { return };
        let heights = match shared.chains.lock().get(&main_id) {
            Some(main) => main.chain.subscribe_committed(),
            None => return,
        };
        (heights, shared.closing.subscribe())
    };
    let mut warned = std::collections::BTreeSet::new();
    loop {
        if *closing.borrow() {
            return;
        }
        // What to look at: the main chain, and the entries neither running nor held.
        let (main, idle, running) = {
            let Some(shared) = host.upgrade() else { return };
            let chains = shared.chains.lock();
            let Some(main) = chains.get(&main_id).map(|n| n.chain.clone()) else {
                return;
            };
            let held = shared.held.lock();
            // Each idle one with the file its genesis goes to.
            let idle: Vec<(u64, std::path::PathBuf)> = entries
                .iter()
                .filter(|(id, _)| !chains.contains_key(id) && !held.contains(id))
                .map(|(id, c)| (*id, c.genesis.clone()))
                .collect();
            let running: Vec<u64> = entries
                .iter()
                .map(|(id, _)| *id)
                .filter(|id| chains.contains_key(id))
                .collect();
            (main, idle, running)
        };
        let looked = tokio::task::spawn_blocking(move || {
            let states = subchain_states(&main, &idle, &running);
            drop(main);
            states
        })
        .await;
        let states = match looked {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(error = %e, "reading the sub-chains failed");
                return;
            }
        };
        for (sub, state) in states {
            let Some((_, config)) = entries.iter().find(|(id, _)| *id == sub) else {
                continue;
            };
            match state {
                SubchainState::Ready => {
                    let started = start_in(config.clone(), Some(control.clone())).await;
                    let Some(shared) = host.upgrade() else {
                        if let Ok(node) = started {
                            node.stop().await;
                        }
                        return;
                    };
                    match started {
                        Ok(node) if *closing.borrow() => {
                            drop(shared);
                            node.stop().await;
                        }
                        Ok(node) => {
                            // Held meanwhile (an operator stopped it while it started)?
                            let refused = {
                                let mut chains = shared.chains.lock();
                                if shared.held.lock().contains(&sub) {
                                    Some(node)
                                } else {
                                    info!(sub_chain = sub, rpc = %node.rpc_addr, "sub-chain started");
                                    chains.insert(sub, node);
                                    None
                                }
                            };
                            drop(shared);
                            if let Some(node) = refused {
                                node.stop().await;
                            }
                        }
                        Err(e) => {
                            tracing::error!(
                                sub_chain = sub,
                                error = %e,
                                "sub-chain failed to start; not retried until restart"
                            );
                            shared.held.lock().insert(sub);
                        }
                    }
                }
                // Derived off the commit path: missing for a few heights is normal.
                SubchainState::NoGenesis { created_at }
                    if *heights.borrow() > created_at.saturating_add(20) =>
                {
                    if warned.insert(sub) {
                        tracing::warn!(
                            sub_chain = sub,
                            "sub-chain {sub} exists, but this node keeps no genesis derived \
                             for it (it was created before this node derived them, or the \
                             file was lost): fetch and check it with `trellis chain genesis \
                             {sub} --rpc <a main-chain node> --out FILE`, and replace this \
                             [[chains]] entry's `subchain = {sub}` by `genesis = \"FILE\"`"
                        );
                    }
                }
                SubchainState::Failed(reason) => {
                    tracing::error!(sub_chain = sub, %reason, "sub-chain not started");
                    if let Some(shared) = host.upgrade() {
                        shared.held.lock().insert(sub);
                    }
                }
                SubchainState::NoGenesis { .. } => {}
                SubchainState::Retired => {
                    let node = host.upgrade().and_then(|shared| shared.take(sub));
                    if let Some(node) = node {
                        node.stop().await;
                        info!(sub_chain = sub, "sub-chain retired: stopped");
                    }
                }
            }
        }
        tokio::select! {
            changed = heights.changed() => if changed.is_err() { return },
            _ = closing.changed() => return,
        }
    }
}

/// What the follower does about one configured sub-chain.
enum SubchainState {
    /// Created, not retired, not running: its genesis is written, start it.
    Ready,
    /// Created (taking effect at `created_at`), but this node keeps no genesis of it.
    NoGenesis { created_at: u64 },
    /// Its genesis could not be read or written.
    Failed(String),
    /// Retired while it runs: stop it.
    Retired,
}

/// Reads the records of the `idle` sub-chains (each with the file its genesis goes to) and
/// the `running` ones on `main`, and writes the genesis of each idle one that is active
/// (blocking).
fn subchain_states(
    main: &Chain,
    idle: &[(u64, std::path::PathBuf)],
    running: &[u64],
) -> Vec<(u64, SubchainState)> {
    let view = match main.store().view() {
        Ok(v) => v,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the main chain's state");
            return Vec::new();
        }
    };
    let mut slots = trellis_execution::governance_slots(&view);
    let mut gov = trellis_system::Governance::new(&mut slots);
    let mut record = |sub: u64| match gov.subchain(sub) {
        Ok(record) => record,
        Err(e) => {
            tracing::warn!(sub_chain = sub, error = %e, "cannot read the sub-chain record");
            None
        }
    };
    let mut out = Vec::new();
    for &sub in running {
        if record(sub).is_some_and(|r| r.retired) {
            out.push((sub, SubchainState::Retired));
        }
    }
    for (sub, path) in idle {
        let sub = *sub;
        let Some(record) = record(sub).filter(|r| !r.retired) else {
            continue;
        };
        let state = match main.subchain_genesis(sub) {
            Ok(Some(derived)) => match write_genesis(path, &derived.genesis) {
                Ok(()) => SubchainState::Ready,
                Err(e) => SubchainState::Failed(format!("writing {}: {e}", path.display())),
            },
            Ok(None) => SubchainState::NoGenesis {
                created_at: record.created_at,
            },
            Err(e) => SubchainState::Failed(e.to_string()),
        };
        out.push((sub, state));
    }
    out
}

/// Writes `genesis` to `path` unless the file already holds it.
fn write_genesis(path: &std::path::Path, genesis: &Genesis) -> std::io::Result<()> {
    if Genesis::load(path).is_ok_and(|kept| &kept == genesis) {
        return Ok(());
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let json = serde_json::to_vec_pretty(genesis).map_err(std::io::Error::other)?;
    std::fs::write(path, json)
}

/// Opens the store, writes genesis if needed, and starts consensus, RPC and gossip for the
/// top-level chain of `config` (its `[[chains]]` are [`ChainHost`]'s).
pub async fn start(config: NodeConfig) -> Result<RunningNode, NodeError> {
    start_in(config, None).await
}

/// [`start`], with the admin methods about other chains answered through `host`.
async fn start_in(
    config: NodeConfig,
    host: Option<Arc<dyn trellis_rpc::HostControl>>,
) -> Result<RunningNode, NodeError> {
    let genesis = Genesis::load(&config.genesis)?;
    if let Some(ignored) = config.consensus.max_block_gas {
        tracing::warn!(
            ignored,
            gas_limit = genesis.gas_limit,
            "consensus.max_block_gas is no longer used: blocks are bounded by the chain's \
             gasLimit in genesis; remove the line from the config"
        );
    }
    let key = NodeKey::load(&config.node_key)?;
    // Everything the config can get wrong is found before anything opens or listens.
    let checked = check_config(&config)?;
    let chain_dir = config.data_dir.join(format!("chain-{}", genesis.chain_id));
    let store = open_store(&chain_dir.join("state.redb")).await?;
    let chain = Chain::open(
        store,
        &genesis,
        ChainSettings {
            empty_block_interval: Duration::from_millis(config.consensus.empty_block_interval_ms),
            max_block_txs: config.consensus.max_block_txs,
            pool: config.pool_config(),
            clock: chain::Clock::system(),
            subchain_dir: Some(chain_dir.join("subchains")),
        },
    )?;

    // What is up so far; stopped again if a later step fails, so a failed start leaves
    // nothing running and the database closed.
    let mut up = Starting::default();
    match bring_up(
        &config, checked, &key, &genesis, &chain_dir, &chain, host, &mut up,
    )
    .await
    {
        Ok((rpc_addr, metrics_addr, dispatch)) => Ok(RunningNode {
            chain,
            rpc_addr,
            metrics_addr,
            dispatch,
            parts: up,
        }),
        Err(e) => {
            up.stop().await;
            Err(e)
        }
    }
}

/// Opens a chain's database. A chain of this process stopped a moment ago may still hold it
/// for as long as a blocking read it started runs (a stopped task's blocking work is not
/// interrupted), so an open database is waited for, briefly, before it is an error.
async fn open_store(path: &std::path::Path) -> Result<Store, NodeError> {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        match Store::open(path) {
            Err(e) if e.is_already_open() && std::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            opened => return Ok(opened?),
        }
    }
}

/// The config values [`check_config`] parsed.
struct Checked {
    p2p_listen: multiaddr::Multiaddr,
    p2p_peers: Vec<multiaddr::Multiaddr>,
    gossip: (multiaddr::Multiaddr, Vec<multiaddr::Multiaddr>),
    tls: Option<trellis_rpc::tls::ServerTls>,
}

/// Refuses what a chain's config gets wrong, before the chain opens anything.
fn check_config(config: &NodeConfig) -> Result<Checked, NodeError> {
    if config
        .p2p
        .tx_gossip_peers
        .as_ref()
        .is_some_and(|p| !p.is_empty())
    {
        return Err(NodeError::config(
            "p2p.tx_gossip_peers",
            "removed: transactions now gossip over p2p between registered nodes. Give each \
             node p2p.gossip_listen (e.g. /ip4/0.0.0.0/tcp/27001) and list the other nodes' \
             gossip addresses in p2p.gossip_peers",
        ));
    }
    if let Some(token) = &config.rpc.admin_token {
        if token.trim().len() < 16 {
            return Err(NodeError::config(
                "rpc.admin_token",
                "too short: use at least 16 random characters",
            ));
        }
    }
    let tls = match &config.rpc.tls {
        Some(files) => Some(trellis_rpc::tls::ServerTls::load(&files.cert, &files.key)?),
        None => None,
    };
    Ok(Checked {
        p2p_listen: multiaddr("p2p.listen", &config.p2p.listen)?,
        p2p_peers: multiaddrs("p2p.peers", &config.p2p.peers)?,
        gossip: (
            multiaddr("p2p.gossip_listen", &config.p2p.gossip_listen)?,
            multiaddrs("p2p.gossip_peers", &config.p2p.gossip_peers)?,
        ),
        tls,
    })
}

/// The parts of a chain instance started so far.
#[derive(Default)]
struct Starting {
    tasks: Vec<JoinHandle<()>>,
    rpc: Option<ServerHandle>,
    consensus: Option<ConsensusHandle>,
}

impl Starting {
    /// Stops what is up, and returns once it has ended.
    async fn stop(self) {
        if let Some(rpc) = &self.rpc {
            let _ = rpc.stop();
        }
        if let Some(consensus) = self.consensus {
            consensus.stop().await;
        }
        for t in &self.tasks {
            t.abort();
        }
        for t in self.tasks {
            let _ = t.await;
        }
        // Open connections end gracefully; one that will not is not waited for forever.
        if let Some(rpc) = self.rpc {
            if tokio::time::timeout(Duration::from_secs(10), rpc.stopped())
                .await
                .is_err()
            {
                tracing::warn!("JSON-RPC connections still open 10 s after the chain stopped");
            }
        }
    }
}

/// Starts gossip, the pool's tasks, JSON-RPC, consensus and metrics for `chain`, recording
/// each in `up` as it comes up; answers the RPC and metrics addresses.
#[allow(clippy::too_many_arguments)]
async fn bring_up(
    config: &NodeConfig,
    checked: Checked,
    key: &NodeKey,
    genesis: &Genesis,
    chain_dir: &std::path::Path,
    chain: &Chain,
    host: Option<Arc<dyn trellis_rpc::HostControl>>,
    up: &mut Starting,
) -> Result<
    (
        SocketAddr,
        Option<SocketAddr>,
        trellis_rpc::chains::Dispatch,
    ),
    NodeError,
> {
    let tasks = &mut up.tasks;
    let gossip = start_gossip(checked.gossip, key, genesis.chain_id.0, chain).await?;
    chain
        .set_gossip(gossip.sender.clone())
        .map_err(|_| NodeError::config("p2p", "the chain's transaction gossip was already set"))?;
    let gossip_addr = gossip.listen_addr.clone();
    let gossip_stats = gossip.stats.clone();
    tasks.push(gossip.task);
    {
        let (chain, mut inbound) = (chain.clone(), gossip.inbound);
        tasks.push(tokio::spawn(async move {
            // Batches that arrived while the last admission ran are admitted together: one
            // state view, one pool lock and one parallel recovery for all of them.
            while let Some(mut batch) = inbound.recv().await {
                while let Ok(more) = inbound.try_recv() {
                    batch.extend(more);
                    if batch.len() >= trellis_gossip::MAX_BATCH_TXS {
                        break;
                    }
                }
                chain.admit_gossip(batch).await;
            }
        }));
    }
    {
        let chain = chain.clone();
        tasks.push(tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(30));
            loop {
                tick.tick().await;
                chain.evict_stale();
            }
        }));
    }

    chain.set_identity(config.moniker.clone(), (*key.public().as_bytes()).into());
    #[cfg(feature = "fault-injection")]
    if std::env::var("TRELLIS_FAULT").as_deref() == Ok("garbage-blocks") {
        chain.inject_garbage_blocks();
    }
    let limits = RpcLimits {
        max_request_bytes: config.rpc.max_request_bytes,
        max_connections: config.rpc.max_connections,
        max_batch_len: config.rpc.max_batch_len,
        admin_token: config.rpc.admin_token.clone(),
        calls_per_second: config.rpc.calls_per_second,
        call_burst: config.rpc.call_burst,
        max_subscriptions: config.rpc.max_subscriptions,
        read_access: trellis_rpc::ReadAccess {
            policy: config.rpc.read_access,
            public_resolution: config.rpc.public_resolution,
            node_key: Some((*key.public().as_bytes()).into()),
        },
        hosted_chains: config.rpc.hosted_chains,
        ..Default::default()
    };
    if config.rpc.read_access == trellis_rpc::ReadPolicy::Open
        && !config.rpc.listen.ip().is_loopback()
    {
        tracing::warn!(
            listen = %config.rpc.listen,
            "RPC listens beyond loopback with rpc.read_access = \"open\": anyone who reaches the port reads the whole ledger; set \"organization\" or \"consortium\" (docs/rpc.md)"
        );
    }
    let rpc_metrics = chain.metrics().rpc.clone();
    let backend = Arc::new(chain.clone());
    let serving = trellis_rpc::serve(
        backend.clone(),
        config.rpc.listen,
        &limits,
        checked.tls,
        rpc_metrics,
        trellis_explorer::router(backend),
        host,
    )
    .await
    .map_err(|source| NodeError::Rpc {
        addr: config.rpc.listen,
        source,
    })?;
    let rpc_addr = serving.addr;
    up.rpc = Some(serving.handle);

    check_listen("p2p.listen", &checked.p2p_listen)?;
    let settings = EngineSettings {
        moniker: config.moniker.clone(),
        home: chain_dir.join("consensus"),
        chain_id: genesis.chain_id.0,
        listen: checked.p2p_listen,
        peers: checked.p2p_peers,
        timeouts: timeouts(&config.consensus),
        allowlist: Some(chain.peer_allowlist()),
    };
    up.consensus = Some(
        trellis_consensus::start(settings, key.private().clone(), Arc::new(chain.clone()))
            .await
            .map_err(NodeError::engine)?,
    );
    let tasks = &mut up.tasks;
    let metrics_addr = match config.metrics.listen {
        Some(listen) => {
            let (addr, task) =
                serve_metrics(listen, chain, chain_dir.join("state.redb"), gossip_stats)
                    .await
                    .map_err(|source| NodeError::Metrics {
                        addr: listen,
                        source,
                    })?;
            tasks.push(task);
            Some(addr)
        }
        None => None,
    };
    info!(moniker = %config.moniker, chain_id = %genesis.chain_id, rpc = %rpc_addr, gossip = %gossip_addr, "node started");
    Ok((rpc_addr, metrics_addr, serving.dispatch))
}

/// Serves `/metrics` for `chain`; each scrape first reads the levels (pool, database file,
/// gossip peers).
async fn serve_metrics(
    listen: SocketAddr,
    chain: &Chain,
    database: std::path::PathBuf,
    gossip: Arc<trellis_gossip::GossipStats>,
) -> std::io::Result<(SocketAddr, JoinHandle<()>)> {
    let refresh = {
        let chain = chain.clone();
        move || {
            chain.refresh_metrics();
            let metrics = chain.metrics();
            let m = &metrics.chain;
            if let Ok(meta) = std::fs::metadata(&database) {
                trellis_metrics::set_level(&m.database_bytes, meta.len());
            }
            if let Ok(fs) = nix::sys::statvfs::statvfs(&database) {
                let unit = fs.fragment_size();
                trellis_metrics::set_level(
                    &m.disk_free_bytes,
                    fs.blocks_available().saturating_mul(unit),
                );
                trellis_metrics::set_level(&m.disk_total_bytes, fs.blocks().saturating_mul(unit));
            }
            trellis_metrics::set_level(&m.peers, trellis_gossip::GossipStats::get(&gossip.peers));
        }
    };
    trellis_metrics::serve(listen, chain.metrics(), Arc::new(refresh)).await
}

/// Binds the TCP address of `addr` for a moment. The engine logs a failure to listen and runs
/// on without a listener, so a port already taken (by another process, or this node's own
/// RPC) would leave a validator that nobody can dial; say so now, before consensus starts.
fn check_listen(key: &'static str, addr: &multiaddr::Multiaddr) -> Result<(), NodeError> {
    use multiaddr::Protocol;
    let (mut ip, mut port) = (None, None);
    for part in addr.iter() {
        match part {
            Protocol::Ip4(a) => ip = Some(std::net::IpAddr::V4(a)),
            Protocol::Ip6(a) => ip = Some(std::net::IpAddr::V6(a)),
            Protocol::Tcp(p) => port = Some(p),
            _ => {}
        }
    }
    if let (Some(ip), Some(port)) = (ip, port) {
        if port != 0 {
            std::net::TcpListener::bind((ip, port)).map_err(|e| {
                NodeError::config(
                    key,
                    format!("{addr}: cannot listen there (port in use?): {e}"),
                )
            })?;
        }
    }
    Ok(())
}

fn multiaddr<T: std::str::FromStr>(key: &'static str, value: &str) -> Result<T, NodeError>
where
    T::Err: std::fmt::Display,
{
    value
        .parse()
        .map_err(|e| NodeError::config(key, format!("{value} is not a multiaddr: {e}")))
}

fn multiaddrs<T: std::str::FromStr>(
    key: &'static str,
    values: &[String],
) -> Result<Vec<T>, NodeError>
where
    T::Err: std::fmt::Display,
{
    values.iter().map(|v| multiaddr(key, v)).collect()
}

/// Starts the node's transaction gossip on `(listen, peers)`: its own swarm, gated by the
/// chain's allowlist.
async fn start_gossip(
    (listen, peers): (multiaddr::Multiaddr, Vec<multiaddr::Multiaddr>),
    key: &NodeKey,
    chain_id: u64,
    chain: &Chain,
) -> Result<trellis_gossip::Gossip, NodeError> {
    let keypair = trellis_consensus::libp2p_keypair(key.private()).map_err(NodeError::engine)?;
    let gossip = trellis_gossip::GossipConfig {
        chain_id,
        listen,
        peers,
    };
    Ok(trellis_gossip::start(keypair, gossip, chain.peer_allowlist().filter()).await?)
}

impl RunningNode {
    /// Stops consensus, RPC and background tasks, and returns once they have ended: the
    /// chain's database is closed then, unless the caller holds a [`Chain`] of it (the same
    /// chain can then be started again in this process).
    pub async fn stop(self) {
        self.chain.mark_stopped();
        self.parts.stop().await
    }

    /// Runs until consensus fails or the process is told to stop.
    pub async fn wait(mut self) -> Result<(), NodeError> {
        let result = match self.parts.consensus.take() {
            Some(consensus) => consensus.wait().await.map_err(NodeError::engine),
            None => Ok(()),
        };
        self.chain.mark_stopped();
        self.parts.stop().await;
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Seen once in a test run: the consensus port was the node's own RPC port, the engine
    /// logged "Error listening" and ran on, and no peer could reach the validator.
    #[test]
    fn a_consensus_port_already_taken_stops_the_start_with_the_reason() {
        let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = taken.local_addr().expect("addr").port();
        let addr: multiaddr::Multiaddr =
            format!("/ip4/127.0.0.1/tcp/{port}").parse().expect("addr");
        let err = check_listen("p2p.listen", &addr).expect_err("the port is taken");
        assert!(format!("{err:#}").contains("port in use"), "{err:#}");
        drop(taken);
        check_listen("p2p.listen", &addr).expect("free again");
        let any: multiaddr::Multiaddr = "/ip4/127.0.0.1/tcp/0".parse().expect("addr");
        check_listen("p2p.listen", &any).expect("port 0 is always fine");
    }
}
