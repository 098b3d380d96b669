//! Trellis's own JSON-RPC methods as Rust: the [`ChainApi`], [`ChainsApi`], [`GovernanceApi`]
//! and [`AdminApi`] traits, from which jsonrpsee generates both the server side (`…Server`,
//! implemented by `trellis-rpc`) and a typed client (`…Client`, used by the CLI, the SDK and
//! applications), and the serde types of every answer; plus [`EthApiClient`], a typed client
//! of the `eth_*` methods Trellis's tools call. Method names and JSON shapes are defined here
//! once; nobody parses `serde_json::Value` by hand or spells a method name as a string.
//!
//! Numbers are `0x`-prefixed hex like Ethereum's (`U64`), except where a type says plain
//! numbers; fields are camelCase, an absent optional value is `null`.
//!
//! ```no_run
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! use trellis_api::GovernanceApiClient;
//! let client = jsonrpsee::http_client::HttpClientBuilder::default().build("http://127.0.0.1:8545")?;
//! for org in client.organizations(None, None).await? {
//!     println!("{} {}", org.id, org.name);
//! }
//! # Ok(()) }
//! ```

use alloy_primitives::{Address, Bytes, B256, U256, U64};
use alloy_rpc_types_eth::{
    Block, BlockId, BlockNumberOrTag, TransactionReceipt, TransactionRequest,
};
use jsonrpsee::core::RpcResult;
use jsonrpsee::proc_macros::rpc;
use serde::{Deserialize, Serialize};

/// Most entries one listing call returns; the default is [`DEFAULT_PAGE`].
pub const MAX_PAGE: u64 = 1_000;
/// Entries a listing returns when the caller gives no limit.
pub const DEFAULT_PAGE: u64 = 100;

/// A member or observer organisation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Organization {
    pub id: String,
    pub name: String,
    pub admins: Vec<Address>,
    /// Whether it votes (a member), rather than only reading.
    pub member: bool,
    pub supervisor: bool,
    /// Height at which it joined.
    pub joined_at: U64,
}

/// An organisation with its nodes and how many read tokens it has issued.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OrganizationDetail {
    #[serde(flatten)]
    pub organization: Organization,
    pub nodes: Vec<Node>,
    pub read_token_count: U64,
}

/// A registered node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Node {
    /// Its ed25519 consensus and p2p key.
    pub public_key: B256,
    pub org: String,
    /// `validator`, `full`, `light` or `archive`.
    pub role: String,
    /// Voting power; zero unless a validator.
    pub power: U64,
}

/// A governance proposal as of the block it was read at.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Proposal {
    pub id: U64,
    /// The action's kind (`addOrganization`, `setThreshold`, …).
    pub kind: String,
    /// The action in words.
    pub description: String,
    pub proposer_org: String,
    pub proposer: Address,
    pub created_at: U64,
    pub expires_at: U64,
    pub effective_height: U64,
    /// `pending`, `passed`, `executed`, `rejected`, `expired` or `failed`.
    pub status: String,
    pub approvals: Vec<String>,
    pub rejections: Vec<String>,
    /// Why it could not be applied (status `failed`).
    pub failure_reason: Option<String>,
}

/// One entry of governance's audit log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditEntry {
    pub seq: U64,
    pub block_number: U64,
    /// `None` for entries written at the end of a block (a proposal applied).
    pub transaction_hash: Option<B256>,
    pub action: String,
    pub org: String,
    pub actor: Option<Address>,
    pub detail: String,
}

/// An identifier prefix and the organisation that holds it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Prefix {
    pub prefix: String,
    pub org: String,
}

/// A sub-chain registered by governance.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Subchain {
    pub chain_id: U64,
    pub name: String,
    pub created_at: U64,
    pub members: Vec<String>,
    pub validators: Vec<SubchainValidator>,
    pub retired: bool,
    pub changed_at: U64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SubchainValidator {
    pub public_key: B256,
    pub power: U64,
}

/// A read token (only its hash is ever on chain) or a registered client certificate.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReadToken {
    pub token_hash: B256,
    pub org: String,
    pub issuer: Address,
    pub label: String,
    pub issued_at: U64,
    /// Unix time in seconds from which it is refused.
    pub expires_at: Option<U64>,
    pub revoked_at: Option<U64>,
    pub revoker: Option<Address>,
}

/// The share of member organisations a proposal needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Threshold {
    pub numerator: u64,
    pub denominator: u64,
}

/// Governance's settings and the size of its registries.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GovernanceConfig {
    pub threshold: Threshold,
    pub proposal_ttl_blocks: U64,
    pub proposal_count: U64,
    pub audit_count: U64,
    pub organization_count: U64,
    pub member_count: U64,
    pub node_count: U64,
    pub frozen_count: U64,
    pub prefix_count: U64,
    pub subchain_count: U64,
}

/// One validator's precommit in a commit certificate.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CommitSignature {
    /// The validator's address (derived from its node key).
    pub validator: Address,
    /// Its Ed25519 signature over the precommit.
    pub signature: Bytes,
}

/// The precommits that finalized a block: more than two thirds of the voting power of the
/// height's validator set (`trellis-light` checks them offline).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CommitCertificate {
    pub height: u64,
    /// The consensus round that decided it.
    pub round: i64,
    pub block_hash: B256,
    pub signatures: Vec<CommitSignature>,
}

/// A validator of a set: its node key and voting power.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SetMember {
    pub public_key: B256,
    pub power: u64,
}

/// What a light client of this chain needs to anchor block `height` (plain numbers): the
/// header as RLP and the commit certificate as stored (both as `trellis_light` decodes
/// them), and the validator set the header names for the next height when that differs from
/// the set that decided it (`ITrellisLightClients.submitAnchor` takes all three).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AnchorData {
    pub height: u64,
    pub header: Bytes,
    pub certificate: Bytes,
    pub next_validators: Option<Vec<SetMember>>,
}

/// The chain's own records beyond Ethereum's.
#[rpc(server, client, namespace = "trellis")]
pub trait ChainApi {
    /// The commit certificate of block `height`; `null` until that block is committed.
    #[method(name = "getCommitCertificate", blocking)]
    fn commit_certificate(&self, height: U64) -> RpcResult<Option<CommitCertificate>>;

    /// Block `height` as a light client of this chain takes it; `null` until it is committed
    /// (genesis has no certificate: `null` too). A header that changes the set needs that set
    /// from this node's recent memory (up to the last 256 heights since it started); older,
    /// the call fails saying so.
    #[method(name = "getAnchor", blocking)]
    fn anchor(&self, height: U64) -> RpcResult<Option<AnchorData>>;

    /// The genesis of sub-chain `chainId` as this node derived it when it committed the block
    /// that created it, with the witness that proves it (docs/multichain.md); `null` if this
    /// chain created no such sub-chain, or this node did not keep it.
    #[method(name = "getSubchainGenesis", blocking)]
    fn subchain_genesis(&self, chain_id: U64) -> RpcResult<Option<SubchainGenesis>>;
}

/// A sub-chain's genesis, derived from the main chain's governance state, and its proof.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SubchainGenesis {
    pub chain_id: U64,
    /// The main-chain block the genesis is derived from: the one whose end applied the
    /// creation (`createdAt - 1`).
    pub main_height: U64,
    /// The hash of the sub-chain's block 0.
    pub genesis_hash: B256,
    pub genesis: trellis_primitives::Genesis,
    /// Every governance slot the derivation read, proven against that block's state root.
    pub witness: trellis_light::StateWitness,
}

/// Governance state at the node's latest block, public to every caller the node admits.
/// Listings take an optional `offset` (0) and `limit` (1 to [`MAX_PAGE`], default
/// [`DEFAULT_PAGE`]); lookups answer `null` for what does not exist.
#[rpc(server, client, namespace = "trellis")]
pub trait GovernanceApi {
    #[method(name = "getOrganizations", blocking)]
    fn organizations(
        &self,
        offset: Option<U64>,
        limit: Option<U64>,
    ) -> RpcResult<Vec<Organization>>;

    #[method(name = "getOrganization", blocking)]
    fn organization(&self, id: String) -> RpcResult<Option<OrganizationDetail>>;

    #[method(name = "getNodes", blocking)]
    fn nodes(&self, offset: Option<U64>, limit: Option<U64>) -> RpcResult<Vec<Node>>;

    /// Frozen contract and account addresses.
    #[method(name = "getFrozen", blocking)]
    fn frozen(&self, offset: Option<U64>, limit: Option<U64>) -> RpcResult<Vec<Address>>;

    #[method(name = "getPrefixes", blocking)]
    fn prefixes(&self, offset: Option<U64>, limit: Option<U64>) -> RpcResult<Vec<Prefix>>;

    #[method(name = "getSubchains", blocking)]
    fn subchains(&self, offset: Option<U64>, limit: Option<U64>) -> RpcResult<Vec<Subchain>>;

    /// Proposals by id, from `offset` (the first id).
    #[method(name = "getProposals", blocking)]
    fn proposals(&self, offset: Option<U64>, limit: Option<U64>) -> RpcResult<Vec<Proposal>>;

    #[method(name = "getProposal", blocking)]
    fn proposal(&self, id: U64) -> RpcResult<Option<Proposal>>;

    /// The audit log by sequence number, from `offset`.
    #[method(name = "auditLog", blocking)]
    fn audit_log(&self, offset: Option<U64>, limit: Option<U64>) -> RpcResult<Vec<AuditEntry>>;

    /// The organisation `account` belongs to.
    #[method(name = "getAccountOrganization", blocking)]
    fn account_organization(&self, account: Address) -> RpcResult<Option<String>>;

    #[method(name = "getGovernanceConfig", blocking)]
    fn governance_config(&self) -> RpcResult<GovernanceConfig>;

    /// An organisation's read tokens and certificates, in issue order.
    #[method(name = "getReadTokens", blocking)]
    fn read_tokens(
        &self,
        org: String,
        offset: Option<U64>,
        limit: Option<U64>,
    ) -> RpcResult<Vec<ReadToken>>;

    #[method(name = "getReadToken", blocking)]
    fn read_token(&self, token_hash: B256) -> RpcResult<Option<ReadToken>>;
}

/// This node's identity and state on one chain, for its operator (`admin_nodeInfo`;
/// numbers are plain JSON numbers).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeInfo {
    pub moniker: String,
    pub chain_id: u64,
    /// The node key: the key to propose in `add-node`.
    pub node_public_key: B256,
    /// The consensus address derived from the node key.
    pub validator_address: Option<Address>,
    pub height: u64,
    /// Whether the node is in the validator set of the next height.
    pub validates_next_height: bool,
    /// How many validators the next height has.
    pub validators: u64,
    pub pooled_transactions: u64,
    /// Times this node could not build the block it was to propose and proposed an empty
    /// one instead (a bug: alert on it).
    pub block_build_failures: u64,
}

/// A chain the node's process hosts (`admin_chains`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HostedChain {
    pub chain_id: u64,
    pub height: u64,
    /// Where its JSON-RPC is served (`ip:port`).
    pub rpc: String,
    /// Where its `/metrics` are served, if they are.
    pub metrics: Option<String>,
}

/// A chain this node's process hosts, as anyone the node admits sees it (`trellis_getChains`,
/// `GET /v1/chains`; plain numbers).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChainEntry {
    pub chain_id: u64,
    pub height: u64,
    /// Where its JSON-RPC and REST are served on this port: `/chains/{id}` (its own read
    /// access applies there).
    pub path: String,
}

/// A hosted chain with its status, or why the caller may not read it (`GET /v1/chains`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChainOverview {
    #[serde(flatten)]
    pub entry: ChainEntry,
    pub status: Option<ChainStatus>,
    /// Why `status` is missing: the chain's own read access refused the caller, or it failed.
    pub error: Option<String>,
}

/// One chain's place in the network of chains, for supervisors and operators
/// (`trellis_chainStatus`, `GET /v1/chain`; plain numbers, amounts in hex).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChainStatus {
    pub chain_id: u64,
    pub height: u64,
    /// The committed block's time (Unix ms).
    pub block_time_ms: u64,
    /// The chain it reaches chains it does not follow through (a sub-chain's main chain).
    pub hub: Option<u64>,
    /// Member organisations (they vote), by id: the first [`MAX_PAGE`].
    pub members: Vec<String>,
    /// Supervisor organisations (they read everything), by id: the first [`MAX_PAGE`].
    pub supervisors: Vec<String>,
    /// The validators of the next height.
    pub validators: Vec<SetMember>,
    /// Its light clients of other chains, each with the messages between the two.
    pub clients: Vec<ClientStatus>,
}

/// This chain's light client of another chain, and the traffic with it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClientStatus {
    /// The followed chain.
    pub chain_id: u64,
    /// Whether this chain's hub.
    pub hub: bool,
    /// A fork was proven: it accepts nothing until a main-chain vote resets it.
    pub frozen: bool,
    /// The newest anchored header: its height and time (Unix ms).
    pub anchored_height: u64,
    pub anchored_time_ms: u64,
    /// This chain's block time minus the anchored header's.
    pub anchor_age_ms: u64,
    /// Blocks the followed chain has committed beyond that anchor, when this node hosts it.
    pub lag_blocks: Option<u64>,
    /// Messages sent to it so far, and those not yet acknowledged or timed out.
    pub messages_sent: u64,
    pub messages_pending: u64,
    /// Value escrowed here for it, and its vouchers held here (wei).
    pub escrowed: U256,
    pub vouchers: U256,
}

/// The chains of a node's process, and each chain's place among them.
#[rpc(server, client, namespace = "trellis")]
pub trait ChainsApi {
    /// Every chain this node's process hosts, this one included.
    #[method(name = "getChains")]
    fn chains(&self) -> RpcResult<Vec<ChainEntry>>;

    /// This chain's status: members, validators, light clients with their anchors and lag,
    /// messages pending. Another hosted chain's is at its `path`.
    #[method(name = "chainStatus", blocking)]
    fn chain_status(&self) -> RpcResult<ChainStatus>;
}

/// Operator methods, acting on this node only. They are off unless the node's config sets
/// `rpc.admin_token`, and every call presents it as `Authorization: Bearer <token>`
/// (refused with code -32001 otherwise).
#[rpc(server, client, namespace = "admin")]
pub trait AdminApi {
    #[method(name = "nodeInfo", with_extensions)]
    fn node_info(&self) -> RpcResult<NodeInfo>;

    /// Removes a transaction from this node's pool; `false` if it was not there.
    #[method(name = "dropTransaction", with_extensions)]
    fn drop_transaction(&self, hash: B256) -> RpcResult<bool>;

    /// Every chain this node's process hosts, by chain id.
    #[method(name = "chains", with_extensions)]
    fn chains(&self) -> RpcResult<Vec<HostedChain>>;

    /// Stops chain `chain_id` in this process (its engine, RPC port and tasks); the other
    /// chains run on. `false` if it is not hosted here. The answer comes before the chain
    /// has stopped; stopping the chain whose port is called ends that port too. The chain
    /// starts again when the node restarts.
    #[method(name = "stopChain", with_extensions)]
    fn stop_chain(&self, chain_id: U64) -> RpcResult<bool>;
}

/// The Ethereum methods Trellis's own tools call, as a typed client over the answer types of
/// `alloy-rpc-types-eth` (the node serves the whole `eth_*` namespace; Ethereum libraries
/// such as viem, ethers or alloy are the way to reach the rest).
#[rpc(client, namespace = "eth")]
pub trait EthApi {
    #[method(name = "chainId")]
    fn chain_id(&self) -> RpcResult<U64>;

    #[method(name = "blockNumber")]
    fn block_number(&self) -> RpcResult<U64>;

    #[method(name = "getBalance")]
    fn balance(&self, address: Address, block: BlockId) -> RpcResult<U256>;

    #[method(name = "getTransactionCount")]
    fn transaction_count(&self, address: Address, block: BlockId) -> RpcResult<U64>;

    #[method(name = "estimateGas")]
    fn estimate_gas(&self, call: TransactionRequest) -> RpcResult<U64>;

    #[method(name = "call")]
    fn call(&self, call: TransactionRequest, block: BlockId) -> RpcResult<Bytes>;

    #[method(name = "getProof")]
    fn get_proof(
        &self,
        address: Address,
        keys: Vec<B256>,
        block: BlockId,
    ) -> RpcResult<alloy_rpc_types_eth::EIP1186AccountProofResponse>;

    #[method(name = "sendRawTransaction")]
    fn send_raw_transaction(&self, raw: Bytes) -> RpcResult<B256>;

    /// `null` until the transaction is in a block.
    #[method(name = "getTransactionReceipt")]
    fn transaction_receipt(&self, hash: B256) -> RpcResult<Option<TransactionReceipt>>;

    /// The block with its transactions' hashes (`full = false`) or bodies.
    #[method(name = "getBlockByNumber")]
    fn block_by_number(&self, number: BlockNumberOrTag, full: bool) -> RpcResult<Option<Block>>;
}

/// The `(offset, limit)` a listing asked for, or why it is refused.
pub fn page(offset: Option<U64>, limit: Option<U64>) -> Result<(u64, u64), String> {
    let limit = limit.map_or(DEFAULT_PAGE, |l| l.saturating_to());
    if limit == 0 || limit > MAX_PAGE {
        return Err(format!("limit must be 1..={MAX_PAGE}"));
    }
    Ok((offset.map_or(0, |o| o.saturating_to()), limit))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_keep_their_json_shape() {
        let detail = OrganizationDetail {
            organization: Organization {
                id: "acme".into(),
                name: "Acme".into(),
                admins: vec![Address::repeat_byte(1)],
                member: true,
                supervisor: false,
                joined_at: U64::from(3),
            },
            nodes: vec![],
            read_token_count: U64::from(2),
        };
        let json = serde_json::to_value(&detail).expect("serializes");
        assert_eq!(json["id"], "acme");
        assert_eq!(json["joinedAt"], "0x3");
        assert_eq!(json["readTokenCount"], "0x2");
        let back: OrganizationDetail = serde_json::from_value(json).expect("parses");
        assert_eq!(back, detail);

        let entry = AuditEntry {
            seq: U64::from(0),
            block_number: U64::from(1),
            transaction_hash: None,
            action: "apply".into(),
            org: "acme".into(),
            actor: None,
            detail: "".into(),
        };
        let json = serde_json::to_value(&entry).expect("serializes");
        assert!(json["transactionHash"].is_null() && json["actor"].is_null());
        assert_eq!(json["blockNumber"], "0x1");
    }

    #[test]
    fn a_certificate_keeps_plain_numbers_and_hex_bytes() {
        let cert = CommitCertificate {
            height: 7,
            round: 0,
            block_hash: B256::repeat_byte(1),
            signatures: vec![CommitSignature {
                validator: Address::repeat_byte(0xab),
                signature: Bytes::from(vec![1, 2]),
            }],
        };
        let json = serde_json::to_value(&cert).expect("serializes");
        assert_eq!(json["height"], 7);
        assert_eq!(json["round"], 0);
        assert_eq!(json["signatures"][0]["signature"], "0x0102");
        assert_eq!(
            json["signatures"][0]["validator"],
            format!("{:#x}", Address::repeat_byte(0xab))
        );
        assert_eq!(
            serde_json::from_value::<CommitCertificate>(json).ok(),
            Some(cert)
        );
    }

    #[test]
    fn pages_are_bounded() {
        assert_eq!(page(None, None), Ok((0, DEFAULT_PAGE)));
        assert_eq!(
            page(Some(U64::from(5)), Some(U64::from(MAX_PAGE))),
            Ok((5, MAX_PAGE))
        );
        assert!(page(None, Some(U64::ZERO)).is_err());
        assert!(page(None, Some(U64::from(MAX_PAGE + 1))).is_err());
        assert!(page(None, Some(U64::MAX)).is_err());
    }
}
