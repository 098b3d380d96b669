//! Batched sender recovery for admission. Transactions arriving over RPC are queued to one
//! dedicated thread that recovers whatever has accumulated in parallel on rayon, instead of
//! paying a blocking-task hand-off per transaction.

use alloy_consensus::TxEnvelope;
use alloy_primitives::Address;
use tokio::sync::{mpsc, oneshot};
use trellis_crypto::RecoveryError;

const MAX_BATCH: usize = 4_096;
const QUEUE: usize = 65_536;

type Job = (
    TxEnvelope,
    oneshot::Sender<(TxEnvelope, Result<Address, RecoveryError>)>,
);

#[derive(Clone)]
pub struct Recoverer {
    jobs: mpsc::Sender<Job>,
}

impl Recoverer {
    /// Starts the recovery thread; it ends when every `Recoverer` clone is dropped.
    pub fn start() -> Recoverer {
        let (jobs, mut rx) = mpsc::channel::<Job>(QUEUE);
        std::thread::Builder::new()
            .name("trellis-recover".into())
            .spawn(move || {
                while let Some(first) = rx.blocking_recv() {
                    let mut batch = vec![first];
                    while batch.len() < MAX_BATCH {
                        match rx.try_recv() {
                            Ok(job) => batch.push(job),
                            Err(_) => break,
                        }
                    }
                    let (txs, replies): (Vec<_>, Vec<_>) = batch.into_iter().unzip();
                    let senders = trellis_crypto::recover_senders(&txs);
                    for ((tx, sender), reply) in txs.into_iter().zip(senders).zip(replies) {
                        let _ = reply.send((tx, sender));
                    }
                }
            })
            .expect("spawning the recovery thread");
        Recoverer { jobs }
    }

    /// Recovers the sender of `tx`; `None` if the recovery thread is gone.
    pub async fn recover(
        &self,
        tx: TxEnvelope,
    ) -> Option<(TxEnvelope, Result<Address, RecoveryError>)> {
        let (reply, rx) = oneshot::channel();
        self.jobs.send((tx, reply)).await.ok()?;
        rx.await.ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy_consensus::TxLegacy;
    use alloy_primitives::{TxKind, U256};
    use trellis_crypto::AccountKey;

    #[tokio::test]
    async fn recovers_concurrent_requests() {
        let r = Recoverer::start();
        let keys: Vec<_> = (0..16).map(AccountKey::dev).collect();
        let futs = keys.iter().map(|k| {
            let tx = k.sign_tx(TxLegacy {
                chain_id: Some(1),
                nonce: 0,
                gas_price: 0,
                gas_limit: 21_000,
                to: TxKind::Call(Address::ZERO),
                value: U256::ZERO,
                input: Default::default(),
            });
            let r = r.clone();
            async move { r.recover(tx).await.map(|(_, s)| s) }
        });
        let out = futures::future::join_all(futs).await;
        for (k, s) in keys.iter().zip(out) {
            assert_eq!(s, Some(Ok(k.address())));
        }
    }
}
