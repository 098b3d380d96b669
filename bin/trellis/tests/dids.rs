//! DIDs on a live dev chain: created, keys rotated, controller handed over and deactivated
//! through the CLI, each by the controller only; resolution over the Universal Resolver
//! endpoint equals the contract's state (latest and historical versions, by versionId and
//! versionTime), with the standard errors, also after a restart.

mod common;

use alloy_primitives::Bytes;
use alloy_sol_types::SolCall;
use common::*;
use serde_json::Value;
use std::time::Duration;
use trellis_crypto::AccountKey;
use trellis_sdk::RestClient;
use trellis_system::dids::{abi, DIDS_ADDRESS};

const LIMIT: Duration = Duration::from_secs(60);

/// GET returning (HTTP status, JSON) for any status.
async fn get(url: &str, path: &str) -> (u16, Value) {
    match RestClient::new(url).get::<Value>(path).await {
        Ok(v) => (200, v),
        Err(trellis_sdk::RestError::Api {
            status,
            code,
            message,
            ..
        }) => (
            status,
            serde_json::json!({"code": code, "message": message}),
        ),
        Err(e) => panic!("{e}"),
    }
}

/// The contract's latest version via eth_call: (version, controller, key multibases, deactivated).
async fn on_chain(url: &str, id: alloy_primitives::Address) -> (u64, String, Vec<String>, bool) {
    let data = abi::resolveCall { id }.abi_encode();
    let call = serde_json::json!({"to": DIDS_ADDRESS, "data": Bytes::from(data)});
    let out: Bytes = jsonrpsee::core::client::ClientT::request(
        &client(url),
        "eth_call",
        jsonrpsee::rpc_params![call, "latest"],
    )
    .await
    .expect("resolve");
    let v = abi::resolveCall::abi_decode_returns(&out).expect("decodes");
    (
        v.version,
        format!("{:#x}", v.document.controller),
        v.document
            .verificationMethods
            .iter()
            .map(|m| m.publicKeyMultibase.clone())
            .collect(),
        v.deactivated,
    )
}

/// The same facts from the resolver's answer.
fn from_resolver(answer: &Value) -> (u64, String, Vec<String>, bool) {
    let doc = &answer["didDocument"];
    let meta = &answer["didDocumentMetadata"];
    let controller = doc["controller"]
        .as_str()
        .unwrap_or_else(|| panic!("no controller in {answer}"));
    (
        meta["versionId"]
            .as_str()
            .expect("versionId")
            .parse()
            .expect("number"),
        controller.rsplit(':').next().expect("address").to_owned(),
        doc["verificationMethod"]
            .as_array()
            .expect("methods")
            .iter()
            .filter_map(|m| m["publicKeyMultibase"].as_str().map(str::to_owned))
            .collect(),
        meta["deactivated"].as_bool().expect("deactivated"),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lifecycle_history_errors_and_restart() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("dev");
    let (mut node, url) = start_dev(&data, "dev.log").await;
    let dir = tmp.path();
    let owner = AccountKey::dev(1).address();
    let heir = AccountKey::dev(2).address();

    let out = run_cli(
        dir,
        &[
            "did",
            "create",
            "--rpc",
            &url,
            "--dev-account",
            "1",
            "--key",
            "key-1=Ed25519VerificationKey2020:z6MkFirst",
            "--auth",
            "key-1",
            "--service",
            "hub=LinkedDomains=https://acme.example",
        ],
    );
    let did = out.trim().to_owned();
    assert_eq!(did, format!("did:trellis:{CHAIN_ID}:{owner:#x}"));
    let path = format!("/1.0/identifiers/{did}");
    let (status, v1) = get(&url, &path).await;
    assert_eq!(status, 200);
    assert_eq!(v1["didDocument"]["id"], did);
    assert_eq!(
        v1["didDocument"]["service"][0]["serviceEndpoint"],
        "https://acme.example"
    );
    assert_eq!(
        v1["didResolutionMetadata"]["contentType"],
        "application/did+ld+json"
    );
    let created = v1["didDocumentMetadata"]["created"]
        .as_str()
        .expect("created")
        .to_owned();

    // A later block, so versionTime can tell the versions apart (timestamps are in seconds).
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    // Refusals: nobody but the controller changes it; malformed documents; a second create.
    let err = cli_fails(
        dir,
        &[
            "did",
            "update",
            "--rpc",
            &url,
            "--dev-account",
            "2",
            &did,
            "--key",
            "k=T:z",
        ],
    );
    assert!(err.contains("is not the controller"), "{err}");
    let err = cli_fails(
        dir,
        &[
            "did",
            "update",
            "--rpc",
            &url,
            "--dev-account",
            "1",
            &did,
            "--auth",
            "key-9",
        ],
    );
    assert!(err.contains("unknown verification method"), "{err}");
    let err = cli_fails(dir, &["did", "create", "--rpc", &url, "--dev-account", "1"]);
    assert!(err.contains("already exists"), "{err}");

    // Key rotation, then the controller hands over to dev account 2.
    run_cli(
        dir,
        &[
            "did",
            "update",
            "--rpc",
            &url,
            "--dev-account",
            "1",
            &did,
            "--key",
            "key-2=Ed25519VerificationKey2020:z6MkSecond",
            "--auth",
            "key-2",
        ],
    );
    run_cli(
        dir,
        &[
            "did",
            "update",
            "--rpc",
            &url,
            "--dev-account",
            "1",
            &did,
            "--controller",
            &format!("{heir:#x}"),
            "--key",
            "key-2=Ed25519VerificationKey2020:z6MkSecond",
        ],
    );
    let err = cli_fails(
        dir,
        &[
            "did",
            "deactivate",
            "--rpc",
            &url,
            "--dev-account",
            "1",
            &did,
        ],
    );
    assert!(err.contains("is not the controller"), "{err}");
    let (status, latest) = get(&url, &path).await;
    assert_eq!(status, 200, "{latest}");
    assert_eq!(from_resolver(&latest), on_chain(&url, owner).await);
    assert_eq!(from_resolver(&latest).1, format!("{heir:#x}"));

    // History.
    let (_, first) = get(&url, &format!("{path}?versionId=1")).await;
    assert_eq!(from_resolver(&first).2, vec!["z6MkFirst".to_owned()]);
    assert_eq!(first["didDocumentMetadata"]["nextVersionId"], "2");
    let (_, at_creation) = get(&url, &format!("{path}?versionTime={created}")).await;
    assert_eq!(from_resolver(&at_creation).0, 1);
    let (status, _) = get(&url, &format!("{path}?versionTime=2000-01-01T00:00:00Z")).await;
    assert_eq!(status, 404);
    let (status, e) = get(&url, &format!("{path}?versionId=99")).await;
    assert_eq!((status, e["code"].as_str()), (404, Some("notFound")));

    // Proven history: version 1 checked against the genesis validators, not the node.
    let (_, answer) = get(&url, &format!("{path}?versionId=1&proof=true")).await;
    let proof: trellis_system::proof::StateProof =
        serde_json::from_value(answer["proof"].clone()).expect("proof");
    let trusted =
        trellis_sdk::Trusted::from_genesis_file(&data.join("genesis.json")).expect("trusted");
    let parsed = trellis_system::dids::Did::parse(&did).expect("did");
    let v1 = trellis_sdk::dids::verify(&parsed, 1, &proof, &trusted)
        .expect("verifies")
        .expect("version 1 exists");
    assert_eq!(v1.document.methods[0].public_key_multibase, "z6MkFirst");
    assert!(
        trellis_sdk::dids::verify(&parsed, 2, &proof, &trusted).is_err(),
        "version 2 is not in this proof"
    );

    // Standard errors.
    for (did, status) in [
        ("did:web:example.com".to_owned(), 501),
        ("did:trellis:1337:0x12".to_owned(), 400),
        (
            format!("did:trellis:{CHAIN_ID}:0x000000000000000000000000000000000000dead"),
            404,
        ),
        (format!("did:trellis:7:{owner:#x}"), 404),
    ] {
        let (got, _) = get(&url, &format!("/1.0/identifiers/{did}")).await;
        assert_eq!(got, status, "{did}");
    }

    // Deactivation by the new controller is final: 410 with the last document.
    run_cli(
        dir,
        &[
            "did",
            "deactivate",
            "--rpc",
            &url,
            "--dev-account",
            "2",
            &did,
        ],
    );
    let (status, _) = get(&url, &path).await;
    assert_eq!(status, 410);
    let err = cli_fails(
        dir,
        &["did", "update", "--rpc", &url, "--dev-account", "2", &did],
    );
    assert!(err.contains("is deactivated"), "{err}");

    // After a restart the resolver still answers from chain state.
    let c = client(&url);
    let height = block_number(&c).await;
    node.sigkill();
    let (_node, url) = start_dev(&data, "dev-restarted.log").await;
    wait_height(&client(&url), height, LIMIT).await;
    let (status, _) = get(&url, &path).await;
    assert_eq!(status, 410);
    let (_, v3) = get(&url, &format!("{path}?versionId=3")).await;
    assert_eq!(from_resolver(&v3), {
        let mut expected = on_chain(&url, owner).await;
        expected.0 = 3;
        expected.3 = false;
        expected
    });
}
