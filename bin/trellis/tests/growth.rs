//! Registries that grow with use keep the chain alive: on a dev chain and on four
//! validators, thousands of freezes, hundreds of long identifier-prefix delegations,
//! hundreds of organisations and nodes are voted in through governance — the load that once
//! stopped the chain for good ("record of 65658 bytes exceeds 65536" at about the 244th
//! delegation; 3,500 freezes and 400 of these prefixes each exceed that old record). The chain keeps finalizing and every entry reads back through the paged
//! views of JSON-RPC and the CLI.

mod common;

use alloy_primitives::{Address, Bytes, TxKind, B256, U256};
use alloy_sol_types::SolCall;
use common::*;
use jsonrpsee::core::client::ClientT;
use jsonrpsee::http_client::HttpClient;
use jsonrpsee::rpc_params;
use serde_json::Value;
use std::collections::BTreeSet;
use std::time::Duration;
use trellis_crypto::AccountKey;
use trellis_system::governance::abi;
use trellis_system::GOVERNANCE_ADDRESS;

const LIMIT: Duration = Duration::from_secs(300);

/// How much to grow.
struct Growth {
    freezes: usize,
    prefixes: usize,
    organizations: usize,
    nodes_per_org: usize,
}

fn frozen_target(i: usize) -> Address {
    Address::left_padding_from(&(0xf000_0000 + i as u64).to_be_bytes())
}

/// Long prefixes, like those of the report: eight segments, about 180 bytes, so that 400 of
/// them would have outgrown the single 64 KiB record they were once kept in.
fn prefix(i: usize) -> String {
    let long = |c: &str| c.repeat(32);
    format!(
        "MA.156.{}.{}.{}.{}.{}.{}",
        10_000 + i,
        long("7"),
        long("8"),
        long("9"),
        long("a"),
        long("b")
    )
}

fn org_id(i: usize) -> String {
    format!("member-{i:04}")
}

fn node_keys(n: usize) -> Vec<B256> {
    (0..n)
        .map(|_| B256::from(*trellis_crypto::NodeKey::generate().public().as_bytes()))
        .collect()
}

/// Sends proposals from dev account 0 and has `voters` approve each, so that each passes on
/// a chain of `voters.len() + 1` member organisations; waits until all are final.
struct Proposer<'a> {
    c: &'a HttpClient,
    voters: &'a [u32],
    chain_id: u64,
}

impl Proposer<'_> {
    async fn send_all(&self, key: &AccountKey, calls: Vec<Vec<u8>>) {
        let start = nonce(self.c, key.address(), "pending").await;
        let raws: Vec<Bytes> = calls
            .into_iter()
            .enumerate()
            .map(|(i, input)| trellis_cli_sign(key, self.chain_id, start + i as u64, input))
            .collect();
        let n = raws.len() as u64;
        // At most 1,000 in flight: the pool queues 1,024 nonces ahead of an account at most.
        for (k, chunk) in raws.chunks(500).enumerate() {
            let sent = (k * 500) as u64;
            wait_nonce(
                self.c,
                key.address(),
                (start + sent).saturating_sub(500),
                LIMIT,
            )
            .await;
            for (i, r) in send_batch(self.c, chunk).await.into_iter().enumerate() {
                r.unwrap_or_else(|e| panic!("transaction {i} of a batch refused: {e}"));
            }
        }
        wait_nonce(self.c, key.address(), start + n, LIMIT).await;
    }

    async fn propose(&self, calls: Vec<Vec<u8>>) {
        let first: u64 = u64::from_str_radix(
            self.c
                .request::<Value, _>("trellis_getGovernanceConfig", rpc_params![])
                .await
                .expect("config")["proposalCount"]
                .as_str()
                .expect("count")
                .trim_start_matches("0x"),
            16,
        )
        .expect("hex");
        let n = calls.len() as u64;
        self.send_all(&AccountKey::dev(0), calls).await;
        for voter in self.voters {
            let votes = (first..first + n)
                .map(|id| {
                    abi::voteCall {
                        proposalId: id,
                        approve: true,
                    }
                    .abi_encode()
                })
                .collect();
            self.send_all(&AccountKey::dev(*voter), votes).await;
        }
    }
}

fn trellis_cli_sign(key: &AccountKey, chain_id: u64, nonce: u64, input: Vec<u8>) -> Bytes {
    use alloy_eips::eip2718::Encodable2718;
    Bytes::from(
        key.sign_tx(alloy_consensus::TxLegacy {
            chain_id: Some(chain_id),
            nonce,
            gas_price: 0,
            gas_limit: 1_000_000,
            to: TxKind::Call(GOVERNANCE_ADDRESS),
            value: U256::ZERO,
            input: input.into(),
        })
        .encoded_2718(),
    )
}

/// Every entry of a paged `trellis_*` listing, 1,000 at a time.
async fn all_pages(c: &HttpClient, method: &str) -> Vec<Value> {
    let mut out = Vec::new();
    loop {
        let page: Vec<Value> = c
            .request(method, rpc_params![out.len() as u64, 1_000u64])
            .await
            .unwrap_or_else(|e| panic!("{method}: {e}"));
        let n = page.len();
        out.extend(page);
        if n < 1_000 {
            return out;
        }
    }
}

/// Grows every registry by `g` through proposals of dev account 0 approved by `voters`;
/// prefixes go to `holder`.
async fn grow(dir: &std::path::Path, urls: &[String], holder: &str, voters: &[u32], g: Growth) {
    let c = client(&urls[0]);
    let count = |config: &Value, field: &str| {
        u64::from_str_radix(
            config[field]
                .as_str()
                .expect("count")
                .trim_start_matches("0x"),
            16,
        )
        .expect("hex")
    };
    let before: Value = c
        .request("trellis_getGovernanceConfig", rpc_params![])
        .await
        .expect("config");
    let (orgs_before, nodes_before) = (
        count(&before, "organizationCount"),
        count(&before, "nodeCount"),
    );
    let chain_id = u64::from_str_radix(
        c.request::<String, _>("eth_chainId", rpc_params![])
            .await
            .expect("chain id")
            .trim_start_matches("0x"),
        16,
    )
    .expect("hex");
    let p = Proposer {
        c: &c,
        voters,
        chain_id,
    };
    // Freezes first: the organisations added later are supervisors, whose co-signature
    // every freeze would need from then on.
    p.propose(
        (0..g.freezes)
            .map(|i| {
                abi::proposeFreezeCall {
                    target: frozen_target(i),
                    effectiveHeight: 0,
                }
                .abi_encode()
            })
            .collect(),
    )
    .await;
    p.propose(
        (0..g.prefixes)
            .map(|i| {
                abi::proposeDelegatePrefixCall {
                    prefix: prefix(i),
                    org: holder.into(),
                    effectiveHeight: 0,
                }
                .abi_encode()
            })
            .collect(),
    )
    .await;
    // Supervisor organisations: they do not vote on these proposals, so the member
    // organisations that voted the rest in still decide the nodes below.
    p.propose(
        (0..g.organizations)
            .map(|i| {
                abi::proposeAddOrganizationCall {
                    id: org_id(i),
                    name: format!("Member {i} Ltd"),
                    admins: vec![Address::left_padding_from(
                        &(0xad00_0000 + i as u64).to_be_bytes(),
                    )],
                    member: false,
                    supervisor: true,
                    effectiveHeight: 0,
                }
                .abi_encode()
            })
            .collect(),
    )
    .await;
    let keys = node_keys(g.organizations * g.nodes_per_org);
    p.propose(
        (0..keys.len())
            .map(|i| {
                abi::proposeAddNodeCall {
                    publicKey: keys[i],
                    org: org_id(i % g.organizations),
                    role: abi::NodeRole::Full,
                    power: 0,
                    effectiveHeight: 0,
                }
                .abi_encode()
            })
            .collect(),
    )
    .await;

    // Everything took effect (the last proposals are due a few heights on) and the chain
    // goes on finalizing.
    let config: Value = loop {
        let config: Value = c
            .request("trellis_getGovernanceConfig", rpc_params![])
            .await
            .expect("config");
        let nodes = nodes_before + (g.organizations * g.nodes_per_org) as u64;
        if count(&config, "nodeCount") == nodes {
            break config;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(config["frozenCount"], format!("{:#x}", g.freezes));
    assert_eq!(config["prefixCount"], format!("{:#x}", g.prefixes));
    assert_eq!(
        count(&config, "organizationCount"),
        orgs_before + g.organizations as u64
    );
    for url in urls {
        let c = client(url);
        let h = block_number(&c).await;
        wait_height(&c, h + 3, LIMIT).await;
    }

    // Every entry reads back through the paged views.
    let frozen: BTreeSet<Address> = all_pages(&c, "trellis_getFrozen")
        .await
        .into_iter()
        .map(|v| v.as_str().expect("address").parse().expect("address"))
        .collect();
    assert_eq!(frozen, (0..g.freezes).map(frozen_target).collect());
    let prefixes: BTreeSet<String> = all_pages(&c, "trellis_getPrefixes")
        .await
        .into_iter()
        .map(|v| {
            assert_eq!(v["org"], holder);
            v["prefix"].as_str().expect("prefix").to_owned()
        })
        .collect();
    assert_eq!(prefixes, (0..g.prefixes).map(prefix).collect());
    let orgs: BTreeSet<String> = all_pages(&c, "trellis_getOrganizations")
        .await
        .into_iter()
        .map(|v| v["id"].as_str().expect("id").to_owned())
        .collect();
    for i in 0..g.organizations {
        assert!(orgs.contains(&org_id(i)), "{} is listed", org_id(i));
    }
    let nodes: BTreeSet<B256> = all_pages(&c, "trellis_getNodes")
        .await
        .into_iter()
        .map(|v| v["publicKey"].as_str().expect("key").parse().expect("key"))
        .collect();
    for key in &keys {
        assert!(nodes.contains(key), "node {key} is listed");
    }
    let one: Value = c
        .request("trellis_getOrganization", rpc_params![org_id(7)])
        .await
        .expect("organisation");
    assert_eq!(
        one["nodes"].as_array().expect("nodes").len(),
        g.nodes_per_org
    );
    // The CLI pages through the same views.
    let listed = run_cli(dir, &["gov", "frozen", "--rpc", &urls[0]]);
    assert_eq!(listed.lines().count(), g.freezes);
    let page = run_cli(
        dir,
        &[
            "org", "list", "--rpc", &urls[0], "--offset", "3", "--limit", "5",
        ],
    );
    assert_eq!(page.lines().count(), 5);
}

#[tokio::test(flavor = "multi_thread")]
async fn registries_grow_without_stopping_a_dev_chain() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (_node, url) = start_dev(&tmp.path().join("dev"), "dev.log").await;
    // One member organisation: every proposal passes with its own approval.
    let g = Growth {
        freezes: 3_500,
        prefixes: 400,
        organizations: 300,
        nodes_per_org: 2,
    };
    grow(tmp.path(), &[url], "dev", &[], g).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn registries_grow_without_stopping_four_validators() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let net = Testnet::up(&tmp.path().join("net"), 4, 4);
    // Four member organisations: org0 proposes, org1 and org2 approve (3 of 4 > 2/3).
    let g = Growth {
        freezes: 2_000,
        prefixes: 400,
        organizations: 300,
        nodes_per_org: 1,
    };
    grow(tmp.path(), &net.urls(), "org0", &[1, 2], g).await;
}
