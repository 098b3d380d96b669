//! The JSON-RPC middleware that records every call in the node's metrics: by method (one the
//! server has, else `unknown`, so that what an outsider sends cannot grow the label set) and
//! outcome (`ok` or the error code), with its latency. It sits outside the rate limit, so a
//! refused call is counted too (outcome `-32005`, and `trellis_rpc_rate_limited_total`).

use jsonrpsee::core::middleware::{Batch, Notification, RpcServiceT};
use jsonrpsee::server::MethodResponse;
use jsonrpsee::types::Request;
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Instant;
use trellis_metrics::RpcMetrics;

use crate::limits::RATE_LIMITED;

/// Label of a method the server does not have.
pub const UNKNOWN_METHOD: &str = "unknown";

#[derive(Clone)]
pub struct Measure<S> {
    inner: S,
    metrics: RpcMetrics,
    methods: Arc<HashSet<&'static str>>,
}

impl<S> Measure<S> {
    pub fn new(inner: S, metrics: RpcMetrics, methods: Arc<HashSet<&'static str>>) -> Self {
        Measure {
            inner,
            metrics,
            methods,
        }
    }

    fn record(&self, method: &'static str, response: &MethodResponse, started: Instant) {
        let code = response.as_error_code();
        if code == Some(RATE_LIMITED) {
            self.metrics.rate_limited("jsonrpc");
        }
        self.metrics
            .call(method, code, started.elapsed().as_secs_f64());
    }
}

impl<S> RpcServiceT for Measure<S>
where
    S: RpcServiceT<
            MethodResponse = MethodResponse,
            BatchResponse = MethodResponse,
            NotificationResponse = MethodResponse,
        > + Clone
        + Send
        + Sync
        + 'static,
{
    type MethodResponse = MethodResponse;
    type NotificationResponse = MethodResponse;
    type BatchResponse = MethodResponse;

    fn call<'a>(
        &self,
        request: Request<'a>,
    ) -> impl std::future::Future<Output = Self::MethodResponse> + Send + 'a {
        let method = self
            .methods
            .get(request.method_name())
            .copied()
            .unwrap_or(UNKNOWN_METHOD);
        let this = self.clone();
        async move {
            let started = Instant::now();
            let response = this.inner.call(request).await;
            this.record(method, &response, started);
            response
        }
    }

    fn batch<'a>(
        &self,
        requests: Batch<'a>,
    ) -> impl std::future::Future<Output = Self::BatchResponse> + Send + 'a {
        let this = self.clone();
        async move {
            let started = Instant::now();
            let response = this.inner.batch(requests).await;
            this.record("batch", &response, started);
            response
        }
    }

    fn notification<'a>(
        &self,
        n: Notification<'a>,
    ) -> impl std::future::Future<Output = Self::NotificationResponse> + Send + 'a {
        self.inner.notification(n)
    }
}
