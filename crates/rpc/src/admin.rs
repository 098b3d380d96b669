//! The `admin_*` methods ([`trellis_api::AdminApi`]) and the bearer-token check in front of
//! them. Admin methods act on this node only; they are off unless the node's config sets an
//! admin token, and every call must present it as `Authorization: Bearer <token>`.

use alloy_primitives::{B256, U64};
use jsonrpsee::types::ErrorObjectOwned;
use jsonrpsee::Extensions;
use std::sync::Arc;
use std::task::{Context, Poll};
use trellis_api::{self as api, AdminApiServer};

use crate::methods::RpcResult;
use crate::Backend;

/// The process that hosts this chain among others, as the admin methods see it.
pub trait HostControl: Send + Sync + 'static {
    /// Every chain the process hosts, by chain id.
    fn chains(&self) -> Vec<api::HostedChain>;
    /// Starts stopping chain `chain_id` and answers at once whether it was hosted.
    fn stop_chain(&self, chain_id: u64) -> bool;
    /// Chain `chain_id`'s HTTP service, while it runs here.
    fn dispatch(&self, chain_id: u64) -> Option<crate::chains::Dispatch>;
}

/// JSON-RPC error code for a refused admin call (missing or wrong token, admin API off).
pub const UNAUTHORIZED: i32 = -32001;

/// What the HTTP layer found in the `Authorization` header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AdminAuth {
    /// The node has no admin token: the admin API is off.
    Disabled,
    Missing,
    Wrong,
    Granted,
}

/// HTTP middleware that checks the bearer token and records the verdict for the methods.
#[derive(Clone)]
pub struct AdminAuthLayer {
    token: Option<Arc<str>>,
}

impl AdminAuthLayer {
    pub fn new(token: Option<String>) -> Self {
        AdminAuthLayer {
            token: token.map(Arc::from),
        }
    }
}

impl<S> tower::Layer<S> for AdminAuthLayer {
    type Service = AdminAuthService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AdminAuthService {
            inner,
            token: self.token.clone(),
        }
    }
}

#[derive(Clone)]
pub struct AdminAuthService<S> {
    inner: S,
    token: Option<Arc<str>>,
}

/// Compares without an early exit, so response timing does not reveal the token's prefix.
pub(crate) fn same_secret(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl<S, B> tower::Service<http::Request<B>> for AdminAuthService<S>
where
    S: tower::Service<http::Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        let presented = request
            .headers()
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        let verdict = match (&self.token, presented) {
            (None, _) => AdminAuth::Disabled,
            (Some(_), None) => AdminAuth::Missing,
            (Some(t), Some(p)) if same_secret(t.as_bytes(), p.trim().as_bytes()) => {
                AdminAuth::Granted
            }
            (Some(_), Some(_)) => AdminAuth::Wrong,
        };
        request.extensions_mut().insert(verdict);
        self.inner.call(request)
    }
}

fn require_admin(ext: &Extensions) -> RpcResult<()> {
    let refuse = |m: &str| Err(ErrorObjectOwned::owned(UNAUTHORIZED, m, None::<()>));
    match ext
        .get::<AdminAuth>()
        .copied()
        .unwrap_or(AdminAuth::Missing)
    {
        AdminAuth::Granted => Ok(()),
        AdminAuth::Disabled => {
            refuse("admin API disabled: set rpc.admin_token in the node's config")
        }
        AdminAuth::Missing => {
            refuse("unauthorized: admin methods need 'Authorization: Bearer <token>'")
        }
        AdminAuth::Wrong => refuse("unauthorized: wrong admin token"),
    }
}

/// The admin methods of one chain's server.
pub(crate) struct AdminRpc<B> {
    pub backend: Arc<B>,
    pub host: Option<Arc<dyn HostControl>>,
}

impl<B> AdminRpc<B> {
    fn host(&self) -> RpcResult<&dyn HostControl> {
        self.host.as_deref().ok_or_else(|| {
            crate::error::RpcError::Unavailable(
                "this chain does not run in a chain host (trellis node starts one)".into(),
            )
            .into()
        })
    }
}

impl<B: Backend> AdminApiServer for AdminRpc<B> {
    fn node_info(&self, ext: &Extensions) -> RpcResult<api::NodeInfo> {
        require_admin(ext)?;
        Ok(self.backend.node_info())
    }

    fn drop_transaction(&self, ext: &Extensions, hash: B256) -> RpcResult<bool> {
        require_admin(ext)?;
        Ok(self.backend.drop_transaction(&hash))
    }

    fn chains(&self, ext: &Extensions) -> RpcResult<Vec<api::HostedChain>> {
        require_admin(ext)?;
        Ok(self.host()?.chains())
    }

    fn stop_chain(&self, ext: &Extensions, chain_id: U64) -> RpcResult<bool> {
        require_admin(ext)?;
        let chain_id = chain_id.saturating_to::<u64>();
        let stopping = self.host()?.stop_chain(chain_id);
        if stopping {
            tracing::warn!(chain_id, "chain stopping at the operator's request");
        }
        Ok(stopping)
    }
}
