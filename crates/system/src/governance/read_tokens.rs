//! Read tokens: organisations' API tokens for nodes that restrict who reads (`rpc.read_access`).
//!
//! An organisation's admin issues a token by recording its hash ([`read_token_hash`]) with a
//! label and an optional expiry; the token itself is generated and kept off chain. A TLS
//! client certificate is registered the same way, under [`client_certificate_hash`]. A node
//! that restricts reads hashes the bearer token of each request and asks [`Governance::reader`]
//! who it belongs to. Revocation, expiry and the organisation leaving the consortium all take
//! effect at the next block. Records stay after revocation (they are the audit trail), so an
//! organisation issues at most [`MAX_READ_TOKENS_PER_ORGANIZATION`] in its lifetime.
//!
//! | key / set            | holds                                              |
//! |----------------------|----------------------------------------------------|
//! | `rtok:HASH`          | [`ReadToken`]                                      |
//! | set `rtoks:ORG`      | the token hashes of one organisation, in issue order |

use alloy_primitives::{keccak256, Address, B256};
use serde::{Deserialize, Serialize};
use trellis_primitives::OrgId;

use super::{abi, key, page_limit, Governance, MAX_NAME_BYTES};
use crate::kv::{self, SlotError, Slots};
use crate::{revert, CallContext, Result};

/// Most read tokens one organisation issues, revoked ones included.
pub const MAX_READ_TOKENS_PER_ORGANIZATION: u64 = 4_096;

/// The hash under which a read token is recorded: `keccak256(bytes(token))`.
pub fn read_token_hash(token: &str) -> B256 {
    keccak256(token.as_bytes())
}

/// The hash under which a client certificate is recorded as a read token:
/// `keccak256(DER bytes of the certificate)`. A node whose RPC port speaks TLS reads the
/// certificate a client presents as this credential (see `trellis_rpc::tls`).
pub fn client_certificate_hash(der: &[u8]) -> B256 {
    keccak256(der)
}

/// Who revoked a token, and when.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revocation {
    pub height: u64,
    pub by: Address,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadToken {
    pub token_hash: B256,
    pub org: OrgId,
    pub issuer: Address,
    pub label: String,
    /// Height of the block that issued it.
    pub issued_at: u64,
    /// Unix time (seconds, by the clock of the node it is presented to) from which it is
    /// refused; `None`: never.
    pub expires_at: Option<u64>,
    pub revoked: Option<Revocation>,
}

/// The organisation a valid token belongs to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reader {
    pub org: OrgId,
    pub member: bool,
    pub supervisor: bool,
}

/// Why a token does not let its bearer read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ReadRefusal {
    #[error("unknown read token or client certificate")]
    Unknown,
    #[error("read token {0} was revoked at block {1}")]
    Revoked(B256, u64),
    #[error("read token {0} expired at Unix time {1}")]
    Expired(B256, u64),
    #[error(
        "read token {0} belongs to organisation {1}, which is no longer part of the consortium"
    )]
    OrganizationGone(B256, OrgId),
}

fn token_key(hash: &B256) -> Vec<u8> {
    key(b"rtok:", hash.as_slice())
}

fn org_tokens(org: &OrgId) -> Vec<u8> {
    key(b"rtoks:", org.as_str().as_bytes())
}

pub(super) fn token_abi(t: &ReadToken) -> abi::ReadToken {
    abi::ReadToken {
        tokenHash: t.token_hash,
        org: t.org.to_string(),
        issuer: t.issuer,
        label: t.label.clone(),
        issuedAt: t.issued_at,
        expiresAt: t.expires_at.unwrap_or(0),
        revokedAt: t.revoked.as_ref().map_or(0, |r| r.height),
        revoker: t.revoked.as_ref().map_or(Address::ZERO, |r| r.by),
    }
}

impl<S: Slots> Governance<'_, S> {
    pub fn read_token(&mut self, hash: &B256) -> Result<Option<ReadToken>, SlotError> {
        self.read(&token_key(hash))
    }

    pub fn read_token_count(&mut self, org: &OrgId) -> Result<u64, SlotError> {
        kv::Set::new(&org_tokens(org)).len(self.slots)
    }

    /// `org`'s read tokens from position `offset` on, at most `limit`, in issue order.
    pub fn read_tokens(
        &mut self,
        org: &OrgId,
        offset: u64,
        limit: u64,
    ) -> Result<Vec<ReadToken>, SlotError> {
        let mut out = Vec::new();
        for hash in kv::Set::new(&org_tokens(org)).page(self.slots, offset, limit)? {
            let hash = B256::try_from(hash.as_slice())
                .map_err(|_| SlotError::invalid("corrupt read token hash in governance state"))?;
            out.extend(self.read_token(&hash)?);
        }
        Ok(out)
    }

    /// Who the token hashing to `hash` lets read at Unix time `now` (seconds, the asked
    /// node's clock), or why it does not.
    pub fn reader(
        &mut self,
        hash: &B256,
        now: u64,
    ) -> Result<std::result::Result<Reader, ReadRefusal>, SlotError> {
        let Some(token) = self.read_token(hash)? else {
            return Ok(Err(ReadRefusal::Unknown));
        };
        if let Some(r) = &token.revoked {
            return Ok(Err(ReadRefusal::Revoked(*hash, r.height)));
        }
        if let Some(at) = token.expires_at.filter(|at| now >= *at) {
            return Ok(Err(ReadRefusal::Expired(*hash, at)));
        }
        Ok(match self.org_role(&token.org)? {
            Some((member, supervisor)) if member || supervisor => Ok(Reader {
                org: token.org,
                member,
                supervisor,
            }),
            _ => Err(ReadRefusal::OrganizationGone(*hash, token.org)),
        })
    }

    pub(super) fn issue_read_token(
        &mut self,
        ctx: &CallContext,
        token_hash: B256,
        label: String,
        expires_at: u64,
    ) -> Result<()> {
        let org = self.admin_org(&ctx.caller)?;
        if token_hash == B256::ZERO {
            return revert("the token hash is zero: record keccak256 of the token");
        }
        if label.len() > MAX_NAME_BYTES {
            return revert(format!("label longer than {MAX_NAME_BYTES} bytes"));
        }
        if self.read_token(&token_hash)?.is_some() {
            return revert(format!("read token {token_hash} is already recorded"));
        }
        let name = org_tokens(&org.id);
        let tokens = kv::Set::new(&name);
        if tokens.len(self.slots)? >= MAX_READ_TOKENS_PER_ORGANIZATION {
            return revert(format!(
                "organisation {} has issued {MAX_READ_TOKENS_PER_ORGANIZATION} read tokens, the most one organisation may",
                org.id
            ));
        }
        tokens.insert(self.slots, token_hash.as_slice())?;
        let token = ReadToken {
            token_hash,
            org: org.id.clone(),
            issuer: ctx.caller,
            label,
            issued_at: ctx.height,
            expires_at: (expires_at != 0).then_some(expires_at),
            revoked: None,
        };
        self.write(&token_key(&token_hash), &token)?;
        let expiry = match token.expires_at {
            Some(at) => format!("expires at Unix time {at}"),
            None => "no expiry".into(),
        };
        self.audit(
            ctx,
            "issueReadToken",
            &org.id,
            &format!("read token {token_hash} ({:?}), {expiry}", token.label),
        )?;
        self.emit(abi::ReadTokenIssued {
            org: org.id.to_string(),
            tokenHash: token_hash,
            issuer: ctx.caller,
            label: token.label,
            expiresAt: expires_at,
        });
        Ok(())
    }

    pub(super) fn revoke_read_token(&mut self, ctx: &CallContext, token_hash: B256) -> Result<()> {
        let Some(mut token) = self.read_token(&token_hash)? else {
            return revert(format!("no read token {token_hash}"));
        };
        let org = self.admin_org(&ctx.caller)?;
        if org.id != token.org && !org.supervisor {
            return revert(format!(
                "read token {token_hash} belongs to organisation {}; only its admins or a supervisor's may revoke it",
                token.org
            ));
        }
        if let Some(r) = &token.revoked {
            return revert(format!(
                "read token {token_hash} was already revoked at block {}",
                r.height
            ));
        }
        token.revoked = Some(Revocation {
            height: ctx.height,
            by: ctx.caller,
        });
        self.write(&token_key(&token_hash), &token)?;
        self.audit(
            ctx,
            "revokeReadToken",
            &org.id,
            &format!("read token {token_hash} of {}", token.org),
        )?;
        self.emit(abi::ReadTokenRevoked {
            org: token.org.to_string(),
            tokenHash: token_hash,
            revoker: ctx.caller,
        });
        Ok(())
    }

    /// The ABI answer of `readTokens`.
    pub(super) fn read_tokens_abi(
        &mut self,
        org: &OrgId,
        offset: u64,
        limit: u64,
    ) -> Result<Vec<abi::ReadToken>> {
        Ok(self
            .read_tokens(org, offset, page_limit(limit)?)?
            .iter()
            .map(token_abi)
            .collect())
    }
}
