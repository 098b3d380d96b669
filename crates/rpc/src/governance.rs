//! `trellis_*` reads of the governance contract.
//!
//! Governance reads are public: a supervisor (or any member) follows organisations, nodes,
//! proposals and the audit log through them.

use alloy_primitives::{Address, B256, U64};
use jsonrpsee::RpcModule;
use std::sync::Arc;
use trellis_api::{self as api, GovernanceApiServer};
use trellis_execution::{governance_slots, ViewSlots};
use trellis_system::governance::{AuditEntry, Node, Organization, Proposal, ReadToken, Votes};
use trellis_system::Governance;

use crate::error::RpcError;
use crate::methods::{tip, RpcContext, RpcResult};
use crate::Backend;

fn organization(o: &Organization) -> api::Organization {
    api::Organization {
        id: o.id.as_str().to_owned(),
        name: o.name.clone(),
        admins: o.admins.clone(),
        member: o.member,
        supervisor: o.supervisor,
        joined_at: U64::from(o.joined_at),
    }
}

fn node(n: &Node) -> api::Node {
    api::Node {
        public_key: n.public_key,
        org: n.org.as_str().to_owned(),
        role: trellis_system::governance::role_name(n.role).to_owned(),
        power: U64::from(n.power),
    }
}

fn proposal(p: &Proposal, votes: &Votes, height: u64) -> api::Proposal {
    let names =
        |orgs: &[trellis_primitives::OrgId]| orgs.iter().map(|o| o.as_str().to_owned()).collect();
    api::Proposal {
        id: U64::from(p.id),
        kind: p.action.kind().to_owned(),
        description: p.action.describe(),
        proposer_org: p.proposer_org.as_str().to_owned(),
        proposer: p.proposer,
        created_at: U64::from(p.created_at),
        expires_at: U64::from(p.expires_at),
        effective_height: U64::from(p.effective_height),
        status: p.status_at(height).name().to_owned(),
        approvals: names(&votes.approvals),
        rejections: names(&votes.rejections),
        failure_reason: p.failure.clone(),
    }
}

fn read_token(t: &ReadToken) -> api::ReadToken {
    api::ReadToken {
        token_hash: t.token_hash,
        org: t.org.as_str().to_owned(),
        issuer: t.issuer,
        label: t.label.clone(),
        issued_at: U64::from(t.issued_at),
        expires_at: t.expires_at.map(U64::from),
        revoked_at: t.revoked.as_ref().map(|r| U64::from(r.height)),
        revoker: t.revoked.as_ref().map(|r| r.by),
    }
}

fn parse_org(id: &str) -> Result<trellis_primitives::OrgId, RpcError> {
    trellis_primitives::OrgId::parse(id).map_err(|e| RpcError::InvalidParams(e.to_string()))
}

fn audit_entry(e: &AuditEntry) -> api::AuditEntry {
    api::AuditEntry {
        seq: U64::from(e.seq),
        block_number: U64::from(e.height),
        transaction_hash: (e.tx_hash != B256::ZERO).then_some(e.tx_hash),
        action: e.action.clone(),
        org: e.org.clone(),
        actor: (e.actor != Address::ZERO).then_some(e.actor),
        detail: e.detail.clone(),
    }
}

/// The `trellis_*` governance reads ([`api::GovernanceApi`]) over a backend.
pub struct GovernanceRpc<B> {
    backend: Arc<B>,
}

impl<B: Backend> GovernanceRpc<B> {
    /// Runs `f` against governance state at the latest committed height.
    fn read<T>(
        &self,
        f: impl FnOnce(&mut Governance<'_, ViewSlots<'_>>, u64) -> Result<T, trellis_system::SlotError>,
    ) -> RpcResult<T> {
        let view = self.backend.view().map_err(RpcError::from)?;
        let height = tip(&view)?;
        let mut slots = governance_slots(&view);
        f(&mut Governance::new(&mut slots), height)
            .map_err(|e| RpcError::Internal(e.to_string()).into())
    }

    /// Reads one page of a registry: `list(governance, height, offset, limit)`.
    fn list<T>(
        &self,
        offset: Option<U64>,
        limit: Option<U64>,
        list: impl FnOnce(
            &mut Governance<'_, ViewSlots<'_>>,
            u64,
            u64,
            u64,
        ) -> Result<Vec<T>, trellis_system::SlotError>,
    ) -> RpcResult<Vec<T>> {
        let (offset, limit) = api::page(offset, limit).map_err(RpcError::InvalidParams)?;
        self.read(|g, h| list(g, h, offset, limit))
    }
}

impl<B: Backend> GovernanceApiServer for GovernanceRpc<B> {
    fn organizations(
        &self,
        offset: Option<U64>,
        limit: Option<U64>,
    ) -> RpcResult<Vec<api::Organization>> {
        self.list(offset, limit, |g, _, o, l| {
            Ok(g.organizations(o, l)?.iter().map(organization).collect())
        })
    }

    fn organization(&self, id: String) -> RpcResult<Option<api::OrganizationDetail>> {
        let id = parse_org(&id)?;
        self.read(|g, _| {
            let Some(org) = g.organization(&id)? else {
                return Ok(None);
            };
            let mut nodes = Vec::new();
            for key in g.organization_nodes(&id)? {
                nodes.extend(g.node(&key)?.as_ref().map(node));
            }
            Ok(Some(api::OrganizationDetail {
                organization: organization(&org),
                nodes,
                read_token_count: U64::from(g.read_token_count(&id)?),
            }))
        })
    }

    fn nodes(&self, offset: Option<U64>, limit: Option<U64>) -> RpcResult<Vec<api::Node>> {
        self.list(offset, limit, |g, _, o, l| {
            Ok(g.nodes(o, l)?.iter().map(node).collect())
        })
    }

    fn frozen(&self, offset: Option<U64>, limit: Option<U64>) -> RpcResult<Vec<Address>> {
        self.list(offset, limit, |g, _, o, l| g.frozen(o, l))
    }

    fn prefixes(&self, offset: Option<U64>, limit: Option<U64>) -> RpcResult<Vec<api::Prefix>> {
        self.list(offset, limit, |g, _, o, l| {
            Ok(g.prefixes(o, l)?
                .into_iter()
                .map(|(p, org)| api::Prefix {
                    prefix: p.as_str().to_owned(),
                    org: org.as_str().to_owned(),
                })
                .collect())
        })
    }

    fn subchains(&self, offset: Option<U64>, limit: Option<U64>) -> RpcResult<Vec<api::Subchain>> {
        self.list(offset, limit, |g, _, o, l| {
            Ok(g.subchains(o, l)?
                .into_iter()
                .map(|s| api::Subchain {
                    chain_id: U64::from(s.chain_id),
                    name: s.name,
                    created_at: U64::from(s.created_at),
                    members: s.members.iter().map(|m| m.to_string()).collect(),
                    validators: s
                        .validators
                        .iter()
                        .map(|v| api::SubchainValidator {
                            public_key: v.public_key,
                            power: U64::from(v.power),
                        })
                        .collect(),
                    retired: s.retired,
                    changed_at: U64::from(s.changed_at),
                })
                .collect())
        })
    }

    fn proposals(&self, offset: Option<U64>, limit: Option<U64>) -> RpcResult<Vec<api::Proposal>> {
        self.list(offset, limit, |g, h, from, limit| {
            let end = g.config()?.proposals.min(from.saturating_add(limit));
            let mut out = Vec::new();
            for id in from..end {
                if let Some(p) = g.proposal(id)? {
                    let votes = g.votes(id)?;
                    out.push(proposal(&p, &votes, h));
                }
            }
            Ok(out)
        })
    }

    fn proposal(&self, id: U64) -> RpcResult<Option<api::Proposal>> {
        self.read(|g, h| {
            let Some(p) = g.proposal(id.saturating_to())? else {
                return Ok(None);
            };
            let votes = g.votes(p.id)?;
            Ok(Some(proposal(&p, &votes, h)))
        })
    }

    fn audit_log(
        &self,
        offset: Option<U64>,
        limit: Option<U64>,
    ) -> RpcResult<Vec<api::AuditEntry>> {
        self.list(offset, limit, |g, _, from, limit| {
            let end = g.config()?.audits.min(from.saturating_add(limit));
            let mut out = Vec::new();
            for seq in from..end {
                out.extend(g.audit_entry(seq)?.map(|e| audit_entry(&e)));
            }
            Ok(out)
        })
    }

    fn account_organization(&self, account: Address) -> RpcResult<Option<String>> {
        self.read(|g, _| Ok(g.account_org(&account)?.map(String::from)))
    }

    fn governance_config(&self) -> RpcResult<api::GovernanceConfig> {
        self.read(|g, _| {
            let c = g.config()?;
            Ok(api::GovernanceConfig {
                threshold: api::Threshold {
                    numerator: c.threshold.numerator,
                    denominator: c.threshold.denominator,
                },
                proposal_ttl_blocks: U64::from(c.proposal_ttl),
                proposal_count: U64::from(c.proposals),
                audit_count: U64::from(c.audits),
                organization_count: U64::from(g.organization_count()?),
                member_count: U64::from(c.members),
                node_count: U64::from(g.node_count()?),
                frozen_count: U64::from(g.frozen_count()?),
                prefix_count: U64::from(g.prefix_count()?),
                subchain_count: U64::from(g.subchain_count()?),
            })
        })
    }

    fn read_tokens(
        &self,
        org: String,
        offset: Option<U64>,
        limit: Option<U64>,
    ) -> RpcResult<Vec<api::ReadToken>> {
        let org = parse_org(&org)?;
        self.list(offset, limit, |g, _, o, l| {
            Ok(g.read_tokens(&org, o, l)?.iter().map(read_token).collect())
        })
    }

    fn read_token(&self, token_hash: B256) -> RpcResult<Option<api::ReadToken>> {
        self.read(|g, _| Ok(g.read_token(&token_hash)?.as_ref().map(read_token)))
    }
}

/// Adds the governance reads to `m`.
pub fn register<B: Backend>(
    m: &mut RpcModule<RpcContext<B>>,
    backend: Arc<B>,
) -> Result<(), jsonrpsee::core::RegisterMethodError> {
    m.merge(GovernanceRpc { backend }.into_rpc())?;
    Ok(())
}
