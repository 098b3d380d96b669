//! Two chains hosted by the same four processes (`[[chains]]` in each node's config): both
//! take load and finalize on their own, a node registered only on the first chain is
//! refused by the second chain's network, the second chain follows the first with its
//! on-chain light client (anchors fetched with `trellis_getAnchor` and submitted as
//! transactions; a forged one refused), and stopping the second chain in every process
//! (`admin_stopChain`) leaves the first finalizing.

mod common;

use alloy_consensus::TxLegacy;
use alloy_eips::eip2718::Encodable2718;
use alloy_primitives::{Address, Bytes, TxKind, U256};
use common::*;
use serde_json::Value;
use std::time::{Duration, Instant};
use trellis_crypto::AccountKey;

const LIMIT: Duration = Duration::from_secs(120);
const ADMIN_TOKEN: &str = "hosting-test-admin-token";

/// A client of `url` that presents the nodes' admin token.
fn admin(url: &str) -> jsonrpsee::http_client::HttpClient {
    let mut headers = jsonrpsee::http_client::HeaderMap::new();
    headers.insert(
        "authorization",
        format!("Bearer {ADMIN_TOKEN}").parse().expect("header"),
    );
    jsonrpsee::http_client::HttpClientBuilder::default()
        .set_headers(headers)
        .build(url)
        .expect("client")
}

/// A transfer of 1 wei signed for `chain_id`.
fn transfer_on(key: &AccountKey, chain_id: u64, nonce: u64, to: Address) -> Bytes {
    let tx = key.sign_tx(TxLegacy {
        chain_id: Some(chain_id),
        nonce,
        gas_price: 0,
        gas_limit: 21_000,
        to: TxKind::Call(to),
        value: U256::from(1),
        input: Bytes::new(),
    });
    Bytes::from(tx.encoded_2718())
}

/// Waits until process `pid` is gone (the testnet's nodes are not our children).
fn wait_gone(pid: u32) {
    let pid = nix::unistd::Pid::from_raw(pid as i32);
    let start = Instant::now();
    while nix::sys::signal::kill(pid, None).is_ok() {
        assert!(start.elapsed() < LIMIT, "process {pid} outlived SIGKILL");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn four_processes_host_two_chains_that_finalize_independently() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    // Chain A: a 4-validator testnet, one organisation per validator.
    let net = Testnet::up(dir, 4, 2);
    let a_urls = net.urls();
    wait_height(&client(&a_urls[0]), 2, LIMIT).await;
    for (i, node) in net.info.nodes.iter().enumerate() {
        net.kill(i);
        wait_gone(node.pid);
    }

    // Chain B: the same organisations and accounts, another chain id, and only the first
    // three nodes as validators (node 3 is registered on chain A alone).
    let mut genesis: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("genesis.json")).expect("genesis"))
            .expect("genesis json");
    let b_chain_id = CHAIN_ID + 1;
    genesis["chainId"] = Value::from(b_chain_id);
    let validators = genesis["validators"].as_array_mut().expect("validators");
    assert_eq!(validators.len(), 4);
    validators.pop();
    // B starts with a light client of A, trusting A's genesis validators from A's genesis.
    let a_genesis = trellis_primitives::Genesis::load(&dir.join("genesis.json")).expect("A");
    let (_, a_block0) = trellis_node::genesis_block(&a_genesis).expect("A's genesis block");
    genesis["lightClients"] = serde_json::json!([{
        "chainId": CHAIN_ID,
        "rootHash": a_block0.hash(),
        "rootTimestampMs": a_block0.header.timestamp_ms,
        "validators": a_genesis
            .validators
            .iter()
            .map(|v| serde_json::json!({"publicKey": v.public_key, "power": v.power}))
            .collect::<Vec<_>>(),
    }]);
    std::fs::write(dir.join("genesis-b.json"), genesis.to_string()).expect("genesis b");

    // Each node gets a [[chains]] table with B's own ports and peers.
    let ports: Vec<[u16; 3]> = free_ports(12)
        .chunks_exact(3)
        .map(|p| [p[0], p[1], p[2]])
        .collect();
    let list = |i: usize, k: usize| {
        (0..4)
            .filter(|j| *j != i)
            .map(|j| format!("\"/ip4/127.0.0.1/tcp/{}\"", ports[j][k]))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut procs = Vec::new();
    for (i, node) in net.info.nodes.iter().enumerate() {
        let config = std::fs::read_to_string(&node.config).expect("node.toml");
        assert!(config.contains("\n[rpc]\n"), "{config}");
        let mut config = config.replacen(
            "\n[rpc]\n",
            &format!("\n[rpc]\nadmin_token = \"{ADMIN_TOKEN}\"\n"),
            1,
        );
        config.push_str(&format!(
            "\n[[chains]]\ngenesis = \"../genesis-b.json\"\nrpc_listen = \"127.0.0.1:{}\"\n\
             [chains.p2p]\nlisten = \"/ip4/127.0.0.1/tcp/{}\"\npeers = [{}]\n\
             gossip_listen = \"/ip4/127.0.0.1/tcp/{}\"\ngossip_peers = [{}]\n",
            ports[i][0],
            ports[i][1],
            list(i, 1),
            ports[i][2],
            list(i, 2),
        ));
        std::fs::write(&node.config, config).expect("node.toml with chain b");
        let log = node.config.with_file_name("node-two-chains.log");
        procs.push(Proc::spawn(
            &["node", "--config", node.config.to_str().expect("path")],
            &log,
        ));
    }
    let b_urls: Vec<String> = ports
        .iter()
        .map(|p| format!("http://127.0.0.1:{}", p[0]))
        .collect();
    // A process that stops while starting (a chain failing to start stops its process) says
    // why in its log: fail with it rather than wait out the limit.
    let started_by = Instant::now() + LIMIT;
    for (i, p) in ports.iter().enumerate() {
        while std::net::TcpStream::connect(("127.0.0.1", p[0])).is_err() {
            if let Ok(Some(status)) = procs[i].child.try_wait() {
                let log = net.info.nodes[i]
                    .config
                    .with_file_name("node-two-chains.log");
                panic!(
                    "node {i} exited ({status}) while starting:\n{}",
                    std::fs::read_to_string(log).unwrap_or_default()
                );
            }
            assert!(
                Instant::now() < started_by,
                "chain B's RPC port {} never opened",
                p[0]
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        wait_for_http(p[0], LIMIT).await;
    }
    let (a, b) = (client(&a_urls[0]), client(&b_urls[1]));
    let chain_id = |c: &jsonrpsee::http_client::HttpClient| {
        let c = c.clone();
        async move {
            use jsonrpsee::core::client::ClientT;
            let id: alloy_primitives::U64 = c
                .request("eth_chainId", jsonrpsee::rpc_params![])
                .await
                .expect("eth_chainId");
            id.to::<u64>()
        }
    };
    assert_eq!(chain_id(&a).await, CHAIN_ID);
    assert_eq!(chain_id(&b).await, b_chain_id);

    // Load on both chains: the same account's transfers, each signed for its chain.
    let sender = AccountKey::dev(0);
    let to = AccountKey::dev(1).address();
    let a_start = nonce(&a, sender.address(), "latest").await;
    let mut hashes = Vec::new();
    for k in 0..20 {
        let a_tx = transfer_on(&sender, CHAIN_ID, a_start + k, to);
        let b_tx = transfer_on(&sender, b_chain_id, k, to);
        hashes.push((&a, send_raw(&a, &a_tx).await.expect("accepted on chain A")));
        hashes.push((&b, send_raw(&b, &b_tx).await.expect("accepted on chain B")));
    }
    for (c, hash) in hashes {
        let receipt = wait_receipt(c, hash, LIMIT).await;
        assert_eq!(receipt["status"], "0x1", "{receipt}");
    }

    // Each finalizes on its own; node 3 follows chain A but is kept out of chain B.
    let b_height = block_number(&b).await;
    wait_height(&client(&b_urls[0]), b_height + 3, LIMIT).await;
    let a_height = block_number(&a).await;
    wait_height(&client(&a_urls[3]), a_height + 3, LIMIT).await;
    assert_eq!(
        block_number(&client(&b_urls[3])).await,
        0,
        "a node registered only on chain A must not sync chain B"
    );

    // Chain B follows chain A: a courier (this test) fetches A's latest block as an anchor
    // and submits it to B's light-client contract; B then knows A's header there.
    use alloy_sol_types::SolCall;
    use trellis_api::ChainApiClient;
    use trellis_system::clients::abi as lc;
    let anchored = block_number(&a).await;
    let anchor = a
        .anchor(alloy_primitives::U64::from(anchored))
        .await
        .expect("trellis_getAnchor")
        .expect("a committed block");
    assert!(anchor.next_validators.is_none(), "A's set did not change");
    let submission = |header: Bytes| {
        lc::submitAnchorCall {
            header,
            certificate: anchor.certificate.clone(),
            nextKeys: vec![],
            nextPowers: vec![],
        }
        .abi_encode()
    };
    let eth_call = |data: Vec<u8>| {
        let b = b.clone();
        async move {
            jsonrpsee::core::client::ClientT::request::<Bytes, _>(
                &b,
                "eth_call",
                jsonrpsee::rpc_params![
                    serde_json::json!({
                        "from": AccountKey::dev(0).address(),
                        "to": trellis_system::LIGHT_CLIENTS_ADDRESS,
                        "data": Bytes::from(data),
                    }),
                    "latest"
                ],
            )
            .await
        }
    };
    let submit = |header: Bytes, nonce: u64| {
        let tx = sender.sign_tx(TxLegacy {
            chain_id: Some(b_chain_id),
            nonce,
            gas_price: 0,
            gas_limit: 2_000_000,
            to: TxKind::Call(trellis_system::LIGHT_CLIENTS_ADDRESS),
            value: U256::ZERO,
            input: submission(header).into(),
        });
        Bytes::from(tx.encoded_2718())
    };
    // A forged header (another state root) with the real certificate is refused.
    let mut forged = trellis_light::decode_header(&anchor.header).expect("header");
    forged.state_root = alloy_primitives::B256::repeat_byte(0x66);
    let mut forged_rlp = Vec::new();
    alloy_rlp::Encodable::encode(&forged, &mut forged_rlp);
    let refused = eth_call(submission(forged_rlp.into())).await;
    assert!(
        refused
            .as_ref()
            .is_err_and(|e| e.to_string().contains("certificate")),
        "{refused:?}"
    );
    let b_nonce = nonce(&b, sender.address(), "latest").await;
    let hash = send_raw(&b, &submit(anchor.header.clone(), b_nonce))
        .await
        .expect("anchor accepted");
    let receipt = wait_receipt(&b, hash, LIMIT).await;
    assert_eq!(receipt["status"], "0x1", "{receipt}");
    let view = eth_call(lc::clientCall { chainId: CHAIN_ID }.abi_encode())
        .await
        .expect("client view");
    let follows = lc::clientCall::abi_decode_returns(&view).expect("client answer");
    assert!(follows.exists && !follows.frozen);
    assert_eq!(follows.height, anchored);
    assert_eq!(
        follows.blockHash,
        trellis_light::decode_header(&anchor.header)
            .expect("header")
            .hash()
    );

    // The operator of every process stops chain B through chain A's admin API: B's ports
    // close and chain A goes on finalizing on all four nodes.
    use trellis_api::AdminApiClient;
    for url in &a_urls {
        let hosted = admin(url).chains().await.expect("admin_chains");
        let ids: Vec<u64> = hosted.iter().map(|c| c.chain_id).collect();
        assert_eq!(ids, vec![CHAIN_ID, b_chain_id], "{url}");
        assert!(admin(url)
            .stop_chain(alloy_primitives::U64::from(b_chain_id))
            .await
            .expect("admin_stopChain"));
    }
    let closed_by = Instant::now() + LIMIT;
    for p in &ports {
        while std::net::TcpStream::connect(("127.0.0.1", p[0])).is_ok() {
            assert!(
                Instant::now() < closed_by,
                "chain B's RPC port {} stays open",
                p[0]
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let a_height = block_number(&a).await;
    for url in &a_urls {
        wait_height(&client(url), a_height + 3, LIMIT).await;
        let hosted = admin(url).chains().await.expect("admin_chains");
        assert_eq!(hosted.len(), 1, "{hosted:?}");
        assert_eq!(hosted[0].chain_id, CHAIN_ID);
        assert!(
            !admin(url)
                .stop_chain(alloy_primitives::U64::from(b_chain_id))
                .await
                .expect("admin_stopChain"),
            "already stopped"
        );
    }
    drop(procs);
}
