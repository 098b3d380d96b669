//! End-to-end tests against a `trellis dev` process: transfers, contracts, and every
//! admission error, each of which must leave the pool and the chain unchanged.

mod common;

use alloy_consensus::{SignableTransaction, TxEnvelope, TxLegacy};
use alloy_eips::eip2718::Encodable2718;
use alloy_primitives::{Address, Bytes, Signature, TxKind, U256};
use common::*;
use jsonrpsee::core::client::{ClientT, SubscriptionClientT};
use jsonrpsee::rpc_params;
use serde_json::{json, Value};
use std::time::Duration;
use trellis_crypto::AccountKey;

const LIMIT: Duration = Duration::from_secs(60);

fn hex(s: &str) -> Bytes {
    s.parse().expect("hex")
}

#[tokio::test(flavor = "multi_thread")]
async fn transfers_and_contracts_work_end_to_end() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (_node, url) = start_dev(&tmp.path().join("dev"), "dev.log").await;
    let c = client(&url);

    let chain_id: String = c
        .request("eth_chainId", rpc_params![])
        .await
        .expect("chainId");
    assert_eq!(chain_id, "0x539");
    let alice = AccountKey::dev(0);
    let bob = Address::repeat_byte(0xb0);
    let before = balance(&c, alice.address()).await;

    let hashes: Vec<_> = futures::future::join_all((0..5).map(|n| {
        let c = c.clone();
        let raw = transfer(&alice, n, bob, 1_000);
        async move { send_raw(&c, &raw).await.expect("accepted") }
    }))
    .await;
    for h in &hashes {
        let r = wait_receipt(&c, *h, LIMIT).await;
        assert_eq!(r["status"], "0x1");
        assert_eq!(r["gasUsed"], "0x5208");
        let tx: Value = c
            .request("eth_getTransactionByHash", rpc_params![h])
            .await
            .expect("tx");
        assert_eq!(
            tx["from"].as_str().map(str::to_lowercase),
            Some(format!("{:#x}", alice.address()))
        );
        assert_eq!(tx["blockHash"], r["blockHash"]);
    }
    assert_eq!(balance(&c, bob).await, U256::from(5_000));
    assert_eq!(
        balance(&c, alice.address()).await,
        before - U256::from(5_000)
    );
    assert_eq!(nonce(&c, alice.address(), "latest").await, 5);

    // Contract creation: init code stores 42 in slot 0 and deploys `return sload(0)`.
    let init = hex("0x602a600055600b6011600039600b6000f360005460005260206000f3");
    let deploy = legacy(&alice, 5, TxKind::Create, U256::ZERO, 200_000, init);
    let h = send_raw(&c, &Bytes::from(deploy.encoded_2718()))
        .await
        .expect("deploy accepted");
    let r = wait_receipt(&c, h, LIMIT).await;
    assert_eq!(r["status"], "0x1");
    let contract = alice.address().create(5);
    assert_eq!(
        r["contractAddress"].as_str().map(str::to_lowercase),
        Some(format!("{contract:#x}"))
    );
    let out: Bytes = c
        .request("eth_call", rpc_params![json!({"to": contract}), "latest"])
        .await
        .expect("eth_call");
    assert_eq!(U256::from_be_slice(&out), U256::from(42));
    let code: Bytes = c
        .request("eth_getCode", rpc_params![contract, "latest"])
        .await
        .expect("code");
    assert_eq!(code, hex("0x60005460005260206000f3"));
    let gas: String = c
        .request(
            "eth_estimateGas",
            rpc_params![json!({"from": alice.address(), "to": bob, "value": "0x1"})],
        )
        .await
        .expect("estimate");
    assert_eq!(gas, "0x5208");

    // eth_getProof: the contract's account and its slot 0 verify against the block's state root.
    let proof: Value = c
        .request("eth_getProof", rpc_params![contract, ["0x0"], "latest"])
        .await
        .expect("eth_getProof");
    let state_root: alloy_primitives::B256 = block(&c, block_number(&c).await).await["stateRoot"]
        .as_str()
        .expect("state root")
        .parse()
        .expect("hash");
    let nodes = |v: &Value| -> Vec<Bytes> {
        v.as_array()
            .expect("proof array")
            .iter()
            .map(|n| n.as_str().expect("node").parse().expect("hex"))
            .collect()
    };
    let field =
        |name: &str| -> U256 { proof[name].as_str().expect(name).parse().expect("quantity") };
    let account = alloy_trie::TrieAccount {
        nonce: field("nonce").to(),
        balance: field("balance"),
        storage_root: proof["storageHash"]
            .as_str()
            .expect("storageHash")
            .parse()
            .expect("hash"),
        code_hash: proof["codeHash"]
            .as_str()
            .expect("codeHash")
            .parse()
            .expect("hash"),
    };
    alloy_trie::proof::verify_proof(
        state_root,
        alloy_trie::Nibbles::unpack(alloy_primitives::keccak256(contract)),
        Some(alloy_rlp::encode(account)),
        &nodes(&proof["accountProof"]),
    )
    .expect("account proof verifies against the block's state root");
    assert_eq!(proof["storageProof"][0]["value"], "0x2a");
    alloy_trie::proof::verify_proof(
        account.storage_root,
        alloy_trie::Nibbles::unpack(alloy_primitives::keccak256(alloy_primitives::B256::ZERO)),
        Some(alloy_rlp::encode_fixed_size(&U256::from(42)).to_vec()),
        &nodes(&proof["storageProof"][0]["proof"]),
    )
    .expect("storage proof verifies");

    // A call into code that reverts yields code 3.
    let reverter_init = hex("0x6005600c60003960056000f360006000fd");
    let deploy = legacy(
        &alice,
        6,
        TxKind::Create,
        U256::ZERO,
        200_000,
        reverter_init,
    );
    let h = send_raw(&c, &Bytes::from(deploy.encoded_2718()))
        .await
        .expect("deploy accepted");
    wait_receipt(&c, h, LIMIT).await;
    let err = c
        .request::<Bytes, _>(
            "eth_call",
            rpc_params![json!({"to": alice.address().create(6)})],
        )
        .await
        .expect_err("reverts");
    match err {
        jsonrpsee::core::ClientError::Call(obj) => assert_eq!(obj.code(), 3),
        other => panic!("unexpected error {other}"),
    }

    // Blocks link up and the certificate of each is available.
    let tip = block_number(&c).await;
    for n in 1..=tip {
        let b = block(&c, n).await;
        let parent = block(&c, n - 1).await;
        assert_eq!(b["parentHash"], parent["hash"]);
        let cert: Value = c
            .request(
                "trellis_getCommitCertificate",
                rpc_params![format!("{n:#x}")],
            )
            .await
            .expect("certificate");
        assert_eq!(cert["blockHash"], b["hash"]);
        assert_eq!(cert["signatures"].as_array().map(Vec::len), Some(1));
    }
    // Older state is refused clearly rather than answered wrongly.
    let err = c
        .request::<U256, _>("eth_getBalance", rpc_params![bob, "0x1"])
        .await
        .expect_err("historical state");
    assert!(err.to_string().contains("not retained"), "{err}");
}

fn with_signature(tx: TxLegacy, sig: Signature) -> Bytes {
    Bytes::from(TxEnvelope::Legacy(tx.into_signed(sig)).encoded_2718())
}

#[tokio::test(flavor = "multi_thread")]
async fn every_admission_error_is_clear_and_changes_nothing() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (_node, url) = start_dev(&tmp.path().join("dev"), "dev.log").await;
    let c = client(&url);
    let alice = AccountKey::dev(1);
    let to = Address::repeat_byte(0x42);

    let first = transfer(&alice, 0, to, 1);
    let h = send_raw(&c, &first).await.expect("accepted");
    wait_receipt(&c, h, LIMIT).await;
    let balance_before = balance(&c, alice.address()).await;
    let height_before = block_number(&c).await;

    let base = TxLegacy {
        chain_id: Some(CHAIN_ID),
        nonce: 1,
        gas_price: 0,
        gas_limit: 21_000,
        to: TxKind::Call(to),
        value: U256::from(1),
        input: Bytes::new(),
    };
    let big_input = Bytes::from(vec![0u8; 130 * 1024]);
    let cases: Vec<(&str, Bytes, &str)> = vec![
        ("undecodable bytes", hex("0xdeadbeef"), "cannot decode"),
        ("empty input", Bytes::new(), "cannot decode"),
        (
            "wrong chain id",
            Bytes::from(
                alice
                    .sign_tx(TxLegacy {
                        chain_id: Some(1),
                        ..base.clone()
                    })
                    .encoded_2718(),
            ),
            "invalid chain id",
        ),
        (
            "no EIP-155 chain id",
            Bytes::from(
                alice
                    .sign_tx(TxLegacy {
                        chain_id: None,
                        ..base.clone()
                    })
                    .encoded_2718(),
            ),
            "EIP-155",
        ),
        (
            "bad signature",
            with_signature(
                base.clone(),
                Signature::new(U256::ZERO, U256::from(1), false),
            ),
            "invalid sender signature",
        ),
        ("nonce too low", transfer(&alice, 0, to, 2), "nonce too low"),
        (
            "nonce gap",
            transfer(&alice, 5_000, to, 1),
            "nonce too high",
        ),
        (
            "gas limit above the per-transaction limit",
            Bytes::from(
                alice
                    .sign_tx(TxLegacy {
                        gas_limit: trellis_primitives::DEFAULT_MAX_TRANSACTION_GAS + 1,
                        ..base.clone()
                    })
                    .encoded_2718(),
            ),
            "one transaction may use",
        ),
        (
            // Clients often ask for exactly the block gas limit.
            "gas limit equal to the block limit",
            Bytes::from(
                alice
                    .sign_tx(TxLegacy {
                        gas_limit: trellis_primitives::DEFAULT_GAS_LIMIT,
                        ..base.clone()
                    })
                    .encoded_2718(),
            ),
            "one transaction may use",
        ),
        (
            "oversized",
            Bytes::from(
                alice
                    .sign_tx(TxLegacy {
                        gas_limit: 5_000_000,
                        input: big_input,
                        ..base.clone()
                    })
                    .encoded_2718(),
            ),
            "byte limit",
        ),
        ("already known", first.clone(), "nonce too low"),
    ];
    for (name, raw, expected) in &cases {
        let (code, message) = send_raw(&c, raw).await.expect_err(name);
        assert_eq!(code, -32000, "{name}: {message}");
        assert!(
            message.contains(expected),
            "{name}: expected '{expected}' in '{message}'"
        );
    }

    // Nothing entered the pool and nothing reached the chain.
    assert_eq!(nonce(&c, alice.address(), "pending").await, 1);
    wait_height(&c, height_before + 3, LIMIT).await;
    assert_eq!(balance(&c, alice.address()).await, balance_before);
    assert_eq!(nonce(&c, alice.address(), "latest").await, 1);
    for n in height_before + 1..=block_number(&c).await {
        assert_eq!(
            block(&c, n).await["transactions"],
            json!([]),
            "block {n} is empty"
        );
    }
    // And the node still accepts a good transaction.
    let h = send_raw(&c, &transfer(&alice, 1, to, 1))
        .await
        .expect("accepted");
    assert_eq!(wait_receipt(&c, h, LIMIT).await["status"], "0x1");
}

#[tokio::test(flavor = "multi_thread")]
async fn full_pool_and_duplicates_are_refused() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (_node, url) = start_single_node(tmp.path(), "[mempool]\nmax_txs = 2\n").await;
    let c = client(&url);
    let key = AccountKey::dev(2);
    // Transactions with a nonce gap wait in the pool and never execute.
    let queued = transfer(&key, 3, Address::ZERO, 1);
    send_raw(&c, &queued).await.expect("first queued");
    let (_, msg) = send_raw(&c, &queued).await.expect_err("duplicate");
    assert!(msg.contains("already known"), "{msg}");
    send_raw(&c, &transfer(&key, 4, Address::ZERO, 1))
        .await
        .expect("second queued");
    let (code, msg) = send_raw(&c, &transfer(&key, 5, Address::ZERO, 1))
        .await
        .expect_err("pool full");
    assert_eq!(code, -32000);
    assert!(msg.contains("pool is full"), "{msg}");
    assert_eq!(nonce(&c, key.address(), "latest").await, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn request_limits_are_enforced_and_the_node_keeps_serving() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (_node, url) = start_dev(&tmp.path().join("dev"), "dev.log").await;
    let big = jsonrpsee::http_client::HttpClientBuilder::default()
        .max_request_size(64 * 1024 * 1024)
        .request_timeout(Duration::from_secs(30))
        .build(&url)
        .expect("client");

    // Body above the 10 MiB request limit.
    let huge = Bytes::from(vec![0u8; 11 * 1024 * 1024]);
    let err = big
        .request::<alloy_primitives::B256, _>("eth_sendRawTransaction", rpc_params![huge])
        .await
        .expect_err("oversized request refused");
    assert!(!err.to_string().is_empty());

    // A batch above the 1,000-call limit.
    let mut batch = jsonrpsee::core::params::BatchRequestBuilder::new();
    for _ in 0..1_001 {
        batch.insert("eth_chainId", rpc_params![]).expect("params");
    }
    assert!(
        big.batch_request::<String>(batch).await.is_err(),
        "oversized batch refused"
    );

    // Unknown methods and malformed parameters get the standard codes.
    let c = client(&url);
    match c
        .request::<Value, _>("eth_noSuchMethod", rpc_params![])
        .await
    {
        Err(jsonrpsee::core::ClientError::Call(obj)) => assert_eq!(obj.code(), -32601),
        other => panic!("unexpected {other:?}"),
    }
    match c
        .request::<Value, _>("eth_getBalance", rpc_params!["not-an-address"])
        .await
    {
        Err(jsonrpsee::core::ClientError::Call(obj)) => assert_eq!(obj.code(), -32602),
        other => panic!("unexpected {other:?}"),
    }
    // The node still serves normally.
    let h = send_raw(&c, &transfer(&AccountKey::dev(7), 0, Address::ZERO, 1))
        .await
        .expect("accepted");
    assert_eq!(wait_receipt(&c, h, LIMIT).await["status"], "0x1");
}

#[tokio::test(flavor = "multi_thread")]
async fn per_client_rate_and_subscription_limits_answer_clearly() {
    // A refill of one call per 1,000 s: nothing refills while the test runs, so every count
    // below is exact however fast the machine is and however the client pools connections.
    let tmp = tempfile::tempdir().expect("tempdir");
    let metrics_port = free_port();
    let (_node, url) = start_single_node(
        tmp.path(),
        &format!(
            "[rpc]\ncalls_per_second = 0.001\ncall_burst = 20\nmax_subscriptions = 2\n\
             [metrics]\nlisten = \"127.0.0.1:{metrics_port}\"\n"
        ),
    )
    .await;
    let rate_limited = |e: jsonrpsee::core::ClientError| match e {
        jsonrpsee::core::ClientError::Call(obj) => {
            assert_eq!(obj.code(), trellis_rpc::RATE_LIMITED);
            assert!(
                obj.message().contains("per client address"),
                "{}",
                obj.message()
            );
        }
        e => panic!("unexpected error {e}"),
    };
    // `wait_for_rpc` made one call. Of 60 more on one connection, 19 pass.
    let c = client(&url);
    let mut served = 0;
    for _ in 0..60 {
        match c
            .request::<Value, _>("eth_blockNumber", rpc_params![])
            .await
        {
            Ok(_) => served += 1,
            Err(e) => rate_limited(e),
        }
    }
    assert_eq!(served, 19, "one burst of 20 per client address");
    // Another connection from the same address gets nothing more, and neither does REST.
    rate_limited(
        client(&url)
            .request::<Value, _>("eth_chainId", rpc_params![])
            .await
            .expect_err("same address, new connection"),
    );
    match trellis_sdk::rest::RestClient::new(&url)
        .get::<Value>("/health")
        .await
    {
        Err(trellis_sdk::rest::RestError::Api { status, code, .. }) => {
            assert_eq!((status, code.as_str()), (429, "rateLimited"));
        }
        other => panic!("REST is not limited: {other:?}"),
    }
    // The metrics page (another port, not limited) counts every refusal: 41 of the 60 calls
    // and the second connection's call over JSON-RPC, the REST request.
    let page = http_get(metrics_port, "/metrics").await;
    let line = |door: &str| {
        page.lines()
            .find(|l| {
                l.starts_with("trellis_rpc_rate_limited_total{")
                    && l.contains(&format!("door=\"{door}\""))
            })
            .unwrap_or_else(|| panic!("no {door} refusals in\n{page}"))
            .to_string()
    };
    assert!(line("jsonrpc").ends_with(" 42"), "{}", line("jsonrpc"));
    assert!(line("rest").ends_with(" 1"), "{}", line("rest"));
    assert!(
        page.lines()
            .any(|l| l.starts_with("trellis_rpc_calls_total{")
                && l.contains("method=\"eth_blockNumber\"")
                && l.contains("outcome=\"-32005\"")
                && l.ends_with(" 41")),
        "refused calls by method and code"
    );

    // Costs: a proof costs 10, a batch one per call, and a batch larger than the burst never
    // passes. A second node with a burst of 30 (again minus wait_for_rpc's call).
    let tmp2 = tempfile::tempdir().expect("tempdir");
    let (_node2, url2) = start_single_node(
        tmp2.path(),
        "[rpc]\ncalls_per_second = 0.001\ncall_burst = 30\nmax_subscriptions = 2\n",
    )
    .await;
    let rest = trellis_sdk::rest::RestClient::new(&url2);
    let missing = format!("/v1/evidence/0x{}", "11".repeat(32));
    let status = |r: Result<Value, trellis_sdk::rest::RestError>| match r {
        Err(trellis_sdk::rest::RestError::Api { status, .. }) => status,
        other => panic!("unexpected answer {other:?}"),
    };
    for _ in 0..2 {
        // 1 on entry + 10 for the proof: 22 of 29 spent.
        assert_eq!(status(rest.get(&missing).await), 404);
    }
    assert_eq!(
        status(rest.get(&missing).await),
        429,
        "7 left, the proof needs 10"
    );
    let c2 = client(&url2);
    let mut batch = jsonrpsee::core::params::BatchRequestBuilder::new();
    for _ in 0..31 {
        batch.insert("eth_chainId", rpc_params![]).expect("batch");
    }
    let answers = c2
        .batch_request::<Value>(batch)
        .await
        .expect("a batch of answers");
    assert_eq!(
        answers.num_failed_calls(),
        31,
        "every call of the batch is refused"
    );
    for answer in answers {
        let e = answer.expect_err("refused");
        assert_eq!(e.code(), trellis_rpc::RATE_LIMITED);
        assert!(
            e.message().contains("more than the burst"),
            "{}",
            e.message()
        );
    }

    // Subscriptions: two per WebSocket connection (each subscribe is one call: 3 of 7 left).
    let ws = jsonrpsee::ws_client::WsClientBuilder::default()
        .build(url2.replace("http://", "ws://"))
        .await
        .expect("websocket");
    let _a = ws
        .subscribe::<Value, _>("eth_subscribe", rpc_params!["newHeads"], "eth_unsubscribe")
        .await
        .expect("first");
    let _b = ws
        .subscribe::<Value, _>("eth_subscribe", rpc_params!["newHeads"], "eth_unsubscribe")
        .await
        .expect("second");
    let err = ws
        .subscribe::<Value, _>("eth_subscribe", rpc_params!["newHeads"], "eth_unsubscribe")
        .await
        .expect_err("third subscription");
    assert!(
        err.to_string().to_lowercase().contains("subscription"),
        "{err}"
    );
    // The address still has allowance left for other connections.
    client(&url2)
        .request::<Value, _>("eth_blockNumber", rpc_params![])
        .await
        .expect("a fresh connection is served");
}

/// A transaction no block can take now (it waits behind a nonce gap) does not make the
/// proposer build blocks as fast as consensus allows: blocks keep the empty-block pace until
/// the gap fills, and then all of them are included. The block gas limit the node
/// advertises is the one blocks are held to.
#[tokio::test(flavor = "multi_thread")]
async fn an_unincludable_pool_starts_no_block_storm() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (_node, url) = start_dev(&tmp.path().join("dev"), "dev.log").await;
    let c = client(&url);
    let latest: Value = c
        .request("eth_getBlockByNumber", rpc_params!["latest", false])
        .await
        .expect("block");
    assert_eq!(
        latest["gasLimit"],
        format!("{:#x}", trellis_primitives::DEFAULT_GAS_LIMIT)
    );

    let alice = AccountKey::dev(0);
    let to = Address::repeat_byte(0x77);
    send_raw(&c, &transfer(&alice, 3, to, 1))
        .await
        .expect("a queued transaction behind a gap is admitted");
    let start = block_number(&c).await;
    let since = std::time::Instant::now();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let made = block_number(&c).await - start;
    // `start_dev` proposes an empty block every 200 ms at most: whatever the machine's
    // speed, 2 s leave room for about ten (the storm this guards against made ~450/s).
    let bound = since.elapsed().as_millis() as u64 / 200 + 3;
    assert!(
        made <= bound,
        "{made} blocks in {:?} with only a gapped transaction waiting",
        since.elapsed()
    );
    let mut hashes = Vec::new();
    for n in 0..3 {
        hashes.push(
            send_raw(&c, &transfer(&alice, n, to, 1))
                .await
                .expect("accepted"),
        );
    }
    for hash in hashes {
        wait_receipt(&c, hash, LIMIT).await;
    }
    let nonce: String = c
        .request(
            "eth_getTransactionCount",
            rpc_params![alice.address(), "latest"],
        )
        .await
        .expect("nonce");
    let expected = format!("{:#x}", 4);
    let deadline = std::time::Instant::now() + LIMIT;
    let mut nonce = nonce;
    while nonce != expected && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
        nonce = c
            .request(
                "eth_getTransactionCount",
                rpc_params![alice.address(), "latest"],
            )
            .await
            .expect("nonce");
    }
    assert_eq!(
        nonce, expected,
        "the gapped transaction went in once the gap filled"
    );
}
