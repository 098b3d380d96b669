//! A node's metrics: Trellis's own families on a registry the node owns, labelled by chain
//! id, and the `/metrics` endpoint that serves them in the OpenMetrics text format beside the
//! engine's (Malachite records consensus, sync, WAL and libp2p metrics in its own
//! `prometheus-client` registry, which is process-wide and labelled by moniker).
//!
//! Names: ours start with `trellis_`; the EIP-2159 names (`ethereum_blockchain_height`,
//! `ethereum_best_known_block_number`, `ethereum_peer_count`) are there too, so generic
//! Ethereum dashboards work. What is counted where it happens (commits, admissions) is
//! updated in place; what is a level (pool size, database size, peers) is read when scraped
//! through the node's refresh hook, so a scrape never shows a stale level.

use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use axum::routing::get;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
pub use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use std::borrow::Cow;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::task::JoinHandle;

/// The content type of the OpenMetrics text format.
pub const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ValidatorLabel {
    /// The validator's consensus address (hex).
    pub validator: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    /// A fixed, short reason (never free text: the label set stays bounded).
    pub reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CallLabels {
    /// A method the server has, or `unknown` (what an outsider sends cannot grow the set).
    pub method: String,
    /// `ok`, or the JSON-RPC error code.
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct MethodLabel {
    pub method: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RestLabels {
    /// The REST prefix the path starts with (`/v1/`, `/api/`, `/1.0/`, `/health`).
    pub route: &'static str,
    /// The HTTP status code.
    pub status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabel {
    pub route: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DoorLabel {
    /// `jsonrpc` or `rest`.
    pub door: &'static str,
}

fn latency() -> Histogram {
    Histogram::new(exponential_buckets(0.000_25, 2.0, 16))
}

/// The JSON-RPC and REST server's families.
#[derive(Clone)]
pub struct RpcMetrics {
    /// JSON-RPC calls by method and outcome (a batch counts once, as method `batch`).
    pub calls: Family<CallLabels, Counter>,
    pub call_seconds: Family<MethodLabel, Histogram, fn() -> Histogram>,
    /// REST requests by route and status.
    pub rest_requests: Family<RestLabels, Counter>,
    pub rest_seconds: Family<RouteLabel, Histogram, fn() -> Histogram>,
    /// Requests refused by the per-client rate limit.
    pub rate_limited: Family<DoorLabel, Counter>,
    /// Requests refused by read access control, by reason.
    pub access_refused: Family<ReasonLabel, Counter>,
    /// Identifier resolutions by where they were answered from (`cache`, `state`).
    pub identifier_resolutions: Family<SourceLabel, Counter>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SourceLabel {
    pub source: &'static str,
}

impl Default for RpcMetrics {
    fn default() -> Self {
        RpcMetrics {
            calls: Family::default(),
            call_seconds: Family::new_with_constructor(latency),
            rest_requests: Family::default(),
            rest_seconds: Family::new_with_constructor(latency),
            rate_limited: Family::default(),
            access_refused: Family::default(),
            identifier_resolutions: Family::default(),
        }
    }
}

impl RpcMetrics {
    fn register(&self, registry: &mut Registry) {
        registry.register(
            "rpc_calls",
            "JSON-RPC calls by method and outcome (ok or the error code)",
            self.calls.clone(),
        );
        registry.register(
            "rpc_call_seconds",
            "Time to answer a JSON-RPC call, by method",
            self.call_seconds.clone(),
        );
        registry.register(
            "rest_requests",
            "REST requests by route and HTTP status",
            self.rest_requests.clone(),
        );
        registry.register(
            "rest_request_seconds",
            "Time to answer a REST request, by route",
            self.rest_seconds.clone(),
        );
        registry.register(
            "rpc_rate_limited",
            "Requests refused by the per-client rate limit, by door (jsonrpc, rest)",
            self.rate_limited.clone(),
        );
        registry.register(
            "rpc_access_refused",
            "Requests refused by read access control (rpc.read_access), by reason",
            self.access_refused.clone(),
        );
        registry.register(
            "identifier_resolutions",
            "Identifier resolutions by where the answer came from (cache: the resolution cache; state: committed state)",
            self.identifier_resolutions.clone(),
        );
    }

    /// Counts an identifier resolution answered from `source` (`cache` or `state`).
    pub fn identifier_resolved(&self, source: &'static str) {
        self.identifier_resolutions
            .get_or_create(&SourceLabel { source })
            .inc();
    }

    /// Counts a request refused by read access control.
    pub fn access_refused(&self, reason: &'static str) {
        self.access_refused
            .get_or_create(&ReasonLabel { reason })
            .inc();
    }

    /// Records an answered JSON-RPC call.
    pub fn call(&self, method: &str, error_code: Option<i32>, seconds: f64) {
        let outcome = error_code.map_or_else(|| "ok".to_string(), |code| code.to_string());
        self.calls
            .get_or_create(&CallLabels {
                method: method.to_string(),
                outcome,
            })
            .inc();
        self.call_seconds
            .get_or_create(&MethodLabel {
                method: method.to_string(),
            })
            .observe(seconds);
    }

    /// Records an answered REST request.
    pub fn rest(&self, route: &'static str, status: u16, seconds: f64) {
        self.rest_requests
            .get_or_create(&RestLabels {
                route,
                status: status.to_string(),
            })
            .inc();
        self.rest_seconds
            .get_or_create(&RouteLabel { route })
            .observe(seconds);
    }

    /// Counts a request refused by the rate limit.
    pub fn rate_limited(&self, door: &'static str) {
        self.rate_limited.get_or_create(&DoorLabel { door }).inc();
    }
}

/// A block just committed, as its metrics see it.
#[derive(Clone, Copy, Debug)]
pub struct CommittedBlock {
    pub height: u64,
    /// Its timestamp and its parent's (none for the first block), in ms.
    pub timestamp_ms: u64,
    pub parent_timestamp_ms: Option<u64>,
    /// When it was committed here, in ms.
    pub now_ms: u64,
    pub transactions: usize,
    /// The consensus round it was decided in.
    pub round: u32,
    /// How long writing it took.
    pub commit_seconds: f64,
}

/// The families of one chain.
#[derive(Clone)]
pub struct ChainMetrics {
    /// Height of the last committed block (`trellis_chain_height`).
    pub height: Gauge,
    /// The same, under EIP-2159's name.
    pub eth_height: Gauge,
    /// The highest height this node knows of (EIP-2159); equals the height when not behind.
    pub eth_best_known: Gauge,
    /// Transaction-gossip peers connected (EIP-2159's `ethereum_peer_count`).
    pub peers: Gauge,
    /// Committed transactions.
    pub transactions: Counter,
    /// Committed blocks.
    pub blocks: Counter,
    /// Transactions per committed block.
    pub block_transactions: Histogram,
    /// Time between the timestamps of consecutive blocks.
    pub block_interval: Histogram,
    /// From a block's timestamp (its proposer built it) to its commit on this node.
    pub finality: Histogram,
    /// The consensus round in which each height was decided (0 when the first proposal won).
    pub decided_round: Histogram,
    /// Time to write a decided block to the database.
    pub commit: Histogram,
    /// Voting power whose precommit is missing from the last block's certificate, and the
    /// total power of that block's validator set.
    pub missing_power: Gauge,
    pub total_power: Gauge,
    /// Blocks whose certificate lacks the validator's precommit.
    pub missed_signatures: Family<ValidatorLabel, Counter>,
    /// The last height whose certificate carries the validator's precommit.
    pub last_signed_height: Family<ValidatorLabel, Gauge>,
    /// Transactions in the pool, and their encoded bytes.
    pub pool_transactions: Gauge,
    pub pool_bytes: Gauge,
    /// Transactions refused at admission, by reason.
    pub pool_rejections: Family<ReasonLabel, Counter>,
    /// The pool's capacity (`[mempool] max_txs`, `max_bytes`).
    pub pool_capacity_transactions: Gauge,
    pub pool_capacity_bytes: Gauge,
    /// Size of the database file.
    pub database_bytes: Gauge,
    /// Space left for unprivileged users on the data directory's file system, and its size.
    pub disk_free_bytes: Gauge,
    pub disk_total_bytes: Gauge,
    /// Governance and services, as committed state holds them.
    pub organizations: Gauge,
    pub member_organizations: Gauge,
    pub registered_nodes: Gauge,
    pub frozen: Gauge,
    pub proposals: Gauge,
    /// Proposals still open for votes.
    pub proposals_pending: Gauge,
    pub audit_entries: Gauge,
    pub evidence_records: Gauge,
}

impl ChainMetrics {
    fn new() -> ChainMetrics {
        ChainMetrics {
            height: Gauge::default(),
            eth_height: Gauge::default(),
            eth_best_known: Gauge::default(),
            peers: Gauge::default(),
            transactions: Counter::default(),
            blocks: Counter::default(),
            block_transactions: Histogram::new(exponential_buckets(1.0, 4.0, 8)),
            block_interval: Histogram::new(exponential_buckets(0.05, 2.0, 10)),
            finality: Histogram::new(exponential_buckets(0.05, 2.0, 10)),
            decided_round: Histogram::new([0.0, 1.0, 2.0, 4.0, 8.0, 16.0]),
            commit: Histogram::new(exponential_buckets(0.001, 2.0, 12)),
            missing_power: Gauge::default(),
            total_power: Gauge::default(),
            missed_signatures: Family::default(),
            last_signed_height: Family::default(),
            pool_transactions: Gauge::default(),
            pool_bytes: Gauge::default(),
            pool_rejections: Family::default(),
            pool_capacity_transactions: Gauge::default(),
            pool_capacity_bytes: Gauge::default(),
            database_bytes: Gauge::default(),
            disk_free_bytes: Gauge::default(),
            disk_total_bytes: Gauge::default(),
            organizations: Gauge::default(),
            member_organizations: Gauge::default(),
            registered_nodes: Gauge::default(),
            frozen: Gauge::default(),
            proposals: Gauge::default(),
            proposals_pending: Gauge::default(),
            audit_entries: Gauge::default(),
            evidence_records: Gauge::default(),
        }
    }

    fn register(&self, registry: &mut Registry) {
        registry.register(
            "ethereum_blockchain_height",
            "The current height of the canonical chain (EIP-2159)",
            self.eth_height.clone(),
        );
        registry.register(
            "ethereum_best_known_block_number",
            "The estimated highest block available (EIP-2159)",
            self.eth_best_known.clone(),
        );
        registry.register(
            "ethereum_peer_count",
            "The current number of peers connected (EIP-2159; transaction-gossip peers)",
            self.peers.clone(),
        );
        let trellis = registry.sub_registry_with_prefix("trellis");
        trellis.register(
            "chain_height",
            "Height of the last committed block",
            self.height.clone(),
        );
        trellis.register(
            "transactions",
            "Transactions committed",
            self.transactions.clone(),
        );
        trellis.register("blocks", "Blocks committed", self.blocks.clone());
        trellis.register(
            "block_transactions",
            "Transactions per committed block",
            self.block_transactions.clone(),
        );
        trellis.register(
            "block_interval_seconds",
            "Time between the timestamps of consecutive blocks",
            self.block_interval.clone(),
        );
        trellis.register(
            "finality_seconds",
            "From a block's timestamp to its commit on this node",
            self.finality.clone(),
        );
        trellis.register(
            "consensus_decided_round",
            "The consensus round in which each height was decided",
            self.decided_round.clone(),
        );
        trellis.register(
            "commit_seconds",
            "Time to write a decided block to the database",
            self.commit.clone(),
        );
        trellis.register(
            "consensus_missing_voting_power",
            "Voting power whose precommit is missing from the last block's certificate",
            self.missing_power.clone(),
        );
        trellis.register(
            "consensus_total_voting_power",
            "Total voting power of the last block's validator set",
            self.total_power.clone(),
        );
        trellis.register(
            "validator_missed_signatures",
            "Blocks whose commit certificate lacks the validator's precommit",
            self.missed_signatures.clone(),
        );
        trellis.register(
            "validator_last_signed_height",
            "The last height whose commit certificate carries the validator's precommit",
            self.last_signed_height.clone(),
        );
        trellis.register(
            "mempool_transactions",
            "Transactions waiting in the pool",
            self.pool_transactions.clone(),
        );
        trellis.register(
            "mempool_bytes",
            "Encoded bytes of the transactions in the pool",
            self.pool_bytes.clone(),
        );
        trellis.register(
            "mempool_rejections",
            "Transactions refused at admission, by reason",
            self.pool_rejections.clone(),
        );
        trellis.register(
            "mempool_capacity_transactions",
            "Most transactions the pool holds",
            self.pool_capacity_transactions.clone(),
        );
        trellis.register(
            "mempool_capacity_bytes",
            "Most encoded bytes the pool holds",
            self.pool_capacity_bytes.clone(),
        );
        trellis.register(
            "disk_free_bytes",
            "Space left (for the node's user) on the file system of the data directory",
            self.disk_free_bytes.clone(),
        );
        trellis.register(
            "disk_total_bytes",
            "Size of the file system of the data directory",
            self.disk_total_bytes.clone(),
        );
        for (name, help, gauge) in [
            (
                "governance_organizations",
                "Organisations registered (members, supervisors and others)",
                &self.organizations,
            ),
            (
                "governance_member_organizations",
                "Member organisations (they vote)",
                &self.member_organizations,
            ),
            (
                "governance_nodes",
                "Node keys registered (the only peers the network admits)",
                &self.registered_nodes,
            ),
            (
                "governance_frozen",
                "Accounts and contracts frozen",
                &self.frozen,
            ),
            (
                "governance_proposals",
                "Governance proposals ever made (the next proposal id)",
                &self.proposals,
            ),
            (
                "governance_proposals_pending",
                "Governance proposals open for votes (not yet decided or expired)",
                &self.proposals_pending,
            ),
            (
                "governance_audit_entries",
                "Entries in the governance audit log",
                &self.audit_entries,
            ),
            (
                "evidence_records",
                "Evidence (notarization) records on chain",
                &self.evidence_records,
            ),
        ] {
            trellis.register(name, help, gauge.clone());
        }
        trellis.register(
            "database_bytes",
            "Size of the database file",
            self.database_bytes.clone(),
        );
        trellis.register(
            "peers",
            "Transaction-gossip peers connected",
            self.peers.clone(),
        );
    }

    /// Sets the height gauges (when the chain opens, and at each commit).
    pub fn at_height(&self, height: u64) {
        let height = i64::try_from(height).unwrap_or(i64::MAX);
        self.height.set(height);
        self.eth_height.set(height);
        if self.eth_best_known.get() < height {
            self.eth_best_known.set(height);
        }
    }

    /// Records a committed block, and which validators' precommits its certificate carries
    /// (`signers`) out of its validator set (`validators`: address and power).
    pub fn committed(
        &self,
        block: CommittedBlock,
        validators: &[(String, u64)],
        signers: &[String],
    ) {
        self.at_height(block.height);
        let height = i64::try_from(block.height).unwrap_or(i64::MAX);
        self.blocks.inc();
        self.transactions.inc_by(block.transactions as u64);
        self.block_transactions.observe(block.transactions as f64);
        if let Some(parent) = block.parent_timestamp_ms {
            self.block_interval
                .observe(block.timestamp_ms.saturating_sub(parent) as f64 / 1_000.0);
        }
        self.finality
            .observe(block.now_ms.saturating_sub(block.timestamp_ms) as f64 / 1_000.0);
        self.decided_round.observe(f64::from(block.round));
        self.commit.observe(block.commit_seconds);
        let mut missing = 0u64;
        let mut total = 0u64;
        for (validator, power) in validators {
            total = total.saturating_add(*power);
            let label = ValidatorLabel {
                validator: validator.clone(),
            };
            // Every validator of the set has a series from its first block (at 0 while it
            // signs), so dashboards and alerts see it before it misses anything.
            let missed = self.missed_signatures.get_or_create(&label);
            if signers.contains(validator) {
                self.last_signed_height.get_or_create(&label).set(height);
            } else {
                missing = missing.saturating_add(*power);
                missed.inc();
            }
        }
        self.missing_power
            .set(i64::try_from(missing).unwrap_or(i64::MAX));
        self.total_power
            .set(i64::try_from(total).unwrap_or(i64::MAX));
    }

    /// Counts a transaction refused at admission.
    pub fn rejected(&self, reason: &'static str) {
        self.pool_rejections
            .get_or_create(&ReasonLabel { reason })
            .inc();
    }
}

/// Sets a gauge from an unsigned level (saturating).
pub fn set_level(gauge: &Gauge, level: u64) {
    gauge.set(i64::try_from(level).unwrap_or(i64::MAX));
}

/// Trellis's registry of one node and the chain it runs.
pub struct Metrics {
    registry: Registry,
    pub chain: ChainMetrics,
    pub rpc: RpcMetrics,
}

impl Metrics {
    /// The families of chain `chain_id`, each labelled `chain_id="…"`.
    pub fn new(chain_id: u64) -> Metrics {
        let mut registry = Registry::default();
        let chain = ChainMetrics::new();
        let rpc = RpcMetrics::default();
        let labelled = registry
            .sub_registry_with_label((Cow::Borrowed("chain_id"), Cow::Owned(chain_id.to_string())));
        chain.register(labelled);
        rpc.register(labelled.sub_registry_with_prefix("trellis"));
        Metrics {
            registry,
            chain,
            rpc,
        }
    }

    /// The page `/metrics` serves: the engine's families, then ours, one `# EOF`.
    pub fn encode(&self) -> String {
        let mut engine = String::new();
        malachitebft_metrics::export(&mut engine);
        let mut page = valid_openmetrics(engine.strip_suffix("# EOF\n").unwrap_or(&engine));
        if prometheus_client::encoding::text::encode(&mut page, &self.registry).is_err() {
            // Encoding into a String cannot fail; say so rather than serve half a page.
            page = "# EOF\n".into();
        }
        page
    }
}

/// The engine's page made valid OpenMetrics. libp2p's gossipsub records peer scores in
/// histograms with negative buckets (`…_gossipsub_score_per_mesh`), and writes their `_sum`
/// (which OpenMetrics forbids for such histograms) and `_count` (allowed only beside a
/// `_sum`); strict parsers (Prometheus's own Python client) then refuse the whole page. Those
/// two lines are dropped (the `+Inf` bucket still holds the count).
///
/// The engine keeps one registry per process, so a node hosting several chains has each of
/// the engine's families registered once per chain; a family declared twice makes the page
/// invalid, so only its first declaration is kept (that chain's engine series).
fn valid_openmetrics(engine: &str) -> String {
    let negative: std::collections::HashSet<&str> = engine
        .lines()
        .filter(|line| line.contains("le=\"-"))
        .filter_map(|line| line.split_once("_bucket{").map(|(family, _)| family))
        .collect();
    let mut page = String::with_capacity(engine.len());
    let mut families = std::collections::HashSet::new();
    let (mut family, mut repeated) = ("", false);
    for line in engine.lines() {
        let declared = ["# HELP ", "# TYPE ", "# UNIT "]
            .iter()
            .find_map(|p| line.strip_prefix(p))
            .and_then(|rest| rest.split_whitespace().next());
        if let Some(name) = declared {
            if name != family {
                family = name;
                repeated = !families.insert(name);
            }
        }
        if repeated {
            continue;
        }
        let forbidden = line.split_once('{').is_some_and(|(name, _)| {
            [name.strip_suffix("_sum"), name.strip_suffix("_count")]
                .into_iter()
                .flatten()
                .any(|family| negative.contains(family))
        });
        if !forbidden {
            page.push_str(line);
            page.push('\n');
        }
    }
    page
}

/// Serves `GET /metrics` on `listen`; `refresh` runs before each scrape to read levels (off
/// the async workers, with the encoding: it may take locks and stat files).
pub async fn serve(
    listen: SocketAddr,
    metrics: Arc<Metrics>,
    refresh: Arc<dyn Fn() + Send + Sync>,
) -> std::io::Result<(SocketAddr, JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind(listen).await?;
    let addr = listener.local_addr()?;
    let app = axum::Router::new().route(
        "/metrics",
        get(move || {
            let (metrics, refresh) = (metrics.clone(), refresh.clone());
            async move {
                match tokio::task::spawn_blocking(move || {
                    refresh();
                    metrics.encode()
                })
                .await
                {
                    Ok(page) => ([(CONTENT_TYPE, OPENMETRICS)], page).into_response(),
                    Err(e) => {
                        tracing::error!(error = %e, "metrics could not be read");
                        axum::http::StatusCode::INTERNAL_SERVER_ERROR.into_response()
                    }
                }
            }
        }),
    );
    let task = tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "metrics server stopped");
        }
    });
    Ok((addr, task))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_committed_block_moves_every_family_and_the_page_has_one_eof() {
        let metrics = Metrics::new(1337);
        let validators = vec![("0xaa".to_string(), 10), ("0xbb".to_string(), 5)];
        metrics.chain.committed(
            CommittedBlock {
                height: 7,
                timestamp_ms: 10_500,
                parent_timestamp_ms: Some(10_000),
                now_ms: 10_900,
                transactions: 3,
                round: 1,
                commit_seconds: 0.004,
            },
            &validators,
            &["0xaa".to_string()],
        );
        metrics.chain.rejected("nonce_too_low");
        metrics.rpc.call("eth_blockNumber", None, 0.001);
        metrics.rpc.call("unknown", Some(-32601), 0.000_1);
        metrics.rpc.rest("/health", 200, 0.000_2);
        metrics.rpc.rate_limited("rest");
        let page = metrics.encode();
        assert!(page.ends_with("# EOF\n"));
        assert_eq!(page.matches("# EOF").count(), 1);
        for line in [
            "ethereum_blockchain_height{chain_id=\"1337\"} 7",
            "trellis_chain_height{chain_id=\"1337\"} 7",
            "trellis_transactions_total{chain_id=\"1337\"} 3",
            "trellis_consensus_missing_voting_power{chain_id=\"1337\"} 5",
            "trellis_validator_missed_signatures_total{chain_id=\"1337\",validator=\"0xbb\"} 1",
            "trellis_validator_last_signed_height{chain_id=\"1337\",validator=\"0xaa\"} 7",
            "trellis_mempool_rejections_total{chain_id=\"1337\",reason=\"nonce_too_low\"} 1",
            "trellis_validator_missed_signatures_total{chain_id=\"1337\",validator=\"0xaa\"} 0",
            "trellis_rpc_calls_total{chain_id=\"1337\",method=\"eth_blockNumber\",outcome=\"ok\"} 1",
            "trellis_rpc_calls_total{chain_id=\"1337\",method=\"unknown\",outcome=\"-32601\"} 1",
            "trellis_rest_requests_total{chain_id=\"1337\",route=\"/health\",status=\"200\"} 1",
            "trellis_rpc_rate_limited_total{chain_id=\"1337\",door=\"rest\"} 1",
            "trellis_rpc_call_seconds_count{chain_id=\"1337\",method=\"eth_blockNumber\"} 1",
        ] {
            assert!(page.contains(line), "{line} missing from\n{page}");
        }
    }

    #[test]
    fn a_family_the_engine_declares_once_per_hosted_chain_is_kept_once() {
        let engine = "\
# HELP height Current height.
# TYPE height gauge
height{moniker=\"a\"} 5
# HELP rounds Rounds.
# TYPE rounds counter
rounds_total{moniker=\"a\"} 1
# HELP height Current height.
# TYPE height gauge
height{moniker=\"a\"} 9
# HELP peers Peers.
# TYPE peers gauge
peers{moniker=\"a\"} 3
";
        let page = valid_openmetrics(engine);
        assert_eq!(page.matches("# TYPE height gauge").count(), 1, "{page}");
        assert!(page.contains("height{moniker=\"a\"} 5"), "{page}");
        assert!(!page.contains("} 9"), "{page}");
        assert!(page.contains("rounds_total{moniker=\"a\"} 1"), "{page}");
        assert!(page.contains("peers{moniker=\"a\"} 3"), "{page}");
    }

    #[test]
    fn a_histogram_with_negative_buckets_loses_its_sum_and_count_only() {
        let engine = "\
# TYPE score histogram
score_sum{hash=\"/a\"} -3.0
score_count{hash=\"/a\"} 1
score_bucket{le=\"-10.0\",hash=\"/a\"} 0
score_bucket{le=\"0.0\",hash=\"/a\"} 1
score_bucket{le=\"+Inf\",hash=\"/a\"} 1
# TYPE latency histogram
latency_sum 2.0
latency_count 1
latency_bucket{le=\"+Inf\"} 1
";
        let page = valid_openmetrics(engine);
        assert!(!page.contains("score_sum"));
        assert!(!page.contains("score_count"));
        assert!(page.contains("score_bucket{le=\"+Inf\",hash=\"/a\"} 1"));
        assert!(page.contains("latency_sum 2.0"));
        assert!(page.contains("latency_count 1"));
        assert_eq!(page.lines().count(), engine.lines().count() - 2);
    }
}
