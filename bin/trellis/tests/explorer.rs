//! The built-in explorer against a live dev chain after a real scenario (a transfer, a
//! notarized file, a freeze): every page answers, agrees with JSON-RPC, and search reaches
//! each object; the audit export matches `trellis_auditLog`.

mod common;

use alloy_primitives::{Address, B256, U64};
use common::*;
use jsonrpsee::core::client::ClientT;
use jsonrpsee::rpc_params;
use serde_json::Value;
use std::time::Duration;
use trellis_crypto::AccountKey;

const LIMIT: Duration = Duration::from_secs(60);

fn port_of(url: &str) -> u16 {
    url.rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("port")
}

/// The body of a page that must answer 200 as HTML.
async fn page(port: u16, path: &str) -> String {
    let (status, head, body) = http_request(port, "GET", path, &[], "").await;
    assert_eq!(status, 200, "{path}: {head}\n{body}");
    assert!(
        head.to_ascii_lowercase().contains("text/html"),
        "{path}: {head}"
    );
    body
}

/// Where a search for `q` leads.
async fn search(port: u16, q: &str) -> String {
    let (status, head, body) = http_request(
        port,
        "GET",
        &format!("/explorer/search?q={}", q.replace('/', "%2F")),
        &[],
        "",
    )
    .await;
    assert_eq!(status, 303, "{q}: {head}\n{body}");
    head.lines()
        .find_map(|l| {
            l.strip_prefix("location: ")
                .or_else(|| l.strip_prefix("Location: "))
        })
        .unwrap_or_else(|| panic!("no Location for {q}: {head}"))
        .trim()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn pages_agree_with_json_rpc_and_search_reaches_every_object() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    let (_dev, url) = start_dev(&dir.join("dev"), "dev.log").await;
    let port = port_of(&url);
    let c = client(&url);

    // The scenario: a transfer, a notarized file, a frozen account.
    let sender = AccountKey::dev(1);
    let sink = Address::repeat_byte(0x5e);
    let transfer_hash = send_raw(&c, &transfer(&sender, 0, sink, 1234))
        .await
        .expect("transfer");
    let receipt = wait_receipt(&c, transfer_hash, LIMIT).await;
    let file = dir.join("certificate.txt");
    std::fs::write(&file, "certificate of origin").expect("file");
    run_cli(
        dir,
        &[
            "evidence",
            "submit",
            "--rpc",
            &url,
            "--dev-account",
            "1",
            file.to_str().expect("utf-8"),
        ],
    );
    let frozen = Address::repeat_byte(0xf0);
    let out = gov(
        dir,
        &url,
        0,
        &["propose", "freeze", "--target", &frozen.to_string()],
    );
    assert!(out.contains("passed"), "{out}");
    let h = block_number(&c).await;
    wait_height(&c, h + 1, LIMIT).await;

    // Home: the chain and its latest blocks.
    let home = page(port, "/explorer").await;
    assert!(home.contains("Latest blocks"), "{home}");
    let chain_id: U64 = c
        .request("eth_chainId", rpc_params![])
        .await
        .expect("chain id");
    assert!(home.contains(&format!("Chain {}", chain_id.to::<u64>())));

    // The transfer's block: its hash and the validators whose precommits certify it.
    let height = u64::from_str_radix(
        receipt["blockNumber"]
            .as_str()
            .expect("number")
            .trim_start_matches("0x"),
        16,
    )
    .expect("height");
    let block = block(&c, height).await;
    let block_page = page(port, &format!("/explorer/block/{height}")).await;
    assert!(
        block_page.contains(block["hash"].as_str().expect("hash")),
        "{block_page}"
    );
    let certificate: Value = c
        .request(
            "trellis_getCommitCertificate",
            rpc_params![U64::from(height)],
        )
        .await
        .expect("certificate");
    let signatures = certificate["signatures"].as_array().expect("signatures");
    assert!(block_page.contains(&format!("<strong>{}</strong> validators", signatures.len())));
    for s in signatures {
        assert!(block_page.contains(s["validator"].as_str().expect("validator")));
    }
    assert!(block_page.contains(&format!("/explorer/tx/{transfer_hash}")));
    // The same block by its hash.
    let by_hash = page(
        port,
        &format!("/explorer/block/{}", block["hash"].as_str().expect("hash")),
    )
    .await;
    assert!(by_hash.contains(&format!("Block <span id=\"block-height\">{height}</span>")));

    // The transfer.
    let tx_page = page(port, &format!("/explorer/tx/{transfer_hash}")).await;
    assert!(tx_page.contains("success"), "{tx_page}");
    assert!(tx_page.contains(&sender.address().to_checksum(None)));
    assert!(tx_page.contains(&sink.to_checksum(None)));
    assert!(tx_page.contains("1234"));

    // A failed transaction shows the reason its revert data gives.
    let bad_call = legacy(
        &sender,
        nonce(&c, sender.address(), "pending").await,
        alloy_primitives::TxKind::Call(trellis_system::EVIDENCE_ADDRESS),
        alloy_primitives::U256::ZERO,
        100_000,
        alloy_primitives::Bytes::from_static(&[0xde, 0xad, 0xbe, 0xef]),
    );
    let bad_hash = send_raw(
        &c,
        &alloy_primitives::Bytes::from(alloy_eips::eip2718::Encodable2718::encoded_2718(&bad_call)),
    )
    .await
    .expect("reverting call");
    let bad_receipt = wait_receipt(&c, bad_hash, LIMIT).await;
    assert_eq!(bad_receipt["status"], "0x0", "{bad_receipt}");
    let bad_page = page(port, &format!("/explorer/tx/{bad_hash}")).await;
    assert!(
        bad_page.contains("<td id=\"tx-revert\">evidence: unknown function or malformed arguments"),
        "{bad_page}"
    );
    assert!(
        !tx_page.contains("tx-revert"),
        "a success has no revert reason"
    );

    // The notarization, with its event decoded from the evidence ABI.
    let logs: Vec<Value> = c
        .request(
            "eth_getLogs",
            rpc_params![serde_json::json!({
                "fromBlock": "0x0",
                "address": trellis_system::EVIDENCE_ADDRESS,
            })],
        )
        .await
        .expect("logs");
    let evidence_tx: B256 = logs[0]["transactionHash"]
        .as_str()
        .expect("hash")
        .parse()
        .expect("hash");
    let evidence_page = page(port, &format!("/explorer/tx/{evidence_tx}")).await;
    assert!(
        evidence_page.contains("EvidenceSubmitted"),
        "{evidence_page}"
    );
    assert!(
        evidence_page.contains("ITrellisEvidence"),
        "{evidence_page}"
    );

    // Addresses: balance and nonce as eth_* answer them; the frozen one says so.
    let sink_page = page(port, &format!("/explorer/address/{sink}")).await;
    assert!(sink_page.contains(&balance(&c, sink).await.to_string()));
    let sender_page = page(port, &format!("/explorer/address/{}", sender.address())).await;
    assert!(sender_page.contains(&format!(
        "<td id=\"nonce\">{}</td>",
        nonce(&c, sender.address(), "latest").await
    )));
    assert!(
        sender_page.contains("<td id=\"organization\">dev</td>"),
        "{sender_page}"
    );
    // Transaction history: the transfer is on both ends' pages, out and in.
    let row = |hash: B256, direction: &str| {
        format!("<a href=\"/explorer/tx/{hash}\">{hash}</a></td><td>{direction}</td>")
    };
    assert!(
        sender_page.contains(&row(transfer_hash, "out")),
        "{sender_page}"
    );
    assert!(sink_page.contains(&row(transfer_hash, "in")), "{sink_page}");
    // A busy address pages newest first, each page starting before the last one's end.
    let busy = Address::repeat_byte(0xb5);
    let payer = AccountKey::dev(2);
    let mut sent = Vec::new();
    for n in 0..30 {
        sent.push(
            send_raw(&c, &transfer(&payer, n, busy, 1))
                .await
                .expect("transfer"),
        );
    }
    for hash in &sent {
        wait_receipt(&c, *hash, LIMIT).await;
    }
    let mut listed = Vec::new();
    let mut path = format!("/explorer/address/{busy}");
    for _ in 0..3 {
        let body = page(port, &path).await;
        listed.extend(
            body.match_indices("<td class=\"mono\"><a href=\"/explorer/tx/")
                .map(|(at, m)| {
                    body[at + m.len()..at + m.len() + 66]
                        .parse::<B256>()
                        .expect("hash")
                }),
        );
        match body.split_once("rel=\"next\" href=\"") {
            Some((_, rest)) => path = rest[..rest.find('"').expect("quote")].replace("&amp;", "&"),
            None => break,
        }
    }
    sent.reverse();
    assert_eq!(listed, sent, "two pages, newest first, none twice");
    let (status, _, body) = http_request(
        port,
        "GET",
        &format!("/explorer/address/{busy}?before=nonsense"),
        &[],
        "",
    )
    .await;
    assert_eq!(status, 400, "{body}");

    let frozen_page = page(port, &format!("/explorer/address/{frozen}")).await;
    assert!(
        frozen_page.contains("<span class=\"error\">yes</span>"),
        "{frozen_page}"
    );
    let frozen_list = page(port, "/explorer/frozen").await;
    assert!(frozen_list.contains(&frozen.to_checksum(None)));
    // The freeze shows the proposal that made it (the dev chain has no supervisor).
    let proposals_rpc: Vec<Value> = c
        .request("trellis_getProposals", rpc_params![0, 1000])
        .await
        .expect("proposals");
    let freeze = proposals_rpc
        .iter()
        .find(|p| p["kind"] == "freeze")
        .expect("the freeze proposal");
    let freeze_id = u64::from_str_radix(
        freeze["id"].as_str().expect("id").trim_start_matches("0x"),
        16,
    )
    .expect("id");
    assert!(
        frozen_list.contains(&format!("<td>{freeze_id} (block")),
        "{frozen_list}"
    );
    let (status, _, frozen_csv) = http_request(port, "GET", "/explorer/frozen.csv", &[], "").await;
    assert_eq!(status, 200);
    let mut lines = frozen_csv.lines();
    assert_eq!(
        lines.next(),
        Some("address,blockNumber,blockHash,proposalId,proposedAt,proposerOrg,proposer,approvals,supervisorCosigners")
    );
    let row = lines.next().expect("a frozen row");
    let fields: Vec<&str> = row.split(',').collect();
    assert_eq!(fields[0].to_lowercase(), format!("{frozen:#x}"), "{row}");
    assert_eq!(fields[3], freeze_id.to_string(), "{row}");
    // The block at whose end the freeze took effect, by number and hash.
    let frozen_at = common::block(&c, fields[1].parse().expect("block number")).await;
    assert_eq!(frozen_at["hash"].as_str(), Some(fields[2]), "{row}");
    assert!(row.contains(",dev,0x") && row.ends_with(",dev,"), "{row}");
    // The supervision page: the chain is live, its validator signs, nothing awaits votes.
    let supervision = page(port, "/explorer/supervision").await;
    assert!(
        supervision.contains(&format!("Chain {}", chain_id.to::<u64>())),
        "{supervision}"
    );
    assert!(supervision.contains("Live: height"), "{supervision}");
    assert!(supervision.contains("Awaiting votes (0)"), "{supervision}");
    assert!(
        supervision.contains("(100%)") || supervision.contains("%)"),
        "{supervision}"
    );

    // Governance pages.
    let orgs = page(port, "/explorer/organizations").await;
    assert!(orgs.contains("<td>dev</td>"), "{orgs}");
    let proposals = page(port, "/explorer/proposals").await;
    assert!(
        proposals.contains(&format!("freeze {frozen}")) || proposals.contains("freeze"),
        "{proposals}"
    );

    // Search reaches each object.
    assert_eq!(
        search(port, &height.to_string()).await,
        format!("/explorer/block/{height}")
    );
    assert_eq!(
        search(port, &transfer_hash.to_string()).await,
        format!("/explorer/tx/{transfer_hash}")
    );
    assert_eq!(
        search(port, block["hash"].as_str().expect("hash")).await,
        format!("/explorer/block/{}", block["hash"].as_str().expect("hash"))
    );
    assert_eq!(
        search(port, &sink.to_string()).await,
        format!("/explorer/address/{sink}")
    );
    assert!(search(port, "did:trellis:1337:0x01")
        .await
        .starts_with("/explorer/did/did:trellis:"));
    assert!(search(port, "MA.156/lot-1")
        .await
        .starts_with("/explorer/identifier/MA.156/lot-1"));
    // An evidence digest leads to its page, verified with the SDK against the validators.
    let digest =
        trellis_sdk::evidence::hash_file(trellis_system::evidence::HashAlgorithm::Sha256, &file)
            .expect("digest");
    let id = trellis_system::evidence::evidence_id(
        trellis_system::evidence::HashAlgorithm::Sha256,
        &digest,
    );
    let target = search(port, &format!("sha256:{digest}")).await;
    assert_eq!(target, format!("/explorer/evidence/{id}"));
    let evidence_page = page(port, &target).await;
    let latest: Value = c
        .request(
            "trellis_getCommitCertificate",
            rpc_params![U64::from(block_number(&c).await)],
        )
        .await
        .expect("certificate");
    assert!(
        evidence_page.contains("Verified against 1 validator signatures at height"),
        "{evidence_page} {latest}"
    );
    assert!(
        evidence_page.contains(&sender.address().to_checksum(None)),
        "{evidence_page}"
    );
    let (status, _, _) = http_request(
        port,
        "GET",
        &format!("/explorer/evidence/{}", B256::repeat_byte(4)),
        &[],
        "",
    )
    .await;
    assert_eq!(status, 404);

    // Clear errors: unknown objects 404, malformed ones 400, both as pages.
    let (status, _, body) = http_request(
        port,
        "GET",
        &format!("/explorer/tx/{}", B256::repeat_byte(9)),
        &[],
        "",
    )
    .await;
    assert_eq!(status, 404, "{body}");
    assert!(body.contains("no committed transaction"), "{body}");
    let (status, _, _) = http_request(port, "GET", "/explorer/tx/nonsense", &[], "").await;
    assert_eq!(status, 400);
    let (status, _, _) =
        http_request(port, "GET", "/explorer/search?q=nothing-at-all", &[], "").await;
    assert_eq!(status, 404);

    // The audit export matches trellis_auditLog, row for row.
    let log: Vec<Value> = c
        .request("trellis_auditLog", rpc_params![0, 1000])
        .await
        .expect("audit log");
    assert!(!log.is_empty());
    let (status, head, csv) = http_request(port, "GET", "/explorer/audit.csv", &[], "").await;
    assert_eq!(status, 200, "{head}");
    assert!(head.to_ascii_lowercase().contains("text/csv"), "{head}");
    let rows: Vec<&str> = csv.lines().collect();
    assert_eq!(
        rows[0],
        "seq,blockNumber,blockHash,transactionHash,action,org,actor,detail"
    );
    assert_eq!(rows.len() - 1, log.len(), "{csv}");
    let (_, _, json) = http_request(port, "GET", "/explorer/audit.json", &[], "").await;
    let exported: Vec<Value> = serde_json::from_str(&json).expect("JSON export");
    assert_eq!(exported.len(), log.len());
    for (row, entry) in exported.iter().zip(&log) {
        assert_eq!(row["action"], entry["action"]);
        assert_eq!(row["org"], entry["org"]);
        assert_eq!(row["detail"], entry["detail"]);
        let number = u64::from_str_radix(
            entry["blockNumber"]
                .as_str()
                .expect("n")
                .trim_start_matches("0x"),
            16,
        )
        .expect("number");
        assert_eq!(row["blockNumber"], number);
        let at = common::block(&c, number).await;
        assert_eq!(row["blockHash"], at["hash"]);
        if !entry["transactionHash"].is_null() {
            assert_eq!(row["transactionHash"], entry["transactionHash"]);
        }
    }
    let audit_page = page(port, "/explorer/audit").await;
    assert!(audit_page.contains("propose"), "{audit_page}");

    // A verifiable export: proofs checked offline against the genesis validators, and the
    // CSV checked against the proven entries; a forged entry or row is refused.
    let genesis = dir.join("dev/genesis.json");
    let export = dir.join("audit-export.json");
    let csv_file = dir.join("audit.csv");
    std::fs::write(&csv_file, &csv).expect("csv");
    let frozen_csv_file = dir.join("frozen.csv");
    std::fs::write(&frozen_csv_file, &frozen_csv).expect("csv");
    let path = |p: &std::path::Path| p.to_str().expect("utf-8").to_owned();
    let out = run_cli(
        dir,
        &["audit", "export", "--rpc", &url, "--out", &path(&export)],
    );
    assert!(out.contains("exported audit entries 0.."), "{out}");
    let verify = [
        "audit".to_string(),
        "verify".into(),
        path(&export),
        "--genesis".into(),
        path(&genesis),
        "--csv".into(),
        path(&csv_file),
        "--frozen-csv".into(),
        path(&frozen_csv_file),
    ];
    let verify: Vec<&str> = verify.iter().map(String::as_str).collect();
    let out = run_cli(dir, &verify);
    assert!(
        out.contains(&format!(
            "verified: {} audit entries and 1 frozen addresses",
            log.len()
        )),
        "{out}"
    );
    assert!(out.contains("1 rows match the proven freeze list"), "{out}");
    assert!(out.contains("validator signatures at height"), "{out}");
    assert!(out.contains(&format!("{} rows match", log.len())), "{out}");

    let mut forged: Value =
        serde_json::from_slice(&std::fs::read(&export).expect("export")).expect("JSON");
    forged["bundles"][0]["entries"][0]["detail"] = "nothing happened".into();
    std::fs::write(&export, serde_json::to_vec(&forged).expect("JSON")).expect("write");
    let err = cli_fails(dir, &verify);
    assert!(err.contains("differs from the proven one"), "{err}");
    // A freeze list with an address swapped, or with the frozen address left out.
    run_cli(
        dir,
        &["audit", "export", "--rpc", &url, "--out", &path(&export)],
    );
    let mut forged: Value =
        serde_json::from_slice(&std::fs::read(&export).expect("export")).expect("JSON");
    forged["frozen"][0]["frozen"][0] = Value::String(Address::repeat_byte(0xee).to_string());
    std::fs::write(&export, serde_json::to_vec(&forged).expect("JSON")).expect("write");
    let err = cli_fails(dir, &verify);
    assert!(err.contains("differ from the proven ones"), "{err}");
    forged["frozen"][0]["frozen"] = Value::Array(vec![]);
    std::fs::write(&export, serde_json::to_vec(&forged).expect("JSON")).expect("write");
    let err = cli_fails(dir, &verify);
    assert!(err.contains("holds 0 of the 1 frozen addresses"), "{err}");
    run_cli(
        dir,
        &["audit", "export", "--rpc", &url, "--out", &path(&export)],
    );
    let first_detail = log[0]["detail"].as_str().expect("detail");
    std::fs::write(&csv_file, csv.replacen(first_detail, "nothing happened", 1)).expect("csv");
    let err = cli_fails(dir, &verify);
    assert!(err.contains("differs from the proven audit entry"), "{err}");
}
