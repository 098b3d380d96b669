//! Permissions at the door of a live node: transactions from accounts outside the member
//! organisations, from frozen accounts, to frozen contracts, and ordinary transactions from a
//! supervisor are refused at admission with a clear error and change nothing; governance
//! (driven through the CLI) lifts each refusal again.

mod common;

use alloy_eips::eip2718::Encodable2718;
use alloy_primitives::{Address, Bytes, TxKind, U256};
use common::*;
use std::time::Duration;
use trellis_crypto::AccountKey;

const LIMIT: Duration = Duration::from_secs(60);
/// Supervisor admin: a dev account the dev chain does not register.
const REGULATOR: u32 = 30;

/// Sends `raw` expecting a refusal whose message contains `expected`; checks that the
/// sender's nonce and balance did not move.
async fn refused(
    c: &jsonrpsee::http_client::HttpClient,
    sender: Address,
    raw: &Bytes,
    expected: &str,
) {
    let (nonce_before, balance_before) =
        (nonce(c, sender, "latest").await, balance(c, sender).await);
    let (code, message) = send_raw(c, raw).await.expect_err("must be refused");
    assert_eq!(code, -32000, "{message}");
    assert!(
        message.contains(expected),
        "{message:?} does not mention {expected:?}"
    );
    let h = block_number(c).await;
    wait_height(c, h + 2, LIMIT).await;
    assert_eq!(nonce(c, sender, "latest").await, nonce_before);
    assert_eq!(balance(c, sender).await, balance_before);
}

#[tokio::test(flavor = "multi_thread")]
async fn outsiders_frozen_accounts_frozen_contracts_and_supervisors_are_refused() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    let (_dev, url) = start_dev(&dir.join("dev"), "dev.log").await;
    let c = client(&url);
    let sink = Address::repeat_byte(0x5e);

    // 1. An account no organisation registered (and unfunded: it sends zero-value
    // transfers; a consortium chain charges no gas).
    let stranger = AccountKey::dev(40);
    refused(
        &c,
        stranger.address(),
        &transfer(&stranger, 0, sink, 0),
        "is not registered to any member organisation",
    )
    .await;
    // Its organisation's admin registers it: now it may send.
    run_cli(
        dir,
        &[
            "org",
            "add-accounts",
            "--rpc",
            &url,
            "--dev-account",
            "0",
            &stranger.address().to_string(),
        ],
    );
    let hash = send_raw(&c, &transfer(&stranger, 0, sink, 0))
        .await
        .expect("registered now");
    assert_eq!(wait_receipt(&c, hash, LIMIT).await["status"], "0x1");

    // 2. A frozen contract (the dev org is the only member: its approval passes alone).
    let runtime = "60005460005260206000f3";
    let init = format!("600b600c600039600b6000f3{runtime}");
    let deployer = AccountKey::dev(1);
    let deploy = legacy(
        &deployer,
        0,
        TxKind::Create,
        U256::ZERO,
        200_000,
        hex::decode(init).expect("hex").into(),
    );
    let hash = send_raw(&c, &Bytes::from(deploy.encoded_2718()))
        .await
        .expect("deploy");
    let created = wait_receipt(&c, hash, LIMIT).await;
    let contract: Address = created["contractAddress"]
        .as_str()
        .expect("address")
        .parse()
        .expect("address");
    let out = gov(
        dir,
        &url,
        0,
        &["propose", "freeze", "--target", &contract.to_string()],
    );
    assert!(out.contains("passed"), "{out}");
    let h = block_number(&c).await;
    wait_height(&c, h + 1, LIMIT).await;
    let caller = AccountKey::dev(2);
    let call = Bytes::from(
        legacy(
            &caller,
            0,
            TxKind::Call(contract),
            U256::ZERO,
            100_000,
            Bytes::new(),
        )
        .encoded_2718(),
    );
    refused(
        &c,
        caller.address(),
        &call,
        &format!("contract {contract} is frozen"),
    )
    .await;

    // 3. A frozen sender.
    let frozen = AccountKey::dev(3);
    let out = gov(
        dir,
        &url,
        0,
        &[
            "propose",
            "freeze",
            "--target",
            &frozen.address().to_string(),
        ],
    );
    assert!(out.contains("passed"), "{out}");
    let h = block_number(&c).await;
    wait_height(&c, h + 1, LIMIT).await;
    refused(
        &c,
        frozen.address(),
        &transfer(&frozen, 0, sink, 1),
        "is frozen",
    )
    .await;

    // 4. A supervisor organisation joins; its admin may not send ordinary transactions...
    let regulator = AccountKey::dev(REGULATOR);
    let out = gov(
        dir,
        &url,
        0,
        &[
            "propose",
            "add-org",
            "--id",
            "regulator",
            "--admin",
            &regulator.address().to_string(),
            "--supervisor",
            "--no-member",
        ],
    );
    assert!(out.contains("passed"), "{out}");
    let h = block_number(&c).await;
    wait_height(&c, h + 1, LIMIT).await;
    refused(
        &c,
        regulator.address(),
        &transfer(&regulator, 0, sink, 0),
        "may only send governance transactions",
    )
    .await;
    // ...but co-signs freezes: unfreezing the sender now needs its approval.
    let out = gov(
        dir,
        &url,
        0,
        &[
            "propose",
            "unfreeze",
            "--target",
            &frozen.address().to_string(),
        ],
    );
    assert!(
        !out.contains("passed"),
        "a freeze change needs the supervisor: {out}"
    );
    let id = proposal_id(&out);
    let out = gov(dir, &url, REGULATOR, &["vote", &id]);
    assert!(out.contains("passed"), "{out}");
    let h = block_number(&c).await;
    wait_height(&c, h + 1, LIMIT).await;
    let hash = send_raw(&c, &transfer(&frozen, 0, sink, 1))
        .await
        .expect("unfrozen");
    assert_eq!(wait_receipt(&c, hash, LIMIT).await["status"], "0x1");

    // Everything above is in the audit log.
    let audit = run_cli(dir, &["gov", "audit", "--rpc", &url]);
    for expected in [
        "addAccounts",
        "freeze",
        "add organisation regulator",
        "unfreeze",
        "vote",
    ] {
        assert!(
            audit.contains(expected),
            "audit log lacks {expected}: {audit}"
        );
    }
}
