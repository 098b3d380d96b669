//! One chain instance: admission into the pool, block building and checking for consensus,
//! atomic commits, and the read side the RPC server uses.

use alloy_consensus::{Transaction as _, TxEnvelope};
use alloy_primitives::{keccak256, Address, Bytes as AlloyBytes, B256};
use bytes::Bytes;
use parking_lot::{Mutex, RwLock};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::{watch, Notify};
use tracing::{debug, info, warn};
use trellis_consensus::{Application, PeerAllowlist, ValidatorSet, VerifyError};
use trellis_execution::{execute_block, governance_slots, BlockEnvInput, ExecutedBlock, Mode};
use trellis_gossip::GossipSender;
use trellis_mempool::{decode_and_check, AdmissionError, Mempool, PoolConfig};
use trellis_system::{Governance, Permissions};

use crate::recovery::Recoverer;
use trellis_primitives::{Block, Bloom, Genesis, Header, Height};
use trellis_storage::{
    AccountState, BlockCommit, StateChanges, StateView, Store, StoreError, EMPTY_CODE_HASH,
    EMPTY_ROOT,
};

/// Proposals may carry a timestamp at most this far ahead of the local clock.
const MAX_CLOCK_DRIFT_MS: u64 = 15_000;

#[derive(Clone, Debug)]
pub struct ChainSettings {
    pub empty_block_interval: Duration,
    pub max_block_txs: usize,
    pub pool: PoolConfig,
    /// Where block timestamps come from: the system clock, or a simulation's.
    pub clock: Clock,
}

/// Milliseconds since the Unix epoch, as a chain instance sees them.
#[derive(Clone)]
pub struct Clock(Arc<dyn Fn() -> u64 + Send + Sync>);

impl Clock {
    /// The system clock.
    pub fn system() -> Clock {
        Clock(Arc::new(now_ms))
    }

    /// A clock that reads `now` (a deterministic simulation's time).
    pub fn from_fn(now: impl Fn() -> u64 + Send + Sync + 'static) -> Clock {
        Clock(Arc::new(now))
    }

    pub fn now_ms(&self) -> u64 {
        (self.0)()
    }
}

impl Default for Clock {
    fn default() -> Self {
        Clock::system()
    }
}

impl std::fmt::Debug for Clock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Clock")
    }
}

#[derive(Clone, Copy, Debug)]
struct Tip {
    height: u64,
    hash: B256,
    timestamp_ms: u64,
}

struct PendingBlock {
    block: Block,
    executed: ExecutedBlock,
}

struct Inner {
    chain_id: u64,
    gas_limit: u64,
    /// Gas one transaction may ask for (genesis `maxTransactionGas`).
    max_tx_gas: u64,
    store: Store,
    settings: ChainSettings,
    pool: Mutex<Mempool>,
    tx_arrived: Notify,
    pending: Mutex<HashMap<B256, Arc<PendingBlock>>>,
    tip: RwLock<Tip>,
    committed: watch::Sender<u64>,
    /// Set once, when the node starts its gossip.
    gossip: std::sync::OnceLock<GossipSender>,
    recoverer: Recoverer,
    /// Admission verdicts of (sender, target) against the committed state of one height.
    verdicts: Mutex<Verdicts>,
    /// Times this node failed to build the block it was asked to propose (each time it
    /// proposed an empty block instead); operators alert on it.
    build_failures: std::sync::atomic::AtomicU64,
    /// Validator sets by the height they decide (recent heights and the next one).
    validator_sets: RwLock<BTreeMap<u64, ValidatorSet>>,
    /// This node's moniker and node public key, for `admin_nodeInfo`.
    identity: std::sync::OnceLock<(String, B256)>,
    /// Node keys registered in governance: the only peers consensus networking admits.
    peers: PeerAllowlist,
    /// This chain's metrics (served on `/metrics` when the node is configured to).
    metrics: Arc<trellis_metrics::Metrics>,
    /// When this node last committed a block (ms since the Unix epoch; 0: not since start).
    last_commit_ms: std::sync::atomic::AtomicU64,
    #[cfg(feature = "fault-injection")]
    garbage_blocks: std::sync::atomic::AtomicBool,
}

/// Validator sets kept for heights before the next one (for replays after restarts).
const KEPT_VALIDATOR_SETS: u64 = 256;

/// Verdicts remembered per height at most (a flood of distinct outsiders starts it over).
const MAX_VERDICTS: usize = 100_000;

/// Admission's permission verdicts for the committed state of `height`.
#[derive(Default)]
struct Verdicts {
    height: u64,
    map: HashMap<(Address, Option<Address>), Result<(), String>>,
}

/// Handle to a chain instance; cheap to clone.
#[derive(Clone)]
pub struct Chain {
    inner: Arc<Inner>,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn validator_set(members: impl IntoIterator<Item = (B256, u64)>) -> eyre::Result<ValidatorSet> {
    Ok(ValidatorSet::from_keys(members)?)
}

/// The validator set described by a genesis file.
pub fn genesis_validators(genesis: &Genesis) -> eyre::Result<ValidatorSet> {
    validator_set(genesis.validators.iter().map(|v| (v.public_key, v.power)))
}

/// The validator set governance state in `view` names: it decides the height after `view`'s.
pub fn validators_in_state(view: &StateView) -> eyre::Result<ValidatorSet> {
    let members = Governance::new(&mut governance_slots(view)).validators()?;
    validator_set(members)
}

/// Genesis state changes and the height-0 block that commits to them.
pub fn genesis_block(genesis: &Genesis) -> eyre::Result<(StateChanges, Block)> {
    let validators = genesis_validators(genesis)?;
    let mut changes = StateChanges::default();
    trellis_execution::genesis_system_state(genesis, &mut changes)?;
    for (address, account) in &genesis.alloc {
        let code_hash = if account.code.is_empty() {
            EMPTY_CODE_HASH
        } else {
            let hash = keccak256(&account.code);
            changes.codes.insert(hash, account.code.clone());
            hash
        };
        changes.accounts.insert(
            *address,
            Some(AccountState {
                nonce: account.nonce,
                balance: account.balance,
                code_hash,
                storage_root: EMPTY_ROOT,
            }),
        );
        if !account.storage.is_empty() {
            changes.storage.insert(
                *address,
                account
                    .storage
                    .iter()
                    .map(|(k, v)| ((*k).into(), (*v).into()))
                    .collect(),
            );
        }
    }
    let state_root = trellis_execution::fresh_state_root(&mut changes)?;
    let block = Block {
        header: Header {
            chain_id: genesis.chain_id.0,
            height: 0,
            parent_hash: B256::ZERO,
            timestamp_ms: genesis.timestamp_ms,
            proposer: Address::ZERO,
            transactions_root: Block::compute_transactions_root(&[]),
            receipts_root: EMPTY_ROOT,
            state_root,
            logs_bloom: Bloom::ZERO,
            gas_limit: genesis.gas_limit,
            gas_used: 0,
            validators_hash: validators.hash(),
        },
        transactions: vec![],
    };
    Ok((changes, block))
}

impl Chain {
    /// Opens the chain on `store`, writing genesis state first if the store is new.
    pub fn open(store: Store, genesis: &Genesis, settings: ChainSettings) -> eyre::Result<Chain> {
        let (changes, block0) = genesis_block(genesis)?;
        if store.init_genesis(&changes, &block0)? {
            info!(chain_id = %genesis.chain_id, genesis = %block0.hash(), "wrote genesis state");
        }
        let mut view = store.view()?;
        if !view.has_trie_nodes()? {
            // A data directory written before tries were stored node by node.
            let nodes = trellis_execution::rebuild_tries(&view)?;
            let root = nodes.root;
            store.write_trie_nodes(&nodes.writes)?;
            view = store.view()?;
            let tip = view.tip()?.unwrap_or_default();
            let expected = view
                .block(tip)?
                .map(|b| b.header.state_root)
                .unwrap_or_default();
            if root != expected {
                eyre::bail!("rebuilt state root {root} differs from the tip's {expected}");
            }
            info!(%root, "stored the state tries of an older data directory");
        }
        let stored0 = view
            .block(Height(0))?
            .ok_or_else(|| eyre::eyre!("store has no genesis block"))?;
        if stored0.hash() != block0.hash() {
            eyre::bail!(
                "the data directory belongs to another chain: stored genesis {} but genesis file gives {}",
                stored0.hash(),
                block0.hash()
            );
        }
        let height = view.tip()?.map(|h| h.0).unwrap_or(0);
        let tip_block = view
            .block(Height(height))?
            .ok_or_else(|| eyre::eyre!("tip block {height} missing from store"))?;
        let tip = Tip {
            height,
            hash: tip_block.hash(),
            timestamp_ms: tip_block.header.timestamp_ms,
        };
        let next_set = validators_in_state(&view)?;
        info!(height, hash = %tip.hash, validators = next_set.len(), "chain opened");
        let (committed, _) = watch::channel(height);
        let metrics = Arc::new(trellis_metrics::Metrics::new(genesis.chain_id.0));
        metrics.chain.at_height(height);
        trellis_metrics::set_level(
            &metrics.chain.pool_capacity_transactions,
            settings.pool.max_txs as u64,
        );
        trellis_metrics::set_level(
            &metrics.chain.pool_capacity_bytes,
            settings.pool.max_bytes as u64,
        );
        let chain = Chain {
            inner: Arc::new(Inner {
                chain_id: genesis.chain_id.0,
                gas_limit: genesis.gas_limit,
                max_tx_gas: genesis.max_transaction_gas,
                pool: Mutex::new(Mempool::new(settings.pool.clone())),
                store,
                settings,
                tx_arrived: Notify::new(),
                pending: Mutex::new(HashMap::new()),
                tip: RwLock::new(tip),
                committed,
                gossip: std::sync::OnceLock::new(),
                recoverer: Recoverer::start(),
                verdicts: Mutex::new(Verdicts::default()),
                build_failures: Default::default(),
                validator_sets: RwLock::new(BTreeMap::from([(height + 1, next_set)])),
                identity: std::sync::OnceLock::new(),
                last_commit_ms: std::sync::atomic::AtomicU64::new(0),
                peers: PeerAllowlist::default(),
                metrics,
                #[cfg(feature = "fault-injection")]
                garbage_blocks: Default::default(),
            }),
        };
        chain.load_peers(&view)?;
        Ok(chain)
    }

    pub fn chain_id(&self) -> u64 {
        self.inner.chain_id
    }

    /// This chain's metrics.
    pub fn metrics(&self) -> Arc<trellis_metrics::Metrics> {
        self.inner.metrics.clone()
    }

    /// Reads the levels a scrape shows (pool size and bytes); blocking (takes the pool lock).
    pub fn refresh_metrics(&self) {
        let (txs, bytes) = {
            let pool = self.lock_pool();
            (pool.len(), pool.bytes())
        };
        let chain = &self.inner.metrics.chain;
        trellis_metrics::set_level(&chain.pool_transactions, txs as u64);
        trellis_metrics::set_level(&chain.pool_bytes, bytes as u64);
        // Governance and services from one snapshot of committed state (a few slot reads).
        let Ok(view) = self.inner.store.view() else {
            return;
        };
        let mut slots = governance_slots(&view);
        let mut gov = Governance::new(&mut slots);
        let read = |gauge: &trellis_metrics::Gauge,
                    value: Result<u64, trellis_system::SlotError>| {
            if let Ok(value) = value {
                trellis_metrics::set_level(gauge, value);
            }
        };
        if let Ok(config) = gov.config() {
            trellis_metrics::set_level(&chain.proposals, config.proposals);
            trellis_metrics::set_level(&chain.audit_entries, config.audits);
            trellis_metrics::set_level(&chain.member_organizations, config.members);
            let height = view.tip().ok().flatten().map_or(0, |h| h.0);
            read(
                &chain.proposals_pending,
                gov.pending_proposals(height).map(|p| p.len() as u64),
            );
        }
        read(&chain.organizations, gov.organization_count());
        read(&chain.registered_nodes, gov.node_count());
        read(&chain.frozen, gov.frozen_count());
        let mut slots = trellis_execution::system_slots(&view, trellis_system::EVIDENCE_ADDRESS);
        read(
            &chain.evidence_records,
            trellis_system::Evidence::new(&mut slots).count(),
        );
    }

    /// Node keys allowed to connect (kept equal to the registered nodes).
    pub fn peer_allowlist(&self) -> PeerAllowlist {
        self.inner.peers.clone()
    }

    /// Fills the allowlist with every registered node (once, when the chain opens; commits
    /// then apply governance's changes to it).
    fn load_peers(&self, view: &StateView) -> eyre::Result<()> {
        const PAGE: u64 = 1_000;
        let mut gov_slots = governance_slots(view);
        let mut gov = Governance::new(&mut gov_slots);
        let mut keys = Vec::new();
        while (keys.len() as u64).is_multiple_of(PAGE) {
            let page = gov.node_keys(keys.len() as u64, PAGE)?;
            if page.is_empty() {
                break;
            }
            keys.extend(page.into_iter().map(|k| k.0));
        }
        let n = self.inner.peers.replace(keys);
        debug!(registered = n, "peer allowlist loaded");
        Ok(())
    }

    /// Test builds only: makes this node a byzantine proposer whose blocks claim a wrong state
    /// root, so that tests can check honest validators reject them and the chain goes on.
    #[cfg(feature = "fault-injection")]
    pub fn inject_garbage_blocks(&self) {
        self.inner
            .garbage_blocks
            .store(true, std::sync::atomic::Ordering::Relaxed);
        tracing::warn!("FAULT INJECTION: this node proposes blocks with a wrong state root");
    }

    #[cfg(feature = "fault-injection")]
    fn maybe_corrupt(&self, mut block: Block) -> Block {
        if self
            .inner
            .garbage_blocks
            .load(std::sync::atomic::Ordering::Relaxed)
        {
            block.header.state_root = keccak256(block.header.state_root);
        }
        block
    }

    /// Records who runs this chain instance (shown to the operator by `admin_nodeInfo`).
    pub fn set_identity(&self, moniker: String, node_key: B256) {
        let _ = self.inner.identity.set((moniker, node_key));
    }

    /// The validator set deciding `height`, if this node knows it (recent and next heights).
    pub fn validators_at(&self, height: u64) -> Option<ValidatorSet> {
        self.inner.validator_sets.read().get(&height).cloned()
    }

    /// The validator set deciding the next height.
    pub fn next_validators(&self) -> ValidatorSet {
        let sets = self.inner.validator_sets.read();
        sets.values()
            .next_back()
            .cloned()
            .expect("the next height's validator set is always known")
    }

    /// Checks `sender` may send to `to` against committed state. Verdicts are cached per
    /// height; the state is read with no lock held. Blocking: call it off the async workers.
    fn permitted(
        &self,
        view: &StateView,
        sender: &Address,
        to: Option<&Address>,
    ) -> Result<(), AdmissionError> {
        let unavailable = |e: String| AdmissionError::Unavailable(e);
        let height = view
            .tip()
            .map_err(|e| unavailable(e.to_string()))?
            .map(|h| h.0)
            .unwrap_or(0);
        let key = (*sender, to.copied());
        {
            let cache = self.lock_verdicts();
            if cache.height == height {
                if let Some(verdict) = cache.map.get(&key) {
                    return verdict.clone().map_err(AdmissionError::NotPermitted);
                }
            }
        }
        let mut gov_slots = governance_slots(view);
        let mut gov = Governance::new(&mut gov_slots);
        let verdict = Permissions::load(&mut gov)
            .and_then(|mut p| p.check(&mut gov, sender, to))
            .map_err(|e| unavailable(e.to_string()))?
            .map_err(|e| e.to_string());
        let mut cache = self.lock_verdicts();
        if cache.height != height || cache.map.len() >= MAX_VERDICTS {
            cache.height = height;
            cache.map.clear();
        }
        cache.map.insert(key, verdict.clone());
        verdict.map_err(AdmissionError::NotPermitted)
    }

    fn lock_verdicts(&self) -> parking_lot::MutexGuard<'_, Verdicts> {
        self.inner.verdicts.lock()
    }

    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    pub fn height(&self) -> u64 {
        self.tip().height
    }

    fn tip(&self) -> Tip {
        *self.inner.tip.read()
    }

    /// Follows the committed height.
    pub fn subscribe_committed(&self) -> watch::Receiver<u64> {
        self.inner.committed.subscribe()
    }

    /// The encoded block and certificate committed at `height` (blocking).
    pub fn decided(&self, height: u64) -> Option<(Bytes, Vec<u8>)> {
        let view = self.inner.store.view().ok()?;
        let block = view.block(Height(height)).ok()??;
        let cert = view.certificate(Height(height)).ok()??;
        Some((Bytes::from(block.encode_to_vec()), cert))
    }

    /// Whether the pool holds a transaction a block could take now.
    pub fn has_ready_transactions(&self) -> bool {
        self.lock_pool().has_ready()
    }

    /// Times this node had to propose an empty block because building failed.
    pub fn build_failures(&self) -> u64 {
        self.inner
            .build_failures
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    pub fn pool_len(&self) -> usize {
        self.lock_pool().len()
    }

    /// Transactions admitted through this node's RPC are gossiped on `sender` (set once;
    /// a second sender is refused and returned).
    pub fn set_gossip(&self, sender: GossipSender) -> Result<(), GossipSender> {
        self.inner.gossip.set(sender)
    }

    fn lock_pool(&self) -> parking_lot::MutexGuard<'_, Mempool> {
        self.inner.pool.lock()
    }

    fn state_nonce(view: &StateView, address: &Address) -> Result<u64, StoreError> {
        Ok(view.account(address)?.map(|a| a.nonce).unwrap_or(0))
    }

    /// Admission of one raw transaction on the calling thread with the sender recovered by
    /// `recover` (blocking, no forwarding: a deterministic simulation's path, which recovers
    /// each transaction once for all its nodes).
    pub fn admit_blocking(
        &self,
        raw: &[u8],
        recover: impl FnOnce(&TxEnvelope) -> Result<Address, trellis_crypto::RecoveryError>,
    ) -> Result<B256, AdmissionError> {
        let tx = decode_and_check(raw, self.inner.chain_id, self.inner.max_tx_gas)?;
        let sender = recover(&tx).map_err(|e| AdmissionError::BadSignature(e.to_string()))?;
        self.insert_recovered(tx, sender)
    }

    /// Admission once the sender is known: permissions, nonce, then the pool (blocking).
    fn insert_recovered(&self, tx: TxEnvelope, sender: Address) -> Result<B256, AdmissionError> {
        let view = self
            .inner
            .store
            .view()
            .map_err(|e| AdmissionError::Unavailable(e.to_string()))?;
        self.permitted(&view, &sender, tx.to().as_ref())?;
        let nonce = Self::state_nonce(&view, &sender)
            .map_err(|e| AdmissionError::Unavailable(e.to_string()))?;
        Ok(self.lock_pool().insert(tx, sender, nonce)?)
    }

    /// Full admission of one raw transaction from a client: stateless checks, signature, the
    /// pool, then gossip to the other nodes. A refusal is counted by reason.
    pub async fn admit(&self, raw: Vec<u8>) -> Result<B256, AdmissionError> {
        let result = self.admit_client(raw).await;
        if let Err(e) = &result {
            self.inner.metrics.chain.rejected(e.reason());
        }
        result
    }

    async fn admit_client(&self, raw: Vec<u8>) -> Result<B256, AdmissionError> {
        let tx = decode_and_check(&raw, self.inner.chain_id, self.inner.max_tx_gas)?;
        // A transaction sent again while pending costs a lookup, not a signature recovery.
        if self.lock_pool().contains(tx.tx_hash()) {
            return Err(trellis_mempool::PoolError::AlreadyKnown.into());
        }
        let (tx, sender) = self.inner.recoverer.recover(tx).await.ok_or_else(|| {
            AdmissionError::Unavailable("signature recovery is shutting down".into())
        })?;
        let sender = sender.map_err(|e| AdmissionError::BadSignature(e.to_string()))?;
        let chain = self.clone();
        let hash = trellis_storage::blocking(move || chain.insert_recovered(tx, sender))
            .await
            .map_err(|e| AdmissionError::Unavailable(e.to_string()))??;
        self.inner.tx_arrived.notify_one();
        if let Some(gossip) = self.inner.gossip.get() {
            gossip.send(raw);
        }
        Ok(hash)
    }

    /// Admits a batch gossiped by a peer: transactions the pool already holds dropped before
    /// any signature work, signatures recovered in parallel, state read with no lock held,
    /// then the pool locked once for the inserts.
    pub async fn admit_gossip(&self, raws: Vec<Vec<u8>>) -> usize {
        let chain = self.clone();
        let added = trellis_storage::blocking(move || {
            let (chain_id, max_gas) = (chain.inner.chain_id, chain.inner.max_tx_gas);
            let decoded: Vec<_> = raws
                .iter()
                .filter_map(|raw| decode_and_check(raw, chain_id, max_gas).ok())
                .collect();
            let decoded: Vec<_> = {
                let pool = chain.lock_pool();
                decoded
                    .into_iter()
                    .filter(|tx| !pool.contains(tx.tx_hash()))
                    .collect()
            };
            let senders = trellis_crypto::recover_senders(&decoded);
            let Ok(view) = chain.inner.store.view() else {
                return 0;
            };
            let admissible: Vec<_> = decoded
                .into_iter()
                .zip(senders)
                .filter_map(|(tx, sender)| {
                    let sender = sender.ok()?;
                    chain.permitted(&view, &sender, tx.to().as_ref()).ok()?;
                    let nonce = Self::state_nonce(&view, &sender).ok()?;
                    Some((tx, sender, nonce))
                })
                .collect();
            let mut pool = chain.lock_pool();
            admissible
                .into_iter()
                .map(|(tx, sender, nonce)| pool.insert(tx, sender, nonce).is_ok())
                .filter(|added| *added)
                .count()
        })
        .await
        .unwrap_or(0);
        if added > 0 {
            self.inner.tx_arrived.notify_one();
        }
        added
    }

    pub fn pending_nonce(&self, address: Address, state_nonce: u64) -> u64 {
        self.lock_pool().pending_nonce(&address, state_nonce)
    }

    /// Evicts pool entries past their TTL.
    pub fn evict_stale(&self) -> usize {
        self.lock_pool().evict_stale(Instant::now())
    }

    fn env_for(&self, height: u64, timestamp_ms: u64, proposer: Address) -> BlockEnvInput {
        BlockEnvInput {
            chain_id: self.inner.chain_id,
            height,
            timestamp_ms,
            proposer,
            gas_limit: self.inner.gas_limit,
            max_tx_gas: self.inner.max_tx_gas,
        }
    }

    /// Builds and executes the block of `height` that `proposer` (this node) proposes in
    /// `round`, from what the pool holds now, and keeps it on disk durably under that round
    /// (blocking: run it off async workers).
    pub fn build_blocking(
        &self,
        height: u64,
        round: u32,
        proposer: Address,
    ) -> eyre::Result<(B256, Bytes)> {
        let tip = self.tip();
        if height != tip.height + 1 {
            eyre::bail!("asked to build block {height} on tip {}", tip.height);
        }
        let validators = self
            .validators_at(height)
            .ok_or_else(|| eyre::eyre!("no validator set known for height {height}"))?;
        let view = self.inner.store.view()?;
        let selected = self
            .lock_pool()
            .select(self.inner.settings.max_block_txs, self.inner.gas_limit);
        let (txs, senders): (Vec<_>, Vec<_>) = selected.into_iter().unzip();
        let timestamp_ms = self.inner.settings.clock.now_ms().max(tip.timestamp_ms + 1);
        let env = self.env_for(height, timestamp_ms, proposer);
        let executed = match execute_block(&view, &env, txs.clone(), senders, Mode::Build) {
            Ok(executed) => executed,
            Err(e) if !txs.is_empty() => {
                // A bug, not a transaction's fault (those are left out one by one): propose
                // a block without transactions rather than nothing, so the chain goes on;
                // the pool keeps them for a later proposer.
                let failures = 1 + self
                    .inner
                    .build_failures
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                tracing::error!(
                    height,
                    txs = txs.len(),
                    error = %e,
                    failures,
                    "block building failed; proposing an empty block instead"
                );
                execute_block(&view, &env, Vec::new(), Vec::new(), Mode::Build)?
            }
            Err(e) => return Err(e.into()),
        };
        if !executed.rejected.is_empty() {
            let mut pool = self.lock_pool();
            for (hash, reason) in &executed.rejected {
                debug!(%hash, %reason, "dropping transaction that cannot execute");
                pool.remove(hash);
            }
        }
        let block = Block {
            header: Header {
                chain_id: self.inner.chain_id,
                height,
                parent_hash: tip.hash,
                timestamp_ms,
                proposer,
                transactions_root: Block::compute_transactions_root(&executed.transactions),
                receipts_root: executed.receipts_root,
                state_root: executed.state_root,
                logs_bloom: executed.logs_bloom,
                gas_limit: self.inner.gas_limit,
                gas_used: executed.gas_used,
                validators_hash: validators.hash(),
            },
            transactions: executed.transactions.clone(),
        };
        #[cfg(feature = "fault-injection")]
        let block = self.maybe_corrupt(block);
        let hash = block.hash();
        let encoded = Bytes::from(block.encode_to_vec());
        debug!(height, round, txs = block.transactions.len(), %hash, "built block");
        // Durable before consensus signs a proposal for it: a restarted proposer must find it
        // rather than build a second block for the round.
        self.inner
            .store
            .save_built(Height(height), round, &hash, &encoded)?;
        self.remember(hash, block, executed);
        Ok((hash, encoded))
    }

    fn pending_block(&self, hash: &B256) -> Option<Arc<PendingBlock>> {
        self.inner.pending.lock().get(hash).cloned()
    }

    fn remember(&self, hash: B256, block: Block, executed: ExecutedBlock) {
        self.inner
            .pending
            .lock()
            .insert(hash, Arc::new(PendingBlock { block, executed }));
    }

    /// Decodes, checks and executes a received block of `height` (blocking).
    pub fn verify_blocking(&self, height: u64, bytes: Bytes) -> Result<B256, VerifyError> {
        let block =
            Block::decode_bytes(&bytes).map_err(|e| VerifyError::Undecodable(e.to_string()))?;
        let hash = block.hash();
        if self.pending_block(&hash).is_some() {
            return Ok(hash);
        }
        let invalid = |reason: String| VerifyError::Invalid { hash, reason };
        let tip = self.tip();
        let h = &block.header;
        if h.chain_id != self.inner.chain_id {
            return Err(invalid(format!(
                "chain id {} instead of {}",
                h.chain_id, self.inner.chain_id
            )));
        }
        if h.height != height || height != tip.height + 1 {
            return Err(invalid(format!(
                "height {} does not follow tip {}",
                h.height, tip.height
            )));
        }
        if h.parent_hash != tip.hash {
            return Err(invalid(
                "parent hash does not match the committed tip".into(),
            ));
        }
        let validators = self
            .validators_at(height)
            .ok_or_else(|| invalid(format!("no validator set known for height {height}")))?;
        if validators
            .get(&trellis_consensus::ValidatorAddress(h.proposer))
            .is_none()
        {
            return Err(invalid(format!(
                "block builder {} is not a validator",
                h.proposer
            )));
        }
        if h.timestamp_ms <= tip.timestamp_ms
            || h.timestamp_ms > self.inner.settings.clock.now_ms() + MAX_CLOCK_DRIFT_MS
        {
            return Err(invalid(format!(
                "timestamp {} out of range",
                h.timestamp_ms
            )));
        }
        if h.gas_limit != self.inner.gas_limit {
            return Err(invalid("gas limit differs from the chain's".into()));
        }
        if h.validators_hash != validators.hash() {
            return Err(invalid("validator-set hash mismatch".into()));
        }
        if !block.body_matches_header() {
            return Err(invalid("transactions root mismatch".into()));
        }
        for tx in &block.transactions {
            if tx.chain_id() != Some(self.inner.chain_id) {
                return Err(invalid(format!(
                    "transaction {} has a foreign chain id",
                    tx.tx_hash()
                )));
            }
        }
        // Transactions already in our pool had their signature checked at admission.
        let known: Vec<Option<Address>> = {
            let pool = self.lock_pool();
            block
                .transactions
                .iter()
                .map(|tx| pool.sender_of(tx.tx_hash()))
                .collect()
        };
        let senders = trellis_crypto::recover_unknown_senders(&block.transactions, &known)
            .into_iter()
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| invalid(format!("bad transaction signature: {e}")))?;
        let view = self
            .inner
            .store
            .view()
            .map_err(|e| VerifyError::Unavailable(format!("state unavailable: {e}")))?;
        let env = self.env_for(height, h.timestamp_ms, h.proposer);
        let executed = execute_block(
            &view,
            &env,
            block.transactions.clone(),
            senders,
            Mode::Verify,
        )
        .map_err(|e| invalid(e.to_string()))?;
        if executed.state_root != h.state_root {
            return Err(invalid("state root mismatch".into()));
        }
        if executed.receipts_root != h.receipts_root {
            return Err(invalid("receipts root mismatch".into()));
        }
        if executed.gas_used != h.gas_used || executed.logs_bloom != h.logs_bloom {
            return Err(invalid("gas used or logs bloom mismatch".into()));
        }
        self.keep_proposal(height, &hash, &bytes);
        self.remember(hash, block, executed);
        Ok(hash)
    }

    fn keep_proposal(&self, height: u64, hash: &B256, bytes: &[u8]) {
        if let Err(e) = self.inner.store.save_proposal(Height(height), hash, bytes) {
            debug!(height, %hash, error = %e, "could not keep proposal on disk");
        }
    }

    /// The encoded block of `height` with `hash` this node built or verified and kept on
    /// disk (blocking), for re-proposing a value its consensus log remembers after a restart.
    pub fn kept_proposal(&self, height: u64, hash: B256) -> Option<Bytes> {
        match self.kept_block(height, hash) {
            Ok(kept) => kept,
            Err(e) => {
                debug!(height, %hash, error = %e, "could not read kept proposals");
                None
            }
        }
    }

    /// The proposal kept on disk for `height` under `hash` (read by its key), if its bytes
    /// are that block.
    fn kept_block(&self, height: u64, hash: B256) -> Result<Option<Bytes>, StoreError> {
        Ok(self
            .inner
            .store
            .proposal(Height(height), &hash)?
            .filter(|bytes| Block::decode_bytes(bytes).is_ok_and(|b| b.hash() == hash))
            .map(Bytes::from))
    }

    /// The block this node built for `round` of `height`, kept on disk (blocking).
    pub fn built_proposal(&self, height: u64, round: u32) -> Option<(B256, Bytes)> {
        match self.inner.store.built(Height(height), round) {
            Ok(built) => built.map(|(hash, bytes)| (hash, Bytes::from(bytes))),
            Err(e) => {
                warn!(height, round, error = %e, "could not read the block built for the round");
                None
            }
        }
    }

    /// A decided block not in memory (e.g. after a restart): re-check it from disk.
    fn reload_proposal(&self, height: u64, hash: B256) -> eyre::Result<()> {
        let Some(bytes) = self.kept_block(height, hash)? else {
            eyre::bail!("decided block {hash} was never built or verified here");
        };
        self.verify_blocking(height, bytes)
            .map_err(|e| eyre::eyre!("kept proposal {hash} no longer verifies: {e}"))?;
        info!(height, %hash, "reloaded decided block from disk");
        Ok(())
    }

    /// Commits a block built or verified earlier, with its certificate (blocking).
    pub fn commit_blocking(
        &self,
        height: u64,
        hash: B256,
        certificate: Vec<u8>,
    ) -> eyre::Result<()> {
        let tip = self.tip();
        if height <= tip.height {
            // Replayed decision after a restart: fine if it is the block we already have.
            let view = self.inner.store.view()?;
            return match view.block(Height(height))? {
                Some(b) if b.hash() == hash => Ok(()),
                _ => Err(eyre::eyre!(
                    "decided block {hash} conflicts with committed block {height}"
                )),
            };
        }
        let pending = match self.pending_block(&hash) {
            Some(p) => p,
            None => {
                self.reload_proposal(height, hash)?;
                self.pending_block(&hash)
                    .ok_or_else(|| eyre::eyre!("decided block {hash} vanished after reloading"))?
            }
        };
        if pending.block.header.height != height {
            eyre::bail!(
                "decided block {hash} is for height {}, not {height}",
                pending.block.header.height
            );
        }
        let started = Instant::now();
        self.inner.store.commit_block(BlockCommit {
            block: &pending.block,
            certificate: &certificate,
            receipts: &pending.executed.receipts,
            senders: &pending.executed.senders,
            reverts: &pending.executed.reverts,
            changes: &pending.executed.changes,
        })?;
        self.record_commit(
            &pending.block,
            tip.timestamp_ms,
            &certificate,
            started.elapsed(),
        );
        // Registered nodes and validators change only through the proposals applied at the
        // end of a block: follow what they changed instead of re-reading the registries.
        let effects = &pending.executed.governance;
        self.inner.peers.update(
            effects.nodes_added.iter().map(|k| k.0),
            effects.nodes_removed.iter().map(|k| k.0),
        );
        let next_set = if effects.validators_changed {
            validators_in_state(&self.inner.store.view()?)?
        } else {
            self.next_validators()
        };
        {
            let mut sets = self.inner.validator_sets.write();
            if sets.values().next_back().map(|s| s.hash()) != Some(next_set.hash()) {
                info!(
                    height = height + 1,
                    validators = next_set.len(),
                    "validator set changes"
                );
            }
            sets.insert(height + 1, next_set);
            sets.retain(|h, _| h + KEPT_VALIDATOR_SETS > height);
        }
        *self.inner.tip.write() = Tip {
            height,
            hash,
            timestamp_ms: pending.block.header.timestamp_ms,
        };
        {
            let mut pool = self.lock_pool();
            for sender in &pending.executed.senders {
                if let Some(Some(acc)) = pending.executed.changes.accounts.get(sender) {
                    pool.prune_sender(sender, acc.nonce);
                }
            }
        }
        self.inner
            .pending
            .lock()
            .retain(|_, p| p.block.header.height > height);
        info!(height, %hash, txs = pending.block.transactions.len(), "committed block");
        self.inner.committed.send_replace(height);
        Ok(())
    }

    /// Metrics of a block just committed on `parent_timestamp_ms`'s block: what it holds,
    /// when, and whose precommits its certificate lacks.
    fn record_commit(
        &self,
        block: &Block,
        parent_timestamp_ms: u64,
        certificate: &[u8],
        took: Duration,
    ) {
        let height = block.header.height;
        self.inner.last_commit_ms.store(
            self.inner.settings.clock.now_ms(),
            std::sync::atomic::Ordering::Relaxed,
        );
        let (round, signers) = match trellis_consensus::decode_certificate(certificate) {
            Ok(cert) => (
                cert.round.as_u32().unwrap_or(0),
                cert.commit_signatures
                    .iter()
                    .map(|s| s.address.to_string())
                    .collect::<Vec<_>>(),
            ),
            Err(e) => {
                warn!(height, error = %e, "committed a certificate its metrics cannot read");
                (0, Vec::new())
            }
        };
        let validators: Vec<(String, u64)> = self
            .validators_at(height)
            .map(|set| {
                set.iter()
                    .map(|v| (v.address.to_string(), v.voting_power))
                    .collect()
            })
            .unwrap_or_default();
        self.inner.metrics.chain.committed(
            trellis_metrics::CommittedBlock {
                height,
                timestamp_ms: block.header.timestamp_ms,
                parent_timestamp_ms: (height > 1).then_some(parent_timestamp_ms),
                now_ms: self.inner.settings.clock.now_ms(),
                transactions: block.transactions.len(),
                round,
                commit_seconds: took.as_secs_f64(),
            },
            &validators,
            &signers,
        );
    }

    /// The commit certificate of `height` as JSON.
    pub fn certificate_json(&self, height: u64) -> Option<serde_json::Value> {
        let bytes = self
            .inner
            .store
            .view()
            .ok()?
            .certificate(Height(height))
            .ok()??;
        let cert = trellis_consensus::decode_certificate(&bytes).ok()?;
        Some(serde_json::json!({
            "height": cert.height.0,
            "round": cert.round.as_i64(),
            "blockHash": cert.value_id.0,
            "signatures": cert.commit_signatures.iter().map(|s| serde_json::json!({
                "validator": s.address.0,
                "signature": AlloyBytes::copy_from_slice(&s.signature.to_bytes()),
            })).collect::<Vec<_>>(),
        }))
    }
}

#[async_trait::async_trait]
impl Application for Chain {
    fn committed_height(&self) -> u64 {
        self.height()
    }

    fn validator_set(&self, height: u64) -> Option<ValidatorSet> {
        self.validators_at(height)
    }

    async fn build_block(
        &self,
        height: u64,
        round: u32,
        proposer: Address,
        deadline: Instant,
    ) -> eyre::Result<(B256, Bytes)> {
        // Only transactions a block can take now end the wait: one behind a nonce gap would
        // otherwise have every proposer build empty blocks as fast as consensus allows.
        let wait_until = deadline.min(Instant::now() + self.inner.settings.empty_block_interval);
        while !self.lock_pool().has_ready() {
            let now = Instant::now();
            if now >= wait_until {
                break;
            }
            let _ = tokio::time::timeout(wait_until - now, self.inner.tx_arrived.notified()).await;
        }
        let chain = self.clone();
        trellis_storage::blocking(move || chain.build_blocking(height, round, proposer)).await?
    }

    async fn built_block(&self, height: u64, round: u32) -> Option<(B256, Bytes)> {
        let chain = self.clone();
        trellis_storage::blocking(move || chain.built_proposal(height, round))
            .await
            .ok()
            .flatten()
    }

    async fn verify_block(&self, height: u64, block: Bytes) -> Result<B256, VerifyError> {
        let chain = self.clone();
        trellis_storage::blocking(move || chain.verify_blocking(height, block))
            .await
            .map_err(|e| VerifyError::Unavailable(e.to_string()))?
    }

    async fn commit_block(
        &self,
        height: u64,
        hash: B256,
        certificate: Vec<u8>,
    ) -> eyre::Result<()> {
        let chain = self.clone();
        trellis_storage::blocking(move || chain.commit_blocking(height, hash, certificate)).await?
    }

    fn decided_block(&self, height: u64) -> Option<(Bytes, Vec<u8>)> {
        self.decided(height)
    }

    async fn kept_block(&self, height: u64, hash: B256) -> Option<Bytes> {
        let chain = self.clone();
        trellis_storage::blocking(move || chain.kept_proposal(height, hash))
            .await
            .ok()
            .flatten()
    }
}

#[async_trait::async_trait]
impl trellis_rpc::Backend for Chain {
    fn chain_id(&self) -> u64 {
        self.inner.chain_id
    }

    fn view(&self) -> Result<StateView, StoreError> {
        self.inner.store.view()
    }

    async fn submit_raw(&self, raw: Vec<u8>) -> Result<B256, AdmissionError> {
        self.admit(raw).await
    }

    fn pending_nonce(&self, address: Address, state_nonce: u64) -> u64 {
        Chain::pending_nonce(self, address, state_nonce)
    }

    fn certificate_json(&self, height: u64) -> Option<serde_json::Value> {
        Chain::certificate_json(self, height)
    }

    fn subscribe_heights(&self) -> watch::Receiver<u64> {
        self.subscribe_committed()
    }

    fn validators(&self) -> Vec<trellis_rpc::ValidatorInfo> {
        self.validators_at(self.height() + 1)
            .map(|set| {
                set.iter()
                    .map(|v| trellis_rpc::ValidatorInfo {
                        public_key: B256::from(*v.public_key.as_bytes()),
                        address: v.address.0.to_string(),
                        power: v.voting_power,
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    fn health(&self) -> trellis_rpc::Health {
        let (height, timestamp_ms) = {
            let tip = self.inner.tip.read();
            (tip.height, tip.timestamp_ms)
        };
        let now = self.inner.settings.clock.now_ms();
        let last_commit = self
            .inner
            .last_commit_ms
            .load(std::sync::atomic::Ordering::Relaxed);
        trellis_rpc::Health {
            height,
            block_age_ms: now.saturating_sub(timestamp_ms),
            since_commit_ms: (last_commit != 0).then(|| now.saturating_sub(last_commit)),
            peers: self.inner.gossip.get().map(|g| g.peers()),
            validators: self
                .validators_at(height + 1)
                .map_or(0, |set| set.iter().count()),
        }
    }

    fn node_info(&self) -> serde_json::Value {
        let (moniker, key) = self.inner.identity.get().cloned().unwrap_or_default();
        let address = trellis_crypto::parse_public_key(key.0)
            .map(|k| trellis_consensus::ValidatorAddress::from_public_key(&k).0)
            .ok();
        let next = self.next_validators();
        let validating = address
            .map(|a| next.get(&trellis_consensus::ValidatorAddress(a)).is_some())
            .unwrap_or(false);
        serde_json::json!({
            "moniker": moniker,
            "chainId": self.inner.chain_id,
            "nodePublicKey": key,
            "validatorAddress": address,
            "height": self.height(),
            "validatesNextHeight": validating,
            "validators": next.len(),
            "pooledTransactions": self.pool_len(),
            "blockBuildFailures": self.build_failures(),
        })
    }

    fn max_transaction_gas(&self) -> u64 {
        self.inner.max_tx_gas
    }

    fn drop_transaction(&self, hash: &B256) -> bool {
        self.lock_pool().remove(hash)
    }
}
