//! One process, two chains: a `ChainHost` runs two single-validator chains side by side, each
//! finalizes on its own, and stopping one leaves the other running.

use alloy_primitives::B256;
use std::path::Path;
use std::time::Duration;
use trellis_crypto::NodeKey;
use trellis_node::{Chain, ChainConfig, ChainHost, NodeConfig, NodeError};

fn write_genesis(path: &Path, chain_id: u64, validator: B256) {
    std::fs::write(
        path,
        format!(
            r#"{{"chainId": {chain_id},
                "validators": [{{"publicKey": "{validator}", "power": 1, "org": "org1"}}],
                "governance": {{"organizations": [{{"id": "org1", "admins": ["0x0000000000000000000000000000000000000001"]}}]}}}}"#
        ),
    )
    .expect("genesis written");
}

const ANY_PORT: &str = "/ip4/127.0.0.1/tcp/0";

/// Waits (bounded, so a stalled chain fails the test instead of hanging it) until `chain`
/// commits `height`.
async fn reach(chain: &Chain, height: u64) {
    let mut committed = chain.subscribe_committed();
    tokio::time::timeout(
        Duration::from_secs(120),
        committed.wait_for(|h| *h >= height),
    )
    .await
    .unwrap_or_else(|_| panic!("chain {} did not reach {height}", chain.chain_id()))
    .expect("chain running");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_chains_in_one_host_finalize_independently_and_stop_alone() {
    let dir = tempfile::tempdir().expect("tempdir");
    let key = NodeKey::generate();
    key.save(&dir.path().join("node_key.json"))
        .expect("key saved");
    let validator = B256::from(*key.public().as_bytes());
    write_genesis(&dir.path().join("main.json"), 501, validator);
    write_genesis(&dir.path().join("sub.json"), 502, validator);

    let mut config = NodeConfig {
        moniker: "host".into(),
        data_dir: dir.path().join("data"),
        genesis: dir.path().join("main.json"),
        node_key: dir.path().join("node_key.json"),
        ..Default::default()
    };
    config.rpc.listen = ([127, 0, 0, 1], 0).into();
    config.p2p.listen = ANY_PORT.into();
    config.p2p.gossip_listen = ANY_PORT.into();
    config.consensus.empty_block_interval_ms = 50;
    let mut sub_p2p = config.p2p.clone();
    sub_p2p.peers.clear();
    config.chains = vec![ChainConfig {
        genesis: dir.path().join("sub.json"),
        rpc_listen: ([127, 0, 0, 1], 0).into(),
        p2p: sub_p2p,
        metrics_listen: None,
    }];

    // Two entries of one chain are refused before anything starts.
    let mut twice = config.clone();
    twice.chains[0].genesis = dir.path().join("main.json");
    let refused = ChainHost::start(twice).await.err().expect("refused");
    assert!(
        format!("{refused:#}").contains("configured twice"),
        "{refused:#}"
    );
    assert!(!dir.path().join("data").exists(), "nothing was opened");

    // A hosted chain that cannot start is named with its cause, and the chain started before
    // it is stopped: its RPC port closes.
    let mut broken = config.clone();
    broken.chains[0].p2p.listen = "not-a-multiaddr".into();
    broken.rpc.listen = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port");
    let refused = ChainHost::start(broken.clone())
        .await
        .err()
        .expect("refused");
    match &refused {
        NodeError::Hosted { genesis, source } => {
            assert_eq!(genesis, &dir.path().join("sub.json"));
            assert!(
                matches!(
                    **source,
                    NodeError::Config {
                        key: "p2p.listen",
                        ..
                    }
                ),
                "{source:?}"
            );
        }
        other => panic!("expected the sub-chain's failure, got {other:?}"),
    }
    assert!(refused.to_string().contains("not-a-multiaddr"), "{refused}");
    assert!(
        std::net::TcpStream::connect(broken.rpc.listen).is_err(),
        "the main chain started first was stopped"
    );

    let host = ChainHost::start(config).await.expect("host starts");
    let ids: Vec<u64> = host.chains().iter().map(|n| n.chain.chain_id()).collect();
    assert_eq!(ids, vec![501, 502]);
    let main = host.chain(501).expect("main chain").chain.clone();
    let sub = host.chain(502).expect("sub-chain").chain.clone();
    assert_ne!(
        host.chain(501).map(|n| n.rpc_addr),
        host.chain(502).map(|n| n.rpc_addr)
    );
    reach(&main, 3).await;
    reach(&sub, 3).await;
    // Each has its own database and consensus log.
    for id in [501, 502] {
        let chain_dir = dir.path().join("data").join(format!("chain-{id}"));
        assert!(chain_dir.join("state.redb").is_file(), "{chain_dir:?}");
        assert!(
            chain_dir.join("consensus").join("wal").is_dir(),
            "{chain_dir:?}"
        );
    }
    // Their blocks are their own: different genesis, different chain id in every header.
    let main_block = main
        .store()
        .view()
        .expect("view")
        .block(trellis_primitives::Height(1));
    let sub_block = sub
        .store()
        .view()
        .expect("view")
        .block(trellis_primitives::Height(1));
    let (main_block, sub_block) = (
        main_block.expect("read").expect("block 1"),
        sub_block.expect("read").expect("block 1"),
    );
    assert_eq!(
        (main_block.header.chain_id, sub_block.header.chain_id),
        (501, 502)
    );

    // Stopping the sub-chain leaves the main chain running.
    assert!(host.stop_chain(502).await);
    assert!(!host.stop_chain(502).await, "already stopped");
    assert!(host.chain(502).is_none());
    let stopped_at = sub.height();
    let running_at = main.height();
    reach(&main, running_at + 3).await;
    assert!(
        sub.height() <= stopped_at + 1,
        "a stopped chain commits nothing more"
    );
    // Nothing of it lingers: once the last handle to it goes, its database is closed and
    // the same process can open it again.
    drop(sub);
    let sub_db = dir.path().join("data").join("chain-502").join("state.redb");
    drop(trellis_storage::Store::open(&sub_db).expect("the stopped chain's database is closed"));
    host.stop().await;
}
