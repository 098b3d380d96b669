//! Transaction gossip: transactions admitted through this node's RPC are forwarded, in
//! batches, to the other nodes of the chain (`trellis_gossipTransactions`), which admit them
//! without forwarding again. Malachite carries consensus traffic only.

use alloy_primitives::Bytes;
use jsonrpsee::core::client::ClientT;
use jsonrpsee::http_client::{HttpClient, HttpClientBuilder};
use jsonrpsee::rpc_params;
use std::time::Duration;
use tokio::sync::mpsc;
use tracing::{debug, warn};

const MAX_BATCH: usize = 2_000;
const BATCH_WINDOW: Duration = Duration::from_millis(5);
pub const QUEUE_CAPACITY: usize = 100_000;

/// Forwards transactions from `rx` to `peers` until the sender side closes.
pub async fn run(peers: Vec<String>, mut rx: mpsc::Receiver<Vec<u8>>) {
    let clients: Vec<(String, HttpClient)> = peers
        .into_iter()
        .filter_map(|url| {
            match HttpClientBuilder::default()
                .request_timeout(Duration::from_secs(10))
                .build(&url)
            {
                Ok(c) => Some((url, c)),
                Err(e) => {
                    warn!(%url, error = %e, "invalid gossip peer URL; skipped");
                    None
                }
            }
        })
        .collect();
    if clients.is_empty() {
        while rx.recv().await.is_some() {}
        return;
    }
    while let Some(first) = rx.recv().await {
        let mut batch = vec![Bytes::from(first)];
        let deadline = tokio::time::Instant::now() + BATCH_WINDOW;
        while batch.len() < MAX_BATCH {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(raw)) => batch.push(Bytes::from(raw)),
                _ => break,
            }
        }
        let sends = clients.iter().map(|(url, client)| {
            let batch = batch.clone();
            async move {
                let result: Result<usize, _> = client
                    .request("trellis_gossipTransactions", rpc_params![batch])
                    .await;
                if let Err(e) = result {
                    debug!(%url, error = %e, "gossip to peer failed");
                }
            }
        });
        futures::future::join_all(sends).await;
    }
}
