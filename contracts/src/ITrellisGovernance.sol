// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.20;

/// Consortium governance: the native system contract at
/// 0x0000000000000000000000000000000000001000 on every Trellis chain.
///
/// Organisations join and leave, nodes and accounts are registered, accounts and contracts
/// are frozen, and the approval threshold changes only by proposals that member
/// organisations vote on. A proposal passes once more than `numerator/denominator` of the
/// member organisations approve it; it then takes effect at the start of its effective
/// height (at the earliest the block after the one in which it passed). Freezes and
/// unfreezes also need the approval of a supervisor organisation when one exists.
/// Proposals not decided within the chain's proposal lifetime expire.
///
/// Every registry is stored per entry, so it grows without limit on cost; list views page
/// (`offset`, `limit`, at most 1,000 entries a call) and say their total in a `...Count()`
/// view. Bounds that do exist (organisations, admins, nodes per organisation, validators,
/// proposals taking effect at one height) are checked when a proposal is made, with the
/// reason; a passed proposal that can no longer be applied when its height comes is recorded
/// as failed, with its reason, and the chain goes on.
interface ITrellisGovernance {
    /// Node roles. Only validators vote in consensus; power is their voting weight.
    enum NodeRole { Validator, Full, Light, Archive }

    /// 0 pending, 1 passed (waiting for its effective height), 2 executed, 3 rejected,
    /// 4 expired, 5 failed (passed, but could no longer be applied; see the audit log).
    enum ProposalStatus { Pending, Passed, Executed, Rejected, Expired, Failed }

    struct Organization {
        string id;
        string name;
        address[] admins;
        bool member;
        bool supervisor;
        uint64 joinedAt;
    }

    struct NodeInfo {
        bytes32 publicKey;
        string org;
        NodeRole role;
        uint64 power;
    }

    struct Proposal {
        uint64 id;
        string kind;
        string description;
        string proposerOrg;
        address proposer;
        uint64 createdAt;
        uint64 expiresAt;
        uint64 effectiveHeight;
        ProposalStatus status;
        string[] approvals;
        string[] rejections;
        /// Why it could not be applied (status Failed); empty otherwise.
        string failureReason;
    }

    /// A validator of a sub-chain: a main-chain node of one of its member organisations.
    struct SubchainValidator {
        bytes32 publicKey;
        uint64 power;
    }

    struct Subchain {
        uint64 chainId;
        string name;
        /// The height the creating proposal took effect at: the sub-chain's genesis is derived
        /// from the main chain's state after this block (docs/multichain.md).
        uint64 createdAt;
        /// Member organisations (every supervisor organisation joins as well).
        string[] members;
        SubchainValidator[] validators;
        /// Retired by a vote: its hosts stop it; a recovery vote starts it again.
        bool retired;
        /// Height of the last retirement or recovery (createdAt until then).
        uint64 changedAt;
    }

    struct AuditEntry {
        uint64 seq;
        uint64 height;
        bytes32 txHash;
        string action;
        string org;
        address actor;
        string detail;
    }

    event ProposalCreated(uint64 indexed id, string kind, string proposerOrg, address proposer, string description, uint64 expiresAt);
    event Voted(uint64 indexed id, string org, address voter, bool approve);
    event ProposalPassed(uint64 indexed id, uint64 effectiveHeight);
    event ProposalRejected(uint64 indexed id);
    /// A read token of an organisation (see `issueReadToken`). Heights are block numbers;
    /// `expiresAt` is a Unix time in seconds (0: never), compared with the clock of the node
    /// the token is presented to; `revokedAt` is 0 while the token is valid.
    struct ReadToken {
        bytes32 tokenHash;
        string org;
        address issuer;
        string label;
        uint64 issuedAt;
        uint64 expiresAt;
        uint64 revokedAt;
        address revoker;
    }

    event AccountsAdded(string org, address[] accounts);
    event AccountsRemoved(string org, address[] accounts);
    event ReadTokenIssued(string org, bytes32 indexed tokenHash, address issuer, string label, uint64 expiresAt);
    event ReadTokenRevoked(string org, bytes32 indexed tokenHash, address revoker);

    // Proposals. Each returns the new proposal's id and counts as its organisation's approval.
    // `effectiveHeight` 0 means "as soon as it passes".
    function proposeAddOrganization(string calldata id, string calldata name, address[] calldata admins, bool member, bool supervisor, uint64 effectiveHeight) external returns (uint64);
    function proposeRemoveOrganization(string calldata id, uint64 effectiveHeight) external returns (uint64);
    function proposeAddNode(bytes32 publicKey, string calldata org, NodeRole role, uint64 power, uint64 effectiveHeight) external returns (uint64);
    function proposeRemoveNode(bytes32 publicKey, uint64 effectiveHeight) external returns (uint64);
    function proposeSetNodeRole(bytes32 publicKey, NodeRole role, uint64 power, uint64 effectiveHeight) external returns (uint64);
    function proposeAddAccount(address account, string calldata org, uint64 effectiveHeight) external returns (uint64);
    function proposeRemoveAccount(address account, uint64 effectiveHeight) external returns (uint64);
    function proposeFreeze(address target, uint64 effectiveHeight) external returns (uint64);
    function proposeUnfreeze(address target, uint64 effectiveHeight) external returns (uint64);
    function proposeSetThreshold(uint64 numerator, uint64 denominator, uint64 effectiveHeight) external returns (uint64);
    /// Creates a sub-chain of `members` (1 to 64 member organisations), validated by
    /// `validators` (registered nodes of those members). Its hosts start it once it takes
    /// effect, from a genesis derived from this chain's state (docs/multichain.md).
    function proposeCreateSubchain(uint64 chainId, string calldata name, string[] calldata members, SubchainValidator[] calldata validators, uint64 effectiveHeight) external returns (uint64);
    /// Retires a sub-chain: its hosts stop it, its data stays.
    function proposeRetireSubchain(uint64 chainId, uint64 effectiveHeight) external returns (uint64);
    /// Recovers a retired sub-chain: its hosts start it again where it stopped.
    function proposeRecoverSubchain(uint64 chainId, uint64 effectiveHeight) external returns (uint64);
    /// Resets this chain's light client of `chainId` — the only way a frozen client takes
    /// anchors again: it trusts `validators` (node keys and powers) to decide the headers after
    /// the header (`height`, `blockHash`, `stateRoot`, `timestampMs`) the vote agrees on, which
    /// must be above every anchor so far; anchors below it prove nothing any more. Needs a
    /// supervisor's approval where there are supervisors. On a sub-chain, only its client of
    /// the main chain (which no packet could reach) is reset this way; the others by a
    /// main-chain vote (`proposeToSubchain`).
    function proposeResetLightClient(uint64 chainId, uint64 height, bytes32 blockHash, bytes32 stateRoot, uint64 timestampMs, SubchainValidator[] calldata validators, uint64 effectiveHeight) external returns (uint64);
    /// Sends sub-chain `chainId` a governance packet: `call` is a `proposeFreeze`,
    /// `proposeUnfreeze`, `proposeRemoveOrganization` or `proposeResetLightClient` call,
    /// ABI-encoded, which the sub-chain applies when it receives it (its `effectiveHeight` is
    /// ignored), as if its own members had passed it. At most 32 KiB.
    function proposeToSubchain(uint64 chainId, bytes calldata call, uint64 effectiveHeight) external returns (uint64);
    /// Delegates an identifier prefix (e.g. "MA.156") to an organisation, or moves it; the
    /// holder may delegate sub-prefixes and register identifiers (ITrellisIdentifiers).
    function proposeDelegatePrefix(string calldata prefix, string calldata org, uint64 effectiveHeight) external returns (uint64);

    /// One vote per organisation, cast by any of its admins.
    function vote(uint64 proposalId, bool approve) external;

    /// An organisation's admin registers (or removes) its own organisation's accounts
    /// directly; at most 1,000 per call.
    function addAccounts(address[] calldata accounts) external;
    function removeAccounts(address[] calldata accounts) external;

    /// An organisation's admin issues a read token for its own organisation: callers that
    /// present the token (`Authorization: Bearer <token>`) read from nodes that restrict
    /// reads (`rpc.read_access`, docs/rpc.md). Only `keccak256(bytes(token))` is recorded;
    /// the token itself never reaches the chain. At most 4,096 per organisation, revoked
    /// ones included; a label of at most 128 bytes says what the token is for.
    function issueReadToken(bytes32 tokenHash, string calldata label, uint64 expiresAt) external;
    /// An admin of the issuing organisation, or of a supervisor organisation, revokes a
    /// token; nodes refuse it from the next block on.
    function revokeReadToken(bytes32 tokenHash) external;

    // Views.
    function proposalCount() external view returns (uint64);
    function getProposal(uint64 id) external view returns (Proposal memory);
    function organizationCount() external view returns (uint64);
    function organizationIds(uint64 offset, uint64 limit) external view returns (string[] memory);
    function getOrganization(string calldata id) external view returns (Organization memory);
    function nodeCount() external view returns (uint64);
    function nodeKeys(uint64 offset, uint64 limit) external view returns (bytes32[] memory);
    function getNode(bytes32 publicKey) external view returns (NodeInfo memory);
    function accountOrganization(address account) external view returns (string memory);
    function isFrozen(address target) external view returns (bool);
    function frozenCount() external view returns (uint64);
    function frozenAddresses(uint64 offset, uint64 limit) external view returns (address[] memory);
    function threshold() external view returns (uint64 numerator, uint64 denominator);
    function delegatedPrefixCount() external view returns (uint64);
    /// Prefixes delegated by governance and their holders (parallel arrays).
    function delegatedPrefixes(uint64 offset, uint64 limit) external view returns (string[] memory prefixes, string[] memory orgs);
    function subchainCount() external view returns (uint64);
    function getSubchains(uint64 offset, uint64 limit) external view returns (Subchain[] memory);
    /// One sub-chain; reverts if there is none with that id.
    function getSubchain(uint64 chainId) external view returns (Subchain memory);
    /// The accounts of one organisation (admins included), in the order they were added.
    function organizationAccountCount(string calldata org) external view returns (uint64);
    function organizationAccounts(string calldata org, uint64 offset, uint64 limit) external view returns (address[] memory);
    function auditCount() external view returns (uint64);
    function auditEntry(uint64 seq) external view returns (AuditEntry memory);
    function getReadToken(bytes32 tokenHash) external view returns (ReadToken memory);
    function readTokenCount(string calldata org) external view returns (uint64);
    /// An organisation's read tokens in the order they were issued.
    function readTokens(string calldata org, uint64 offset, uint64 limit) external view returns (ReadToken[] memory);
}
