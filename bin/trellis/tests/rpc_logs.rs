//! Logs through every door: `eth_getLogs`, polling filters, and WebSocket subscriptions
//! (`newHeads`, `logs`), against a `trellis dev` process.

mod common;

use alloy_eips::eip2718::Encodable2718;
use alloy_primitives::{Bytes, TxKind, B256, U256};
use common::*;
use jsonrpsee::core::client::{ClientT, SubscriptionClientT};
use jsonrpsee::rpc_params;
use jsonrpsee::ws_client::WsClientBuilder;
use serde_json::{json, Value};
use std::time::Duration;
use trellis_crypto::AccountKey;

const LIMIT: Duration = Duration::from_secs(60);
const TOPIC: &str = "0x1111111111111111111111111111111111111111111111111111111111111111";

/// Init code deploying a contract that, on any call, emits LOG1(TOPIC) with data 42.
fn emitter_init() -> Bytes {
    let runtime = format!("602a6000527f{}60206000a100", &TOPIC[2..]);
    format!("0x602c600c600039602c6000f3{runtime}")
        .parse()
        .expect("hex")
}

#[tokio::test(flavor = "multi_thread")]
async fn logs_filters_and_subscriptions() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (_node, url) = start_dev(&tmp.path().join("dev"), "dev.log").await;
    let c = client(&url);
    let key = AccountKey::dev(3);

    let deploy = legacy(&key, 0, TxKind::Create, U256::ZERO, 300_000, emitter_init());
    let h = send_raw(&c, &Bytes::from(deploy.encoded_2718()))
        .await
        .expect("deploy");
    wait_receipt(&c, h, LIMIT).await;
    let contract = key.address().create(0);

    let ws = WsClientBuilder::default()
        .build(url.replace("http://", "ws://"))
        .await
        .expect("websocket");
    let mut heads = ws
        .subscribe::<Value, _>("eth_subscribe", rpc_params!["newHeads"], "eth_unsubscribe")
        .await
        .expect("newHeads");
    let mut log_sub = ws
        .subscribe::<Value, _>(
            "eth_subscribe",
            rpc_params!["logs", json!({"address": contract})],
            "eth_unsubscribe",
        )
        .await
        .expect("logs");
    let log_filter: String = c
        .request(
            "eth_newFilter",
            rpc_params![json!({"address": contract, "topics": [TOPIC]})],
        )
        .await
        .expect("newFilter");
    let block_filter: String = c
        .request("eth_newBlockFilter", rpc_params![])
        .await
        .expect("newBlockFilter");

    let mut receipts = Vec::new();
    for n in 1..=3 {
        let call = legacy(
            &key,
            n,
            TxKind::Call(contract),
            U256::ZERO,
            100_000,
            Bytes::new(),
        );
        let h = send_raw(&c, &Bytes::from(call.encoded_2718()))
            .await
            .expect("call");
        receipts.push(wait_receipt(&c, h, LIMIT).await);
    }
    for r in &receipts {
        assert_eq!(r["logs"][0]["topics"][0], TOPIC);
        assert_eq!(
            r["logs"][0]["address"].as_str().map(str::to_lowercase),
            Some(format!("{contract:#x}"))
        );
    }

    let logs: Vec<Value> = c
        .request(
            "eth_getLogs",
            rpc_params![json!({"fromBlock": "0x0", "toBlock": "latest", "topics": [TOPIC]})],
        )
        .await
        .expect("getLogs");
    assert_eq!(logs.len(), 3);
    assert_eq!(
        U256::from_str_radix(
            logs[0]["data"]
                .as_str()
                .expect("data")
                .trim_start_matches("0x"),
            16
        )
        .ok(),
        Some(U256::from(42))
    );
    let none: Vec<Value> = c
        .request(
            "eth_getLogs",
            rpc_params![json!({"fromBlock": "0x0", "topics": [B256::repeat_byte(2)]})],
        )
        .await
        .expect("getLogs");
    assert!(none.is_empty());
    let by_hash: Vec<Value> = c
        .request(
            "eth_getLogs",
            rpc_params![json!({"blockHash": receipts[1]["blockHash"]})],
        )
        .await
        .expect("getLogs by hash");
    assert_eq!(by_hash.len(), 1);

    let changes: Vec<Value> = c
        .request("eth_getFilterChanges", rpc_params![&log_filter])
        .await
        .expect("changes");
    assert_eq!(changes.len(), 3);
    let again: Vec<Value> = c
        .request("eth_getFilterChanges", rpc_params![&log_filter])
        .await
        .expect("changes");
    assert!(again.is_empty(), "changes are reported once");
    let hashes: Vec<B256> = c
        .request("eth_getFilterChanges", rpc_params![&block_filter])
        .await
        .expect("changes");
    assert!(!hashes.is_empty());
    let removed: bool = c
        .request("eth_uninstallFilter", rpc_params![&log_filter])
        .await
        .expect("uninstall");
    assert!(removed);
    let err = c
        .request::<Value, _>("eth_getFilterChanges", rpc_params![&log_filter])
        .await
        .expect_err("filter gone");
    assert!(err.to_string().contains("filter not found"), "{err}");
    let err = c
        .request::<Value, _>(
            "eth_getLogs",
            rpc_params![json!({"fromBlock": "0x0", "toBlock": "0x5f5e100"})],
        )
        .await
        .expect_err("range too large");
    assert!(err.to_string().contains("exceeds the limit"), "{err}");

    for _ in 0..3 {
        let log = tokio::time::timeout(LIMIT, log_sub.next())
            .await
            .expect("log in time")
            .expect("open")
            .expect("log");
        assert_eq!(log["topics"][0], TOPIC);
    }
    let head = tokio::time::timeout(LIMIT, heads.next())
        .await
        .expect("head in time")
        .expect("open")
        .expect("head");
    assert!(head["number"].is_string() && head["hash"].is_string());

    let history: Value = c
        .request("eth_feeHistory", rpc_params!["0x4", "latest", [50.0]])
        .await
        .expect("feeHistory");
    assert_eq!(history["baseFeePerGas"].as_array().map(Vec::len), Some(5));
    assert_eq!(history["reward"].as_array().map(Vec::len), Some(4));
    let count: String = c
        .request(
            "eth_getBlockTransactionCountByHash",
            rpc_params![receipts[0]["blockHash"].clone()],
        )
        .await
        .expect("count");
    assert_eq!(count, "0x1");
    let syncing: bool = c
        .request("eth_syncing", rpc_params![])
        .await
        .expect("syncing");
    assert!(!syncing);
}
