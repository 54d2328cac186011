"""Driver errors as the store's own (issue 12): a value the database refuses is the caller's error, never a 500,
and an unreachable database is StoreUnavailable whose text names no host, port or server message."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from aggregator.service import AggregatorService
from aggregator.settings import ServiceSettings
from aggregator.store import AsyncStore, Store, StoreInputRefused, StoreUnavailable, WatchedAccount
from risk_core.errors import InputError

NUL_ID = "demo\x00"


def test_a_nul_in_a_text_is_refused_as_input_on_postgresql(store: Store, account: WatchedAccount) -> None:
    if store.engine.dialect.name != "postgresql":
        assert store.get_account(NUL_ID) is None  # SQLite stores any text: simply no such account
        return
    for read in (lambda: store.get_account(NUL_ID), lambda: store.report_history(NUL_ID)):
        with pytest.raises(StoreInputRefused, match="NUL"):
            read()
    with pytest.raises(StoreInputRefused, match="out of range"):
        store.report(2**70)


async def test_the_service_answers_a_refused_value_as_the_callers_error(store: Store, account: WatchedAccount) -> None:
    never_used: Any = None
    service = AggregatorService(settings=ServiceSettings(), session=never_used, clients=[], store=AsyncStore(store))
    postgresql = store.engine.dialect.name == "postgresql"
    with pytest.raises(InputError if postgresql else LookupError) as refused:
        await service.account_risk(NUL_ID)
    with pytest.raises(InputError if postgresql else LookupError):
        await service.account_history(NUL_ID, since=None, until=None, limit=10)
    if postgresql:
        assert isinstance(refused.value, InputError) and refused.value.field == "account_id"


def test_an_unreachable_database_names_no_host_or_port(caplog: pytest.LogCaptureFixture) -> None:
    unreachable = Store.from_url("postgresql+psycopg://postgres@127.0.0.1:1/test", timeout_s=2)
    try:
        with caplog.at_level(logging.WARNING), pytest.raises(StoreUnavailable) as down:
            unreachable.get_account("demo")
    finally:
        unreachable.close()
    assert str(down.value) == "database unavailable"
    assert "port 1" in caplog.text  # the operator's log keeps the driver's words
