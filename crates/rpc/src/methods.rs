//! The JSON-RPC methods.

use alloy_eips::{BlockId, BlockNumberOrTag};
use alloy_primitives::{Address, Bytes, TxKind, B256, U256, U64};
use alloy_rpc_types_eth::{Block, Transaction, TransactionReceipt, TransactionRequest};
use jsonrpsee::types::{ErrorObjectOwned, Params};
use jsonrpsee::RpcModule;
use serde::de::DeserializeOwned;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};
use trellis_execution::{BlockEnvInput, CallOutcome, CallRequest};
use trellis_primitives::{Block as TrellisBlock, Height};
use trellis_storage::StateView;

use crate::convert;
use crate::error::RpcError;
use crate::Backend;

type RpcResult<T> = Result<T, ErrorObjectOwned>;

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

fn param<T: DeserializeOwned>(
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

fn optional_param<T: DeserializeOwned>(
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

fn tip(view: &StateView) -> Result<u64, RpcError> {
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

fn call_env(view: &StateView, chain_id: u64) -> Result<BlockEnvInput, RpcError> {
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
    let cap = req.gas.unwrap_or(env.gas_limit).min(env.gas_limit);
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

/// Builds the module with every method, bound to `backend`.
pub fn build_module<B: Backend>(
    backend: Arc<B>,
) -> Result<RpcModule<Arc<B>>, jsonrpsee::core::RegisterMethodError> {
    let mut m = RpcModule::new(backend);

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
    m.register_method("eth_blockNumber", |_, b, _| -> RpcResult<U64> {
        let view = b.view().map_err(RpcError::from)?;
        Ok(U64::from(tip(&view)?))
    })?;
    m.register_method("eth_getBalance", |p, b, _| -> RpcResult<U256> {
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
    m.register_method("eth_getTransactionCount", |p, b, _| -> RpcResult<U64> {
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
    m.register_method("eth_getCode", |p, b, _| -> RpcResult<Bytes> {
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
    m.register_method("eth_getStorageAt", |p, b, _| -> RpcResult<B256> {
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
        let env = call_env(&view, b.chain_id())?;
        Ok(run_call(&view, &env, &call_request(&req))?.0)
    })?;
    m.register_blocking_method("eth_estimateGas", |p, b, _| -> RpcResult<U64> {
        let req: TransactionRequest = param(&p, 0, "transaction")?;
        let tag = BlockTag::from_id(optional_param(&p, 1, "block")?);
        let view = b.view().map_err(RpcError::from)?;
        require_latest_state(&view, tag)?;
        let env = call_env(&view, b.chain_id())?;
        Ok(U64::from(estimate_gas(&view, &env, &call_request(&req))?))
    })?;
    m.register_async_method("eth_sendRawTransaction", |p, b, _| async move {
        let raw: Bytes = param(&p, 0, "data")?;
        b.submit_raw(raw.to_vec())
            .await
            .map_err(|e| ErrorObjectOwned::from(RpcError::Rejected(e)))
    })?;
    m.register_async_method("trellis_gossipTransactions", |p, b, _| async move {
        let raws: Vec<Bytes> = param(&p, 0, "transactions")?;
        Ok::<usize, ErrorObjectOwned>(
            b.receive_gossip(raws.into_iter().map(|r| r.to_vec()).collect())
                .await,
        )
    })?;
    m.register_method(
        "trellis_getCommitCertificate",
        |p, b, _| -> RpcResult<Option<serde_json::Value>> {
            let height: U64 = param(&p, 0, "height")?;
            Ok(b.certificate_json(height.to::<u64>()))
        },
    )?;
    Ok(m)
}
