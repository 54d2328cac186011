// SPDX-License-Identifier: MIT
// An example lender of a stablecoin against metarisk's attested free collateral: a loan is granted only while a
// fresh, complete attestation shows free collateral of at least the wallet's whole debt after the loan times the
// safety factor. The stablecoin is taken at 1 USD. checkAccountStatus is the same rule as an Euler-EVC-style
// account-status hook, the way a vault would consume the attestation.
pragma solidity ^0.8.19;

import {MarginAttestation, MetariskVerifier, VerifiedFigures} from "./MetariskVerifier.sol";

interface IERC20Minimal {
    function decimals() external view returns (uint8);
    function transfer(address to, uint256 amount) external returns (bool);
    function transferFrom(address from, address to, uint256 amount) external returns (bool);
}

contract CreditLine {
    uint256 private constant WAD = 1e18;

    IERC20Minimal public immutable stablecoin;
    MetariskVerifier public immutable verifier;
    uint256 public immutable safetyFactor; // 1e18 = 1
    uint256 private immutable usdPerUnit; // 1e18 USD per smallest unit of the stablecoin

    mapping(address => uint256) public debt;
    mapping(address => uint64) public lastIssuedAt;

    error NotTheAttestedWallet(address attested, address caller);
    error StaleAttestation(uint64 issuedAt, uint64 lastIssuedAt);
    error InsufficientFreeCollateral(int256 freeCollateralUsd, uint256 requiredUsd);
    error TransferFailed();

    event Borrowed(address indexed wallet, uint256 amount, int256 freeCollateralUsd, uint64 issuedAt);
    event Repaid(address indexed wallet, uint256 amount);

    constructor(IERC20Minimal stablecoin_, MetariskVerifier verifier_, uint256 safetyFactor_) {
        stablecoin = stablecoin_;
        verifier = verifier_;
        safetyFactor = safetyFactor_;
        usdPerUnit = 10 ** (18 - stablecoin_.decimals());
    }

    /// Lends `amount` to the attested wallet, which must be the caller.
    function borrow(uint256 amount, MarginAttestation calldata attestation, uint256 chainId, bytes calldata signature)
        external
    {
        if (attestation.wallet != msg.sender) revert NotTheAttestedWallet(attestation.wallet, msg.sender);
        // an older attestation may predate a rise in the wallet's risk: never go back in time
        uint64 last = lastIssuedAt[msg.sender];
        if (attestation.issuedAt < last) revert StaleAttestation(attestation.issuedAt, last);
        VerifiedFigures memory figures = verifier.verify(attestation, chainId, signature);
        uint256 newDebt = debt[msg.sender] + amount;
        requireCovered(figures.freeCollateralUsd, newDebt);
        debt[msg.sender] = newDebt;
        lastIssuedAt[msg.sender] = attestation.issuedAt;
        if (!stablecoin.transfer(msg.sender, amount)) revert TransferFailed();
        emit Borrowed(msg.sender, amount, figures.freeCollateralUsd, attestation.issuedAt);
    }

    function repay(uint256 amount) external {
        debt[msg.sender] -= amount;
        if (!stablecoin.transferFrom(msg.sender, address(this), amount)) revert TransferFailed();
        emit Repaid(msg.sender, amount);
    }

    /// Euler EVC's account-status hook, with the attestation in place of the collaterals list: `attestation` is
    /// abi.encode(MarginAttestation, uint256 chainId, bytes signature). Returns this function's selector (the magic
    /// value) when the account's debt is covered, else reverts with the reason.
    function checkAccountStatus(address account, bytes calldata attestation) external view returns (bytes4) {
        (MarginAttestation memory message, uint256 chainId, bytes memory signature) =
            abi.decode(attestation, (MarginAttestation, uint256, bytes));
        if (message.wallet != account) revert NotTheAttestedWallet(message.wallet, account);
        VerifiedFigures memory figures = verifier.verify(message, chainId, signature);
        requireCovered(figures.freeCollateralUsd, debt[account]);
        return this.checkAccountStatus.selector;
    }

    function requireCovered(int256 freeCollateralUsd, uint256 debtUnits) private view {
        uint256 required = debtUnits * usdPerUnit * safetyFactor / WAD;
        if (freeCollateralUsd < 0 || uint256(freeCollateralUsd) < required) {
            revert InsufficientFreeCollateral(freeCollateralUsd, required);
        }
    }
}
