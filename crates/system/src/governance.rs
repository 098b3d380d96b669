//! The governance system contract: organisations, nodes, accounts, freezes and the approval
//! threshold, changed only by proposals that member organisations vote on.
//!
//! Calls arrive ABI-encoded ([`Governance::call`]); the node also reads it directly for
//! admission and block execution ([`Permissions`]), for the validator set of the next height
//! ([`Governance::validators`]) and, after each block's transactions, to apply the proposals
//! due at the next height ([`Governance::end_block`]).

use alloy_primitives::{address, Address, Log, B256};
use alloy_sol_types::{sol, SolEvent, SolInterface, SolValue};
use serde::{de::DeserializeOwned, Deserialize, Serialize};
use trellis_primitives::{Genesis, NodeRole, OrgId, Threshold};

use crate::identifiers::Prefix;
use crate::kv::{self, SlotError, Slots};
use crate::{revert, CallContext, CallError, CallOutput, Result};

sol!(
    #[sol(all_derives)]
    "../../contracts/src/ITrellisGovernance.sol"
);

pub use ITrellisGovernance as abi;

/// Reserved address of the governance contract.
pub const GOVERNANCE_ADDRESS: Address = address!("0000000000000000000000000000000000001000");

/// Most accounts one `addAccounts`/`removeAccounts` call may carry.
pub const MAX_ACCOUNTS_PER_CALL: usize = 1_000;
/// Most admins of one organisation.
pub const MAX_ADMINS: usize = 16;
/// Longest organisation or sub-chain name, in bytes.
pub const MAX_NAME_BYTES: usize = 128;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Config {
    pub threshold: Threshold,
    pub proposal_ttl: u64,
    /// Number of proposals ever created (the next id).
    pub proposals: u64,
    /// Number of audit entries (the next sequence number).
    pub audits: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Organization {
    pub id: OrgId,
    pub name: String,
    pub admins: Vec<Address>,
    pub member: bool,
    pub supervisor: bool,
    pub joined_at: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Node {
    pub public_key: B256,
    pub org: OrgId,
    pub role: NodeRole,
    /// Voting power; zero unless the node is a validator.
    pub power: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Action {
    AddOrganization {
        id: OrgId,
        name: String,
        admins: Vec<Address>,
        member: bool,
        supervisor: bool,
    },
    RemoveOrganization {
        id: OrgId,
    },
    AddNode(Node),
    RemoveNode {
        public_key: B256,
    },
    SetNodeRole {
        public_key: B256,
        role: NodeRole,
        power: u64,
    },
    AddAccount {
        account: Address,
        org: OrgId,
    },
    RemoveAccount {
        account: Address,
    },
    Freeze {
        target: Address,
    },
    Unfreeze {
        target: Address,
    },
    SetThreshold(Threshold),
    CreateSubchain {
        chain_id: u64,
        name: String,
    },
    /// Delegates an identifier prefix (e.g. `MA.156`) to an organisation, or moves it.
    DelegatePrefix {
        prefix: Prefix,
        org: OrgId,
    },
}

impl Action {
    pub fn kind(&self) -> &'static str {
        match self {
            Action::AddOrganization { .. } => "addOrganization",
            Action::RemoveOrganization { .. } => "removeOrganization",
            Action::AddNode(_) => "addNode",
            Action::RemoveNode { .. } => "removeNode",
            Action::SetNodeRole { .. } => "setNodeRole",
            Action::AddAccount { .. } => "addAccount",
            Action::RemoveAccount { .. } => "removeAccount",
            Action::Freeze { .. } => "freeze",
            Action::Unfreeze { .. } => "unfreeze",
            Action::SetThreshold(_) => "setThreshold",
            Action::CreateSubchain { .. } => "createSubchain",
            Action::DelegatePrefix { .. } => "delegatePrefix",
        }
    }

    pub fn describe(&self) -> String {
        match self {
            Action::AddOrganization {
                id,
                name,
                admins,
                member,
                supervisor,
            } => {
                let roles = match (member, supervisor) {
                    (true, true) => "member, supervisor",
                    (true, false) => "member",
                    _ => "supervisor",
                };
                format!("add organisation {id} ({name}) as {roles} with admins {admins:?}")
            }
            Action::RemoveOrganization { id } => format!("remove organisation {id}"),
            Action::AddNode(n) => format!(
                "add {} node {} for {} with power {}",
                role_name(n.role),
                n.public_key,
                n.org,
                n.power
            ),
            Action::RemoveNode { public_key } => format!("remove node {public_key}"),
            Action::SetNodeRole {
                public_key,
                role,
                power,
            } => format!(
                "make node {public_key} a {} node with power {power}",
                role_name(*role)
            ),
            Action::AddAccount { account, org } => format!("add account {account} to {org}"),
            Action::RemoveAccount { account } => format!("remove account {account}"),
            Action::Freeze { target } => format!("freeze {target}"),
            Action::Unfreeze { target } => format!("unfreeze {target}"),
            Action::SetThreshold(t) => {
                format!("set the threshold to {}/{}", t.numerator, t.denominator)
            }
            Action::CreateSubchain { chain_id, name } => {
                format!("create sub-chain {chain_id} ({name})")
            }
            Action::DelegatePrefix { prefix, org } => {
                format!("delegate identifier prefix {prefix} to {org}")
            }
        }
    }

    fn needs_supervisor(&self) -> bool {
        matches!(self, Action::Freeze { .. } | Action::Unfreeze { .. })
    }
}

pub fn role_name(role: NodeRole) -> &'static str {
    match role {
        NodeRole::Validator => "validator",
        NodeRole::Full => "full",
        NodeRole::Light => "light",
        NodeRole::Archive => "archive",
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Status {
    Pending,
    Passed,
    Executed,
    Rejected,
    Expired,
    Failed,
}

impl Status {
    pub fn name(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Passed => "passed",
            Status::Executed => "executed",
            Status::Rejected => "rejected",
            Status::Expired => "expired",
            Status::Failed => "failed",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Proposal {
    pub id: u64,
    pub action: Action,
    pub proposer_org: OrgId,
    pub proposer: Address,
    pub created_at: u64,
    pub expires_at: u64,
    /// Requested effective height (0: as soon as it passes); once passed, the height at
    /// which it takes effect.
    pub effective_height: u64,
    pub status: Status,
    pub approvals: Vec<OrgId>,
    pub rejections: Vec<OrgId>,
}

impl Proposal {
    /// The status as of `height`: a pending proposal past its lifetime has expired.
    pub fn status_at(&self, height: u64) -> Status {
        if self.status == Status::Pending && height > self.expires_at {
            Status::Expired
        } else {
            self.status
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    pub seq: u64,
    pub height: u64,
    pub tx_hash: B256,
    pub action: String,
    pub org: String,
    pub actor: Address,
    pub detail: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subchain {
    pub chain_id: u64,
    pub name: String,
    pub created_at: u64,
}

/// Why an account may not send a transaction.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PermissionError {
    #[error("account {0} is not registered to any member organisation")]
    NotRegistered(Address),
    #[error("account {account} belongs to organisation {org}, which is no longer part of the consortium")]
    OrganizationGone { account: Address, org: OrgId },
    #[error("account {0} is frozen")]
    Frozen(Address),
    #[error("contract {0} is frozen")]
    TargetFrozen(Address),
    #[error("account {account} belongs to supervisor organisation {org}, which may only send governance transactions")]
    SupervisorOnly { account: Address, org: OrgId },
}

#[derive(Clone, Debug)]
enum SenderStatus {
    Member,
    SupervisorOnly(OrgId),
    NotRegistered,
    Gone(OrgId),
}

/// Permission checks against one state, caching per sender: admission and block execution
/// check every transaction, and most senders send many.
#[derive(Clone, Debug, Default)]
pub struct Permissions {
    frozen: std::collections::HashSet<Address>,
    senders: std::collections::HashMap<Address, SenderStatus>,
}

impl Permissions {
    pub fn load<S: Slots>(gov: &mut Governance<'_, S>) -> Result<Permissions, SlotError> {
        Ok(Permissions {
            frozen: gov.frozen()?.into_iter().collect(),
            senders: Default::default(),
        })
    }

    /// Addresses frozen in this state.
    pub fn frozen(&self) -> &std::collections::HashSet<Address> {
        &self.frozen
    }

    /// May `sender` send a transaction to `to` (`None`: contract creation)?
    pub fn check<S: Slots>(
        &mut self,
        gov: &mut Governance<'_, S>,
        sender: &Address,
        to: Option<&Address>,
    ) -> Result<Result<(), PermissionError>, SlotError> {
        if self.frozen.contains(sender) {
            return Ok(Err(PermissionError::Frozen(*sender)));
        }
        if let Some(to) = to.filter(|to| self.frozen.contains(*to)) {
            return Ok(Err(PermissionError::TargetFrozen(*to)));
        }
        let status = match self.senders.get(sender) {
            Some(s) => s.clone(),
            None => {
                let s = gov.sender_status(sender)?;
                self.senders.insert(*sender, s.clone());
                s
            }
        };
        Ok(match status {
            SenderStatus::Member => Ok(()),
            SenderStatus::SupervisorOnly(_) if to == Some(&GOVERNANCE_ADDRESS) => Ok(()),
            SenderStatus::SupervisorOnly(org) => Err(PermissionError::SupervisorOnly {
                account: *sender,
                org,
            }),
            SenderStatus::NotRegistered => Err(PermissionError::NotRegistered(*sender)),
            SenderStatus::Gone(org) => Err(PermissionError::OrganizationGone {
                account: *sender,
                org,
            }),
        })
    }
}

const CONFIG: &[u8] = b"config";
const ORGS: &[u8] = b"orgs";
const RETIRED: &[u8] = b"retired";
const NODES: &[u8] = b"nodes";
const FROZEN: &[u8] = b"frozen";
const SUBCHAINS: &[u8] = b"subchains";
const PREFIXES: &[u8] = b"prefixes";

fn key(prefix: &[u8], id: &[u8]) -> Vec<u8> {
    [prefix, id].concat()
}

fn org_key(id: &OrgId) -> Vec<u8> {
    key(b"org:", id.as_str().as_bytes())
}

fn node_key(k: &B256) -> Vec<u8> {
    key(b"node:", k.as_slice())
}

fn account_key(a: &Address) -> Vec<u8> {
    key(b"acct:", a.as_slice())
}

fn proposal_key(id: u64) -> Vec<u8> {
    key(b"prop:", &id.to_be_bytes())
}

fn schedule_key(height: u64) -> Vec<u8> {
    key(b"sched:", &height.to_be_bytes())
}

fn audit_key(seq: u64) -> Vec<u8> {
    key(b"audit:", &seq.to_be_bytes())
}

/// The governance contract over one storage.
pub struct Governance<'s, S: Slots> {
    slots: &'s mut S,
    logs: Vec<Log>,
}

impl<'s, S: Slots> Governance<'s, S> {
    pub fn new(slots: &'s mut S) -> Self {
        Governance {
            slots,
            logs: Vec::new(),
        }
    }

    fn read<T: serde::de::DeserializeOwned>(&mut self, key: &[u8]) -> Result<Option<T>, SlotError> {
        kv::get_decoded(self.slots, key, "governance")
    }

    fn write<T: Serialize>(&mut self, key: &[u8], value: &T) -> Result<(), SlotError> {
        kv::put_encoded(self.slots, key, value, "governance")
    }

    fn list<T: DeserializeOwned>(&mut self, key: &[u8]) -> Result<Vec<T>, SlotError> {
        Ok(self.read(key)?.unwrap_or_default())
    }

    fn emit<E: SolEvent>(&mut self, event: E) {
        self.logs.push(Log {
            address: GOVERNANCE_ADDRESS,
            data: event.encode_log_data(),
        });
    }

    // ---- genesis ----

    /// Writes the founding consortium of `genesis`.
    pub fn init(&mut self, genesis: &Genesis) -> Result<(), SlotError> {
        let g = &genesis.governance;
        let bad = |m: String| SlotError(format!("genesis governance: {m}"));
        let mut ids = Vec::new();
        for org in &g.organizations {
            let id = OrgId::parse(&org.id).map_err(|e| bad(e.to_string()))?;
            self.write(
                &org_key(&id),
                &Organization {
                    id: id.clone(),
                    name: org.name.clone(),
                    admins: org.admins.clone(),
                    member: org.member,
                    supervisor: org.supervisor,
                    joined_at: 0,
                },
            )?;
            for a in org.admins.iter().chain(&org.accounts) {
                self.write(&account_key(a), &id)?;
            }
            ids.push(id);
        }
        self.write(ORGS, &ids)?;
        let mut keys = Vec::new();
        let nodes = genesis
            .validators
            .iter()
            .map(|v| (v.public_key, &v.org, NodeRole::Validator, v.power))
            .chain(g.nodes.iter().map(|n| (n.public_key, &n.org, n.role, 0)));
        for (public_key, org, role, power) in nodes {
            let org = OrgId::parse(org).map_err(|e| bad(e.to_string()))?;
            self.write(
                &node_key(&public_key),
                &Node {
                    public_key,
                    org,
                    role,
                    power,
                },
            )?;
            keys.push(public_key);
        }
        self.write(NODES, &keys)?;
        self.write(
            CONFIG,
            &Config {
                threshold: g.threshold,
                proposal_ttl: g.proposal_ttl_blocks,
                proposals: 0,
                audits: 0,
            },
        )
    }

    // ---- reads ----

    pub fn config(&mut self) -> Result<Config, SlotError> {
        self.read(CONFIG)?
            .ok_or_else(|| SlotError("governance state is missing (no genesis?)".into()))
    }

    pub fn organization_ids(&mut self) -> Result<Vec<OrgId>, SlotError> {
        self.list(ORGS)
    }

    pub fn organization(&mut self, id: &OrgId) -> Result<Option<Organization>, SlotError> {
        self.read(&org_key(id))
    }

    pub fn organizations(&mut self) -> Result<Vec<Organization>, SlotError> {
        let mut out = Vec::new();
        for id in self.organization_ids()? {
            out.extend(self.organization(&id)?);
        }
        Ok(out)
    }

    pub fn node_keys(&mut self) -> Result<Vec<B256>, SlotError> {
        self.list(NODES)
    }

    pub fn node(&mut self, public_key: &B256) -> Result<Option<Node>, SlotError> {
        self.read(&node_key(public_key))
    }

    pub fn nodes(&mut self) -> Result<Vec<Node>, SlotError> {
        let mut out = Vec::new();
        for k in self.node_keys()? {
            out.extend(self.node(&k)?);
        }
        Ok(out)
    }

    /// Validators (public key, power) in registration order.
    pub fn validators(&mut self) -> Result<Vec<(B256, u64)>, SlotError> {
        Ok(self
            .nodes()?
            .into_iter()
            .filter(|n| n.role == NodeRole::Validator)
            .map(|n| (n.public_key, n.power))
            .collect())
    }

    pub fn account_org(&mut self, account: &Address) -> Result<Option<OrgId>, SlotError> {
        self.read(&account_key(account))
    }

    pub fn frozen(&mut self) -> Result<Vec<Address>, SlotError> {
        self.list(FROZEN)
    }

    pub fn is_frozen(&mut self, target: &Address) -> Result<bool, SlotError> {
        Ok(self.frozen()?.contains(target))
    }

    pub fn proposal(&mut self, id: u64) -> Result<Option<Proposal>, SlotError> {
        self.read(&proposal_key(id))
    }

    pub fn audit_entry(&mut self, seq: u64) -> Result<Option<AuditEntry>, SlotError> {
        self.read(&audit_key(seq))
    }

    /// Identifier prefixes delegated by governance, with their holders.
    pub fn prefixes(&mut self) -> Result<Vec<(Prefix, OrgId)>, SlotError> {
        self.list(PREFIXES)
    }

    pub fn subchains(&mut self) -> Result<Vec<Subchain>, SlotError> {
        self.list(SUBCHAINS)
    }

    /// May `sender` send a transaction to `to` (`None`: contract creation)?
    pub fn check_sender(
        &mut self,
        sender: &Address,
        to: Option<&Address>,
    ) -> Result<Result<(), PermissionError>, SlotError> {
        Permissions::load(self)?.check(self, sender, to)
    }

    fn sender_status(&mut self, sender: &Address) -> Result<SenderStatus, SlotError> {
        let Some(org_id) = self.account_org(sender)? else {
            return Ok(SenderStatus::NotRegistered);
        };
        Ok(match self.organization(&org_id)? {
            None => SenderStatus::Gone(org_id),
            Some(org) if org.member => SenderStatus::Member,
            Some(_) => SenderStatus::SupervisorOnly(org_id),
        })
    }

    // ---- calls ----

    /// Runs one ABI-encoded call. On success the logs to emit come with the output.
    pub fn call(&mut self, ctx: &CallContext, input: &[u8]) -> Result<CallOutput> {
        use abi::ITrellisGovernanceCalls as C;
        let call = C::abi_decode(input).map_err(|e| {
            CallError::revert(format!(
                "governance: unknown function or malformed arguments ({e})"
            ))
        })?;
        let writes = !matches!(
            call,
            C::proposalCount(_)
                | C::getProposal(_)
                | C::organizationIds(_)
                | C::getOrganization(_)
                | C::nodeKeys(_)
                | C::getNode(_)
                | C::accountOrganization(_)
                | C::isFrozen(_)
                | C::threshold(_)
                | C::delegatedPrefixes(_)
                | C::auditCount(_)
                | C::auditEntry(_)
        );
        if writes && ctx.is_static {
            return revert("governance: state change in a static call");
        }
        let output: Vec<u8> = match call {
            C::proposeAddOrganization(c) => {
                let id = parse_org(&c.id)?;
                if c.admins.is_empty() || c.admins.len() > MAX_ADMINS {
                    return revert(format!(
                        "an organisation needs 1 to {MAX_ADMINS} admins, got {}",
                        c.admins.len()
                    ));
                }
                check_name(&c.name)?;
                self.propose(
                    ctx,
                    Action::AddOrganization {
                        id,
                        name: c.name,
                        admins: c.admins,
                        member: c.member,
                        supervisor: c.supervisor,
                    },
                    c.effectiveHeight,
                )?
            }
            C::proposeRemoveOrganization(c) => {
                let id = parse_org(&c.id)?;
                self.propose(ctx, Action::RemoveOrganization { id }, c.effectiveHeight)?
            }
            C::proposeAddNode(c) => {
                let role = node_role(c.role)?;
                let node = Node {
                    public_key: c.publicKey,
                    org: parse_org(&c.org)?,
                    role,
                    power: if role == NodeRole::Validator {
                        c.power
                    } else {
                        0
                    },
                };
                self.propose(ctx, Action::AddNode(node), c.effectiveHeight)?
            }
            C::proposeRemoveNode(c) => self.propose(
                ctx,
                Action::RemoveNode {
                    public_key: c.publicKey,
                },
                c.effectiveHeight,
            )?,
            C::proposeSetNodeRole(c) => {
                let role = node_role(c.role)?;
                self.propose(
                    ctx,
                    Action::SetNodeRole {
                        public_key: c.publicKey,
                        role,
                        power: if role == NodeRole::Validator {
                            c.power
                        } else {
                            0
                        },
                    },
                    c.effectiveHeight,
                )?
            }
            C::proposeAddAccount(c) => {
                let org = parse_org(&c.org)?;
                self.propose(
                    ctx,
                    Action::AddAccount {
                        account: c.account,
                        org,
                    },
                    c.effectiveHeight,
                )?
            }
            C::proposeRemoveAccount(c) => self.propose(
                ctx,
                Action::RemoveAccount { account: c.account },
                c.effectiveHeight,
            )?,
            C::proposeFreeze(c) => {
                self.propose(ctx, Action::Freeze { target: c.target }, c.effectiveHeight)?
            }
            C::proposeUnfreeze(c) => self.propose(
                ctx,
                Action::Unfreeze { target: c.target },
                c.effectiveHeight,
            )?,
            C::proposeSetThreshold(c) => self.propose(
                ctx,
                Action::SetThreshold(Threshold {
                    numerator: c.numerator,
                    denominator: c.denominator,
                }),
                c.effectiveHeight,
            )?,
            C::proposeCreateSubchain(c) => {
                check_name(&c.name)?;
                self.propose(
                    ctx,
                    Action::CreateSubchain {
                        chain_id: c.chainId,
                        name: c.name,
                    },
                    c.effectiveHeight,
                )?
            }
            C::proposeDelegatePrefix(c) => {
                let prefix =
                    Prefix::parse(&c.prefix).map_err(|e| CallError::revert(e.to_string()))?;
                let org = parse_org(&c.org)?;
                self.propose(
                    ctx,
                    Action::DelegatePrefix { prefix, org },
                    c.effectiveHeight,
                )?
            }
            C::vote(c) => {
                self.vote(ctx, c.proposalId, c.approve)?;
                Vec::new()
            }
            C::addAccounts(c) => {
                self.add_accounts(ctx, c.accounts)?;
                Vec::new()
            }
            C::removeAccounts(c) => {
                self.remove_accounts(ctx, c.accounts)?;
                Vec::new()
            }
            C::proposalCount(_) => self.config()?.proposals.abi_encode(),
            C::getProposal(c) => match self.proposal(c.id)? {
                Some(p) => proposal_abi(&p, ctx.height).abi_encode(),
                None => return revert(format!("no proposal {}", c.id)),
            },
            C::organizationIds(_) => self
                .organization_ids()?
                .into_iter()
                .map(String::from)
                .collect::<Vec<_>>()
                .abi_encode(),
            C::getOrganization(c) => {
                let id = parse_org(&c.id)?;
                match self.organization(&id)? {
                    Some(o) => organization_abi(&o).abi_encode(),
                    None => return revert(format!("no organisation {id}")),
                }
            }
            C::nodeKeys(_) => self.node_keys()?.abi_encode(),
            C::getNode(c) => match self.node(&c.publicKey)? {
                Some(n) => node_abi(&n).abi_encode(),
                None => return revert(format!("no node {}", c.publicKey)),
            },
            C::accountOrganization(c) => self
                .account_org(&c.account)?
                .map(String::from)
                .unwrap_or_default()
                .abi_encode(),
            C::isFrozen(c) => self.is_frozen(&c.target)?.abi_encode(),
            C::threshold(_) => {
                let t = self.config()?.threshold;
                (t.numerator, t.denominator).abi_encode_params()
            }
            C::delegatedPrefixes(_) => {
                let (prefixes, orgs): (Vec<String>, Vec<String>) = self
                    .prefixes()?
                    .into_iter()
                    .map(|(p, o)| (p.as_str().to_owned(), o.as_str().to_owned()))
                    .unzip();
                (prefixes, orgs).abi_encode_params()
            }
            C::auditCount(_) => self.config()?.audits.abi_encode(),
            C::auditEntry(c) => match self.audit_entry(c.seq)? {
                Some(e) => audit_abi(&e).abi_encode(),
                None => return revert(format!("no audit entry {}", c.seq)),
            },
        };
        Ok(CallOutput {
            output: output.into(),
            logs: std::mem::take(&mut self.logs),
        })
    }

    /// The organisation `caller` administers.
    fn admin_org(&mut self, caller: &Address) -> Result<Organization> {
        let not_admin =
            || CallError::revert(format!("{caller} is not an admin of any organisation"));
        let id = self.account_org(caller)?.ok_or_else(not_admin)?;
        let org = self.organization(&id)?.ok_or_else(not_admin)?;
        if !org.admins.contains(caller) {
            return Err(not_admin());
        }
        Ok(org)
    }

    fn propose(&mut self, ctx: &CallContext, action: Action, effective: u64) -> Result<Vec<u8>> {
        let org = self.admin_org(&ctx.caller)?;
        let may_propose = org.member || (org.supervisor && action.needs_supervisor());
        if !may_propose {
            return revert(format!(
                "organisation {} is a supervisor and may only propose freezes and unfreezes",
                org.id
            ));
        }
        if effective != 0 && effective <= ctx.height {
            return revert(format!(
                "effective height {effective} is not after the current height {}",
                ctx.height
            ));
        }
        if let Err(reason) = self.check_action(&action)? {
            return revert(reason);
        }
        let mut config = self.config()?;
        let id = config.proposals;
        config.proposals += 1;
        self.write(CONFIG, &config)?;
        let proposal = Proposal {
            id,
            action,
            proposer_org: org.id.clone(),
            proposer: ctx.caller,
            created_at: ctx.height,
            expires_at: ctx.height.saturating_add(config.proposal_ttl),
            effective_height: effective,
            status: Status::Pending,
            approvals: vec![org.id.clone()],
            rejections: Vec::new(),
        };
        let description = proposal.action.describe();
        self.emit(abi::ProposalCreated {
            id,
            kind: proposal.action.kind().into(),
            proposerOrg: org.id.to_string(),
            proposer: ctx.caller,
            description: description.clone(),
            expiresAt: proposal.expires_at,
        });
        self.emit(abi::Voted {
            id,
            org: org.id.to_string(),
            voter: ctx.caller,
            approve: true,
        });
        self.audit(
            ctx,
            "propose",
            &org.id,
            &format!("proposal {id}: {description}"),
        )?;
        self.tally(ctx, proposal)?;
        Ok(id.abi_encode())
    }

    fn vote(&mut self, ctx: &CallContext, id: u64, approve: bool) -> Result<()> {
        let Some(mut proposal) = self.proposal(id)? else {
            return revert(format!("no proposal {id}"));
        };
        match proposal.status_at(ctx.height) {
            Status::Pending => {}
            Status::Expired => {
                return revert(format!(
                    "proposal {id} expired at height {}",
                    proposal.expires_at
                ))
            }
            other => return revert(format!("proposal {id} is already {}", other.name())),
        }
        let org = self.admin_org(&ctx.caller)?;
        if proposal.approvals.contains(&org.id) || proposal.rejections.contains(&org.id) {
            return revert(format!(
                "organisation {} has already voted on proposal {id}",
                org.id
            ));
        }
        if approve {
            proposal.approvals.push(org.id.clone());
        } else {
            proposal.rejections.push(org.id.clone());
        }
        self.emit(abi::Voted {
            id,
            org: org.id.to_string(),
            voter: ctx.caller,
            approve,
        });
        let verdict = if approve { "approve" } else { "reject" };
        self.audit(ctx, "vote", &org.id, &format!("{verdict} proposal {id}"))?;
        self.tally(ctx, proposal)
    }

    /// Decides `proposal` if its votes allow, then stores it.
    fn tally(&mut self, ctx: &CallContext, mut proposal: Proposal) -> Result<()> {
        let config = self.config()?;
        let orgs = self.organizations()?;
        let members: Vec<&OrgId> = orgs.iter().filter(|o| o.member).map(|o| &o.id).collect();
        let supervisors: Vec<&OrgId> = orgs
            .iter()
            .filter(|o| o.supervisor)
            .map(|o| &o.id)
            .collect();
        let n = members.len() as u128;
        let count = |votes: &[OrgId]| votes.iter().filter(|v| members.contains(v)).count() as u128;
        let (yes, no) = (count(&proposal.approvals), count(&proposal.rejections));
        let (num, den) = (
            config.threshold.numerator as u128,
            config.threshold.denominator as u128,
        );
        let cosigned = !proposal.action.needs_supervisor()
            || supervisors.is_empty()
            || proposal.approvals.iter().any(|a| supervisors.contains(&a));
        let id = proposal.id;
        if yes * den > num * n && cosigned {
            let effective = proposal.effective_height.max(ctx.height + 1);
            proposal.status = Status::Passed;
            proposal.effective_height = effective;
            let mut due: Vec<u64> = self.list(&schedule_key(effective))?;
            due.push(id);
            self.write(&schedule_key(effective), &due)?;
            self.emit(abi::ProposalPassed {
                id,
                effectiveHeight: effective,
            });
            self.audit(
                ctx,
                "passed",
                &proposal.proposer_org,
                &format!("proposal {id} takes effect at height {effective}"),
            )?;
        } else if (n - no.min(n)) * den <= num * n {
            proposal.status = Status::Rejected;
            self.emit(abi::ProposalRejected { id });
            self.audit(
                ctx,
                "rejected",
                &proposal.proposer_org,
                &format!("proposal {id}"),
            )?;
        }
        self.write(&proposal_key(id), &proposal)?;
        Ok(())
    }

    /// Would `action` apply to the current state? `Err(reason)` if not.
    fn check_action(&mut self, action: &Action) -> Result<Result<(), String>, SlotError> {
        let retired: Vec<OrgId> = self.list(RETIRED)?;
        Ok(match action {
            Action::AddOrganization {
                id,
                admins,
                member,
                supervisor,
                ..
            } => {
                if !member && !supervisor {
                    Err(format!(
                        "organisation {id} must be a member, a supervisor or both"
                    ))
                } else if self.organization(id)?.is_some() || retired.contains(id) {
                    Err(format!("organisation id {id} is taken"))
                } else {
                    let mut verdict = Ok(());
                    for a in admins {
                        if let Some(other) = self.account_org(a)? {
                            verdict =
                                Err(format!("admin {a} already belongs to organisation {other}"));
                            break;
                        }
                    }
                    verdict
                }
            }
            Action::RemoveOrganization { id } => {
                let orgs = self.organizations()?;
                match orgs.iter().find(|o| &o.id == id) {
                    None => Err(format!("no organisation {id}")),
                    Some(o) if o.member && orgs.iter().filter(|o| o.member).count() == 1 => {
                        Err(format!("{id} is the last member organisation"))
                    }
                    Some(_) => {
                        let remaining: u64 = self
                            .nodes()?
                            .iter()
                            .filter(|n| &n.org != id && n.role == NodeRole::Validator)
                            .map(|n| n.power)
                            .sum();
                        if remaining == 0 {
                            Err(format!("removing {id} would leave no validator"))
                        } else {
                            Ok(())
                        }
                    }
                }
            }
            Action::AddNode(node) => {
                if self.node(&node.public_key)?.is_some() {
                    Err(format!("node {} is already registered", node.public_key))
                } else if self.organization(&node.org)?.is_none() {
                    Err(format!("no organisation {}", node.org))
                } else if node.role == NodeRole::Validator && node.power == 0 {
                    Err("a validator needs a positive power".into())
                } else if !valid_ed25519(&node.public_key) {
                    Err(format!("{} is not an Ed25519 public key", node.public_key))
                } else {
                    Ok(())
                }
            }
            Action::RemoveNode { public_key } => {
                self.check_validator_change(public_key, NodeRole::Full, 0)?
            }
            Action::SetNodeRole {
                public_key,
                role,
                power,
            } => {
                if *role == NodeRole::Validator && *power == 0 {
                    Err("a validator needs a positive power".into())
                } else {
                    self.check_validator_change(public_key, *role, *power)?
                }
            }
            Action::AddAccount { account, org } => {
                if self.organization(org)?.is_none() {
                    Err(format!("no organisation {org}"))
                } else if let Some(other) = self.account_org(account)? {
                    Err(format!(
                        "account {account} already belongs to organisation {other}"
                    ))
                } else {
                    Ok(())
                }
            }
            Action::RemoveAccount { account } => match self.account_org(account)? {
                None => Err(format!("account {account} is not registered")),
                Some(org) => match self.organization(&org)? {
                    Some(o) if o.admins.contains(account) => Err(format!(
                        "account {account} is an admin of {org}; remove the organisation instead"
                    )),
                    _ => Ok(()),
                },
            },
            Action::Freeze { target } => {
                if *target == GOVERNANCE_ADDRESS {
                    Err("the governance contract cannot be frozen".into())
                } else if self.is_frozen(target)? {
                    Err(format!("{target} is already frozen"))
                } else {
                    Ok(())
                }
            }
            Action::Unfreeze { target } => {
                if self.is_frozen(target)? {
                    Ok(())
                } else {
                    Err(format!("{target} is not frozen"))
                }
            }
            Action::SetThreshold(t) => {
                if t.is_valid() {
                    Ok(())
                } else {
                    Err(format!(
                        "threshold {}/{} must be at least 1/2 and below 1",
                        t.numerator, t.denominator
                    ))
                }
            }
            Action::DelegatePrefix { org, .. } => {
                if self.organization(org)?.is_none() {
                    Err(format!("no organisation {org}"))
                } else {
                    Ok(())
                }
            }
            Action::CreateSubchain { chain_id, .. } => {
                if *chain_id == 0 {
                    Err("chain id 0 is not allowed".into())
                } else if self.subchains()?.iter().any(|s| s.chain_id == *chain_id) {
                    Err(format!("sub-chain {chain_id} already exists"))
                } else {
                    Ok(())
                }
            }
        })
    }

    /// A node that exists, changing to `role`/`power`, must leave some validator power.
    fn check_validator_change(
        &mut self,
        public_key: &B256,
        role: NodeRole,
        power: u64,
    ) -> Result<Result<(), String>, SlotError> {
        let nodes = self.nodes()?;
        if !nodes.iter().any(|n| &n.public_key == public_key) {
            return Ok(Err(format!("no node {public_key}")));
        }
        let remaining: u64 = nodes
            .iter()
            .filter(|n| n.role == NodeRole::Validator && &n.public_key != public_key)
            .map(|n| n.power)
            .sum::<u64>()
            + if role == NodeRole::Validator {
                power
            } else {
                0
            };
        Ok(if remaining == 0 {
            Err("the change would leave no validator".into())
        } else {
            Ok(())
        })
    }

    fn add_accounts(&mut self, ctx: &CallContext, accounts: Vec<Address>) -> Result<()> {
        let org = self.admin_org(&ctx.caller)?;
        if accounts.len() > MAX_ACCOUNTS_PER_CALL {
            return revert(format!(
                "at most {MAX_ACCOUNTS_PER_CALL} accounts per call, got {}",
                accounts.len()
            ));
        }
        for a in &accounts {
            match self.account_org(a)? {
                Some(o) if o == org.id => {}
                Some(o) => return revert(format!("account {a} belongs to organisation {o}")),
                None => self.write(&account_key(a), &org.id)?,
            }
        }
        self.audit(
            ctx,
            "addAccounts",
            &org.id,
            &format!("{} accounts", accounts.len()),
        )?;
        self.emit(abi::AccountsAdded {
            org: org.id.to_string(),
            accounts,
        });
        Ok(())
    }

    fn remove_accounts(&mut self, ctx: &CallContext, accounts: Vec<Address>) -> Result<()> {
        let org = self.admin_org(&ctx.caller)?;
        if accounts.len() > MAX_ACCOUNTS_PER_CALL {
            return revert(format!(
                "at most {MAX_ACCOUNTS_PER_CALL} accounts per call, got {}",
                accounts.len()
            ));
        }
        for a in &accounts {
            if self.account_org(a)?.as_ref() != Some(&org.id) {
                return revert(format!(
                    "account {a} does not belong to organisation {}",
                    org.id
                ));
            }
            if org.admins.contains(a) {
                return revert(format!("account {a} is an admin of {}", org.id));
            }
            kv::delete(self.slots, &account_key(a))?;
        }
        self.audit(
            ctx,
            "removeAccounts",
            &org.id,
            &format!("{} accounts", accounts.len()),
        )?;
        self.emit(abi::AccountsRemoved {
            org: org.id.to_string(),
            accounts,
        });
        Ok(())
    }

    fn audit(
        &mut self,
        ctx: &CallContext,
        action: &str,
        org: &OrgId,
        detail: &str,
    ) -> Result<(), SlotError> {
        let mut config = self.config()?;
        let seq = config.audits;
        config.audits += 1;
        self.write(CONFIG, &config)?;
        self.write(
            &audit_key(seq),
            &AuditEntry {
                seq,
                height: ctx.height,
                tx_hash: ctx.tx_hash,
                action: action.into(),
                org: org.to_string(),
                actor: ctx.caller,
                detail: detail.into(),
            },
        )
    }

    // ---- end of block ----

    /// Applies the proposals due at `height + 1`, after block `height`'s transactions, so
    /// that they hold for every transaction of the next block and the validator set of the
    /// next height is read from the resulting state.
    pub fn end_block(&mut self, height: u64) -> Result<(), SlotError> {
        let due_key = schedule_key(height + 1);
        let due: Vec<u64> = self.list(&due_key)?;
        if due.is_empty() {
            return Ok(());
        }
        kv::delete(self.slots, &due_key)?;
        for id in due {
            let Some(mut proposal) = self.proposal(id)? else {
                continue;
            };
            let ctx = CallContext {
                caller: Address::ZERO,
                height,
                tx_hash: B256::ZERO,
                is_static: false,
            };
            let outcome = match self.check_action(&proposal.action)? {
                Ok(()) => {
                    self.apply(&proposal.action, height + 1)?;
                    proposal.status = Status::Executed;
                    format!("proposal {id} applied: {}", proposal.action.describe())
                }
                Err(reason) => {
                    proposal.status = Status::Failed;
                    format!("proposal {id} could not be applied: {reason}")
                }
            };
            let action = if proposal.status == Status::Executed {
                "executed"
            } else {
                "failed"
            };
            self.audit(&ctx, action, &proposal.proposer_org, &outcome)?;
            self.write(&proposal_key(id), &proposal)?;
        }
        Ok(())
    }

    pub(crate) fn apply(&mut self, action: &Action, effective: u64) -> Result<(), SlotError> {
        match action.clone() {
            Action::AddOrganization {
                id,
                name,
                admins,
                member,
                supervisor,
            } => {
                for a in &admins {
                    self.write(&account_key(a), &id)?;
                }
                let mut ids = self.organization_ids()?;
                ids.push(id.clone());
                self.write(ORGS, &ids)?;
                self.write(
                    &org_key(&id),
                    &Organization {
                        id,
                        name,
                        admins,
                        member,
                        supervisor,
                        joined_at: effective,
                    },
                )?;
            }
            Action::RemoveOrganization { id } => {
                let mut ids = self.organization_ids()?;
                ids.retain(|o| o != &id);
                self.write(ORGS, &ids)?;
                kv::delete(self.slots, &org_key(&id))?;
                let mut retired: Vec<OrgId> = self.list(RETIRED)?;
                retired.push(id.clone());
                self.write(RETIRED, &retired)?;
                // Its accounts stay mapped to the retired id and are refused from now on;
                // its nodes leave with it.
                let mut keys = self.node_keys()?;
                for node in self.nodes()? {
                    if node.org == id {
                        kv::delete(self.slots, &node_key(&node.public_key))?;
                        keys.retain(|k| k != &node.public_key);
                    }
                }
                self.write(NODES, &keys)?;
            }
            Action::AddNode(node) => {
                let mut keys = self.node_keys()?;
                keys.push(node.public_key);
                self.write(NODES, &keys)?;
                self.write(&node_key(&node.public_key), &node)?;
            }
            Action::RemoveNode { public_key } => {
                let mut keys = self.node_keys()?;
                keys.retain(|k| k != &public_key);
                self.write(NODES, &keys)?;
                kv::delete(self.slots, &node_key(&public_key))?;
            }
            Action::SetNodeRole {
                public_key,
                role,
                power,
            } => {
                if let Some(mut node) = self.node(&public_key)? {
                    node.role = role;
                    node.power = power;
                    self.write(&node_key(&public_key), &node)?;
                }
            }
            Action::AddAccount { account, org } => self.write(&account_key(&account), &org)?,
            Action::RemoveAccount { account } => kv::delete(self.slots, &account_key(&account))?,
            Action::Freeze { target } => {
                let mut frozen = self.frozen()?;
                frozen.push(target);
                self.write(FROZEN, &frozen)?;
            }
            Action::Unfreeze { target } => {
                let mut frozen = self.frozen()?;
                frozen.retain(|a| a != &target);
                self.write(FROZEN, &frozen)?;
            }
            Action::SetThreshold(t) => {
                let mut config = self.config()?;
                config.threshold = t;
                self.write(CONFIG, &config)?;
            }
            Action::CreateSubchain { chain_id, name } => {
                let mut subchains = self.subchains()?;
                subchains.push(Subchain {
                    chain_id,
                    name,
                    created_at: effective,
                });
                self.write(SUBCHAINS, &subchains)?;
            }
            Action::DelegatePrefix { prefix, org } => {
                let mut prefixes = self.prefixes()?;
                prefixes.retain(|(p, _)| p != &prefix);
                prefixes.push((prefix, org));
                prefixes.sort();
                self.write(PREFIXES, &prefixes)?;
            }
        }
        Ok(())
    }
}

fn parse_org(s: &str) -> Result<OrgId> {
    OrgId::parse(s).map_err(|e| CallError::revert(e.to_string()))
}

fn check_name(name: &str) -> Result<()> {
    if name.len() > MAX_NAME_BYTES {
        return revert(format!("name longer than {MAX_NAME_BYTES} bytes"));
    }
    Ok(())
}

fn node_role(role: abi::NodeRole) -> Result<NodeRole> {
    Ok(match role {
        abi::NodeRole::Validator => NodeRole::Validator,
        abi::NodeRole::Full => NodeRole::Full,
        abi::NodeRole::Light => NodeRole::Light,
        abi::NodeRole::Archive => NodeRole::Archive,
        _ => return revert("unknown node role"),
    })
}

/// A point on the curve, and not the all-zero encoding (a small-order point no key produces).
fn valid_ed25519(key: &B256) -> bool {
    key != &B256::ZERO && ed25519_consensus::VerificationKey::try_from(key.0).is_ok()
}

fn organization_abi(o: &Organization) -> abi::Organization {
    abi::Organization {
        id: o.id.to_string(),
        name: o.name.clone(),
        admins: o.admins.clone(),
        member: o.member,
        supervisor: o.supervisor,
        joinedAt: o.joined_at,
    }
}

fn node_abi(n: &Node) -> abi::NodeInfo {
    abi::NodeInfo {
        publicKey: n.public_key,
        org: n.org.to_string(),
        role: match n.role {
            NodeRole::Validator => abi::NodeRole::Validator,
            NodeRole::Full => abi::NodeRole::Full,
            NodeRole::Light => abi::NodeRole::Light,
            NodeRole::Archive => abi::NodeRole::Archive,
        },
        power: n.power,
    }
}

fn proposal_abi(p: &Proposal, height: u64) -> abi::Proposal {
    abi::Proposal {
        id: p.id,
        kind: p.action.kind().into(),
        description: p.action.describe(),
        proposerOrg: p.proposer_org.to_string(),
        proposer: p.proposer,
        createdAt: p.created_at,
        expiresAt: p.expires_at,
        effectiveHeight: p.effective_height,
        status: match p.status_at(height) {
            Status::Pending => abi::ProposalStatus::Pending,
            Status::Passed => abi::ProposalStatus::Passed,
            Status::Executed => abi::ProposalStatus::Executed,
            Status::Rejected => abi::ProposalStatus::Rejected,
            Status::Expired => abi::ProposalStatus::Expired,
            Status::Failed => abi::ProposalStatus::Failed,
        },
        approvals: p.approvals.iter().map(|o| o.to_string()).collect(),
        rejections: p.rejections.iter().map(|o| o.to_string()).collect(),
    }
}

fn audit_abi(e: &AuditEntry) -> abi::AuditEntry {
    abi::AuditEntry {
        seq: e.seq,
        height: e.height,
        txHash: e.tx_hash,
        action: e.action.clone(),
        org: e.org.clone(),
        actor: e.actor,
        detail: e.detail.clone(),
    }
}
