//! The transaction pool: per-sender nonce queues, fee-bumped replacement, hard bounds on
//! count and bytes, and fair selection for block building.
//!
//! The pool holds only transactions that passed stateless admission (decoding, size, chain
//! id, signature); it checks what depends on the sender's account nonce. It remembers each
//! queued sender's committed nonce (given at insertion, raised at every commit through
//! [`Mempool::prune_sender`]), so it knows without reading state which transactions a block
//! could include now ([`Mempool::has_ready`], [`Mempool::select`]) and which wait for a gap.

mod admission;

pub use admission::{decode_and_check, AdmissionError, MAX_TX_BYTES};

use alloy_consensus::{Transaction, TxEnvelope};
use alloy_eips::eip2718::Encodable2718;
use alloy_primitives::{Address, B256};
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap, HashSet};
use std::time::{Duration, Instant};

#[derive(Clone, Debug)]
pub struct PoolConfig {
    pub max_txs: usize,
    pub max_bytes: usize,
    /// How far ahead of the account nonce a transaction may be queued.
    pub max_nonce_gap: u64,
    /// Replacement needs at least this percentage more fee than the transaction it replaces.
    pub price_bump_percent: u128,
    /// Transactions older than this are evicted.
    pub ttl: Duration,
}

impl Default for PoolConfig {
    fn default() -> Self {
        PoolConfig {
            max_txs: 100_000,
            max_bytes: 256 * 1024 * 1024,
            max_nonce_gap: 1_024,
            price_bump_percent: 10,
            ttl: Duration::from_secs(30 * 60),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PoolError {
    #[error("nonce too low: next nonce {expected}, transaction has {got}")]
    NonceTooLow { expected: u64, got: u64 },
    #[error(
        "nonce too high: next nonce {expected}, transaction has {got} (at most {max_gap} ahead)"
    )]
    NonceGap {
        expected: u64,
        got: u64,
        max_gap: u64,
    },
    #[error("already known")]
    AlreadyKnown,
    #[error("replacement transaction underpriced")]
    ReplacementUnderpriced,
    #[error("transaction pool is full")]
    PoolFull,
}

#[derive(Clone, Debug)]
pub struct PoolTx {
    pub tx: TxEnvelope,
    pub sender: Address,
    pub hash: B256,
    pub size: usize,
    arrival: u64,
    added: Instant,
}

impl PoolTx {
    fn fee(&self) -> u128 {
        self.tx
            .max_priority_fee_per_gas()
            .or_else(|| self.tx.gas_price())
            .unwrap_or_default()
    }
}

#[derive(Debug)]
pub struct Mempool {
    config: PoolConfig,
    by_sender: HashMap<Address, BTreeMap<u64, PoolTx>>,
    by_hash: HashMap<B256, (Address, u64)>,
    /// Committed nonce of every sender with queued transactions, as last learnt.
    nonces: HashMap<Address, u64>,
    /// Senders whose transaction at their committed nonce is queued: a block can include it.
    ready: HashSet<Address>,
    bytes: usize,
    arrivals: u64,
}

impl Mempool {
    pub fn new(config: PoolConfig) -> Mempool {
        Mempool {
            config,
            by_sender: HashMap::new(),
            by_hash: HashMap::new(),
            nonces: HashMap::new(),
            ready: HashSet::new(),
            bytes: 0,
            arrivals: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.by_hash.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_hash.is_empty()
    }

    pub fn bytes(&self) -> usize {
        self.bytes
    }

    pub fn contains(&self, hash: &B256) -> bool {
        self.by_hash.contains_key(hash)
    }

    /// The recovered sender of a pooled transaction.
    pub fn sender_of(&self, hash: &B256) -> Option<Address> {
        self.by_hash.get(hash).map(|(sender, _)| *sender)
    }

    /// Whether some queued transaction could go into a block now (one waiting behind a
    /// nonce gap cannot).
    pub fn has_ready(&self) -> bool {
        !self.ready.is_empty()
    }

    /// The committed nonce of `sender` as far as the pool knows: never below `state_nonce`.
    fn base_nonce(&self, sender: &Address, state_nonce: u64) -> u64 {
        self.nonces
            .get(sender)
            .map_or(state_nonce, |n| (*n).max(state_nonce))
    }

    fn refresh_ready(&mut self, sender: &Address) {
        let ready = match (self.by_sender.get(sender), self.nonces.get(sender)) {
            (Some(queue), Some(nonce)) => queue.contains_key(nonce),
            _ => false,
        };
        if ready {
            self.ready.insert(*sender);
        } else {
            self.ready.remove(sender);
        }
    }

    /// Highest nonce queued for `sender` plus one, if any: the "pending" nonce.
    pub fn pending_nonce(&self, sender: &Address, state_nonce: u64) -> u64 {
        let mut next = self.base_nonce(sender, state_nonce);
        if let Some(queue) = self.by_sender.get(sender) {
            for nonce in queue.range(state_nonce..).map(|(n, _)| *n) {
                if nonce != next {
                    break;
                }
                next += 1;
            }
        }
        next
    }

    /// Adds a transaction whose sender's committed nonce is `state_nonce`.
    pub fn insert(
        &mut self,
        tx: TxEnvelope,
        sender: Address,
        state_nonce: u64,
    ) -> Result<B256, PoolError> {
        let hash = *tx.tx_hash();
        if self.by_hash.contains_key(&hash) {
            return Err(PoolError::AlreadyKnown);
        }
        let state_nonce = self.base_nonce(&sender, state_nonce);
        let nonce = tx.nonce();
        if nonce < state_nonce {
            return Err(PoolError::NonceTooLow {
                expected: state_nonce,
                got: nonce,
            });
        }
        if nonce - state_nonce > self.config.max_nonce_gap {
            return Err(PoolError::NonceGap {
                expected: state_nonce,
                got: nonce,
                max_gap: self.config.max_nonce_gap,
            });
        }
        let size = tx.encode_2718_len();
        let entry = PoolTx {
            tx,
            sender,
            hash,
            size,
            arrival: self.arrivals,
            added: Instant::now(),
        };
        let replaced = self.by_sender.get(&sender).and_then(|q| q.get(&nonce));
        let freed = match replaced {
            Some(old) => {
                let needed = old.fee() + old.fee() * self.config.price_bump_percent / 100;
                if entry.fee() < needed.max(old.fee() + 1) {
                    return Err(PoolError::ReplacementUnderpriced);
                }
                old.size
            }
            None => {
                if self.by_hash.len() >= self.config.max_txs {
                    return Err(PoolError::PoolFull);
                }
                0
            }
        };
        if self.bytes - freed + size > self.config.max_bytes {
            return Err(PoolError::PoolFull);
        }
        self.arrivals += 1;
        if let Some(old) = self
            .by_sender
            .entry(sender)
            .or_default()
            .insert(nonce, entry)
        {
            self.by_hash.remove(&old.hash);
            self.bytes -= old.size;
        }
        self.by_hash.insert(hash, (sender, nonce));
        self.bytes += size;
        self.nonces.insert(sender, state_nonce);
        self.refresh_ready(&sender);
        Ok(hash)
    }

    /// Picks executable transactions for a block: each sender's consecutive nonces starting at
    /// its committed nonce, interleaved across senders by fee and then arrival order.
    pub fn select(&self, max_txs: usize, max_gas: u64) -> Vec<(TxEnvelope, Address)> {
        let mut heap = BinaryHeap::new();
        let mut cursors: HashMap<Address, u64> = HashMap::new();
        for sender in &self.ready {
            let nonce = self.nonces[sender];
            if let Some(tx) = self.by_sender.get(sender).and_then(|q| q.get(&nonce)) {
                heap.push((tx.fee(), Reverse(tx.arrival), *sender));
                cursors.insert(*sender, nonce);
            }
        }
        let mut out = Vec::new();
        let mut gas = 0u64;
        while let Some((_, _, sender)) = heap.pop() {
            if out.len() >= max_txs {
                break;
            }
            let nonce = cursors[&sender];
            let queue = &self.by_sender[&sender];
            let tx = &queue[&nonce];
            if gas.saturating_add(tx.tx.gas_limit()) > max_gas {
                continue;
            }
            gas += tx.tx.gas_limit();
            out.push((tx.tx.clone(), sender));
            if let Some(next) = queue.get(&(nonce + 1)) {
                cursors.insert(sender, nonce + 1);
                heap.push((next.fee(), Reverse(next.arrival), sender));
            }
        }
        out
    }

    fn remove_entry(&mut self, sender: &Address, nonce: u64) {
        if let Some(queue) = self.by_sender.get_mut(sender) {
            if let Some(tx) = queue.remove(&nonce) {
                self.by_hash.remove(&tx.hash);
                self.bytes -= tx.size;
            }
            if queue.is_empty() {
                self.by_sender.remove(sender);
                self.nonces.remove(sender);
            }
        }
        self.refresh_ready(sender);
    }

    /// Learns `sender`'s new committed nonce and drops its transactions below it.
    pub fn prune_sender(&mut self, sender: &Address, state_nonce: u64) {
        if let Some(n) = self.nonces.get_mut(sender) {
            *n = (*n).max(state_nonce);
        }
        let stale: Vec<u64> = self
            .by_sender
            .get(sender)
            .map(|q| q.range(..state_nonce).map(|(n, _)| *n).collect())
            .unwrap_or_default();
        for nonce in stale {
            self.remove_entry(sender, nonce);
        }
        self.refresh_ready(sender);
    }

    /// Removes one transaction (e.g. one that failed during block building).
    /// Removes the transaction with `hash`; `false` if the pool did not hold it.
    pub fn remove(&mut self, hash: &B256) -> bool {
        let Some((sender, nonce)) = self.by_hash.get(hash).copied() else {
            return false;
        };
        self.remove_entry(&sender, nonce);
        true
    }

    /// Evicts transactions that waited longer than the configured TTL.
    pub fn evict_stale(&mut self, now: Instant) -> usize {
        let ttl = self.config.ttl;
        let stale: Vec<(Address, u64)> = self
            .by_sender
            .iter()
            .flat_map(|(s, q)| {
                q.iter()
                    .filter(move |(_, tx)| now.duration_since(tx.added) > ttl)
                    .map(move |(n, _)| (*s, *n))
            })
            .collect();
        for (sender, nonce) in &stale {
            self.remove_entry(sender, *nonce);
        }
        stale.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy_consensus::TxLegacy;
    use alloy_primitives::{TxKind, U256};
    use trellis_crypto::AccountKey;

    fn tx(key: &AccountKey, nonce: u64, gas_price: u128) -> TxEnvelope {
        key.sign_tx(TxLegacy {
            chain_id: Some(1),
            nonce,
            gas_price,
            gas_limit: 21_000,
            to: TxKind::Call(Address::ZERO),
            value: U256::from(1),
            input: Default::default(),
        })
    }

    #[test]
    fn orders_by_nonce_per_sender() {
        let a = AccountKey::dev(0);
        let mut pool = Mempool::new(PoolConfig::default());
        for n in [2, 0, 1] {
            pool.insert(tx(&a, n, 1), a.address(), 0).expect("insert");
        }
        let picked = pool.select(10, u64::MAX);
        let nonces: Vec<_> = picked.iter().map(|(t, _)| t.nonce()).collect();
        assert_eq!(nonces, vec![0, 1, 2]);
        assert_eq!(pool.pending_nonce(&a.address(), 0), 3);
    }

    #[test]
    fn gaps_block_later_nonces_from_selection() {
        let a = AccountKey::dev(0);
        let mut pool = Mempool::new(PoolConfig::default());
        pool.insert(tx(&a, 0, 1), a.address(), 0).expect("insert");
        pool.insert(tx(&a, 2, 1), a.address(), 0).expect("insert");
        assert_eq!(pool.select(10, u64::MAX).len(), 1);
    }

    /// A pool holding only transactions behind a nonce gap has nothing a block could take
    /// (so no proposer builds blocks for it); it becomes ready when the gap fills or when a
    /// commit moves the sender's nonce up to it.
    #[test]
    fn readiness_follows_gaps_and_commits() {
        let a = AccountKey::dev(0);
        let mut pool = Mempool::new(PoolConfig::default());
        pool.insert(tx(&a, 2, 1), a.address(), 0).expect("insert");
        assert!(!pool.has_ready());
        assert!(pool.select(10, u64::MAX).is_empty());
        pool.insert(tx(&a, 0, 1), a.address(), 0).expect("insert");
        assert!(pool.has_ready());
        assert_eq!(
            pool.select(10, u64::MAX).len(),
            1,
            "nonce 1 is still missing"
        );
        // Nonces 0 and 1 were committed (1 came from elsewhere): 2 is next.
        pool.prune_sender(&a.address(), 2);
        assert!(pool.has_ready());
        assert_eq!(pool.select(10, u64::MAX)[0].0.nonce(), 2);
        // An older view's nonce does not lower what the pool learnt from the commit.
        assert_eq!(
            pool.insert(tx(&a, 1, 1), a.address(), 0),
            Err(PoolError::NonceTooLow {
                expected: 2,
                got: 1
            })
        );
        pool.prune_sender(&a.address(), 3);
        assert!(!pool.has_ready());
        assert!(pool.is_empty());
    }

    #[test]
    fn interleaves_senders_by_fee_then_arrival() {
        let a = AccountKey::dev(0);
        let b = AccountKey::dev(1);
        let mut pool = Mempool::new(PoolConfig::default());
        pool.insert(tx(&a, 0, 1), a.address(), 0).expect("insert");
        pool.insert(tx(&b, 0, 5), b.address(), 0).expect("insert");
        pool.insert(tx(&a, 1, 1), a.address(), 0).expect("insert");
        let picked: Vec<_> = pool
            .select(10, u64::MAX)
            .into_iter()
            .map(|(_, s)| s)
            .collect();
        assert_eq!(picked, vec![b.address(), a.address(), a.address()]);
    }

    #[test]
    fn replacement_needs_a_fee_bump() {
        let a = AccountKey::dev(0);
        let mut pool = Mempool::new(PoolConfig::default());
        pool.insert(tx(&a, 0, 100), a.address(), 0).expect("insert");
        assert_eq!(
            pool.insert(tx(&a, 0, 105), a.address(), 0),
            Err(PoolError::ReplacementUnderpriced)
        );
        let hash = pool
            .insert(tx(&a, 0, 110), a.address(), 0)
            .expect("replace");
        assert_eq!(pool.len(), 1);
        assert!(pool.contains(&hash));
    }

    #[test]
    fn nonce_and_capacity_limits() {
        let a = AccountKey::dev(0);
        let mut pool = Mempool::new(PoolConfig {
            max_txs: 2,
            max_nonce_gap: 4,
            ..Default::default()
        });
        assert_eq!(
            pool.insert(tx(&a, 1, 1), a.address(), 3),
            Err(PoolError::NonceTooLow {
                expected: 3,
                got: 1
            })
        );
        assert!(matches!(
            pool.insert(tx(&a, 8, 1), a.address(), 3),
            Err(PoolError::NonceGap { .. })
        ));
        let first = tx(&a, 3, 1);
        pool.insert(first.clone(), a.address(), 3).expect("insert");
        assert_eq!(
            pool.insert(first, a.address(), 3),
            Err(PoolError::AlreadyKnown)
        );
        pool.insert(tx(&a, 4, 1), a.address(), 3).expect("insert");
        assert_eq!(
            pool.insert(tx(&a, 5, 1), a.address(), 3),
            Err(PoolError::PoolFull)
        );
        assert_eq!(pool.len(), 2);
    }

    #[test]
    fn prune_and_gas_bound() {
        let a = AccountKey::dev(0);
        let mut pool = Mempool::new(PoolConfig::default());
        for n in 0..5 {
            pool.insert(tx(&a, n, 1), a.address(), 0).expect("insert");
        }
        assert_eq!(pool.select(10, 50_000).len(), 2);
        pool.prune_sender(&a.address(), 3);
        assert_eq!(pool.len(), 2);
        assert_eq!(pool.select(10, u64::MAX).len(), 2);
        let before = pool.bytes();
        assert!(before > 0);
        assert_eq!(
            pool.evict_stale(Instant::now() + Duration::from_secs(3600)),
            2
        );
        assert_eq!(pool.bytes(), 0);
    }
}
