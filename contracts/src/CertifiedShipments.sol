// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.20;

import "./ITrellisEvidence.sol";
import "./ITrellisIdentifiers.sol";

/// Example of a Solidity contract using the built-in services: a shipment is accepted only if
/// its certificate of origin is notarized, and the contract notarizes its own acceptance
/// record. Shows system contracts called from Solidity like any contract.
contract CertifiedShipments {
    ITrellisEvidence constant EVIDENCE = ITrellisEvidence(0x0000000000000000000000000000000000001001);
    ITrellisIdentifiers constant IDENTIFIERS = ITrellisIdentifiers(0x0000000000000000000000000000000000001002);

    mapping(bytes32 => bytes32) public acceptanceOf;

    event Accepted(bytes32 indexed certificate, bytes32 acceptance, uint64 notarizedAt);

    /// Accepts a shipment whose certificate (SHA-256 digest) was notarized; notarizes the
    /// acceptance (certificate digest + this contract) and returns its evidence id.
    function accept(bytes32 certificateDigest) external returns (bytes32) {
        bytes32 certificateId = EVIDENCE.evidenceId(1, certificateDigest);
        require(EVIDENCE.exists(certificateId), "certificate of origin is not notarized");
        ITrellisEvidence.Record memory certificate = EVIDENCE.get(certificateId);
        bytes32 acceptance = keccak256(abi.encodePacked(certificateDigest, address(this)));
        bytes32 id = EVIDENCE.submit(2, acceptance, "application/x-acceptance", "");
        acceptanceOf[certificateId] = id;
        emit Accepted(certificateId, id, certificate.height);
        return id;
    }

    /// The holder of an identifier prefix, as the identifier registry says.
    function holderOf(string calldata prefix) external view returns (string memory) {
        return IDENTIFIERS.prefixHolder(prefix);
    }
}
