//! SIGKILL under load: after a restart no committed block and no acknowledged transaction
//! (one whose receipt was returned) is lost.

mod common;

use alloy_primitives::{Address, B256};
use common::*;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use trellis_crypto::AccountKey;

const LIMIT: Duration = Duration::from_secs(120);

#[tokio::test(flavor = "multi_thread")]
async fn sigkill_during_load_loses_nothing_acknowledged() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("dev");
    for round in 0..3u64 {
        let (mut node, url) = start_dev(&data, &format!("dev-{round}.log")).await;
        let c = client(&url);
        let acknowledged: Arc<Mutex<Vec<(B256, String)>>> = Arc::new(Mutex::new(Vec::new()));
        let key = AccountKey::dev(round as u32);
        let start_nonce = nonce(&c, key.address(), "latest").await;
        let load = {
            let c = c.clone();
            let acknowledged = acknowledged.clone();
            tokio::spawn(async move {
                let mut n = start_nonce;
                loop {
                    let raws: Vec<_> = (n..n + 20)
                        .map(|i| transfer(&key, i, Address::repeat_byte(9), 1))
                        .collect();
                    let Ok(results) = tokio::time::timeout(Duration::from_secs(5), async {
                        send_batch(&c, &raws).await
                    })
                    .await
                    else {
                        return;
                    };
                    let hashes: Vec<_> = results.into_iter().filter_map(Result::ok).collect();
                    n += 20;
                    for h in hashes {
                        // A transaction counts as acknowledged once its receipt came back.
                        loop {
                            match tokio::time::timeout(Duration::from_secs(2), try_receipt(&c, h))
                                .await
                            {
                                Ok(Ok(Some(r))) => {
                                    let block_hash =
                                        r["blockHash"].as_str().unwrap_or_default().to_string();
                                    acknowledged.lock().expect("lock").push((h, block_hash));
                                    break;
                                }
                                Ok(Ok(None)) => tokio::time::sleep(Duration::from_millis(20)).await,
                                Ok(Err(_)) | Err(_) => return,
                            }
                        }
                    }
                }
            })
        };
        tokio::time::sleep(Duration::from_millis(1_500 + 700 * round)).await;
        let tip_before_kill = block_number(&c).await;
        node.sigkill();
        load.abort();
        let _ = load.await;
        let acked = acknowledged.lock().expect("lock").clone();
        assert!(!acked.is_empty(), "load produced acknowledged transactions");
        drop(node);

        let (_node, url) = start_dev(&data, &format!("dev-{round}-after.log")).await;
        let c = client(&url);
        assert!(
            block_number(&c).await >= tip_before_kill,
            "committed blocks survived"
        );
        for (h, block_hash) in &acked {
            let r = receipt(&c, *h)
                .await
                .unwrap_or_else(|| panic!("acknowledged {h} lost"));
            assert_eq!(
                r["blockHash"].as_str(),
                Some(block_hash.as_str()),
                "{h} moved blocks"
            );
        }
        // The chain keeps going after the restart.
        wait_height(&c, tip_before_kill + 2, LIMIT).await;
    }
}
