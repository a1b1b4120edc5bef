// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";
import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {Pausable} from "@openzeppelin/contracts/utils/Pausable.sol";

/// @title MintToken
/// @notice Fixed-supply ERC-20 whose supply is created only by `batchMint`, a fixed `amountPerMint` per
/// recipient, up to an immutable `maxSupply`. Built for a mint queue that sends hundreds of recipients
/// per transaction, so the per-recipient cost is kept at the storage + log floor.
contract MintToken is ERC20, AccessControl, Pausable {
    bytes32 public constant MINTER_ROLE = keccak256("MINTER_ROLE");

    uint256 public immutable maxSupply;
    uint256 public immutable amountPerMint;

    // OpenZeppelin ERC20's private storage, written directly by the batch loop. Fixed by the inheritance
    // order above (ERC20 first); scripts/build-contracts.mjs checks the compiler's storage layout and
    // fails the build if these ever move.
    uint256 private constant _BALANCES_SLOT = 0;
    uint256 private constant _TOTAL_SUPPLY_SLOT = 2;
    // keccak256("Transfer(address,address,uint256)")
    bytes32 private constant _TRANSFER_EVENT_SIGNATURE =
        0xddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef;

    /// @notice The batch would push totalSupply past maxSupply (amounts in token base units).
    error MaxSupplyExceeded(uint256 requested, uint256 available);
    error EmptyBatch();
    error InvalidConfiguration();

    constructor(
        string memory name_,
        string memory symbol_,
        uint256 maxSupply_,
        uint256 amountPerMint_,
        address admin,
        address minter
    ) ERC20(name_, symbol_) {
        if (amountPerMint_ == 0 || maxSupply_ < amountPerMint_ || admin == address(0) || minter == address(0)) {
            revert InvalidConfiguration();
        }
        maxSupply = maxSupply_;
        amountPerMint = amountPerMint_;
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
        _grantRole(MINTER_ROLE, minter);
    }

    /// @notice Mints `amountPerMint` to every address in `to` (duplicates receive one amount per entry).
    /// All or nothing: the whole batch reverts if it does not fit under `maxSupply` or any address is zero.
    function batchMint(address[] calldata to) public virtual onlyRole(MINTER_ROLE) whenNotPaused {
        uint256 n = to.length;
        if (n == 0) revert EmptyBatch();
        uint256 amount = amountPerMint;
        uint256 supply = totalSupply();
        uint256 requested = n * amount; // checked: overflow reverts
        uint256 available = maxSupply - supply;
        if (requested > available) revert MaxSupplyExceeded(requested, available);

        // Same effects as n calls to OZ `_mint` (balance credit + Transfer(0, to, amount) each), but
        // totalSupply is written once for the whole batch instead of once per recipient. `_update` is
        // bypassed on purpose: this contract has no hooks on it, and the only state it would touch here
        // is the balance and the supply. Unchecked adds are safe: every balance <= totalSupply <= maxSupply.
        assembly ("memory-safe") {
            let ptr := to.offset
            let end := add(ptr, shl(5, n))
            for {} lt(ptr, end) { ptr := add(ptr, 0x20) } {
                let account := calldataload(ptr)
                // One branch on the hot path for both rejects: the zero address (OZ `_mint`'s
                // ERC20InvalidReceiver(0)) and dirty upper bits (empty revert, as the ABI decoder does).
                if or(iszero(account), shr(160, account)) {
                    if account { revert(0x00, 0x00) }
                    mstore(0x00, 0xec442f05) // ERC20InvalidReceiver(address)
                    mstore(0x20, 0)
                    revert(0x1c, 0x24)
                }
                mstore(0x00, account)
                mstore(0x20, _BALANCES_SLOT)
                let slot := keccak256(0x00, 0x40)
                sstore(slot, add(sload(slot), amount))
                mstore(0x00, amount)
                log3(0x00, 0x20, _TRANSFER_EVENT_SIGNATURE, 0, account)
            }
            sstore(_TOTAL_SUPPLY_SLOT, add(supply, requested))
        }
    }

    /// @notice How many more recipients can be minted before maxSupply is reached.
    function remainingMints() external view returns (uint256) {
        return (maxSupply - totalSupply()) / amountPerMint;
    }

    function pause() external onlyRole(DEFAULT_ADMIN_ROLE) {
        _pause();
    }

    function unpause() external onlyRole(DEFAULT_ADMIN_ROLE) {
        _unpause();
    }
}
