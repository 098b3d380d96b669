//! Request limits keyed by who asks: every JSON-RPC call, batch and REST request on the port
//! draws from one allowance per client address (a GCRA limiter from `governor`: a sustained
//! rate and a burst). A client that opens more connections gets no more. Work is counted
//! where it is done: a batch costs one unit per call, a Merkle-proof answer
//! [`PROOF_COST`] units per proof. Over the limit, JSON-RPC calls get `-32005 rate limit
//! exceeded` and REST requests `429`, at once; nothing is queued.

use governor::clock::{Clock, DefaultClock};
use governor::middleware::NoOpMiddleware;
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};
use jsonrpsee::core::middleware::{Batch, BatchEntry, Notification, RpcServiceT};
use jsonrpsee::core::server::BatchResponseBuilder;
use jsonrpsee::server::MethodResponse;
use jsonrpsee::types::{ErrorObject, Id, Request};
use std::net::{IpAddr, Ipv4Addr};
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// JSON-RPC error code for a refused call over the rate limit (as Infura and others use).
pub const RATE_LIMITED: i32 = -32005;

/// Units one Merkle-proof answer costs (`eth_getProof`, `?proof=true`, evidence reads): it
/// reads and hashes a path of trie nodes per proven slot.
pub const PROOF_COST: u32 = 10;

/// The address a request came from, put in the request's extensions by the server.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ClientAddr(pub IpAddr);

/// Who is charged for a request without a known address (in-process callers).
const UNKNOWN_CLIENT: IpAddr = IpAddr::V4(Ipv4Addr::UNSPECIFIED);

/// Checks between two sweeps of clients whose allowance is full again.
const SWEEP_EVERY: u64 = 65_536;

/// The allowances of every client of one server.
pub struct ClientLimiter<C: Clock = DefaultClock> {
    limiter: RateLimiter<IpAddr, DefaultKeyedStateStore<IpAddr>, C, NoOpMiddleware<C::Instant>>,
    per_second: f64,
    burst: u32,
    checks: AtomicU64,
}

impl<C: Clock> std::fmt::Debug for ClientLimiter<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientLimiter")
            .field("per_second", &self.per_second)
            .field("burst", &self.burst)
            .finish()
    }
}

/// Why a limiter cannot be built.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("invalid rate limit: {0}")]
pub struct InvalidLimit(String);

fn quota(per_second: f64, burst: u32) -> Result<Quota, InvalidLimit> {
    if !(per_second.is_finite() && per_second > 0.0) {
        return Err(InvalidLimit(format!(
            "calls_per_second must be positive, got {per_second}"
        )));
    }
    let burst = NonZeroU32::new(burst)
        .ok_or_else(|| InvalidLimit("call_burst must be at least 1".into()))?;
    let period = Duration::try_from_secs_f64(1.0 / per_second)
        .ok()
        .filter(|p| !p.is_zero())
        .ok_or_else(|| InvalidLimit(format!("calls_per_second {per_second} is out of range")))?;
    Quota::with_period(period)
        .map(|q| q.allow_burst(burst))
        .ok_or_else(|| InvalidLimit(format!("calls_per_second {per_second} is out of range")))
}

impl ClientLimiter {
    /// `per_second` sustained units per client address, bursts of `burst`.
    pub fn new(per_second: f64, burst: u32) -> Result<Arc<Self>, InvalidLimit> {
        Ok(Arc::new(Self::with_clock(
            per_second,
            burst,
            DefaultClock::default(),
        )?))
    }
}

impl<C: Clock> ClientLimiter<C> {
    /// A limiter on `clock` (tests use a fake one to step time).
    pub fn with_clock(per_second: f64, burst: u32, clock: C) -> Result<Self, InvalidLimit> {
        Ok(ClientLimiter {
            limiter: RateLimiter::new(
                quota(per_second, burst)?,
                DefaultKeyedStateStore::default(),
                clock,
            ),
            per_second,
            burst,
            checks: AtomicU64::new(0),
        })
    }

    /// Takes `cost` units from `client`'s allowance, or refuses with the reason.
    pub fn admit(&self, client: Option<ClientAddr>, cost: u32) -> Result<(), String> {
        if self.checks.fetch_add(1, Ordering::Relaxed) % SWEEP_EVERY == SWEEP_EVERY - 1 {
            self.limiter.retain_recent();
            self.limiter.shrink_to_fit();
        }
        let key = client.map_or(UNKNOWN_CLIENT, |c| c.0);
        let cost = NonZeroU32::new(cost).unwrap_or(NonZeroU32::MIN);
        match self.limiter.check_key_n(&key, cost) {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(format!(
                "rate limit exceeded: at most {} calls per second per client address (bursts of {}); this request costs {cost}",
                self.per_second, self.burst
            )),
            Err(_) => Err(format!(
                "rate limit exceeded: this request costs {cost} calls, more than the burst of {} one client address may make",
                self.burst
            )),
        }
    }
}

/// What one JSON-RPC call costs.
fn call_cost(method: &str) -> u32 {
    match method {
        // A chain's status reads up to a page of organisations and of light clients.
        "eth_getProof" | "trellis_chainStatus" => PROOF_COST,
        _ => 1,
    }
}

fn refusal(message: String) -> ErrorObject<'static> {
    ErrorObject::owned(RATE_LIMITED, message, None::<()>)
}

/// The JSON-RPC middleware: checks each call (or batch) against its client's allowance.
#[derive(Clone, Debug)]
pub struct RateLimit<S> {
    inner: S,
    limiter: Arc<ClientLimiter>,
}

impl<S> RateLimit<S> {
    pub fn new(inner: S, limiter: Arc<ClientLimiter>) -> Self {
        RateLimit { inner, limiter }
    }
}

fn client(ext: &jsonrpsee::Extensions) -> Option<ClientAddr> {
    ext.get::<ClientAddr>().copied()
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
        let verdict = self.limiter.admit(
            client(request.extensions()),
            call_cost(request.method_name()),
        );
        let inner = self.inner.clone();
        async move {
            match verdict {
                Ok(()) => inner.call(request).await,
                Err(message) => MethodResponse::error(request.id, refusal(message)),
            }
        }
    }

    fn batch<'a>(
        &self,
        mut requests: Batch<'a>,
    ) -> impl std::future::Future<Output = Self::BatchResponse> + Send + 'a {
        let cost: u32 = requests
            .iter()
            .map(|entry| match entry {
                Ok(BatchEntry::Call(call)) => call_cost(call.method_name()),
                _ => 1,
            })
            .fold(0u32, u32::saturating_add);
        let verdict = self.limiter.admit(client(requests.extensions()), cost);
        let inner = self.inner.clone();
        async move {
            let message = match verdict {
                Ok(()) => return inner.batch(requests).await,
                Err(message) => message,
            };
            // Every call of the batch gets the refusal, under its own id.
            let mut out = BatchResponseBuilder::new_with_limit(usize::MAX);
            for entry in requests {
                if let Ok(BatchEntry::Call(call)) = entry {
                    let answer = MethodResponse::error(call.id, refusal(message.clone()));
                    if let Err(full) = out.append(answer) {
                        return full;
                    }
                }
            }
            if out.is_empty() {
                return MethodResponse::error(Id::Null, refusal(message));
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
    use governor::clock::FakeRelativeClock;

    fn addr(last: u8) -> Option<ClientAddr> {
        Some(ClientAddr(IpAddr::V4(Ipv4Addr::new(10, 0, 0, last))))
    }

    /// Time stands still on the fake clock, so the counts are exact on any machine.
    #[test]
    fn each_client_address_gets_a_burst_then_the_rate() {
        let clock = FakeRelativeClock::default();
        let limit = ClientLimiter::with_clock(10.0, 5, clock.clone()).unwrap();
        assert!((0..5).all(|_| limit.admit(addr(1), 1).is_ok()));
        let refused = limit.admit(addr(1), 1).unwrap_err();
        assert!(refused.contains("at most 10 calls per second"), "{refused}");
        assert!(
            limit.admit(addr(2), 5).is_ok(),
            "another address has its own"
        );
        clock.advance(Duration::from_millis(250));
        assert!(limit.admit(addr(1), 2).is_ok(), "2.5 units refilled");
        assert!(limit.admit(addr(1), 1).is_err());
        let too_big = limit.admit(addr(3), 6).unwrap_err();
        assert!(too_big.contains("more than the burst of 5"), "{too_big}");
        clock.advance(Duration::from_secs(60));
        assert!(limit.admit(addr(1), 5).is_ok(), "a full burst again");
        assert!(
            limit.admit(None, 5).is_ok(),
            "unknown callers share one allowance"
        );
        assert!(limit.admit(None, 1).is_err());
    }

    #[test]
    fn proofs_cost_more_and_limits_must_be_positive() {
        assert_eq!(call_cost("eth_getProof"), PROOF_COST);
        assert_eq!(call_cost("eth_call"), 1);
        assert!(ClientLimiter::new(0.0, 5).is_err());
        assert!(ClientLimiter::new(f64::NAN, 5).is_err());
        assert!(ClientLimiter::new(1.0, 0).is_err());
        assert!(ClientLimiter::new(0.001, 1).is_ok(), "one call per 1,000 s");
    }
}
