//! One chain instance: admission into the pool, block building and checking for consensus,
//! atomic commits, and the read side the RPC server uses.
//!
//! - [`admission`]: the pool and what decides what enters it;
//! - [`state`]: the committed tip and the validator sets per height, one synchronous value;
//! - [`verify`]: the checks a received block passes before it is executed;
//! - [`builder`]: building a proposal over execution, and re-executing a received block
//!   against its header;
//! - [`genesis`]: the height-0 block and state, and the validator sets genesis and governance
//!   name;
//! - `adapters`: the consensus [`Application`] and the RPC [`trellis_rpc::Backend`] over a
//!   [`Chain`].

mod adapters;
pub mod admission;
pub mod builder;
mod error;
pub mod genesis;
pub mod state;
pub mod subchains;
pub mod verify;

use admission::Admission;
use builder::{BlockBuilder, Built, NextBlock};
pub use error::ChainError;
pub use genesis::{genesis_block, genesis_validators, validators_in_state};
use state::{ChainState, NotNext, Tip};

use alloy_consensus::TxEnvelope;
use alloy_primitives::{Address, Bytes as AlloyBytes, B256};
use bytes::Bytes;
use parking_lot::{Mutex, RwLock};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::watch;
use tracing::{debug, info, warn};
use trellis_consensus::{PeerAllowlist, ValidatorSet, VerifyError};
use trellis_execution::{governance_slots, ExecutedBlock};
use trellis_gossip::GossipSender;
use trellis_mempool::{AdmissionError, PoolConfig};
use trellis_system::Governance;

use trellis_primitives::{Block, Genesis, Height};
use trellis_storage::{BlockCommit, StateView, Store, StoreError};

#[derive(Clone, Debug)]
pub struct ChainSettings {
    pub empty_block_interval: Duration,
    pub max_block_txs: usize,
    pub pool: PoolConfig,
    /// Where block timestamps come from: the system clock, or a simulation's.
    pub clock: Clock,
    /// Where the genesis of each sub-chain this chain's governance creates is kept
    /// ([`subchains`]); `None` keeps none (simulations, tools).
    pub subchain_dir: Option<std::path::PathBuf>,
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

struct PendingBlock {
    block: Block,
    executed: ExecutedBlock,
}

struct Inner {
    chain_id: u64,
    /// Builds and re-executes blocks with the chain's constants.
    builder: BlockBuilder,
    store: Store,
    settings: ChainSettings,
    /// The pool and what decides what enters it.
    admission: Arc<Admission>,
    pending: Mutex<HashMap<B256, Arc<PendingBlock>>>,
    /// The tip and the validator sets, changed together by each commit.
    state: RwLock<ChainState>,
    committed: watch::Sender<u64>,
    /// Set once the chain's host stopped it (its engine, RPC and tasks).
    stopped: watch::Sender<bool>,
    /// Times this node failed to build the block it was asked to propose (each time it
    /// proposed an empty block instead); operators alert on it.
    build_failures: std::sync::atomic::AtomicU64,
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

impl Chain {
    /// Opens the chain on `store`, writing genesis state first if the store is new.
    pub fn open(
        store: Store,
        genesis: &Genesis,
        settings: ChainSettings,
    ) -> Result<Chain, ChainError> {
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
                return Err(ChainError::RebuiltRoot {
                    rebuilt: root,
                    expected,
                });
            }
            info!(%root, "stored the state tries of an older data directory");
        }
        let stored0 = view.block(Height(0))?.ok_or(ChainError::NoGenesis)?;
        if stored0.hash() != block0.hash() {
            return Err(ChainError::ForeignGenesis {
                stored: stored0.hash(),
                given: block0.hash(),
            });
        }
        let height = view.tip()?.map(|h| h.0).unwrap_or(0);
        let tip_block = view
            .block(Height(height))?
            .ok_or(ChainError::MissingTip(height))?;
        let tip = Tip::of(&tip_block);
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
                builder: BlockBuilder {
                    chain_id: genesis.chain_id.0,
                    gas_limit: genesis.gas_limit,
                    max_tx_gas: genesis.max_transaction_gas,
                },
                admission: Arc::new(Admission::new(
                    genesis.chain_id.0,
                    genesis.max_transaction_gas,
                    store.clone(),
                    settings.pool.clone(),
                    metrics.clone(),
                )),
                store,
                settings,
                pending: Mutex::new(HashMap::new()),
                state: RwLock::new(ChainState::new(tip, next_set)),
                committed,
                stopped: watch::channel(false).0,
                build_failures: Default::default(),
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
    fn load_peers(&self, view: &StateView) -> Result<(), ChainError> {
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
            block.header.state_root = alloy_primitives::keccak256(block.header.state_root);
        }
        block
    }

    /// Records who runs this chain instance (shown to the operator by `admin_nodeInfo`).
    pub fn set_identity(&self, moniker: String, node_key: B256) {
        let _ = self.inner.identity.set((moniker, node_key));
    }

    /// The validator set deciding `height`, if this node knows it (recent and next heights).
    pub fn validators_at(&self, height: u64) -> Option<ValidatorSet> {
        self.inner.state.read().validators_at(height).cloned()
    }

    /// The validator set deciding the next height.
    pub fn next_validators(&self) -> ValidatorSet {
        self.inner.state.read().next_validators().clone()
    }

    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    pub fn height(&self) -> u64 {
        self.tip().height
    }

    fn tip(&self) -> Tip {
        self.inner.state.read().tip()
    }

    /// Follows the committed height.
    /// Records that the chain's engine, RPC and tasks were stopped, for whoever still holds
    /// it (a progress display, say) to let go of it.
    pub fn mark_stopped(&self) {
        self.inner.stopped.send_replace(true);
    }

    /// Resolves once the chain was stopped.
    pub async fn stopped(&self) {
        let mut stopped = self.inner.stopped.subscribe();
        let _ = stopped.wait_for(|s| *s).await;
    }

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
        self.inner.admission.set_gossip(sender)
    }

    fn lock_pool(&self) -> parking_lot::MutexGuard<'_, trellis_mempool::Mempool> {
        self.inner.admission.pool()
    }

    /// Admission of one raw transaction on the calling thread with the sender recovered by
    /// `recover` (see [`Admission::admit_blocking`]).
    pub fn admit_blocking(
        &self,
        raw: &[u8],
        recover: impl FnOnce(&TxEnvelope) -> Result<Address, trellis_crypto::RecoveryError>,
    ) -> Result<B256, AdmissionError> {
        self.inner.admission.admit_blocking(raw, recover)
    }

    /// Full admission of one raw transaction from a client (see [`Admission::admit`]).
    pub async fn admit(&self, raw: Vec<u8>) -> Result<B256, AdmissionError> {
        self.inner.admission.admit(raw).await
    }

    /// Admits a batch gossiped by a peer (see [`Admission::admit_gossip`]).
    pub async fn admit_gossip(&self, raws: Vec<Vec<u8>>) -> usize {
        self.inner.admission.admit_gossip(raws).await
    }

    pub fn pending_nonce(&self, address: Address, state_nonce: u64) -> u64 {
        self.lock_pool().pending_nonce(&address, state_nonce)
    }

    /// Evicts pool entries past their TTL.
    pub fn evict_stale(&self) -> usize {
        self.lock_pool().evict_stale(Instant::now())
    }

    /// Builds and executes the block of `height` that `proposer` (this node) proposes in
    /// `round`, from what the pool holds now, and keeps it on disk durably under that round
    /// (blocking: run it off async workers).
    pub fn build_blocking(
        &self,
        height: u64,
        round: u32,
        proposer: Address,
    ) -> Result<(B256, Bytes), ChainError> {
        let tip = self.tip();
        if height != tip.height + 1 {
            return Err(NotNext {
                tip: tip.height,
                got: height,
            }
            .into());
        }
        let validators = self
            .validators_at(height)
            .ok_or(ChainError::UnknownValidators(height))?;
        let view = self.inner.store.view()?;
        let selected = self.lock_pool().select(
            self.inner.settings.max_block_txs,
            self.inner.builder.gas_limit,
        );
        let (txs, senders): (Vec<_>, Vec<_>) = selected.into_iter().unzip();
        let picked = txs.len();
        let next = NextBlock {
            parent: tip,
            timestamp_ms: self.inner.settings.clock.now_ms().max(tip.timestamp_ms + 1),
            proposer,
            validators_hash: validators.hash(),
        };
        let Built {
            block,
            executed,
            fell_back,
        } = self.inner.builder.build(&view, &next, txs, senders)?;
        if let Some(e) = fell_back {
            // The pool keeps the transactions for a later proposer.
            let failures = 1 + self
                .inner
                .build_failures
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            tracing::error!(
                height,
                txs = picked,
                error = %e,
                failures,
                "block building failed; proposing an empty block instead"
            );
        }
        if !executed.rejected.is_empty() {
            let mut pool = self.lock_pool();
            for (hash, reason) in &executed.rejected {
                debug!(%hash, %reason, "dropping transaction that cannot execute");
                pool.remove(hash);
            }
        }
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
        // The tip and its validator sets from one reading of the state.
        let (tip, validators) = {
            let state = self.inner.state.read();
            (state.tip(), state.validators_at(height).cloned())
        };
        verify::check_block(
            &block,
            &verify::Expected {
                chain_id: self.inner.chain_id,
                gas_limit: self.inner.builder.gas_limit,
                height,
                tip,
                validators: validators.as_ref(),
                now_ms: self.inner.settings.clock.now_ms(),
            },
        )
        .map_err(invalid)?;
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
        let executed = self
            .inner
            .builder
            .reexecute(&view, &block, senders)
            .map_err(invalid)?;
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
    fn reload_proposal(&self, height: u64, hash: B256) -> Result<(), ChainError> {
        let Some(bytes) = self.kept_block(height, hash)? else {
            return Err(ChainError::NeverSeen(hash));
        };
        self.verify_blocking(height, bytes)
            .map_err(|source| ChainError::KeptInvalid { hash, source })?;
        info!(height, %hash, "reloaded decided block from disk");
        Ok(())
    }

    /// Commits a block built or verified earlier, with its certificate (blocking).
    pub fn commit_blocking(
        &self,
        height: u64,
        hash: B256,
        certificate: Vec<u8>,
    ) -> Result<(), ChainError> {
        let tip = self.tip();
        if height <= tip.height {
            // Replayed decision after a restart: fine if it is the block we already have.
            let view = self.inner.store.view()?;
            return match view.block(Height(height))? {
                Some(b) if b.hash() == hash => Ok(()),
                _ => Err(ChainError::Conflict { hash, height }),
            };
        }
        let pending = match self.pending_block(&hash) {
            Some(p) => p,
            None => {
                self.reload_proposal(height, hash)?;
                self.pending_block(&hash)
                    .ok_or(ChainError::Vanished(hash))?
            }
        };
        if pending.block.header.height != height {
            return Err(ChainError::WrongHeight {
                hash,
                block_height: pending.block.header.height,
                height,
            });
        }
        if height != tip.height + 1 {
            return Err(NotNext {
                tip: tip.height,
                got: height,
            }
            .into());
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
        if !effects.subchains_created.is_empty() {
            self.keep_subchain_geneses(&pending.block, &effects.subchains_created);
        }
        self.inner.peers.update(
            effects.nodes_added.iter().map(|k| k.0),
            effects.nodes_removed.iter().map(|k| k.0),
        );
        let next_set = if effects.validators_changed {
            validators_in_state(&self.inner.store.view()?)?
        } else {
            self.next_validators()
        };
        let validators = next_set.len();
        let new_tip = Tip::of(&pending.block);
        // Cannot fail: the height was checked against the tip above, and commits of one
        // chain run one at a time (the engine decides heights in order).
        let changed = self.inner.state.write().advance(new_tip, next_set)?;
        if changed {
            info!(height = height + 1, validators, "validator set changes");
        }
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

    /// Derives and keeps the genesis of the sub-chains `block` created, from the state just
    /// committed: the snapshot is taken here, before any later block can be committed
    /// (commits run one at a time), and the derivation and its proofs run on a blocking
    /// thread of their own, off the commit path. A failure is this node's to report, never
    /// the block's: the operator can fetch the file from another node and check it
    /// (`trellis chain genesis`).
    fn keep_subchain_geneses(&self, block: &Block, created: &[u64]) {
        let Some(dir) = self.inner.settings.subchain_dir.clone() else {
            return;
        };
        let view = match self.inner.store.view() {
            Ok(v) => v,
            Err(e) => {
                warn!(error = %e, "cannot read the state sub-chains are derived from");
                return;
            }
        };
        let header = block.header.clone();
        let created = created.to_vec();
        let derive = move || {
            for sub in created {
                match subchains::derive(&view, &header, sub)
                    .and_then(|derived| subchains::save(&dir, &derived).map(|()| derived))
                {
                    Ok(derived) => info!(
                        sub_chain = sub,
                        genesis = %derived.genesis_hash,
                        height = header.height,
                        "sub-chain created: genesis derived and kept"
                    ),
                    Err(e) => tracing::error!(
                        sub_chain = sub,
                        height = header.height,
                        error = %e,
                        "sub-chain created, but its genesis could not be derived or kept here"
                    ),
                }
            }
        };
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => drop(runtime.spawn_blocking(derive)),
            Err(_) => derive(),
        }
    }

    /// The genesis of sub-chain `sub` this node derived, if it keeps it.
    pub fn subchain_genesis(
        &self,
        sub: u64,
    ) -> Result<Option<trellis_rpc::api::SubchainGenesis>, subchains::SubchainGenesisError> {
        match &self.inner.settings.subchain_dir {
            Some(dir) => subchains::load(dir, sub),
            None => Ok(None),
        }
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

    /// The commit certificate of `height`, if committed and readable.
    pub fn certificate(&self, height: u64) -> Option<trellis_rpc::api::CommitCertificate> {
        let bytes = self
            .inner
            .store
            .view()
            .ok()?
            .certificate(Height(height))
            .ok()??;
        let cert = trellis_consensus::decode_certificate(&bytes).ok()?;
        Some(trellis_rpc::api::CommitCertificate {
            height: cert.height.0,
            round: cert.round.as_i64(),
            block_hash: cert.value_id.0,
            signatures: cert
                .commit_signatures
                .iter()
                .map(|s| trellis_rpc::api::CommitSignature {
                    validator: s.address.0,
                    signature: AlloyBytes::copy_from_slice(&s.signature.to_bytes()),
                })
                .collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use trellis_storage::MemoryDisk;

    fn genesis(chain_id: u64) -> Genesis {
        let key = ed25519_consensus::SigningKey::from([7; 32]);
        let key = B256::from(key.verification_key().to_bytes());
        Genesis::from_json(&format!(
            r#"{{"chainId": {chain_id},
                "validators": [{{"publicKey": "{key}", "power": 1, "org": "org1"}}],
                "governance": {{"organizations": [{{"id": "org1", "admins": ["0x0000000000000000000000000000000000000001"]}}]}}}}"#
        ))
        .expect("genesis")
    }

    fn settings() -> ChainSettings {
        ChainSettings {
            empty_block_interval: Duration::from_secs(1),
            max_block_txs: 10,
            pool: Default::default(),
            clock: Clock::from_fn(|| 1_000),
            subchain_dir: None,
        }
    }

    #[tokio::test]
    async fn a_data_directory_of_another_chain_is_refused_with_both_genesis_hashes() {
        let disk = MemoryDisk::default();
        let store = Store::open_on(&disk).expect("store");
        let chain = Chain::open(store, &genesis(1), settings()).expect("opens");
        assert_eq!(chain.height(), 0);
        assert_eq!(chain.next_validators().len(), 1);
        drop(chain);

        // The same genesis opens the same store again.
        let store = Store::open_on(&disk).expect("store");
        drop(Chain::open(store, &genesis(1), settings()).expect("reopens"));

        let store = Store::open_on(&disk).expect("store");
        let (_, ours) = genesis_block(&genesis(2)).expect("genesis block");
        match Chain::open(store, &genesis(2), settings()) {
            Err(ChainError::ForeignGenesis { stored, given }) => {
                assert_eq!(given, ours.hash());
                assert_ne!(stored, given);
            }
            other => panic!("expected a foreign genesis, got {:?}", other.err()),
        }
    }

    #[tokio::test]
    async fn building_or_committing_off_the_tip_is_refused_with_a_typed_error() {
        let store = Store::open_on(&MemoryDisk::default()).expect("store");
        let chain = Chain::open(store, &genesis(1), settings()).expect("opens");
        let refused = chain.build_blocking(5, 0, Address::ZERO);
        assert!(matches!(
            refused,
            Err(ChainError::NotNext(NotNext { tip: 0, got: 5 }))
        ));
        let unknown = chain.commit_blocking(1, B256::repeat_byte(1), Vec::new());
        assert!(
            matches!(unknown, Err(ChainError::NeverSeen(h)) if h == B256::repeat_byte(1)),
            "{unknown:?}"
        );
        assert_eq!(chain.height(), 0, "nothing committed");
    }

    #[tokio::test]
    async fn a_built_block_commits_and_moves_the_tip_and_the_sets_together() {
        let store = Store::open_on(&MemoryDisk::default()).expect("store");
        let chain = Chain::open(store, &genesis(1), settings()).expect("opens");
        let mut heights = chain.subscribe_committed();
        let (hash, bytes) = chain
            .build_blocking(1, 0, Address::ZERO)
            .expect("builds on the tip");
        // The block is kept for its round before consensus could sign a proposal of it.
        assert_eq!(chain.built_proposal(1, 0), Some((hash, bytes.clone())));
        // Its own block verifies (already known, so without executing again).
        assert_eq!(chain.verify_blocking(1, bytes).ok(), Some(hash));
        chain.commit_blocking(1, hash, Vec::new()).expect("commits");
        assert_eq!(chain.height(), 1);
        assert!(heights.has_changed().expect("sender alive"));
        assert_eq!(*heights.borrow_and_update(), 1);
        assert!(chain.validators_at(1).is_some() && chain.validators_at(2).is_some());
        // The same decision replayed after a restart is accepted; a different one is not.
        chain.commit_blocking(1, hash, Vec::new()).expect("replay");
        assert!(matches!(
            chain.commit_blocking(1, B256::repeat_byte(2), Vec::new()),
            Err(ChainError::Conflict { height: 1, .. })
        ));
    }
}
