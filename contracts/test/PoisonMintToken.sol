// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {MintToken} from "../MintToken.sol";

/// @title PoisonMintToken
/// @notice TEST ONLY. A MintToken whose admin can mark recipients as "poisoned" so that any batch
/// containing one reverts, which lets tests drive the service's batch-splitting / failure paths.
/// Kept out of MintToken itself so the production token pays nothing for it.
contract PoisonMintToken is MintToken {
    mapping(address account => bool) public poisoned;

    error PoisonedRecipient(address account);

    constructor(
        string memory name_,
        string memory symbol_,
        uint256 maxSupply_,
        uint256 amountPerMint_,
        address admin,
        address minter
    ) MintToken(name_, symbol_, maxSupply_, amountPerMint_, admin, minter) {}

    function setPoisoned(address account, bool isPoisoned) external onlyRole(DEFAULT_ADMIN_ROLE) {
        poisoned[account] = isPoisoned;
    }

    function batchMint(address[] calldata to) public override {
        for (uint256 i = 0; i < to.length; ++i) {
            if (poisoned[to[i]]) revert PoisonedRecipient(to[i]);
        }
        super.batchMint(to);
    }
}
