//! The node's TOML configuration. Every field has a default that runs; see docs/config.md.

use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NodeConfig {
    /// Name of this node in logs and metrics.
    pub moniker: String,
    /// Directory holding the database and the consensus write-ahead log.
    pub data_dir: PathBuf,
    /// Genesis file of the chain this node runs.
    pub genesis: PathBuf,
    /// Ed25519 node key file (created by `trellis keys new --node`).
    pub node_key: PathBuf,
    pub rpc: RpcConfig,
    pub p2p: P2pConfig,
    pub consensus: ConsensusConfig,
    pub mempool: MempoolConfig,
    pub metrics: MetricsConfig,
    /// `text` (the default; colours only on a terminal) or `json`: one JSON object per line
    /// with the spans it happened in (`consensus` with the chain id, `round` with the height
    /// and round).
    pub log_format: LogFormat,
    /// The courier: carries each hosted chain's headers to the light clients other hosted
    /// chains keep of it (docs/multichain.md, "Anchoring").
    pub anchoring: AnchoringConfig,
    /// Further chains this process hosts, one `[[chains]]` table each: its own genesis, RPC
    /// port and p2p ports and peers, and the top level's settings for everything else (key,
    /// data directory, limits, consensus timeouts, pool). The top-level chain is always
    /// hosted; without `[[chains]]` a node hosts that one chain.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub chains: Vec<ChainConfig>,
}

/// One more chain hosted by the node (a `[[chains]]` table).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChainConfig {
    /// This chain's genesis file; its chain id names its data under `data_dir`
    /// (`chain-<id>/`), so chains never share a database or consensus log. Give either
    /// `genesis` or `subchain`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub genesis: Option<PathBuf>,
    /// A sub-chain of the top-level chain, by chain id: started once the top-level chain's
    /// governance creates it, from the genesis this node derives then (written to
    /// `data_dir/chain-<id>/genesis.json`), stopped while it is retired.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subchain: Option<u64>,
    /// Where this chain's JSON-RPC, REST and explorer listen (the top level's `[rpc]` limits,
    /// read access and TLS apply).
    pub rpc_listen: SocketAddr,
    /// This chain's consensus and gossip addresses and its peers on them.
    pub p2p: P2pConfig,
    /// Where to serve this chain's `/metrics`; unset serves none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics_listen: Option<SocketAddr>,
}

/// The courier (`[anchoring]`): off unless an account is configured.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AnchoringConfig {
    /// Ethereum keystore (v3 JSON) of the account that signs anchors; it must be an account
    /// of this node's organisation on every hosted chain that follows another (relative to
    /// the config file). Unset: this node submits no anchors.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keystore: Option<PathBuf>,
    /// File whose first line is the keystore's password (keep it private).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password_file: Option<PathBuf>,
    /// Seconds between anchors of a chain whose new blocks carry nothing that needs one
    /// sooner (a validator-set change is anchored at once).
    pub heartbeat_secs: u64,
}

impl Default for AnchoringConfig {
    fn default() -> Self {
        AnchoringConfig {
            keystore: None,
            password_file: None,
            heartbeat_secs: 10,
        }
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// Prometheus metrics (OpenMetrics text on `GET /metrics`).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// Where to serve `/metrics`, e.g. `127.0.0.1:9464`; unset (the default) serves nothing.
    /// The page names validators, peers and load: keep it on loopback or a private network.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<SocketAddr>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RpcConfig {
    pub listen: SocketAddr,
    pub max_request_bytes: u32,
    pub max_connections: u32,
    pub max_batch_len: u32,
    /// Bearer token that `admin_*` methods require; unset turns them off. Keep this file
    /// private (the node refuses tokens shorter than 16 characters).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub admin_token: Option<String>,
    /// Sustained calls per second one client address may make, over all its connections and
    /// REST requests (a batch counts each call, a Merkle proof 10). May be fractional.
    pub calls_per_second: f64,
    /// Calls one client address may make in a burst above the sustained rate.
    pub call_burst: u32,
    /// Active subscriptions one WebSocket connection may hold.
    pub max_subscriptions: u32,
    /// Who may read through this port: `open` (anyone who reaches it; the default),
    /// `consortium` (callers with a read token of any member or supervisor organisation) or
    /// `organization` (read tokens of this node's organisation, and supervisors). The admin
    /// token reads too. See docs/rpc.md, "Who may read".
    pub read_access: trellis_rpc::ReadPolicy,
    /// Under a closed `read_access`, still serve the resolution paths (DIDs, identifiers,
    /// evidence) and `/health` to anyone.
    pub public_resolution: bool,
    /// Serve every other chain this process hosts under `/chains/{id}` on this port (each
    /// through its own read access), and list them in `trellis_getChains` and `/v1/chains`.
    /// Every chain of a process shares this section, so a chain whose own port listens on
    /// loopback only is reachable through a public port unless this is `false`.
    pub hosted_chains: bool,
    /// Serve the port over TLS only (HTTPS, WSS), where clients may also authenticate with
    /// a client certificate their organisation registered. Unset: plain HTTP.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls: Option<RpcTlsConfig>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RpcTlsConfig {
    /// The node's certificate chain (PEM), leaf first; relative to the config file.
    pub cert: PathBuf,
    /// The certificate's private key (PEM: PKCS#8, PKCS#1 or SEC1); relative to the config
    /// file. Keep it private.
    pub key: PathBuf,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct P2pConfig {
    /// libp2p listen address for consensus traffic, e.g. `/ip4/0.0.0.0/tcp/27000`.
    pub listen: String,
    /// Consensus addresses of the other validators.
    pub peers: Vec<String>,
    /// libp2p listen address for transaction gossip, e.g. `/ip4/0.0.0.0/tcp/27001`: a
    /// second port beside consensus, behind the same gate (registered nodes only).
    pub gossip_listen: String,
    /// Gossip addresses of other nodes of the chain. Gossip relays, so a node needs only
    /// some of them; every node needs a path to every other.
    pub gossip_peers: Vec<String>,
    /// Removed: transactions gossip over p2p (`gossip_listen`, `gossip_peers`). Still parsed
    /// so that an old file gets a clear message instead of "unknown field".
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tx_gossip_peers: Option<Vec<String>>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConsensusConfig {
    pub timeout_propose_ms: u64,
    pub timeout_prevote_ms: u64,
    pub timeout_precommit_ms: u64,
    /// With an empty pool, the proposer waits this long for transactions before proposing
    /// an empty block.
    pub empty_block_interval_ms: u64,
    /// Most transactions in one block.
    pub max_block_txs: usize,
    /// No longer used: blocks are bounded by the chain's `gasLimit` in genesis, which every
    /// validator enforces. Accepted so that older config files still load (with a warning).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_block_gas: Option<u64>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MempoolConfig {
    pub max_txs: usize,
    pub max_bytes: usize,
    pub max_nonce_gap: u64,
    pub ttl_secs: u64,
}

impl Default for NodeConfig {
    fn default() -> Self {
        NodeConfig {
            moniker: "trellis-node".into(),
            data_dir: PathBuf::from("data"),
            genesis: PathBuf::from("genesis.json"),
            node_key: PathBuf::from("node_key.json"),
            rpc: RpcConfig::default(),
            p2p: P2pConfig::default(),
            consensus: ConsensusConfig::default(),
            mempool: MempoolConfig::default(),
            metrics: MetricsConfig::default(),
            log_format: LogFormat::default(),
            anchoring: AnchoringConfig::default(),
            chains: Vec::new(),
        }
    }
}

impl Default for RpcConfig {
    /// The RPC server's own defaults, so the two cannot drift apart.
    fn default() -> Self {
        let limits = trellis_rpc::RpcLimits::default();
        RpcConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8545)),
            max_request_bytes: limits.max_request_bytes,
            max_connections: limits.max_connections,
            max_batch_len: limits.max_batch_len,
            admin_token: limits.admin_token,
            calls_per_second: limits.calls_per_second,
            call_burst: limits.call_burst,
            max_subscriptions: limits.max_subscriptions,
            read_access: limits.read_access.policy,
            public_resolution: limits.read_access.public_resolution,
            hosted_chains: limits.hosted_chains,
            tls: None,
        }
    }
}

impl Default for P2pConfig {
    fn default() -> Self {
        P2pConfig {
            listen: "/ip4/127.0.0.1/tcp/27000".into(),
            peers: vec![],
            gossip_listen: "/ip4/127.0.0.1/tcp/27001".into(),
            gossip_peers: vec![],
            tx_gossip_peers: None,
        }
    }
}

impl Default for ConsensusConfig {
    fn default() -> Self {
        ConsensusConfig {
            timeout_propose_ms: 3_000,
            timeout_prevote_ms: 1_000,
            timeout_precommit_ms: 1_000,
            empty_block_interval_ms: 1_000,
            max_block_txs: 10_000,
            max_block_gas: None,
        }
    }
}

impl Default for MempoolConfig {
    fn default() -> Self {
        let d = trellis_mempool::PoolConfig::default();
        MempoolConfig {
            max_txs: d.max_txs,
            max_bytes: d.max_bytes,
            max_nonce_gap: d.max_nonce_gap,
            ttl_secs: d.ttl.as_secs(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("invalid config {path}: {source}")]
    Toml {
        path: String,
        source: toml::de::Error,
    },
    #[error("{0}")]
    Invalid(String),
}

impl RpcConfig {
    /// Lifts the per-client limits for a network on one machine (`trellis dev`, `trellis
    /// testnet`), where every client, tool and peer calls from the same loopback address.
    pub fn for_loopback_network(&mut self) {
        self.calls_per_second = 1_000_000.0;
        self.call_burst = 2_000_000;
    }
}

impl NodeConfig {
    /// Loads a config file; relative paths inside it are taken relative to the file.
    pub fn load(path: &Path) -> Result<NodeConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
            path: path.display().to_string(),
            source,
        })?;
        let mut config: NodeConfig = toml::from_str(&text).map_err(|source| ConfigError::Toml {
            path: path.display().to_string(),
            source,
        })?;
        if let Some(base) = path.parent() {
            let mut paths = vec![
                &mut config.data_dir,
                &mut config.genesis,
                &mut config.node_key,
            ];
            if let Some(tls) = &mut config.rpc.tls {
                paths.extend([&mut tls.cert, &mut tls.key]);
            }
            paths.extend(config.anchoring.keystore.as_mut());
            paths.extend(config.anchoring.password_file.as_mut());
            paths.extend(config.chains.iter_mut().filter_map(|c| c.genesis.as_mut()));
            for p in paths {
                if p.is_relative() {
                    *p = base.join(&*p);
                }
            }
        }
        config
            .check_chains()
            .map_err(|e| ConfigError::Invalid(format!("{}: {e}", path.display())))?;
        Ok(config)
    }

    /// One single-chain config per hosted chain: the top level's first, then each
    /// `[[chains]]` entry over the top level's settings.
    pub fn hosted_chains(&self) -> Vec<NodeConfig> {
        let mut top = self.clone();
        top.chains.clear();
        let mut hosted = vec![top.clone()];
        for chain in &self.chains {
            if let Some(genesis) = &chain.genesis {
                hosted.push(self.one_chain(chain, genesis.clone()));
            }
        }
        hosted
    }

    /// The `[[chains]]` entries naming a sub-chain (`subchain = ID`), each as a single-chain
    /// config whose genesis file is the one the host writes when the sub-chain is created.
    pub fn subchains(&self) -> Vec<(u64, NodeConfig)> {
        self.chains
            .iter()
            .filter(|c| c.genesis.is_none())
            .filter_map(|c| {
                let id = c.subchain?;
                let genesis = self.subchain_genesis_path(id);
                Some((id, self.one_chain(c, genesis)))
            })
            .collect()
    }

    /// Where the host writes sub-chain `id`'s genesis before starting it.
    pub fn subchain_genesis_path(&self, id: u64) -> PathBuf {
        self.data_dir
            .join(format!("chain-{id}"))
            .join("genesis.json")
    }

    fn one_chain(&self, chain: &ChainConfig, genesis: PathBuf) -> NodeConfig {
        let mut one = self.clone();
        one.chains.clear();
        one.genesis = genesis;
        one.rpc.listen = chain.rpc_listen;
        one.p2p = chain.p2p.clone();
        one.metrics.listen = chain.metrics_listen;
        one
    }

    /// Each `[[chains]]` entry names exactly one of `genesis` and `subchain`.
    pub fn check_chains(&self) -> Result<(), ConfigError> {
        for (i, c) in self.chains.iter().enumerate() {
            if c.genesis.is_some() == c.subchain.is_some() {
                return Err(ConfigError::Invalid(format!(
                    "[[chains]] entry {}: give either genesis (a chain's genesis file) or \
                     subchain (the id of a sub-chain the top-level chain creates), not {}",
                    i + 1,
                    if c.genesis.is_some() {
                        "both"
                    } else {
                        "neither"
                    }
                )));
            }
        }
        Ok(())
    }

    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).expect("config always serialises")
    }

    pub fn pool_config(&self) -> trellis_mempool::PoolConfig {
        trellis_mempool::PoolConfig {
            max_txs: self.mempool.max_txs,
            max_bytes: self.mempool.max_bytes,
            max_nonce_gap: self.mempool.max_nonce_gap,
            ttl: std::time::Duration::from_secs(self.mempool.ttl_secs),
            ..Default::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_roundtrip_and_paths_are_relative_to_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("node.toml");
        std::fs::write(&path, NodeConfig::default().to_toml()).expect("write");
        let loaded = NodeConfig::load(&path).expect("load");
        assert_eq!(loaded.data_dir, dir.path().join("data"));
        assert_eq!(loaded.rpc.listen, RpcConfig::default().listen);
    }

    #[test]
    fn a_file_with_the_removed_rpc_gossip_list_still_loads() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("node.toml");
        std::fs::write(
            &path,
            "[p2p]\ntx_gossip_peers = [\"http://10.0.0.2:8545\"]\n",
        )
        .expect("write");
        let loaded = NodeConfig::load(&path).expect("load");
        // `start` refuses it with what to set instead; an empty list is simply ignored.
        assert_eq!(loaded.p2p.tx_gossip_peers.map(|p| p.len()), Some(1));
        assert_eq!(loaded.p2p.gossip_listen, P2pConfig::default().gossip_listen);
    }

    #[test]
    fn each_hosted_chain_gets_its_own_genesis_ports_and_peers_and_the_rest_from_the_top() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("node.toml");
        std::fs::write(
            &path,
            r#"moniker = "edge-1"
genesis = "main.json"
[rpc]
listen = "127.0.0.1:8545"
calls_per_second = 5.0
[p2p]
listen = "/ip4/127.0.0.1/tcp/27000"
[consensus]
timeout_propose_ms = 700

[[chains]]
genesis = "sub/logistics.json"
rpc_listen = "127.0.0.1:8546"
metrics_listen = "127.0.0.1:9465"
[chains.p2p]
listen = "/ip4/127.0.0.1/tcp/27100"
peers = ["/ip4/127.0.0.1/tcp/27200"]
gossip_listen = "/ip4/127.0.0.1/tcp/27101"
"#,
        )
        .expect("write");
        let loaded = NodeConfig::load(&path).expect("load");
        let hosted = loaded.hosted_chains();
        assert_eq!(hosted.len(), 2);
        let (main, sub) = (&hosted[0], &hosted[1]);
        assert_eq!(main.genesis, dir.path().join("main.json"));
        assert_eq!(sub.genesis, dir.path().join("sub/logistics.json"));
        assert_eq!(sub.rpc.listen.port(), 8546);
        assert_eq!(sub.p2p.listen, "/ip4/127.0.0.1/tcp/27100");
        assert_eq!(sub.p2p.peers.len(), 1);
        assert_eq!(sub.metrics.listen.map(|a| a.port()), Some(9465));
        assert!(main.metrics.listen.is_none());
        // Inherited from the top level.
        assert_eq!(sub.moniker, "edge-1");
        assert_eq!(sub.rpc.calls_per_second, 5.0);
        assert_eq!(sub.consensus.timeout_propose_ms, 700);
        assert_eq!(sub.data_dir, main.data_dir);
        assert!(hosted.iter().all(|c| c.chains.is_empty()));
        // A config written back keeps its chains.
        let again: NodeConfig = toml::from_str(&loaded.to_toml()).expect("roundtrip");
        assert_eq!(again.chains.len(), 1);
    }

    #[test]
    fn unknown_keys_are_errors() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("node.toml");
        std::fs::write(&path, "monikr = \"typo\"\n").expect("write");
        assert!(matches!(
            NodeConfig::load(&path),
            Err(ConfigError::Toml { .. })
        ));
    }
}
