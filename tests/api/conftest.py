"""An in-process app per test on aiohttp's test server, a clock the test moves by hand, and a stand-in for the
aggregator service."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from aiohttp.web import Application
from pydantic import BaseModel

from aggregator.history import AccountHistory, page_of_history
from aggregator.service import MarketView
from aggregator.store import ReportHeadline, StoredReport
from api.http import ApiSettings, RateLimit, create_app
from risk_core.errors import InputError
from risk_core.margin.engine import compute_margin_request
from risk_core.schema.market import MarketSnapshot, SourceStatus
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
    model: str


@cache
def demo_market() -> MarketSnapshot:
    """The demo request's market, one object: the service's current snapshot in these tests."""
    market = MarginRequest.model_validate_json(DEMO_REQUEST.read_bytes()).market
    assert market is not None
    return market


@cache
def demo_report() -> MarginReport:
    return compute_margin_request(MarginRequest.model_validate_json(DEMO_REQUEST.read_bytes()))


HISTORY_START = datetime(2026, 1, 5, 8, tzinfo=UTC)
OTHER_ACCOUNTS_REPORT = 4


@cache
def stored_reports() -> tuple[StoredReport, ...]:
    """Three hourly reports of the account from HISTORY_START (ids 1-3), and report 4 of another account."""
    return tuple(
        StoredReport(
            id=n,
            account_id=ACCOUNT if n != OTHER_ACCOUNTS_REPORT else "other",
            position_snapshot_id=n,
            market_snapshot_id=1,
            computed_at=HISTORY_START + timedelta(hours=n - 1),
            report=demo_report(),
        )
        for n in (1, 2, 3, OTHER_ACCOUNTS_REPORT)
    )


def headline(stored: StoredReport) -> ReportHeadline:
    where = stored.model_dump(include={"id", "account_id", "position_snapshot_id", "market_snapshot_id", "computed_at"})
    return ReportHeadline(**where, **stored.report.model_dump(include=set(ReportHeadline.model_fields) - set(where)))


def _known_wallet(address: str) -> None:
    if not address.startswith("0x"):
        raise InputError("address", "not a hex address")
    if address != WALLET:
        raise LookupError(address)


class FakeService:
    """A stand-in for the aggregator: answers from the demo request, knows one wallet and one account."""

    wallet = WALLET
    account = ACCOUNT
    other_accounts_report = OTHER_ACCOUNTS_REPORT
    stored = staticmethod(stored_reports)

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

    fhs_history = True  # False: the fhs model has no history for the wallet, as the aggregator then says

    async def wallet_credit(self, address: str, model: str | None = None) -> CreditView:
        _known_wallet(address)
        if model == "fhs" and not self.fhs_history:
            raise InputError("model", "fhs: no history for BTC")
        return CreditView(address=address, free_collateral_usd=demo_report().free_collateral_usd, signature="0x01",
                          model=model or "grid")

    async def market(self, asset: str) -> MarketView:
        if asset not in demo_report().underlyings:
            raise LookupError(asset)
        market = demo_market()
        return MarketView(
            asset=asset, as_of=market.as_of, age_seconds=0.0, spot=market.spot[asset], dispersion=None,
            forwards=market.forwards.get(asset, {}), vol=market.vol.get(asset),
            sources=[SourceStatus(name=f"price:{asset}/USD", status="ok", as_of=market.as_of, asset=asset)],
        )

    async def market_snapshot(self) -> MarketSnapshot:
        return demo_market()

    async def account_history(
        self, account_id: str, *, since: datetime | None, until: datetime | None, limit: int
    ) -> AccountHistory:
        if account_id != ACCOUNT:
            raise LookupError(account_id)
        rows = [
            headline(stored)
            for stored in sorted(stored_reports(), key=lambda stored: stored.computed_at, reverse=True)
            if stored.account_id == account_id
            and (since is None or stored.computed_at >= since)
            and (until is None or stored.computed_at < until)
        ]
        return page_of_history(account_id, rows[: limit + 1], since=since, until=until, limit=limit)

    async def stored_report(self, account_id: str, report_id: int) -> StoredReport | None:
        if account_id != ACCOUNT:
            raise LookupError(account_id)
        return next((s for s in stored_reports() if s.id == report_id and s.account_id == account_id), None)


class BrokenService(FakeService):
    """Fails the way a bug would: the API must answer 500 problem+json without internals."""

    async def market(self, asset: str) -> MarketView:
        raise RuntimeError("secret connection string postgres://user:pw@db")


class DownService(FakeService):
    """The database is down: the history methods raise what the aggregator raises then."""

    async def account_history(
        self, account_id: str, *, since: datetime | None, until: datetime | None, limit: int
    ) -> AccountHistory:
        raise ConnectionError(f"the history of account {account_id!r} cannot be read: database unavailable")

    async def stored_report(self, account_id: str, report_id: int) -> StoredReport | None:
        raise ConnectionError(f"report {report_id} cannot be read: database unavailable")


@pytest.fixture(scope="session")
def down_service() -> DownService:
    return DownService()


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
