// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.20;

/// Industrial identifiers: the native system contract at
/// 0x0000000000000000000000000000000000001002 on every Trellis chain.
///
/// Prefixes are hierarchical, dot-separated (`MA.156.1301`: top-level, secondary,
/// enterprise). Governance delegates a prefix to an organisation
/// (ITrellisGovernance.proposeDelegatePrefix); an admin of the holding organisation may
/// delegate its direct sub-prefixes to any organisation. Identifiers `PREFIX/suffix` are
/// registered, updated and removed by accounts of the organisation holding PREFIX. A record is
/// a list of typed values in the manner of the Handle system (index, type, data, ttl).
interface ITrellisIdentifiers {
    struct Value {
        uint32 index;
        string valueType;
        bytes data;
        uint32 ttl;
    }

    struct Registration {
        string identifier;
        Value[] values;
    }

    struct Record {
        string identifier;
        string org;
        uint64 created;
        uint64 updated;
        Value[] values;
    }

    event PrefixDelegated(string prefix, string org);
    event IdentifierRegistered(string identifier, string org);
    event IdentifierUpdated(string identifier);
    event IdentifierRemoved(string identifier);

    /// Delegates `prefix` (a direct sub-prefix of one the caller's organisation holds) to `org`.
    function delegatePrefix(string calldata prefix, string calldata org) external;

    /// The organisation holding `prefix`; reverts if nobody does.
    function prefixHolder(string calldata prefix) external view returns (string memory org);

    function register(string calldata identifier, Value[] calldata values) external;

    /// Registers 1 to 1,000 identifiers atomically.
    function registerBatch(Registration[] calldata items) external;

    /// Replaces an identifier's values.
    function update(string calldata identifier, Value[] calldata values) external;

    function remove(string calldata identifier) external;

    /// The record of `identifier`; reverts with "identifier … not found" if there is none.
    function resolve(string calldata identifier) external view returns (Record memory);
}
