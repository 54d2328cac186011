"""`metarisk population store`: the watched accounts' last stored positions as a population (SQLite and
PostgreSQL), valued at the store's last market; an older refresh and a never-refreshed account are not in it."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from store.helpers import demo_refresh

from aggregator.store import Store, WatchedAccount
from api.cli import main


def test_watched_accounts_last_positions(store: Store, database_url: str, tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    store.add_account(WatchedAccount(id="demo"))
    store.add_account(WatchedAccount(id="never-refreshed"))
    older = demo_refresh(datetime(2026, 11, 24, tzinfo=UTC), eth_spot=2_500.0)
    latest = demo_refresh(datetime(2026, 11, 25, tzinfo=UTC), eth_spot=3_000.0)
    for refresh in (older, latest):
        store.save_refresh("demo", refresh.positions, refresh.market, refresh.report)

    out = tmp_path / "pop.parquet"
    assert main(["population", "store", "--database", database_url, "--out", str(out)]) == 0
    rows = [tuple(r.values()) for r in pq.read_table(out).to_pylist()]
    # examples/demo_request.json's positions at the last market (ETH 3,000): the Aave loan, the Hyperliquid short,
    # the ETH/USDC range 2,700-3,300 with L = 1,500 (whitepaper 6.29-6.30); options and wallet tokens left out.
    lp_eth = 1_500 * (1 / math.sqrt(3_000) - 1 / math.sqrt(3_300))
    lp_usdc = 1_500 * (math.sqrt(3_000) - math.sqrt(2_700))
    expected = [
        (0, "aave-v3", 0, "USDC", "borrow", 12_000.0, None),
        (0, "aave-v3", 0, "ETH", "supply", 10.0, None),
        (0, "hyperliquid", 0, "ETH", "perp", -5.0, 3_100.0),
        (0, "uniswap-v3", 0, "ETH", "lp", lp_eth, None),
        (0, "uniswap-v3", 0, "USDC", "lp", lp_usdc, None),
    ]
    assert [r[:5] for r in rows] == [e[:5] for e in expected]
    assert [r[5] for r in rows] == pytest.approx([e[5] for e in expected], rel=1e-12)
    assert [r[6] for r in rows] == [e[6] for e in expected]
    assert pq.read_table(tmp_path / "pop.wallets.parquet").to_pylist() == [{"wallet": 0, "address": "demo"}]
    printed = capsys.readouterr().out
    assert "1 wallets, 5 rows" in printed
    assert "option@deribit x2" in printed and "spot@wallet x1" in printed and "spot@deribit x1" in printed


def test_an_unreachable_database_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = "postgresql+psycopg://nobody@127.0.0.1:1/none?connect_timeout=1"
    with pytest.raises(SystemExit) as exit_info:
        main(["population", "store", "--database", url, "--out", str(tmp_path / "pop.parquet")])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.startswith("error: --database: ")
