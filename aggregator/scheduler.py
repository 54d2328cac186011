"""Scheduled work: market refresh, watched-account refresh, history pruning, and margin alerts by webhook.

An alert is an early warning: it fires when an account's margin ratio (MM / collateral) rises through one of the
account's thresholds, or when the account turns liquidatable, once per crossing (not on every refresh above it).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta

import aiohttp
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from aggregator.service import AggregatorService
from aggregator.store import StoreUnavailable, WatchedAccount
from aggregator.webhook_target import AddressRule, WebhookTargetRefused, is_public_address, vet_url
from risk_core.schema.report import MarginReport

log = logging.getLogger(__name__)
Sleep = Callable[[float], Awaitable[None]]


@dataclass(frozen=True)
class Alert:
    account_id: str
    kind: str  # "margin_ratio" | "liquidatable"
    threshold: float | None
    margin_ratio: float | None
    status: str
    maintenance_margin_usd: float
    collateral_usd: float
    complete: bool

    def body(self) -> dict[str, object]:
        return {
            "account": self.account_id, "kind": self.kind, "threshold": self.threshold,
            "margin_ratio": self.margin_ratio, "status": self.status,
            "maintenance_margin_usd": self.maintenance_margin_usd, "collateral_usd": self.collateral_usd,
            "complete": self.complete,
        }


def _level(report: MarginReport) -> float:
    """The margin ratio as a number that only grows with danger (no collateral: infinitely bad)."""
    if report.margin_ratio is None:
        return float("inf") if report.maintenance_margin_usd > 0 else 0.0
    return report.margin_ratio


def compute_alerts(account: WatchedAccount, previous: MarginReport | None, report: MarginReport) -> list[Alert]:
    """Alerts for thresholds crossed upward since the previous report (none before the first one)."""
    if previous is None:
        return []
    before, now = _level(previous), _level(report)
    alerts = [
        Alert(account.id, "margin_ratio", t, report.margin_ratio, report.status, report.maintenance_margin_usd,
              report.collateral_usd, report.complete)
        for t in sorted(account.margin_ratio_alerts)
        if before < t <= now
    ]
    if report.status == "liquidatable" and previous.status != "liquidatable":
        alerts.append(Alert(account.id, "liquidatable", None, report.margin_ratio, report.status,
                            report.maintenance_margin_usd, report.collateral_usd, report.complete))
    return alerts


@dataclass
class WebhookSender:
    """POSTs alerts as JSON, retrying with exponential backoff on network errors and 5xx answers. Give it a
    `webhook_session()` (aggregator.webhook_target): only public addresses, the DNS answer pinned; a redirect is
    an answer, never followed (it could point anywhere), and each attempt has its own timeout."""

    session: aiohttp.ClientSession
    attempts: int = 4
    backoff_s: float = 0.5
    timeout_s: float = 5.0
    sleep: Sleep = asyncio.sleep
    allowed: AddressRule = is_public_address  # the session's rule too; widened by tests alone

    async def send(self, url: str, alert: Alert) -> bool:
        delay = self.backoff_s
        for attempt in range(1, self.attempts + 1):
            try:
                vet_url(url, self.allowed)
                timeout = aiohttp.ClientTimeout(total=self.timeout_s)
                async with self.session.post(
                    url, json=alert.body(), timeout=timeout, allow_redirects=False
                ) as response:
                    if response.status < 500:
                        return response.status < 300
            except WebhookTargetRefused as e:  # not a passing failure: retrying would be refused alike
                log.warning("alert webhook not sent: %s", e)
                return False
            except (aiohttp.ClientError, TimeoutError) as e:
                log.warning("alert webhook %s attempt %d failed: %s", url, attempt, e)
            if attempt < self.attempts:
                await self.sleep(delay)
                delay *= 2
        return False


@dataclass
class AlertWatcher:
    """Keeps each account's last report and sends the alerts its next one triggers."""

    sender: WebhookSender
    last: dict[str, MarginReport] = field(default_factory=dict)
    pending: set[asyncio.Task[bool]] = field(default_factory=set)

    def observe(self, account: WatchedAccount, report: MarginReport) -> list[Alert]:
        alerts = compute_alerts(account, self.last.get(account.id), report)
        self.last[account.id] = report
        if account.alert_webhook_url is not None:
            for alert in alerts:
                task = asyncio.get_running_loop().create_task(self.sender.send(str(account.alert_webhook_url), alert))
                self.pending.add(task)
                task.add_done_callback(self.pending.discard)
        return alerts


async def refresh_watched_accounts(service: AggregatorService) -> int:
    """Refresh every watched account; returns how many were refreshed. Each refresh is bounded (the service's
    `refresh_timeout_s`) and one that fails leaves the others to run: /health names the accounts left stale."""
    if service.store is None:
        return 0
    try:
        accounts = await service.store.list_accounts()
    except StoreUnavailable as e:
        log.warning("watched accounts not refreshed: %s", e)
        return 0
    service.watching([account.id for account in accounts])
    refreshed = 0
    for account in accounts:
        try:
            await service.refresh_account(account)
            refreshed += 1
        except ConnectionError as e:
            log.warning("account %s not refreshed: %s", account.id, e)
    return refreshed


async def refresh_market(service: AggregatorService) -> None:
    """The scheduled market refresh, shared with the requests that need one; past its time it is abandoned (and
    the next run starts anew), so the job never outlives its interval for long."""
    try:
        await service.refresh_market_shared()
    except TimeoutError:
        log.warning("market refresh abandoned after %g s", service.settings.refresh_timeout_s)


async def prune_history(service: AggregatorService) -> None:
    if service.store is None:
        return
    try:
        await service.store.prune(service.clock() - timedelta(days=service.settings.history_retention_days))
    except StoreUnavailable as e:
        log.warning("history not pruned: %s", e)


def build_scheduler(service: AggregatorService, *, market_every_s: float | None = None) -> AsyncIOScheduler:
    """The service's jobs; the caller starts the scheduler inside its event loop."""
    settings = service.settings
    scheduler = AsyncIOScheduler()
    common = {"max_instances": 1, "coalesce": True}
    scheduler.add_job(refresh_market, "interval", args=[service], seconds=market_every_s or settings.market_ttl_s,
                      id="market", **common)
    scheduler.add_job(refresh_watched_accounts, "interval", args=[service], seconds=settings.account_refresh_s,
                      id="accounts", **common)
    scheduler.add_job(prune_history, "interval", args=[service], hours=1, id="prune", **common)
    return scheduler
