"""Margin alerts: once per upward crossing of each threshold and on turning liquidatable; the webhook sender's
retries (5xx and connection errors, exponential backoff on an injected sleep; not 4xx) against a local server; the
watcher posting what it computes; and the scheduler's jobs."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from aggregator.scheduler import (
    Alert,
    AlertWatcher,
    WebhookSender,
    build_scheduler,
    compute_alerts,
    prune_history,
    refresh_watched_accounts,
)
from aggregator.settings import ServiceSettings
from aggregator.store import StoreUnavailable, WatchedAccount
from aggregator.webhook_target import webhook_session
from risk_core.margin.engine import compute_margin_request
from risk_core.schema.report import MarginReport
from risk_core.schema.request import MarginRequest

DEMO_REQUEST = Path(__file__).resolve().parents[2] / "examples" / "demo_request.json"
THRESHOLDS = [1.0, 0.5, 0.8]  # unsorted on purpose


def only_loopback(address: Any) -> bool:
    return bool(address.is_loopback)


@cache
def demo_report() -> MarginReport:
    return compute_margin_request(MarginRequest.model_validate_json(DEMO_REQUEST.read_bytes()))


def report(ratio: float | None, status: str = "healthy", *, mm: float = 1000.0) -> MarginReport:
    collateral = mm / ratio if ratio else 0.0
    return demo_report().model_copy(
        update={"margin_ratio": ratio, "status": status, "maintenance_margin_usd": mm, "collateral_usd": collateral}
    )


def account(webhook: str | None = None) -> WatchedAccount:
    return WatchedAccount.model_validate(
        {"id": "treasury-1", "margin_ratio_alerts": THRESHOLDS, "alert_webhook_url": webhook}
    )


def kinds(alerts: list[Alert]) -> list[tuple[str, float | None]]:
    return [(a.kind, a.threshold) for a in alerts]


# --- compute_alerts ------------------------------------------------------------------------------------------------


def test_alerts_fire_once_per_upward_crossing_and_on_turning_liquidatable() -> None:
    watcher = AlertWatcher(WebhookSender(session=None))  # type: ignore[arg-type]  # no webhook: never sends
    steps: list[tuple[MarginReport, list[tuple[str, float | None]]]] = [
        (report(0.3), []),  # the first report: nothing to cross from
        (report(0.6), [("margin_ratio", 0.5)]),
        (report(0.7), []),  # still above 0.5: no repeat
        (report(0.8), [("margin_ratio", 0.8)]),  # reaching a threshold is crossing it
        (report(0.85), []),
        (report(0.79), []),  # falling through is no alert
        (report(0.9), [("margin_ratio", 0.8)]),  # ... and rising through again is a new crossing
        (report(1.2, "liquidatable"), [("margin_ratio", 1.0), ("liquidatable", None)]),
        (report(1.3, "liquidatable"), []),  # staying liquidatable
        (report(0.4), []),
        (report(0.95, "margin_call"), [("margin_ratio", 0.5), ("margin_ratio", 0.8)]),  # two at once, in order
        (report(None, "liquidatable"), [("margin_ratio", 1.0), ("liquidatable", None)]),  # collateral gone: inf
    ]
    for i, (next_report, expected) in enumerate(steps):
        assert kinds(watcher.observe(account(), next_report)) == expected, i


def test_liquidatable_fires_even_without_a_threshold_crossed() -> None:
    plain = WatchedAccount(id="plain")  # no thresholds
    assert compute_alerts(plain, report(0.9, "margin_call"), report(0.95, "liquidatable")) == [
        Alert("plain", "liquidatable", None, 0.95, "liquidatable", 1000.0, 1000.0 / 0.95, True)
    ]
    assert compute_alerts(plain, report(0.95, "liquidatable"), report(0.97, "liquidatable")) == []
    assert compute_alerts(plain, None, report(1.5, "liquidatable")) == []


def test_no_margin_and_no_collateral_is_not_danger() -> None:
    empty = report(None, mm=0.0)
    assert compute_alerts(account(), report(0.2), empty) == []
    assert kinds(compute_alerts(account(), empty, report(0.6))) == [("margin_ratio", 0.5)]


def test_the_alert_body() -> None:
    (alert,) = compute_alerts(account(), report(0.7), report(0.9, "margin_call").model_copy(update={"complete": False}))
    assert alert.body() == {
        "account": "treasury-1", "kind": "margin_ratio", "threshold": 0.8, "margin_ratio": 0.9,
        "status": "margin_call", "maintenance_margin_usd": 1000.0, "collateral_usd": 1000.0 / 0.9, "complete": False,
    }


# --- the webhook sender --------------------------------------------------------------------------------------------

ALERT = Alert("treasury-1", "margin_ratio", 0.8, 0.9, "margin_call", 1000.0, 1111.0, True)


@dataclass
class Hook:
    """A local webhook answering a script of statuses ('drop' closes the connection unanswered); then 200."""

    script: list[int | str] = field(default_factory=list)
    bodies: list[Any] = field(default_factory=list)
    content_types: list[str] = field(default_factory=list)
    received: asyncio.Event = field(default_factory=asyncio.Event)
    url: str = ""

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.bodies.append(await request.json())
        self.content_types.append(request.content_type)
        self.received.set()
        answer = self.script.pop(0) if self.script else 200
        if answer == "drop":
            assert request.transport is not None
            request.transport.close()
        return web.Response(status=int(answer) if answer != "drop" else 200, text="ok")


@pytest.fixture
async def hook() -> AsyncIterator[Hook]:
    served = Hook()
    app = web.Application()
    app.router.add_post("/alerts", served.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    served.url = f"http://127.0.0.1:{port}/alerts"
    yield served
    await runner.cleanup()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with webhook_session(allowed=only_loopback) as client_session:  # the test servers are local
        yield client_session


class RecordedSleep:
    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


def closed_port_url() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/alerts"  # nothing listens there now: connection refused


SenderFactory = Callable[..., WebhookSender]


@pytest.fixture
def sleep() -> RecordedSleep:
    return RecordedSleep()


@pytest.fixture
def sender(session: aiohttp.ClientSession, sleep: RecordedSleep) -> SenderFactory:
    def make(**kwargs: Any) -> WebhookSender:
        return WebhookSender(session, sleep=sleep, allowed=only_loopback, **kwargs)

    return make


async def test_5xx_is_retried_with_exponential_backoff(hook: Hook, sender: SenderFactory, sleep: RecordedSleep) -> None:
    hook.script = [503, 500, 502]
    assert await sender(attempts=4, backoff_s=0.25).send(hook.url, ALERT) is True
    assert sleep.delays == [0.25, 0.5, 1.0]
    assert hook.bodies == [ALERT.body()] * 4
    assert set(hook.content_types) == {"application/json"}


async def test_gives_up_after_the_last_attempt(hook: Hook, sender: SenderFactory, sleep: RecordedSleep) -> None:
    hook.script = [500] * 10
    assert await sender(attempts=3, backoff_s=0.5).send(hook.url, ALERT) is False
    assert len(hook.bodies) == 3
    assert sleep.delays == [0.5, 1.0]  # no sleep after the last attempt


@pytest.mark.parametrize("status", [400, 404, 410, 422])
async def test_4xx_is_not_retried(hook: Hook, sender: SenderFactory, sleep: RecordedSleep, status: int) -> None:
    hook.script = [status]
    assert await sender(attempts=4).send(hook.url, ALERT) is False
    assert len(hook.bodies) == 1
    assert sleep.delays == []


async def test_connection_errors_are_retried(sender: SenderFactory, sleep: RecordedSleep) -> None:
    assert await sender(attempts=3, backoff_s=0.1).send(closed_port_url(), ALERT) is False
    assert sleep.delays == pytest.approx([0.1, 0.2])


async def test_a_dropped_connection_is_retried_until_delivered(
    hook: Hook, sender: SenderFactory, sleep: RecordedSleep
) -> None:
    hook.script = ["drop", "drop"]
    assert await sender(attempts=4, backoff_s=1.0).send(hook.url, ALERT) is True
    assert sleep.delays == [1.0, 2.0]
    assert len(hook.bodies) == 3


async def test_success_needs_no_retry(hook: Hook, sender: SenderFactory, sleep: RecordedSleep) -> None:
    hook.script = [204]
    assert await sender().send(hook.url, ALERT) is True
    assert (len(hook.bodies), sleep.delays) == (1, [])


# --- the watcher ---------------------------------------------------------------------------------------------------


async def test_the_watcher_posts_each_alert_to_the_account_webhook(hook: Hook, sender: SenderFactory) -> None:
    watcher = AlertWatcher(sender())
    watched = account(hook.url)
    assert watcher.observe(watched, report(0.4)) == []
    assert not watcher.pending and hook.bodies == []

    alerts = watcher.observe(watched, report(1.1, "liquidatable"))
    assert kinds(alerts) == [
        ("margin_ratio", 0.5), ("margin_ratio", 0.8), ("margin_ratio", 1.0), ("liquidatable", None)
    ]
    assert await asyncio.gather(*list(watcher.pending)) == [True] * 4
    assert sorted(hook.bodies, key=str) == sorted((a.body() for a in alerts), key=str)
    assert hook.bodies[0]["account"] == "treasury-1"
    assert not watcher.pending  # done tasks leave the set

    assert watcher.observe(watched, report(1.2, "liquidatable")) == []
    assert not watcher.pending and len(hook.bodies) == 4


async def test_the_watcher_keeps_accounts_apart(hook: Hook, sender: SenderFactory) -> None:
    watcher = AlertWatcher(sender())
    first, second = account(hook.url), account(hook.url).model_copy(update={"id": "treasury-2"})
    watcher.observe(first, report(0.9))
    assert watcher.observe(second, report(0.9)) == []  # the other account's history does not count
    assert kinds(watcher.observe(second, report(1.0))) == [("margin_ratio", 1.0)]
    await asyncio.gather(*list(watcher.pending))
    assert [b["account"] for b in hook.bodies] == ["treasury-2"]


# --- the scheduler's jobs ------------------------------------------------------------------------------------------


class FakeStore:
    def __init__(self, accounts: list[WatchedAccount] | None = None) -> None:
        self.accounts = accounts
        self.pruned: list[datetime] = []

    async def list_accounts(self) -> list[WatchedAccount]:
        if self.accounts is None:
            raise StoreUnavailable("database unavailable (test)")
        return self.accounts

    async def prune(self, older_than: datetime) -> None:
        if self.accounts is None:
            raise StoreUnavailable("database unavailable (test)")
        self.pruned.append(older_than)


def fake_service(store: FakeStore | None) -> Any:
    refreshed: list[str] = []

    async def refresh_account(watched: WatchedAccount) -> None:
        refreshed.append(watched.id)

    async def refresh_market() -> None:
        return None

    now = datetime(2026, 1, 5, tzinfo=UTC)
    return SimpleNamespace(store=store, refreshed=refreshed, refresh_account=refresh_account,
                           refresh_market=refresh_market, clock=lambda: now, watching=lambda ids: None,
                           settings=ServiceSettings(history_retention_days=7, account_refresh_s=45, market_ttl_s=12))


async def test_refresh_watched_accounts_refreshes_every_stored_account() -> None:
    service = fake_service(FakeStore([WatchedAccount(id="a"), WatchedAccount(id="b")]))
    assert await refresh_watched_accounts(service) == 2
    assert service.refreshed == ["a", "b"]
    assert await refresh_watched_accounts(fake_service(None)) == 0  # no store
    down = fake_service(FakeStore(None))
    assert await refresh_watched_accounts(down) == 0  # database away: logged, no exception
    assert down.refreshed == []


async def test_prune_history_keeps_the_retention_window() -> None:
    store = FakeStore([])
    await prune_history(fake_service(store))
    assert store.pruned == [datetime(2026, 1, 5, tzinfo=UTC) - timedelta(days=7)]
    await prune_history(fake_service(FakeStore(None)))  # database away: logged, no exception


async def test_the_scheduler_jobs_and_their_intervals() -> None:
    scheduler = build_scheduler(fake_service(None))
    jobs = {job.id: job for job in scheduler.get_jobs()}
    assert {name: job.trigger.interval for name, job in jobs.items()} == {
        "market": timedelta(seconds=12), "accounts": timedelta(seconds=45), "prune": timedelta(hours=1)
    }
    assert all(job.max_instances == 1 and job.coalesce for job in jobs.values())
    assert build_scheduler(fake_service(None), market_every_s=3).get_job("market").trigger.interval == timedelta(
        seconds=3
    )
