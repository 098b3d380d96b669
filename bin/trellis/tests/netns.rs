//! Four validators on four "hosts": Linux network namespaces joined by a bridge, each node
//! with its own address and real TCP between them, every link delayed and lossy (`tc netem`,
//! where the kernel provides it).
//! One host is cut off (its link goes down) while the others keep finalizing, then healed:
//! it catches up and agrees on every block. Then a schedule derived from a seed
//! (`TRELLIS_NETNS_SEED`, default 5) cuts and heals links — sometimes two hosts at once, which
//! stalls the chain until they return — under a transfer load, and the invariants are checked:
//! one block and state root per height everywhere, every acknowledged transfer present once,
//! liveness after the last heal. Needs root and iproute2; elsewhere it says why
//! it skips.

mod common;

use alloy_primitives::{Address, B256};
use common::*;
use jsonrpsee::core::client::ClientT;
use jsonrpsee::rpc_params;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::Value;
use std::collections::HashSet;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use trellis_crypto::AccountKey;

const LIMIT: Duration = Duration::from_secs(180);
const NODES: usize = 4;

fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

fn tc(ns: &str, args: &[&str]) -> Result<(), String> {
    let mut all = vec!["netns", "exec", ns, "tc"];
    all.extend_from_slice(args);
    ip(&all)
}

/// The namespaces of one test run; removed (with whatever runs in them) when dropped.
struct Hosts {
    prefix: String,
    procs: Vec<std::process::Child>,
}

impl Hosts {
    fn ns(&self, name: &str) -> String {
        format!("{}-{name}", self.prefix)
    }

    fn addr(i: usize) -> String {
        format!("10.77.0.{}", i + 1)
    }

    /// A hub namespace with a bridge; one namespace per node and one for the test's client,
    /// each joined to the bridge by a veth pair; netem delay and loss on every node link.
    fn create() -> Result<Hosts, String> {
        let hosts = Hosts {
            prefix: format!("trl{}", std::process::id()),
            procs: Vec::new(),
        };
        let hub = hosts.ns("hub");
        ip(&["netns", "add", &hub])?;
        ip(&["-n", &hub, "link", "add", "br0", "type", "bridge"])?;
        ip(&["-n", &hub, "link", "set", "br0", "up"])?;
        for (i, name) in (0..NODES)
            .map(|i| (i, format!("n{i}")))
            .chain([(99, "client".to_owned())])
        {
            let ns = hosts.ns(&name);
            ip(&["netns", "add", &ns])?;
            let hub_end = format!("v{name}");
            ip(&[
                "link", "add", &hub_end, "netns", &hub, "type", "veth", "peer", "name", "eth0",
                "netns", &ns,
            ])?;
            ip(&["-n", &hub, "link", "set", &hub_end, "master", "br0", "up"])?;
            ip(&[
                "-n",
                &ns,
                "addr",
                "add",
                &format!("{}/24", Hosts::addr(i)),
                "dev",
                "eth0",
            ])?;
            ip(&["-n", &ns, "link", "set", "eth0", "up"])?;
            ip(&["-n", &ns, "link", "set", "lo", "up"])?;
            if i < NODES {
                // 20 ms ± 5 ms each way and 1 % loss between every pair of validators, where
                // the kernel has netem (sch_netem); plain links otherwise.
                let netem = [
                    "qdisc", "add", "dev", &hub_end, "root", "netem", "delay", "20ms", "5ms",
                    "loss", "1%",
                ];
                if let Err(e) = tc(&hub, &netem) {
                    eprintln!("no delay or loss on {hub_end}: {e}");
                }
            }
        }
        Ok(hosts)
    }

    fn spawn(&mut self, i: usize, config: &Path, log: &Path) {
        let log = std::fs::File::create(log).expect("log");
        let child = Command::new("ip")
            .args(["netns", "exec", &self.ns(&format!("n{i}"))])
            .arg(bin())
            .args(["node", "--config"])
            .arg(config)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("spawn node");
        self.procs.push(child);
    }

    /// Runs `f` on a thread inside the client namespace (sockets follow the thread's namespace).
    fn in_client_ns<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        let path = format!("/var/run/netns/{}", self.ns("client"));
        std::thread::scope(|s| {
            s.spawn(|| {
                let ns = std::fs::File::open(&path).expect("client namespace");
                nix::sched::setns(ns, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
                f()
            })
            .join()
            .expect("client thread")
        })
    }

    fn link(&self, i: usize, up: bool) {
        ip(&[
            "-n",
            &self.ns("hub"),
            "link",
            "set",
            &format!("vn{i}"),
            if up { "up" } else { "down" },
        ])
        .expect("link");
    }
}

impl Drop for Hosts {
    fn drop(&mut self) {
        for p in &mut self.procs {
            let _ = p.kill();
            let _ = p.wait();
        }
        for name in (0..NODES)
            .map(|i| format!("n{i}"))
            .chain(["client".into(), "hub".into()])
        {
            let _ = ip(&["netns", "del", &self.ns(&name)]);
        }
    }
}

fn rpc_url(i: usize) -> String {
    format!("http://{}:8545", Hosts::addr(i))
}

/// Blocks `f` on a small runtime (inside whatever namespace the thread is in).
fn block_on<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(f)
}

async fn height(url: &str) -> Option<u64> {
    let c = client(url);
    let n: alloy_primitives::U64 = c.request("eth_blockNumber", rpc_params![]).await.ok()?;
    Some(n.to())
}

async fn wait_height_of(url: &str, h: u64) {
    let start = Instant::now();
    while height(url).await.is_none_or(|n| n < h) {
        assert!(
            start.elapsed() < LIMIT,
            "{url} did not reach height {h} within {LIMIT:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[test]
fn a_cut_off_host_catches_up_after_the_network_heals() {
    let mut hosts = match Hosts::create() {
        Ok(h) => h,
        Err(e) => {
            eprintln!("skipping the multi-host test: cannot create network namespaces ({e}); it needs root and iproute2");
            return;
        }
    };
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    let mut keys = Vec::new();
    for i in 0..NODES {
        let node_dir = dir.join(format!("n{i}"));
        std::fs::create_dir_all(&node_dir).expect("dir");
        let shown = run_cli(&node_dir, &["keys", "new", "--out", "node_key.json"]);
        keys.push(
            shown
                .lines()
                .find_map(|l| l.strip_prefix("public key: "))
                .expect("key")
                .to_owned(),
        );
    }
    let mut args: Vec<String> = vec![
        "genesis".into(),
        "--dev-accounts".into(),
        "8".into(),
        "--out".into(),
        "genesis.json".into(),
    ];
    for (i, key) in keys.iter().enumerate() {
        args.extend([
            "--org".into(),
            format!("org{i}={}", AccountKey::dev(i as u32).address()),
        ]);
        args.extend(["--validator".into(), format!("{key}:1@org{i}")]);
    }
    run_cli(dir, &args.iter().map(String::as_str).collect::<Vec<_>>());
    for i in 0..NODES {
        let others = (0..NODES).filter(|j| *j != i);
        let config = format!(
            "moniker = \"n{i}\"\ndata_dir = \"data\"\ngenesis = \"../genesis.json\"\nnode_key = \"node_key.json\"\n\
             [rpc]\nlisten = \"{addr}:8545\"\n[p2p]\nlisten = \"/ip4/{addr}/tcp/27000\"\npeers = [{peers}]\ngossip_listen = \"/ip4/{addr}/tcp/27001\"\ngossip_peers = [{gossip}]\n",
            addr = Hosts::addr(i),
            peers = others.clone().map(|j| format!("\"/ip4/{}/tcp/27000\"", Hosts::addr(j))).collect::<Vec<_>>().join(", "),
            gossip = others.map(|j| format!("\"/ip4/{}/tcp/27001\"", Hosts::addr(j))).collect::<Vec<_>>().join(", "),
        );
        let node_dir = dir.join(format!("n{i}"));
        std::fs::write(node_dir.join("node.toml"), config).expect("config");
        hosts.spawn(i, &node_dir.join("node.toml"), &node_dir.join("node.log"));
    }

    let sender = AccountKey::dev(5);
    let sink = Address::repeat_byte(0x42);
    hosts.in_client_ns(|| {
        block_on(async {
            for i in 0..NODES {
                wait_height_of(&rpc_url(i), 2).await;
            }
        })
    });

    // Cut host 3 off; the other three (three of four validators) keep finalizing transfers.
    hosts.link(3, false);
    let cut_at = hosts.in_client_ns(|| {
        block_on(async {
            let c = client(&rpc_url(0));
            for n in 0..20 {
                send_raw(&c, &transfer(&sender, n, sink, 1))
                    .await
                    .expect("accepted");
            }
            wait_nonce(&c, sender.address(), 20, LIMIT).await;
            let h = height(&rpc_url(0)).await.expect("height");
            wait_height_of(&rpc_url(1), h + 3).await;
            h + 3
        })
    });

    // Heal: host 3 rejoins, catches up and agrees on every block.
    hosts.link(3, true);
    hosts.in_client_ns(|| {
        block_on(async {
            wait_height_of(&rpc_url(3), cut_at + 2).await;
            let c3 = client(&rpc_url(3));
            let c0 = client(&rpc_url(0));
            for h in 0..=cut_at {
                let (a, b): (Value, Value) = (
                    c0.request(
                        "eth_getBlockByNumber",
                        rpc_params![format!("{h:#x}"), false],
                    )
                    .await
                    .expect("block"),
                    c3.request(
                        "eth_getBlockByNumber",
                        rpc_params![format!("{h:#x}"), false],
                    )
                    .await
                    .expect("block"),
                );
                assert_eq!(a["hash"], b["hash"], "block {h} differs on the healed host");
                assert_eq!(a["stateRoot"], b["stateRoot"]);
            }
            assert_eq!(balance(&c3, sink).await, alloy_primitives::U256::from(20));
        })
    });

    seeded_partitions(&hosts);
}

/// Cuts and heals links per a seeded schedule under load, then checks every invariant.
fn seeded_partitions(hosts: &Hosts) {
    let seed: u64 = std::env::var("TRELLIS_NETNS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    let mut rng = StdRng::seed_from_u64(seed);
    let schedule: Vec<(Vec<usize>, u64)> = (0..4)
        .map(|_| {
            let first = rng.gen_range(0..NODES);
            let mut cut = vec![first];
            if rng.gen_bool(0.3) {
                cut.push((first + rng.gen_range(1..NODES)) % NODES);
            }
            (cut, rng.gen_range(1_000..4_000))
        })
        .collect();
    eprintln!("netns seed {seed}: partitions {schedule:?}");

    let stop = Arc::new(AtomicBool::new(false));
    let acked: Arc<Mutex<Vec<(B256, String)>>> = Arc::default();
    let (stop, acked) = (&stop, &acked);
    std::thread::scope(|s| {
        let load = s.spawn(|| {
            hosts.in_client_ns(|| {
                block_on(async {
                    // Six senders, each one transfer at a time, acknowledged once a host
                    // returns its receipt.
                    let senders = [1u32, 2, 3, 4, 6, 7].map(|s| {
                        let stop = stop.clone();
                        let acked = acked.clone();
                        tokio::spawn(async move {
                            let key = AccountKey::dev(s);
                            let clients: Vec<_> = (0..NODES).map(|i| client(&rpc_url(i))).collect();
                            let mut n = 0u64;
                            let mut pick = s as usize;
                            while !stop.load(Ordering::Relaxed) {
                                let raw = transfer(&key, n, Address::repeat_byte(0x43), 1);
                                let hash = alloy_primitives::keccak256(&raw);
                                'wait: while !stop.load(Ordering::Relaxed) {
                                    pick = (pick + 1) % NODES;
                                    let c = &clients[pick];
                                    let _ = tokio::time::timeout(
                                        Duration::from_secs(1),
                                        send_raw(c, &raw),
                                    )
                                    .await;
                                    for _ in 0..10 {
                                        for c in &clients {
                                            if let Ok(Ok(Some(r))) = tokio::time::timeout(
                                                Duration::from_millis(300),
                                                try_receipt(c, hash),
                                            )
                                            .await
                                            {
                                                let block = r["blockHash"]
                                                    .as_str()
                                                    .unwrap_or_default()
                                                    .to_owned();
                                                acked.lock().expect("lock").push((hash, block));
                                                break 'wait;
                                            }
                                        }
                                        tokio::time::sleep(Duration::from_millis(100)).await;
                                    }
                                }
                                n += 1;
                            }
                        })
                    });
                    for t in senders {
                        let _ = t.await;
                    }
                })
            })
        });
        for (cut, ms) in &schedule {
            for i in cut {
                hosts.link(*i, false);
            }
            std::thread::sleep(Duration::from_millis(*ms));
            for i in cut {
                hosts.link(*i, true);
            }
            std::thread::sleep(Duration::from_millis(500));
        }
        // Load goes on for a while after the last heal.
        std::thread::sleep(Duration::from_secs(5));
        stop.store(true, Ordering::Relaxed);
        load.join().expect("load thread");
    });
    let acked = acked.lock().expect("lock").clone();
    assert!(!acked.is_empty(), "seed {seed}: nothing was acknowledged");

    hosts.in_client_ns(|| {
        block_on(async {
            let mut best = 0;
            for i in 0..NODES {
                best = best.max(height(&rpc_url(i)).await.unwrap_or(0));
            }
            let target = best + 2;
            for i in 0..NODES {
                wait_height_of(&rpc_url(i), target).await;
            }
            let clients: Vec<_> = (0..NODES).map(|i| client(&rpc_url(i))).collect();
            let mut seen = HashSet::new();
            for h in 0..=target {
                let first = block(&clients[0], h).await;
                for (i, c) in clients.iter().enumerate().skip(1) {
                    let b = block(c, h).await;
                    assert_eq!(
                        b["hash"], first["hash"],
                        "seed {seed}: block {h} differs on host {i}"
                    );
                    assert_eq!(
                        b["stateRoot"], first["stateRoot"],
                        "seed {seed}: state {h} differs on host {i}"
                    );
                }
                for tx in first["transactions"].as_array().into_iter().flatten() {
                    assert!(
                        seen.insert(tx.as_str().unwrap_or_default().to_owned()),
                        "seed {seed}: {tx} included twice"
                    );
                }
            }
            for (hash, block_hash) in &acked {
                let r = receipt(&clients[0], *hash)
                    .await
                    .unwrap_or_else(|| panic!("seed {seed}: acknowledged {hash} is missing"));
                assert_eq!(
                    r["blockHash"].as_str(),
                    Some(block_hash.as_str()),
                    "seed {seed}: {hash} moved"
                );
            }
            eprintln!(
                "netns seed {seed}: {} acknowledged transfers, {target} blocks agree",
                acked.len()
            );
        })
    });
}
