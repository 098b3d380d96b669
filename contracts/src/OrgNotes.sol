// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.20;

import "./ITrellisGovernance.sol";

/// Example of a Solidity contract reading the governance system contract: it tallies values
/// per organisation of the sender, so consortium members can co-fund or co-sign without an
/// off-chain membership list.
contract OrgNotes {
    ITrellisGovernance constant GOVERNANCE = ITrellisGovernance(0x0000000000000000000000000000000000001000);

    mapping(string => uint256) public notes;

    event Noted(string org, address author, uint256 value);

    function note(uint256 value) external {
        string memory org = GOVERNANCE.accountOrganization(msg.sender);
        require(bytes(org).length > 0, "sender belongs to no organisation");
        notes[org] += value;
        emit Noted(org, msg.sender, value);
    }

    function organizationCount() external view returns (uint256) {
        return GOVERNANCE.organizationCount();
    }
}
