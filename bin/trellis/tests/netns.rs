//! Four validators on four "hosts": Linux network namespaces joined by a bridge, each node
//! with its own address and real TCP between them, every link delayed and lossy (`tc netem`,
//! where the kernel provides it).
//! One host is cut off (its link goes down) while the others keep finalizing, then healed:
//! it catches up and agrees on every block. Needs root and iproute2; elsewhere it says why
//! it skips.

mod common;

use alloy_primitives::Address;
use common::*;
use jsonrpsee::core::client::ClientT;
use jsonrpsee::rpc_params;
use serde_json::Value;
use std::path::Path;
use std::process::{Command, Stdio};
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
             [rpc]\nlisten = \"{addr}:8545\"\n[p2p]\nlisten = \"/ip4/{addr}/tcp/27000\"\npeers = [{peers}]\ntx_gossip_peers = [{gossip}]\n",
            addr = Hosts::addr(i),
            peers = others.clone().map(|j| format!("\"/ip4/{}/tcp/27000\"", Hosts::addr(j))).collect::<Vec<_>>().join(", "),
            gossip = others.map(|j| format!("\"{}\"", rpc_url(j))).collect::<Vec<_>>().join(", "),
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
}
