// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.20;

/// Decentralized identifiers of the `did:trellis` method (docs/did-method.md): the native
/// system contract at 0x0000000000000000000000000000000000001003 on every Trellis chain.
///
/// `did:trellis:<chainId>:<address>` is created by the account `<address>` (so the id is derived
/// from the creator's secp256k1 key) and afterwards changed only by its current controller:
/// keys rotated, services changed, the controller moved, or the DID deactivated for good. Every
/// change is a new version; earlier versions stay readable.
interface ITrellisDids {
    struct VerificationMethod {
        string id;            // fragment, e.g. "key-1"
        string methodType;    // e.g. "Ed25519VerificationKey2020", "EcdsaSecp256k1VerificationKey2019"
        string publicKeyMultibase;
    }

    struct Service {
        string id;            // fragment, e.g. "hub"
        string serviceType;   // e.g. "LinkedDomains"
        string endpoint;
    }

    struct Document {
        address controller;
        VerificationMethod[] verificationMethods;
        string[] authentication;   // fragments of verification methods ("controller" is implicit)
        string[] assertionMethod;
        Service[] services;
    }

    struct Version {
        Document document;
        uint64 version;
        uint64 height;
        uint64 timestampMs;
        bool deactivated;
    }

    event DidCreated(address indexed id, address controller);
    event DidUpdated(address indexed id, uint64 version);
    event DidDeactivated(address indexed id, uint64 version);

    /// Creates did:trellis:<chainId>:<msg.sender> (version 1).
    function create(Document calldata document) external;

    /// Replaces the document (key rotation, services, controller change); controller only.
    function update(address id, Document calldata document) external;

    /// Deactivates the DID for good; controller only.
    function deactivate(address id) external;

    /// The latest version; reverts "did … not found" if it was never created.
    function resolve(address id) external view returns (Version memory);

    /// Version `version` (1 = as created).
    function resolveVersion(address id, uint64 version) external view returns (Version memory);
}
