//! Value and messages between a main chain and the sub-chain it created by vote, carried by
//! `trellis xchain relay` alone (the node runs no courier): each relay round proves one
//! chain's state to the other, which checks it against its own light client. A transfer is
//! received and acknowledged, vouchers come home, a relay round with nothing new carries
//! nothing, and a message not received before its timeout is refunded on a proof of absence;
//! then a second sub-chain, reached from the first only through the main chain's anchors
//! (`relay --hub`).
//! And `trellis testnet up --subchains 2`: a main chain and two sub-chains created by vote in
//! four processes, where node-0's courier carries a transfer on its own.

mod common;

use alloy_primitives::{Address, U256};
use common::*;
use std::time::{Duration, Instant};
use trellis_crypto::AccountKey;

const LIMIT: Duration = Duration::from_secs(120);

#[tokio::test(flavor = "multi_thread")]
async fn the_cli_carries_value_and_messages_between_a_main_chain_and_its_subchain() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    let [rpc, p2p, gossip, rpc2, p2p2, gossip2] = free_ports(6)[..] else {
        unreachable!("six ports asked for")
    };
    let entry = |id: u64, rpc: u16, p2p: u16, gossip: u16| {
        format!(
            "[[chains]]\nsubchain = {id}\nrpc_listen = \"127.0.0.1:{rpc}\"\n[chains.p2p]\n\
             listen = \"/ip4/127.0.0.1/tcp/{p2p}\"\ngossip_listen = \"/ip4/127.0.0.1/tcp/{gossip}\"\n"
        )
    };
    let extra = entry(700, rpc, p2p, gossip) + &entry(701, rpc2, p2p2, gossip2);
    let (_node, main) = start_single_node(dir, &extra).await;
    wait_height(&client(&main), 1, LIMIT).await;
    let genesis: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("genesis.json")).expect("read"))
            .expect("genesis");
    let key = genesis["validators"][0]["publicKey"]
        .as_str()
        .expect("validator key")
        .to_owned();
    // org1 alone: the proposal passes as it is made; the node starts the sub-chain itself.
    gov(
        dir,
        &main,
        0,
        &[
            "propose",
            "create-subchain",
            "--chain-id",
            "700",
            "--name",
            "edge",
            "--member",
            "org1",
            "--validator",
            &key,
        ],
    );
    wait_for_http(rpc, LIMIT).await;
    let sub = format!("http://127.0.0.1:{rpc}");
    wait_height(&client(&sub), 2, LIMIT).await;

    let (alice, bob) = (AccountKey::dev(1).address(), AccountKey::dev(2).address());
    let xchain = |args: &[&str]| run_cli(dir, &[&["xchain"], args].concat());
    let relay = |from: &str, to: &str| {
        xchain(&[
            "relay",
            "--from",
            from,
            "--rpc",
            to,
            "--dev-account",
            "1",
            "--once",
        ])
    };

    // 1,000 wei from Alice on the main chain to Bob on the sub-chain.
    let out = xchain(&[
        "transfer",
        "--rpc",
        &main,
        "--dev-account",
        "1",
        "--to-chain",
        "700",
        "--receiver",
        &bob.to_string(),
        "--value",
        "1000",
    ]);
    assert!(out.contains("message 1 to chain 700 committed"), "{out}");
    let out = relay(&main, &sub);
    assert!(out.contains("message 1 of chain 1337 received"), "{out}");
    let status = xchain(&["status", "--rpc", &sub, "--holder", &bob.to_string()]);
    assert!(status.contains("holds 1000 of its vouchers"), "{status}");
    let out = relay(&sub, &main);
    assert!(out.contains("message 1 to chain 700 acknowledged"), "{out}");
    let status = xchain(&["status", "--rpc", &main]);
    assert!(
        status.contains("messages sent 1, pending 0; escrowed for it 1000"),
        "{status}"
    );
    // Nothing new: a round carries nothing (a received message is not offered again).
    assert_eq!(relay(&main, &sub).trim(), "");

    // Bob sends 400 home to a fresh account on the main chain.
    let home = Address::repeat_byte(0x77);
    let out = xchain(&[
        "return",
        "--rpc",
        &sub,
        "--dev-account",
        "2",
        "--origin",
        "1337",
        "--receiver",
        &home.to_string(),
        "--amount",
        "400",
    ]);
    assert!(out.contains("message 1 to chain 1337 committed"), "{out}");
    let out = relay(&sub, &main);
    assert!(out.contains("message 1 of chain 700 received"), "{out}");
    assert_eq!(balance(&client(&main), home).await, U256::from(400));
    let out = relay(&main, &sub);
    assert!(
        out.contains("message 1 to chain 1337 acknowledged"),
        "{out}"
    );
    let status = xchain(&["status", "--rpc", &sub, "--holder", &bob.to_string()]);
    assert!(status.contains("holds 600 of its vouchers"), "{status}");

    // A message nobody carries before its timeout comes back on a proof that the sub-chain
    // never received it, and is not delivered afterwards.
    let before = balance(&client(&main), alice).await;
    let out = xchain(&[
        "transfer",
        "--rpc",
        &main,
        "--dev-account",
        "1",
        "--to-chain",
        "700",
        "--receiver",
        &bob.to_string(),
        "--value",
        "5",
        "--timeout-secs",
        "3",
    ]);
    assert!(out.contains("message 2 to chain 700 committed"), "{out}");
    assert_eq!(balance(&client(&main), alice).await, before - U256::from(5));
    let start = Instant::now();
    loop {
        let out = relay(&sub, &main);
        if out.contains("message 2 to chain 700 timed out and refunded") {
            break;
        }
        assert!(start.elapsed() < LIMIT, "never timed out: {out}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(balance(&client(&main), alice).await, before);
    assert!(!relay(&main, &sub).contains("received"));
    let status = xchain(&["status", "--rpc", &main]);
    assert!(
        status.contains("messages sent 2, pending 0; escrowed for it 600"),
        "{status}"
    );

    // A second sub-chain. The two follow only the main chain: a relay between them goes
    // through its anchors (--hub), anchoring on the main chain and on the destination itself.
    gov(
        dir,
        &main,
        0,
        &[
            "propose",
            "create-subchain",
            "--chain-id",
            "701",
            "--name",
            "customs",
            "--member",
            "org1",
            "--validator",
            &key,
        ],
    );
    wait_for_http(rpc2, LIMIT).await;
    let customs = format!("http://127.0.0.1:{rpc2}");
    wait_height(&client(&customs), 2, LIMIT).await;
    let out = xchain(&[
        "send",
        "--rpc",
        &sub,
        "--dev-account",
        "1",
        "--to-chain",
        "701",
        "--receiver",
        &bob.to_string(),
        "--text",
        "certificate of origin 9",
    ]);
    assert!(out.contains("message 1 to chain 701 committed"), "{out}");
    let hop_relay = |from: &str, to: &str| {
        xchain(&[
            "relay",
            "--from",
            from,
            "--hub",
            &main,
            "--rpc",
            to,
            "--dev-account",
            "1",
            "--once",
        ])
    };
    let refused = cli_fails(
        dir,
        &[
            "xchain",
            "relay",
            "--from",
            &sub,
            "--rpc",
            &customs,
            "--dev-account",
            "1",
            "--once",
        ],
    );
    assert!(refused.contains("pass --hub"), "{refused}");
    let out = hop_relay(&sub, &customs);
    assert!(out.contains("message 1 of chain 700 received"), "{out}");
    xchain(&[
        "verify",
        "--rpc",
        &customs,
        "--source",
        "700",
        "--sequence",
        "1",
        "--text",
        "certificate of origin 9",
    ]);
    let out = hop_relay(&customs, &sub);
    assert!(out.contains("message 1 to chain 701 acknowledged"), "{out}");
    let status = xchain(&["status", "--rpc", &sub, "--chain", "701"]);
    assert!(
        status.contains("chain 701 (not followed): messages sent 1, pending 0"),
        "{status}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_testnet_with_two_subchains_carries_a_transfer_by_itself() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    let net = Testnet::up_with(&dir.join("net"), 4, 6, &["--subchains", "2"]);
    let subs: Vec<u64> = net.info.subchains.iter().map(|s| s.chain_id).collect();
    assert_eq!(subs, vec![1338, 1339]);
    // Every node runs every chain, and each chain finalizes.
    for sub in &net.info.subchains {
        for url in &sub.rpc {
            wait_height(&client(url), 2, LIMIT).await;
        }
    }
    let main = net.urls()[1].clone();
    let sub = net.info.subchains[1].rpc[2].clone();
    let receiver = AccountKey::dev(5).address();
    let out = run_cli(
        dir,
        &[
            "xchain",
            "transfer",
            "--rpc",
            &main,
            "--dev-account",
            "5",
            "--to-chain",
            "1339",
            "--receiver",
            &receiver.to_string(),
            "--value",
            "777",
        ],
    );
    assert!(out.contains("message 1 to chain 1339 committed"), "{out}");
    // node-0's courier anchors and relays both ways: vouchers on the sub-chain, then the
    // acknowledgement clears the message on the main chain.
    let start = Instant::now();
    loop {
        let status = run_cli(dir, &["xchain", "status", "--rpc", &main]);
        if status.contains("chain 1339") && status.contains("messages sent 1, pending 0") {
            break;
        }
        assert!(start.elapsed() < LIMIT, "never acknowledged: {status}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let status = run_cli(
        dir,
        &[
            "xchain",
            "status",
            "--rpc",
            &sub,
            "--holder",
            &receiver.to_string(),
        ],
    );
    assert!(status.contains("holds 777 of its vouchers"), "{status}");
    // One node's port shows every chain it hosts (each read at /chains/{id}).
    let chains = run_cli(dir, &["chain", "status", "--rpc", &main]);
    for expected in [
        "chain 1337 at height",
        "chain 1338 at height",
        "chain 1339 at height",
        "follows 1337 (hub): anchored at",
        "follows 1339: anchored at",
        "messages sent 1, pending 0; escrowed 777",
    ] {
        assert!(chains.contains(expected), "{expected:?} in {chains}");
    }

    // A certificate of origin, notarized on one sub-chain, checked on the other with only its
    // digest crossing — through the main chain's anchors (the sub-chains do not follow each
    // other), relayed by node-0's courier.
    let (exporter, customs) = (
        net.info.subchains[0].rpc[1].clone(),
        net.info.subchains[1].rpc[3].clone(),
    );
    let certificate = dir.join("certificate.txt");
    std::fs::write(&certificate, "certificate of origin 7: 40 t of steel coil").expect("written");
    let file = certificate.to_str().expect("utf-8 path");
    let out = run_cli(
        dir,
        &[
            "evidence",
            "submit",
            "--rpc",
            &exporter,
            "--dev-account",
            "5",
            file,
        ],
    );
    assert!(out.contains("1 records in block"), "{out}");
    let out = run_cli(
        dir,
        &[
            "xchain",
            "send",
            "--rpc",
            &exporter,
            "--dev-account",
            "5",
            "--to-chain",
            "1339",
            "--receiver",
            &receiver.to_string(),
            "--file",
            file,
        ],
    );
    assert!(out.contains("message 1 to chain 1339 committed"), "{out}");
    let verify = [
        "xchain",
        "verify",
        "--rpc",
        &customs,
        "--source",
        "1338",
        "--sequence",
        "1",
    ];
    let start = Instant::now();
    loop {
        let out = cli_output(dir, &[&verify[..], &["--file", file]].concat());
        if out.status.success() {
            let said = String::from_utf8_lossy(&out.stdout);
            assert!(
                said.contains("is what message 1 from chain 1338 carried"),
                "{said}"
            );
            break;
        }
        let why = String::from_utf8_lossy(&out.stderr);
        assert!(why.contains("has received no data message"), "{why}");
        assert!(start.elapsed() < LIMIT, "never received: {why}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // A changed document does not verify.
    std::fs::write(&certificate, "certificate of origin 7: 400 t of steel coil").expect("written");
    let why = cli_fails(dir, &[&verify[..], &["--file", file]].concat());
    assert!(why.contains("is not what was sent"), "{why}");
    // The acknowledgement comes back the same way.
    let start = Instant::now();
    loop {
        let status = run_cli(
            dir,
            &["xchain", "status", "--rpc", &exporter, "--chain", "1339"],
        );
        if status.contains("chain 1339 (not followed)")
            && status.contains("messages sent 1, pending 0")
        {
            break;
        }
        assert!(start.elapsed() < LIMIT, "never acknowledged: {status}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
