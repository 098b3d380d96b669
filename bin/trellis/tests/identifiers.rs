//! Identifiers on a live dev chain: a prefix delegated by a governance vote, identifiers
//! registered, updated and removed through the CLI, refusals with clear reasons, and
//! resolution (cached REST, batch, filters) equal to the contract's state read with
//! `eth_call` — after every change and after a restart.

mod common;

use alloy_primitives::Bytes;
use alloy_sol_types::SolCall;
use common::*;
use serde_json::Value;
use std::time::Duration;
use trellis_sdk::RestClient;
use trellis_system::identifiers::{abi, IDENTIFIERS_ADDRESS};

const LIMIT: Duration = Duration::from_secs(60);

/// The contract's record for `id` via `eth_call` as (org, values as (index, type, data)).
async fn on_chain(url: &str, id: &str) -> Option<(String, Vec<(u32, String, Vec<u8>)>)> {
    let data = abi::resolveCall {
        identifier: id.into(),
    }
    .abi_encode();
    let call = serde_json::json!({"to": IDENTIFIERS_ADDRESS, "data": Bytes::from(data)});
    let out: Result<Bytes, _> = jsonrpsee::core::client::ClientT::request(
        &client(url),
        "eth_call",
        jsonrpsee::rpc_params![call, "latest"],
    )
    .await;
    let out = out.ok()?;
    let record = abi::resolveCall::abi_decode_returns(&out).expect("decodes");
    Some((
        record.org,
        record
            .values
            .into_iter()
            .map(|v| (v.index, v.valueType, v.data.to_vec()))
            .collect(),
    ))
}

/// The REST answer for `id` in the same form (None for 404).
async fn resolved(url: &str, id: &str) -> Option<(String, Vec<(u32, String, Vec<u8>)>)> {
    let answer: Value = match RestClient::new(url)
        .get(&format!("/api/handles/{id}"))
        .await
    {
        Ok(a) => a,
        Err(e) if e.is_not_found() => return None,
        Err(e) => panic!("{e}"),
    };
    assert_eq!(answer["responseCode"], 1);
    assert_eq!(answer["handle"], id);
    let values = answer["values"]
        .as_array()
        .expect("values")
        .iter()
        .map(|v| {
            assert_eq!(v["data"]["format"], "string");
            (
                v["index"].as_u64().expect("index") as u32,
                v["type"].as_str().expect("type").to_owned(),
                v["data"]["value"]
                    .as_str()
                    .expect("value")
                    .as_bytes()
                    .to_vec(),
            )
        })
        .collect();
    Some((answer["org"].as_str().expect("org").to_owned(), values))
}

async fn assert_coherent(url: &str, ids: &[&str]) {
    for id in ids {
        assert_eq!(resolved(url, id).await, on_chain(url, id).await, "{id}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delegate_register_resolve_refuse_and_restart() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("dev");
    let (mut node, url) = start_dev(&data, "dev.log").await;
    let dir = tmp.path();
    let ids = ["MA.156/lot-1", "MA.156/lot-2", "MA.156.77/box/3"];

    // Nothing is delegated yet.
    let err = cli_fails(
        dir,
        &[
            "id",
            "register",
            "--rpc",
            &url,
            "--dev-account",
            "1",
            ids[0],
            "URL=https://a",
        ],
    );
    assert!(
        err.contains("prefix MA.156 is not delegated to any organisation"),
        "{err}"
    );
    // A negative answer gets cached; registration must replace it.
    assert_coherent(&url, &ids).await;

    let out = gov(
        dir,
        &url,
        0,
        &[
            "propose",
            "delegate-prefix",
            "--prefix",
            "MA.156",
            "--org",
            "dev",
        ],
    );
    assert!(out.contains("passed"), "{out}");
    let c = client(&url);
    wait_height(&c, block_number(&c).await + 1, LIMIT).await;

    run_cli(
        dir,
        &[
            "id",
            "register",
            "--rpc",
            &url,
            "--dev-account",
            "1",
            ids[0],
            "URL=https://acme.example/lot-1",
            "EMAIL=qa@acme.example",
        ],
    );
    run_cli(
        dir,
        &[
            "id",
            "register",
            "--rpc",
            &url,
            "--dev-account",
            "2",
            ids[1],
            "URL=https://acme.example/lot-2",
        ],
    );
    run_cli(
        dir,
        &[
            "id",
            "delegate",
            "--rpc",
            &url,
            "--dev-account",
            "0",
            "MA.156.77",
            "dev",
        ],
    );
    run_cli(
        dir,
        &[
            "id",
            "register",
            "--rpc",
            &url,
            "--dev-account",
            "1",
            ids[2],
            "HASH=0x00ff",
        ],
    );
    // HASH data is binary: the Handle answer carries it as base64.
    let answer: Value = RestClient::new(&url)
        .get(&format!("/api/handles/{}", ids[2]))
        .await
        .expect("resolves");
    assert_eq!(
        answer["values"][0]["data"],
        serde_json::json!({"format": "base64", "value": "AP8="})
    );
    assert_coherent(&url, &ids[..2]).await;

    // Filters and batch.
    let email: Value = RestClient::new(&url)
        .get(&format!("/api/handles/{}?type=EMAIL", ids[0]))
        .await
        .expect("filtered");
    assert_eq!(email["values"].as_array().expect("values").len(), 1);
    assert_eq!(email["values"][0]["index"], 2);
    let none: Value = RestClient::new(&url)
        .get(&format!("/api/handles/{}?type=FAX", ids[0]))
        .await
        .expect("filtered");
    assert_eq!(none["responseCode"], 200);
    let batch: Value = RestClient::new(&url)
        .post(
            "/api/handles",
            &serde_json::json!({"handles": ["MA.156/lot-1", "MA.156/none", "bad"]}),
        )
        .await
        .expect("batch");
    let codes: Vec<_> = batch["results"]
        .as_array()
        .expect("results")
        .iter()
        .map(|r| r["responseCode"].clone())
        .collect();
    assert_eq!(codes, vec![1, 100, 2]);

    // Refusals, each with its reason.
    let big = format!("URL={}", "u".repeat(1025));
    let refusals: Vec<(Vec<&str>, &str)> = vec![
        (
            vec![
                "id",
                "register",
                "--rpc",
                &url,
                "--dev-account",
                "30",
                "MA.156/x",
                "URL=a",
            ],
            "is not an account of dev",
        ),
        (
            vec![
                "id",
                "register",
                "--rpc",
                &url,
                "--dev-account",
                "1",
                ids[0],
                "URL=a",
            ],
            "already registered",
        ),
        (
            vec![
                "id",
                "register",
                "--rpc",
                &url,
                "--dev-account",
                "1",
                "MA.156/has space",
                "URL=a",
            ],
            "invalid identifier",
        ),
        (
            vec![
                "id",
                "register",
                "--rpc",
                &url,
                "--dev-account",
                "1",
                "MA.156/big",
                &big,
            ],
            "exceeds 1024",
        ),
        (
            vec![
                "id",
                "delegate",
                "--rpc",
                &url,
                "--dev-account",
                "1",
                "MA.156.9",
                "dev",
            ],
            "is not an admin of dev",
        ),
        (
            vec![
                "id",
                "delegate",
                "--rpc",
                &url,
                "--dev-account",
                "0",
                "MA.156.9",
                "ghost",
            ],
            "no organisation ghost",
        ),
        (
            vec![
                "id",
                "remove",
                "--rpc",
                &url,
                "--dev-account",
                "1",
                "MA.156/none",
            ],
            "not found",
        ),
    ];
    for (args, expected) in refusals {
        let err = cli_fails(dir, &args);
        assert!(err.contains(expected), "{args:?}: {err}");
    }
    let bad = RestClient::new(&url)
        .get::<Value>("/api/handles/MA.156")
        .await
        .expect_err("malformed");
    assert!(
        matches!(bad, trellis_sdk::RestError::Api { status: 400, .. }),
        "{bad}"
    );

    // Changes show at once in the (cached) answers.
    run_cli(
        dir,
        &[
            "id",
            "update",
            "--rpc",
            &url,
            "--dev-account",
            "1",
            ids[0],
            "URL=https://acme.example/v2",
        ],
    );
    run_cli(
        dir,
        &["id", "remove", "--rpc", &url, "--dev-account", "2", ids[1]],
    );
    assert_coherent(&url, &ids[..2]).await;
    assert_eq!(resolved(&url, ids[1]).await, None);
    assert_eq!(
        resolved(&url, ids[0]).await.expect("present").1,
        vec![(1, "URL".to_owned(), b"https://acme.example/v2".to_vec())]
    );

    // With ?proof=true the answer carries a Merkle proof a client checks against the
    // validators of the genesis file: the record, or that the identifier does not exist.
    let trusted =
        trellis_sdk::Trusted::from_genesis_file(&data.join("genesis.json")).expect("trusted");
    for id in ids {
        let answer: Value = match RestClient::new(&url)
            .get(&format!("/api/handles/{id}?proof=true"))
            .await
        {
            Ok(a) => a,
            Err(trellis_sdk::RestError::Api {
                status: 404, body, ..
            }) => body,
            Err(e) => panic!("{id}: {e}"),
        };
        let proof: trellis_system::proof::StateProof =
            serde_json::from_value(answer["proof"].clone()).expect("proof");
        let parsed = trellis_system::identifiers::Identifier::parse(id).expect("id");
        let proven = trellis_sdk::identifiers::verify(&parsed, &proof, &trusted).expect("verifies");
        let proven = proven.map(|r| {
            (
                r.org.as_str().to_owned(),
                r.values
                    .into_iter()
                    .map(|v| (v.index, v.kind, v.data))
                    .collect::<Vec<_>>(),
            )
        });
        assert_eq!(proven, on_chain(&url, id).await, "{id}");
    }

    // And after a restart.
    let height = block_number(&c).await;
    node.sigkill();
    let (_node, url) = start_dev(&data, "dev-restarted.log").await;
    wait_height(&client(&url), height, LIMIT).await;
    assert_coherent(&url, &ids[..2]).await;
    assert!(resolved(&url, ids[0]).await.is_some());
}
