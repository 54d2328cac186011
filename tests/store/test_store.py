"""The store's API on both backends: accounts, refresh round trips, history, prune, and all-or-nothing writes."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import event
from store.helpers import demo_refresh, row_counts

from aggregator.store import (
    AccountExists,
    AccountNotFound,
    AsyncStore,
    PruneCounts,
    Store,
    WatchedAccount,
)

T0 = datetime(2026, 11, 25, 8, 0, tzinfo=UTC)


def test_accounts_round_trip_update_and_delete(store: Store, account: WatchedAccount) -> None:
    assert store.get_account("demo") == account
    assert store.list_accounts() == [account]
    with pytest.raises(AccountExists):
        store.add_account(account)

    changed = account.model_copy(
        update={"label": "Renamed", "margin_ratio_alerts": [0.5], "created_at": T0, "alert_webhook_url": None}
    )
    updated = store.update_account(changed)
    assert updated == changed.model_copy(update={"created_at": account.created_at}), "created_at is kept"
    assert store.get_account("demo") == updated

    other = store.add_account(WatchedAccount(id="another-1"))
    assert [a.id for a in store.list_accounts()] == ["another-1", "demo"]
    assert store.delete_account("another-1") is True
    assert store.delete_account("another-1") is False
    assert store.get_account("another-1") is None
    with pytest.raises(AccountNotFound):
        store.update_account(other)


def test_refresh_round_trip(store: Store, account: WatchedAccount) -> None:
    refresh = demo_refresh(T0)
    ids = store.save_refresh(account.id, refresh.positions, refresh.market, refresh.report, computed_at=T0)

    report = store.latest_report(account.id)
    assert report is not None
    assert (report.id, report.position_snapshot_id, report.market_snapshot_id) == (
        ids.report_id,
        ids.position_snapshot_id,
        ids.market_snapshot_id,
    )
    assert report.report == refresh.report
    assert report.computed_at == T0
    assert store.report(ids.report_id) == report

    positions = store.latest_position_snapshot(account.id)
    assert positions is not None and positions.id == ids.position_snapshot_id
    assert positions.snapshot == refresh.positions
    assert store.position_snapshot(ids.position_snapshot_id) == positions

    market = store.latest_market_snapshot()
    assert market is not None and market.id == ids.market_snapshot_id
    assert market.snapshot == refresh.market
    assert store.market_snapshot(ids.market_snapshot_id) == market


def test_a_refresh_needs_a_watched_account(store: Store) -> None:
    refresh = demo_refresh(T0)
    with pytest.raises(AccountNotFound):
        store.save_refresh("nobody", refresh.positions, refresh.market, refresh.report)
    assert row_counts(store) == {"position_snapshots": 0, "market_snapshots": 0, "margin_reports": 0}


def test_identical_market_snapshots_share_one_row(store: Store) -> None:
    refresh = demo_refresh(T0)
    store.add_account(WatchedAccount(id="a"))
    store.add_account(WatchedAccount(id="b"))
    first = store.save_refresh("a", refresh.positions, refresh.market, refresh.report)
    second = store.save_refresh("b", refresh.positions, refresh.market, refresh.report)
    assert first.market_snapshot_id == second.market_snapshot_id == store.save_market_snapshot(refresh.market)
    moved = demo_refresh(T0 + timedelta(minutes=1))
    assert store.save_market_snapshot(moved.market) != first.market_snapshot_id
    assert row_counts(store)["market_snapshots"] == 2


def test_concurrent_refreshes_all_land(store: Store) -> None:
    refresh = demo_refresh(T0)
    accounts = [f"acct-{i}" for i in range(4)]
    for account_id in accounts:
        store.add_account(WatchedAccount(id=account_id))

    def refresh_five_times(account_id: str) -> None:
        for _ in range(5):
            store.save_refresh(account_id, refresh.positions, refresh.market, refresh.report)

    with ThreadPoolExecutor(max_workers=len(accounts)) as pool:
        list(pool.map(refresh_five_times, accounts))
    assert row_counts(store) == {"position_snapshots": 20, "market_snapshots": 1, "margin_reports": 20}


def test_latest_and_latest_complete(store: Store, account: WatchedAccount) -> None:
    assert store.latest_report(account.id) is None
    assert store.latest_market_snapshot() is None
    complete = demo_refresh(T0)
    partial = demo_refresh(T0 + timedelta(minutes=1), complete=False)
    store.save_refresh(account.id, *complete, computed_at=T0)
    store.save_refresh(account.id, *partial, computed_at=T0 + timedelta(minutes=1))

    latest = store.latest_report(account.id)
    assert latest is not None and latest.report == partial.report and not latest.report.complete
    latest_complete = store.latest_report(account.id, complete_only=True)
    assert latest_complete is not None and latest_complete.report == complete.report
    latest_positions = store.latest_position_snapshot(account.id)
    assert latest_positions is not None and latest_positions.snapshot == partial.positions
    latest_complete_positions = store.latest_position_snapshot(account.id, complete_only=True)
    assert latest_complete_positions is not None and latest_complete_positions.snapshot == complete.positions
    latest_market = store.latest_market_snapshot()
    assert latest_market is not None and latest_market.snapshot == partial.market


def test_report_history_window_order_and_headlines(store: Store, account: WatchedAccount) -> None:
    times = [T0 + timedelta(minutes=i) for i in range(5)]
    refreshes = [demo_refresh(t, eth_spot=3000.0 + 50 * i) for i, t in enumerate(times)]
    for t, refresh in zip(times, refreshes, strict=True):
        store.save_refresh(account.id, *refresh, computed_at=t)

    history = store.report_history(account.id)
    assert [h.computed_at for h in history] == times[::-1]
    newest, newest_report = history[0], refreshes[-1].report
    assert (newest.equity_usd, newest.collateral_usd, newest.margin_ratio, newest.status, newest.complete) == (
        newest_report.equity_usd,
        newest_report.collateral_usd,
        newest_report.margin_ratio,
        newest_report.status,
        newest_report.complete,
    )
    assert newest.maintenance_margin_usd == newest_report.maintenance_margin_usd
    assert newest.initial_margin_usd == newest_report.initial_margin_usd
    assert newest.params_version == newest_report.params_version

    window = store.report_history(account.id, since=times[1], until=times[3])
    assert [h.computed_at for h in window] == [times[2], times[1]], "since inclusive, until exclusive"
    assert [h.computed_at for h in store.report_history(account.id, limit=2)] == [times[4], times[3]]
    assert store.report_history("nobody") == []
    with pytest.raises(ValueError, match="limit"):
        store.report_history(account.id, limit=0)


def test_an_error_mid_refresh_writes_nothing(store: Store, account: WatchedAccount) -> None:
    before = demo_refresh(T0)
    store.save_refresh(account.id, *before, computed_at=T0)
    counts = row_counts(store)

    def fail_after_position_insert(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if statement.startswith("INSERT INTO position_snapshots"):
            raise RuntimeError("the refresh dies after its first rows were written")

    event.listen(store.engine, "after_cursor_execute", fail_after_position_insert)
    try:
        with pytest.raises(RuntimeError, match="refresh dies"):
            store.save_refresh(account.id, *demo_refresh(T0 + timedelta(minutes=1), eth_spot=2500.0))
    finally:
        event.remove(store.engine, "after_cursor_execute", fail_after_position_insert)

    assert row_counts(store) == counts, "the new market snapshot and position snapshot were rolled back"
    latest = store.latest_report(account.id)
    assert latest is not None and latest.report == before.report
    latest_market = store.latest_market_snapshot()
    assert latest_market is not None and latest_market.snapshot == before.market


def test_prune_keeps_each_accounts_latest_and_latest_complete(store: Store, account: WatchedAccount) -> None:
    store.add_account(WatchedAccount(id="quiet"))
    store.save_refresh("quiet", *demo_refresh(T0 - timedelta(days=30)), computed_at=T0 - timedelta(days=30))
    # demo: complete at day 0, 1, 2, then partial at day 3 and 4
    for day in range(5):
        at = T0 + timedelta(days=day)
        store.save_refresh(account.id, *demo_refresh(at, eth_spot=3000.0 + day, complete=day < 3), computed_at=at)

    counts = store.prune(older_than=T0 + timedelta(days=10))

    demo_history = [h.computed_at for h in store.report_history(account.id)]
    assert demo_history == [T0 + timedelta(days=4), T0 + timedelta(days=2)], "latest and latest complete"
    assert [h.computed_at for h in store.report_history("quiet")] == [T0 - timedelta(days=30)]
    assert (counts.reports, counts.position_snapshots, counts.market_snapshots) == (3, 3, 3)
    assert row_counts(store) == {"position_snapshots": 3, "market_snapshots": 3, "margin_reports": 3}
    latest_complete = store.latest_report(account.id, complete_only=True)
    assert latest_complete is not None and latest_complete.report.complete
    market = store.market_snapshot(latest_complete.market_snapshot_id)
    assert market is not None, "the market snapshot of a kept report is kept"

    assert store.prune(older_than=T0 + timedelta(days=10)) == PruneCounts(
        reports=0, position_snapshots=0, market_snapshots=0
    )


def test_prune_spares_recent_history_and_the_latest_market_snapshot(store: Store, account: WatchedAccount) -> None:
    for minute in range(3):
        at = T0 + timedelta(minutes=minute)
        store.save_refresh(account.id, *demo_refresh(at, eth_spot=3000.0 + minute), computed_at=at)
    newest_market = demo_refresh(T0 + timedelta(hours=1)).market
    store.save_market_snapshot(newest_market)

    counts = store.prune(older_than=T0 + timedelta(minutes=1))
    assert (counts.reports, counts.position_snapshots, counts.market_snapshots) == (1, 1, 1)
    assert len(store.report_history(account.id)) == 2
    assert store.prune(older_than=T0 + timedelta(days=1)).market_snapshots == 1, "only the one of the pruned report"
    latest_market = store.latest_market_snapshot()
    assert latest_market is not None and latest_market.snapshot == newest_market


def test_deleting_an_account_deletes_its_history(store: Store, account: WatchedAccount) -> None:
    store.save_refresh(account.id, *demo_refresh(T0))
    assert store.delete_account(account.id)
    assert row_counts(store) == {"position_snapshots": 0, "market_snapshots": 1, "margin_reports": 0}
    assert store.prune(older_than=T0 + timedelta(days=1)).market_snapshots == 0, "the latest market stays"


async def test_async_store_round_trip(store: Store) -> None:
    async_store = AsyncStore(store)
    await async_store.migrate()
    account = await async_store.add_account(WatchedAccount(id="async-1"))
    refresh = demo_refresh(T0)
    ids = await async_store.save_refresh(account.id, *refresh, computed_at=T0)
    latest = await async_store.latest_report(account.id)
    assert latest is not None and latest.id == ids.report_id and latest.report == refresh.report
    assert [h.id for h in await async_store.report_history(account.id)] == [ids.report_id]


def test_the_demo_seeds_its_account_afresh(store: Store, account: WatchedAccount) -> None:
    """Each demo run replays the recorded day from its start: an earlier run's reports must not stay beside the
    new run's on the same clock, and the devnet's (possibly new) addresses replace the stored ones."""
    from api.demo import seed_demo_account  # noqa: PLC0415 - the demo's own seeding, on this backend

    refresh = demo_refresh(T0)
    store.save_refresh(account.id, refresh.positions, refresh.market, refresh.report, computed_at=T0)
    assert len(store.report_history(account.id)) == 1
    moved = account.model_copy(update={"addresses": {"ethereum": ["0x" + "ab" * 20]}})
    seed_demo_account(store, moved)
    assert store.report_history(account.id) == []
    assert store.get_account(account.id) == moved
