// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.20;

/// Evidence (notarization): the native system contract at
/// 0x0000000000000000000000000000000000001001 on every Trellis chain.
///
/// A registered account submits the digest of a document (never the document) with an
/// optional content type and metadata; the chain keeps who submitted it, the submitter's
/// organisation, the block and its timestamp. The evidence id is
/// keccak256(abi.encodePacked(algorithm, digest)), so anyone holding the document can find
/// its record; a digest is notarized once (the earliest record is what proves existence).
interface ITrellisEvidence {
    /// Hash algorithms: 1 SHA-256, 2 Keccak-256, 3 SM3 (GB/T 32905).
    struct Submission {
        uint8 algorithm;
        bytes32 digest;
        string contentType;
        bytes metadata;
    }

    struct Record {
        bytes32 id;
        uint8 algorithm;
        bytes32 digest;
        address submitter;
        string org;
        uint64 height;
        uint64 timestampMs;
        string contentType;
        bytes metadata;
    }

    event EvidenceSubmitted(bytes32 indexed id, address indexed submitter, uint8 algorithm, bytes32 digest);

    /// Notarizes one digest; returns its evidence id.
    function submit(uint8 algorithm, bytes32 digest, string calldata contentType, bytes calldata metadata)
        external
        returns (bytes32 id);

    /// Notarizes 1 to 1,000 digests atomically (any refusal reverts the whole batch).
    function submitBatch(Submission[] calldata items) external returns (bytes32[] memory ids);

    /// Notarizes 1 to 1,000 digests of one algorithm without content type or metadata: the
    /// compact form (32 bytes of calldata per record) for high-volume notarization.
    function submitDigests(uint8 algorithm, bytes32[] calldata digests) external returns (bytes32[] memory ids);

    /// The record of `id`; reverts with "evidence not found" if there is none.
    function get(bytes32 id) external view returns (Record memory);

    /// Whether `id` is notarized.
    function exists(bytes32 id) external view returns (bool);

    /// keccak256(abi.encodePacked(algorithm, digest)).
    function evidenceId(uint8 algorithm, bytes32 digest) external pure returns (bytes32);

    /// Number of records notarized on this chain.
    function count() external view returns (uint64);
}
