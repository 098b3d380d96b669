//! The JSON-RPC methods.

use alloy_eips::{BlockId, BlockNumberOrTag};
use alloy_primitives::{Address, Bytes, TxKind, B256, U256, U64};
use alloy_rpc_types_eth::pubsub::SubscriptionKind;
use alloy_rpc_types_eth::{
    Block, FeeHistory, Filter, Log, Transaction, TransactionReceipt, TransactionRequest,
};
use alloy_rpc_types_eth::{EIP1186AccountProofResponse, EIP1186StorageProof};
use alloy_serde::storage::JsonStorageKey;
use jsonrpsee::types::{ErrorObjectOwned, Params};
use jsonrpsee::RpcModule;
use serde::de::DeserializeOwned;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};
use trellis_api::ChainApiServer;
use trellis_execution::{BlockEnvInput, CallOutcome, CallRequest};
use trellis_primitives::{Block as TrellisBlock, Height};
use trellis_storage::StateView;

use crate::convert;
use crate::error::RpcError;
use crate::logs::{self, Filters};
use crate::Backend;

pub(crate) type RpcResult<T> = Result<T, ErrorObjectOwned>;

/// Most storage slots one `eth_getProof` call may ask for.
pub const MAX_PROOF_KEYS: usize = 1_000;

pub const CLIENT_VERSION: &str = concat!("trellis/v", env!("CARGO_PKG_VERSION"));

/// A resolved block reference.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlockTag {
    Latest,
    Pending,
    Number(u64),
    Hash(B256),
}

impl BlockTag {
    fn from_id(id: Option<BlockId>) -> BlockTag {
        match id {
            None => BlockTag::Latest,
            Some(BlockId::Hash(h)) => BlockTag::Hash(h.block_hash),
            Some(BlockId::Number(n)) => Self::from_number(n),
        }
    }

    fn from_number(n: BlockNumberOrTag) -> BlockTag {
        match n {
            // BFT finality: latest, safe and finalized are the same block.
            BlockNumberOrTag::Latest | BlockNumberOrTag::Safe | BlockNumberOrTag::Finalized => {
                BlockTag::Latest
            }
            BlockNumberOrTag::Pending => BlockTag::Pending,
            BlockNumberOrTag::Earliest => BlockTag::Number(0),
            BlockNumberOrTag::Number(n) => BlockTag::Number(n),
        }
    }
}

pub(crate) fn param<T: DeserializeOwned>(
    params: &Params<'_>,
    index: usize,
    name: &str,
) -> Result<T, RpcError> {
    let values: Vec<serde_json::Value> = params
        .parse()
        .map_err(|e| RpcError::InvalidParams(e.message().to_string()))?;
    let value = values
        .get(index)
        .cloned()
        .ok_or_else(|| RpcError::InvalidParams(format!("missing parameter {index} ({name})")))?;
    serde_json::from_value(value).map_err(|e| RpcError::InvalidParams(format!("{name}: {e}")))
}

pub(crate) fn optional_param<T: DeserializeOwned>(
    params: &Params<'_>,
    index: usize,
    name: &str,
) -> Result<Option<T>, RpcError> {
    let values: Vec<serde_json::Value> = if params.is_object() || params.as_str().is_none() {
        Vec::new()
    } else {
        params
            .parse()
            .map_err(|e| RpcError::InvalidParams(e.message().to_string()))?
    };
    match values.get(index) {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(v) => serde_json::from_value(v.clone())
            .map(Some)
            .map_err(|e| RpcError::InvalidParams(format!("{name}: {e}"))),
    }
}

/// Height of the last committed block.
pub(crate) fn tip(view: &StateView) -> Result<u64, RpcError> {
    Ok(view.tip()?.map(|h| h.0).unwrap_or(0))
}

fn resolve_height(view: &StateView, tag: BlockTag) -> Result<Option<u64>, RpcError> {
    let tip = tip(view)?;
    Ok(match tag {
        BlockTag::Latest | BlockTag::Pending => Some(tip),
        BlockTag::Number(n) => (n <= tip).then_some(n),
        BlockTag::Hash(h) => view.height_of(&h)?.map(|h| h.0),
    })
}

/// This node keeps the latest state only; older state is reported as unavailable.
fn require_latest_state(view: &StateView, tag: BlockTag) -> Result<(), RpcError> {
    let tip = tip(view)?;
    match resolve_height(view, tag)? {
        None => Err(RpcError::Unavailable("header not found".into())),
        Some(h) if h == tip => Ok(()),
        Some(h) => Err(RpcError::Unavailable(format!(
            "state of block {h} is not retained: this node keeps the latest state (block {tip})"
        ))),
    }
}

fn load_block(
    view: &StateView,
    height: u64,
) -> Result<Option<(TrellisBlock, Vec<Address>)>, RpcError> {
    let Some(block) = view.block(Height(height))? else {
        return Ok(None);
    };
    let senders = view.senders(Height(height))?.unwrap_or_default();
    Ok(Some((block, senders)))
}

/// Heights one subscription reads per visit to the blocking pool.
const SUBSCRIPTION_HEIGHTS_PER_READ: u64 = 16;

/// The notifications of blocks `from..=to` for a `newHeads` (`filter` absent) or `logs`
/// subscription.
fn subscription_messages<B: Backend>(
    ctx: &RpcContext<B>,
    filter: Option<&Filter>,
    from: u64,
    to: u64,
) -> Result<Vec<Box<serde_json::value::RawValue>>, String> {
    let view = ctx.view().map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    for h in from..=to {
        let Some(blk) = view.block(Height(h)).map_err(|e| e.to_string())? else {
            continue;
        };
        let messages: Vec<serde_json::Value> = match filter {
            None => vec![serde_json::to_value(convert::header(&blk)).map_err(|e| e.to_string())?],
            Some(filter) => {
                if !filter.matches_bloom(blk.header.logs_bloom) {
                    continue;
                }
                let receipts = view
                    .receipts(Height(h))
                    .map_err(|e| e.to_string())?
                    .unwrap_or_default();
                convert::block_logs(&blk, &receipts)
                    .into_iter()
                    .flatten()
                    .filter(|l| filter.matches(&l.inner))
                    .map(|l| serde_json::to_value(l).map_err(|e| e.to_string()))
                    .collect::<Result<_, _>>()?
            }
        };
        for msg in messages {
            out.push(serde_json::value::to_raw_value(&msg).map_err(|e| e.to_string())?);
        }
    }
    Ok(out)
}

fn call_env(view: &StateView, chain_id: u64, max_tx_gas: u64) -> Result<BlockEnvInput, RpcError> {
    let tip = tip(view)?;
    let header = view
        .block(Height(tip))?
        .ok_or_else(|| RpcError::Internal("tip block missing".into()))?
        .header;
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    Ok(BlockEnvInput {
        chain_id,
        height: tip + 1,
        timestamp_ms: now_ms.max(header.timestamp_ms + 1),
        proposer: Address::ZERO,
        gas_limit: header.gas_limit,
        max_tx_gas: max_tx_gas.min(header.gas_limit),
    })
}

fn call_request(req: &TransactionRequest) -> CallRequest {
    CallRequest {
        from: req.from,
        to: match req.to {
            Some(TxKind::Call(a)) => Some(a),
            _ => None,
        },
        gas: req.gas,
        value: req.value,
        data: req.input.input().cloned().unwrap_or_default(),
    }
}

fn run_call(
    view: &StateView,
    env: &BlockEnvInput,
    req: &CallRequest,
) -> Result<(Bytes, u64), RpcError> {
    match trellis_execution::call(view, env, req)
        .map_err(|e| RpcError::Unavailable(e.to_string()))?
    {
        CallOutcome::Success { output, gas_used } => Ok((output, gas_used)),
        CallOutcome::Revert { output, .. } => Err(RpcError::Reverted(output)),
        CallOutcome::Halt { reason, .. } => {
            Err(RpcError::Unavailable(format!("execution halted: {reason}")))
        }
    }
}

/// Smallest gas limit with which the call succeeds, by binary search.
fn estimate_gas(view: &StateView, env: &BlockEnvInput, req: &CallRequest) -> Result<u64, RpcError> {
    let cap = req.gas.unwrap_or(env.max_tx_gas).min(env.max_tx_gas);
    let mut probe = req.clone();
    probe.gas = Some(cap);
    let (_, used) = run_call(view, env, &probe)?;
    let (mut lo, mut hi) = (used.saturating_sub(1).max(20_999), cap);
    while lo + 1 < hi {
        let mid = lo + (hi - lo) / 2;
        probe.gas = Some(mid);
        match run_call(view, env, &probe) {
            Ok(_) => hi = mid,
            Err(RpcError::Reverted(_)) | Err(RpcError::Unavailable(_)) => lo = mid,
            Err(e) => return Err(e),
        }
    }
    Ok(hi)
}

fn find_tx(
    view: &StateView,
    hash: &B256,
) -> Result<Option<(TrellisBlock, Vec<Address>, usize)>, RpcError> {
    let Some(loc) = view.tx_location(hash)? else {
        return Ok(None);
    };
    Ok(load_block(view, loc.height.0)?.map(|(b, s)| (b, s, loc.index as usize)))
}

/// What every method runs with: the chain backend plus the server's own filter registry.
pub struct RpcContext<B> {
    backend: Arc<B>,
    filters: Filters,
}

impl<B> std::ops::Deref for RpcContext<B> {
    type Target = B;

    fn deref(&self) -> &B {
        &self.backend
    }
}

/// `eth_feeHistory`: Trellis charges no base fee; gas-used ratios are real.
fn fee_history(
    view: &StateView,
    count: u64,
    newest: BlockNumberOrTag,
    percentiles: Option<Vec<f64>>,
) -> Result<FeeHistory, RpcError> {
    let tip = tip(view)?;
    let newest = match newest {
        BlockNumberOrTag::Number(n) => n.min(tip),
        BlockNumberOrTag::Earliest => 0,
        _ => tip,
    };
    let count = count.clamp(1, 1024).min(newest + 1);
    let oldest = newest + 1 - count;
    let mut gas_used_ratio = Vec::with_capacity(count as usize);
    for h in oldest..=newest {
        let header = view
            .block(Height(h))?
            .ok_or_else(|| RpcError::Unavailable(format!("block {h} missing")))?
            .header;
        gas_used_ratio.push(header.gas_used as f64 / header.gas_limit.max(1) as f64);
    }
    Ok(FeeHistory {
        base_fee_per_gas: vec![0; count as usize + 1],
        gas_used_ratio,
        base_fee_per_blob_gas: vec![],
        blob_gas_used_ratio: vec![],
        oldest_block: oldest,
        reward: percentiles.map(|p| vec![vec![0u128; p.len()]; count as usize]),
    })
}

fn block_tx_count(view: &StateView, height: Option<u64>) -> Result<Option<U64>, RpcError> {
    let Some(h) = height else { return Ok(None) };
    Ok(view
        .block(Height(h))?
        .map(|b| U64::from(b.transactions.len())))
}

/// `trellis_getCommitCertificate` ([`trellis_api::ChainApi`]) over a backend.
struct ChainRpc<B> {
    backend: Arc<B>,
}

impl<B: Backend> ChainApiServer for ChainRpc<B> {
    fn commit_certificate(&self, height: U64) -> RpcResult<Option<trellis_api::CommitCertificate>> {
        Ok(self.backend.certificate(height.saturating_to()))
    }

    fn subchain_genesis(&self, chain_id: U64) -> RpcResult<Option<trellis_api::SubchainGenesis>> {
        Ok(self
            .backend
            .subchain_genesis(chain_id.saturating_to())
            .map_err(RpcError::Unavailable)?)
    }

    fn anchor(&self, height: U64) -> RpcResult<Option<trellis_api::AnchorData>> {
        Ok(anchor_data(&*self.backend, height.saturating_to())?)
    }
}

/// Block `height` of `backend`'s chain as a light client of it takes it (`trellis_getAnchor`;
/// the node's own couriers use it too): the header, its certificate and, when the block
/// changes the validator set, the set it names. `None` until committed, and for genesis.
pub fn anchor_data<B: Backend + ?Sized>(
    backend: &B,
    height: u64,
) -> Result<Option<trellis_api::AnchorData>, RpcError> {
    let unavailable = |e: trellis_storage::StoreError| RpcError::Unavailable(e.to_string());
    let view = backend.view().map_err(unavailable)?;
    let (Some(block), Some(certificate)) = (
        view.block(Height(height)).map_err(unavailable)?,
        view.certificate(Height(height)).map_err(unavailable)?,
    ) else {
        return Ok(None);
    };
    let h = &block.header;
    let next_validators = match h.next_validators_hash {
        Some(next) if next != h.validators_hash => {
            let set = backend.validators_at(height + 1).ok_or_else(|| {
                RpcError::Unavailable(format!(
                    "block {height} changes the validator set, and this node no longer \
                     keeps the set it names (only recent heights)"
                ))
            })?;
            let members: Vec<(B256, u64)> = set.iter().map(|v| (v.public_key, v.power)).collect();
            if trellis_light::members_hash(&members) != next {
                return Err(RpcError::Internal(format!(
                    "the validator set this node keeps for height {} does not hash to \
                     block {height}'s nextValidatorsHash",
                    height + 1
                )));
            }
            Some(
                set.into_iter()
                    .map(|v| trellis_api::SetMember {
                        public_key: v.public_key,
                        power: v.power,
                    })
                    .collect(),
            )
        }
        _ => None,
    };
    let mut header = Vec::new();
    alloy_rlp::Encodable::encode(h, &mut header);
    Ok(Some(trellis_api::AnchorData {
        height,
        header: header.into(),
        certificate: certificate.into(),
        next_validators,
    }))
}

/// Builds the module with every method, bound to `backend`.
pub fn build_module<B: Backend>(
    backend: Arc<B>,
) -> Result<RpcModule<RpcContext<B>>, jsonrpsee::core::RegisterMethodError> {
    let mut m = RpcModule::new(RpcContext {
        backend: backend.clone(),
        filters: Filters::default(),
    });

    m.register_method("web3_clientVersion", |_, _, _| -> RpcResult<&str> {
        Ok(CLIENT_VERSION)
    })?;
    m.register_method("net_version", |_, b, _| -> RpcResult<String> {
        Ok(b.chain_id().to_string())
    })?;
    m.register_method("eth_chainId", |_, b, _| -> RpcResult<U64> {
        Ok(U64::from(b.chain_id()))
    })?;
    m.register_method("eth_gasPrice", |_, _, _| -> RpcResult<U256> {
        Ok(U256::ZERO)
    })?;
    m.register_blocking_method("eth_blockNumber", |_, b, _| -> RpcResult<U64> {
        let view = b.view().map_err(RpcError::from)?;
        Ok(U64::from(tip(&view)?))
    })?;
    m.register_blocking_method("eth_getBalance", |p, b, _| -> RpcResult<U256> {
        let address: Address = param(&p, 0, "address")?;
        let tag = BlockTag::from_id(optional_param(&p, 1, "block")?);
        let view = b.view().map_err(RpcError::from)?;
        require_latest_state(&view, tag)?;
        Ok(view
            .account(&address)
            .map_err(RpcError::from)?
            .map(|a| a.balance)
            .unwrap_or_default())
    })?;
    m.register_blocking_method("eth_getTransactionCount", |p, b, _| -> RpcResult<U64> {
        let address: Address = param(&p, 0, "address")?;
        let tag = BlockTag::from_id(optional_param(&p, 1, "block")?);
        let view = b.view().map_err(RpcError::from)?;
        let nonce = view
            .account(&address)
            .map_err(RpcError::from)?
            .map(|a| a.nonce)
            .unwrap_or_default();
        if tag == BlockTag::Pending {
            return Ok(U64::from(b.pending_nonce(address, nonce)));
        }
        require_latest_state(&view, tag)?;
        Ok(U64::from(nonce))
    })?;
    m.register_blocking_method("eth_getCode", |p, b, _| -> RpcResult<Bytes> {
        let address: Address = param(&p, 0, "address")?;
        let tag = BlockTag::from_id(optional_param(&p, 1, "block")?);
        let view = b.view().map_err(RpcError::from)?;
        require_latest_state(&view, tag)?;
        let Some(acc) = view.account(&address).map_err(RpcError::from)? else {
            return Ok(Bytes::new());
        };
        Ok(view
            .code(&acc.code_hash)
            .map_err(RpcError::from)?
            .unwrap_or_default())
    })?;
    m.register_blocking_method("eth_getStorageAt", |p, b, _| -> RpcResult<B256> {
        let address: Address = param(&p, 0, "address")?;
        let slot: U256 = param(&p, 1, "slot")?;
        let tag = BlockTag::from_id(optional_param(&p, 2, "block")?);
        let view = b.view().map_err(RpcError::from)?;
        require_latest_state(&view, tag)?;
        Ok(B256::from(
            view.storage(&address, &slot).map_err(RpcError::from)?,
        ))
    })?;
    m.register_blocking_method(
        "eth_getBlockByNumber",
        |p, b, _| -> RpcResult<Option<Block>> {
            let number: BlockNumberOrTag = param(&p, 0, "block")?;
            let full: bool = optional_param(&p, 1, "full")?.unwrap_or(false);
            let view = b.view().map_err(RpcError::from)?;
            let Some(height) = resolve_height(&view, BlockTag::from_number(number))? else {
                return Ok(None);
            };
            Ok(load_block(&view, height)?.map(|(blk, s)| convert::block(&blk, &s, full)))
        },
    )?;
    m.register_blocking_method(
        "eth_getBlockByHash",
        |p, b, _| -> RpcResult<Option<Block>> {
            let hash: B256 = param(&p, 0, "hash")?;
            let full: bool = optional_param(&p, 1, "full")?.unwrap_or(false);
            let view = b.view().map_err(RpcError::from)?;
            let Some(height) = view.height_of(&hash).map_err(RpcError::from)? else {
                return Ok(None);
            };
            Ok(load_block(&view, height.0)?.map(|(blk, s)| convert::block(&blk, &s, full)))
        },
    )?;
    m.register_blocking_method(
        "eth_getTransactionByHash",
        |p, b, _| -> RpcResult<Option<Transaction>> {
            let hash: B256 = param(&p, 0, "hash")?;
            let view = b.view().map_err(RpcError::from)?;
            Ok(find_tx(&view, &hash)?.and_then(|(blk, senders, i)| {
                Some(convert::transaction(
                    blk.transactions.get(i)?,
                    *senders.get(i)?,
                    &blk,
                    i,
                ))
            }))
        },
    )?;
    m.register_blocking_method(
        "eth_getTransactionReceipt",
        |p, b, _| -> RpcResult<Option<TransactionReceipt>> {
            let hash: B256 = param(&p, 0, "hash")?;
            let view = b.view().map_err(RpcError::from)?;
            let Some((blk, senders, i)) = find_tx(&view, &hash)? else {
                return Ok(None);
            };
            let receipts = view
                .receipts(Height(blk.header.height))
                .map_err(RpcError::from)?
                .unwrap_or_default();
            Ok(convert::receipt(&blk, &senders, &receipts, i))
        },
    )?;
    m.register_blocking_method("eth_call", |p, b, _| -> RpcResult<Bytes> {
        let req: TransactionRequest = param(&p, 0, "transaction")?;
        let tag = BlockTag::from_id(optional_param(&p, 1, "block")?);
        let view = b.view().map_err(RpcError::from)?;
        require_latest_state(&view, tag)?;
        let env = call_env(&view, b.chain_id(), b.max_transaction_gas())?;
        Ok(run_call(&view, &env, &call_request(&req))?.0)
    })?;
    m.register_blocking_method("eth_estimateGas", |p, b, _| -> RpcResult<U64> {
        let req: TransactionRequest = param(&p, 0, "transaction")?;
        let tag = BlockTag::from_id(optional_param(&p, 1, "block")?);
        let view = b.view().map_err(RpcError::from)?;
        require_latest_state(&view, tag)?;
        let env = call_env(&view, b.chain_id(), b.max_transaction_gas())?;
        Ok(U64::from(estimate_gas(&view, &env, &call_request(&req))?))
    })?;
    m.register_async_method("eth_sendRawTransaction", |p, b, _| async move {
        let raw: Bytes = param(&p, 0, "data")?;
        b.submit_raw(raw.to_vec())
            .await
            .map_err(|e| ErrorObjectOwned::from(RpcError::Rejected(e)))
    })?;
    m.register_blocking_method(
        "eth_getProof",
        |p, b, _| -> RpcResult<EIP1186AccountProofResponse> {
            let address: Address = param(&p, 0, "address")?;
            let keys: Vec<JsonStorageKey> = param(&p, 1, "storageKeys")?;
            let tag = BlockTag::from_id(optional_param(&p, 2, "block")?);
            if keys.len() > MAX_PROOF_KEYS {
                return Err(RpcError::InvalidParams(format!(
                    "at most {MAX_PROOF_KEYS} storage keys per call"
                ))
                .into());
            }
            let view = b.view().map_err(RpcError::from)?;
            require_latest_state(&view, tag)?;
            let slots: Vec<B256> = keys.iter().map(JsonStorageKey::as_b256).collect();
            let proof = trellis_execution::prove_account(&view, &address, &slots)
                .map_err(RpcError::from)?;
            let account = proof.account.unwrap_or_default();
            Ok(EIP1186AccountProofResponse {
                address,
                balance: account.balance,
                code_hash: account.code_hash,
                nonce: account.nonce,
                storage_hash: account.storage_root,
                account_proof: proof.account_proof,
                storage_proof: keys
                    .into_iter()
                    .zip(proof.storage_proofs)
                    .map(|(key, (_, value, proof))| EIP1186StorageProof { key, value, proof })
                    .collect(),
            })
        },
    )?;
    m.register_method("eth_accounts", |_, _, _| -> RpcResult<Vec<Address>> {
        Ok(vec![])
    })?;
    m.register_method("eth_syncing", |_, _, _| -> RpcResult<bool> { Ok(false) })?;
    m.register_method("eth_maxPriorityFeePerGas", |_, _, _| -> RpcResult<U256> {
        Ok(U256::ZERO)
    })?;
    m.register_blocking_method("eth_feeHistory", |p, b, _| -> RpcResult<FeeHistory> {
        let count: U64 = param(&p, 0, "blockCount")?;
        let newest: BlockNumberOrTag = param(&p, 1, "newestBlock")?;
        let percentiles: Option<Vec<f64>> = optional_param(&p, 2, "rewardPercentiles")?;
        let view = b.view().map_err(RpcError::from)?;
        Ok(fee_history(&view, count.to(), newest, percentiles)?)
    })?;
    m.register_blocking_method(
        "eth_getBlockTransactionCountByNumber",
        |p, b, _| -> RpcResult<Option<U64>> {
            let number: BlockNumberOrTag = param(&p, 0, "block")?;
            let view = b.view().map_err(RpcError::from)?;
            let height = resolve_height(&view, BlockTag::from_number(number))?;
            Ok(block_tx_count(&view, height)?)
        },
    )?;
    m.register_blocking_method(
        "eth_getBlockTransactionCountByHash",
        |p, b, _| -> RpcResult<Option<U64>> {
            let hash: B256 = param(&p, 0, "hash")?;
            let view = b.view().map_err(RpcError::from)?;
            let height = view.height_of(&hash).map_err(RpcError::from)?.map(|h| h.0);
            Ok(block_tx_count(&view, height)?)
        },
    )?;
    m.register_blocking_method("eth_getLogs", |p, b, _| -> RpcResult<Vec<Log>> {
        let filter: Filter = param(&p, 0, "filter")?;
        let view = b.view().map_err(RpcError::from)?;
        let (from, to) = logs::filter_range(&view, &filter)?;
        Ok(logs::logs_in_range(&view, &filter, from, to)?)
    })?;
    m.register_blocking_method("eth_newFilter", |p, b, _| -> RpcResult<U256> {
        let filter: Filter = param(&p, 0, "filter")?;
        let view = b.view().map_err(RpcError::from)?;
        Ok(b.filters.new_log_filter(&view, filter)?)
    })?;
    m.register_blocking_method("eth_newBlockFilter", |_, b, _| -> RpcResult<U256> {
        let view = b.view().map_err(RpcError::from)?;
        Ok(b.filters.new_block_filter(&view)?)
    })?;
    m.register_blocking_method(
        "eth_getFilterChanges",
        |p, b, _| -> RpcResult<logs::FilterChanges> {
            let id: U256 = param(&p, 0, "filterId")?;
            let view = b.view().map_err(RpcError::from)?;
            Ok(b.filters.changes(&view, id)?)
        },
    )?;
    m.register_blocking_method("eth_getFilterLogs", |p, b, _| -> RpcResult<Vec<Log>> {
        let id: U256 = param(&p, 0, "filterId")?;
        let view = b.view().map_err(RpcError::from)?;
        Ok(b.filters.logs(&view, id)?)
    })?;
    m.register_method("eth_uninstallFilter", |p, b, _| -> RpcResult<bool> {
        let id: U256 = param(&p, 0, "filterId")?;
        Ok(b.filters.uninstall(id))
    })?;
    m.register_subscription(
        "eth_subscribe",
        "eth_subscription",
        "eth_unsubscribe",
        |p, pending, ctx, _| async move {
            let kind: SubscriptionKind = match param(&p, 0, "subscription kind") {
                Ok(k) => k,
                Err(e) => {
                    pending.reject(ErrorObjectOwned::from(e)).await;
                    return Ok(());
                }
            };
            let filter = match kind {
                SubscriptionKind::NewHeads => None,
                SubscriptionKind::Logs => match optional_param::<Filter>(&p, 1, "filter") {
                    Ok(f) => Some(f.unwrap_or_default()),
                    Err(e) => {
                        pending.reject(ErrorObjectOwned::from(e)).await;
                        return Ok(());
                    }
                },
                other => {
                    let e = RpcError::InvalidParams(format!(
                        "subscription {other:?} is not supported; use newHeads or logs"
                    ));
                    pending.reject(ErrorObjectOwned::from(e)).await;
                    return Ok(());
                }
            };
            let sink = pending.accept().await?;
            let mut heights = ctx.subscribe_heights();
            let mut last = *heights.borrow_and_update();
            loop {
                tokio::select! {
                    _ = sink.closed() => break,
                    changed = heights.changed() => if changed.is_err() { break },
                }
                let tip = *heights.borrow_and_update();
                // Messages are read on the blocking pool, a few heights at a time, and the
                // snapshot is gone before the first send: a client that reads slowly holds
                // no read transaction open.
                let mut from = last + 1;
                while from <= tip {
                    let to = tip.min(from + SUBSCRIPTION_HEIGHTS_PER_READ - 1);
                    let (reader, filter) = (ctx.clone(), filter.clone());
                    let messages = trellis_storage::blocking(move || {
                        subscription_messages(&reader, filter.as_ref(), from, to)
                    })
                    .await
                    .map_err(|e| e.to_string())??;
                    for raw in messages {
                        if sink.send(raw).await.is_err() {
                            return Ok(());
                        }
                    }
                    from = to + 1;
                }
                last = tip;
            }
            Ok(())
        },
    )?;
    m.merge(
        ChainRpc {
            backend: backend.clone(),
        }
        .into_rpc(),
    )?;
    crate::governance::register(&mut m, backend)?;
    Ok(m)
}
