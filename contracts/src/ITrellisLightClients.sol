// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.20;

/// Light clients of other Trellis chains: the native system contract at
/// 0x0000000000000000000000000000000000001004 on every Trellis chain (docs/multichain.md).
///
/// The chain keeps one client per chain it follows. A client trusts one validator set at a
/// time and accepts a header of the followed chain (an "anchor") only if the set that decided
/// it is the trusted one and its commit certificate carries valid precommits of more than two
/// thirds of that set's voting power. Heights may be skipped while the set holds; a set change
/// is followed only through the header that names it (`nextValidatorsHash`), submitted with
/// the new set. Two certified headers at one height freeze the client, with both kept as
/// evidence, until a governance vote resets it (the governance contract's
/// `proposeResetLightClient`; the reset is in its audit log).
///
/// Anyone allowed to transact may submit anchors: the certificate is the proof, not the
/// sender. A header the client already has is a cheap no-op.
interface ITrellisLightClients {
    /// The client of `chainId` anchored `height` (a newer header, or a skipped one).
    event Anchored(uint64 indexed chainId, uint64 height, bytes32 blockHash, bytes32 stateRoot);
    /// From the header after `height` on, `chainId` is decided by the set hashing to `validatorsHash`.
    event ValidatorSetChanged(uint64 indexed chainId, uint64 height, bytes32 validatorsHash);
    /// `chainId`'s validators signed two headers at `height`: the client is frozen.
    event ClientFrozen(uint64 indexed chainId, uint64 height, bytes32 anchoredHash, bytes32 conflictingHash);

    /// Submits a header (RLP) of the followed chain with its commit certificate (as nodes
    /// serve them: `trellis_getAnchor`). `nextKeys`/`nextPowers` carry the validator set the
    /// header names for its next height when that differs from the trusted set (else empty).
    /// Returns 1 (advanced), 2 (a skipped height anchored), 3 (already known) or 4 (a fork
    /// proven: the client froze). Refusals revert with the reason.
    function submitAnchor(
        bytes calldata header,
        bytes calldata certificate,
        bytes32[] calldata nextKeys,
        uint64[] calldata nextPowers
    ) external returns (uint8 verdict);

    /// The client of `chainId`: its newest anchor, the hash of the set it trusts, and whether
    /// it is frozen. `exists` is false for a chain it does not follow.
    function client(uint64 chainId)
        external
        view
        returns (
            bool exists,
            uint64 height,
            bytes32 blockHash,
            bytes32 stateRoot,
            uint64 timestampMs,
            bytes32 validatorsHash,
            bool frozen
        );

    /// The header anchored at `height` of `chainId`, if any.
    function anchorAt(uint64 chainId, uint64 height)
        external
        view
        returns (bool found, bytes32 blockHash, bytes32 stateRoot);

    /// The followed chains' ids, in the order their clients were created.
    function chains(uint64 offset, uint64 limit) external view returns (uint64[] memory);
}
