//! Evidence on a live dev chain: files notarized and verified through the CLI; refusals
//! (duplicate digest, oversized metadata, unregistered sender, malformed REST requests) are
//! clear and change nothing; a node's answer that was tampered with fails verification; and
//! records and their proofs are the same after a restart.

mod common;

use alloy_primitives::{Bytes, TxKind, B256, U256};
use common::*;
use std::path::Path;
use std::time::Duration;
use trellis_crypto::AccountKey;
use trellis_sdk::evidence::{self as ev, EvidenceResponse, Submission, VerifyError};
use trellis_sdk::{ProofError, RestClient, Trusted};
use trellis_system::evidence::HashAlgorithm;
use trellis_system::EVIDENCE_ADDRESS;

const LIMIT: Duration = Duration::from_secs(60);

async fn fetch(url: &str, path: &Path) -> EvidenceResponse {
    let digest = ev::hash_file(HashAlgorithm::Sha256, path).expect("hash");
    ev::find(&RestClient::new(url), HashAlgorithm::Sha256, &digest)
        .await
        .expect("record served")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notarize_verify_refuse_tamper_and_restart() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("dev");
    let (mut node, url) = start_dev(&data, "dev.log").await;
    let genesis = data.join("genesis.json");
    let genesis = genesis.to_str().expect("utf-8");
    let files: Vec<_> = (0..3)
        .map(|i| {
            let path = tmp.path().join(format!("report-{i}.pdf"));
            std::fs::write(&path, format!("certificate of origin #{i}")).expect("write");
            path
        })
        .collect();
    let names: Vec<&str> = files.iter().map(|f| f.to_str().expect("utf-8")).collect();

    // Submit through the CLI (one batch), verify each file through the CLI.
    let mut args = vec![
        "evidence",
        "submit",
        "--rpc",
        &url,
        "--dev-account",
        "1",
        "--content-type",
        "application/pdf",
        "--metadata",
        "{\"lot\":42}",
    ];
    args.extend(&names);
    let out = run_cli(tmp.path(), &args);
    assert!(out.contains("3 records in block"), "{out}");
    for name in &names {
        let out = run_cli(
            tmp.path(),
            &[
                "evidence",
                "verify",
                "--rpc",
                &url,
                "--genesis",
                genesis,
                name,
            ],
        );
        assert!(out.contains("verified: notarized in block"), "{out}");
        assert!(out.contains(" of dev;"), "organisation recorded: {out}");
        assert!(out.contains("application/pdf"), "{out}");
    }

    // Refusals with clear reasons; nothing is sent, so the nonce does not move.
    let c = client(&url);
    let sender = AccountKey::dev(1).address();
    let nonce_before = nonce(&c, sender, "latest").await;
    let err = cli_fails(
        tmp.path(),
        &[
            "evidence",
            "submit",
            "--rpc",
            &url,
            "--dev-account",
            "1",
            names[0],
        ],
    );
    assert!(
        err.contains("item 0: digest already notarized as evidence"),
        "{err}"
    );
    let big = "m".repeat(4097);
    let other = tmp.path().join("other.txt");
    std::fs::write(&other, "another document").expect("write");
    let other = other.to_str().expect("utf-8");
    let err = cli_fails(
        tmp.path(),
        &[
            "evidence",
            "submit",
            "--rpc",
            &url,
            "--dev-account",
            "1",
            "--metadata",
            &big,
            other,
        ],
    );
    assert!(err.contains("metadata of 4097 bytes exceeds 4096"), "{err}");
    let err = cli_fails(
        tmp.path(),
        &[
            "evidence",
            "verify",
            "--rpc",
            &url,
            "--genesis",
            genesis,
            other,
        ],
    );
    assert!(err.contains("is not notarized"), "{err}");
    assert_eq!(nonce(&c, sender, "latest").await, nonce_before);

    // An account outside every organisation is refused at the door.
    let outsider = AccountKey::dev(30);
    let raw = Bytes::from(alloy_eips::eip2718::Encodable2718::encoded_2718(&legacy(
        &outsider,
        0,
        TxKind::Call(EVIDENCE_ADDRESS),
        U256::ZERO,
        1_000_000,
        ev::submit_batch_calldata(&[Submission {
            algorithm: HashAlgorithm::Sha256,
            digest: B256::repeat_byte(9),
            content_type: String::new(),
            metadata: Bytes::new(),
        }]),
    )));
    let (code, message) = send_raw(&c, &raw).await.expect_err("outsider refused");
    assert_eq!(code, -32000);
    assert!(message.contains("not permitted"), "{message}");

    // Malformed and unknown REST requests.
    let rest = RestClient::new(&url);
    let bad = rest
        .get::<serde_json::Value>("/v1/evidence/0x1234")
        .await
        .expect_err("bad id");
    assert!(
        matches!(&bad, trellis_sdk::RestError::Api { status: 400, code, .. } if code == "invalidRequest"),
        "{bad}"
    );
    let bad = rest
        .get::<serde_json::Value>(&format!("/v1/evidence/md5/{}", B256::ZERO))
        .await
        .expect_err("bad algorithm");
    assert!(bad.to_string().contains("unknown hash algorithm"), "{bad}");
    let missing = ev::get(&rest, &B256::repeat_byte(1))
        .await
        .expect_err("missing");
    assert!(missing.is_not_found(), "{missing}");

    // Verification does not trust the node: tampered answers fail.
    let trusted = Trusted::from_genesis_file(Path::new(genesis)).expect("trusted");
    let good = fetch(&url, &files[1]).await;
    let verified = ev::verify(&good, &trusted).expect("verifies");
    assert_eq!(verified.record.metadata.as_ref(), b"{\"lot\":42}");

    let mut forged = good.clone();
    forged.record.submitter = outsider.address();
    assert!(matches!(
        ev::verify(&forged, &trusted),
        Err(VerifyError::RecordMismatch)
    ));

    let mut forged = good.clone();
    forged.record.height += 1;
    forged.proof.storage_proofs[0].value += U256::from(1);
    assert!(matches!(
        ev::verify(&forged, &trusted),
        Err(VerifyError::Proof(ProofError::Slot { .. }))
    ));

    let mut forged = good.clone();
    forged.proof.storage_proofs.pop();
    assert!(matches!(
        ev::verify(&forged, &trusted),
        Err(VerifyError::NotProven(_))
    ));

    let mut forged = good.clone();
    forged.proof.certificate = Bytes::new();
    assert!(matches!(
        ev::verify(&forged, &trusted),
        Err(VerifyError::Proof(ProofError::Certificate(_)))
    ));

    let stranger = Trusted::from_genesis(&{
        let mut g = trellis_primitives::Genesis::load(Path::new(genesis)).expect("genesis");
        g.validators[0].public_key =
            B256::from(*trellis_crypto::NodeKey::generate().public().as_bytes());
        g
    })
    .expect("other set");
    assert!(matches!(
        ev::verify(&good, &stranger),
        Err(VerifyError::Proof(ProofError::Certificate(_)))
    ));

    // Same records, verifiable, after a restart.
    let before: Vec<_> = {
        let mut v = Vec::new();
        for f in &files {
            v.push(fetch(&url, f).await.record);
        }
        v
    };
    let height = block_number(&c).await;
    node.sigkill();
    let (_node, url) = start_dev(&data, "dev-restarted.log").await;
    wait_height(&client(&url), height, LIMIT).await;
    for (f, record) in files.iter().zip(&before) {
        let response = fetch(&url, f).await;
        assert_eq!(&response.record, record);
        ev::verify(&response, &trusted).expect("verifies after restart");
    }
}
