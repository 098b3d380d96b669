//! Ethereum JSON-RPC (and the `trellis_*` namespace) over HTTP and WebSocket on one port,
//! served by jsonrpsee, with the built-in services' REST endpoints ([`rest`]) on the same
//! port.
//!
//! The server reads chain data through [`Backend`], which the node implements; it never
//! touches database tables itself. Errors follow Ethereum conventions: `-32602` for bad
//! parameters, `-32000` for rejected transactions and unavailable data, `3` with revert data
//! for reverted calls.

/// The typed `trellis_*` API this server implements.
pub use trellis_api as api;
pub mod access;
mod admin;
pub mod chains;
mod convert;
pub mod dids;
mod error;
mod governance;
pub mod handles;
mod limits;
mod logs;
mod measure;
mod methods;
pub mod rest;
pub mod tls;
pub mod xchain;

pub use access::{ReadAccess, ReadPolicy};
pub use admin::{AdminAuth, AdminAuthLayer, HostControl, UNAUTHORIZED};
pub use error::RpcError;
pub use limits::{ClientAddr, ClientLimiter, InvalidLimit, RateLimit, PROOF_COST, RATE_LIMITED};
pub use logs::{MAX_BLOCK_RANGE, MAX_LOGS};
pub use methods::{anchor_data, build_module, BlockTag, RpcContext};

use alloy_primitives::{Address, B256};
use jsonrpsee::server::{BatchRequestConfig, ServerBuilder, ServerConfig, ServerHandle};
use std::net::SocketAddr;
use std::sync::Arc;
use trellis_mempool::AdmissionError;
use trellis_storage::{StateView, StoreError};

/// What the RPC layer needs from a chain. Implemented by the node.
#[async_trait::async_trait]
pub trait Backend: Send + Sync + 'static {
    fn chain_id(&self) -> u64;
    /// Gas one transaction may ask for at most (the chain's `maxTransactionGas`).
    fn max_transaction_gas(&self) -> u64;
    /// A consistent snapshot of committed data.
    fn view(&self) -> Result<StateView, StoreError>;
    /// Admits a raw signed transaction into the pool (and forwards it to peers).
    async fn submit_raw(&self, raw: Vec<u8>) -> Result<B256, AdmissionError>;
    /// Next nonce for `address` counting queued pool transactions.
    fn pending_nonce(&self, address: Address, state_nonce: u64) -> u64;
    /// The commit certificate of `height`, if the block is committed.
    fn certificate(&self, height: u64) -> Option<trellis_api::CommitCertificate>;
    /// Follows the committed height (for subscriptions).
    fn subscribe_heights(&self) -> tokio::sync::watch::Receiver<u64>;
    /// This node's identity and state, for its operator (`admin_nodeInfo`).
    fn node_info(&self) -> api::NodeInfo;
    /// Drops a transaction from this node's pool; `false` if it was not there.
    fn drop_transaction(&self, hash: &B256) -> bool;
    /// What `/health/ready` judges, now.
    fn health(&self) -> Health;
    /// The validators of the next height: node key, consensus address (as commit
    /// certificates name signers) and voting power.
    fn validators(&self) -> Vec<ValidatorInfo>;
    /// The validators deciding `height`, while this node keeps that set (recent heights).
    fn validators_at(&self, height: u64) -> Option<Vec<ValidatorInfo>>;
    /// The genesis of sub-chain `chain_id` this node derived when this chain created it.
    fn subchain_genesis(&self, chain_id: u64) -> Result<Option<api::SubchainGenesis>, String>;
}

/// One validator as the explorer shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ValidatorInfo {
    pub public_key: B256,
    /// As `trellis_getCommitCertificate` names signers.
    pub address: String,
    pub power: u64,
}

/// A node's liveness as `/health/ready` sees it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Health {
    /// The committed height.
    pub height: u64,
    /// How old the committed block is, by its timestamp.
    pub block_age_ms: u64,
    /// Since this node last committed a block; `None` if it has not since it started.
    pub since_commit_ms: Option<u64>,
    /// Peers connected; `None` if the node does not know (no networking).
    pub peers: Option<u64>,
    /// Validators of the next height.
    pub validators: usize,
}

/// Request limits of the RPC server.
#[derive(Clone, Debug)]
pub struct RpcLimits {
    pub max_request_bytes: u32,
    pub max_response_bytes: u32,
    pub max_connections: u32,
    pub max_batch_len: u32,
    /// Bearer token for `admin_*` methods; `None` turns them off.
    pub admin_token: Option<String>,
    /// Calls per second one client address may make (sustained), and its burst. REST
    /// requests count too; batches count each call, proofs [`PROOF_COST`] each.
    pub calls_per_second: f64,
    pub call_burst: u32,
    /// Active subscriptions one WebSocket connection may hold.
    pub max_subscriptions: u32,
    /// Who may read ([`access`]).
    pub read_access: ReadAccess,
    /// Serve the other chains of the host under `/chains/{id}` ([`chains`]).
    pub hosted_chains: bool,
}

impl Default for RpcLimits {
    fn default() -> Self {
        RpcLimits {
            max_request_bytes: 10 * 1024 * 1024,
            max_response_bytes: 100 * 1024 * 1024,
            max_connections: 1_000,
            max_batch_len: 1_000,
            admin_token: None,
            calls_per_second: 10_000.0,
            call_burst: 20_000,
            max_subscriptions: 1_024,
            read_access: ReadAccess::default(),
            hosted_chains: true,
        }
    }
}

/// Subscription ids as Ethereum clients expect them: `0x`-prefixed hex strings (viem and
/// others ignore notifications whose id is a JSON number).
#[derive(Debug)]
struct HexIdProvider;

impl jsonrpsee::core::traits::IdProvider for HexIdProvider {
    fn next_id(&self) -> jsonrpsee::types::SubscriptionId<'static> {
        let id: u128 = rand::random();
        jsonrpsee::types::SubscriptionId::Str(format!("{id:#034x}").into())
    }
}

/// A running server.
pub struct Serving {
    /// The bound address.
    pub addr: SocketAddr,
    /// Stops it.
    pub handle: ServerHandle,
    /// Its whole HTTP service in process: what `/chains/{id}` on the other hosted chains'
    /// ports forwards to ([`chains`]).
    pub dispatch: chains::Dispatch,
}

/// Starts the HTTP and WebSocket JSON-RPC server with the REST endpoints and `pages` (the
/// explorer's routes, under `/explorer`; an empty router for none) on the same port, and the
/// `admin_*` methods (those about other chains through `host`, when a chain host runs it);
/// under `/chains/{id}` it serves the other chains `host` runs. Connections are accepted here (not by
/// jsonrpsee) so that every request carries its client's address, which the limits key on.
///
/// With `tls` the port speaks only TLS, and each request of a connection whose client
/// presented a certificate carries [`tls::ClientCertificate`].
pub async fn serve<B: Backend>(
    backend: Arc<B>,
    addr: SocketAddr,
    limits: &RpcLimits,
    tls: Option<tls::ServerTls>,
    metrics: trellis_metrics::RpcMetrics,
    pages: axum::Router,
    host: Option<Arc<dyn HostControl>>,
) -> std::io::Result<Serving> {
    let invalid = |e: String| std::io::Error::new(std::io::ErrorKind::InvalidInput, e);
    let limiter = ClientLimiter::new(limits.calls_per_second, limits.call_burst)
        .map_err(|e| invalid(e.to_string()))?;
    let config = ServerConfig::builder()
        .max_request_body_size(limits.max_request_bytes)
        .max_response_body_size(limits.max_response_bytes)
        .max_connections(limits.max_connections)
        .set_batch_request_config(BatchRequestConfig::Limit(limits.max_batch_len))
        .max_subscriptions_per_connection(limits.max_subscriptions)
        .set_id_provider(HexIdProvider)
        .build();
    let mut methods = build_module(backend.clone()).map_err(|e| invalid(e.to_string()))?;
    // The other hosted chains, when this port serves them.
    let others = host.clone().filter(|_| limits.hosted_chains);
    {
        use trellis_api::{AdminApiServer, ChainsApiServer};
        let admin = admin::AdminRpc {
            backend: backend.clone(),
            host: host.clone(),
        };
        methods
            .merge(admin.into_rpc())
            .map_err(|e| invalid(e.to_string()))?;
        let chains = chains::ChainsRpc {
            backend: backend.clone(),
            host: others.clone(),
        };
        methods
            .merge(chains.into_rpc())
            .map_err(|e| invalid(e.to_string()))?;
    }
    let names: Arc<std::collections::HashSet<&'static str>> =
        Arc::new(methods.method_names().collect());
    let gate = access::Gate::new(
        backend.clone(),
        limits.read_access.clone(),
        limits.admin_token.clone(),
        limiter.clone(),
        metrics.clone(),
    );
    let builder = ServerBuilder::default()
        .set_config(config)
        .set_rpc_middleware(
            jsonrpsee::server::middleware::rpc::RpcServiceBuilder::new()
                .layer_fn({
                    let metrics = metrics.clone();
                    move |service| measure::Measure::new(service, metrics.clone(), names.clone())
                })
                .layer_fn({
                    let gate = gate.clone();
                    move |service| access::Recheck::new(service, gate.clone())
                })
                .layer_fn({
                    let limiter = limiter.clone();
                    move |service| RateLimit::new(service, limiter.clone())
                }),
        )
        .set_http_middleware(
            tower::ServiceBuilder::new()
                .layer(chains::HostRouterLayer::new(
                    backend.chain_id(),
                    others.clone(),
                ))
                .layer(access::AccessLayer::new(gate))
                .layer(rest::RestLayer::new(
                    rest::router(backend.clone(), pages, metrics.clone(), others),
                    limiter.clone(),
                    metrics,
                ))
                .layer(AdminAuthLayer::new(limits.admin_token.clone())),
        )
        .to_service_builder();
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    let (stop, handle) = jsonrpsee::server::stop_channel();
    // Requests forwarded from another hosted chain's port come tagged with their client
    // already, and pass through this chain's whole stack.
    let dispatch: chains::Dispatch = {
        let (builder, methods, stop) = (builder.clone(), methods.clone(), stop.clone());
        Arc::new(move |request| {
            use tower::Service as _;
            let mut service = builder.clone().build(methods.clone(), stop.clone());
            Box::pin(service.call(request))
        })
    };
    // Open connections (and TLS handshakes in progress) are bounded here, per socket: beyond
    // `max_connections` a new connection is closed at once.
    let connections = Arc::new(tokio::sync::Semaphore::new(limits.max_connections as usize));
    tokio::spawn(async move {
        loop {
            let (socket, remote) = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        // Out of file descriptors and the like: wait instead of spinning.
                        tracing::warn!(error = %e, "RPC accept failed");
                        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                        continue;
                    }
                },
                _ = stop.clone().shutdown() => break,
            };
            let Ok(permit) = connections.clone().try_acquire_owned() else {
                tracing::debug!(%remote, "RPC connection refused: max_connections reached");
                continue;
            };
            // A TLS handshake costs the server a signature: charged to the client's rate.
            if tls.is_some() {
                if let Err(e) = limiter.admit(Some(ClientAddr(remote.ip())), tls::HANDSHAKE_COST) {
                    tracing::debug!(%remote, error = %e, "RPC TLS handshake refused");
                    continue;
                }
            }
            let _ = socket.set_nodelay(true);
            let mut service = ClientTagged {
                inner: builder.clone().build(methods.clone(), stop.clone()),
                client: ClientAddr(remote.ip()),
                certificate: None,
            };
            let stopped = stop.clone().shutdown();
            let tls = tls.clone();
            tokio::spawn(async move {
                let _permit = permit;
                let served = match tls {
                    None => {
                        jsonrpsee::server::serve_with_graceful_shutdown(socket, service, stopped)
                            .await
                    }
                    // The handshake runs here, off the accept loop, bounded in time.
                    Some(tls) => match tls.accept(socket).await {
                        Ok((stream, certificate)) => {
                            service.certificate = certificate;
                            jsonrpsee::server::serve_with_graceful_shutdown(
                                stream, service, stopped,
                            )
                            .await
                        }
                        Err(e) => {
                            tracing::debug!(%remote, error = %e, "RPC TLS handshake failed");
                            return;
                        }
                    },
                };
                if let Err(e) = served {
                    tracing::debug!(%remote, error = %e, "RPC connection ended with an error");
                }
            });
        }
    });
    Ok(Serving {
        addr: bound,
        handle,
        dispatch,
    })
}

/// A connection's service that tags each request with the client's address and, over TLS,
/// the certificate it presented.
#[derive(Clone)]
struct ClientTagged<S> {
    inner: S,
    client: ClientAddr,
    certificate: Option<tls::ClientCertificate>,
}

impl<S, B> tower::Service<http::Request<B>> for ClientTagged<S>
where
    S: tower::Service<http::Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        request.extensions_mut().insert(self.client);
        if let Some(certificate) = self.certificate {
            request.extensions_mut().insert(certificate);
        }
        self.inner.call(request)
    }
}
