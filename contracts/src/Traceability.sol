// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

/// @title Product traceability: each product has an owner and an append-only history of
/// steps (manufacture, inspection, shipment, ...) recorded by whoever holds it.
contract Traceability {
    struct Step {
        address actor;
        string action;
        bytes32 dataHash;
        uint64 timestamp;
    }

    mapping(bytes32 => address) public holderOf;
    mapping(bytes32 => Step[]) private history;

    event ProductRegistered(bytes32 indexed productId, address indexed holder);
    event StepRecorded(bytes32 indexed productId, address indexed actor, string action, bytes32 dataHash);
    event Handover(bytes32 indexed productId, address indexed from, address indexed to);

    function register(bytes32 productId, bytes32 dataHash) external {
        require(holderOf[productId] == address(0), "Traceability: product already registered");
        holderOf[productId] = msg.sender;
        emit ProductRegistered(productId, msg.sender);
        _record(productId, "registered", dataHash);
    }

    function record(bytes32 productId, string calldata action, bytes32 dataHash) external {
        require(holderOf[productId] == msg.sender, "Traceability: caller does not hold the product");
        _record(productId, action, dataHash);
    }

    function handOver(bytes32 productId, address to) external {
        require(holderOf[productId] == msg.sender, "Traceability: caller does not hold the product");
        require(to != address(0), "Traceability: handover to the zero address");
        holderOf[productId] = to;
        emit Handover(productId, msg.sender, to);
    }

    function stepCount(bytes32 productId) external view returns (uint256) {
        return history[productId].length;
    }

    function stepAt(bytes32 productId, uint256 index) external view returns (Step memory) {
        return history[productId][index];
    }

    function _record(bytes32 productId, string memory action, bytes32 dataHash) private {
        history[productId].push(Step(msg.sender, action, dataHash, uint64(block.timestamp)));
        emit StepRecorded(productId, msg.sender, action, dataHash);
    }
}
