//! One process, two chains: a `ChainHost` runs two single-validator chains side by side, each
//! finalizes on its own, and stopping one leaves the other running; a sub-chain created by a
//! main-chain vote starts by itself from the genesis derived from main-chain state, stops
//! when retired and starts again when recovered.

use alloy_consensus::TxLegacy;
use alloy_eips::eip2718::Encodable2718;
use alloy_primitives::{Address, TxKind, B256, U256};
use alloy_sol_types::SolCall;
use std::path::{Path, PathBuf};
use std::time::Duration;
use trellis_crypto::{AccountKey, NodeKey};
use trellis_execution::ViewSlots;
use trellis_node::{chain::subchains, Chain, ChainConfig, ChainHost, NodeConfig, NodeError};
use trellis_system::governance::{abi, GOVERNANCE_ADDRESS};
use trellis_system::xchain::abi as xabi;
use trellis_system::{CrossChain, LightClients, LIGHT_CLIENTS_ADDRESS, XCHAIN_ADDRESS};

fn write_genesis(path: &Path, chain_id: u64, validator: B256) {
    write_genesis_admin(
        path,
        chain_id,
        validator,
        Address::with_last_byte(1),
        Address::with_last_byte(2),
    );
}

/// One organisation, org1: `admin` administers it, `account` is one of its accounts.
fn write_genesis_admin(
    path: &Path,
    chain_id: u64,
    validator: B256,
    admin: Address,
    account: Address,
) {
    std::fs::write(
        path,
        format!(
            r#"{{"chainId": {chain_id},
                "validators": [{{"publicKey": "{validator}", "power": 1, "org": "org1"}}],
                "alloc": {{"{admin}": {{"balance": "0x100000000"}}}},
                "governance": {{"organizations": [
                    {{"id": "org1", "admins": ["{admin}"], "accounts": ["{account}"]}}]}}}}"#
        ),
    )
    .expect("genesis written");
}

const ANY_PORT: &str = "/ip4/127.0.0.1/tcp/0";

/// One node's config under `dir`: the chain of `main.json` validated by `node_key.json`,
/// every port chosen by the system, blocks every 50 ms when idle.
fn host_config(dir: &Path) -> NodeConfig {
    let mut config = NodeConfig {
        moniker: "host".into(),
        data_dir: dir.join("data"),
        genesis: dir.join("main.json"),
        node_key: dir.join("node_key.json"),
        ..Default::default()
    };
    config.rpc.listen = ([127, 0, 0, 1], 0).into();
    config.p2p.listen = ANY_PORT.into();
    config.p2p.gossip_listen = ANY_PORT.into();
    config.consensus.empty_block_interval_ms = 50;
    config
}

/// A `[[chains]]` entry beside `config`'s chain, on ports of its own and without peers.
fn second_chain(
    config: &NodeConfig,
    genesis: Option<PathBuf>,
    subchain: Option<u64>,
) -> ChainConfig {
    let mut p2p = config.p2p.clone();
    p2p.peers.clear();
    ChainConfig {
        genesis,
        subchain,
        rpc_listen: ([127, 0, 0, 1], 0).into(),
        p2p,
        metrics_listen: None,
    }
}

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

    let mut config = host_config(dir.path());
    config.chains = vec![second_chain(
        &config,
        Some(dir.path().join("sub.json")),
        None,
    )];

    // Two entries of one chain are refused before anything starts.
    let mut twice = config.clone();
    twice.chains[0].genesis = Some(dir.path().join("main.json"));
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

    // Each chain stays on its own port: nothing of the other is served under /chains/{id}.
    config.rpc.hosted_chains = false;
    let host = ChainHost::start(config).await.expect("host starts");
    let ids: Vec<u64> = host.chains().iter().map(|n| n.chain.chain_id()).collect();
    assert_eq!(ids, vec![501, 502]);
    let port = host.chain(501).expect("main chain").rpc_addr;
    let call = r#"{"jsonrpc":"2.0","id":1,"method":"eth_chainId","params":[]}"#;
    let (status, body) = http(port, "POST", "/chains/502", None, call).await;
    assert_eq!(status, 404, "{body}");
    let (status, body) = http(port, "POST", "/chains/501", None, call).await;
    assert_eq!(status, 200, "its own chain still answers there: {body}");
    let (status, body) = http(port, "GET", "/v1/chains", None, "").await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains("501") && !body.contains("502"),
        "not listed: {body}"
    );
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

/// Sends one governance call from `admin` and waits until it is committed.
async fn govern(chain: &Chain, admin: &AccountKey, nonce: u64, input: Vec<u8>) {
    transact(chain, admin, nonce, GOVERNANCE_ADDRESS, 0, input).await;
}

/// Sends one call from `key` and waits until it is committed; whether it succeeded.
async fn transact(
    chain: &Chain,
    key: &AccountKey,
    nonce: u64,
    to: Address,
    value: u64,
    input: Vec<u8>,
) -> bool {
    let tx = key.sign_tx(TxLegacy {
        chain_id: Some(chain.chain_id()),
        nonce,
        gas_price: 0,
        gas_limit: 5_000_000,
        to: TxKind::Call(to),
        value: U256::from(value),
        input: input.into(),
    });
    let hash = chain.admit(tx.encoded_2718()).await.expect("admitted");
    let mut committed = chain.subscribe_committed();
    tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            let view = chain.store().view().expect("view");
            if let Some(at) = view.tx_location(&hash).expect("read") {
                let receipts = view.receipts(at.height).expect("read").expect("kept");
                return alloy_consensus::TxReceipt::status(&receipts[at.index as usize]);
            }
            committed.changed().await.expect("chain running");
        }
    })
    .await
    .expect("the call was committed")
}

/// Reads `chain`'s cross-chain contract at its tip.
fn cross_chain<T>(
    chain: &Chain,
    read: impl FnOnce(
        &mut CrossChain<'_, ViewSlots<'_>, ViewSlots<'_>>,
    ) -> Result<T, trellis_system::SlotError>,
) -> T {
    let view = chain.store().view().expect("view");
    let mut xc = trellis_execution::system_slots(&view, XCHAIN_ADDRESS);
    let mut lc = trellis_execution::system_slots(&view, LIGHT_CLIENTS_ADDRESS);
    read(&mut CrossChain::new(&mut xc, &mut lc)).expect("readable")
}

/// Waits (bounded) until `done` holds.
async fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    tokio::time::timeout(Duration::from_secs(60), async {
        while !done() {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("never happened: {what}"));
}

/// The host's admin token in the sub-chain test.
const OPERATOR: &str = "operator-token-0123456789";

/// One HTTP/1.0 request to `addr` (`token` as its bearer); the status and the body.
async fn http(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: &str,
) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let auth = token.map_or(String::new(), |t| format!("authorization: Bearer {t}\r\n"));
    let request = format!(
        "{method} {path} HTTP/1.0\r\nhost: {addr}\r\n{auth}content-type: application/json\r\n\
         content-length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.expect("sent");
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await.expect("answered");
    let answer = String::from_utf8_lossy(&answer);
    let status = answer
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("a status line");
    let body = answer.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    (status, body.to_owned())
}

/// Waits (bounded) until the host runs `chain_id` (`true`) or does not (`false`).
async fn hosted(host: &ChainHost, chain_id: u64, running: bool) -> Option<Chain> {
    tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            let node = host.chain(chain_id);
            if node.is_some() == running {
                return node.map(|n| n.chain);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("chain {chain_id} running: {running} never happened"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subchain_created_by_vote_starts_by_itself_and_stops_while_retired() {
    let dir = tempfile::tempdir().expect("tempdir");
    let key = NodeKey::generate();
    key.save(&dir.path().join("node_key.json"))
        .expect("key saved");
    let validator = B256::from(*key.public().as_bytes());
    let admin = AccountKey::dev(0);
    // The courier's own account: org1's, so the sub-chain's genesis carries it over.
    let courier = AccountKey::dev(1);
    write_genesis_admin(
        &dir.path().join("main.json"),
        601,
        validator,
        admin.address(),
        courier.address(),
    );

    let mut config = host_config(dir.path());
    // The courier signs anchors with its account, every second.
    eth_keystore::encrypt_key(
        dir.path(),
        &mut rand::thread_rng(),
        courier.secret_bytes(),
        "pw",
        Some("anchor.json"),
    )
    .expect("keystore");
    std::fs::write(dir.path().join("pw"), "pw\n").expect("password file");
    config.anchoring.keystore = Some(dir.path().join("anchor.json"));
    config.anchoring.password_file = Some(dir.path().join("pw"));
    config.anchoring.heartbeat_secs = 1;
    // Reads need a token of a member or supervisor organisation, or the operator's.
    config.rpc.read_access = trellis_rpc::ReadPolicy::Consortium;
    config.rpc.admin_token = Some(OPERATOR.into());
    config.chains = vec![
        second_chain(&config, None, Some(602)),
        second_chain(&config, None, Some(603)),
    ];
    // An entry naming both a genesis and a sub-chain is refused.
    let mut both = config.clone();
    both.chains[0].genesis = Some(dir.path().join("main.json"));
    let refused = ChainHost::start(both).await.err().expect("refused");
    assert!(refused.to_string().contains("not both"), "{refused}");

    let host = ChainHost::start(config.clone()).await.expect("host starts");
    let main = host.chain(601).expect("main chain").chain;
    assert!(host.chain(602).is_none(), "not created yet");
    reach(&main, 2).await;

    let create = abi::proposeCreateSubchainCall {
        chainId: 602,
        name: "logistics".into(),
        members: vec!["org1".into()],
        validators: vec![abi::SubchainValidator {
            publicKey: validator,
            power: 1,
        }],
        effectiveHeight: 0,
    };
    // One member: the proposal passes as it is made, and takes effect at the next height.
    govern(&main, &admin, 0, create.abi_encode()).await;
    let sub = hosted(&host, 602, true).await.expect("sub-chain started");
    reach(&sub, 3).await;

    // The genesis it started from is the one main-chain state derives, and checks out
    // against the main-chain block it names.
    let derived = main
        .subchain_genesis(602)
        .expect("readable")
        .expect("kept by the node");
    let main_height: u64 = derived.main_height.to();
    let main_block = main
        .store()
        .view()
        .expect("view")
        .block(trellis_primitives::Height(main_height))
        .expect("read")
        .expect("the block the genesis is derived from");
    let hash = subchains::verify(&derived, main_block.hash()).expect("the genesis verifies");
    let sub_genesis = sub
        .store()
        .view()
        .expect("view")
        .block(trellis_primitives::Height(0))
        .expect("read")
        .expect("block 0");
    assert_eq!(
        hash,
        sub_genesis.hash(),
        "the sub-chain runs the derived genesis"
    );
    let client = &derived.genesis.light_clients[0];
    assert_eq!(
        (client.chain_id.0, client.root_hash),
        (601, main_block.hash())
    );

    // Each follows the other: the main chain's client of the sub-chain (created with it,
    // trusting its validators) and the sub-chain's of the main chain (from its genesis). The
    // host's courier carries headers both ways.
    let anchored = |chain: &Chain, of: u64| {
        let view = chain.store().view().expect("view");
        let mut slots = trellis_execution::system_slots(&view, LIGHT_CLIENTS_ADDRESS);
        LightClients::new(&mut slots)
            .client(of)
            .expect("readable")
            .map(|c| c.latest.height)
    };
    assert!(
        anchored(&main, 602).is_some(),
        "the main chain follows the sub-chain"
    );
    assert!(
        anchored(&sub, 601) >= Some(main_height),
        "the sub-chain follows the main chain"
    );
    tokio::time::timeout(Duration::from_secs(60), async {
        while anchored(&main, 602) < Some(2) || anchored(&sub, 601) <= Some(main_height + 1) {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await
    .expect("the courier anchors each chain on the other");

    // Value crosses without a trusted party: the courier carries proofs both ways. 1,000
    // escrowed on the main chain are held as vouchers on the sub-chain...
    let timeout = main
        .store()
        .view()
        .expect("view")
        .block(trellis_primitives::Height(main.height()))
        .expect("read")
        .expect("tip")
        .header
        .timestamp_ms
        + 600_000;
    let transfer = xabi::transferCall {
        destination: 602,
        receiver: admin.address(),
        timeoutMs: timeout,
    };
    assert!(
        transact(
            &main,
            &admin,
            1,
            XCHAIN_ADDRESS,
            1_000,
            transfer.abi_encode()
        )
        .await
    );
    eventually("vouchers minted on the sub-chain", || {
        cross_chain(&sub, |x| x.vouchers(601, &admin.address())) == U256::from(1_000)
    })
    .await;
    eventually("the transfer acknowledged", || {
        cross_chain(&main, |x| x.outbox(602)) == (2, 0)
    })
    .await;
    // ...400 of them come home to another account, out of the sub-chain's escrow...
    let home = Address::repeat_byte(0x77);
    let back = xabi::returnVouchersCall {
        origin: 601,
        receiver: home,
        amount: U256::from(400),
        timeoutMs: timeout,
    };
    assert!(transact(&sub, &admin, 0, XCHAIN_ADDRESS, 0, back.abi_encode()).await);
    let balance = |chain: &Chain, who: Address| {
        let view = chain.store().view().expect("view");
        view.account(&who)
            .expect("read")
            .map_or(U256::ZERO, |a| a.balance)
    };
    eventually("the value released on the main chain", || {
        balance(&main, home) == U256::from(400)
    })
    .await;
    eventually("the return acknowledged", || {
        cross_chain(&sub, |x| x.outbox(601)) == (2, 0)
    })
    .await;
    // ...and escrow = vouchers (nothing in flight).
    assert_eq!(cross_chain(&main, |x| x.escrowed(602)), U256::from(600));
    assert_eq!(
        cross_chain(&sub, |x| x.voucher_supply(601)),
        U256::from(600)
    );
    assert_eq!(balance(&main, XCHAIN_ADDRESS), U256::from(600));
    // A data message: only its hash crosses, received once.
    let note = xabi::sendCall {
        destination: 601,
        receiver: home,
        payload: b"certificate of origin 42".to_vec().into(),
        timeoutMs: timeout,
    };
    assert!(transact(&sub, &admin, 1, XCHAIN_ADDRESS, 0, note.abi_encode()).await);
    eventually("the message delivered and acknowledged", || {
        cross_chain(&sub, |x| x.outbox(601)) == (3, 0)
    })
    .await;
    let delivered = cross_chain(&main, |x| x.delivered(602, 2)).expect("delivered");
    assert_eq!(
        delivered.payload_hash,
        alloy_primitives::keccak256(b"certificate of origin 42")
    );

    // A second sub-chain. The two follow only the main chain, their hub: a message between
    // them is proven through the main chain's anchor of its source (a two-hop proof), which
    // the courier builds — and so is its acknowledgement.
    let create = abi::proposeCreateSubchainCall {
        chainId: 603,
        name: "customs".into(),
        members: vec!["org1".into()],
        validators: vec![abi::SubchainValidator {
            publicKey: validator,
            power: 1,
        }],
        effectiveHeight: 0,
    };
    govern(&main, &admin, 2, create.abi_encode()).await;
    let customs = hosted(&host, 603, true)
        .await
        .expect("second sub-chain started");
    let certificate = xabi::sendCall {
        destination: 603,
        receiver: home,
        payload: b"certificate of origin 43".to_vec().into(),
        timeoutMs: timeout,
    };
    assert!(transact(&sub, &admin, 2, XCHAIN_ADDRESS, 0, certificate.abi_encode()).await);
    eventually("received on the other sub-chain through the hub", || {
        cross_chain(&customs, |x| x.delivered(602, 1)).is_some_and(|d| {
            d.payload_hash == alloy_primitives::keccak256(b"certificate of origin 43")
        })
    })
    .await;
    eventually("acknowledged through the hub", || {
        cross_chain(&sub, |x| x.outbox(603)) == (2, 0)
    })
    .await;
    drop(customs);

    // Every hosted chain is served on each one's port under /chains/{id}, through its own read
    // access: the operator's token reads all three; a read token org1 issued on the main
    // chain reads the main chain, and not the sub-chains, which never saw it.
    let port = host.chain(601).expect("main chain").rpc_addr;
    let operator = Some(OPERATOR);
    let (status, body) = http(port, "GET", "/v1/chains", None, "").await;
    assert_eq!(status, 401, "{body}");
    let (status, body) = http(port, "GET", "/v1/chains", operator, "").await;
    assert_eq!(status, 200, "{body}");
    let chains: serde_json::Value = serde_json::from_str(&body).expect("json");
    let ids: Vec<u64> = chains
        .as_array()
        .expect("a list")
        .iter()
        .map(|c| c["chainId"].as_u64().expect("id"))
        .collect();
    assert_eq!(ids, [601, 602, 603]);
    let main_status = &chains[0]["status"];
    assert_eq!(main_status["members"], serde_json::json!(["org1"]));
    let followed: Vec<u64> = main_status["clients"]
        .as_array()
        .expect("clients")
        .iter()
        .map(|c| c["chainId"].as_u64().expect("id"))
        .collect();
    assert_eq!(followed, [602, 603]);
    let sub_status = &chains[1]["status"];
    assert_eq!(sub_status["hub"], 601);
    let of_main = &sub_status["clients"][0];
    assert_eq!(
        (of_main["chainId"].as_u64(), of_main["hub"].as_bool()),
        (Some(601), Some(true))
    );
    assert_eq!(of_main["messagesSent"], 2);
    assert!(
        of_main["lagBlocks"].is_u64(),
        "the node hosts the main chain: {of_main}"
    );
    let call = r#"{"jsonrpc":"2.0","id":1,"method":"eth_chainId","params":[]}"#;
    let (status, body) = http(port, "POST", "/chains/602", operator, call).await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains("\"0x25a\""),
        "chain 602 answers for itself: {body}"
    );
    let (status, body) = http(port, "POST", "/chains/999", operator, call).await;
    assert_eq!(status, 404, "{body}");
    assert!(body.contains("not hosted"), "{body}");
    let token = "org1-reader-0123456789abcdef";
    let issue = abi::issueReadTokenCall {
        tokenHash: trellis_system::governance::read_token_hash(token),
        label: "auditor".into(),
        expiresAt: 0,
    };
    govern(&main, &admin, 3, issue.abi_encode()).await;
    let (status, body) = http(port, "GET", "/chains/601/v1/chain", Some(token), "").await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = http(port, "GET", "/chains/602/v1/chain", Some(token), "").await;
    assert_eq!(status, 401, "the sub-chain does not know the token: {body}");
    let (status, body) = http(port, "GET", "/v1/chains", Some(token), "").await;
    assert_eq!(status, 200, "{body}");
    let chains: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert!(chains[0]["status"].is_object(), "{body}");
    assert!(chains[1]["status"].is_null(), "{body}");
    assert!(
        chains[1]["error"]
            .as_str()
            .is_some_and(|e| e.contains("401")),
        "{body}"
    );

    // A main-chain vote freezes an account on the sub-chain: a governance packet, relayed by
    // the courier like any message, applied by the sub-chain's governance as it arrives.
    let suspect = Address::repeat_byte(0x99);
    let packet = abi::proposeToSubchainCall {
        chainId: 602,
        call: abi::proposeFreezeCall {
            target: suspect,
            effectiveHeight: 0,
        }
        .abi_encode()
        .into(),
        effectiveHeight: 0,
    };
    govern(&main, &admin, 4, packet.abi_encode()).await;
    eventually("the sub-chain froze the account", || {
        let view = sub.store().view().expect("view");
        let mut slots = trellis_execution::governance_slots(&view);
        trellis_system::Governance::new(&mut slots)
            .is_frozen(&suspect)
            .expect("readable")
    })
    .await;
    eventually("the packet acknowledged", || {
        cross_chain(&main, |x| x.outbox(602)) == (3, 0)
    })
    .await;
    // The sub-chain's own vote resets only its client of the main chain: any other is
    // refused as it is proposed (only the main chain's vote, by a packet, resets those).
    let reset_other = abi::proposeResetLightClientCall {
        chainId: 603,
        height: 1_000,
        blockHash: B256::repeat_byte(1),
        stateRoot: B256::repeat_byte(2),
        timestampMs: 0,
        validators: vec![abi::SubchainValidator {
            publicKey: validator,
            power: 1,
        }],
        effectiveHeight: 0,
    };
    assert!(
        !transact(
            &sub,
            &admin,
            3,
            GOVERNANCE_ADDRESS,
            0,
            reset_other.abi_encode()
        )
        .await,
        "refused when proposed"
    );

    // What does not match is refused: another block, a changed genesis, a changed slot.
    assert!(subchains::verify(&derived, B256::repeat_byte(1)).is_err());
    let mut changed = derived.clone();
    changed.genesis.gas_limit += 1;
    let err = subchains::verify(&changed, main_block.hash()).expect_err("changed genesis");
    assert!(err.to_string().contains("differs"), "{err}");
    let mut forged = derived.clone();
    forged.witness.slots[0].value += U256::from(1);
    assert!(subchains::verify(&forged, main_block.hash()).is_err());

    // Retired: its hosts stop it. Recovered: they start it again where it stopped.
    let retire = abi::proposeRetireSubchainCall {
        chainId: 602,
        effectiveHeight: 0,
    };
    govern(&main, &admin, 5, retire.abi_encode()).await;
    hosted(&host, 602, false).await;
    let stopped_at = sub.height();
    drop(sub);
    let recover = abi::proposeRecoverSubchainCall {
        chainId: 602,
        effectiveHeight: 0,
    };
    govern(&main, &admin, 6, recover.abi_encode()).await;
    let sub = hosted(&host, 602, true)
        .await
        .expect("sub-chain started again");
    reach(&sub, stopped_at + 2).await;
    drop(sub);
    host.stop().await;
}
