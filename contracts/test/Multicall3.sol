// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

/// @title Multicall3 (subset)
/// @notice TEST ONLY. The `tryAggregate` of the canonical Multicall3, which public chains have at
/// 0xcA11bde05977b3631167028862bE2a173976CA11 and anvil does not. The x402 facilitator diagnoses
/// failed payments (balance, nonce, domain) through it; the local stack installs this runtime code
/// there with `anvil_setCode`.
contract Multicall3 {
    struct Call {
        address target;
        bytes callData;
    }

    struct Result {
        bool success;
        bytes returnData;
    }

    function tryAggregate(bool requireSuccess, Call[] calldata calls) external returns (Result[] memory results) {
        results = new Result[](calls.length);
        for (uint256 i = 0; i < calls.length; ++i) {
            (bool success, bytes memory ret) = calls[i].target.call(calls[i].callData);
            require(success || !requireSuccess, "Multicall3: call failed");
            results[i] = Result(success, ret);
        }
    }
}
