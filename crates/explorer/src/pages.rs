//! The HTML pages. Each handler reads one snapshot on the blocking pool and renders it with
//! maud (escaped by construction); a failure renders the same layout with the reason and the
//! matching status.

use alloy_consensus::Transaction as _;
use alloy_primitives::{Address, B256};
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{html, Markup, DOCTYPE};
use serde::Deserialize;
use std::sync::Arc;
use trellis_execution::governance_slots;
use trellis_primitives::Height;
use trellis_rpc::Backend;
use trellis_storage::{StateView, TxLocation};
use trellis_system::governance::{role_name, Action, Proposal, Status};
use trellis_system::Governance;

use crate::{Explorer, PAGE};

/// Why a page cannot be shown.
pub(crate) struct PageError {
    status: StatusCode,
    message: String,
}

impl PageError {
    pub(crate) fn not_found(message: impl Into<String>) -> Self {
        PageError {
            status: StatusCode::NOT_FOUND,
            message: message.into(),
        }
    }

    pub(crate) fn bad_request(message: impl Into<String>) -> Self {
        PageError {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
        }
    }

    pub(crate) fn internal(e: impl std::fmt::Display) -> Self {
        tracing::error!(error = %e, "explorer read failed");
        PageError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            message: format!("cannot read the ledger: {e}"),
        }
    }
}

impl From<trellis_rpc::rest::RestError> for PageError {
    fn from(e: trellis_rpc::rest::RestError) -> Self {
        PageError {
            status: e.status(),
            message: e.message().to_owned(),
        }
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let title = self.status.canonical_reason().unwrap_or("Error");
        let body = layout(
            title,
            html! {
                h1 { (title) }
                p.error { (self.message) }
            },
        );
        (self.status, body).into_response()
    }
}

pub(crate) type Page = Result<Markup, PageError>;

/// Runs `work` on a snapshot of committed state, on the blocking pool.
pub(crate) async fn read<B: Backend, T: Send + 'static>(
    explorer: &Arc<Explorer<B>>,
    work: impl FnOnce(&Explorer<B>, &StateView) -> Result<T, PageError> + Send + 'static,
) -> Result<T, PageError> {
    let explorer = explorer.clone();
    trellis_storage::blocking(move || {
        let view = explorer.backend.view().map_err(PageError::internal)?;
        work(&explorer, &view)
    })
    .await
    .map_err(PageError::internal)?
}

/// Height of the last committed block.
pub(crate) fn tip(view: &StateView) -> Result<u64, PageError> {
    Ok(view.tip().map_err(PageError::internal)?.map_or(0, |h| h.0))
}

fn layout(title: &str, content: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · Trellis explorer" }
                link rel="stylesheet" href="/explorer/style.css";
                // No icon request (the port serves JSON-RPC at `/favicon.ico`).
                link rel="icon" href="data:,";
            }
            body {
                header {
                    nav {
                        a href="/explorer" { "Trellis" }
                        a href="/explorer/organizations" { "Organisations" }
                        a href="/explorer/proposals" { "Proposals" }
                        a href="/explorer/audit" { "Audit log" }
                        a href="/explorer/frozen" { "Frozen" }
                        a href="/explorer/supervision" { "Supervision" }
                    }
                    form action="/explorer/search" method="get" role="search" {
                        input type="search" name="q" aria-label="Search"
                            placeholder="Block, transaction, address, DID, identifier, sha256:digest";
                        button type="submit" { "Search" }
                    }
                }
                main { (content) }
            }
        }
    }
}

fn short(hash: &B256) -> String {
    let s = hash.to_string();
    format!("{}…{}", &s[..10], &s[s.len() - 6..])
}

fn address_link(a: &Address) -> Markup {
    html! { a.mono href={ "/explorer/address/" (a) } { (a.to_checksum(None)) } }
}

fn time(ms: u64) -> String {
    humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms))
        .to_string()
}

#[derive(Deserialize)]
pub(crate) struct Paging {
    offset: Option<u64>,
}

fn pager(path: &str, offset: u64, shown: usize, total: u64) -> Markup {
    html! {
        p.pager {
            @if offset > 0 {
                a rel="prev" href={ (path) "?offset=" (offset.saturating_sub(PAGE)) } { "← newer" }
                " "
            }
            @if offset + (shown as u64) < total {
                a rel="next" href={ (path) "?offset=" (offset + PAGE) } { "older →" }
            }
        }
    }
}

pub(crate) async fn style() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        include_str!("style.css"),
    )
}

pub(crate) async fn home<B: Backend>(State(x): State<Arc<Explorer<B>>>) -> Page {
    let chain_id = x.backend.chain_id();
    let blocks = read(&x, |_, view| {
        let tip = tip(view)?;
        let mut out = Vec::new();
        for h in (tip.saturating_sub(19)..=tip).rev() {
            if let Some(b) = view.block(Height(h)).map_err(PageError::internal)? {
                out.push((
                    h,
                    b.header.hash(),
                    b.header.timestamp_ms,
                    b.transactions.len(),
                    b.header.gas_used,
                ));
            }
        }
        Ok(out)
    })
    .await?;
    let tip = blocks.first().map_or(0, |b| b.0);
    Ok(layout(
        "Latest blocks",
        html! {
            h1 { "Chain " (chain_id) }
            p { "Committed height " strong #height { (tip) } ". Every block shown is final." }
            h2 { "Latest blocks" }
            table #blocks {
                thead { tr { th { "Height" } th { "Hash" } th { "Time (UTC)" } th { "Transactions" } th { "Gas used" } } }
                tbody {
                    @for (h, hash, ts, txs, gas) in &blocks {
                        tr {
                            td { a href={ "/explorer/block/" (h) } { (h) } }
                            td.mono { (short(hash)) }
                            td { (time(*ts)) }
                            td { (txs) }
                            td { (gas) }
                        }
                    }
                }
            }
        },
    ))
}

#[derive(Deserialize)]
pub(crate) struct SearchQuery {
    q: Option<String>,
}

/// Sends the query to the page of what it names: a block number, a transaction or block
/// hash, an address, a DID, an identifier (`PREFIX/suffix`) or an evidence digest
/// (`sha256:0x…`, `keccak256:0x…`, `sm3:0x…`); DIDs, identifiers and evidence lead to pages
/// that check their proofs.
pub(crate) async fn search<B: Backend>(
    State(x): State<Arc<Explorer<B>>>,
    Query(query): Query<SearchQuery>,
) -> Result<Response, PageError> {
    let q = query.q.unwrap_or_default().trim().to_owned();
    if q.is_empty() {
        return Err(PageError::bad_request(
            "type a block number, a hash, an address, a DID, an identifier or an evidence digest",
        ));
    }
    if q.len() > 512 {
        return Err(PageError::bad_request(
            "the query is longer than 512 characters",
        ));
    }
    if q.bytes().all(|b| b.is_ascii_digit()) {
        return Ok(Redirect::to(&format!("/explorer/block/{q}")).into_response());
    }
    if q.starts_with("did:") {
        return Ok(Redirect::to(&format!("/explorer/did/{q}")).into_response());
    }
    if let Some((algorithm, digest)) = q.split_once(':') {
        if let Some(algorithm) = trellis_system::evidence::HashAlgorithm::parse(algorithm) {
            let digest: B256 = digest
                .parse()
                .map_err(|_| PageError::bad_request("an evidence digest is 32 bytes of 0x-hex"))?;
            let id = trellis_system::evidence::evidence_id(algorithm, &digest);
            return Ok(Redirect::to(&format!("/explorer/evidence/{id}")).into_response());
        }
    }
    if let Ok(address) = q.parse::<Address>() {
        return Ok(Redirect::to(&format!("/explorer/address/{address}")).into_response());
    }
    if let Ok(hash) = q.parse::<B256>() {
        let target = read(&x, move |_, view| {
            if view
                .tx_location(&hash)
                .map_err(PageError::internal)?
                .is_some()
            {
                return Ok(format!("/explorer/tx/{hash}"));
            }
            if view
                .height_of(&hash)
                .map_err(PageError::internal)?
                .is_some()
            {
                return Ok(format!("/explorer/block/{hash}"));
            }
            Err(PageError::not_found(format!(
                "no transaction or block {hash} (evidence digests are searched as sha256:{hash})"
            )))
        })
        .await?;
        return Ok(Redirect::to(&target).into_response());
    }
    if q.contains('/') {
        return Ok(Redirect::to(&format!("/explorer/identifier/{q}")).into_response());
    }
    Err(PageError::not_found(format!("nothing is named {q:?}")))
}

pub(crate) async fn block<B: Backend>(
    State(x): State<Arc<Explorer<B>>>,
    Path(id): Path<String>,
) -> Page {
    let by_hash = id.parse::<B256>().ok();
    let by_height = id.parse::<u64>().ok();
    if by_hash.is_none() && by_height.is_none() {
        return Err(PageError::bad_request("a block is a height or a 0x-hash"));
    }
    let (block, senders, receipts, certificate) = read(&x, move |x, view| {
        let height = match (by_height, by_hash) {
            (Some(h), _) => Height(h),
            (None, Some(hash)) => view
                .height_of(&hash)
                .map_err(PageError::internal)?
                .ok_or_else(|| PageError::not_found(format!("no block {hash}")))?,
            (None, None) => unreachable!("checked above"),
        };
        let block = view
            .block(height)
            .map_err(PageError::internal)?
            .ok_or_else(|| PageError::not_found(format!("no block {}", height.0)))?;
        let senders = view
            .senders(height)
            .map_err(PageError::internal)?
            .unwrap_or_default();
        let receipts = view
            .receipts(height)
            .map_err(PageError::internal)?
            .unwrap_or_default();
        let certificate = x.backend.certificate(height.0);
        Ok((block, senders, receipts, certificate))
    })
    .await?;
    let h = &block.header;
    // Lowercase, as trellis_getCommitCertificate writes them.
    let signers: Vec<String> = certificate
        .iter()
        .flat_map(|c| &c.signatures)
        .map(|s| format!("{:#x}", s.validator))
        .collect();
    Ok(layout(
        &format!("Block {}", h.height),
        html! {
            h1 { "Block " span #block-height { (h.height) } }
            table.fields {
                tr { th { "Hash" } td.mono #block-hash { (h.hash()) } }
                tr { th { "Parent" } td.mono {
                    @if h.height > 0 { a href={ "/explorer/block/" (h.height - 1) } { (h.parent_hash) } } @else { (h.parent_hash) }
                } }
                tr { th { "Time (UTC)" } td { (time(h.timestamp_ms)) } }
                tr { th { "Proposer" } td { (address_link(&h.proposer)) } }
                tr { th { "Gas used / limit" } td { (h.gas_used) " / " (h.gas_limit) } }
                tr { th { "State root" } td.mono { (h.state_root) } }
                tr { th { "Transactions root" } td.mono { (h.transactions_root) } }
                tr { th { "Validators hash" } td.mono { (h.validators_hash) } }
                tr {
                    th { "Next validators hash" }
                    td.mono {
                        @match h.next_validators_hash {
                            Some(next) if next == h.validators_hash => { (next) " (unchanged)" }
                            Some(next) => { (next) " (the set changes)" }
                            None => { "— (not recorded before this field existed)" }
                        }
                    }
                }
            }
            h2 { "Finality" }
            @if h.height == 0 {
                p { "Genesis: trusted by its hash, signed by nobody." }
            } @else if let Some(c) = &certificate {
                p #signers-summary {
                    "Committed in round " (c.round) " and certified by the precommits of "
                    strong { (signers.len()) } " validators:"
                }
                ul #signers { @for s in &signers { li.mono { (s) } } }
            } @else {
                p.error { "No commit certificate stored for this block." }
            }
            h2 { "Transactions (" (block.transactions.len()) ")" }
            table #transactions {
                thead { tr { th { "#" } th { "Hash" } th { "From" } th { "To" } th { "Value (wei)" } th { "Status" } } }
                tbody {
                    @for (i, tx) in block.transactions.iter().enumerate() {
                        tr {
                            td { (i) }
                            td { a.mono href={ "/explorer/tx/" (tx.tx_hash()) } { (short(tx.tx_hash())) } }
                            td { @if let Some(s) = senders.get(i) { (address_link(s)) } }
                            td { @match tx.to() { Some(to) => (address_link(&to)), None => "contract creation" } }
                            td { (tx.value()) }
                            td { @match receipts.get(i) { Some(r) if r.status() => "success", Some(_) => span.error { "failed" }, None => "?" } }
                        }
                    }
                }
            }
        },
    ))
}

pub(crate) async fn transaction<B: Backend>(
    State(x): State<Arc<Explorer<B>>>,
    Path(hash): Path<String>,
) -> Page {
    let hash: B256 = hash
        .parse()
        .map_err(|_| PageError::bad_request("a transaction hash is 32 bytes of 0x-hex"))?;
    let page = read(&x, move |x, view| {
        let at = view
            .tx_location(&hash)
            .map_err(PageError::internal)?
            .ok_or_else(|| PageError::not_found(format!("no committed transaction {hash}")))?;
        let block = view
            .block(at.height)
            .map_err(PageError::internal)?
            .ok_or_else(|| PageError::internal(format!("block {} missing", at.height.0)))?;
        let i = at.index as usize;
        let tx = block
            .transactions
            .get(i)
            .ok_or_else(|| PageError::internal("transaction index out of its block"))?
            .clone();
        let sender = view
            .senders(at.height)
            .map_err(PageError::internal)?
            .and_then(|s| s.get(i).copied());
        let receipts = view.receipts(at.height).map_err(PageError::internal)?.unwrap_or_default();
        let receipt = receipts.get(i).cloned();
        let reverted = receipt.as_ref().is_some_and(|r| !r.status());
        let revert = if reverted { view.revert_data(at).map_err(PageError::internal)? } else { None };
        let before = i.checked_sub(1).and_then(|p| receipts.get(p)).map_or(0, |r| r.cumulative_gas_used());
        let gas_used = receipt.as_ref().map(|r| r.cumulative_gas_used() - before);
        let logs: Vec<_> = receipt
            .as_ref()
            .map(|r| {
                r.logs()
                    .iter()
                    .map(|log| (log.address, x.events.decode(&log.data), log.data.clone()))
                    .collect()
            })
            .unwrap_or_default();
        Ok(html! {
            h1 { "Transaction" }
            table.fields {
                tr { th { "Hash" } td.mono #tx-hash { (hash) } }
                tr { th { "Status" } td #tx-status { @match &receipt { Some(r) if r.status() => "success", Some(_) => span.error { "failed (reverted)" }, None => "?" } } }
                @if reverted {
                    tr { th { "Revert reason" } td #tx-revert { (revert_reason(revert.as_ref().map(|b| b.as_ref()))) } }
                }
                tr { th { "Block" } td { a href={ "/explorer/block/" (at.height.0) } { (at.height.0) } " (index " (i) ")" } }
                tr { th { "From" } td #tx-from { @if let Some(s) = sender { (address_link(&s)) } } }
                tr { th { "To" } td #tx-to { @match tx.to() { Some(to) => (address_link(&to)), None => "contract creation" } } }
                tr { th { "Value (wei)" } td { (tx.value()) } }
                tr { th { "Nonce" } td { (tx.nonce()) } }
                tr { th { "Gas used / limit" } td { (gas_used.map(|g| g.to_string()).unwrap_or_default()) " / " (tx.gas_limit()) } }
                tr { th { "Input" } td { (tx.input().len()) " bytes" } }
            }
            h2 { "Events (" (logs.len()) ")" }
            @for (i, (address, decoded, raw)) in logs.iter().enumerate() {
                section.event {
                    h3 { (i) ". "
                        @match decoded { Some(d) => { span.event-name { (d.name) } " (" (d.contract) ")" }, None => "unknown event" }
                        " at " (address_link(address)) }
                    @match decoded {
                        Some(d) => table.fields { @for (name, value) in &d.args { tr { th { (name) } td.mono { (value) } } } },
                        None => table.fields {
                            @for (t, topic) in raw.topics().iter().enumerate() { tr { th { "topic " (t) } td.mono { (topic) } } }
                            tr { th { "data" } td.mono { (raw.data) } }
                        },
                    }
                }
            }
        })
    })
    .await?;
    Ok(layout("Transaction", page))
}

/// Transactions one address page lists.
const HISTORY_PAGE: usize = 25;

#[derive(Deserialize)]
pub(crate) struct HistoryPaging {
    /// `height.index` of the last transaction of the previous page.
    before: Option<String>,
}

/// Parses `height.index`.
fn tx_location(s: &str) -> Option<TxLocation> {
    let (height, index) = s.split_once('.')?;
    Some(TxLocation {
        height: Height(height.parse().ok()?),
        index: index.parse().ok()?,
    })
}

/// A failed transaction's revert data as a person reads it: the `Error(string)` message or
/// the `Panic(uint256)` meaning when it is one, else its hex.
fn revert_reason(data: Option<&[u8]>) -> Markup {
    match data {
        None | Some([]) => html! { "none returned (out of gas, or an invalid operation)" },
        Some(data) => match alloy_sol_types::decode_revert_reason(data) {
            // alloy labels an `Error(string)` "revert: …"; the row says so already.
            Some(reason) => html! { (reason.strip_prefix("revert: ").unwrap_or(&reason)) },
            None => html! { span.mono { (alloy_primitives::hex::encode_prefixed(data)) } },
        },
    }
}

pub(crate) async fn address<B: Backend>(
    State(x): State<Arc<Explorer<B>>>,
    Path(address): Path<String>,
    Query(paging): Query<HistoryPaging>,
) -> Page {
    let address: Address = address
        .parse()
        .map_err(|_| PageError::bad_request("an address is 20 bytes of 0x-hex"))?;
    let before = match paging.before.as_deref() {
        None => None,
        Some(s) => Some(tx_location(s).ok_or_else(|| {
            PageError::bad_request("`before` is a transaction's block height and index, as 12.3")
        })?),
    };
    let page = read(&x, move |_, view| {
        let account = view.account(&address).map_err(PageError::internal)?.unwrap_or_default();
        let code = match account.code_hash {
            h if h == trellis_storage::EMPTY_CODE_HASH || h == B256::ZERO => None,
            h => view.code(&h).map_err(PageError::internal)?.map(|c| (h, c.len())),
        };
        let mut slots = governance_slots(view);
        let mut gov = Governance::new(&mut slots);
        let org = gov.account_org(&address).map_err(PageError::internal)?;
        let frozen = gov.is_frozen(&address).map_err(PageError::internal)?;
        let system = system_name(&address);
        // One row more than shown tells whether an older page exists.
        let mut history = view
            .address_transactions(&address, before, HISTORY_PAGE + 1)
            .map_err(PageError::internal)?;
        let older = history.len() > HISTORY_PAGE;
        history.truncate(HISTORY_PAGE);
        let indexed_from = view.address_index_from().map_err(PageError::internal)?;
        Ok(html! {
            h1 { "Address" }
            table.fields {
                tr { th { "Address" } td.mono #address { (address.to_checksum(None)) } }
                @if let Some(name) = system { tr { th { "System contract" } td { (name) } } }
                tr { th { "Balance (wei)" } td #balance { (account.balance) } }
                tr { th { "Nonce" } td #nonce { (account.nonce) } }
                tr { th { "Code" } td { @match &code { Some((hash, len)) => { (len) " bytes, hash " span.mono { (hash) } }, None => "none (an account)" } } }
                tr { th { "Organisation" } td #organization { @match &org { Some(o) => (o.as_str()), None => "not registered" } } }
                tr { th { "Frozen" } td #frozen { @if frozen { span.error { "yes" } } @else { "no" } } }
            }
            h2 { "Transactions" }
            @if history.is_empty() {
                p #history-empty { @if before.is_some() { "No older transactions." } @else if indexed_from.0 > 0 { "No transactions sent from or to this address since block " (indexed_from.0) "." } @else { "No transactions sent from or to this address." } }
            } @else {
                table #history {
                    thead { tr { th { "Block" } th { "Transaction" } th { "Direction" } } }
                    tbody {
                        @for t in &history {
                            tr {
                                td { a href={ "/explorer/block/" (t.location.height.0) } { (t.location.height.0) } }
                                td.mono { a href={ "/explorer/tx/" (t.hash) } { (t.hash) } }
                                td { @match (t.role.sent, t.role.received) { (true, true) => "self", (true, false) => "out", _ => "in" } }
                            }
                        }
                    }
                }
            }
            p.pager {
                @if before.is_some() {
                    a rel="first" href={ "/explorer/address/" (address) } { "← newest" }
                    " "
                }
                @if let (true, Some(last)) = (older, history.last()) {
                    a rel="next" href={ "/explorer/address/" (address) "?before=" (last.location.height.0) "." (last.location.index) } { "older →" }
                }
            }
            @if indexed_from.0 > 0 {
                p.note { "This node indexes transactions by address from block " (indexed_from.0) " on (its data directory predates the index); earlier ones are found by their hash." }
            }
        })
    })
    .await?;
    Ok(layout("Address", page))
}

fn system_name(a: &Address) -> Option<&'static str> {
    [
        (trellis_system::GOVERNANCE_ADDRESS, "governance"),
        (trellis_system::EVIDENCE_ADDRESS, "evidence"),
        (trellis_system::IDENTIFIERS_ADDRESS, "identifiers"),
        (trellis_system::DIDS_ADDRESS, "DIDs"),
    ]
    .into_iter()
    .find_map(|(address, name)| (address == *a).then_some(name))
}

/// Blocks whose certificates the validators table counts.
const UPTIME_WINDOW: u64 = 100;

/// One validator's record over the last [`UPTIME_WINDOW`] blocks.
struct Uptime {
    info: trellis_rpc::ValidatorInfo,
    signed: u64,
    last_signed: Option<u64>,
}

/// The current validators and how many of the last blocks each one's precommit certified.
async fn uptime<B: Backend>(x: &Arc<Explorer<B>>) -> Result<(Vec<Uptime>, u64), PageError> {
    let validators = x.backend.validators();
    let backend = x.backend.clone();
    trellis_storage::blocking(move || {
        let tip = backend
            .view()
            .map_err(PageError::internal)?
            .tip()
            .map_err(PageError::internal)?
            .map_or(0, |h| h.0);
        let first = tip.saturating_sub(UPTIME_WINDOW - 1).max(1);
        let mut rows: Vec<Uptime> = validators
            .into_iter()
            .map(|info| Uptime {
                info,
                signed: 0,
                last_signed: None,
            })
            .collect();
        for h in first..=tip {
            let Some(c) = backend.certificate(h) else {
                continue;
            };
            for s in &c.signatures {
                let signer = format!("{:#x}", s.validator);
                if let Some(row) = rows
                    .iter_mut()
                    .find(|r| r.info.address.eq_ignore_ascii_case(&signer))
                {
                    row.signed += 1;
                    row.last_signed = Some(h);
                }
            }
        }
        Ok((rows, tip.saturating_sub(first) + u64::from(tip >= first)))
    })
    .await
    .map_err(PageError::internal)?
}

fn validators_table(rows: &[Uptime], window: u64) -> Markup {
    html! {
        table #validators {
            thead { tr { th { "Node key" } th { "Consensus address" } th { "Power" } th { "Signed (last " (window) " blocks)" } th { "Last signed" } } }
            tbody {
                @for r in rows {
                    tr {
                        td.mono { (short(&r.info.public_key)) }
                        td.mono { (r.info.address.to_lowercase()) }
                        td { (r.info.power) }
                        td.uptime {
                            (r.signed) " (" ((r.signed * 100).checked_div(window).unwrap_or(100)) "%)"
                        }
                        td { @match r.last_signed { Some(h) => a href={ "/explorer/block/" (h) } { (h) }, None => span.error { "not in the window" } } }
                    }
                }
            }
        }
    }
}

pub(crate) async fn organizations<B: Backend>(State(x): State<Arc<Explorer<B>>>) -> Page {
    let (uptime, window) = uptime(&x).await?;
    let page = read(&x, move |_, view| {
        let mut slots = governance_slots(view);
        let mut gov = Governance::new(&mut slots);
        // Bounded registries (organisations ≤ 1,024, validators ≤ 256): shown whole.
        let orgs = gov.organizations(0, trellis_system::governance::MAX_ORGANIZATIONS).map_err(PageError::internal)?;
        let mut nodes = Vec::new();
        for o in &orgs {
            for key in gov.organization_nodes(&o.id).map_err(PageError::internal)? {
                nodes.extend(gov.node(&key).map_err(PageError::internal)?);
            }
        }
        Ok(html! {
            h1 { "Organisations" }
            table #organizations {
                thead { tr { th { "Id" } th { "Name" } th { "Roles" } th { "Admins" } th { "Joined at" } } }
                tbody {
                    @for o in &orgs {
                        tr {
                            td { (o.id.as_str()) }
                            td { (o.name) }
                            td { @if o.member { "member " } @if o.supervisor { "supervisor" } }
                            td { @for a in &o.admins { (address_link(a)) " " } }
                            td { a href={ "/explorer/block/" (o.joined_at) } { (o.joined_at) } }
                        }
                    }
                }
            }
            h2 { "Validators" }
            (validators_table(&uptime, window))
            h2 { "Nodes" }
            table #nodes {
                thead { tr { th { "Node key" } th { "Organisation" } th { "Role" } th { "Power" } } }
                tbody {
                    @for n in &nodes {
                        tr { td.mono { (n.public_key) } td { (n.org.as_str()) } td { (role_name(n.role)) } td { (n.power) } }
                    }
                }
            }
        })
    })
    .await?;
    Ok(layout("Organisations", page))
}

pub(crate) async fn proposals<B: Backend>(
    State(x): State<Arc<Explorer<B>>>,
    Query(paging): Query<Paging>,
) -> Page {
    let offset = paging.offset.unwrap_or(0);
    let page = read(&x, move |_, view| {
        let height = tip(view)?;
        let mut slots = governance_slots(view);
        let mut gov = Governance::new(&mut slots);
        let total = gov.config().map_err(PageError::internal)?.proposals;
        // Newest first.
        let newest = total.saturating_sub(offset);
        let mut rows = Vec::new();
        for id in (newest.saturating_sub(PAGE)..newest).rev() {
            if let Some(p) = gov.proposal(id).map_err(PageError::internal)? {
                let votes = gov.votes(id).map_err(PageError::internal)?;
                rows.push((p, votes));
            }
        }
        Ok(html! {
            h1 { "Proposals (" (total) ")" }
            table #proposals {
                thead { tr { th { "Id" } th { "What" } th { "Proposed by" } th { "Status" } th { "Approvals" } th { "Rejections" } th { "Created at" } } }
                tbody {
                    @for (p, votes) in &rows {
                        tr {
                            td { (p.id) }
                            td { (p.action.describe()) @if let Some(f) = &p.failure { br; span.error { (f) } } }
                            td { (p.proposer_org.as_str()) " " (address_link(&p.proposer)) }
                            td.status { (p.status_at(height).name()) }
                            td { @for o in &votes.approvals { (o.as_str()) " " } }
                            td { @for o in &votes.rejections { (o.as_str()) " " } }
                            td { a href={ "/explorer/block/" (p.created_at) } { (p.created_at) } }
                        }
                    }
                }
            }
            (pager("/explorer/proposals", offset, rows.len(), total))
        })
    })
    .await?;
    Ok(layout("Proposals", page))
}

pub(crate) async fn audit<B: Backend>(
    State(x): State<Arc<Explorer<B>>>,
    Query(paging): Query<Paging>,
) -> Page {
    let offset = paging.offset.unwrap_or(0);
    let page = read(&x, move |_, view| {
        let mut slots = governance_slots(view);
        let mut gov = Governance::new(&mut slots);
        let total = gov.config().map_err(PageError::internal)?.audits;
        let newest = total.saturating_sub(offset);
        let mut rows = Vec::new();
        for seq in (newest.saturating_sub(PAGE)..newest).rev() {
            rows.extend(gov.audit_entry(seq).map_err(PageError::internal)?);
        }
        Ok(html! {
            h1 { "Audit log (" (total) " entries)" }
            p { "Export: " a #export-csv href="/explorer/audit.csv" { "CSV" } " · " a #export-json href="/explorer/audit.json" { "JSON" }
                " (oldest first, up to 1,000 entries a file: add " code { "?offset=N" } ")." }
            table #audit {
                thead { tr { th { "#" } th { "Block" } th { "Transaction" } th { "Action" } th { "Organisation" } th { "Actor" } th { "Detail" } } }
                tbody {
                    @for a in &rows {
                        tr {
                            td { (a.seq) }
                            td { a href={ "/explorer/block/" (a.height) } { (a.height) } }
                            td { @if a.tx_hash != B256::ZERO { a.mono href={ "/explorer/tx/" (a.tx_hash) } { (short(&a.tx_hash)) } } }
                            td.action { (a.action) }
                            td { (a.org) }
                            td { @if a.actor != Address::ZERO { (address_link(&a.actor)) } }
                            td { (a.detail) }
                        }
                    }
                }
            }
            (pager("/explorer/audit", offset, rows.len(), total))
        })
    })
    .await?;
    Ok(layout("Audit log", page))
}

/// Proposals the freeze scan reads at most, newest first.
const FREEZE_SCAN: u64 = 10_000;

/// The executed proposal that froze each target: the newest executed freeze of it among the
/// last [`FREEZE_SCAN`] proposals.
pub(crate) fn freezes<S: trellis_system::Slots>(
    gov: &mut Governance<'_, S>,
) -> Result<
    std::collections::HashMap<Address, (Proposal, trellis_system::governance::Votes)>,
    PageError,
> {
    let total = gov.config().map_err(PageError::internal)?.proposals;
    let mut out = std::collections::HashMap::new();
    for id in (total.saturating_sub(FREEZE_SCAN)..total).rev() {
        let Some(p) = gov.proposal(id).map_err(PageError::internal)? else {
            continue;
        };
        if let (Action::Freeze { target }, Status::Executed) = (&p.action, p.status) {
            if !out.contains_key(target) {
                let votes = gov.votes(id).map_err(PageError::internal)?;
                out.insert(*target, (p.clone(), votes));
            }
        }
    }
    Ok(out)
}

/// Which of `votes`' approving organisations are supervisors.
pub(crate) fn supervisors_among<S: trellis_system::Slots>(
    gov: &mut Governance<'_, S>,
    orgs: &[trellis_primitives::OrgId],
) -> Result<Vec<String>, PageError> {
    let mut out = Vec::new();
    for o in orgs {
        if gov
            .organization(o)
            .map_err(PageError::internal)?
            .is_some_and(|o| o.supervisor)
        {
            out.push(o.as_str().to_owned());
        }
    }
    Ok(out)
}

pub(crate) async fn frozen<B: Backend>(
    State(x): State<Arc<Explorer<B>>>,
    Query(paging): Query<Paging>,
) -> Page {
    let offset = paging.offset.unwrap_or(0);
    let page = read(&x, move |_, view| {
        let mut slots = governance_slots(view);
        let mut gov = Governance::new(&mut slots);
        let total = gov.frozen_count().map_err(PageError::internal)?;
        let frozen = gov.frozen(offset, PAGE).map_err(PageError::internal)?;
        let by = freezes(&mut gov)?;
        let mut rows = Vec::new();
        for a in frozen {
            let proposal = match by.get(&a) {
                Some((p, votes)) => {
                    let cosigners = supervisors_among(&mut gov, &votes.approvals)?;
                    Some((p.clone(), votes.approvals.clone(), cosigners))
                }
                None => None,
            };
            rows.push((a, proposal));
        }
        Ok(html! {
            h1 { "Frozen accounts and contracts (" (total) ")" }
            p { "Export: " a #frozen-csv href="/explorer/frozen.csv" { "CSV" } " · " a #frozen-json href="/explorer/frozen.json" { "JSON" } }
            table #frozen {
                thead { tr { th { "Address" } th { "Frozen by proposal" } th { "Proposed by" } th { "Approved by" } th { "Supervisor co-signers" } } }
                tbody {
                    @for (a, proposal) in &rows {
                        tr {
                            td { (address_link(a)) }
                            @match proposal {
                                Some((p, approvals, cosigners)) => {
                                    td { (p.id) " (block " a href={ "/explorer/block/" (p.created_at) } { (p.created_at) } ")" }
                                    td { (p.proposer_org.as_str()) " " (address_link(&p.proposer)) }
                                    td { @for o in approvals { (o.as_str()) " " } }
                                    td.cosigners { @for o in cosigners { (o) " " } }
                                },
                                None => { td colspan="4" { "frozen at genesis, or by a proposal older than the last 10,000" } },
                            }
                        }
                    }
                }
            }
            (pager("/explorer/frozen", offset, rows.len(), total))
        })
    })
    .await?;
    Ok(layout("Frozen", page))
}

/// What a supervisor watches, for every chain this node hosts (one today): whether the chain
/// is live, its validators' signing, proposals awaiting votes (freezes awaiting a supervisor's
/// co-signature first), frozen accounts, the latest audit entries, and the exports.
pub(crate) async fn supervision<B: Backend>(State(x): State<Arc<Explorer<B>>>) -> Page {
    let chain_id = x.backend.chain_id();
    let health = x.backend.health();
    let reasons = trellis_rpc::rest::not_ready(&health);
    let (uptime, window) = uptime(&x).await?;
    let section = read(&x, move |_, view| {
        let height = tip(view)?;
        let mut slots = governance_slots(view);
        let mut gov = Governance::new(&mut slots);
        let config = gov.config().map_err(PageError::internal)?;
        let mut awaiting = Vec::new();
        for p in gov.pending_proposals(height).map_err(PageError::internal)? {
            let votes = gov.votes(p.id).map_err(PageError::internal)?;
            let cosigned = !supervisors_among(&mut gov, &votes.approvals)?.is_empty();
            awaiting.push((p, votes, cosigned));
        }
        let frozen = gov.frozen_count().map_err(PageError::internal)?;
        let mut recent = Vec::new();
        for seq in (config.audits.saturating_sub(10)..config.audits).rev() {
            recent.extend(gov.audit_entry(seq).map_err(PageError::internal)?);
        }
        Ok(html! {
            section.chain {
                h2 { "Chain " (chain_id) }
                p #readiness {
                    @if reasons.is_empty() {
                        "Live: height " (height) ", last block " (health.block_age_ms / 1000) " s ago."
                    } @else {
                        span.error { "Not ready: " (reasons.join("; ")) }
                    }
                }
                h3 { "Validators" }
                (validators_table(&uptime, window))
                h3 { "Awaiting votes (" (awaiting.len()) ")" }
                table #awaiting {
                    thead { tr { th { "Id" } th { "What" } th { "Proposed by" } th { "Approvals" } th { "Expires after block" } } }
                    tbody {
                        @for (p, votes, cosigned) in &awaiting {
                            tr {
                                td { (p.id) }
                                td { (p.action.describe())
                                    @if matches!(p.action, Action::Freeze { .. } | Action::Unfreeze { .. }) && !cosigned && config.supervisors > 0 {
                                        br; strong.error { "needs a supervisor's co-signature" }
                                    }
                                }
                                td { (p.proposer_org.as_str()) }
                                td { @for o in &votes.approvals { (o.as_str()) " " } }
                                td { (p.expires_at) }
                            }
                        }
                    }
                }
                h3 { "Frozen" }
                p { a href="/explorer/frozen" { (frozen) " accounts and contracts" } }
                h3 { "Latest audit entries" }
                table #recent-audit {
                    thead { tr { th { "#" } th { "Block" } th { "Action" } th { "Organisation" } th { "Detail" } } }
                    tbody {
                        @for a in &recent {
                            tr {
                                td { (a.seq) }
                                td { a href={ "/explorer/block/" (a.height) } { (a.height) } }
                                td { (a.action) }
                                td { (a.org) }
                                td { (a.detail) }
                            }
                        }
                    }
                }
                h3 { "Exports" }
                ul {
                    li { "Audit log: " a href="/explorer/audit.csv" { "CSV" } ", " a href="/explorer/audit.json" { "JSON" }
                        "; with proofs: " code { "trellis audit export --rpc <this node> --out audit.json" }
                        ", checked offline by " code { "trellis audit verify audit.json --genesis genesis.json --csv audit.csv" } }
                    li { "Frozen accounts and contracts: " a href="/explorer/frozen.csv" { "CSV" } ", " a href="/explorer/frozen.json" { "JSON" } }
                }
            }
        })
    })
    .await?;
    Ok(layout(
        "Supervision",
        html! {
            h1 { "Supervision" }
            p { "Every chain this node hosts." }
            (section)
        },
    ))
}

/// The sign-in form for nodes that restrict reads: the token is kept in a session cookie
/// (HttpOnly, SameSite=Strict, explorer paths only) and checked on every page like a bearer
/// token.
pub(crate) async fn login_form() -> Markup {
    layout(
        "Sign in",
        html! {
            h1 { "Sign in" }
            p { "This node serves its ledger to the organisations it trusts. Paste a read token your organisation's admin issued ("
                code { "trellis org token issue" } ")." }
            form method="post" action="/explorer/login" {
                label for="token" { "Read token " }
                input #token type="password" name="token" autocomplete="off" required;
                " "
                button type="submit" { "Sign in" }
            }
            p { a href="/explorer/logout" { "Sign out" } }
        },
    )
}

pub(crate) async fn login(body: String) -> Result<Response, PageError> {
    let token = form_urlencoded::parse(body.as_bytes())
        .find_map(|(k, v)| (k == "token").then(|| v.trim().to_owned()))
        .filter(|t| !t.is_empty())
        .ok_or_else(|| PageError::bad_request("paste a read token"))?;
    Ok((
        StatusCode::SEE_OTHER,
        [
            (
                header::SET_COOKIE,
                trellis_rpc::access::session_cookie(&token),
            ),
            (header::LOCATION, "/explorer".to_owned()),
        ],
    )
        .into_response())
}

pub(crate) async fn logout() -> Response {
    (
        StatusCode::SEE_OTHER,
        [
            (
                header::SET_COOKIE,
                trellis_rpc::access::session_cookie_cleared(),
            ),
            (header::LOCATION, "/explorer/login".to_owned()),
        ],
    )
        .into_response()
}

/// What a page's proof is checked against: the chain's current validators.
fn trusted<B: Backend>(x: &Explorer<B>) -> Result<trellis_sdk::Trusted, String> {
    trellis_light::ValidatorSet::from_keys(
        x.backend
            .validators()
            .iter()
            .map(|v| (v.public_key, v.power)),
    )
    .map(|validators| trellis_sdk::Trusted {
        chain_id: x.backend.chain_id(),
        validators,
    })
    .map_err(|e| e.to_string())
}

/// Precommit signatures the certificate of a proof's block carries.
fn signatures(proof: &trellis_system::proof::StateProof) -> usize {
    trellis_light::decode_certificate(&proof.certificate)
        .map(|c| c.signatures.len())
        .unwrap_or_default()
}

/// "Verified against N validator signatures at height H", or why not.
fn verified(verdict: &Result<u64, String>, signatures: usize) -> Markup {
    html! {
        @match verdict {
            Ok(height) => p #verified.verified {
                "Verified against " (signatures) " validator signatures at height "
                a href={ "/explorer/block/" (height) } { (height) } "."
            },
            Err(e) => p #verified.error { "Not verified: " (e) },
        }
    }
}

/// An evidence record, checked in the page with the SDK's verifier exactly as a client would:
/// the commit certificate of the block the proof is taken at against the chain's current
/// validators, then the account and storage proofs, then the record decoded from the proven
/// slots.
pub(crate) async fn evidence<B: Backend>(
    State(x): State<Arc<Explorer<B>>>,
    Path(id): Path<String>,
) -> Page {
    let id: B256 = id
        .parse()
        .map_err(|_| PageError::bad_request("an evidence id is 32 bytes of 0x-hex"))?;
    let backend = x.backend.clone();
    let found =
        trellis_storage::blocking(move || trellis_rpc::rest::evidence_with_proof(&*backend, id))
            .await
            .map_err(PageError::internal)?;
    let (record, proof) = found?;
    let signatures = signatures(&proof);
    let response = trellis_sdk::evidence::EvidenceResponse {
        record: record.clone(),
        proof,
    };
    let verdict = trusted(&x).and_then(|t| {
        trellis_sdk::evidence::verify(&response, &t)
            .map(|v| v.proven_at)
            .map_err(|e| e.to_string())
    });
    Ok(layout(
        "Evidence",
        html! {
            h1 { "Evidence" }
            (verified(&verdict, signatures))
            table.fields {
                tr { th { "Id" } td.mono #evidence-id { (record.id) } }
                tr { th { "Digest" } td.mono { (record.algorithm) ":" (record.digest) } }
                tr { th { "Submitter" } td { (address_link(&record.submitter)) } }
                tr { th { "Organisation" } td { @match &record.org { Some(o) => (o.as_str()), None => "none" } } }
                tr { th { "Notarized in block" } td { a href={ "/explorer/block/" (record.height) } { (record.height) } } }
                tr { th { "Time (UTC)" } td { (time(record.timestamp_ms)) } }
                tr { th { "Content type" } td { (record.content_type) } }
                tr { th { "Metadata" } td.mono { (String::from_utf8_lossy(&record.metadata)) } }
            }
            p.note { "The same record and proof: " a href={ "/v1/evidence/" (record.id) } { "/v1/evidence/" (record.id) }
                "; check it offline with " code { "trellis evidence verify" } "." }
        },
    ))
}

/// An identifier's record, its proof checked in the page like the evidence page's.
pub(crate) async fn identifier<B: Backend>(
    State(x): State<Arc<Explorer<B>>>,
    Path(raw): Path<String>,
) -> Page {
    let id = trellis_system::identifiers::Identifier::parse(&raw)
        .map_err(|e| PageError::bad_request(e.to_string()))?;
    let backend = x.backend.clone();
    let lookup = id.clone();
    let (record, proof) = trellis_storage::blocking(move || {
        trellis_rpc::handles::identifier_with_proof(&*backend, &lookup)
    })
    .await
    .map_err(PageError::internal)??;
    let Some(record) = record else {
        return Err(PageError::not_found(format!(
            "identifier {} is not registered",
            id.as_str()
        )));
    };
    let signatures = signatures(&proof);
    let verdict =
        trusted(&x).and_then(
            |t| match trellis_sdk::identifiers::verify(&id, &proof, &t) {
                Ok(Some(proven)) if proven == record => Ok(proof.height),
                Ok(_) => Err("the proven record differs from the served one".to_string()),
                Err(e) => Err(e.to_string()),
            },
        );
    Ok(layout(
        "Identifier",
        html! {
            h1 { "Identifier " span.mono #identifier { (id.as_str()) } }
            (verified(&verdict, signatures))
            table.fields {
                tr { th { "Registered by" } td #identifier-org { (record.org.as_str()) } }
                tr { th { "Created in block" } td { a href={ "/explorer/block/" (record.created) } { (record.created) } } }
                tr { th { "Updated in block" } td { a href={ "/explorer/block/" (record.updated) } { (record.updated) } } }
            }
            h2 { "Values" }
            table #values {
                thead { tr { th { "Index" } th { "Type" } th { "Data" } th { "TTL (s)" } } }
                tbody {
                    @for v in &record.values {
                        tr {
                            td { (v.index) }
                            td { (v.kind) }
                            td.mono { (String::from_utf8(v.data.clone()).unwrap_or_else(|_| format!("0x{}", alloy_primitives::hex::encode(&v.data)))) }
                            td { (v.ttl) }
                        }
                    }
                }
            }
            p.note { "The same record, in the Handle proxy's shape: "
                a href={ "/api/handles/" (id.as_str()) } { "/api/handles/" (id.as_str()) } "." }
        },
    ))
}

/// A DID's latest document, its proof checked in the page like the evidence page's.
pub(crate) async fn did<B: Backend>(
    State(x): State<Arc<Explorer<B>>>,
    Path(raw): Path<String>,
) -> Page {
    let did = trellis_system::dids::Did::parse(&raw)
        .map_err(|e| PageError::bad_request(e.to_string()))?;
    if did.chain_id != x.backend.chain_id() {
        return Err(PageError::not_found(format!(
            "{raw} belongs to chain {}, not this one",
            did.chain_id
        )));
    }
    let backend = x.backend.clone();
    let lookup = did;
    let found =
        trellis_storage::blocking(move || trellis_rpc::dids::latest_with_proof(&*backend, &lookup))
            .await
            .map_err(PageError::internal)?
            .map_err(|e| PageError::internal(format!("{e:?}")))?;
    let Some((version, proof)) = found else {
        return Err(PageError::not_found(format!("{raw} does not exist")));
    };
    let signatures = signatures(&proof);
    let verdict = trusted(&x).and_then(|t| {
        match trellis_sdk::dids::verify(&did, version.version, &proof, &t) {
            Ok(Some(proven)) if proven == version => Ok(proof.height),
            Ok(_) => Err("the proven version differs from the served one".to_string()),
            Err(e) => Err(e.to_string()),
        }
    });
    let document = serde_json::to_string_pretty(&trellis_rpc::dids::document(&did, &version))
        .unwrap_or_default();
    Ok(layout(
        "DID",
        html! {
            h1 { "DID" }
            p.mono #did { (did.to_did_string()) }
            (verified(&verdict, signatures))
            table.fields {
                tr { th { "Version" } td #did-version { (version.version) } }
                tr { th { "Updated in block" } td { a href={ "/explorer/block/" (version.height) } { (version.height) } } }
                tr { th { "Time (UTC)" } td { (time(version.timestamp_ms)) } }
                tr { th { "Deactivated" } td { @if version.deactivated { span.error { "yes" } } @else { "no" } } }
            }
            h2 { "Document" }
            pre.mono #did-document { (document) }
            p.note { "The Universal Resolver answer: "
                a href={ "/1.0/identifiers/" (did.to_did_string()) } { "/1.0/identifiers/" (did.to_did_string()) } "." }
        },
    ))
}
