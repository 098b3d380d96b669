//! Genesis: the chain's id, its founding organisations and validators, and its pre-funded
//! accounts.

use alloy_primitives::{Address, Bytes, B256, U256};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

use crate::ChainId;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Genesis {
    pub chain_id: ChainId,
    /// Milliseconds since the Unix epoch.
    #[serde(default)]
    pub timestamp_ms: u64,
    /// Gas all transactions of one block may use together.
    #[serde(default = "default_gas_limit")]
    pub gas_limit: u64,
    /// Gas one transaction may ask for: transactions above it are refused at admission and
    /// make a block invalid. At most `gas_limit`.
    #[serde(default = "default_max_transaction_gas")]
    pub max_transaction_gas: u64,
    pub validators: Vec<GenesisValidator>,
    /// The founding consortium: organisations, further nodes, voting rules.
    pub governance: GenesisGovernance,
    #[serde(default)]
    pub alloc: BTreeMap<Address, GenesisAccount>,
    /// Light clients of other chains this chain starts with (a sub-chain follows the main
    /// chain from its first block): each trusts its validators to decide the blocks after
    /// its root.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub light_clients: Vec<GenesisLightClient>,
}

/// A light client a chain starts with: the followed chain, the block it is trusted from and
/// the validators that decide the blocks after it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct GenesisLightClient {
    pub chain_id: ChainId,
    /// The trusted block: the followed chain's genesis block (height 0) by default.
    #[serde(default)]
    pub root_height: u64,
    pub root_hash: B256,
    /// The trusted block's state root, for proofs against it (zero: none are made there).
    #[serde(default)]
    pub root_state_root: B256,
    #[serde(default)]
    pub root_timestamp_ms: u64,
    pub validators: Vec<GenesisClientValidator>,
    /// The hub: the chain whose light-client records this chain accepts as proof of chains
    /// it does not follow itself (a sub-chain's main chain). At most one client is the hub.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub hub: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct GenesisClientValidator {
    pub public_key: B256,
    pub power: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct GenesisGovernance {
    pub organizations: Vec<GenesisOrganization>,
    /// Registered nodes that do not validate (full, light, archive).
    #[serde(default)]
    pub nodes: Vec<GenesisNode>,
    /// A proposal passes when more than `numerator / denominator` of the member
    /// organisations approve it. Default 2/3.
    #[serde(default)]
    pub threshold: Threshold,
    /// Blocks after which an undecided proposal expires.
    #[serde(default = "default_proposal_ttl")]
    pub proposal_ttl_blocks: u64,
}

fn default_proposal_ttl() -> u64 {
    100_000
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Threshold {
    pub numerator: u64,
    pub denominator: u64,
}

impl Default for Threshold {
    fn default() -> Self {
        Threshold {
            numerator: 2,
            denominator: 3,
        }
    }
}

impl Threshold {
    /// At least one half, below one: a strict majority of members can always decide, and a
    /// threshold of one (never reachable with ">") is refused.
    pub fn is_valid(&self) -> bool {
        self.denominator > 0
            && self.numerator < self.denominator
            && self.numerator.saturating_mul(2) >= self.denominator
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct GenesisOrganization {
    pub id: String,
    #[serde(default)]
    pub name: String,
    /// Accounts that vote and manage the organisation's accounts.
    pub admins: Vec<Address>,
    /// Members vote on proposals and send transactions.
    #[serde(default = "yes")]
    pub member: bool,
    /// Supervisors (regulators) read everything and co-sign freezes.
    #[serde(default)]
    pub supervisor: bool,
    /// Further accounts allowed to send transactions on the organisation's behalf.
    #[serde(default)]
    pub accounts: Vec<Address>,
}

fn yes() -> bool {
    true
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeRole {
    Validator,
    Full,
    Light,
    Archive,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct GenesisNode {
    pub public_key: B256,
    pub org: String,
    pub role: NodeRole,
}

/// The default block gas limit. With the gas schedule's surcharges on the operations that
/// are slow for their price (see `trellis_execution::GAS_SCHEDULE`), the worst block of this
/// much gas executes in about 300 ms on a 2-core machine (docs/BENCHMARKS.md, "worst-case
/// block").
pub const DEFAULT_GAS_LIMIT: u64 = 80_000_000;
/// The default per-transaction gas limit.
pub const DEFAULT_MAX_TRANSACTION_GAS: u64 = 30_000_000;

fn default_gas_limit() -> u64 {
    DEFAULT_GAS_LIMIT
}

fn default_max_transaction_gas() -> u64 {
    DEFAULT_MAX_TRANSACTION_GAS
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct GenesisValidator {
    /// Human-readable label, e.g. the operator organisation.
    #[serde(default)]
    pub name: String,
    /// Ed25519 public key of the validator's node key.
    pub public_key: B256,
    pub power: u64,
    /// Organisation operating the validator.
    pub org: String,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct GenesisAccount {
    #[serde(default)]
    pub balance: U256,
    #[serde(default)]
    pub nonce: u64,
    #[serde(default, skip_serializing_if = "<[u8]>::is_empty")]
    pub code: Bytes,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub storage: BTreeMap<B256, B256>,
}

#[derive(Debug, thiserror::Error)]
pub enum GenesisError {
    #[error("cannot read genesis file {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("invalid genesis JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("genesis must list at least one validator")]
    NoValidators,
    #[error("validator {0} has zero voting power")]
    ZeroPower(B256),
    #[error("validator {0} is listed twice")]
    DuplicateValidator(B256),
    #[error("chain id 0 is not allowed")]
    ZeroChainId,
    #[error("gas limits: maxTransactionGas {tx} must be from 21000 to gasLimit {block}")]
    GasLimits { block: u64, tx: u64 },
    #[error("invalid governance: {0}")]
    Governance(String),
    #[error("at most one light client may be the hub")]
    SeveralHubs,
}

impl Genesis {
    pub fn from_json(json: &str) -> Result<Genesis, GenesisError> {
        let genesis: Genesis = serde_json::from_str(json)?;
        genesis.validate()?;
        Ok(genesis)
    }

    pub fn load(path: &Path) -> Result<Genesis, GenesisError> {
        let json = std::fs::read_to_string(path).map_err(|source| GenesisError::Io {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_json(&json)
    }

    pub fn validate(&self) -> Result<(), GenesisError> {
        if self.chain_id.0 == 0 {
            return Err(GenesisError::ZeroChainId);
        }
        if self.validators.is_empty() {
            return Err(GenesisError::NoValidators);
        }
        if self.max_transaction_gas < 21_000 || self.max_transaction_gas > self.gas_limit {
            return Err(GenesisError::GasLimits {
                block: self.gas_limit,
                tx: self.max_transaction_gas,
            });
        }
        let mut seen = std::collections::BTreeSet::new();
        for v in &self.validators {
            if v.power == 0 {
                return Err(GenesisError::ZeroPower(v.public_key));
            }
            if !seen.insert(v.public_key) {
                return Err(GenesisError::DuplicateValidator(v.public_key));
            }
        }
        if self.light_clients.iter().filter(|c| c.hub).count() > 1 {
            return Err(GenesisError::SeveralHubs);
        }
        self.validate_governance()
    }

    fn validate_governance(&self) -> Result<(), GenesisError> {
        let bad = |m: String| Err(GenesisError::Governance(m));
        let g = &self.governance;
        if !g.threshold.is_valid() {
            return bad(format!(
                "threshold {}/{} must be at least 1/2 and below 1",
                g.threshold.numerator, g.threshold.denominator
            ));
        }
        if g.proposal_ttl_blocks == 0 {
            return bad("proposalTtlBlocks must be positive".into());
        }
        let mut orgs = std::collections::BTreeSet::new();
        let mut accounts = std::collections::BTreeSet::new();
        for org in &g.organizations {
            if let Err(e) = crate::OrgId::parse(&org.id) {
                return bad(e.to_string());
            }
            if !orgs.insert(org.id.as_str()) {
                return bad(format!("organisation {} is listed twice", org.id));
            }
            if org.admins.is_empty() {
                return bad(format!("organisation {} has no admin", org.id));
            }
            if !org.member && !org.supervisor {
                return bad(format!(
                    "organisation {} is neither member nor supervisor",
                    org.id
                ));
            }
            for a in org.admins.iter().chain(&org.accounts) {
                if !accounts.insert(*a) && !org.admins.contains(a) {
                    return bad(format!("account {a} belongs to two organisations"));
                }
            }
        }
        if !g.organizations.iter().any(|o| o.member) {
            return bad("at least one member organisation is required".into());
        }
        for (key, org) in self
            .validators
            .iter()
            .map(|v| (v.public_key, &v.org))
            .chain(g.nodes.iter().map(|n| (n.public_key, &n.org)))
        {
            if !orgs.contains(org.as_str()) {
                return bad(format!("node {key} names unknown organisation {org:?}"));
            }
        }
        for n in &g.nodes {
            if n.role == NodeRole::Validator {
                return bad(format!(
                    "node {} is a validator: list it under \"validators\" with its power",
                    n.public_key
                ));
            }
            if self.validators.iter().any(|v| v.public_key == n.public_key) {
                return bad(format!("node {} is listed twice", n.public_key));
            }
        }
        Ok(())
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("genesis always serialises")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_validates() {
        let json = r#"{
            "chainId": 1337,
            "validators": [{"publicKey": "0x1111111111111111111111111111111111111111111111111111111111111111", "power": 1, "org": "org1"}],
            "governance": {"organizations": [{"id": "org1", "admins": ["0x00000000000000000000000000000000000000aa"]}]},
            "alloc": {"0x00000000000000000000000000000000000000aa": {"balance": "0x10"}}
        }"#;
        let g = Genesis::from_json(json).expect("valid");
        assert_eq!(g.chain_id, ChainId(1337));
        assert_eq!(g.gas_limit, default_gas_limit());
        assert_eq!(
            g.alloc[&Address::with_last_byte(0xaa)].balance,
            U256::from(16)
        );
        assert_eq!(Genesis::from_json(&g.to_json()).expect("roundtrip"), g);
    }

    #[test]
    fn rejects_bad_genesis() {
        let no_validators = r#"{"chainId": 5, "validators": [], "governance": {"organizations": [{"id": "org1", "admins": ["0x00000000000000000000000000000000000000aa"]}]}}"#;
        assert!(matches!(
            Genesis::from_json(no_validators),
            Err(GenesisError::NoValidators)
        ));
        let unknown_field = r#"{"chainId": 5, "validators": [], "bogus": 1}"#;
        assert!(matches!(
            Genesis::from_json(unknown_field),
            Err(GenesisError::Json(_))
        ));
        let zero = r#"{"chainId": 5, "validators": [{"publicKey": "0x1111111111111111111111111111111111111111111111111111111111111111", "power": 0, "org": "org1"}], "governance": {"organizations": [{"id": "org1", "admins": ["0x00000000000000000000000000000000000000aa"]}]}}"#;
        assert!(matches!(
            Genesis::from_json(zero),
            Err(GenesisError::ZeroPower(_))
        ));
        let v = r#"{"publicKey": "0x1111111111111111111111111111111111111111111111111111111111111111", "power": 1, "org": "ORG"}"#;
        for governance in [
            r#"{"organizations": []}"#,
            r#"{"organizations": [{"id": "Bad Id", "admins": ["0x00000000000000000000000000000000000000aa"]}]}"#,
            r#"{"organizations": [{"id": "org1", "admins": []}]}"#,
            r#"{"organizations": [{"id": "org1", "admins": ["0x00000000000000000000000000000000000000aa"]}], "threshold": {"numerator": 1, "denominator": 3}}"#,
            r#"{"organizations": [{"id": "org1", "admins": ["0x00000000000000000000000000000000000000aa"], "member": false, "supervisor": true}]}"#,
        ] {
            let json = format!(
                r#"{{"chainId": 5, "validators": [{}], "governance": {governance}}}"#,
                v.replace("ORG", "org1")
            );
            assert!(
                matches!(Genesis::from_json(&json), Err(GenesisError::Governance(_))),
                "{governance} should be refused"
            );
        }
        let unknown_org = format!(
            r#"{{"chainId": 5, "validators": [{}], {gov}}}"#,
            v.replace("ORG", "nobody"),
            gov = r#""governance": {"organizations": [{"id": "org1", "admins": ["0x00000000000000000000000000000000000000aa"]}]}"#
        );
        assert!(matches!(
            Genesis::from_json(&unknown_org),
            Err(GenesisError::Governance(_))
        ));
    }
}
