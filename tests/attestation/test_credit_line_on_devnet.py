"""CreditLine on the devnet: it lends the stablecoin while a fresh, complete attestation shows free collateral of at
least the wallet's debt after the loan x the safety factor, and refuses everything else by name; its EVC-style
checkAccountStatus returns the magic value or reverts. The exported ABIs are the compiler's."""

from __future__ import annotations

import json
from collections.abc import Iterator
from fractions import Fraction

import pytest
from eth_account import Account
from eth_utils import keccak
from support.attestation_chain import attest, custom_error, demo_report
from web3 import Web3

from devnet.attestation_contracts import (
    ABI_DIR,
    EXPORTED,
    account_status_blob,
    borrow,
    credit_line,
    register_signer,
    verify_arguments,
)
from devnet.manifest import DevnetChain
from devnet.run import RunningDevnet
from devnet.solidity import compile_sources

CHAIN = "base"
SERVICE = Account.from_key(keccak(text="metarisk attestation test signer"))
USDC = 10**6
BALANCE_OF = [{"name": "balanceOf", "type": "function", "stateMutability": "view",
               "inputs": [{"name": "a", "type": "address"}], "outputs": [{"name": "", "type": "uint256"}]}]


@pytest.fixture
def chain(devnet: RunningDevnet, restore_chains: None) -> Iterator[DevnetChain]:
    chain = devnet.manifest.chain(CHAIN)
    register_signer(_w3(devnet), chain, SERVICE.address, valid_from=0)
    yield chain


def _w3(devnet: RunningDevnet) -> Web3:
    return Web3(Web3.HTTPProvider(devnet.nodes[CHAIN].url))


def _now(w3: Web3) -> int:
    return int(w3.eth.get_block("latest")["timestamp"])


def _required_usd(debt_units: int, chain: DevnetChain) -> int:
    """USD x 1e18 a debt of USDC units needs in free collateral: 1 USDC = 1 USD, times the safety factor."""
    return int(Fraction(debt_units, USDC) * Fraction(chain.attestation.safety_factor_wad, 10**18) * 10**18)


def test_exported_abis_are_the_compilers() -> None:
    compiled = compile_sources()
    for name in EXPORTED:
        assert json.loads((ABI_DIR / f"{name}.json").read_text()) == compiled[name].abi, name


def test_lends_against_attested_free_collateral_and_refuses_beyond_it(
    devnet: RunningDevnet, chain: DevnetChain
) -> None:
    w3 = _w3(devnet)
    wallet = devnet.manifest.demo_account
    lender = credit_line(w3, chain)
    usdc_address = next(t.address for t in chain.config.tokens if t.symbol == chain.attestation.stablecoin)
    usdc = w3.eth.contract(address=Web3.to_checksum_address(usdc_address), abi=BALANCE_OF)
    before = usdc.functions.balanceOf(wallet).call()
    signed = attest(SERVICE, wallet=wallet, chain_id=8453, verifier=chain.attestation.verifier, issued_at=_now(w3))
    free = int(signed.typed_data["message"]["freeCollateralUsd"])
    assert free > 0 and Fraction(free, 10**18) == Fraction(repr(demo_report().free_collateral_usd))

    first = 40_000 * USDC
    assert _required_usd(first, chain) <= free
    borrow(w3, chain, first, signed.typed_data, signed.signature)
    assert lender.functions.debt(wallet).call() == first
    assert usdc.functions.balanceOf(wallet).call() == before + first

    # the largest further loan the attestation covers: (debt + x) x 1.5 <= free collateral
    headroom = int(Fraction(free, 10**18) / Fraction(chain.attestation.safety_factor_wad, 10**18) * USDC) - first
    too_much = headroom + 1
    error = custom_error(lambda: borrow(w3, chain, too_much, signed.typed_data, signed.signature))
    assert error == ("InsufficientFreeCollateral", (free, _required_usd(first + too_much, chain)))
    borrow(w3, chain, headroom, signed.typed_data, signed.signature)
    assert lender.functions.debt(wallet).call() == first + headroom


def test_refuses_other_callers_older_attestations_and_incomplete_reports(
    devnet: RunningDevnet, chain: DevnetChain
) -> None:
    w3 = _w3(devnet)
    wallet = devnet.manifest.demo_account
    lender = credit_line(w3, chain)
    now = _now(w3)

    def signed_at(issued_at: int, **kwargs: object) -> tuple[dict[str, object], str]:
        signed = attest(SERVICE, wallet=wallet, chain_id=8453, verifier=chain.attestation.verifier,
                        issued_at=issued_at, **kwargs)  # type: ignore[arg-type]
        return signed.typed_data, signed.signature

    older, newer = signed_at(now - 20), signed_at(now - 10)
    stranger = devnet.manifest.deployer
    call = lender.functions.borrow(USDC, *verify_arguments(*newer))
    refusal = ("NotTheAttestedWallet", (wallet.lower(), stranger.lower()))
    assert custom_error(lambda: call.call({"from": stranger})) == refusal
    borrow(w3, chain, USDC, *newer)
    assert custom_error(lambda: borrow(w3, chain, USDC, *older)) == ("StaleAttestation", (now - 20, now - 10))
    incomplete = signed_at(now, report=demo_report().model_copy(update={"complete": False}))
    assert custom_error(lambda: borrow(w3, chain, USDC, *incomplete)) == ("IncompleteReport", ())
    assert lender.functions.debt(wallet).call() == USDC


def test_account_status_hook_returns_the_magic_value_or_reverts(devnet: RunningDevnet, chain: DevnetChain) -> None:
    w3 = _w3(devnet)
    wallet = devnet.manifest.demo_account
    lender = credit_line(w3, chain)
    magic = keccak(text="checkAccountStatus(address,bytes)")[:4]
    signed = attest(SERVICE, wallet=wallet, chain_id=8453, verifier=chain.attestation.verifier, issued_at=_now(w3))
    blob = account_status_blob(signed.typed_data, signed.signature)
    assert lender.functions.checkAccountStatus(wallet, blob).call() == magic
    other = Web3.to_checksum_address("0x" + "22" * 20)
    assert custom_error(lambda: lender.functions.checkAccountStatus(other, blob).call())[0] == "NotTheAttestedWallet"
    # a wallet whose attested free collateral is negative cannot carry any debt
    underwater = demo_report().model_copy(update={"free_collateral_usd": -1234.5, "complete": True})
    borrow(w3, chain, USDC, signed.typed_data, signed.signature)
    sunk = attest(SERVICE, wallet=wallet, chain_id=8453, verifier=chain.attestation.verifier, issued_at=_now(w3),
                  report=underwater)
    error = custom_error(lambda: lender.functions.checkAccountStatus(
        wallet, account_status_blob(sunk.typed_data, sunk.signature)).call())
    assert error == ("InsufficientFreeCollateral", (-1234_500_000_000_000_000_000, _required_usd(USDC, chain)))


def test_repaying_lowers_the_debt_and_returns_the_stablecoin(devnet: RunningDevnet, chain: DevnetChain) -> None:
    w3 = _w3(devnet)
    wallet = devnet.manifest.demo_account
    lender = credit_line(w3, chain)
    usdc_address = next(t.address for t in chain.config.tokens if t.symbol == chain.attestation.stablecoin)
    approve = [{"name": "approve", "type": "function", "stateMutability": "nonpayable",
                "inputs": [{"name": "s", "type": "address"}, {"name": "a", "type": "uint256"}],
                "outputs": [{"name": "", "type": "bool"}]}]
    usdc = w3.eth.contract(address=Web3.to_checksum_address(usdc_address), abi=BALANCE_OF + approve)
    signed = attest(SERVICE, wallet=wallet, chain_id=8453, verifier=chain.attestation.verifier, issued_at=_now(w3))
    borrow(w3, chain, 5 * USDC, signed.typed_data, signed.signature)
    held = usdc.functions.balanceOf(lender.address).call()
    w3.eth.wait_for_transaction_receipt(usdc.functions.approve(lender.address, 3 * USDC).transact({"from": wallet}))
    w3.eth.wait_for_transaction_receipt(lender.functions.repay(3 * USDC).transact({"from": wallet}))
    assert lender.functions.debt(wallet).call() == 2 * USDC
    assert usdc.functions.balanceOf(lender.address).call() == held + 3 * USDC
