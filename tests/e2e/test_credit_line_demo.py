"""The demo's lender story end to end, on a demo of its own (the story moves the demo wallet's tokens): the service
signs with a key it created in its data directory, every verifier trusts it; the demo wallet's attestation from the
REST route verifies on-chain; it borrows from CreditLine; after its collateral moves away a new attestation shows
less free collateral and a loan the first attestation covered is refused; the dashboard's data shows it all."""

from __future__ import annotations

import stat
from collections.abc import AsyncIterator
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from aiohttp.test_utils import TestClient, TestServer
from support.eip712_reference import digest, recover
from web3 import Web3

from api.demo import DEMO_API_KEY, Demo, run_demo_service
from api.demo_attestation import KEYSTORE_FILE
from devnet.attestation_contracts import attestation_tuple, credit_line, verifier, verify_arguments
from devnet.run import RunningDevnet

pytestmark = pytest.mark.asyncio(loop_scope="module")
KEY = {"X-API-Key": DEMO_API_KEY}


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def demo(
    devnet: RunningDevnet, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[tuple[Demo, Any, Path]]:
    directory = tmp_path_factory.mktemp("credit-line-demo")
    async with run_demo_service(database_url=f"sqlite:///{directory / 'db.sqlite'}", data_directory=directory) as d:
        client: TestClient[Any, Any] = TestClient(TestServer(d.app))
        await client.start_server()
        try:
            yield d, client, directory
        finally:
            await client.close()


def _w3(d: Demo, chain: str) -> Web3:
    return Web3(Web3.HTTPProvider(d.devnet.nodes[chain].url))


async def test_the_service_signs_with_its_own_key_trusted_by_every_verifier(demo: tuple[Demo, Any, Path]) -> None:
    d, client, directory = demo
    signer = await (await client.get("/v1/attestations/signer")).json()
    assert signer["address"] == d.attestations.signer.address != d.devnet.manifest.demo_account
    assert sorted((c["chain_id"], c["verifying_contract"]) for c in signer["chains"]) == sorted(
        (chain.config.chain_id, chain.attestation.verifier) for chain in d.devnet.manifest.chains
    )
    keystore = directory / KEYSTORE_FILE
    assert stat.S_IMODE(keystore.stat().st_mode) == 0o600
    for chain in d.devnet.manifest.chains:
        window = verifier(_w3(d, chain.config.name), chain).functions.signerWindow(signer["address"]).call()
        assert window[1] == 2**64 - 1


async def test_the_demo_wallets_attestation_verifies_on_chain(demo: tuple[Demo, Any, Path]) -> None:
    d, client, _ = demo
    wallet = d.devnet.manifest.demo_account
    chain = d.devnet.manifest.chain("arbitrum")
    response = await client.get(f"/v1/wallets/{wallet}/attestation?chain_id=42161", headers=KEY)
    signed = await response.json()
    typed, message = signed["typed_data"], signed["typed_data"]["message"]
    assert recover(typed, signed["signature"]) == d.attestations.signer.address
    assert message["complete"] is True
    assert {b["chainId"] for b in message["blocks"]} == {1, 42161, 8453}
    assert "hyperliquid" in {s["source"] for s in message["sources"]}
    risk = await (await client.get(f"/v1/wallets/{wallet}/risk")).json()
    assert Fraction(int(message["freeCollateralUsd"]), 10**18) == Fraction(repr(risk["free_collateral_usd"]))
    contract = verifier(_w3(d, "arbitrum"), chain)
    assert contract.functions.digest(attestation_tuple(message)).call() == digest(typed)
    figures = contract.functions.verify(*verify_arguments(typed, signed["signature"])).call()
    assert figures[6] == int(message["freeCollateralUsd"])


async def test_borrows_then_is_refused_once_its_risk_rises(demo: tuple[Demo, Any, Path]) -> None:
    d, client, _ = demo
    story = d.credit_line
    first, second = await story.run_story()
    assert first.accepted and first.transaction is not None
    assert (second.accepted, second.refusal) == (False, "InsufficientFreeCollateral")
    assert second.free_collateral_usd < first.free_collateral_usd
    # the refused loan was one the first attestation covered: (first + second) x 1.5 <= its free collateral
    factor = Fraction(story.chain.attestation.safety_factor_wad, 10**18)
    total = Fraction(repr(first.amount)) + Fraction(repr(second.amount))
    assert total * factor <= Fraction(repr(first.free_collateral_usd))
    assert total * factor > Fraction(repr(second.free_collateral_usd))
    lender = credit_line(_w3(d, "base"), story.chain)
    assert lender.functions.debt(d.devnet.manifest.demo_account).call() == round(first.amount * 10**6)

    shown = await (await client.get("/demo/credit-line")).json()
    assert [a["accepted"] for a in shown["attempts"]] == [True, False]
    assert shown["debt"] == first.amount
    assert shown["verification"]["verified"] is True  # the latest attestation is valid; the lender said no
    assert shown["attestation"]["typed_data"]["message"]["issuedAt"] == second.issued_at
