//! The two faces of a chain instance: the consensus engine's [`Application`] and the RPC
//! server's [`trellis_rpc::Backend`]. Thin: each call goes to the chain's own methods, blocking
//! work moved off the async workers.

use alloy_primitives::{Address, B256};
use bytes::Bytes;
use std::time::Instant;
use tokio::sync::watch;
use trellis_consensus::{Application, ValidatorSet, VerifyError};
use trellis_mempool::AdmissionError;
use trellis_storage::{StateView, StoreError};

use super::{Chain, ChainError};

#[async_trait::async_trait]
impl Application for Chain {
    type Error = ChainError;

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
    ) -> Result<(B256, Bytes), ChainError> {
        // Only transactions a block can take now end the wait: one behind a nonce gap would
        // otherwise have every proposer build empty blocks as fast as consensus allows.
        let wait_until = deadline.min(Instant::now() + self.inner.settings.empty_block_interval);
        self.inner.admission.wait_for_ready(wait_until).await;
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
    ) -> Result<(), ChainError> {
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

    fn certificate(&self, height: u64) -> Option<trellis_rpc::api::CommitCertificate> {
        Chain::certificate(self, height)
    }

    fn subscribe_heights(&self) -> watch::Receiver<u64> {
        self.subscribe_committed()
    }

    fn validators(&self) -> Vec<trellis_rpc::ValidatorInfo> {
        trellis_rpc::Backend::validators_at(self, self.height() + 1).unwrap_or_default()
    }

    fn validators_at(&self, height: u64) -> Option<Vec<trellis_rpc::ValidatorInfo>> {
        Chain::validators_at(self, height).map(|set| {
            set.iter()
                .map(|v| trellis_rpc::ValidatorInfo {
                    public_key: B256::from(*v.public_key.as_bytes()),
                    address: v.address.0.to_string(),
                    power: v.voting_power,
                })
                .collect()
        })
    }

    fn health(&self) -> trellis_rpc::Health {
        let tip = self.inner.state.read().tip();
        let (height, timestamp_ms) = (tip.height, tip.timestamp_ms);
        let now = self.inner.settings.clock.now_ms();
        let last_commit = self
            .inner
            .last_commit_ms
            .load(std::sync::atomic::Ordering::Relaxed);
        trellis_rpc::Health {
            height,
            block_age_ms: now.saturating_sub(timestamp_ms),
            since_commit_ms: (last_commit != 0).then(|| now.saturating_sub(last_commit)),
            peers: self.inner.admission.gossip_peers(),
            validators: self
                .validators_at(height + 1)
                .map_or(0, |set| set.iter().count()),
        }
    }

    fn node_info(&self) -> trellis_rpc::api::NodeInfo {
        let (moniker, key) = self.inner.identity.get().cloned().unwrap_or_default();
        let address = trellis_crypto::parse_public_key(key.0)
            .map(|k| trellis_consensus::ValidatorAddress::from_public_key(&k).0)
            .ok();
        let next = self.next_validators();
        let validating = address
            .map(|a| next.get(&trellis_consensus::ValidatorAddress(a)).is_some())
            .unwrap_or(false);
        trellis_rpc::api::NodeInfo {
            moniker,
            chain_id: self.inner.chain_id,
            node_public_key: key,
            validator_address: address,
            height: self.height(),
            validates_next_height: validating,
            validators: next.len() as u64,
            pooled_transactions: self.pool_len() as u64,
            block_build_failures: self.build_failures(),
        }
    }

    fn max_transaction_gas(&self) -> u64 {
        self.inner.builder.max_tx_gas
    }

    fn drop_transaction(&self, hash: &B256) -> bool {
        self.lock_pool().remove(hash)
    }

    fn subchain_genesis(
        &self,
        chain_id: u64,
    ) -> Result<Option<trellis_rpc::api::SubchainGenesis>, String> {
        Chain::subchain_genesis(self, chain_id).map_err(|e| e.to_string())
    }
}
