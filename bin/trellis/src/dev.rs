//! `trellis dev`: a one-validator chain in one process, with deterministic funded accounts.

use clap::Args;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use trellis_crypto::{AccountKey, NodeKey};
use trellis_node::NodeConfig;
use trellis_primitives::{Genesis, GenesisValidator};

use crate::keys::build_genesis;

#[derive(Args)]
pub struct DevArgs {
    /// Where the chain keeps its key, genesis and database.
    #[arg(long, default_value = ".trellis/dev")]
    pub data_dir: PathBuf,
    /// JSON-RPC listen address.
    #[arg(long, default_value = "127.0.0.1:8545")]
    pub rpc: SocketAddr,
    /// Number of funded dev accounts.
    #[arg(long, default_value_t = 10)]
    pub accounts: u32,
    #[arg(long, default_value_t = 1337)]
    pub chain_id: u64,
    /// Longest wait for transactions before an empty block is produced.
    #[arg(long, default_value_t = 1000)]
    pub block_interval_ms: u64,
    /// Delete existing dev chain data first.
    #[arg(long)]
    pub reset: bool,
    /// Serve Prometheus metrics (`/metrics`) on this address, e.g. 127.0.0.1:9464.
    #[arg(long)]
    pub metrics: Option<SocketAddr>,
}

/// Writes (or reuses) the dev chain's key, genesis and config under `args.data_dir`.
pub fn prepare(args: &DevArgs) -> anyhow::Result<NodeConfig> {
    if args.reset && args.data_dir.exists() {
        std::fs::remove_dir_all(&args.data_dir)?;
    }
    std::fs::create_dir_all(&args.data_dir)?;
    let key_path = args.data_dir.join("node_key.json");
    if !key_path.exists() {
        NodeKey::generate().save(&key_path)?;
    }
    let key = NodeKey::load(&key_path)?;
    let genesis_path = args.data_dir.join("genesis.json");
    if !genesis_path.exists() {
        let genesis = build_genesis(
            args.chain_id,
            vec![GenesisValidator {
                name: "dev".into(),
                public_key: (*key.public().as_bytes()).into(),
                power: 1,
                org: "dev".into(),
            }],
            vec![crate::keys::member_org(
                "dev",
                vec![AccountKey::dev(0).address()],
            )],
            BTreeMap::new(),
            args.accounts,
            (
                trellis_primitives::DEFAULT_GAS_LIMIT,
                trellis_primitives::DEFAULT_MAX_TRANSACTION_GAS,
            ),
        )?;
        std::fs::write(&genesis_path, genesis.to_json())?;
    }
    let genesis = Genesis::load(&genesis_path)?;
    if genesis.chain_id.0 != args.chain_id {
        tracing::warn!(
            existing = %genesis.chain_id,
            "reusing the existing dev chain; pass --reset to start over with a new chain id"
        );
    }
    let mut config = NodeConfig {
        moniker: "dev".into(),
        data_dir: args.data_dir.join("data"),
        genesis: genesis_path,
        node_key: key_path,
        ..Default::default()
    };
    config.rpc.listen = args.rpc;
    config.rpc.for_loopback_network();
    config.p2p.listen = "/ip4/127.0.0.1/tcp/0".into();
    config.p2p.gossip_listen = "/ip4/127.0.0.1/tcp/0".into();
    config.consensus.empty_block_interval_ms = args.block_interval_ms;
    config.metrics.listen = args.metrics;
    Ok(config)
}

pub async fn run(args: DevArgs) -> anyhow::Result<()> {
    let config = prepare(&args)?;
    let genesis = Genesis::load(&config.genesis)?;
    println!("Trellis dev chain (chain id {})", genesis.chain_id);
    println!();
    println!("Accounts (1,000,000 ETH each):");
    for i in 0..args.accounts {
        let key = AccountKey::dev(i);
        println!(
            "({i}) {}  0x{}",
            key.address(),
            hex::encode(key.secret_bytes())
        );
    }
    println!();
    println!("These keys are public: never use them outside development.");
    crate::run_node(config).await
}
