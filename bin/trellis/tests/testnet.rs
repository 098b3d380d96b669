//! Four validators as separate processes on loopback: 1,000 transfers finalize with identical
//! blocks and state roots everywhere; with one validator stopped the rest keep finalizing;
//! restarted, it catches up through Malachite sync and agrees on every block. Restarted on a
//! new gossip port that only one other node reaches, it still gets every transaction
//! (relayed), though no node ever calls another's RPC.

mod common;

use alloy_primitives::{Address, Bytes};
use common::*;
use std::time::Duration;
use trellis_crypto::AccountKey;

const LIMIT: Duration = Duration::from_secs(180);
const ADMIN_TOKEN: &str = "testnet-test-admin-token";

async fn assert_same_chain(urls: &[String], upto: u64) {
    let clients: Vec<_> = urls.iter().map(|u| client(u)).collect();
    for h in 0..=upto {
        let first = block(&clients[0], h).await;
        for (i, c) in clients.iter().enumerate().skip(1) {
            let b = block(c, h).await;
            assert_eq!(
                b["hash"], first["hash"],
                "block hash at height {h} differs on node {i}"
            );
            assert_eq!(
                b["stateRoot"], first["stateRoot"],
                "state root at height {h} differs on node {i}"
            );
        }
    }
}

async fn send_round(urls: &[String], senders: &[AccountKey], nonces: std::ops::Range<u64>) {
    let clients: Vec<_> = urls.iter().map(|u| client(u)).collect();
    let sink = Address::repeat_byte(0x77);
    let mut per_node: Vec<Vec<Bytes>> = vec![Vec::new(); clients.len()];
    let mut i = 0;
    for n in nonces {
        for s in senders {
            per_node[i % clients.len()].push(transfer(s, n, sink, 1));
            i += 1;
        }
    }
    for (c, raws) in clients.iter().zip(&per_node) {
        for chunk in raws.chunks(100) {
            for r in send_batch(c, chunk).await {
                r.expect("transaction accepted");
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn four_validators_agree_tolerate_a_stopped_node_and_resync_it() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("net");
    let net = Testnet::up(&dir, 4, 10);
    let urls: Vec<String> = net.info.nodes.iter().map(|n| n.rpc.clone()).collect();

    // 1,000 transfers from 10 senders, spread over all four nodes.
    let senders: Vec<_> = (0..10).map(AccountKey::dev).collect();
    send_round(&urls, &senders, 0..100).await;
    let c0 = client(&urls[0]);
    for s in &senders {
        wait_nonce(&c0, s.address(), 100, LIMIT).await;
    }
    let tip = block_number(&c0).await;
    for u in &urls {
        wait_height(&client(u), tip, LIMIT).await;
    }
    assert_same_chain(&urls, tip).await;
    let sink_balance = balance(&c0, Address::repeat_byte(0x77)).await;
    assert_eq!(sink_balance, alloy_primitives::U256::from(1_000));

    // Stop validator 3 hard; the other three still hold more than two thirds.
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(net.info.nodes[3].pid as i32),
        nix::sys::signal::Signal::SIGKILL,
    );
    let live = &urls[..3];
    send_round(live, &senders, 100..110).await;
    for s in &senders {
        wait_nonce(&c0, s.address(), 110, LIMIT).await;
    }
    let tip_without = block_number(&c0).await;
    assert!(tip_without > tip, "chain advanced without validator 3");

    // Restart it from its data directory: it catches up and agrees on every block. Its gossip
    // moves to a new port and it dials only node 2: the others' dials to its old port fail,
    // so what they gossip reaches it only through node 2's relay.
    let mut config = trellis_node::NodeConfig::load(&net.info.nodes[3].config).expect("config");
    config.p2p.gossip_listen = format!("/ip4/127.0.0.1/tcp/{}", free_port());
    config.p2p.gossip_peers = vec![net.info.nodes[2].gossip.clone()];
    config.rpc.admin_token = Some(ADMIN_TOKEN.into());
    let relayed_config = dir.join("node-3").join("relayed.toml");
    std::fs::write(&relayed_config, config.to_toml()).expect("write config");
    let log = dir.join("node-3").join("restart.log");
    let _restarted = Proc::spawn(
        &["node", "--config", relayed_config.to_str().expect("path")],
        &log,
    );
    wait_for_rpc(&urls[3], LIMIT).await;
    wait_height(&client(&urls[3]), tip_without + 2, LIMIT).await;
    let common_tip = futures::future::join_all(
        urls.iter()
            .map(|u| async move { block_number(&client(u)).await }),
    )
    .await
    .into_iter()
    .min()
    .expect("four nodes");
    assert_same_chain(&urls, common_tip).await;

    // Transactions that cannot be included (a nonce gap), sent to node 0 only, stay pending
    // everywhere: node 3's pool can only have them through gossip relayed by node 2.
    let gapped: Vec<Bytes> = (112..132)
        .map(|n| transfer(&senders[9], n, Address::repeat_byte(0x77), 1))
        .collect();
    for r in send_batch(&c0, &gapped).await {
        r.expect("a gapped transaction is admitted");
    }
    let mut headers = jsonrpsee::http_client::HeaderMap::new();
    headers.insert(
        "authorization",
        format!("Bearer {ADMIN_TOKEN}").parse().expect("header"),
    );
    let admin3 = jsonrpsee::http_client::HttpClientBuilder::default()
        .set_headers(headers)
        .build(&urls[3])
        .expect("client");
    let deadline = std::time::Instant::now() + LIMIT;
    loop {
        let info: serde_json::Value = jsonrpsee::core::client::ClientT::request(
            &admin3,
            "admin_nodeInfo",
            jsonrpsee::rpc_params![],
        )
        .await
        .expect("node info");
        if info["pooledTransactions"].as_u64() >= Some(gapped.len() as u64) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "node 3 never got node 0's transactions through the relay: {info}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
