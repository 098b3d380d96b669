//! The governance system contract: organisations, nodes, accounts, freezes and the approval
//! threshold, changed only by proposals that member organisations vote on.
//!
//! Calls arrive ABI-encoded ([`Governance::call`]); the node also reads it directly for
//! admission and block execution ([`Permissions`]), for the validator set of the next height
//! ([`Governance::validators`]) and, after each block's transactions, to apply the proposals
//! due at the next height ([`Governance::end_block`]).
//!
//! Every registry is stored per entry (see the layout table below `Permissions`), so the
//! cost of adding, removing or checking one entry does not grow with the registry; bounds
//! are checked when a proposal or call is made, and end-of-block work cannot fail a block.

use alloy_primitives::{address, Address, Log, B256};
use alloy_sol_types::{sol, SolEvent, SolInterface, SolValue};
use serde::{Deserialize, Serialize};
use trellis_primitives::{Genesis, NodeRole, OrgId, Threshold};

use crate::clients::Anchored;
use crate::identifiers::Prefix;
use crate::kv::{self, SlotError, Slots};
use crate::{revert, CallContext, CallError, CallOutput, Result};

mod read_tokens;
pub use read_tokens::{
    client_certificate_hash, read_token_hash, ReadRefusal, ReadToken, Reader, Revocation,
    MAX_READ_TOKENS_PER_ORGANIZATION,
};

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

/// Most member and supervisor organisations of one consortium: every vote re-counts the
/// votes already cast against current membership, so a proposal's cost grows with it.
pub const MAX_ORGANIZATIONS: u64 = 1_024;
/// Most nodes one organisation registers (removing an organisation removes them in one
/// end-of-block step).
pub const MAX_NODES_PER_ORGANIZATION: u64 = 256;
/// Most validators at once: every validator signs every height.
pub const MAX_VALIDATORS: u64 = 256;
/// Largest governance packet (the `propose…` call a sub-chain applies: a reset naming 256
/// validators takes about 16 KiB).
pub const MAX_PACKET_BYTES: usize = 32 * 1024;
/// Most member organisations a sub-chain starts with.
pub const MAX_SUBCHAIN_MEMBERS: usize = 64;
/// Most accounts (admins included) a sub-chain's genesis carries over from its members and
/// the supervisors: every one is read, and proven, when the genesis is derived. Members
/// register more on the sub-chain itself (`addAccounts`).
pub const MAX_SUBCHAIN_GENESIS_ACCOUNTS: u64 = 4_096;
/// Most registered nodes (validators included) a sub-chain's genesis carries over from its
/// members and the supervisors.
pub const MAX_SUBCHAIN_GENESIS_NODES: u64 = 1_024;
/// End-of-block work one height takes at most, in units of one ordinary proposal; removing an
/// organisation weighs one plus [`MAX_NODES_PER_ORGANIZATION`]. A proposal that passes when
/// its height is full takes effect at the first later height with room.
pub const SCHEDULE_CAPACITY: u64 = 512;
/// How far ahead a proposal may ask to take effect.
pub const MAX_EFFECTIVE_DELAY: u64 = 10_000_000;
/// Most entries one listing view returns.
pub const MAX_PAGE: u64 = 1_000;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Config {
    pub threshold: Threshold,
    pub proposal_ttl: u64,
    /// Number of proposals ever created (the next id).
    pub proposals: u64,
    /// Number of audit entries (the next sequence number).
    pub audits: u64,
    /// Organisations that are members (they vote) and supervisors (they co-sign freezes).
    pub members: u64,
    pub supervisors: u64,
    /// This chain's id (a sub-chain may not take it).
    pub chain_id: u64,
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
    /// A sub-chain of `members`, validated by `validators` (registered nodes of those
    /// members); its genesis is derived from the state after the block it takes effect in.
    CreateSubchain {
        chain_id: u64,
        name: String,
        members: Vec<OrgId>,
        validators: Vec<SubchainValidator>,
    },
    /// Delegates an identifier prefix (e.g. `MA.156`) to an organisation, or moves it.
    DelegatePrefix {
        prefix: Prefix,
        org: OrgId,
    },
    // New variants go last: stored proposals name theirs by position.
    RetireSubchain {
        chain_id: u64,
    },
    RecoverSubchain {
        chain_id: u64,
    },
    /// Resets this chain's light client of `chain_id` (a frozen one above all): it trusts
    /// `validators` from the header `root` on ([`crate::LightClients::reset`]).
    ResetLightClient {
        chain_id: u64,
        root: Anchored,
        validators: Vec<SubchainValidator>,
    },
    /// Sends sub-chain `chain_id` a governance packet: `call`, one of this contract's
    /// `propose…` calls of the kinds [`packet_action`] accepts, ABI-encoded. The sub-chain
    /// applies it at the end of the block that receives it.
    SendToSubchain {
        chain_id: u64,
        call: Vec<u8>,
    },
}

/// The action a governance packet carries: a freeze, an unfreeze, an organisation's removal or
/// a light client's reset, as the `propose…` call that would propose it (its effective height
/// is ignored: a packet applies when it arrives).
pub fn packet_action(call: &[u8]) -> std::result::Result<Action, String> {
    use abi::ITrellisGovernanceCalls as C;
    let decoded =
        C::abi_decode(call).map_err(|e| format!("an undecodable governance packet: {e}"))?;
    Ok(match decoded {
        C::proposeFreeze(c) => Action::Freeze { target: c.target },
        C::proposeUnfreeze(c) => Action::Unfreeze { target: c.target },
        C::proposeRemoveOrganization(c) => Action::RemoveOrganization {
            id: parse_org(&c.id).map_err(|e| e.to_string())?,
        },
        C::proposeResetLightClient(c) => reset_action(&c),
        _ => {
            return Err(
                "a governance packet carries a freeze, an unfreeze, an organisation's removal \
                 or a light client's reset, nothing else"
                    .into(),
            )
        }
    })
}

fn reset_action(c: &abi::proposeResetLightClientCall) -> Action {
    Action::ResetLightClient {
        chain_id: c.chainId,
        root: Anchored {
            height: c.height,
            hash: c.blockHash,
            state_root: c.stateRoot,
            timestamp_ms: c.timestampMs,
        },
        validators: c
            .validators
            .iter()
            .map(|v| SubchainValidator {
                public_key: v.publicKey,
                power: v.power,
            })
            .collect(),
    }
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
            Action::RetireSubchain { .. } => "retireSubchain",
            Action::RecoverSubchain { .. } => "recoverSubchain",
            Action::DelegatePrefix { .. } => "delegatePrefix",
            Action::ResetLightClient { .. } => "resetLightClient",
            Action::SendToSubchain { .. } => "sendToSubchain",
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
            Action::CreateSubchain {
                chain_id,
                name,
                members,
                validators,
            } => {
                let members: Vec<&str> = members.iter().map(OrgId::as_str).collect();
                format!(
                    "create sub-chain {chain_id} ({name}) of {} with {} validators",
                    members.join(", "),
                    validators.len()
                )
            }
            Action::RetireSubchain { chain_id } => format!("retire sub-chain {chain_id}"),
            Action::RecoverSubchain { chain_id } => format!("recover sub-chain {chain_id}"),
            Action::DelegatePrefix { prefix, org } => {
                format!("delegate identifier prefix {prefix} to {org}")
            }
            Action::ResetLightClient {
                chain_id,
                root,
                validators,
            } => format!(
                "reset the light client of chain {chain_id} to trust {} validators from its \
                 block {} ({})",
                validators.len(),
                root.height,
                root.hash
            ),
            Action::SendToSubchain { chain_id, call } => match packet_action(call) {
                Ok(action) => format!("on sub-chain {chain_id}: {}", action.describe()),
                Err(e) => format!("send sub-chain {chain_id} {e}"),
            },
        }
    }

    /// Freezes and unfreezes (of accounts and of light clients) need a supervisor's approval
    /// when the consortium has supervisors, and supervisors may propose them.
    fn needs_supervisor(&self) -> bool {
        match self {
            Action::Freeze { .. } | Action::Unfreeze { .. } | Action::ResetLightClient { .. } => {
                true
            }
            Action::SendToSubchain { call, .. } => {
                packet_action(call).is_ok_and(|a| a.needs_supervisor())
            }
            _ => false,
        }
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
    /// Why it could not be applied at its effective height (status `Failed`).
    pub failure: Option<String>,
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

/// The votes cast on a proposal, in the order they were cast.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Votes {
    pub approvals: Vec<OrgId>,
    pub rejections: Vec<OrgId>,
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
    /// The height its creation took effect at: its genesis is derived from the state after
    /// this block.
    pub created_at: u64,
    pub members: Vec<OrgId>,
    pub validators: Vec<SubchainValidator>,
    /// Retired by a vote (its hosts stop it); a recovery vote clears it.
    pub retired: bool,
    /// Height of the last retirement or recovery (`created_at` until then).
    pub changed_at: u64,
}

/// A sub-chain validator: a registered main-chain node of one of its members.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubchainValidator {
    pub public_key: B256,
    pub power: u64,
}

/// What the proposals applied at the end of a block changed that the node follows outside
/// state: its peer allowlist and the validator set of the next height.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Effects {
    /// Node keys registered by the applied proposals.
    pub nodes_added: Vec<B256>,
    /// Node keys no longer registered (removed, or their organisation left).
    pub nodes_removed: Vec<B256>,
    /// The validator set of the next height may differ from this one's.
    pub validators_changed: bool,
    /// Sub-chains created: their genesis is derived from the state after this block.
    pub subchains_created: Vec<u64>,
    /// Light clients to reset.
    pub clients_reset: Vec<ClientReset>,
    /// Governance packets to send: (sub-chain, the `propose…` call it applies).
    pub packets: Vec<(u64, Vec<u8>)>,
}

/// A light client's reset a vote asked for: it trusts `validators` (node key, power) from the
/// header `root` of chain `chain_id` on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientReset {
    pub chain_id: u64,
    pub root: Anchored,
    pub validators: Vec<(B256, u64)>,
}

impl Effects {
    pub fn merge(&mut self, other: Effects) {
        self.nodes_added.extend(other.nodes_added);
        self.nodes_removed.extend(other.nodes_removed);
        self.validators_changed |= other.validators_changed;
        self.subchains_created.extend(other.subchains_created);
        self.clients_reset.extend(other.clients_reset);
        self.packets.extend(other.packets);
    }
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

/// Addresses one [`Permissions`] remembers at most; beyond it the caches start over (they
/// are only caches of one state).
const MAX_CACHED: usize = 100_000;

/// Permission checks against one state, caching per address: admission and block execution
/// check every transaction, and most senders send many. Nothing is read in advance, so the
/// cost does not grow with the number of registered or frozen accounts.
#[derive(Clone, Debug, Default)]
pub struct Permissions {
    /// Whether anything is frozen at all; when nothing is (the usual case) no address is
    /// looked up.
    any_frozen: bool,
    frozen: std::collections::HashMap<Address, bool>,
    senders: std::collections::HashMap<Address, SenderStatus>,
}

impl Permissions {
    pub fn load<S: Slots>(gov: &mut Governance<'_, S>) -> Result<Permissions, SlotError> {
        Ok(Permissions {
            any_frozen: !FROZEN.is_empty(gov.slots)?,
            frozen: Default::default(),
            senders: Default::default(),
        })
    }

    /// Whether any address is frozen in this state.
    pub fn any_frozen(&self) -> bool {
        self.any_frozen
    }

    /// Is `address` frozen in this state?
    pub fn is_frozen<S: Slots>(
        &mut self,
        gov: &mut Governance<'_, S>,
        address: &Address,
    ) -> Result<bool, SlotError> {
        if !self.any_frozen {
            return Ok(false);
        }
        if let Some(f) = self.frozen.get(address) {
            return Ok(*f);
        }
        let f = gov.is_frozen(address)?;
        if self.frozen.len() >= MAX_CACHED {
            self.frozen.clear();
        }
        self.frozen.insert(*address, f);
        Ok(f)
    }

    /// May `sender` send a transaction to `to` (`None`: contract creation)?
    pub fn check<S: Slots>(
        &mut self,
        gov: &mut Governance<'_, S>,
        sender: &Address,
        to: Option<&Address>,
    ) -> Result<Result<(), PermissionError>, SlotError> {
        if self.is_frozen(gov, sender)? {
            return Ok(Err(PermissionError::Frozen(*sender)));
        }
        if let Some(to) = to {
            if self.is_frozen(gov, to)? {
                return Ok(Err(PermissionError::TargetFrozen(*to)));
            }
        }
        let status = match self.senders.get(sender) {
            Some(s) => s.clone(),
            None => {
                let s = gov.sender_status(sender)?;
                if self.senders.len() >= MAX_CACHED {
                    self.senders.clear();
                }
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

// Storage layout. Records are `kv` records; growing registries are `kv::Set`s, so that adding
// or removing an entry costs a handful of slots whatever the registry's size:
//
// | key / set                      | holds                                                    |
// |--------------------------------|----------------------------------------------------------|
// | `config`                       | [`Config`]                                               |
// | set `orgs`                     | organisation ids                                          |
// | `org:ID`                       | [`Organization`]                                          |
// | counter `role:ID`              | 1 member + 2 supervisor (0: no such organisation)        |
// | `retired:ID`                   | empty record: the id belonged to a removed organisation  |
// | set `nodes`, set `validators`  | node keys (every node / validators only)                 |
// | set `orgnodes:ID`              | the node keys of one organisation                        |
// | `node:KEY`                     | [`Node`]                                                 |
// | `acct:ADDRESS`                 | the account's organisation id                            |
// | set `orgaccts:ID`              | the accounts of one organisation (admins included)       |
// | set `frozen`                   | frozen addresses                                         |
// | set `prefixes`, `gpfx:PREFIX`  | delegated identifier prefixes, and each one's holder     |
// | set `subchains`, `subchain:ID` | sub-chain ids (8 bytes, big-endian), and each record     |
// | `prop:ID`                      | [`Proposal`]                                             |
// | set `votes:ID`                 | organisations that voted on proposal ID, in vote order   |
// | counter `vote:ID‖ORG`          | 1 approve, 2 reject                                      |
// | set `sched:H`, counter `load:H`| proposals taking effect at height H, and their weight    |
// | `audit:SEQ`                    | [`AuditEntry`]                                           |
// | `rtok:HASH`, set `rtoks:ID`    | read tokens and each organisation's (`read_tokens`)      |

const CONFIG: &[u8] = b"config";
const ORGS: kv::Set<'static> = kv::Set::new(b"orgs");
const NODES: kv::Set<'static> = kv::Set::new(b"nodes");
const VALIDATORS: kv::Set<'static> = kv::Set::new(b"validators");
const FROZEN: kv::Set<'static> = kv::Set::new(b"frozen");
const PREFIXES: kv::Set<'static> = kv::Set::new(b"prefixes");
const SUBCHAINS: kv::Set<'static> = kv::Set::new(b"subchains");

const ROLE_MEMBER: u64 = 1;
const ROLE_SUPERVISOR: u64 = 2;
const VOTE_APPROVE: u64 = 1;
const VOTE_REJECT: u64 = 2;

fn key(prefix: &[u8], id: &[u8]) -> Vec<u8> {
    [prefix, id].concat()
}

fn org_key(id: &OrgId) -> Vec<u8> {
    key(b"org:", id.as_str().as_bytes())
}

fn role_key(id: &OrgId) -> Vec<u8> {
    key(b"role:", id.as_str().as_bytes())
}

fn retired_key(id: &OrgId) -> Vec<u8> {
    key(b"retired:", id.as_str().as_bytes())
}

fn org_nodes_name(id: &OrgId) -> Vec<u8> {
    key(b"orgnodes:", id.as_str().as_bytes())
}

fn org_accounts_name(id: &OrgId) -> Vec<u8> {
    key(b"orgaccts:", id.as_str().as_bytes())
}

fn node_key(k: &B256) -> Vec<u8> {
    key(b"node:", k.as_slice())
}

fn account_key(a: &Address) -> Vec<u8> {
    key(b"acct:", a.as_slice())
}

fn prefix_key(p: &Prefix) -> Vec<u8> {
    key(b"gpfx:", p.as_str().as_bytes())
}

fn subchain_key(chain_id: u64) -> Vec<u8> {
    key(b"subchain:", &chain_id.to_be_bytes())
}

fn proposal_key(id: u64) -> Vec<u8> {
    key(b"prop:", &id.to_be_bytes())
}

fn votes_name(id: u64) -> Vec<u8> {
    key(b"votes:", &id.to_be_bytes())
}

fn vote_key(id: u64, org: &OrgId) -> Vec<u8> {
    [
        b"vote:".as_slice(),
        &id.to_be_bytes(),
        org.as_str().as_bytes(),
    ]
    .concat()
}

fn schedule_name(height: u64) -> Vec<u8> {
    key(b"sched:", &height.to_be_bytes())
}

fn load_key(height: u64) -> Vec<u8> {
    key(b"load:", &height.to_be_bytes())
}

fn audit_key(seq: u64) -> Vec<u8> {
    key(b"audit:", &seq.to_be_bytes())
}

fn decode_org(bytes: Vec<u8>) -> Result<OrgId, SlotError> {
    String::from_utf8(bytes)
        .ok()
        .and_then(|s| OrgId::parse(&s).ok())
        .ok_or_else(|| SlotError::invalid("corrupt organisation id in governance state"))
}

fn decode_b256(bytes: Vec<u8>) -> Result<B256, SlotError> {
    B256::try_from(bytes.as_slice())
        .map_err(|_| SlotError::invalid("corrupt node key in governance state"))
}

fn decode_address(bytes: Vec<u8>) -> Result<Address, SlotError> {
    Address::try_from(bytes.as_slice())
        .map_err(|_| SlotError::invalid("corrupt address in governance state"))
}

fn decode_u64(bytes: Vec<u8>) -> Result<u64, SlotError> {
    <[u8; 8]>::try_from(bytes.as_slice())
        .map(u64::from_be_bytes)
        .map_err(|_| SlotError::invalid("corrupt number in governance state"))
}

fn decode_prefix(bytes: Vec<u8>) -> Result<Prefix, SlotError> {
    String::from_utf8(bytes)
        .ok()
        .and_then(|s| Prefix::parse(&s).ok())
        .ok_or_else(|| SlotError::invalid("corrupt prefix in governance state"))
}

impl Action {
    /// End-of-block work this action takes at most, in units of [`SCHEDULE_CAPACITY`].
    fn weight(&self) -> u64 {
        match self {
            Action::RemoveOrganization { .. } => 1 + MAX_NODES_PER_ORGANIZATION,
            // Reads every organisation's role and the members' and supervisors' account and
            // node counts, and every node it derives a genesis with: at most 8 per height.
            Action::CreateSubchain { .. } => SCHEDULE_CAPACITY / 8,
            _ => 1,
        }
    }
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

    fn emit<E: SolEvent>(&mut self, event: E) {
        self.logs.push(Log {
            address: GOVERNANCE_ADDRESS,
            data: event.encode_log_data(),
        });
    }

    // ---- genesis ----

    /// Writes the founding consortium of `genesis`, under the same bounds as proposals.
    pub fn init(&mut self, genesis: &Genesis) -> Result<(), SlotError> {
        let g = &genesis.governance;
        let bad = |m: String| SlotError::invalid(format!("genesis governance: {m}"));
        self.write(
            CONFIG,
            &Config {
                threshold: g.threshold,
                proposal_ttl: g.proposal_ttl_blocks,
                proposals: 0,
                audits: 0,
                members: 0,
                supervisors: 0,
                chain_id: genesis.chain_id.0,
            },
        )?;
        for org in &g.organizations {
            let id = OrgId::parse(&org.id).map_err(|e| bad(e.to_string()))?;
            let action = Action::AddOrganization {
                id: id.clone(),
                name: org.name.clone(),
                admins: org.admins.clone(),
                member: org.member,
                supervisor: org.supervisor,
            };
            if org.admins.is_empty() || org.admins.len() > MAX_ADMINS {
                return Err(bad(format!(
                    "organisation {id} needs 1 to {MAX_ADMINS} admins"
                )));
            }
            self.check_action(&action)?.map_err(bad)?;
            self.apply(&action, 0)?;
            for a in &org.accounts {
                if let Some(other) = self.account_org(a)? {
                    return Err(bad(format!("account {a} is listed by {other} and {id}")));
                }
                self.set_account(a, &id)?;
            }
        }
        let nodes = genesis
            .validators
            .iter()
            .map(|v| (v.public_key, &v.org, NodeRole::Validator, v.power))
            .chain(g.nodes.iter().map(|n| (n.public_key, &n.org, n.role, 0)));
        for (public_key, org, role, power) in nodes {
            let org = OrgId::parse(org).map_err(|e| bad(e.to_string()))?;
            let action = Action::AddNode(Node {
                public_key,
                org,
                role,
                power,
            });
            self.check_action(&action)?.map_err(bad)?;
            self.apply(&action, 0)?;
        }
        Ok(())
    }

    // ---- reads ----

    pub fn config(&mut self) -> Result<Config, SlotError> {
        self.read(CONFIG)?
            .ok_or_else(|| SlotError::invalid("governance state is missing (no genesis?)"))
    }

    pub fn organization_count(&mut self) -> Result<u64, SlotError> {
        ORGS.len(self.slots)
    }

    /// Organisation ids from position `offset` on, at most `limit`.
    pub fn organization_ids(&mut self, offset: u64, limit: u64) -> Result<Vec<OrgId>, SlotError> {
        ORGS.page(self.slots, offset, limit)?
            .into_iter()
            .map(decode_org)
            .collect()
    }

    pub fn organization(&mut self, id: &OrgId) -> Result<Option<Organization>, SlotError> {
        self.read(&org_key(id))
    }

    /// Organisations from position `offset` on, at most `limit`.
    pub fn organizations(
        &mut self,
        offset: u64,
        limit: u64,
    ) -> Result<Vec<Organization>, SlotError> {
        let mut out = Vec::new();
        for id in self.organization_ids(offset, limit)? {
            out.extend(self.organization(&id)?);
        }
        Ok(out)
    }

    /// Whether `id` is a member and whether it is a supervisor; `None`: no such organisation.
    /// Whether `id` is a supervisor organisation.
    pub fn is_supervisor(&mut self, id: &OrgId) -> Result<bool, SlotError> {
        Ok(self.org_role(id)?.is_some_and(|(_, supervisor)| supervisor))
    }

    fn org_role(&mut self, id: &OrgId) -> Result<Option<(bool, bool)>, SlotError> {
        let role = kv::counter(self.slots, &role_key(id))?;
        Ok((role != 0).then_some((role & ROLE_MEMBER != 0, role & ROLE_SUPERVISOR != 0)))
    }

    pub fn node_count(&mut self) -> Result<u64, SlotError> {
        NODES.len(self.slots)
    }

    /// Registered node keys from position `offset` on, at most `limit`.
    pub fn node_keys(&mut self, offset: u64, limit: u64) -> Result<Vec<B256>, SlotError> {
        NODES
            .page(self.slots, offset, limit)?
            .into_iter()
            .map(decode_b256)
            .collect()
    }

    pub fn node(&mut self, public_key: &B256) -> Result<Option<Node>, SlotError> {
        self.read(&node_key(public_key))
    }

    /// Registered nodes from position `offset` on, at most `limit`.
    pub fn nodes(&mut self, offset: u64, limit: u64) -> Result<Vec<Node>, SlotError> {
        let mut out = Vec::new();
        for k in self.node_keys(offset, limit)? {
            out.extend(self.node(&k)?);
        }
        Ok(out)
    }

    /// The node keys of organisation `id` (at most [`MAX_NODES_PER_ORGANIZATION`]).
    pub fn organization_nodes(&mut self, id: &OrgId) -> Result<Vec<B256>, SlotError> {
        kv::Set::new(&org_nodes_name(id))
            .all(self.slots)?
            .into_iter()
            .map(decode_b256)
            .collect()
    }

    /// Validators (public key, power); at most [`MAX_VALIDATORS`].
    pub fn validators(&mut self) -> Result<Vec<(B256, u64)>, SlotError> {
        let mut out = Vec::new();
        for k in VALIDATORS.all(self.slots)? {
            let k = decode_b256(k)?;
            let node = self
                .node(&k)?
                .ok_or_else(|| SlotError::invalid(format!("validator {k} has no node record")))?;
            out.push((k, node.power));
        }
        Ok(out)
    }

    /// How many accounts organisation `id` has (admins included).
    pub fn organization_account_count(&mut self, id: &OrgId) -> Result<u64, SlotError> {
        kv::Set::new(&org_accounts_name(id)).len(self.slots)
    }

    /// The accounts of organisation `id` from position `offset` on, at most `limit`.
    pub fn organization_accounts(
        &mut self,
        id: &OrgId,
        offset: u64,
        limit: u64,
    ) -> Result<Vec<Address>, SlotError> {
        kv::Set::new(&org_accounts_name(id))
            .page(self.slots, offset, limit)?
            .into_iter()
            .map(decode_address)
            .collect()
    }

    pub fn account_org(&mut self, account: &Address) -> Result<Option<OrgId>, SlotError> {
        self.read(&account_key(account))
    }

    pub fn frozen_count(&mut self) -> Result<u64, SlotError> {
        FROZEN.len(self.slots)
    }

    /// Frozen addresses from position `offset` on, at most `limit`.
    pub fn frozen(&mut self, offset: u64, limit: u64) -> Result<Vec<Address>, SlotError> {
        FROZEN
            .page(self.slots, offset, limit)?
            .into_iter()
            .map(decode_address)
            .collect()
    }

    /// The slots that prove the frozen count and the frozen addresses from `offset` on, at
    /// most `limit` (see [`Governance::frozen`]).
    pub fn frozen_proof_slots(
        &mut self,
        offset: u64,
        limit: u64,
    ) -> Result<Vec<alloy_primitives::U256>, SlotError> {
        FROZEN.page_proof_slots(self.slots, offset, limit)
    }

    pub fn is_frozen(&mut self, target: &Address) -> Result<bool, SlotError> {
        FROZEN.contains(self.slots, target.as_slice())
    }

    /// Proposals open for votes at `height`, newest first. Only proposals made within the
    /// proposal lifetime can still be pending, so the newest are read until one is older: the
    /// work is bounded by one lifetime's proposals, not by all ever made.
    pub fn pending_proposals(&mut self, height: u64) -> Result<Vec<Proposal>, SlotError> {
        let config = self.config()?;
        let mut out = Vec::new();
        for id in (0..config.proposals).rev() {
            let Some(p) = self.proposal(id)? else {
                continue;
            };
            if p.created_at.saturating_add(config.proposal_ttl) < height {
                break;
            }
            if p.status_at(height) == Status::Pending {
                out.push(p);
            }
        }
        Ok(out)
    }

    pub fn proposal(&mut self, id: u64) -> Result<Option<Proposal>, SlotError> {
        self.read(&proposal_key(id))
    }

    /// The votes cast on proposal `id` (at most one per organisation).
    pub fn votes(&mut self, id: u64) -> Result<Votes, SlotError> {
        let mut votes = Votes::default();
        for org in kv::Set::new(&votes_name(id)).all(self.slots)? {
            let org = decode_org(org)?;
            match kv::counter(self.slots, &vote_key(id, &org))? {
                VOTE_APPROVE => votes.approvals.push(org),
                _ => votes.rejections.push(org),
            }
        }
        Ok(votes)
    }

    /// The slots that prove audit entry `seq` and the configuration record (which holds the
    /// number of entries), for storage proofs of an audit export.
    pub fn audit_proof_slots(
        &mut self,
        seq: u64,
    ) -> Result<Vec<alloy_primitives::U256>, SlotError> {
        kv::proof_slots(self.slots, &audit_key(seq))
    }

    /// The slots that prove the configuration record (threshold, counts).
    pub fn config_proof_slots(&mut self) -> Result<Vec<alloy_primitives::U256>, SlotError> {
        kv::proof_slots(self.slots, CONFIG)
    }

    pub fn audit_entry(&mut self, seq: u64) -> Result<Option<AuditEntry>, SlotError> {
        self.read(&audit_key(seq))
    }

    pub fn prefix_count(&mut self) -> Result<u64, SlotError> {
        PREFIXES.len(self.slots)
    }

    /// Identifier prefixes delegated by governance, with their holders, from position
    /// `offset` on, at most `limit`.
    pub fn prefixes(&mut self, offset: u64, limit: u64) -> Result<Vec<(Prefix, OrgId)>, SlotError> {
        let mut out = Vec::new();
        for p in PREFIXES.page(self.slots, offset, limit)? {
            let p = decode_prefix(p)?;
            if let Some(org) = self.prefix_holder(&p)? {
                out.push((p, org));
            }
        }
        Ok(out)
    }

    /// The organisation governance delegated `prefix` to, if any.
    pub fn prefix_holder(&mut self, prefix: &Prefix) -> Result<Option<OrgId>, SlotError> {
        self.read(&prefix_key(prefix))
    }

    pub fn subchain_count(&mut self) -> Result<u64, SlotError> {
        SUBCHAINS.len(self.slots)
    }

    /// Sub-chains from position `offset` on, at most `limit`.
    pub fn subchains(&mut self, offset: u64, limit: u64) -> Result<Vec<Subchain>, SlotError> {
        let mut out = Vec::new();
        for id in SUBCHAINS.page(self.slots, offset, limit)? {
            out.extend(self.subchain(decode_u64(id)?)?);
        }
        Ok(out)
    }

    pub fn subchain(&mut self, chain_id: u64) -> Result<Option<Subchain>, SlotError> {
        self.read(&subchain_key(chain_id))
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
        Ok(match self.org_role(&org_id)? {
            None => SenderStatus::Gone(org_id),
            Some((true, _)) => SenderStatus::Member,
            Some((false, _)) => SenderStatus::SupervisorOnly(org_id),
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
                | C::organizationCount(_)
                | C::organizationIds(_)
                | C::getOrganization(_)
                | C::nodeCount(_)
                | C::nodeKeys(_)
                | C::getNode(_)
                | C::accountOrganization(_)
                | C::isFrozen(_)
                | C::frozenCount(_)
                | C::frozenAddresses(_)
                | C::threshold(_)
                | C::delegatedPrefixCount(_)
                | C::delegatedPrefixes(_)
                | C::subchainCount(_)
                | C::getSubchains(_)
                | C::getSubchain(_)
                | C::organizationAccountCount(_)
                | C::organizationAccounts(_)
                | C::auditCount(_)
                | C::auditEntry(_)
                | C::getReadToken(_)
                | C::readTokenCount(_)
                | C::readTokens(_)
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
                if c.members.len() > MAX_SUBCHAIN_MEMBERS
                    || c.validators.len() as u64 > MAX_VALIDATORS
                {
                    return revert(format!(
                        "a sub-chain has at most {MAX_SUBCHAIN_MEMBERS} members and \
                         {MAX_VALIDATORS} validators"
                    ));
                }
                let members = c
                    .members
                    .iter()
                    .map(|m| parse_org(m))
                    .collect::<Result<Vec<_>>>()?;
                let validators = c
                    .validators
                    .iter()
                    .map(|v| SubchainValidator {
                        public_key: v.publicKey,
                        power: v.power,
                    })
                    .collect();
                self.propose(
                    ctx,
                    Action::CreateSubchain {
                        chain_id: c.chainId,
                        name: c.name,
                        members,
                        validators,
                    },
                    c.effectiveHeight,
                )?
            }
            C::proposeRetireSubchain(c) => self.propose(
                ctx,
                Action::RetireSubchain {
                    chain_id: c.chainId,
                },
                c.effectiveHeight,
            )?,
            C::proposeRecoverSubchain(c) => self.propose(
                ctx,
                Action::RecoverSubchain {
                    chain_id: c.chainId,
                },
                c.effectiveHeight,
            )?,
            C::proposeResetLightClient(c) => {
                if c.validators.len() as u64 > MAX_VALIDATORS {
                    return revert(format!(
                        "a light client trusts at most {MAX_VALIDATORS} validators"
                    ));
                }
                self.propose(ctx, reset_action(&c), c.effectiveHeight)?
            }
            C::proposeToSubchain(c) => self.propose(
                ctx,
                Action::SendToSubchain {
                    chain_id: c.chainId,
                    call: c.call.to_vec(),
                },
                c.effectiveHeight,
            )?,
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
            C::issueReadToken(c) => {
                self.issue_read_token(ctx, c.tokenHash, c.label, c.expiresAt)?;
                Vec::new()
            }
            C::revokeReadToken(c) => {
                self.revoke_read_token(ctx, c.tokenHash)?;
                Vec::new()
            }
            C::getReadToken(c) => match self.read_token(&c.tokenHash)? {
                Some(t) => read_tokens::token_abi(&t).abi_encode(),
                None => return revert(format!("no read token {}", c.tokenHash)),
            },
            C::readTokenCount(c) => self.read_token_count(&parse_org(&c.org)?)?.abi_encode(),
            C::readTokens(c) => self
                .read_tokens_abi(&parse_org(&c.org)?, c.offset, c.limit)?
                .abi_encode(),
            C::proposalCount(_) => self.config()?.proposals.abi_encode(),
            C::getProposal(c) => match self.proposal(c.id)? {
                Some(p) => {
                    let votes = self.votes(p.id)?;
                    proposal_abi(&p, &votes, ctx.height).abi_encode()
                }
                None => return revert(format!("no proposal {}", c.id)),
            },
            C::organizationCount(_) => self.organization_count()?.abi_encode(),
            C::organizationIds(c) => self
                .organization_ids(c.offset, page_limit(c.limit)?)?
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
            C::nodeCount(_) => self.node_count()?.abi_encode(),
            C::nodeKeys(c) => self.node_keys(c.offset, page_limit(c.limit)?)?.abi_encode(),
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
            C::frozenCount(_) => self.frozen_count()?.abi_encode(),
            C::frozenAddresses(c) => self.frozen(c.offset, page_limit(c.limit)?)?.abi_encode(),
            C::threshold(_) => {
                let t = self.config()?.threshold;
                (t.numerator, t.denominator).abi_encode_params()
            }
            C::delegatedPrefixCount(_) => self.prefix_count()?.abi_encode(),
            C::delegatedPrefixes(c) => {
                let (prefixes, orgs): (Vec<String>, Vec<String>) = self
                    .prefixes(c.offset, page_limit(c.limit)?)?
                    .into_iter()
                    .map(|(p, o)| (p.as_str().to_owned(), o.as_str().to_owned()))
                    .unzip();
                (prefixes, orgs).abi_encode_params()
            }
            C::subchainCount(_) => self.subchain_count()?.abi_encode(),
            C::getSubchains(c) => self
                .subchains(c.offset, page_limit(c.limit)?)?
                .iter()
                .map(subchain_abi)
                .collect::<Vec<_>>()
                .abi_encode(),
            C::getSubchain(c) => match self.subchain(c.chainId)? {
                Some(s) => subchain_abi(&s).abi_encode(),
                None => return revert(format!("no sub-chain {}", c.chainId)),
            },
            C::organizationAccountCount(c) => {
                let org = parse_org(&c.org)?;
                self.organization_account_count(&org)?.abi_encode()
            }
            C::organizationAccounts(c) => {
                let org = parse_org(&c.org)?;
                self.organization_accounts(&org, c.offset, page_limit(c.limit)?)?
                    .abi_encode()
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
            ..CallOutput::default()
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
                "organisation {} is a supervisor and may only propose freezes and unfreezes (of \
                 accounts, and of light clients by a reset), here or on a sub-chain",
                org.id
            ));
        }
        if effective != 0 && effective <= ctx.height {
            return revert(format!(
                "effective height {effective} is not after the current height {}",
                ctx.height
            ));
        }
        if effective > ctx.height.saturating_add(MAX_EFFECTIVE_DELAY) {
            return revert(format!(
                "effective height {effective} is more than {MAX_EFFECTIVE_DELAY} blocks ahead"
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
            failure: None,
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
        self.audit(
            ctx,
            "propose",
            &org.id,
            &format!("proposal {id}: {description}"),
        )?;
        self.cast(ctx, proposal, &org.id, true)?;
        Ok(id.abi_encode())
    }

    fn vote(&mut self, ctx: &CallContext, id: u64, approve: bool) -> Result<()> {
        let Some(proposal) = self.proposal(id)? else {
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
        if kv::counter(self.slots, &vote_key(id, &org.id))? != 0 {
            return revert(format!(
                "organisation {} has already voted on proposal {id}",
                org.id
            ));
        }
        let verdict = if approve { "approve" } else { "reject" };
        self.audit(ctx, "vote", &org.id, &format!("{verdict} proposal {id}"))?;
        self.cast(ctx, proposal, &org.id, approve)
    }

    /// Records `org`'s vote, then decides `proposal` if the votes allow and stores it.
    fn cast(
        &mut self,
        ctx: &CallContext,
        proposal: Proposal,
        org: &OrgId,
        approve: bool,
    ) -> Result<()> {
        let id = proposal.id;
        kv::Set::new(&votes_name(id)).insert(self.slots, org.as_str().as_bytes())?;
        let vote = if approve { VOTE_APPROVE } else { VOTE_REJECT };
        kv::set_counter(self.slots, &vote_key(id, org), vote)?;
        self.emit(abi::Voted {
            id,
            org: org.to_string(),
            voter: ctx.caller,
            approve,
        });
        self.tally(ctx, proposal)
    }

    /// Counts the votes of organisations that are members now (one left since it voted no
    /// longer counts), decides the proposal if they allow, then stores it.
    fn tally(&mut self, ctx: &CallContext, mut proposal: Proposal) -> Result<()> {
        let config = self.config()?;
        let id = proposal.id;
        let n = u128::from(config.members);
        let (mut yes, mut no) = (0u128, 0u128);
        let mut cosigned = !proposal.action.needs_supervisor() || config.supervisors == 0;
        let voters_name = votes_name(id);
        let voters = kv::Set::new(&voters_name);
        for i in 0..voters.len(self.slots)? {
            let org = decode_org(voters.get(self.slots, i)?)?;
            let Some((member, supervisor)) = self.org_role(&org)? else {
                continue;
            };
            let approve = kv::counter(self.slots, &vote_key(id, &org))? == VOTE_APPROVE;
            match (member, approve) {
                (true, true) => yes += 1,
                (true, false) => no += 1,
                _ => {}
            }
            cosigned |= supervisor && approve;
        }
        let (num, den) = (
            u128::from(config.threshold.numerator),
            u128::from(config.threshold.denominator),
        );
        if yes * den > num * n && cosigned {
            let effective = self.schedule(&proposal, ctx.height)?;
            proposal.status = Status::Passed;
            proposal.effective_height = effective;
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

    /// Schedules a passed proposal at its requested height (at the earliest the next one), or
    /// at the first later height whose end-of-block work has room for it.
    fn schedule(&mut self, proposal: &Proposal, now: u64) -> Result<u64> {
        let weight = proposal.action.weight();
        let mut height = proposal.effective_height.max(now + 1);
        loop {
            let load = kv::counter(self.slots, &load_key(height))?;
            if load + weight <= SCHEDULE_CAPACITY {
                kv::set_counter(self.slots, &load_key(height), load + weight)?;
                kv::Set::new(&schedule_name(height))
                    .insert(self.slots, &proposal.id.to_be_bytes())?;
                return Ok(height);
            }
            height = height
                .checked_add(1)
                .ok_or_else(|| CallError::revert("no height left to schedule the proposal"))?;
        }
    }

    /// Would `action` apply to the current state? `Err(reason)` if not. Checked when the
    /// action is proposed and again when it is due, so every bound is refused up front.
    fn check_action(&mut self, action: &Action) -> Result<Result<(), String>, SlotError> {
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
                } else if self.org_role(id)?.is_some()
                    || kv::get(self.slots, &retired_key(id))?.is_some()
                {
                    Err(format!("organisation id {id} is taken"))
                } else if self.organization_count()? >= MAX_ORGANIZATIONS {
                    Err(format!(
                        "the consortium already has {MAX_ORGANIZATIONS} organisations, the most it may have"
                    ))
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
            Action::RemoveOrganization { id } => match self.org_role(id)? {
                None => Err(format!("no organisation {id}")),
                Some((true, _)) if self.config()?.members == 1 => {
                    Err(format!("{id} is the last member organisation"))
                }
                Some(_) => {
                    let mut remaining = 0u64;
                    for (k, power) in self.validators()? {
                        if self.node(&k)?.is_some_and(|n| &n.org != id) {
                            remaining = remaining.saturating_add(power);
                        }
                    }
                    if remaining == 0 {
                        Err(format!("removing {id} would leave no validator"))
                    } else {
                        Ok(())
                    }
                }
            },
            Action::AddNode(node) => {
                if self.node(&node.public_key)?.is_some() {
                    Err(format!("node {} is already registered", node.public_key))
                } else if self.org_role(&node.org)?.is_none() {
                    Err(format!("no organisation {}", node.org))
                } else if node.role == NodeRole::Validator && node.power == 0 {
                    Err("a validator needs a positive power".into())
                } else if !valid_ed25519(&node.public_key) {
                    Err(format!("{} is not an Ed25519 public key", node.public_key))
                } else if kv::Set::new(&org_nodes_name(&node.org)).len(self.slots)?
                    >= MAX_NODES_PER_ORGANIZATION
                {
                    Err(format!(
                        "organisation {} already has {MAX_NODES_PER_ORGANIZATION} nodes, the most one may have",
                        node.org
                    ))
                } else if node.role == NodeRole::Validator
                    && VALIDATORS.len(self.slots)? >= MAX_VALIDATORS
                {
                    Err(format!(
                        "the chain already has {MAX_VALIDATORS} validators, the most it may have"
                    ))
                } else if node.role == NodeRole::Validator
                    && self
                        .validator_power_after(&node.public_key, node.power)?
                        .is_none()
                {
                    Err(power_overflow())
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
                if self.org_role(org)?.is_none() {
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
                if self.org_role(org)?.is_none() {
                    Err(format!("no organisation {org}"))
                } else {
                    Ok(())
                }
            }
            Action::CreateSubchain {
                chain_id,
                members,
                validators,
                ..
            } => {
                if *chain_id == 0 {
                    Err("chain id 0 is not allowed".into())
                } else if *chain_id == self.config()?.chain_id {
                    Err(format!("chain id {chain_id} is this chain's own"))
                } else if SUBCHAINS.contains(self.slots, &chain_id.to_be_bytes())? {
                    Err(format!("sub-chain {chain_id} already exists"))
                } else {
                    self.check_subchain(members, validators)?
                }
            }
            Action::RetireSubchain { chain_id } => match self.subchain(*chain_id)? {
                None => Err(format!("no sub-chain {chain_id}")),
                Some(s) if s.retired => Err(format!("sub-chain {chain_id} is already retired")),
                Some(_) => Ok(()),
            },
            Action::RecoverSubchain { chain_id } => match self.subchain(*chain_id)? {
                None => Err(format!("no sub-chain {chain_id}")),
                Some(s) if !s.retired => Err(format!("sub-chain {chain_id} is not retired")),
                Some(_) => Ok(()),
            },
            Action::ResetLightClient {
                chain_id,
                validators,
                ..
            } => {
                if *chain_id == self.config()?.chain_id {
                    Err(format!(
                        "chain {chain_id} is this chain: it has no client of itself"
                    ))
                } else {
                    check_trusted_set(validators)
                }
            }
            Action::SendToSubchain { chain_id, call } => match self.subchain(*chain_id)? {
                None => Err(format!("no sub-chain {chain_id}")),
                Some(s) if s.retired => Err(format!("sub-chain {chain_id} is retired")),
                Some(_) if call.len() > MAX_PACKET_BYTES => Err(format!(
                    "a governance packet is at most {MAX_PACKET_BYTES} bytes"
                )),
                Some(_) => match packet_action(call) {
                    Ok(Action::ResetLightClient { validators, .. }) => {
                        check_trusted_set(&validators)
                    }
                    Ok(_) => Ok(()),
                    Err(e) => Err(e),
                },
            },
        })
    }

    /// A sub-chain's members are 1 to [`MAX_SUBCHAIN_MEMBERS`] distinct member organisations;
    /// its validators 1 to [`MAX_VALIDATORS`] distinct registered nodes of those members, each
    /// with a positive power, the total within `u64`.
    fn check_subchain(
        &mut self,
        members: &[OrgId],
        validators: &[SubchainValidator],
    ) -> Result<Result<(), String>, SlotError> {
        if members.is_empty() || members.len() > MAX_SUBCHAIN_MEMBERS {
            return Ok(Err(format!(
                "a sub-chain needs 1 to {MAX_SUBCHAIN_MEMBERS} member organisations, got {}",
                members.len()
            )));
        }
        if validators.is_empty() || validators.len() as u64 > MAX_VALIDATORS {
            return Ok(Err(format!(
                "a sub-chain needs 1 to {MAX_VALIDATORS} validators, got {}",
                validators.len()
            )));
        }
        for (i, org) in members.iter().enumerate() {
            if members[..i].contains(org) {
                return Ok(Err(format!("organisation {org} is listed twice")));
            }
            match self.org_role(org)? {
                Some((true, _)) => {}
                Some(_) => {
                    return Ok(Err(format!(
                        "{org} is a supervisor, not a member: supervisors join every sub-chain \
                         by themselves"
                    )))
                }
                None => return Ok(Err(format!("no organisation {org}"))),
            }
        }
        let mut total = 0u64;
        for (i, v) in validators.iter().enumerate() {
            if validators[..i].iter().any(|w| w.public_key == v.public_key) {
                return Ok(Err(format!("validator {} is listed twice", v.public_key)));
            }
            if v.power == 0 {
                return Ok(Err(format!(
                    "validator {} needs a positive power",
                    v.public_key
                )));
            }
            match self.node(&v.public_key)? {
                None => return Ok(Err(format!("no node {} is registered", v.public_key))),
                Some(n) if !members.contains(&n.org) => {
                    return Ok(Err(format!(
                        "node {} belongs to {}, which is not a member of the sub-chain",
                        v.public_key, n.org
                    )))
                }
                Some(_) => {}
            }
            total = match total.checked_add(v.power) {
                Some(t) => t,
                None => return Ok(Err(power_overflow())),
            };
        }
        // The accounts and nodes the genesis carries: the members' and every supervisor's.
        let (mut accounts, mut nodes) = (0u64, 0u64);
        let mut carried: Vec<OrgId> = members.to_vec();
        let count = self.organization_count()?;
        for org in self.organization_ids(0, count)? {
            if !members.contains(&org) && self.is_supervisor(&org)? {
                carried.push(org);
            }
        }
        for org in &carried {
            accounts += self.organization_account_count(org)?;
            nodes += kv::Set::new(&org_nodes_name(org)).len(self.slots)?;
        }
        if nodes > MAX_SUBCHAIN_GENESIS_NODES {
            return Ok(Err(format!(
                "the members and supervisors have {nodes} nodes; a sub-chain's genesis carries \
                 at most {MAX_SUBCHAIN_GENESIS_NODES}"
            )));
        }
        if accounts > MAX_SUBCHAIN_GENESIS_ACCOUNTS {
            return Ok(Err(format!(
                "the members and supervisors have {accounts} accounts; a sub-chain's genesis \
                 carries at most {MAX_SUBCHAIN_GENESIS_ACCOUNTS}: register the others on the \
                 sub-chain with addAccounts"
            )));
        }
        Ok(Ok(()))
    }

    /// A node that exists, changing to `role`/`power`, must leave some validator power and
    /// stay within [`MAX_VALIDATORS`].
    fn check_validator_change(
        &mut self,
        public_key: &B256,
        role: NodeRole,
        power: u64,
    ) -> Result<Result<(), String>, SlotError> {
        let Some(node) = self.node(public_key)? else {
            return Ok(Err(format!("no node {public_key}")));
        };
        let validators = self.validators()?;
        if role == NodeRole::Validator
            && node.role != NodeRole::Validator
            && validators.len() as u64 >= MAX_VALIDATORS
        {
            return Ok(Err(format!(
                "the chain already has {MAX_VALIDATORS} validators, the most it may have"
            )));
        }
        let power = if role == NodeRole::Validator {
            power
        } else {
            0
        };
        Ok(match self.validator_power_after(public_key, power)? {
            None => Err(power_overflow()),
            Some(0) => Err("the change would leave no validator".into()),
            Some(_) => Ok(()),
        })
    }

    /// The validators' total power once `public_key` has `power` (0: not a validator), or
    /// `None` if it overflows: the engine and light clients refuse such a set, so a change
    /// making it would stop every node at the height it takes effect.
    fn validator_power_after(
        &mut self,
        public_key: &B256,
        power: u64,
    ) -> Result<Option<u64>, SlotError> {
        Ok(self
            .validators()?
            .iter()
            .filter(|(k, _)| k != public_key)
            .try_fold(power, |sum, (_, p)| sum.checked_add(*p)))
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
                None => self.set_account(a, &org.id)?,
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
            self.unset_account(a, &org.id)?;
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

    /// Appends an audit entry for an event another system contract decided (`org`: the
    /// actor's organisation, if it has one).
    pub fn record_audit(
        &mut self,
        ctx: &CallContext,
        action: &str,
        org: Option<&OrgId>,
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
                org: org.map(|o| o.to_string()).unwrap_or_default(),
                actor: ctx.caller,
                detail: detail.into(),
            },
        )
    }

    fn audit(
        &mut self,
        ctx: &CallContext,
        action: &str,
        org: &OrgId,
        detail: &str,
    ) -> Result<(), SlotError> {
        self.record_audit(ctx, action, Some(org), detail)
    }

    // ---- end of block ----

    /// Applies the proposals due at `height + 1`, after block `height`'s transactions, so
    /// that they hold for every transaction of the next block and the validator set of the
    /// next height is read from the resulting state. The work is bounded by
    /// [`SCHEDULE_CAPACITY`]. A proposal that can no longer be applied (its target went
    /// meanwhile, a bound was reached) is recorded as failed with its reason, and the others
    /// go on: only a fault of the storage underneath makes this fail.
    pub fn end_block(&mut self, height: u64) -> Result<Effects, SlotError> {
        let due_height = height + 1;
        let due_name = schedule_name(due_height);
        let due = kv::Set::new(&due_name);
        let mut effects = Effects::default();
        let count = due.len(self.slots)?;
        if count == 0 {
            return Ok(effects);
        }
        let ctx = CallContext {
            caller: Address::ZERO,
            height,
            tx_hash: B256::ZERO,
            is_static: false,
        };
        // Sub-chains are created after the rest: their genesis is derived from the state the
        // whole batch leaves, so every member and node they name must still be there then.
        let mut order = Vec::with_capacity(count as usize);
        let mut creations = Vec::new();
        for i in 0..count {
            let id = decode_u64(due.get(self.slots, i)?)?;
            let Some(proposal) = self.proposal(id)? else {
                continue;
            };
            match proposal.action {
                Action::CreateSubchain { .. } => creations.push(proposal),
                _ => order.push(proposal),
            }
        }
        order.extend(creations);
        for mut proposal in order {
            let id = proposal.id;
            let outcome = match self.check_action(&proposal.action)? {
                Ok(()) => self.apply_isolated(&proposal.action, due_height)?,
                Err(reason) => Err(reason),
            };
            let (action, detail) = match outcome {
                Ok(applied) => {
                    effects.merge(applied);
                    proposal.status = Status::Executed;
                    (
                        "executed",
                        format!("proposal {id} applied: {}", proposal.action.describe()),
                    )
                }
                Err(reason) => {
                    let detail = format!("proposal {id} could not be applied: {reason}");
                    proposal.status = Status::Failed;
                    proposal.failure = Some(reason);
                    ("failed", detail)
                }
            };
            self.audit(&ctx, action, &proposal.proposer_org, &detail)?;
            self.write(&proposal_key(id), &proposal)?;
        }
        due.clear(self.slots)?;
        kv::set_counter(self.slots, &load_key(due_height), 0)?;
        Ok(effects)
    }

    /// Applies a governance packet this chain received from its hub's governance (message
    /// `sequence` of chain `source`) after block `height`'s transactions, as a proposal passed
    /// there: the action holds from the next height on. Its outcome is in the audit log
    /// ("packet executed", or "packet failed" with the reason); a failure changes nothing.
    pub fn apply_packet(
        &mut self,
        height: u64,
        source: u64,
        sequence: u64,
        call: &[u8],
    ) -> Result<Effects, SlotError> {
        let ctx = CallContext {
            caller: Address::ZERO,
            height,
            tx_hash: B256::ZERO,
            is_static: false,
        };
        let action = packet_action(call);
        // A state this packet cannot apply to (a corrupt record) fails the packet, not the
        // proposals due with it; only a failing database stops here.
        fn invalid<T>(e: SlotError) -> Result<std::result::Result<T, String>, SlotError> {
            match e {
                SlotError::Invalid(reason) => Ok(Err(reason)),
                e => Err(e),
            }
        }
        let outcome = match &action {
            Ok(action) => match self.check_action(action).or_else(invalid)? {
                Ok(()) => self.apply_isolated(action, height + 1).or_else(invalid)?,
                Err(reason) => Err(reason),
            },
            Err(reason) => Err(reason.clone()),
        };
        let what = format!("governance packet {sequence} from chain {source}");
        match (outcome, action) {
            (Ok(effects), Ok(action)) => {
                let detail = format!("{what} applied: {}", action.describe());
                self.record_audit(&ctx, "packet executed", None, &detail)?;
                Ok(effects)
            }
            (Err(reason), _) | (_, Err(reason)) => {
                let detail = format!("{what} could not be applied: {reason}");
                self.record_audit(&ctx, "packet failed", None, &detail)?;
                Ok(Effects::default())
            }
        }
    }

    /// Applies `action` in a scratch overlay, keeping its writes only if it succeeds: an
    /// action the state refuses (`Err(reason)`) leaves nothing behind.
    fn apply_isolated(
        &mut self,
        action: &Action,
        effective: u64,
    ) -> Result<Result<Effects, String>, SlotError> {
        let (outcome, writes) = {
            let slots = &mut *self.slots;
            let mut overlay = kv::MapSlots::over(|slot| slots.load(slot));
            let outcome = Governance::new(&mut overlay).apply(action, effective);
            (outcome, overlay.writes)
        };
        match outcome {
            Ok(effects) => {
                for (slot, value) in writes {
                    self.slots.store(slot, value)?;
                }
                Ok(Ok(effects))
            }
            Err(SlotError::Invalid(reason)) => Ok(Err(reason)),
            Err(e) => Err(e),
        }
    }

    fn set_role(&mut self, id: &OrgId, member: bool, supervisor: bool) -> Result<(), SlotError> {
        let role =
            if member { ROLE_MEMBER } else { 0 } | if supervisor { ROLE_SUPERVISOR } else { 0 };
        kv::set_counter(self.slots, &role_key(id), role)
    }

    /// Maps `account` to `org` and lists it among the organisation's accounts.
    fn set_account(&mut self, account: &Address, org: &OrgId) -> Result<(), SlotError> {
        kv::Set::new(&org_accounts_name(org)).insert(self.slots, account.as_slice())?;
        self.write(&account_key(account), org)
    }

    fn unset_account(&mut self, account: &Address, org: &OrgId) -> Result<(), SlotError> {
        kv::Set::new(&org_accounts_name(org)).remove(self.slots, account.as_slice())?;
        kv::delete(self.slots, &account_key(account))
    }

    fn insert_node(&mut self, node: &Node) -> Result<(), SlotError> {
        let key = node.public_key.as_slice();
        NODES.insert(self.slots, key)?;
        kv::Set::new(&org_nodes_name(&node.org)).insert(self.slots, key)?;
        if node.role == NodeRole::Validator {
            VALIDATORS.insert(self.slots, key)?;
        }
        self.write(&node_key(&node.public_key), node)
    }

    /// Removes a node from every registry; whether it was a validator.
    fn remove_node(&mut self, public_key: &B256) -> Result<bool, SlotError> {
        let Some(node) = self.node(public_key)? else {
            return Ok(false);
        };
        let key = public_key.as_slice();
        NODES.remove(self.slots, key)?;
        kv::Set::new(&org_nodes_name(&node.org)).remove(self.slots, key)?;
        let was_validator = VALIDATORS.remove(self.slots, key)?;
        kv::delete(self.slots, &node_key(public_key))?;
        Ok(was_validator)
    }

    pub(crate) fn apply(&mut self, action: &Action, effective: u64) -> Result<Effects, SlotError> {
        let mut effects = Effects::default();
        match action.clone() {
            Action::AddOrganization {
                id,
                name,
                admins,
                member,
                supervisor,
            } => {
                for a in &admins {
                    self.set_account(a, &id)?;
                }
                ORGS.insert(self.slots, id.as_str().as_bytes())?;
                self.set_role(&id, member, supervisor)?;
                let mut config = self.config()?;
                config.members += u64::from(member);
                config.supervisors += u64::from(supervisor);
                self.write(CONFIG, &config)?;
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
                let org = self
                    .organization(&id)?
                    .ok_or_else(|| SlotError::invalid(format!("no organisation {id}")))?;
                ORGS.remove(self.slots, id.as_str().as_bytes())?;
                kv::delete(self.slots, &org_key(&id))?;
                self.set_role(&id, false, false)?;
                kv::put(self.slots, &retired_key(&id), &[])?;
                let mut config = self.config()?;
                config.members -= u64::from(org.member).min(config.members);
                config.supervisors -= u64::from(org.supervisor).min(config.supervisors);
                self.write(CONFIG, &config)?;
                // Its accounts stay mapped to the retired id and are refused from now on;
                // its nodes leave with it.
                for key in self.organization_nodes(&id)? {
                    effects.validators_changed |= self.remove_node(&key)?;
                    effects.nodes_removed.push(key);
                }
            }
            Action::AddNode(node) => {
                self.insert_node(&node)?;
                effects.nodes_added.push(node.public_key);
                effects.validators_changed = node.role == NodeRole::Validator;
            }
            Action::RemoveNode { public_key } => {
                effects.validators_changed = self.remove_node(&public_key)?;
                effects.nodes_removed.push(public_key);
            }
            Action::SetNodeRole {
                public_key,
                role,
                power,
            } => {
                if let Some(mut node) = self.node(&public_key)? {
                    node.role = role;
                    node.power = power;
                    let key = public_key.as_slice();
                    if role == NodeRole::Validator {
                        VALIDATORS.insert(self.slots, key)?;
                    } else {
                        VALIDATORS.remove(self.slots, key)?;
                    }
                    self.write(&node_key(&public_key), &node)?;
                    effects.validators_changed = true;
                }
            }
            Action::AddAccount { account, org } => self.set_account(&account, &org)?,
            Action::RemoveAccount { account } => {
                if let Some(org) = self.account_org(&account)? {
                    self.unset_account(&account, &org)?;
                }
            }
            Action::Freeze { target } => {
                FROZEN.insert(self.slots, target.as_slice())?;
            }
            Action::Unfreeze { target } => {
                FROZEN.remove(self.slots, target.as_slice())?;
            }
            Action::SetThreshold(t) => {
                let mut config = self.config()?;
                config.threshold = t;
                self.write(CONFIG, &config)?;
            }
            Action::CreateSubchain {
                chain_id,
                name,
                members,
                validators,
            } => {
                SUBCHAINS.insert(self.slots, &chain_id.to_be_bytes())?;
                self.write(
                    &subchain_key(chain_id),
                    &Subchain {
                        chain_id,
                        name,
                        created_at: effective,
                        members,
                        validators,
                        retired: false,
                        changed_at: effective,
                    },
                )?;
                effects.subchains_created.push(chain_id);
            }
            Action::ResetLightClient {
                chain_id,
                root,
                validators,
            } => effects.clients_reset.push(ClientReset {
                chain_id,
                root,
                validators: validators.iter().map(|v| (v.public_key, v.power)).collect(),
            }),
            Action::SendToSubchain { chain_id, call } => effects.packets.push((chain_id, call)),
            Action::RetireSubchain { chain_id } | Action::RecoverSubchain { chain_id } => {
                let mut record = self
                    .subchain(chain_id)?
                    .ok_or_else(|| SlotError::invalid(format!("no sub-chain {chain_id}")))?;
                record.retired = matches!(action, Action::RetireSubchain { .. });
                record.changed_at = effective;
                self.write(&subchain_key(chain_id), &record)?;
            }
            Action::DelegatePrefix { prefix, org } => {
                PREFIXES.insert(self.slots, prefix.as_str().as_bytes())?;
                self.write(&prefix_key(&prefix), &org)?;
            }
        }
        Ok(effects)
    }
}

/// A listing view's `limit`, refused above [`MAX_PAGE`].
fn page_limit(limit: u64) -> Result<u64> {
    if limit > MAX_PAGE {
        return revert(format!("limit {limit} is above {MAX_PAGE}"));
    }
    Ok(limit)
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

fn power_overflow() -> String {
    format!(
        "the validators' total voting power would exceed {}",
        u64::MAX
    )
}

/// A set a light client may trust: 1 to [`MAX_VALIDATORS`] distinct Ed25519 keys, each with a
/// positive power, the total within `u64`.
fn check_trusted_set(validators: &[SubchainValidator]) -> std::result::Result<(), String> {
    if validators.is_empty() || validators.len() as u64 > MAX_VALIDATORS {
        return Err(format!(
            "a light client trusts 1 to {MAX_VALIDATORS} validators, not {}",
            validators.len()
        ));
    }
    let mut total = 0u64;
    for (i, v) in validators.iter().enumerate() {
        if validators[..i].iter().any(|w| w.public_key == v.public_key) {
            return Err(format!("validator {} is listed twice", v.public_key));
        }
        if !valid_ed25519(&v.public_key) {
            return Err(format!("{} is not an Ed25519 public key", v.public_key));
        }
        if v.power == 0 {
            return Err(format!("validator {} needs a positive power", v.public_key));
        }
        total = total.checked_add(v.power).ok_or_else(power_overflow)?;
    }
    Ok(())
}

/// A point on the curve, and not the all-zero encoding (a small-order point no key produces).
fn valid_ed25519(key: &B256) -> bool {
    key != &B256::ZERO && ed25519_consensus::VerificationKey::try_from(key.0).is_ok()
}

fn subchain_abi(s: &Subchain) -> abi::Subchain {
    abi::Subchain {
        chainId: s.chain_id,
        name: s.name.clone(),
        createdAt: s.created_at,
        members: s.members.iter().map(|m| m.to_string()).collect(),
        validators: s
            .validators
            .iter()
            .map(|v| abi::SubchainValidator {
                publicKey: v.public_key,
                power: v.power,
            })
            .collect(),
        retired: s.retired,
        changedAt: s.changed_at,
    }
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

fn proposal_abi(p: &Proposal, votes: &Votes, height: u64) -> abi::Proposal {
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
        approvals: votes.approvals.iter().map(|o| o.to_string()).collect(),
        rejections: votes.rejections.iter().map(|o| o.to_string()).collect(),
        failureReason: p.failure.clone().unwrap_or_default(),
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
