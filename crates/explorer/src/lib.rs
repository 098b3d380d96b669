//! The built-in explorer: read-only HTML pages under `/explorer` on the RPC port, rendered on
//! the server from committed state (no indexer, so no lag, and no JavaScript needed).
//!
//! Pages: the chain's latest blocks and a search box; a block with its transactions and the
//! validators whose precommits certify it; a transaction with its receipt and its events
//! decoded with the ABIs in `contracts/artifacts` ([`abi`]) and its revert reason; an address
//! (balance, nonce, code, organisation, frozen, its transactions from the store's address
//! index); organisations, nodes and validators; proposals and their
//! votes; the audit log (with CSV and JSON export, [`export`]); frozen accounts and
//! contracts. Every read runs on the blocking pool against one snapshot; listings page.
//!
//! The router is composed by the node into the RPC server, so the server's limits, metrics
//! and read access control apply to every page.

pub mod abi;
pub mod export;
mod pages;

use axum::routing::get;
use axum::Router;
use std::sync::Arc;
use trellis_rpc::Backend;

/// Where the explorer is served.
pub const PREFIX: &str = "/explorer";

/// Most entries one listing page shows.
pub const PAGE: u64 = 100;

/// State shared by the explorer's handlers.
pub struct Explorer<B> {
    backend: Arc<B>,
    events: abi::Events,
}

/// The explorer's routes over `backend`.
pub fn router<B: Backend>(backend: Arc<B>) -> Router {
    let state = Arc::new(Explorer {
        backend,
        events: abi::Events::load(),
    });
    Router::new()
        .route("/explorer", get(pages::home::<B>))
        .route("/explorer/", get(pages::home::<B>))
        .route("/explorer/search", get(pages::search::<B>))
        .route("/explorer/block/{id}", get(pages::block::<B>))
        .route("/explorer/tx/{hash}", get(pages::transaction::<B>))
        .route("/explorer/address/{address}", get(pages::address::<B>))
        .route("/explorer/evidence/{id}", get(pages::evidence::<B>))
        .route("/explorer/identifier/{*id}", get(pages::identifier::<B>))
        .route("/explorer/did/{did}", get(pages::did::<B>))
        .route("/explorer/organizations", get(pages::organizations::<B>))
        .route("/explorer/proposals", get(pages::proposals::<B>))
        .route("/explorer/audit", get(pages::audit::<B>))
        .route("/explorer/audit.csv", get(export::audit_csv::<B>))
        .route("/explorer/audit.json", get(export::audit_json::<B>))
        .route("/explorer/audit.bundle", get(export::audit_bundle::<B>))
        .route("/explorer/frozen", get(pages::frozen::<B>))
        .route("/explorer/frozen.csv", get(export::frozen_csv::<B>))
        .route("/explorer/frozen.json", get(export::frozen_json::<B>))
        .route("/explorer/frozen.bundle", get(export::frozen_bundle::<B>))
        .route("/explorer/supervision", get(pages::supervision::<B>))
        .route("/explorer/style.css", get(pages::style))
        .route("/explorer/login", get(pages::login_form).post(pages::login))
        .route("/explorer/logout", get(pages::logout))
        .with_state(state)
}
