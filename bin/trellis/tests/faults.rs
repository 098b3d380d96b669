//! Seeded fault scenarios: four validators (seven in one scenario), real processes on
//! loopback, under load while a schedule derived from a seed kills (SIGKILL), restarts and
//! freezes (SIGSTOP) them. Each network first measures its fault-free throughput (a load
//! above what it can take, for six seconds) and is then driven at 65 % of it through the
//! faults — the same open-loop load, so the share actually offered is printed. Afterwards the invariants are checked by code: one
//! block per height everywhere, identical state roots, every acknowledged transaction present
//! exactly once, and liveness back within a bound. A failure names its seed; replay it with
//! `TRELLIS_FAULT_SEEDS=<seed> cargo test -p trellis --test faults` (and
//! `TRELLIS_FAULT_VALIDATORS=7` for seven validators), or run many with `scripts/soak`.
//!
//! The crash-durability storm SIGKILLs validators one after another at random moments under
//! load (`TRELLIS_CRASH_KILLS`, 12 in CI, `scripts/soak --crash 100` for the full run) and
//! also checks that no node ever comes back below a height it had committed before the kill.

mod common;

use alloy_primitives::{Address, Bytes, B256};
use common::*;
use jsonrpsee::core::client::ClientT;
use jsonrpsee::http_client::HttpClient;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use trellis_crypto::AccountKey;

/// Validators of the standard scenarios (`TRELLIS_FAULT_VALIDATORS` overrides it for
/// `seeded_crash_and_pause_schedules_keep_every_invariant`); one CI scenario runs seven.
const VALIDATORS: usize = 4;
const SENDERS: u32 = 200;
/// After the last fault ends, every node must be final at a new height within this.
const LIVENESS_BOUND: Duration = Duration::from_secs(90);
const CI_SEEDS: &[u64] = &[11, 12];
/// SIGKILLs in the CI crash storm.
const CI_CRASH_KILLS: usize = 12;

#[derive(Debug, Clone, Copy)]
enum Fault {
    /// SIGKILL, then restart from the same data directory.
    Kill { node: usize, down_ms: u64 },
    /// Freeze the process (SIGSTOP) and resume it (SIGCONT): to its peers it is cut off
    /// mid-conversation, with connections that stop answering, then come back.
    Pause { node: usize, for_ms: u64 },
    /// Let the network run undisturbed for a while.
    Calm { ms: u64 },
}

fn schedule(seed: u64, validators: usize) -> Vec<Fault> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..5)
        .map(|_| match rng.gen_range(0..3) {
            0 => Fault::Kill {
                node: rng.gen_range(0..validators),
                down_ms: rng.gen_range(300..3_000),
            },
            1 => Fault::Pause {
                node: rng.gen_range(0..validators),
                for_ms: rng.gen_range(500..4_000),
            },
            _ => Fault::Calm {
                ms: rng.gen_range(300..1_500),
            },
        })
        .collect()
}

/// `kills` SIGKILLs of random validators, one at a time, at random moments.
fn crash_storm(seed: u64, kills: usize) -> Vec<Fault> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..kills)
        .flat_map(|_| {
            [
                Fault::Kill {
                    node: rng.gen_range(0..VALIDATORS),
                    down_ms: rng.gen_range(50..1_500),
                },
                Fault::Calm {
                    ms: rng.gen_range(0..1_200),
                },
            ]
        })
        .collect()
}

struct Node {
    config: PathBuf,
    rpc: String,
    log: PathBuf,
    proc: Option<Proc>,
    starts: u32,
    /// Environment for the process (fault injection).
    env: Vec<(&'static str, &'static str)>,
    /// Validator address (what block headers name as builder).
    validator: Address,
}

impl Node {
    fn start(&mut self) {
        self.starts += 1;
        let log = self.log.with_extension(format!("{}.log", self.starts));
        self.proc = Some(Proc::spawn_with_env(
            &["node", "--config", self.config.to_str().expect("path")],
            &log,
            &self.env,
        ));
    }
}

/// Keys, genesis and configs for a network of `validators` nodes on loopback.
fn build_network(dir: &Path, validators: usize) -> Vec<Node> {
    let mut publics = Vec::new();
    for i in 0..validators {
        std::fs::create_dir_all(dir.join(format!("node-{i}"))).expect("dir");
        let out = run_cli(
            dir,
            &["keys", "new", "--out", &format!("node-{i}/node_key.json")],
        );
        publics.push(
            out.lines()
                .find_map(|l| l.strip_prefix("public key: "))
                .expect("key")
                .to_string(),
        );
    }
    let dev_accounts = SENDERS.to_string();
    let mut args = vec![
        "genesis",
        "--dev-accounts",
        &dev_accounts,
        "--out",
        "genesis.json",
    ];
    for p in &publics {
        args.extend(["--validator", p.as_str()]);
    }
    run_cli(dir, &args);

    let ports = free_ports(3 * validators);
    let (p2p, rest) = ports.split_at(validators);
    let (rpc, gossip_ports) = rest.split_at(validators);
    let mut nodes = Vec::new();
    for i in 0..validators {
        let peers: Vec<String> = (0..validators)
            .filter(|j| *j != i)
            .map(|j| format!("\"/ip4/127.0.0.1/tcp/{}\"", p2p[j]))
            .collect();
        let gossip: Vec<String> = (0..validators)
            .filter(|j| *j != i)
            .map(|j| format!("\"/ip4/127.0.0.1/tcp/{}\"", gossip_ports[j]))
            .collect();
        let config = format!(
            "moniker = \"node-{i}\"\ndata_dir = \"data\"\ngenesis = \"../genesis.json\"\nnode_key = \"node_key.json\"\n\
             [rpc]\nlisten = \"127.0.0.1:{}\"\ncalls_per_second = 1000000.0\ncall_burst = 2000000\n[p2p]\nlisten = \"/ip4/127.0.0.1/tcp/{}\"\npeers = [{}]\ngossip_listen = \"/ip4/127.0.0.1/tcp/{}\"\ngossip_peers = [{}]\n\
             [consensus]\ntimeout_propose_ms = 1000\ntimeout_prevote_ms = 500\ntimeout_precommit_ms = 500\nempty_block_interval_ms = 300\n[mempool]\nmax_txs = 400000\n",
            rpc[i],
            p2p[i],
            peers.join(", "),
            gossip_ports[i],
            gossip.join(", ")
        );
        let path = dir.join(format!("node-{i}/node.toml"));
        std::fs::write(&path, config).expect("config");
        nodes.push(Node {
            config: path,
            rpc: format!("http://127.0.0.1:{}", rpc[i]),
            log: dir.join(format!("node-{i}/node")),
            proc: None,
            starts: 0,
            env: Vec::new(),
            validator: {
                let key: B256 = publics[i].parse().expect("key");
                Address::from_slice(&alloy_primitives::keccak256(key)[12..])
            },
        });
    }
    nodes
}

/// Transfers a second offered while the fault-free throughput is measured: more than four
/// validators on one machine can take, so that what they commit is their capacity.
const SATURATING: f64 = 3_000.0;
/// Transfers one sender keeps in flight (inside the pool's nonce-gap bound of 1,024): enough
/// that a sender keeps offering through seconds of stall.
const WINDOW: usize = 1_000;
/// A sender sends again, to another node, what was not committed within this: its lowest
/// nonces, this many at a time.
const RESEND_AFTER: Duration = Duration::from_secs(3);
const RESEND_AT_ONCE: usize = 16;
/// How long the fault-free throughput is measured before the faults start.
const CALIBRATION: Duration = Duration::from_secs(6);

/// One sender's transfers in flight, by nonce.
struct Sender {
    key: AccountKey,
    next: u64,
    unacked: BTreeMap<u64, (Bytes, Instant)>,
}

#[derive(Default)]
struct LoadState {
    senders: Vec<Sender>,
    /// Every transfer sent: its sender and nonce.
    sent: HashMap<B256, (usize, u64)>,
    /// Acknowledged transfers, with the block they were committed in.
    acked: Vec<(B256, String)>,
    /// Highest height whose transactions were read.
    scanned: u64,
    offered: usize,
}

/// An open-loop load: transfers at a set rate from many senders, each keeping a window in
/// flight, sent in JSON-RPC batches to the nodes in turn and sent again to another node when
/// they wait too long (their node may have died with them). A transfer is acknowledged when a
/// node shows it in a committed block — final, since finality is immediate.
struct Load {
    state: Arc<Mutex<LoadState>>,
    /// Offered transfers a second (f64 bits).
    rate: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    fn start(urls: Vec<String>, rate: f64) -> Load {
        let state = Arc::new(Mutex::new(LoadState {
            senders: (0..SENDERS)
                .map(|s| Sender {
                    key: AccountKey::dev(s),
                    next: 0,
                    unacked: BTreeMap::new(),
                })
                .collect(),
            ..Default::default()
        }));
        let rate = Arc::new(AtomicU64::new(rate.to_bits()));
        let stop = Arc::new(AtomicBool::new(false));
        let clients: Arc<Vec<_>> = Arc::new(urls.iter().map(|u| client(u)).collect());
        let submit = tokio::spawn(Self::submit(
            clients.clone(),
            state.clone(),
            rate.clone(),
            stop.clone(),
        ));
        let watch = tokio::spawn(Self::watch(clients, state.clone(), stop.clone()));
        Load {
            state,
            rate,
            stop,
            tasks: vec![submit, watch],
        }
    }

    fn set_rate(&self, rate: f64) {
        self.rate.store(rate.to_bits(), Ordering::Relaxed);
    }

    fn acknowledged(&self) -> usize {
        self.state.lock().map_or(0, |s| s.acked.len())
    }

    fn offered(&self) -> usize {
        self.state.lock().map_or(0, |s| s.offered)
    }

    async fn stop(self) -> Vec<(B256, String)> {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.tasks {
            let _ = t.await;
        }
        self.state
            .lock()
            .map(|s| s.acked.clone())
            .unwrap_or_default()
    }

    /// Every 50 ms: new transfers as the rate allows, and again what waited too long.
    async fn submit(
        clients: Arc<Vec<HttpClient>>,
        state: Arc<Mutex<LoadState>>,
        rate: Arc<AtomicU64>,
        stop: Arc<AtomicBool>,
    ) {
        const TICK: Duration = Duration::from_millis(50);
        let mut credit = 0.0f64;
        let (mut cursor, mut pick) = (0usize, 0usize);
        let mut last = Instant::now();
        while !stop.load(Ordering::Relaxed) {
            tokio::time::sleep(TICK).await;
            let rate = f64::from_bits(rate.load(Ordering::Relaxed));
            credit = (credit + rate * last.elapsed().as_secs_f64()).min(rate * 0.2);
            last = Instant::now();
            let (fresh, again) = {
                let Ok(mut st) = state.lock() else { return };
                let now = Instant::now();
                let mut again = Vec::new();
                // The lowest nonces are what a lost transfer blocks; the rest are sent again
                // when their turn comes.
                for sender in &mut st.senders {
                    for (raw, sent) in sender.unacked.values_mut().take(RESEND_AT_ONCE) {
                        if now - *sent > RESEND_AFTER {
                            *sent = now;
                            again.push(raw.clone());
                        }
                    }
                }
                let mut fresh = Vec::new();
                let count = st.senders.len();
                let mut idle = 0;
                while credit >= 1.0 && idle < count {
                    let s = cursor;
                    cursor = (cursor + 1) % count;
                    let sender = &mut st.senders[s];
                    if sender.unacked.len() >= WINDOW {
                        idle += 1;
                        continue;
                    }
                    idle = 0;
                    let nonce = sender.next;
                    sender.next += 1;
                    let raw = transfer(&sender.key, nonce, Address::repeat_byte(0x42), 1);
                    sender.unacked.insert(nonce, (raw.clone(), now));
                    st.sent
                        .insert(alloy_primitives::keccak256(&raw), (s, nonce));
                    st.offered += 1;
                    fresh.push(raw);
                    credit -= 1.0;
                }
                (fresh, again)
            };
            // Sent without waiting for the answers: a frozen node must not slow the load.
            for raws in [fresh, again] {
                for chunk in raws.chunks(100) {
                    pick = (pick + 1) % clients.len();
                    let (clients, chunk) = (clients.clone(), chunk.to_vec());
                    tokio::spawn(async move {
                        let _ = tokio::time::timeout(
                            Duration::from_secs(2),
                            try_send_batch(&clients[pick], &chunk),
                        )
                        .await;
                    });
                }
            }
        }
    }

    /// Every 200 ms: reads the blocks committed since, from the next node that answers.
    async fn watch(
        clients: Arc<Vec<HttpClient>>,
        state: Arc<Mutex<LoadState>>,
        stop: Arc<AtomicBool>,
    ) {
        let mut pick = 0usize;
        while !stop.load(Ordering::Relaxed) {
            tokio::time::sleep(Duration::from_millis(200)).await;
            pick = (pick + 1) % clients.len();
            let c = &clients[pick];
            let Some(tip) = try_block_number(c).await else {
                continue;
            };
            let from = state.lock().map_or(tip, |s| s.scanned) + 1;
            for h in from..=tip {
                let Some(block) = try_block(c, h).await else {
                    break;
                };
                let Ok(mut st) = state.lock() else { return };
                let block_hash = block["hash"].as_str().unwrap_or_default().to_string();
                for tx in block["transactions"].as_array().into_iter().flatten() {
                    let Some(hash) = tx.as_str().and_then(|h| h.parse::<B256>().ok()) else {
                        continue;
                    };
                    if let Some(&(s, nonce)) = st.sent.get(&hash) {
                        st.senders[s].unacked.retain(|n, _| *n > nonce);
                        st.acked.push((hash, block_hash.clone()));
                    }
                }
                st.scanned = h;
            }
        }
    }
}

async fn try_block_number(c: &HttpClient) -> Option<u64> {
    let n = tokio::time::timeout(
        Duration::from_secs(2),
        c.request::<alloy_primitives::U64, _>("eth_blockNumber", jsonrpsee::rpc_params![]),
    )
    .await
    .ok()?
    .ok()?;
    Some(n.to())
}

async fn try_block(c: &HttpClient, n: u64) -> Option<serde_json::Value> {
    let block: serde_json::Value = tokio::time::timeout(
        Duration::from_secs(2),
        c.request(
            "eth_getBlockByNumber",
            jsonrpsee::rpc_params![alloy_primitives::U64::from(n), false],
        ),
    )
    .await
    .ok()?
    .ok()?;
    (!block.is_null()).then_some(block)
}

async fn try_send_batch(c: &HttpClient, raws: &[Bytes]) {
    let mut batch = jsonrpsee::core::params::BatchRequestBuilder::new();
    for raw in raws {
        if batch
            .insert("eth_sendRawTransaction", jsonrpsee::rpc_params![raw])
            .is_err()
        {
            return;
        }
    }
    let _ = c.batch_request::<B256>(batch).await;
}

/// Offers the saturating load for [`CALIBRATION`] and returns what was committed a second:
/// the fault-free throughput of this very network and load generator.
async fn calibrate(load: &Load) -> f64 {
    tokio::time::sleep(Duration::from_secs(2)).await;
    let before = load.acknowledged();
    let started = Instant::now();
    tokio::time::sleep(CALIBRATION).await;
    (load.acknowledged() - before) as f64 / started.elapsed().as_secs_f64()
}

/// Checks every invariant; returns the builders of the committed blocks.
async fn check_invariants(
    nodes: &[Node],
    acked: &[(B256, String)],
) -> Result<HashSet<Address>, String> {
    let clients: Vec<_> = nodes.iter().map(|n| client(&n.rpc)).collect();
    // Liveness: every node passes the highest height seen at heal time, plus two.
    let target = {
        let mut best = 0;
        for c in &clients {
            if let Ok(h) = tokio::time::timeout(Duration::from_secs(5), block_number(c)).await {
                best = best.max(h);
            }
        }
        best + 2
    };
    let start = Instant::now();
    for (i, c) in clients.iter().enumerate() {
        loop {
            if let Ok(h) = tokio::time::timeout(Duration::from_secs(5), block_number(c)).await {
                if h >= target {
                    break;
                }
            }
            if start.elapsed() > LIVENESS_BOUND {
                return Err(format!("node {i} did not reach height {target} within {LIVENESS_BOUND:?} after the faults ended"));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    // Safety: one block (and one state) per height on every node.
    let mut seen_txs: HashMap<B256, (u64, String)> = HashMap::new();
    let mut builders = HashSet::new();
    for h in 0..=target {
        let first = block(&clients[0], h).await;
        if h > 0 {
            builders.insert(
                first["miner"]
                    .as_str()
                    .and_then(|m| m.parse::<Address>().ok())
                    .unwrap_or_default(),
            );
        }
        for (i, c) in clients.iter().enumerate().skip(1) {
            let b = block(c, h).await;
            if b["hash"] != first["hash"] || b["stateRoot"] != first["stateRoot"] {
                return Err(format!(
                    "height {h}: node 0 has {} but node {i} has {}",
                    first["hash"], b["hash"]
                ));
            }
        }
        let block_hash = first["hash"].as_str().unwrap_or_default().to_string();
        for tx in first["transactions"].as_array().into_iter().flatten() {
            let hash: B256 = tx
                .as_str()
                .and_then(|t| t.parse().ok())
                .ok_or_else(|| format!("height {h}: unreadable transaction hash {tx}"))?;
            if let Some((prev, _)) = seen_txs.insert(hash, (h, block_hash.clone())) {
                return Err(format!(
                    "transaction {hash} included twice, at heights {prev} and {h}"
                ));
            }
        }
    }
    // Durability: every acknowledged transaction is there, in the block it was reported in;
    // and (for a sample, one request each) its receipt says so too.
    for (hash, block_hash) in acked {
        match seen_txs.get(hash) {
            None => return Err(format!("acknowledged transaction {hash} is missing")),
            Some((h, found)) if found != block_hash => {
                return Err(format!(
                "acknowledged transaction {hash} moved from {block_hash} to {found} (height {h})"
            ))
            }
            Some(_) => {}
        }
    }
    let step = (acked.len() / 200).max(1);
    for (hash, block_hash) in acked.iter().step_by(step) {
        let Some(r) = receipt(&clients[0], *hash).await else {
            return Err(format!("acknowledged transaction {hash} has no receipt"));
        };
        if r["blockHash"].as_str() != Some(block_hash.as_str()) {
            return Err(format!(
                "the receipt of acknowledged transaction {hash} names {} instead of {block_hash}",
                r["blockHash"]
            ));
        }
    }
    Ok(builders)
}

async fn run_schedule(seed: u64, validators: usize, schedule: Vec<Fault>) -> Result<usize, String> {
    run_network(seed, validators, schedule, |_| {})
        .await
        .map(|(acked, _)| acked)
}

/// Runs `schedule` on a fresh network whose nodes `prepare` may adjust before they start.
async fn run_network(
    seed: u64,
    validators: usize,
    schedule: Vec<Fault>,
    prepare: impl FnOnce(&mut [Node]),
) -> Result<(usize, HashSet<Address>), String> {
    // One network at a time: each measures its own fault-free throughput, which another
    // network sharing the cores would distort.
    static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    let _alone = ONE_AT_A_TIME.lock().await;
    let tmp = tempfile::tempdir().map_err(|e| e.to_string())?;
    let mut nodes = build_network(tmp.path(), validators);
    prepare(&mut nodes);
    for n in nodes.iter_mut() {
        n.start();
    }
    for n in &nodes {
        wait_for_rpc(&n.rpc, Duration::from_secs(60)).await;
    }
    wait_height(&client(&nodes[0].rpc), 2, Duration::from_secs(60)).await;

    let load = Load::start(nodes.iter().map(|n| n.rpc.clone()).collect(), SATURATING);
    let fault_free = calibrate(&load).await;
    // At least half the fault-free throughput under faults, with a margin for the moments a
    // sender's window is full.
    let offered_rate = (fault_free * 0.65).max(1.0);
    load.set_rate(offered_rate);
    let (acked_before, offered_before) = (load.acknowledged(), load.offered());
    let faults_started = Instant::now();
    let mut lost = Vec::new();
    for fault in schedule {
        match fault {
            Fault::Kill { node, down_ms } => {
                // What the node has committed (and said so) before the kill must survive it.
                let c = client(&nodes[node].rpc);
                let committed = tokio::time::timeout(Duration::from_secs(2), block_number(&c))
                    .await
                    .ok();
                if let Some(mut p) = nodes[node].proc.take() {
                    p.sigkill();
                }
                tokio::time::sleep(Duration::from_millis(down_ms)).await;
                nodes[node].start();
                if let Some(before) = committed {
                    wait_for_rpc(&nodes[node].rpc, Duration::from_secs(60)).await;
                    let after = block_number(&c).await;
                    if after < before {
                        lost.push(format!(
                            "node {node} committed height {before} before a SIGKILL but restarted at {after}"
                        ));
                    }
                }
            }
            Fault::Pause { node, for_ms } => {
                let pid = nodes[node].proc.as_ref().map(|p| p.child.id() as i32);
                if let Some(pid) = pid {
                    let pid = nix::unistd::Pid::from_raw(pid);
                    let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGSTOP);
                    tokio::time::sleep(Duration::from_millis(for_ms)).await;
                    let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGCONT);
                }
            }
            Fault::Calm { ms } => tokio::time::sleep(Duration::from_millis(ms)).await,
        }
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let during = faults_started.elapsed().as_secs_f64();
    let (acked_during, offered_during) = (
        load.acknowledged() - acked_before,
        load.offered() - offered_before,
    );
    let acked = load.stop().await;
    eprintln!(
        "seed {seed}: fault-free {fault_free:.0} transfers/s; under faults {:.0}/s offered \
         ({:.2} of fault-free), {:.0}/s acknowledged over {during:.1} s",
        offered_during as f64 / during,
        offered_during as f64 / during / fault_free.max(1.0),
        acked_during as f64 / during,
    );
    if !lost.is_empty() {
        return Err(lost.join("; "));
    }
    if acked.is_empty() {
        return Err("no transaction was acknowledged under the fault schedule".into());
    }
    let result = check_invariants(&nodes, &acked)
        .await
        .map(|builders| (acked.len(), builders));
    if result.is_err() {
        // Keep the logs of a failing seed for inspection.
        let kept = std::env::temp_dir().join(format!("trellis-fault-seed-{seed}"));
        let _ = std::fs::remove_dir_all(&kept);
        let _ = std::fs::rename(tmp.path(), &kept);
        eprintln!("logs of seed {seed} kept in {}", kept.display());
    }
    drop(nodes);
    result
}

fn seeds() -> Vec<u64> {
    match std::env::var("TRELLIS_FAULT_SEEDS") {
        Ok(list) => list
            .split(',')
            .filter_map(|s| s.trim().parse().ok())
            .collect(),
        Err(_) => CI_SEEDS.to_vec(),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn seeded_crash_and_pause_schedules_keep_every_invariant() {
    let mut failures = Vec::new();
    for seed in seeds() {
        let validators = std::env::var("TRELLIS_FAULT_VALIDATORS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(VALIDATORS);
        let schedule = schedule(seed, validators);
        match run_schedule(seed, validators, schedule.clone()).await {
            Ok(acked) => {
                eprintln!("seed {seed}: ok ({acked} acknowledged transactions) under {schedule:?}")
            }
            Err(e) => failures.push(format!("seed {seed} ({schedule:?}): {e}")),
        }
    }
    let unique: HashSet<_> = failures.iter().collect();
    assert!(
        unique.is_empty(),
        "fault scenarios failed:\n{}",
        failures.join("\n")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn sigkills_at_random_moments_lose_nothing() {
    let kills = std::env::var("TRELLIS_CRASH_KILLS")
        .ok()
        .and_then(|k| k.parse().ok())
        .unwrap_or(CI_CRASH_KILLS);
    let seed = 7_700 + kills as u64;
    let started = Instant::now();
    match run_schedule(seed, VALIDATORS, crash_storm(seed, kills)).await {
        Ok(acked) => eprintln!(
            "crash storm: {kills} SIGKILLs in {:?}; {acked} acknowledged transactions all present, nodes agree",
            started.elapsed()
        ),
        Err(e) => panic!("crash storm (seed {seed}, {kills} kills): {e}"),
    }
}

/// A validator that proposes blocks with a wrong state root (built with the test-only
/// `fault-injection` feature): honest validators refuse each, rounds move on to the next
/// proposer, nothing it built is ever committed, and every invariant holds.
#[cfg(feature = "fault-injection")]
#[tokio::test(flavor = "multi_thread")]
async fn a_validator_proposing_garbage_cannot_stop_or_fork_the_chain() {
    let seed = 4_242;
    let schedule = vec![Fault::Calm { ms: 12_000 }];
    let mut byzantine = Address::ZERO;
    let (acked, builders) = run_network(seed, VALIDATORS, schedule, |nodes| {
        nodes[0].env = vec![("TRELLIS_FAULT", "garbage-blocks")];
        byzantine = nodes[0].validator;
    })
    .await
    .unwrap_or_else(|e| panic!("garbage proposer: {e}"));
    assert!(acked > 0);
    assert!(
        !builders.contains(&byzantine),
        "a block built by the garbage proposer was committed"
    );
    assert!(
        builders.len() >= 2,
        "honest validators built the blocks: {builders:?}"
    );
    eprintln!("garbage proposer: {acked} acknowledged transactions; committed blocks built by {builders:?}");
}

/// The seeded scenario on seven validators (tolerating two faulty): the same invariants.
#[tokio::test(flavor = "multi_thread")]
async fn seven_validators_keep_every_invariant() {
    let seed = 21;
    let schedule = schedule(seed, 7);
    match run_schedule(seed, 7, schedule.clone()).await {
        Ok(acked) => {
            eprintln!("7 validators, seed {seed}: ok ({acked} acknowledged) under {schedule:?}")
        }
        Err(e) => panic!("7 validators, seed {seed} ({schedule:?}): {e}"),
    }
}
