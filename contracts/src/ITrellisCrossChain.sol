// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.20;

/// Cross-chain messages and value transfers between Trellis chains: the native system
/// contract at 0x0000000000000000000000000000000000001005 on every chain that follows another
/// (docs/multichain.md).
///
/// A message is a commitment in the source chain's state. The destination accepts it only
/// with a Merkle proof of that commitment against a header its light client (0x…1004)
/// anchored — directly, or through the main chain's anchor of the source (a two-hop proof) —
/// exactly once (a receipt), and writes an acknowledgement in its own state. The source clears
/// the message on a proof of that acknowledgement, or refunds it on a proof that no receipt
/// existed at an anchored destination header whose time had passed the message's timeout.
/// No courier is trusted: anyone allowed to transact may carry proofs; the proofs decide.
///
/// Applications:
/// - data (`app` 0): the payload's hash is delivered; a receiver reads `delivered`;
/// - value (`app` 1): native value escrowed on its origin chain is held as vouchers on
///   another chain and released only when vouchers come back (escrow = vouchers + in flight).
interface ITrellisCrossChain {
    /// A message as committed (`payload` in full; the commitment covers its keccak-256).
    struct Message {
        uint64 source;
        uint64 destination;
        uint64 sequence;
        address sender;
        address receiver;
        uint8 app;
        bytes payload;
        /// Destination block time (ms) from which on it can no longer be received.
        uint64 timeoutMs;
    }

    /// A Merkle proof of one slot of the counterparty's cross-chain contract (`proof` of
    /// `verifyMessage` and friends is `abi.encode(Proof)`).
    struct Proof {
        /// The counterparty's anchored height the proof is against.
        uint64 height;
        AccountProof account;
        /// Trie nodes from the account's storage root to the slot (or where it would be).
        bytes[] slotProof;
        /// Empty for a chain this chain follows; else one hop: this chain's anchor of the
        /// hub (the main chain) and the hub's anchor of the counterparty at `height`.
        Hop[] via;
    }

    /// An account of a proven chain (the cross-chain contract, or the hub's light clients).
    struct AccountProof {
        uint64 nonce;
        uint256 balance;
        bytes32 storageRoot;
        bytes32 codeHash;
        /// Trie nodes from the state root to the account's leaf.
        bytes[] nodes;
    }

    /// The hub's record of its anchor of the counterparty, proven against the hub's header
    /// at `height` (anchored here). The hub is the chain this chain's genesis roots it in (a
    /// sub-chain's main chain); a chain reaches through it only chains it does not follow.
    struct Hop {
        uint64 chainId;
        uint64 height;
        /// The hub's light-client contract (0x…1004).
        AccountProof account;
        /// The record's slots, in order (header, then 32-byte chunks), each with its proof.
        uint256[] values;
        bytes[][] slotProofs;
        /// The hub's status word of its client of the counterparty (zero, or a reset at a
        /// height at most `Proof.height`: not frozen), and its proof.
        uint256 statusWord;
        bytes[] statusProof;
    }

    event MessageSent(uint64 indexed destination, uint64 indexed sequence, bytes32 commitment, Message message);
    event MessageReceived(uint64 indexed source, uint64 indexed sequence, bool success, string reason);
    event MessageAcknowledged(uint64 indexed destination, uint64 indexed sequence, bool success);
    event MessageTimedOut(uint64 indexed destination, uint64 indexed sequence);

    /// Commits a data message to `receiver` on `destination` (a chain this chain follows, or
    /// any chain through the hub). Returns its sequence number.
    function send(uint64 destination, address receiver, bytes calldata payload, uint64 timeoutMs)
        external
        returns (uint64 sequence);

    /// Sends the call's value to `receiver` on `destination`, a chain this chain follows
    /// (escrowed here).
    function transfer(uint64 destination, address receiver, uint64 timeoutMs)
        external
        payable
        returns (uint64 sequence);

    /// Burns `amount` of the caller's vouchers of `origin`'s value and sends it back to
    /// `receiver` on `origin`.
    function returnVouchers(uint64 origin, address receiver, uint256 amount, uint64 timeoutMs)
        external
        returns (uint64 sequence);

    /// Moves `amount` of the caller's vouchers of `origin`'s value to `to` on this chain.
    function transferVouchers(uint64 origin, address to, uint256 amount) external;

    /// Accepts a message of another chain, proven by `proof` (abi.encode(Proof)).
    /// Returns whether the application accepted it (a refusal is acknowledged too).
    function receiveMessage(Message calldata message, bytes calldata proof) external returns (bool success);

    /// Clears message `sequence` to `destination` on a proof of its acknowledgement.
    function acknowledge(uint64 destination, uint64 sequence, bool success, bytes calldata proof) external;

    /// Refunds message `sequence` to `destination` on a proof that it was not received
    /// before its timeout.
    function timeout(uint64 destination, uint64 sequence, bytes calldata proof) external;

    /// The next sequence number to `destination` and how many messages to it are pending.
    function outbox(uint64 destination) external view returns (uint64 nextSequence, uint64 pending);

    /// Pending sequence numbers to `destination`, `limit` from position `offset`.
    function pendingMessages(uint64 destination, uint64 offset, uint64 limit)
        external
        view
        returns (uint64[] memory);

    /// The pending message `sequence` to `destination`.
    function message(uint64 destination, uint64 sequence) external view returns (bool found, Message memory);

    /// Whether message `sequence` of `source` was received here, and with what outcome.
    function receipt(uint64 source, uint64 sequence)
        external
        view
        returns (bool received, bool success, string memory reason);

    /// A received data message: its sender, receiver and payload hash.
    function delivered(uint64 source, uint64 sequence)
        external
        view
        returns (bool found, address sender, address receiver, bytes32 payloadHash);

    /// Vouchers of `origin`'s value held by `holder`.
    function voucherBalance(uint64 origin, address holder) external view returns (uint256);

    /// Vouchers of `origin`'s value in circulation here.
    function voucherSupply(uint64 origin) external view returns (uint256);

    /// This chain's value escrowed for `counterparty` (held there as vouchers or in flight).
    function escrowed(uint64 counterparty) external view returns (uint256);
}
