"""The demo's replayed market moves: the service on local venues replaying the recorded price path, its clock
moved by hand (ten minutes of replay, ten recorded hours at a time). Its spot prices follow the path, and the
account's margin ratio, its stored history and its alerts move with them (a frozen snapshot drew a flat line)."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import aiohttp
import pytest

from aggregator.scheduler import compute_alerts
from aggregator.service import AggregatorService
from aggregator.store import AsyncStore, Store, WatchedAccount
from api.demo import demo_settings
from venue_servers import derive as derive_venue
from venue_servers import hyperliquid as hyperliquid_venue
from venue_servers.price_path import recorded_price_path
from venue_servers.runner import run_venue_servers
from venue_servers.scenario import default_scenario

from .conftest import ManualClock

pytestmark = pytest.mark.asyncio(loop_scope="module")
STEPS_S = (0, 600, 1200, 1800)  # replay seconds: each step is ten recorded hours of the path


async def test_prices_margin_ratios_history_and_alerts_move_along_the_path(tmp_path: Path) -> None:
    recorded = default_scenario()
    clock = ManualClock(recorded.as_of)
    path = recorded_price_path()
    account = WatchedAccount(
        id="venues", venue_accounts={"hyperliquid": [hyperliquid_venue.USER], "deribit": ["metarisk-readonly"],
                                     "derive": [f"{derive_venue.WALLET}/{derive_venue.SUBACCOUNT_ID}"]},
    )
    store = Store.from_url(f"sqlite:///{tmp_path / 'metarisk.db'}")
    store.migrate()
    store.add_account(account)
    reports, spots = [], []
    async with run_venue_servers(replace(recorded, clock=clock, path=path)) as venues, \
            aiohttp.ClientSession() as session:
        settings = demo_settings(venues).model_copy(update={"report_ttl_s": 1e-9, "market_ttl_s": 1e-9})
        service = AggregatorService(settings=settings, session=session, clients=[], store=AsyncStore(store),
                                    clock=clock)
        for step in STEPS_S:
            clock.now = recorded.as_of + timedelta(seconds=step)
            spots.append((await service.refresh_market()).snapshot.spot)
            reports.append(await service.account_risk(account.id))
    store.close()

    # every venue quotes the path: the aggregated prices move by the recorded ratios
    for step, spot in zip(STEPS_S, spots, strict=True):
        for asset in ("BTC", "ETH", "SOL"):
            assert spot[asset] == pytest.approx(spots[0][asset] * path.ratio(asset, step), rel=1e-6)
    assert len({round(s["BTC"], 2) for s in spots}) == len(STEPS_S)

    # so does the account's margin ratio, report after report, in the stored history too
    ratios = [r.margin_ratio for r in reports]
    assert all(r is not None for r in ratios) and len(set(ratios)) == len(STEPS_S)
    history = Store.from_url(f"sqlite:///{tmp_path / 'metarisk.db'}").report_history(account.id)
    assert [h.margin_ratio for h in reversed(history)] == pytest.approx(ratios, rel=1e-12)

    # and an alert set between two of those ratios fires when the market carries the account through it
    rising = next(i for i in range(1, len(ratios)) if ratios[i] > ratios[i - 1])  # type: ignore[operator]
    threshold = (ratios[rising - 1] + ratios[rising]) / 2  # type: ignore[operator]
    watched = account.model_copy(update={"margin_ratio_alerts": [threshold]})
    (alert,) = compute_alerts(watched, reports[rising - 1], reports[rising])
    assert alert.threshold == threshold and alert.margin_ratio == ratios[rising]
