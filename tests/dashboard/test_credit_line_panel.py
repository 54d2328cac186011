"""The dashboard's credit-line panel (demo only) in Debian's chromium: the latest attestation's figures, exact from
their 1e18 fixed point, its on-chain verification status and the loans; hidden outside the demo (its data route
answers 204 there)."""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from eth_account import Account
from eth_utils import keccak
from support.attestation_chain import attest

from api.dashboard import CREDIT_LINE_PATH, CREDIT_LINE_STATUS
from api.demo_credit_line import BorrowAttempt, CreditLineStatus, Verification
from api.http import create_app

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--disable-dev-shm-usage"]
SIGNER = Account.from_key(keccak(text="metarisk panel test signer"))
WALLET = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
VERIFIER = "0x04C89607413713Ec9775E14b954286519d836FEf"
MINUS = "\u2212"
CHECKED = datetime(2026, 12, 5, 0, 0, 5, tzinfo=UTC)


def status() -> CreditLineStatus:
    signed = attest(SIGNER, wallet=WALLET, chain_id=8453, verifier=VERIFIER, issued_at=1_796_428_800)
    attempts = [
        BorrowAttempt(amount=23_000.5, free_collateral_usd=138_355.19, issued_at=1_796_428_800, accepted=True,
                      refusal=None, transaction="0x" + "ab" * 32),
        BorrowAttempt(amount=60_000, free_collateral_usd=97_000.0, issued_at=1_796_428_810, accepted=False,
                      refusal="InsufficientFreeCollateral", transaction=None),
    ]
    return CreditLineStatus(chain_id=8453, credit_line="0x" + "cd" * 20, verifier=VERIFIER, wallet=WALLET,
                            debt=23_000.5, attestation=signed,
                            verification=Verification(verified=True, error=None, checked_at=CHECKED),
                            attempts=attempts)


class Server:
    """An app on a free port, in its own loop and thread (Playwright's sync API holds the test thread's loop)."""

    def __init__(self, app: web.Application) -> None:
        self.loop = asyncio.new_event_loop()
        self.runner = web.AppRunner(app, access_log=None)
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    async def _start(self) -> str:
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", 0).start()
        host, port = self.runner.addresses[0][:2]
        return f"http://{host}:{port}"

    def start(self) -> str:
        self.thread.start()
        return asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(timeout=30)

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(timeout=30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=30)
        self.loop.close()


def _app(with_panel: bool) -> web.Application:
    app = create_app()
    if with_panel:
        shown = status()

        async def answer() -> CreditLineStatus:
            return shown

        app[CREDIT_LINE_STATUS] = answer
    return app


@pytest.fixture(scope="module")
def urls() -> Iterator[dict[bool, str]]:
    servers = {with_panel: Server(_app(with_panel)) for with_panel in (True, False)}
    try:
        yield {with_panel: server.start() for with_panel, server in servers.items()}
    finally:
        for server in servers.values():
            server.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        if os.environ.get("CI"):
            pytest.fail(f"{CHROMIUM} is absent; CI must run the browser tests")
        pytest.skip(f"{CHROMIUM} is absent")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


def _dollars(wad: str) -> str:
    """The panel's money format, from the integer: cents truncated, thousands separated, U+2212 for minus."""
    value = int(wad)
    cents = abs(value) * 100 // 10**18
    sign = MINUS if value < 0 else ""
    return f"{sign}${cents // 100:,}.{cents % 100:02d}"


def test_the_panel_shows_the_attestation_its_verification_and_the_loans(browser: Any, urls: dict[bool, str]) -> None:
    page = browser.new_page()
    try:
        page.goto(f"{urls[True]}/?account=demo")
        page.wait_for_selector("#credit-line:not([hidden])", timeout=10_000)
        badge = page.locator("#credit-line-verification").text_content()
        assert badge == f"Attestation verified on chain 8453 at {CHECKED.isoformat().replace('+00:00', 'Z')}"
        message = status().attestation.typed_data["message"]  # type: ignore[union-attr]
        rows = page.locator("#credit-line-body table").first.locator("tbody tr").all_text_contents()
        assert rows[0] == "Free collateral" + _dollars(message["freeCollateralUsd"])
        assert rows[2] == "Maintenance margin" + _dollars(message["maintenanceMarginUsd"])
        assert rows[4] == "Issued2026-12-05T00:00:00Z"
        loans = page.locator("#credit-line-body table").nth(1).locator("tbody tr").all_text_contents()
        assert loans == ["lent23,000.5138,355.19", "refused (InsufficientFreeCollateral)60,00097,000"]
    finally:
        page.close()


def test_without_the_demo_route_the_panel_stays_hidden(browser: Any, urls: dict[bool, str]) -> None:
    page = browser.new_page()
    try:
        with page.expect_response(lambda response: response.url.endswith(CREDIT_LINE_PATH)) as answered:
            page.goto(f"{urls[False]}/?account=demo")
        assert answered.value.status == 204
        page.wait_for_load_state("networkidle")
        assert page.locator("#credit-line").is_hidden()
    finally:
        page.close()
