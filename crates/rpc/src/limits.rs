//! Per-connection request rate limit: a token bucket per connection (an HTTP keep-alive
//! connection or a WebSocket, told apart by jsonrpsee's `ConnectionId`), checked in the RPC
//! middleware. A batch costs one token per call. Over the limit, calls get
//! `-32005 rate limit exceeded` at once; nothing is queued.

use jsonrpsee::core::middleware::{Batch, BatchEntry, Notification, RpcServiceT};
use jsonrpsee::core::server::BatchResponseBuilder;
use jsonrpsee::server::{ConnectionId, MethodResponse};
use jsonrpsee::types::{ErrorObject, Id, Request};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// JSON-RPC error code for a refused call over the rate limit (as Infura and others use).
pub const RATE_LIMITED: i32 = -32005;

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    last: Instant,
}

/// Buckets of every live connection; shared by the middleware instances of one server.
#[derive(Debug)]
pub struct RateLimiter {
    per_second: f64,
    burst: f64,
    buckets: Mutex<HashMap<usize, Bucket>>,
}

/// Buckets idle this long are full again and can be forgotten.
const FORGET_AFTER_SECS: f64 = 60.0;

impl RateLimiter {
    pub fn new(per_second: u32, burst: u32) -> Arc<Self> {
        Arc::new(RateLimiter {
            per_second: f64::from(per_second),
            burst: f64::from(burst.max(1)),
            buckets: Mutex::new(HashMap::new()),
        })
    }

    /// Takes `cost` tokens from `connection`'s bucket if it has them.
    fn admit(&self, connection: usize, cost: usize) -> bool {
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        if buckets.len() > 4_096 {
            buckets.retain(|_, b| now.duration_since(b.last).as_secs_f64() < FORGET_AFTER_SECS);
        }
        let b = buckets.entry(connection).or_insert(Bucket {
            tokens: self.burst,
            last: now,
        });
        let refill = now.duration_since(b.last).as_secs_f64() * self.per_second;
        b.tokens = (b.tokens + refill).min(self.burst);
        b.last = now;
        let cost = cost.max(1) as f64;
        if b.tokens >= cost {
            b.tokens -= cost;
            true
        } else {
            false
        }
    }

    fn refusal(&self) -> ErrorObject<'static> {
        ErrorObject::owned(
            RATE_LIMITED,
            format!(
                "rate limit exceeded: at most {} calls per second per connection (bursts of {})",
                self.per_second, self.burst
            ),
            None::<()>,
        )
    }
}

/// The middleware: checks each call (or batch) against its connection's bucket.
#[derive(Clone, Debug)]
pub struct RateLimit<S> {
    inner: S,
    limiter: Arc<RateLimiter>,
}

impl<S> RateLimit<S> {
    pub fn new(inner: S, limiter: Arc<RateLimiter>) -> Self {
        RateLimit { inner, limiter }
    }
}

fn connection(ext: &jsonrpsee::Extensions) -> usize {
    ext.get::<ConnectionId>().map(|c| c.0).unwrap_or(usize::MAX)
}

impl<S> RpcServiceT for RateLimit<S>
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
        // The refusal message is built only for refused calls: this runs on every call.
        let refusal = (!self.limiter.admit(connection(request.extensions()), 1))
            .then(|| self.limiter.refusal());
        let inner = self.inner.clone();
        async move {
            match refusal {
                None => inner.call(request).await,
                Some(refusal) => MethodResponse::error(request.id, refusal),
            }
        }
    }

    fn batch<'a>(
        &self,
        mut requests: Batch<'a>,
    ) -> impl std::future::Future<Output = Self::BatchResponse> + Send + 'a {
        let cost = requests.len();
        let refusal = (!self.limiter.admit(connection(requests.extensions()), cost))
            .then(|| self.limiter.refusal());
        let inner = self.inner.clone();
        async move {
            let Some(refusal) = refusal else {
                return inner.batch(requests).await;
            };
            // Every call of the batch gets the refusal, under its own id.
            let mut out = BatchResponseBuilder::new_with_limit(usize::MAX);
            for entry in requests {
                if let Ok(BatchEntry::Call(call)) = entry {
                    if let Err(full) = out.append(MethodResponse::error(call.id, refusal.clone())) {
                        return full;
                    }
                }
            }
            if out.is_empty() {
                return MethodResponse::error(Id::Null, refusal);
            }
            MethodResponse::from_batch(out.finish())
        }
    }

    fn notification<'a>(
        &self,
        n: Notification<'a>,
    ) -> impl std::future::Future<Output = Self::NotificationResponse> + Send + 'a {
        self.inner.notification(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_connection_gets_a_burst_then_the_rate() {
        let limit = RateLimiter::new(10, 5);
        assert!((0..5).all(|_| limit.admit(1, 1)));
        assert!(!limit.admit(1, 1), "burst spent");
        assert!(limit.admit(2, 5), "another connection has its own bucket");
        std::thread::sleep(std::time::Duration::from_millis(250));
        assert!(limit.admit(1, 2), "2.5 tokens refilled");
        assert!(!limit.admit(1, 1));
        assert!(
            !limit.admit(3, 6),
            "a batch larger than the burst never fits"
        );
    }
}
