//! Log queries (`eth_getLogs`), polling filters (`eth_newFilter` and friends) and what the
//! `logs` subscription needs. Blocks are skipped by their header bloom before receipts are
//! read; ranges and result sizes are bounded.

use alloy_eips::BlockNumberOrTag;
use alloy_primitives::{B256, U256};
use alloy_rpc_types_eth::{Filter, FilterBlockOption, Log};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use trellis_primitives::Height;
use trellis_storage::StateView;

use crate::convert;
use crate::error::RpcError;
use crate::methods::tip;

/// Most blocks one `eth_getLogs` call may scan.
pub const MAX_BLOCK_RANGE: u64 = 10_000;
/// Most logs one call may return.
pub const MAX_LOGS: usize = 10_000;
/// Most installed filters per node.
pub const MAX_FILTERS: usize = 10_000;
/// Filters not polled for this long are removed.
pub const FILTER_TIMEOUT: Duration = Duration::from_secs(300);

fn resolve(tag: Option<BlockNumberOrTag>, tip: u64, default: u64) -> u64 {
    match tag {
        None => default,
        Some(BlockNumberOrTag::Number(n)) => n,
        Some(BlockNumberOrTag::Earliest) => 0,
        Some(_) => tip,
    }
}

/// The inclusive height range a filter asks for (the upper end may lie beyond the tip).
pub fn filter_range(view: &StateView, filter: &Filter) -> Result<(u64, u64), RpcError> {
    let tip = tip(view)?;
    match filter.block_option {
        FilterBlockOption::AtBlockHash(hash) => {
            let h = view
                .height_of(&hash)?
                .ok_or_else(|| RpcError::Unavailable(format!("unknown block {hash}")))?;
            Ok((h.0, h.0))
        }
        FilterBlockOption::Range {
            from_block,
            to_block,
        } => {
            let from = resolve(from_block, tip, tip);
            let to = resolve(to_block, tip, tip);
            Ok((from, to))
        }
    }
}

/// Logs matching `filter` in heights `from..=to`.
pub fn logs_in_range(
    view: &StateView,
    filter: &Filter,
    from: u64,
    to: u64,
) -> Result<Vec<Log>, RpcError> {
    if from > to {
        return Ok(vec![]);
    }
    if to - from >= MAX_BLOCK_RANGE {
        return Err(RpcError::InvalidParams(format!(
            "block range of {} exceeds the limit of {MAX_BLOCK_RANGE} blocks",
            to - from + 1
        )));
    }
    let to = to.min(tip(view)?);
    let mut out = Vec::new();
    for h in from..=to {
        let Some(block) = view.block(Height(h))? else {
            continue;
        };
        if !filter.matches_bloom(block.header.logs_bloom) {
            continue;
        }
        let receipts = view.receipts(Height(h))?.unwrap_or_default();
        for log in convert::block_logs(&block, &receipts).into_iter().flatten() {
            if filter.matches(&log.inner) {
                out.push(log);
                if out.len() > MAX_LOGS {
                    return Err(RpcError::InvalidParams(format!(
                        "query returns more than {MAX_LOGS} logs; narrow the block range or the filter"
                    )));
                }
            }
        }
    }
    Ok(out)
}

enum Kind {
    Logs(Box<Filter>),
    Blocks,
}

struct Installed {
    kind: Kind,
    /// Last height already reported by `eth_getFilterChanges`.
    seen: u64,
    polled: Instant,
}

/// Changes since the last poll.
#[derive(Clone, serde::Serialize)]
#[serde(untagged)]
pub enum FilterChanges {
    Logs(Vec<Log>),
    Hashes(Vec<B256>),
}

/// Filters installed with `eth_newFilter` / `eth_newBlockFilter`.
#[derive(Default)]
pub struct Filters {
    installed: Mutex<HashMap<u64, Installed>>,
    next_id: AtomicU64,
}

impl Filters {
    fn install(&self, kind: Kind, seen: u64) -> Result<U256, RpcError> {
        let mut installed = self.installed.lock();
        installed.retain(|_, f| f.polled.elapsed() < FILTER_TIMEOUT);
        if installed.len() >= MAX_FILTERS {
            return Err(RpcError::Unavailable(format!(
                "too many filters installed (limit {MAX_FILTERS})"
            )));
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed) + 1;
        installed.insert(
            id,
            Installed {
                kind,
                seen,
                polled: Instant::now(),
            },
        );
        Ok(U256::from(id))
    }

    pub fn new_log_filter(&self, view: &StateView, filter: Filter) -> Result<U256, RpcError> {
        let (from, _) = filter_range(view, &filter)?;
        self.install(Kind::Logs(Box::new(filter)), from.saturating_sub(1))
    }

    pub fn new_block_filter(&self, view: &StateView) -> Result<U256, RpcError> {
        self.install(Kind::Blocks, tip(view)?)
    }

    pub fn uninstall(&self, id: U256) -> bool {
        let Ok(id) = u64::try_from(id) else {
            return false;
        };
        self.installed.lock().remove(&id).is_some()
    }

    fn not_found() -> RpcError {
        RpcError::Unavailable("filter not found".into())
    }

    pub fn changes(&self, view: &StateView, id: U256) -> Result<FilterChanges, RpcError> {
        let id = u64::try_from(id).map_err(|_| Self::not_found())?;
        let tip = tip(view)?;
        let mut installed = self.installed.lock();
        let f = installed.get_mut(&id).ok_or_else(Self::not_found)?;
        f.polled = Instant::now();
        let from = f.seen + 1;
        let result = match &f.kind {
            Kind::Blocks => FilterChanges::Hashes(
                (from..=tip)
                    .filter_map(|h| view.block(Height(h)).ok().flatten().map(|b| b.hash()))
                    .collect(),
            ),
            Kind::Logs(filter) => {
                // Tags were resolved at installation (`seen`); only numeric bounds still apply.
                let lo = filter.get_from_block().unwrap_or(0);
                let hi = filter.get_to_block().unwrap_or(tip);
                let to = hi.min(tip).min(from.saturating_add(MAX_BLOCK_RANGE - 1));
                let logs = logs_in_range(view, filter, from.max(lo), to)?;
                f.seen = to.max(f.seen);
                return Ok(FilterChanges::Logs(logs));
            }
        };
        f.seen = tip;
        Ok(result)
    }

    pub fn logs(&self, view: &StateView, id: U256) -> Result<Vec<Log>, RpcError> {
        let id = u64::try_from(id).map_err(|_| Self::not_found())?;
        let filter = {
            let mut installed = self.installed.lock();
            let f = installed.get_mut(&id).ok_or_else(Self::not_found)?;
            f.polled = Instant::now();
            match &f.kind {
                Kind::Logs(filter) => filter.clone(),
                Kind::Blocks => return Err(RpcError::InvalidParams("not a log filter".into())),
            }
        };
        let (from, to) = filter_range(view, &filter)?;
        logs_in_range(view, &filter, from, to)
    }
}
