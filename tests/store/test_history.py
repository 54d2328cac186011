"""The aggregator's account history and stored reports over the real store, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import aiohttp
import pytest
from store.helpers import demo_refresh

from aggregator.service import AggregatorService
from aggregator.settings import ServiceSettings
from aggregator.store import AsyncStore, Store, WatchedAccount

START = datetime(2026, 1, 5, 8, tzinfo=UTC)


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client_session:
        yield client_session


def service_on(store: Store | None, session: aiohttp.ClientSession) -> AggregatorService:
    return AggregatorService(
        settings=ServiceSettings(), session=session, clients=[], store=AsyncStore(store) if store else None
    )


def save(store: Store, account_id: str, computed_at: datetime, eth_spot: float = 3000.0) -> int:
    refresh = demo_refresh(computed_at, eth_spot=eth_spot)
    return store.save_refresh(
        account_id, refresh.positions, refresh.market, refresh.report, computed_at=computed_at
    ).report_id


async def test_pages_newest_first_and_never_split_an_instant(
    store: Store, account: WatchedAccount, session: aiohttp.ClientSession
) -> None:
    # 08:00, 09:00, 10:00 twice (a tie), 11:00: a page of two must not cut between the two 10:00 reports
    times = [START, START + timedelta(hours=1), START + timedelta(hours=2), START + timedelta(hours=2),
             START + timedelta(hours=3)]
    ids = [save(store, account.id, t, eth_spot=2900.0 + 50 * n) for n, t in enumerate(times)]
    service = service_on(store, session)

    first = await service.account_history(account.id, since=None, until=None, limit=2)
    assert [r.id for r in first.reports] == [ids[4]]  # the 10:00 pair goes whole to the next page
    assert (first.more, first.next_until) == (True, times[4])
    second = await service.account_history(account.id, since=None, until=first.next_until, limit=2)
    assert sorted(r.id for r in second.reports) == sorted(ids[2:4])
    assert (second.more, second.next_until) == (True, times[2])
    third = await service.account_history(account.id, since=None, until=second.next_until, limit=2)
    assert ([r.id for r in third.reports], third.more, third.next_until) == ([ids[1], ids[0]], False, None)

    # the figures are the stored report's
    newest = first.reports[0]
    stored = store.report(ids[4])
    assert stored is not None
    assert (newest.equity_usd, newest.maintenance_margin_usd, newest.initial_margin_usd, newest.status) == (
        stored.report.equity_usd, stored.report.maintenance_margin_usd, stored.report.initial_margin_usd,
        stored.report.status,
    )


async def test_since_inclusive_until_exclusive_across_offsets(
    store: Store, account: WatchedAccount, session: aiohttp.ClientSession
) -> None:
    ids = [save(store, account.id, START + timedelta(hours=n)) for n in range(3)]
    plus_one = timezone(timedelta(hours=1))
    since, until = datetime(2026, 1, 5, 10, tzinfo=plus_one), datetime(2026, 1, 5, 11, tzinfo=plus_one)
    page = await service_on(store, session).account_history(account.id, since=since, until=until, limit=100)
    assert [r.id for r in page.reports] == [ids[1]]  # 09:00 UTC in, 10:00 UTC out
    assert (page.since, page.until, page.more) == (since, until, False)


async def test_a_stored_report_only_of_its_own_account(
    store: Store, account: WatchedAccount, session: aiohttp.ClientSession
) -> None:
    other = store.add_account(WatchedAccount(id="other"))
    mine, theirs = save(store, account.id, START), save(store, other.id, START)
    service = service_on(store, session)
    served = await service.stored_report(account.id, mine)
    assert served == store.report(mine) and served is not None and served.account_id == account.id
    assert await service.stored_report(account.id, theirs) is None
    assert await service.stored_report(account.id, theirs + 1000) is None
    with pytest.raises(LookupError):
        await service.stored_report("nobody", mine)
    with pytest.raises(LookupError):
        await service.account_history("nobody", since=None, until=None, limit=10)


async def test_without_a_database_or_with_it_down_history_is_unavailable(
    store: Store, account: WatchedAccount, session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    storeless = service_on(None, session)
    storeless.watch(account)
    with pytest.raises(ConnectionError, match="report history needs the database: this service runs without one"):
        await storeless.account_history(account.id, since=None, until=None, limit=10)
    with pytest.raises(ConnectionError, match="this service runs without one"):
        await storeless.stored_report(account.id, 1)

    service = service_on(store, session)
    await service.watched_account(account.id)  # read once: the account is known while the database is away
    assert service.store is not None
    service.store = AsyncStore(Store.from_url(f"sqlite:///{tmp_path / 'gone' / 'metarisk.db'}", timeout_s=0.5))
    with pytest.raises(ConnectionError, match="^the history of account 'demo' cannot be read: database unavailable"):
        await service.account_history(account.id, since=None, until=None, limit=10)
    with pytest.raises(ConnectionError, match="^report 1 cannot be read: database unavailable"):
        await service.stored_report(account.id, 1)
