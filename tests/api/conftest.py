"""An in-process app per test on aiohttp's test server, a clock the test moves by hand, and a stand-in for the
aggregator service."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from aiohttp.web import Application
from pydantic import BaseModel

from api.http import ApiSettings, RateLimit, create_app
from risk_core.errors import InputError
from risk_core.margin.engine import compute_margin_request
from risk_core.schema.market import MarketSnapshot
from risk_core.schema.report import MarginReport
from risk_core.schema.request import MarginRequest

DEMO_REQUEST = Path(__file__).resolve().parents[2] / "examples" / "demo_request.json"


class ManualClock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


ClientFactory = Callable[..., Any]


@pytest.fixture
async def make_client(clock: ManualClock) -> AsyncIterator[ClientFactory]:
    """make_client(service=..., settings=...) -> a started TestClient; all are closed after the test."""
    clients: list[TestClient[Any, Application]] = []

    async def make(**kwargs: Any) -> TestClient[Any, Application]:
        kwargs.setdefault("settings", ApiSettings(rate_limit=RateLimit(per_second=1_000, burst=1_000)))
        client: TestClient[Any, Application] = TestClient(TestServer(create_app(clock=clock, **kwargs)))
        await client.start_server()
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.close()


@pytest.fixture
async def client(make_client: ClientFactory) -> TestClient[Any, Application]:
    result: TestClient[Any, Application] = await make_client()
    return result


WALLET = "0x00000000000000000000000000000000000000aa"
ACCOUNT = "demo"


class WalletPositions(BaseModel):
    address: str
    positions: int


class CreditView(BaseModel):
    address: str
    free_collateral_usd: float
    signature: str


class MarketView(BaseModel):
    asset: str
    spot: float


@cache
def demo_market() -> MarketSnapshot:
    """The demo request's market, one object: the service's current snapshot in these tests."""
    market = MarginRequest.model_validate_json(DEMO_REQUEST.read_bytes()).market
    assert market is not None
    return market


@cache
def demo_report() -> MarginReport:
    return compute_margin_request(MarginRequest.model_validate_json(DEMO_REQUEST.read_bytes()))


def _known_wallet(address: str) -> None:
    if not address.startswith("0x"):
        raise InputError("address", "not a hex address")
    if address != WALLET:
        raise LookupError(address)


class FakeService:
    """A stand-in for the aggregator: answers from the demo request, knows one wallet and one account."""

    wallet = WALLET
    account = ACCOUNT

    async def account_risk(self, account_id: str) -> MarginReport:
        if account_id != ACCOUNT:
            raise LookupError(account_id)
        return demo_report()

    async def wallet_risk(self, address: str) -> MarginReport:
        _known_wallet(address)
        return demo_report()

    async def wallet_positions(self, address: str) -> WalletPositions:
        _known_wallet(address)
        return WalletPositions(address=address, positions=len(demo_report().positions))

    async def wallet_credit(self, address: str) -> CreditView:
        _known_wallet(address)
        return CreditView(address=address, free_collateral_usd=demo_report().free_collateral_usd, signature="0x01")

    async def market(self, asset: str) -> MarketView:
        if asset not in demo_report().underlyings:
            raise LookupError(asset)
        return MarketView(asset=asset, spot=demo_report().underlyings[asset].spot)

    async def market_snapshot(self) -> MarketSnapshot:
        return demo_market()


class BrokenService(FakeService):
    """Fails the way a bug would: the API must answer 500 problem+json without internals."""

    async def market(self, asset: str) -> MarketView:
        raise RuntimeError("secret connection string postgres://user:pw@db")


@pytest.fixture(scope="session")
def fake_service() -> FakeService:
    return FakeService()


@pytest.fixture(scope="session")
def broken_service() -> BrokenService:
    return BrokenService()


@pytest.fixture
def demo() -> MarginReport:
    """The demo request's report, as the engine computes it."""
    return demo_report()
