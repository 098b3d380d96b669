//! `trellis_*` reads of the governance contract, and the `admin_*` methods that need the
//! node's admin token.
//!
//! Governance reads are public: a supervisor (or any member) follows organisations, nodes,
//! proposals and the audit log through them. Admin methods act on this node only; they are
//! off unless the node's config sets an admin token, and every call must present it as
//! `Authorization: Bearer <token>`.

use alloy_primitives::{Address, B256, U64};
use jsonrpsee::types::ErrorObjectOwned;
use jsonrpsee::{Extensions, RpcModule};
use serde_json::{json, Value};
use std::sync::Arc;
use std::task::{Context, Poll};
use trellis_execution::{governance_slots, ViewSlots};
use trellis_system::governance::{AuditEntry, Node, Organization, Proposal, ReadToken, Votes};
use trellis_system::Governance;

use crate::error::RpcError;
use crate::methods::{optional_param, param, tip, RpcContext, RpcResult};
use crate::Backend;

/// Most proposals or audit entries one call returns.
pub const MAX_PAGE: u64 = 1_000;

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

fn organization_json(o: &Organization) -> Value {
    json!({
        "id": o.id.as_str(),
        "name": o.name,
        "admins": o.admins,
        "member": o.member,
        "supervisor": o.supervisor,
        "joinedAt": U64::from(o.joined_at),
    })
}

fn node_json(n: &Node) -> Value {
    json!({
        "publicKey": n.public_key,
        "org": n.org.as_str(),
        "role": trellis_system::governance::role_name(n.role),
        "power": U64::from(n.power),
    })
}

fn proposal_json(p: &Proposal, votes: &Votes, height: u64) -> Value {
    json!({
        "id": U64::from(p.id),
        "kind": p.action.kind(),
        "description": p.action.describe(),
        "proposerOrg": p.proposer_org.as_str(),
        "proposer": p.proposer,
        "createdAt": U64::from(p.created_at),
        "expiresAt": U64::from(p.expires_at),
        "effectiveHeight": U64::from(p.effective_height),
        "status": p.status_at(height).name(),
        "approvals": votes.approvals.iter().map(|o| o.as_str()).collect::<Vec<_>>(),
        "rejections": votes.rejections.iter().map(|o| o.as_str()).collect::<Vec<_>>(),
        "failureReason": p.failure,
    })
}

fn read_token_json(t: &ReadToken) -> Value {
    json!({
        "tokenHash": t.token_hash,
        "org": t.org.as_str(),
        "issuer": t.issuer,
        "label": t.label,
        "issuedAt": U64::from(t.issued_at),
        "expiresAt": t.expires_at.map(U64::from),
        "revokedAt": t.revoked.as_ref().map(|r| U64::from(r.height)),
        "revoker": t.revoked.as_ref().map(|r| r.by),
    })
}

fn parse_org(id: &str) -> Result<trellis_primitives::OrgId, RpcError> {
    trellis_primitives::OrgId::parse(id).map_err(|e| RpcError::InvalidParams(e.to_string()))
}

fn audit_json(e: &AuditEntry) -> Value {
    json!({
        "seq": U64::from(e.seq),
        "blockNumber": U64::from(e.height),
        "transactionHash": (e.tx_hash != B256::ZERO).then_some(e.tx_hash),
        "action": e.action,
        "org": e.org,
        "actor": (e.actor != Address::ZERO).then_some(e.actor),
        "detail": e.detail,
    })
}

/// Runs `f` against governance state at the latest committed height.
fn read<B: Backend, T>(
    b: &RpcContext<B>,
    f: impl FnOnce(&mut Governance<'_, ViewSlots<'_>>, u64) -> Result<T, trellis_system::SlotError>,
) -> RpcResult<T> {
    let view = b.view().map_err(RpcError::from)?;
    let height = tip(&view)?;
    let mut slots = governance_slots(&view);
    f(&mut Governance::new(&mut slots), height)
        .map_err(|e| RpcError::Internal(e.to_string()).into())
}

/// The `(offset, limit)` of a listing call: both optional, limit 1 to [`MAX_PAGE`] (100 when
/// absent).
fn page(p: &jsonrpsee::types::Params<'_>) -> Result<(u64, u64), RpcError> {
    let from: Option<U64> = optional_param(p, 0, "offset")?;
    let limit: Option<U64> = optional_param(p, 1, "limit")?;
    let limit = limit.map(|l| l.to::<u64>()).unwrap_or(100);
    if limit == 0 || limit > MAX_PAGE {
        return Err(RpcError::InvalidParams(format!(
            "limit must be 1..={MAX_PAGE}"
        )));
    }
    Ok((from.map(|f| f.to::<u64>()).unwrap_or(0), limit))
}

/// Reads one page (`offset`, `limit`) of a registry at a height.
type ListPage<T> = fn(
    &mut Governance<'_, ViewSlots<'_>>,
    u64,
    u64,
    u64,
) -> Result<Vec<T>, trellis_system::SlotError>;

/// Registers a paged listing `name(offset, limit)` answered by `list` from governance state.
fn register_list<B: Backend, T: serde::Serialize + Clone + Send + 'static>(
    m: &mut RpcModule<RpcContext<B>>,
    name: &'static str,
    list: ListPage<T>,
) -> Result<(), jsonrpsee::core::RegisterMethodError> {
    m.register_blocking_method(name, move |p, b, _| -> RpcResult<Vec<T>> {
        let (offset, limit) = page(&p)?;
        read(&b, |g, h| list(g, h, offset, limit))
    })?;
    Ok(())
}

pub fn register<B: Backend>(
    m: &mut RpcModule<RpcContext<B>>,
) -> Result<(), jsonrpsee::core::RegisterMethodError> {
    register_list(m, "trellis_getOrganizations", |g, _, o, l| {
        Ok(g.organizations(o, l)?
            .iter()
            .map(organization_json)
            .collect())
    })?;
    register_list(m, "trellis_getNodes", |g, _, o, l| {
        Ok(g.nodes(o, l)?.iter().map(node_json).collect())
    })?;
    register_list(m, "trellis_getFrozen", |g, _, o, l| g.frozen(o, l))?;
    register_list(m, "trellis_getPrefixes", |g, _, o, l| {
        Ok(g.prefixes(o, l)?
            .into_iter()
            .map(|(p, org)| json!({ "prefix": p.as_str(), "org": org.as_str() }))
            .collect())
    })?;
    register_list(m, "trellis_getSubchains", |g, _, o, l| {
        Ok(g.subchains(o, l)?
            .iter()
            .map(|s| {
                json!({
                    "chainId": U64::from(s.chain_id),
                    "name": s.name,
                    "createdAt": U64::from(s.created_at),
                })
            })
            .collect())
    })?;
    register_list(m, "trellis_getProposals", |g, h, from, limit| {
        let end = g.config()?.proposals.min(from.saturating_add(limit));
        let mut out = Vec::new();
        for id in from..end {
            if let Some(p) = g.proposal(id)? {
                let votes = g.votes(id)?;
                out.push(proposal_json(&p, &votes, h));
            }
        }
        Ok(out)
    })?;
    register_list(m, "trellis_auditLog", |g, _, from, limit| {
        let end = g.config()?.audits.min(from.saturating_add(limit));
        let mut out = Vec::new();
        for seq in from..end {
            out.extend(g.audit_entry(seq)?.map(|e| audit_json(&e)));
        }
        Ok(out)
    })?;
    m.register_blocking_method(
        "trellis_getAccountOrganization",
        |p, b, _| -> RpcResult<Option<String>> {
            let account: Address = param(&p, 0, "account")?;
            read(&b, |g, _| Ok(g.account_org(&account)?.map(String::from)))
        },
    )?;
    m.register_blocking_method("trellis_getGovernanceConfig", |_, b, _| -> RpcResult<Value> {
        read(&b, |g, _| {
            let c = g.config()?;
            Ok(json!({
                "threshold": {"numerator": c.threshold.numerator, "denominator": c.threshold.denominator},
                "proposalTtlBlocks": U64::from(c.proposal_ttl),
                "proposalCount": U64::from(c.proposals),
                "auditCount": U64::from(c.audits),
                "organizationCount": U64::from(g.organization_count()?),
                "memberCount": U64::from(c.members),
                "nodeCount": U64::from(g.node_count()?),
                "frozenCount": U64::from(g.frozen_count()?),
                "prefixCount": U64::from(g.prefix_count()?),
                "subchainCount": U64::from(g.subchain_count()?),
            }))
        })
    })?;
    m.register_blocking_method(
        "trellis_getOrganization",
        |p, b, _| -> RpcResult<Option<Value>> {
            let id: String = param(&p, 0, "id")?;
            let id = parse_org(&id)?;
            read(&b, |g, _| {
                let Some(org) = g.organization(&id)? else {
                    return Ok(None);
                };
                let mut nodes = Vec::new();
                for key in g.organization_nodes(&id)? {
                    nodes.extend(g.node(&key)?.as_ref().map(node_json));
                }
                let mut out = organization_json(&org);
                out["nodes"] = Value::from(nodes);
                out["readTokenCount"] = json!(U64::from(g.read_token_count(&id)?));
                Ok(Some(out))
            })
        },
    )?;
    m.register_blocking_method(
        "trellis_getProposal",
        |p, b, _| -> RpcResult<Option<Value>> {
            let id: U64 = param(&p, 0, "id")?;
            read(&b, |g, h| {
                let Some(p) = g.proposal(id.to())? else {
                    return Ok(None);
                };
                let votes = g.votes(p.id)?;
                Ok(Some(proposal_json(&p, &votes, h)))
            })
        },
    )?;

    m.register_blocking_method(
        "trellis_getReadTokens",
        |p, b, _| -> RpcResult<Vec<Value>> {
            let org: String = param(&p, 0, "org")?;
            let org = parse_org(&org)?;
            let offset: Option<U64> = optional_param(&p, 1, "offset")?;
            let limit: Option<U64> = optional_param(&p, 2, "limit")?;
            let limit = limit.map_or(100, |l| l.to::<u64>());
            if limit == 0 || limit > MAX_PAGE {
                return Err(
                    RpcError::InvalidParams(format!("limit must be 1..={MAX_PAGE}")).into(),
                );
            }
            let offset = offset.map_or(0, |o| o.to::<u64>());
            read(&b, |g, _| {
                Ok(g.read_tokens(&org, offset, limit)?
                    .iter()
                    .map(read_token_json)
                    .collect())
            })
        },
    )?;
    m.register_blocking_method(
        "trellis_getReadToken",
        |p, b, _| -> RpcResult<Option<Value>> {
            let hash: B256 = param(&p, 0, "tokenHash")?;
            read(&b, |g, _| {
                Ok(g.read_token(&hash)?.as_ref().map(read_token_json))
            })
        },
    )?;

    m.register_method("admin_nodeInfo", |_, b, ext| -> RpcResult<Value> {
        require_admin(ext)?;
        Ok(b.node_info())
    })?;
    m.register_method("admin_dropTransaction", |p, b, ext| -> RpcResult<bool> {
        require_admin(ext)?;
        let hash: B256 = param(&p, 0, "hash")?;
        Ok(b.drop_transaction(&hash))
    })?;
    Ok(())
}
