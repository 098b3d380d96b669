//! `trellis testnet up|down`: N validator processes on loopback ports chosen to be free.

use anyhow::{bail, Context as _};
use clap::Subcommand;
use jsonrpsee::http_client::HttpClientBuilder;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use trellis_crypto::{AccountKey, NodeKey};
use trellis_node::NodeConfig;
use trellis_primitives::GenesisValidator;

use crate::keys::{build_genesis, member_org};

#[derive(Subcommand)]
pub enum TestnetCommand {
    /// Generate keys, genesis and configs, start the validators and print their endpoints.
    Up {
        /// Number of validators.
        #[arg(short = 'n', long, default_value_t = 4)]
        validators: usize,
        #[arg(long, default_value = ".trellis/testnet")]
        dir: PathBuf,
        #[arg(long, default_value_t = 1337)]
        chain_id: u64,
        /// Number of funded dev accounts.
        #[arg(long, default_value_t = 10)]
        accounts: u32,
    },
    /// Stop the validators started by `up`.
    Down {
        #[arg(long, default_value = ".trellis/testnet")]
        dir: PathBuf,
    },
}

/// What `up` leaves in `DIR/testnet.json` for `down`, tests and the load tool.
#[derive(Serialize, Deserialize)]
pub struct TestnetInfo {
    pub chain_id: u64,
    pub nodes: Vec<NodeInfo>,
}

#[derive(Serialize, Deserialize)]
pub struct NodeInfo {
    pub pid: u32,
    pub rpc: String,
    pub p2p: String,
    /// Transaction gossip address (a second p2p port).
    #[serde(default)]
    pub gossip: String,
    /// Prometheus metrics page.
    #[serde(default)]
    pub metrics: String,
    pub config: PathBuf,
}

pub fn run(command: TestnetCommand) -> anyhow::Result<()> {
    match command {
        TestnetCommand::Up {
            validators,
            dir,
            chain_id,
            accounts,
        } => up(validators, &dir, chain_id, accounts),
        TestnetCommand::Down { dir } => down(&dir),
    }
}

fn up(n: usize, dir: &Path, chain_id: u64, accounts: u32) -> anyhow::Result<()> {
    if n == 0 {
        bail!("a testnet needs at least one validator");
    }
    if dir.join("testnet.json").exists() {
        bail!(
            "a testnet is already recorded in {}; run `trellis testnet down --dir {}` first",
            dir.display(),
            dir.display()
        );
    }
    if dir.exists() {
        std::fs::remove_dir_all(dir)?;
    }
    std::fs::create_dir_all(dir)?;
    let dir = dir.canonicalize()?;
    let keys: Vec<NodeKey> = (0..n).map(|_| NodeKey::generate()).collect();
    let validators = keys
        .iter()
        .enumerate()
        .map(|(i, k)| GenesisValidator {
            name: format!("node-{i}"),
            public_key: (*k.public().as_bytes()).into(),
            power: 1,
            org: format!("org{i}"),
        })
        .collect();
    // One founding organisation per validator, administered by the dev account of the same
    // index, so that governance votes can be tried on a testnet.
    let organizations = (0..n)
        .map(|i| {
            member_org(
                &format!("org{i}"),
                vec![AccountKey::dev(i as u32).address()],
            )
        })
        .collect();
    let genesis = build_genesis(
        chain_id,
        validators,
        organizations,
        BTreeMap::new(),
        accounts,
        (
            trellis_primitives::DEFAULT_GAS_LIMIT,
            trellis_primitives::DEFAULT_MAX_TRANSACTION_GAS,
        ),
    )?;
    let genesis_path = dir.join("genesis.json");
    std::fs::write(&genesis_path, genesis.to_json())?;

    // (rpc, p2p, gossip, metrics) of each node.
    let ports: Vec<(u16, u16, u16, u16)> = crate::ports::free_ports(4 * n)?
        .chunks_exact(4)
        .map(|p| (p[0], p[1], p[2], p[3]))
        .collect();
    let exe = std::env::current_exe().context("locating the trellis binary")?;
    let mut nodes = Vec::new();
    for (i, key) in keys.iter().enumerate() {
        let node_dir = dir.join(format!("node-{i}"));
        std::fs::create_dir_all(&node_dir)?;
        key.save(&node_dir.join("node_key.json"))?;
        let mut config = NodeConfig {
            moniker: format!("node-{i}"),
            data_dir: PathBuf::from("data"),
            genesis: PathBuf::from("../genesis.json"),
            node_key: PathBuf::from("node_key.json"),
            ..Default::default()
        };
        config.rpc.listen = ([127, 0, 0, 1], ports[i].0).into();
        config.rpc.for_loopback_network();
        config.p2p.listen = format!("/ip4/127.0.0.1/tcp/{}", ports[i].1);
        config.p2p.peers = (0..n)
            .filter(|j| *j != i)
            .map(|j| format!("/ip4/127.0.0.1/tcp/{}", ports[j].1))
            .collect();
        config.p2p.gossip_listen = format!("/ip4/127.0.0.1/tcp/{}", ports[i].2);
        config.p2p.gossip_peers = (0..n)
            .filter(|j| *j != i)
            .map(|j| format!("/ip4/127.0.0.1/tcp/{}", ports[j].2))
            .collect();
        config.metrics.listen = Some(([127, 0, 0, 1], ports[i].3).into());
        let config_path = node_dir.join("node.toml");
        std::fs::write(&config_path, config.to_toml())?;
        let log = std::fs::File::create(node_dir.join("node.log"))?;
        let child = Command::new(&exe)
            .arg("node")
            .arg("--config")
            .arg(&config_path)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .process_group(0)
            .spawn()
            .with_context(|| format!("starting node-{i}"))?;
        nodes.push(NodeInfo {
            pid: child.id(),
            rpc: format!("http://127.0.0.1:{}", ports[i].0),
            p2p: config.p2p.listen.clone(),
            gossip: config.p2p.gossip_listen.clone(),
            metrics: format!("http://127.0.0.1:{}/metrics", ports[i].3),
            config: config_path,
        });
    }
    let info = TestnetInfo { chain_id, nodes };
    std::fs::write(
        dir.join("testnet.json"),
        serde_json::to_string_pretty(&info)?,
    )?;

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let progress = crate::progress::bar(n as u64, "nodes answering");
    for node in &info.nodes {
        rt.block_on(wait_for_rpc(&node.rpc, Duration::from_secs(60)))
            .with_context(|| format!("node at {} did not come up; see its node.log", node.rpc))?;
        progress.inc(1);
    }
    progress.finish_and_clear();
    println!(
        "testnet of {n} validators is up (chain id {chain_id}); files in {}",
        dir.display()
    );
    for (i, node) in info.nodes.iter().enumerate() {
        println!(
            "node-{i}: rpc {}  p2p {}  gossip {}  metrics {}  pid {}",
            node.rpc, node.p2p, node.gossip, node.metrics, node.pid
        );
    }
    println!();
    println!("Accounts (funded; account N administers orgN, validator N's organisation; the rest belong to org0):");
    for i in 0..accounts {
        let key = AccountKey::dev(i);
        println!(
            "({i}) {}  0x{}",
            key.address(),
            hex::encode(key.secret_bytes())
        );
    }
    println!("These keys are public: never use them outside development.");
    println!();
    println!("stop it with: trellis testnet down --dir {}", dir.display());
    Ok(())
}

async fn wait_for_rpc(url: &str, limit: Duration) -> anyhow::Result<()> {
    let client = HttpClientBuilder::default().build(url)?;
    let start = Instant::now();
    loop {
        if trellis_api::EthApiClient::block_number(&client)
            .await
            .is_ok()
        {
            return Ok(());
        }
        if start.elapsed() > limit {
            bail!("no answer from {url} within {limit:?}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn down(dir: &Path) -> anyhow::Result<()> {
    let path = dir.join("testnet.json");
    let info: TestnetInfo = serde_json::from_str(
        &std::fs::read_to_string(&path)
            .with_context(|| format!("no testnet recorded at {}", path.display()))?,
    )?;
    for node in &info.nodes {
        let pid = nix::unistd::Pid::from_raw(node.pid as i32);
        match nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM) {
            Ok(()) => println!("stopped pid {}", node.pid),
            Err(nix::errno::Errno::ESRCH) => println!("pid {} was not running", node.pid),
            Err(e) => println!("could not stop pid {}: {e}", node.pid),
        }
    }
    std::fs::remove_file(&path)?;
    Ok(())
}
