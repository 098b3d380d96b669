//! Consortium governance on a real 4-validator network: members vote a fifth organisation
//! and its validator in (the node, refused while unregistered, then syncs and signs commits),
//! then vote an original validator out (it stops being counted: with it and one more
//! validator stopped, the remaining three of four keep finalizing) and is disconnected. The
//! chain never stalls. A validator that was down while the set changed catches up through
//! sync across the change and signs again.
//! Also: the admin RPC refuses calls without the right token.

mod common;

use alloy_primitives::{keccak256, Address, B256};
use common::*;
use jsonrpsee::core::client::ClientT;
use jsonrpsee::http_client::HttpClientBuilder;
use jsonrpsee::rpc_params;
use serde_json::Value;
use std::time::{Duration, Instant};
use trellis_crypto::AccountKey;

const LIMIT: Duration = Duration::from_secs(180);
const ADMIN_TOKEN: &str = "governance-test-admin-token";
/// The new organisation's admin: a dev account the testnet registered nowhere.
const ORG4_ADMIN: u32 = 20;

fn validator_address(public_key: &B256) -> Address {
    Address::from_slice(&keccak256(public_key)[12..])
}

/// Signers of the commit certificate at `height`.
async fn signers(c: &jsonrpsee::http_client::HttpClient, height: u64) -> Vec<Address> {
    let cert: Value = c
        .request(
            "trellis_getCommitCertificate",
            rpc_params![format!("{height:#x}")],
        )
        .await
        .expect("certificate");
    cert["signatures"]
        .as_array()
        .expect("signatures")
        .iter()
        .map(|s| {
            s["validator"]
                .as_str()
                .expect("validator")
                .parse()
                .expect("address")
        })
        .collect()
}

/// Waits for a committed height whose certificate satisfies `pred`; returns that height.
async fn wait_certificate(
    c: &jsonrpsee::http_client::HttpClient,
    from: u64,
    what: &str,
    pred: impl Fn(&[Address]) -> bool,
) -> u64 {
    let start = Instant::now();
    let mut h = from;
    loop {
        assert!(
            start.elapsed() < LIMIT,
            "no certificate from height {from} on where {what}"
        );
        if block_number(c).await >= h {
            if pred(&signers(c, h).await) {
                return h;
            }
            h += 1;
        } else {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn members_vote_a_validator_in_and_another_out_without_stalling() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("net");
    let net = Testnet::up(&dir, 4, 8);
    let urls = net.urls();
    let c0 = client(&urls[0]);
    wait_height(&c0, 2, LIMIT).await;

    // A fifth node with a fresh key, not registered yet.
    let node_dir = dir.join("node-4");
    std::fs::create_dir_all(&node_dir).expect("dir");
    let keys = run_cli(&node_dir, &["keys", "new", "--out", "node_key.json"]);
    let key4: B256 = keys
        .lines()
        .find_map(|l| l.strip_prefix("public key: "))
        .expect("public key")
        .parse()
        .expect("key");
    let mut config = trellis_node::NodeConfig::load(&net.info.nodes[0].config).expect("config");
    config.moniker = "node-4".into();
    config.data_dir = node_dir.join("data");
    config.node_key = node_dir.join("node_key.json");
    let ports = free_ports(3);
    config.rpc.listen = ([127, 0, 0, 1], ports[0]).into();
    config.rpc.admin_token = Some(ADMIN_TOKEN.into());
    config.p2p.listen = format!("/ip4/127.0.0.1/tcp/{}", ports[1]);
    config.p2p.peers = net.info.nodes.iter().map(|n| n.p2p.clone()).collect();
    config.p2p.gossip_listen = format!("/ip4/127.0.0.1/tcp/{}", ports[2]);
    config.p2p.gossip_peers = net.info.nodes.iter().map(|n| n.gossip.clone()).collect();
    // Node 0's metrics port is node 0's (a node whose port is taken does not start).
    config.metrics.listen = None;
    let config_path = node_dir.join("node.toml");
    std::fs::write(&config_path, config.to_toml()).expect("write config");
    let _node4 = Proc::spawn(
        &["node", "--config", config_path.to_str().expect("path")],
        &node_dir.join("node.log"),
    );
    let url4 = format!("http://{}", config.rpc.listen);
    wait_for_rpc(&url4, LIMIT).await;
    let c4 = client(&url4);

    // Admin methods: refused without the token or with a wrong one.
    for (header, expected) in [
        (None, "unauthorized: admin methods need"),
        (
            Some("Bearer not-the-token"),
            "unauthorized: wrong admin token",
        ),
    ] {
        let mut headers = jsonrpsee::http_client::HeaderMap::new();
        if let Some(h) = header {
            headers.insert("authorization", h.parse().expect("header"));
        }
        let c = HttpClientBuilder::default()
            .set_headers(headers)
            .build(&url4)
            .expect("client");
        let err = c
            .request::<Value, _>("admin_nodeInfo", rpc_params![])
            .await
            .expect_err("refused");
        let jsonrpsee::core::ClientError::Call(obj) = err else {
            panic!("unexpected error {err}");
        };
        assert_eq!(obj.code(), trellis_rpc::UNAUTHORIZED);
        assert!(obj.message().contains(expected), "{}", obj.message());
    }
    let err = c0
        .request::<Value, _>("admin_nodeInfo", rpc_params![])
        .await
        .expect_err("no admin token configured on node-0");
    assert!(err.to_string().contains("admin API disabled"), "{err}");
    let mut headers = jsonrpsee::http_client::HeaderMap::new();
    headers.insert(
        "authorization",
        format!("Bearer {ADMIN_TOKEN}").parse().expect("header"),
    );
    let admin4 = HttpClientBuilder::default()
        .set_headers(headers)
        .build(&url4)
        .expect("client");
    let info: Value = admin4
        .request("admin_nodeInfo", rpc_params![])
        .await
        .expect("node info");
    assert_eq!(
        info["nodePublicKey"].as_str(),
        Some(key4.to_string().as_str())
    );
    assert_eq!(info["validatesNextHeight"], false);

    // Unregistered, it is refused by every validator: the chain moves on without it.
    let h = block_number(&c0).await;
    wait_height(&c0, h + 5, LIMIT).await;
    assert_eq!(
        block_number(&c4).await,
        0,
        "an unregistered node must not receive blocks"
    );

    // 1. org0 proposes org4 (administered by dev account 20, so far in no organisation); org1 and org2 approve: 3 of 4.
    let admin4_account = AccountKey::dev(ORG4_ADMIN).address().to_string();
    let out = gov(
        &dir,
        &urls[0],
        0,
        &[
            "propose",
            "add-org",
            "--id",
            "org4",
            "--name",
            "Edge Ops",
            "--admin",
            &admin4_account,
        ],
    );
    let id = proposal_id(&out);
    gov(&dir, &urls[1], 1, &["vote", &id]);
    let out = gov(&dir, &urls[2], 2, &["vote", &id]);
    assert!(out.contains(&format!("proposal {id} passed")), "{out}");
    let orgs = run_cli(&dir, &["org", "list", "--rpc", &urls[3]]);
    assert!(orgs.contains("org4") && orgs.contains("Edge Ops"), "{orgs}");

    // 2. org4 proposes its node as a validator; of five members, four must approve.
    let out = gov(
        &dir,
        &urls[0],
        ORG4_ADMIN,
        &[
            "propose",
            "add-node",
            "--key",
            &key4.to_string(),
            "--org",
            "org4",
            "--role",
            "validator",
        ],
    );
    let id = proposal_id(&out);
    gov(&dir, &urls[0], 0, &["vote", &id]);
    let out = gov(&dir, &urls[1], 1, &["vote", &id]);
    assert!(!out.contains("passed"), "3 of 5 must not pass: {out}");
    let out = gov(&dir, &urls[2], 2, &["vote", &id]);
    assert!(out.contains(&format!("proposal {id} passed")), "{out}");
    let added_at = block_number(&c0).await;

    // 3. The new validator is admitted, syncs, and signs commits.
    let new_validator = validator_address(&key4);
    let signed_at = wait_certificate(&c0, added_at, "node-4 signs", |s| {
        s.contains(&new_validator)
    })
    .await;
    wait_height(&c4, signed_at, LIMIT).await;
    let info: Value = admin4
        .request("admin_nodeInfo", rpc_params![])
        .await
        .expect("node info");
    assert_eq!(info["validatesNextHeight"], true);
    assert_eq!(info["validators"], 5);

    // 4. Node-3 goes down (four of five validators still decide), so that it has to sync
    // across the change below. Vote validator 0 out: proposed by org1, approved by org2, org3,
    // org4.
    net.kill(3);
    let genesis: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("genesis.json")).expect("genesis"))
            .expect("json");
    let key0: B256 = genesis["validators"][0]["publicKey"]
        .as_str()
        .expect("key")
        .parse()
        .expect("key");
    let old_validator = validator_address(&key0);
    let out = gov(
        &dir,
        &urls[1],
        1,
        &["propose", "remove-node", "--key", &key0.to_string()],
    );
    let id = proposal_id(&out);
    gov(&dir, &urls[2], 2, &["vote", &id]);
    gov(&dir, &urls[2], 3, &["vote", &id]);
    let out = gov(&dir, &url4, ORG4_ADMIN, &["vote", &id]);
    assert!(out.contains(&format!("proposal {id} passed")), "{out}");
    let removed_at = block_number(&c0).await;
    let c2 = client(&urls[2]);
    let gone_at = wait_certificate(&c2, removed_at, "node-0 no longer signs", |s| {
        !s.contains(&old_validator)
    })
    .await;
    // From then on it is never counted again.
    let later = gone_at + 3;
    wait_height(&c2, later, LIMIT).await;
    for h in gone_at..=later {
        assert!(
            !signers(&c2, h).await.contains(&old_validator),
            "node-0 signed height {h} after its removal"
        );
    }
    // Unregistered, it is disconnected and refused: it falls behind for good.
    let stuck = block_number(&c0).await;
    wait_height(&c2, stuck + 8, LIMIT).await;
    assert!(
        block_number(&c0).await < stuck + 3,
        "the removed node kept receiving blocks"
    );

    // Node-3 comes back: it syncs the heights decided by the old set of five and by the new
    // set of four, and agrees with the others on every block.
    let lagging = net.info.nodes[3].config.clone();
    let _node3 = Proc::spawn(
        &["node", "--config", lagging.to_str().expect("path")],
        &dir.join("node-3").join("node-restarted.log"),
    );
    let c3 = client(&urls[3]);
    wait_for_rpc(&urls[3], LIMIT).await;
    let target = block_number(&c2).await;
    wait_height(&c3, target, LIMIT).await;
    for h in [added_at, removed_at, gone_at, target] {
        assert_eq!(
            block(&c3, h).await["hash"],
            block(&c2, h).await["hash"],
            "node-3 synced a different block {h}"
        );
    }

    // 5. Stop node-0 and node-1: nodes 2, 3 and 4 are three of the four validators left, so
    // the chain keeps finalizing (it would stall if node-0 still counted: 3 of 5).
    net.kill(0);
    net.kill(1);
    let h = block_number(&c2).await;
    wait_height(&c2, h + 3, LIMIT).await;
    let audit = run_cli(&dir, &["gov", "audit", "--rpc", &urls[3]]);
    assert!(audit.contains("remove node"), "{audit}");
    for url in [&urls[2], &urls[3], &url4] {
        wait_height(&client(url), h + 3, LIMIT).await;
    }
    let b2 = block(&c2, h + 3).await;
    let b4 = block(&c4, h + 3).await;
    assert_eq!(b2["hash"], b4["hash"]);
    assert_eq!(b2["stateRoot"], b4["stateRoot"]);

    // 6. A sub-chain of org4 and org2, validated by node-4: every node derives its genesis
    // when it commits the creating block, and anyone checks it against the main chain.
    let out = gov(
        &dir,
        &url4,
        ORG4_ADMIN,
        &[
            "propose",
            "create-subchain",
            "--chain-id",
            "700",
            "--name",
            "edge",
            "--member",
            "org4",
            "--member",
            "org2",
            "--validator",
            &format!("{key4}:2"),
        ],
    );
    let id = proposal_id(&out);
    gov(&dir, &urls[2], 2, &["vote", &id]);
    gov(&dir, &urls[2], 3, &["vote", &id]);
    let out = gov(&dir, &urls[3], 1, &["vote", &id]);
    assert!(out.contains(&format!("proposal {id} passed")), "{out}");
    let h = block_number(&c2).await;
    wait_height(&c3, h + 2, LIMIT).await;
    let listed = run_cli(&dir, &["chain", "list", "--rpc", &urls[2]]);
    assert!(
        listed.contains("700") && listed.contains("edge") && listed.contains("org4, org2"),
        "{listed}"
    );
    let file = dir.join("sub-700.json");
    let out = run_cli(
        &dir,
        &[
            "chain",
            "genesis",
            "700",
            "--rpc",
            &urls[3],
            "--out",
            file.to_str().expect("path"),
        ],
    );
    assert!(out.contains("sub-chain 700: genesis 0x"), "{out}");
    let genesis = trellis_primitives::Genesis::load(&file).expect("the genesis written");
    assert_eq!(genesis.chain_id.0, 700);
    assert_eq!(genesis.validators[0].public_key, key4);
    // The same genesis from another node, checked against the file.
    let verify_on_4 = [
        "chain",
        "genesis",
        "700",
        "--rpc",
        &url4,
        "--verify",
        file.to_str().expect("path"),
    ];
    let again = run_cli(&dir, &verify_on_4);
    assert!(again.contains("is the derived genesis"), "{again}");
    let mut other = genesis.clone();
    other.gas_limit += 1;
    std::fs::write(&file, serde_json::to_vec(&other).expect("json")).expect("write");
    let refused = cli_fails(&dir, &verify_on_4);
    assert!(refused.contains("is not the derived genesis"), "{refused}");
    let none = cli_fails(&dir, &["chain", "genesis", "701", "--rpc", &url4]);
    assert!(none.contains("keeps no genesis of sub-chain 701"), "{none}");
}
