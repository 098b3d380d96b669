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
        /// Sub-chains to create by main-chain vote once the validators run (chain ids
        /// CHAIN_ID+1, +2, …): every organisation a member, every node a validator, hosted
        /// in the same processes; node-0 anchors and relays between the chains with dev
        /// account N (N = the number of validators).
        #[arg(long, default_value_t = 0)]
        subchains: usize,
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
    /// The sub-chains `--subchains` created.
    #[serde(default)]
    pub subchains: Vec<SubchainInfo>,
}

#[derive(Serialize, Deserialize)]
pub struct SubchainInfo {
    pub chain_id: u64,
    /// Each node's JSON-RPC URL for this chain, in node order.
    pub rpc: Vec<String>,
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
            subchains,
        } => up(validators, &dir, chain_id, accounts, subchains),
        TestnetCommand::Down { dir } => down(&dir),
    }
}

fn up(n: usize, dir: &Path, chain_id: u64, accounts: u32, subchains: usize) -> anyhow::Result<()> {
    if n == 0 {
        bail!("a testnet needs at least one validator");
    }
    if subchains > 0 && accounts as usize <= n {
        bail!(
            "--subchains needs more than {n} dev accounts (--accounts): node-0's courier signs \
             with account {n}"
        );
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

    // (rpc, p2p, gossip, metrics) of each node, then (rpc, p2p, gossip) of each node on
    // each sub-chain.
    let all_ports = crate::ports::free_ports(4 * n + 3 * n * subchains)?;
    let (main_ports, sub_ports) = all_ports.split_at(4 * n);
    let ports: Vec<(u16, u16, u16, u16)> = main_ports
        .chunks_exact(4)
        .map(|p| (p[0], p[1], p[2], p[3]))
        .collect();
    // sub_ports[k][i]: node i's ports on sub-chain k.
    let sub_ports: Vec<Vec<[u16; 3]>> = sub_ports
        .chunks_exact(3 * n)
        .map(|c| c.chunks_exact(3).map(|p| [p[0], p[1], p[2]]).collect())
        .collect();
    let sub_ids: Vec<u64> = (1..=subchains as u64).map(|k| chain_id + k).collect();
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
        for (k, id) in sub_ids.iter().enumerate() {
            let here = sub_ports[k][i];
            let others = |slot: usize| -> Vec<String> {
                (0..n)
                    .filter(|j| *j != i)
                    .map(|j| format!("/ip4/127.0.0.1/tcp/{}", sub_ports[k][j][slot]))
                    .collect()
            };
            let mut p2p = config.p2p.clone();
            p2p.listen = format!("/ip4/127.0.0.1/tcp/{}", here[1]);
            p2p.peers = others(1);
            p2p.gossip_listen = format!("/ip4/127.0.0.1/tcp/{}", here[2]);
            p2p.gossip_peers = others(2);
            config.chains.push(trellis_node::ChainConfig {
                genesis: None,
                subchain: Some(*id),
                rpc_listen: ([127, 0, 0, 1], here[0]).into(),
                p2p,
                metrics_listen: None,
            });
        }
        if i == 0 && subchains > 0 {
            // node-0 is the backbone node: it anchors the main chain and each sub-chain on
            // each other and relays their messages, signing with a dev account of org0 (carried into every
            // sub-chain's genesis with its organisation).
            let courier = AccountKey::dev(n as u32);
            crate::keystore::encrypt(&courier, &node_dir.join("courier.json"), "testnet")?;
            std::fs::write(node_dir.join("courier.pw"), "testnet\n")?;
            config.anchoring.keystore = Some(PathBuf::from("courier.json"));
            config.anchoring.password_file = Some(PathBuf::from("courier.pw"));
            config.anchoring.heartbeat_secs = 1;
        }
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
    let subchain_infos = sub_ids
        .iter()
        .zip(&sub_ports)
        .map(|(id, p)| SubchainInfo {
            chain_id: *id,
            rpc: p
                .iter()
                .map(|q| format!("http://127.0.0.1:{}", q[0]))
                .collect(),
        })
        .collect();
    let info = TestnetInfo {
        chain_id,
        nodes,
        subchains: subchain_infos,
    };
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
    let keys: Vec<_> = keys
        .iter()
        .map(|k| alloy_primitives::B256::from(*k.public().as_bytes()))
        .collect();
    for sub in &info.subchains {
        rt.block_on(create_subchain(&info.nodes[0].rpc, n, sub, &keys))
            .with_context(|| {
                format!(
                    "creating sub-chain {} (the nodes are running: stop them with `trellis \
                     testnet down --dir {}`)",
                    sub.chain_id,
                    dir.display()
                )
            })?;
    }
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
    for sub in &info.subchains {
        println!(
            "sub-chain {} (created by vote; node-0 anchors and relays): rpc {}",
            sub.chain_id,
            sub.rpc.join("  ")
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
    if !info.subchains.is_empty() {
        println!("Account {n} signs node-0's anchors and relays: send your own transactions from the others.");
    }
    println!("These keys are public: never use them outside development.");
    println!();
    println!("stop it with: trellis testnet down --dir {}", dir.display());
    Ok(())
}

/// Proposes sub-chain `sub` on the main chain (org0's admin, dev account 0) with every
/// organisation a member and every node a validator, votes for it with the other admins until
/// it passes, and waits until every node runs it.
async fn create_subchain(
    rpc: &str,
    n: usize,
    sub: &SubchainInfo,
    keys: &[alloy_primitives::B256],
) -> anyhow::Result<()> {
    use alloy_sol_types::{SolCall, SolEvent};
    use trellis_system::governance::abi;
    use trellis_system::GOVERNANCE_ADDRESS;
    let endpoint = crate::gov::Endpoint {
        rpc: rpc.to_owned(),
        token: None,
        ca_cert: None,
        client_cert: None,
        client_key: None,
    };
    let signer = |i: usize| crate::gov::Signer {
        keystore: None,
        password_file: None,
        private_key: None,
        dev_account: Some(i as u32),
    };
    let propose = abi::proposeCreateSubchainCall {
        chainId: sub.chain_id,
        name: format!("sub-{}", sub.chain_id),
        members: (0..n).map(|i| format!("org{i}")).collect(),
        validators: keys
            .iter()
            .map(|k| abi::SubchainValidator {
                publicKey: *k,
                power: 1,
            })
            .collect(),
        effectiveHeight: 0,
    };
    let mut receipt = crate::gov::send_to(
        &endpoint,
        &signer(0),
        GOVERNANCE_ADDRESS,
        propose.abi_encode(),
    )
    .await?;
    let id = receipt
        .logs()
        .iter()
        .find_map(|l| abi::ProposalCreated::decode_log(&l.inner).ok())
        .map(|e| e.id)
        .context("no ProposalCreated event")?;
    let passed = |r: &alloy_rpc_types_eth::TransactionReceipt| {
        r.logs()
            .iter()
            .any(|l| abi::ProposalPassed::decode_log(&l.inner).is_ok())
    };
    let mut voter = 1;
    while !passed(&receipt) {
        if voter >= n {
            bail!("proposal {id} did not pass with every organisation's vote");
        }
        let vote = abi::voteCall {
            proposalId: id,
            approve: true,
        };
        receipt = crate::gov::send_to(
            &endpoint,
            &signer(voter),
            GOVERNANCE_ADDRESS,
            vote.abi_encode(),
        )
        .await?;
        voter += 1;
    }
    for url in &sub.rpc {
        wait_for_rpc(url, Duration::from_secs(120))
            .await
            .with_context(|| format!("sub-chain {} never answered at {url}", sub.chain_id))?;
    }
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
