//! Admission: how a transaction gets into this chain's pool. Stateless checks, the sender's
//! signature (recovered on the recovery thread, or in parallel for a gossiped batch), the
//! sender's permission against committed governance state (verdicts cached per height), its
//! nonce, then the bounded pool; a client's transaction is then gossiped to the other nodes.
//!
//! The component owns the pool: block building takes from it, verification asks it for
//! senders it already recovered, commits prune it. It shares nothing else with the chain but
//! the store it reads committed state from.

use alloy_consensus::{Transaction as _, TxEnvelope};
use alloy_primitives::{Address, B256};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::{Arc, OnceLock};
use std::time::Instant;
use tokio::sync::Notify;
use trellis_execution::governance_slots;
use trellis_gossip::GossipSender;
use trellis_mempool::{decode_and_check, AdmissionError, Mempool, PoolConfig};
use trellis_storage::{StateView, Store, StoreError};
use trellis_system::{Governance, Permissions};

use crate::recovery::Recoverer;

/// Verdicts remembered per height at most (a flood of distinct outsiders starts it over).
const MAX_VERDICTS: usize = 100_000;

/// Whether a (sender, target) pair may transact, as governance state of one height says:
/// `Err` holds the refusal's reason.
type Verdict = Result<(), String>;

/// Permission verdicts for the committed state of one height, at most `capacity` of them;
/// a new height, or a full cache, starts it over.
#[derive(Debug)]
pub struct PermissionCache {
    height: u64,
    capacity: usize,
    map: HashMap<(Address, Option<Address>), Verdict>,
}

impl PermissionCache {
    pub fn new(capacity: usize) -> Self {
        PermissionCache {
            height: 0,
            capacity,
            map: HashMap::new(),
        }
    }

    /// The verdict on `sender` sending to `to` at `height`, if one was recorded.
    pub fn get(&self, height: u64, sender: &Address, to: Option<&Address>) -> Option<&Verdict> {
        if self.height != height {
            return None;
        }
        self.map.get(&(*sender, to.copied()))
    }

    pub fn insert(&mut self, height: u64, sender: Address, to: Option<Address>, verdict: Verdict) {
        if self.height != height || self.map.len() >= self.capacity {
            self.height = height;
            self.map.clear();
        }
        self.map.insert((sender, to), verdict);
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.map.len()
    }
}

/// A chain's admission component: its pool and everything that decides what enters it.
pub struct Admission {
    chain_id: u64,
    max_tx_gas: u64,
    store: Store,
    pool: Mutex<Mempool>,
    arrived: Notify,
    /// Set once, when the node starts its gossip.
    gossip: OnceLock<GossipSender>,
    recoverer: Recoverer,
    verdicts: Mutex<PermissionCache>,
    metrics: Arc<trellis_metrics::Metrics>,
}

fn unavailable(e: impl ToString) -> AdmissionError {
    AdmissionError::Unavailable(e.to_string())
}

fn state_nonce(view: &StateView, address: &Address) -> Result<u64, StoreError> {
    Ok(view.account(address)?.map(|a| a.nonce).unwrap_or(0))
}

impl Admission {
    pub fn new(
        chain_id: u64,
        max_tx_gas: u64,
        store: Store,
        pool: PoolConfig,
        metrics: Arc<trellis_metrics::Metrics>,
    ) -> Self {
        Admission {
            chain_id,
            max_tx_gas,
            store,
            pool: Mutex::new(Mempool::new(pool)),
            arrived: Notify::new(),
            gossip: OnceLock::new(),
            recoverer: Recoverer::start(),
            verdicts: Mutex::new(PermissionCache::new(MAX_VERDICTS)),
            metrics,
        }
    }

    /// The pool, locked: for block building, verification and commits.
    pub fn pool(&self) -> parking_lot::MutexGuard<'_, Mempool> {
        self.pool.lock()
    }

    /// Transactions admitted from clients are gossiped on `sender` (set once; a second
    /// sender is refused and returned).
    pub fn set_gossip(&self, sender: GossipSender) -> Result<(), GossipSender> {
        self.gossip.set(sender)
    }

    /// Peers the transaction gossip is connected to, once it runs.
    pub fn gossip_peers(&self) -> Option<u64> {
        self.gossip.get().map(|g| g.peers())
    }

    /// Waits until the pool holds a transaction a block could take now, or `until`.
    pub async fn wait_for_ready(&self, until: Instant) {
        while !self.pool().has_ready() {
            let now = Instant::now();
            if now >= until {
                return;
            }
            let _ = tokio::time::timeout(until - now, self.arrived.notified()).await;
        }
    }

    /// Checks `sender` may send to `to` against committed state. Verdicts are cached per
    /// height; the state is read with no lock held. Blocking: call it off the async workers.
    fn permitted(
        &self,
        view: &StateView,
        sender: &Address,
        to: Option<&Address>,
    ) -> Result<(), AdmissionError> {
        let height = view.tip().map_err(unavailable)?.map(|h| h.0).unwrap_or(0);
        if let Some(verdict) = self.verdicts.lock().get(height, sender, to) {
            return verdict.clone().map_err(AdmissionError::NotPermitted);
        }
        let mut gov_slots = governance_slots(view);
        let mut gov = Governance::new(&mut gov_slots);
        let verdict = Permissions::load(&mut gov)
            .and_then(|mut p| p.check(&mut gov, sender, to))
            .map_err(unavailable)?
            .map_err(|e| e.to_string());
        self.verdicts
            .lock()
            .insert(height, *sender, to.copied(), verdict.clone());
        verdict.map_err(AdmissionError::NotPermitted)
    }

    /// Admission of one raw transaction on the calling thread with the sender recovered by
    /// `recover` (blocking, no forwarding: a deterministic simulation's path, which recovers
    /// each transaction once for all its nodes).
    pub fn admit_blocking(
        &self,
        raw: &[u8],
        recover: impl FnOnce(&TxEnvelope) -> Result<Address, trellis_crypto::RecoveryError>,
    ) -> Result<B256, AdmissionError> {
        let tx = decode_and_check(raw, self.chain_id, self.max_tx_gas)?;
        let sender = recover(&tx).map_err(|e| AdmissionError::BadSignature(e.to_string()))?;
        self.insert_recovered(tx, sender)
    }

    /// Admission once the sender is known: permissions, nonce, then the pool (blocking).
    fn insert_recovered(&self, tx: TxEnvelope, sender: Address) -> Result<B256, AdmissionError> {
        let view = self.store.view().map_err(unavailable)?;
        self.permitted(&view, &sender, tx.to().as_ref())?;
        let nonce = state_nonce(&view, &sender).map_err(unavailable)?;
        Ok(self.pool().insert(tx, sender, nonce)?)
    }

    /// Full admission of one raw transaction from a client: stateless checks, signature, the
    /// pool, then gossip to the other nodes. A refusal is counted by reason.
    pub async fn admit(self: &Arc<Self>, raw: Vec<u8>) -> Result<B256, AdmissionError> {
        let result = self.admit_client(raw).await;
        if let Err(e) = &result {
            self.metrics.chain.rejected(e.reason());
        }
        result
    }

    async fn admit_client(self: &Arc<Self>, raw: Vec<u8>) -> Result<B256, AdmissionError> {
        let tx = decode_and_check(&raw, self.chain_id, self.max_tx_gas)?;
        // A transaction sent again while pending costs a lookup, not a signature recovery.
        if self.pool().contains(tx.tx_hash()) {
            return Err(trellis_mempool::PoolError::AlreadyKnown.into());
        }
        let (tx, sender) = self
            .recoverer
            .recover(tx)
            .await
            .ok_or_else(|| unavailable("signature recovery is shutting down"))?;
        let sender = sender.map_err(|e| AdmissionError::BadSignature(e.to_string()))?;
        let this = self.clone();
        let hash = trellis_storage::blocking(move || this.insert_recovered(tx, sender))
            .await
            .map_err(unavailable)??;
        self.arrived.notify_one();
        if let Some(gossip) = self.gossip.get() {
            gossip.send(raw);
        }
        Ok(hash)
    }

    /// Admits a batch gossiped by a peer: transactions the pool already holds dropped before
    /// any signature work, signatures recovered in parallel, state read with no lock held,
    /// then the pool locked once for the inserts. Answers how many entered the pool.
    pub async fn admit_gossip(self: &Arc<Self>, raws: Vec<Vec<u8>>) -> usize {
        let this = self.clone();
        let added = trellis_storage::blocking(move || this.admit_batch(&raws))
            .await
            .unwrap_or(0);
        if added > 0 {
            self.arrived.notify_one();
        }
        added
    }

    fn admit_batch(&self, raws: &[Vec<u8>]) -> usize {
        let decoded: Vec<_> = raws
            .iter()
            .filter_map(|raw| decode_and_check(raw, self.chain_id, self.max_tx_gas).ok())
            .collect();
        let decoded: Vec<_> = {
            let pool = self.pool();
            decoded
                .into_iter()
                .filter(|tx| !pool.contains(tx.tx_hash()))
                .collect()
        };
        let senders = trellis_crypto::recover_senders(&decoded);
        let Ok(view) = self.store.view() else {
            return 0;
        };
        let admissible: Vec<_> = decoded
            .into_iter()
            .zip(senders)
            .filter_map(|(tx, sender)| {
                let sender = sender.ok()?;
                self.permitted(&view, &sender, tx.to().as_ref()).ok()?;
                let nonce = state_nonce(&view, &sender).ok()?;
                Some((tx, sender, nonce))
            })
            .collect();
        let mut pool = self.pool();
        admissible
            .into_iter()
            .map(|(tx, sender, nonce)| pool.insert(tx, sender, nonce).is_ok())
            .filter(|added| *added)
            .count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdicts_hold_for_one_height_only() {
        let mut cache = PermissionCache::new(10);
        let (alice, bob) = (Address::repeat_byte(1), Address::repeat_byte(2));
        cache.insert(5, alice, Some(bob), Ok(()));
        cache.insert(5, bob, None, Err("not a member".into()));
        assert_eq!(cache.get(5, &alice, Some(&bob)), Some(&Ok(())));
        assert_eq!(
            cache.get(5, &bob, None),
            Some(&Err("not a member".to_string()))
        );
        assert_eq!(cache.get(5, &alice, None), None, "another target");
        assert_eq!(cache.get(6, &alice, Some(&bob)), None, "a later height");
        cache.insert(6, alice, None, Ok(()));
        assert_eq!(cache.len(), 1, "a new height starts over");
        assert_eq!(cache.get(5, &bob, None), None);
    }

    #[test]
    fn a_flood_of_senders_starts_the_cache_over_instead_of_growing_it() {
        let mut cache = PermissionCache::new(100);
        for i in 0..1_000u32 {
            let sender = Address::left_padding_from(&i.to_be_bytes());
            cache.insert(1, sender, None, Err("outsider".into()));
            assert!(cache.len() <= 100);
        }
    }
}
