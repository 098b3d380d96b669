//! The node's embedded database: blocks, commit certificates, receipts, indexes and state.
//!
//! Backed by redb (pure Rust, ACID, copy-on-write B-trees). A block, its certificate, its
//! receipts, its indexes and its state changes are written in one write transaction, so a
//! node killed at any moment restarts at its last fully committed block.
//!
//! Reads go through [`StateView`], a snapshot that stays consistent while a block executes.

mod account;
mod store;

pub use account::{
    trie_node_key, AccountState, StateChanges, ACCOUNT_TRIE_OWNER, EMPTY_CODE_HASH, EMPTY_ROOT,
};
pub use store::{
    AddressRole, AddressTx, BlockCommit, MemoryDisk, StateView, Store, StoreError, TxLocation,
};

/// Runs `work` — database reads, proof or trie work, anything that blocks — on tokio's
/// blocking pool, so that async workers (RPC, consensus, networking) never wait on it. Every
/// async caller that touches the store goes through this one helper. The work runs in the
/// caller's tracing span, so its logs carry the chain, height and round.
pub async fn blocking<T, F>(work: F) -> Result<T, StoreError>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    let span = tracing::Span::current();
    tokio::task::spawn_blocking(move || span.in_scope(work))
        .await
        .map_err(|e| StoreError::Worker(e.to_string()))
}
