"""Deeper pools and the cascade's rounds (docs/contagion.md, "Deeper pools and rounds").

"Deeper pools never give more rounds" is false for a cascade whose round liquidates every account under water at
the round's prices: a counterexample is below, every figure derived here. What holds, and is tested with
hypothesis on the class where its premises hold (liquidations that only sell, whole-account closes of long perps
on Hyperliquid and GMX, whose margin test is monotone in the price), is the statement proved in the docs: at every
round, the accounts liquidated so far under the deeper pool are a subset of those under the shallower one. So no
account is liquidated earlier, the final set is a subset, the final prices are no lower, a one-round cascade stays
one round, and the shallower cascade has done at least the deeper one's whole damage by the deeper one's last
round; the count of rounds itself is not monotone.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from research.contagion.accounts import AssetIndex, Partition, RoundInputs, RoundTotals, liquidate_round
from research.contagion.cascade import CascadeResult, run_cascade
from research.contagion.params import load_cascade_params
from research.contagion.population import POPULATION_SCHEMA

PRICES = {"BTC": 90_000.0, "ETH": 3_000.0, "USDC": 1.0}
ASSETS = AssetIndex(("BTC", "ETH", "USDC"))
TWO_PCT = 1 / math.sqrt(0.98) - 1


def table(rows: list[tuple[int, str, int, str, str, float, float | None]]) -> pa.Table:
    columns = list(zip(*rows, strict=True))
    return pa.table({name: list(values) for name, values in zip(POPULATION_SCHEMA.names, columns, strict=True)},
                    schema=POPULATION_SCHEMA)


@dataclass
class RecordingRunner:
    """The in-process runner, keeping which accounts were liquidated by the end of each round."""

    partition: Partition
    liquidated_by_round: list[np.ndarray] = field(default_factory=list)

    def run_round(self, inputs: RoundInputs) -> list[RoundTotals]:
        self.partition, totals = liquidate_round(self.partition, inputs)
        if totals.accounts_liquidated.sum():
            self.liquidated_by_round.append(self.partition.account_liquidated.copy())
        return [totals]


def single_band(depth_usd_2pct: dict[str, float]):
    return load_cascade_params({"depth": {a: {"depth_usd_2pct": d} for a, d in depth_usd_2pct.items()},
                                "depth_profile": {"bands": [[0.0, 1.0]]}})


def run(population: pa.Table, depth: dict[str, float], shock: dict[str, float]) -> tuple[CascadeResult, list]:
    runner = RecordingRunner(Partition.from_table(population, ASSETS))
    result = run_cascade(runner, ASSETS, PRICES, shock, single_band(depth), max_rounds=200)
    return result, runner.liquidated_by_round


def hyperliquid_long(wallet: int, size: float, liquidation_price: float) -> list:
    """A long ETH perp (entry 3,000) whose account is liquidated below `liquidation_price`: Hyperliquid's test
    cash + size (p - entry) < size p / (2 x 25) holds exactly when p < (size entry - cash) / (0.98 size)."""
    cash = 3_000.0 * size - 0.98 * size * liquidation_price
    return [(wallet, "hyperliquid", 0, "ETH", "perp", size, 3_000.0), (wallet, "hyperliquid", 0, "USDC", "cash", cash,
                                                                          None)]


def test_a_deeper_pool_can_take_more_rounds() -> None:
    """Four longs with lines at 2,450, 2,390, 2,380 and 2,370; ETH shocked to 2,400. Under the deep pool each sale
    pushes the price just past the next line: 4 rounds. Under a pool ten times shallower the first sale pushes it
    past every line at once: 2 rounds."""
    depth_deep = 1_000_000.0
    liquidity = depth_deep / (math.sqrt(3_000.0) * TWO_PCT)  # one band: L such that depth_usd_2pct moves 2%

    def sold_to(a: float, b: float) -> float:  # units that take the deep pool from a down to b
        return liquidity * (1 / math.sqrt(b) - 1 / math.sqrt(a))

    sizes = [sold_to(2_400, 2_385), sold_to(2_385, 2_375), sold_to(2_375, 2_365), 1.0]
    lines = [2_450.0, 2_390.0, 2_380.0, 2_370.0]
    population = table([row for i, (s, line) in enumerate(zip(sizes, lines, strict=True))
                        for row in hyperliquid_long(i, s, line)])
    deep, deep_rounds = run(population, {"ETH": depth_deep}, {"ETH": -0.2})
    shallow, shallow_rounds = run(population, {"ETH": depth_deep / 10}, {"ETH": -0.2})
    assert [r.accounts_liquidated["hyperliquid"] for r in deep.per_round] == [1, 1, 1, 1]
    assert [round(r.prices["ETH"]) for r in deep.per_round] == [2_400, 2_385, 2_375, 2_365]
    # the shallow pool: 1/sqrt(P) moves ten times as far for the first sale
    after_first = 1 / (1 / math.sqrt(2_400) + 10 * (1 / math.sqrt(2_385) - 1 / math.sqrt(2_400))) ** 2
    assert after_first < 2_370
    assert shallow.per_round[1].prices["ETH"] == pytest.approx(after_first, rel=1e-9)
    assert [r.accounts_liquidated["hyperliquid"] for r in shallow.per_round] == [1, 3]
    assert (deep.rounds, shallow.rounds) == (4, 2)
    # and yet no account went earlier under the deeper pool
    for r, liquidated in enumerate(deep_rounds):
        assert not (liquidated & ~shallow_rounds[min(r, len(shallow_rounds) - 1)]).any()


def test_with_aaves_close_factor_a_deeper_pool_can_liquidate_more() -> None:
    """Why the statement needs whole-account closes: Aave's close factor makes what an account sells depend on the
    path. A perp sells 200 ETH at 2,400. The pool 0.1% deeper leaves ETH a hair higher, where the Aave loan's health
    is just above 0.95: half its debt is repaid (the shallower pool's price, just below 0.95, closes all of it at
    once). The next round's lower price takes the rest, now with all the collateral, at a far lower price: the
    deeper cascade sold more in all, ends lower, and liquidates a third account the shallower one never does."""
    depth, factor, lt, bonus = 200_000.0, 1.001, 0.83, 0.05
    liquidity = depth / (math.sqrt(3_000.0) * TWO_PCT)

    def after(sold: float, deeper: bool) -> float:
        return 1 / (1 / math.sqrt(2_400.0) + sold / (liquidity * (factor if deeper else 1.0))) ** 2

    p1, p1_deep = after(200.0, False), after(200.0, True)
    collateral = 3_000.0
    debt = collateral * lt * (p1 + p1_deep) / 2 / 0.95  # health 0.95 between the two round-1 prices
    assert collateral * p1 * lt / debt < 0.95 <= collateral * p1_deep * lt / debt < 1 <= collateral * 2_400 * lt / debt
    shallow_sold = 200.0 + debt * (1 + bonus) / p1  # all the debt repaid at p1
    half = debt / 2 * (1 + bonus) / p1_deep  # half of it at p1_deep; healthy again there
    left = collateral - half
    assert left * p1_deep * lt / (debt / 2) >= 1
    p2_deep = after(200.0 + half, True)
    assert left * p2_deep * lt / (debt / 2) < 0.95  # round 2, deeper pool only: the rest, collateral short of it
    deep_sold = 200.0 + half + min(left, debt / 2 * (1 + bonus) / p2_deep)
    p_shallow, p_deep = after(shallow_sold, False), after(deep_sold, True)
    assert p_deep < p_shallow
    line = (p_deep + p_shallow) / 2  # a third account between the two end prices
    population = table([*hyperliquid_long(0, 200.0, 2_450.0),
                        (1, "aave-v3", 0, "ETH", "supply", collateral, None),
                        (1, "aave-v3", 0, "USDC", "borrow", debt, None),
                        *hyperliquid_long(2, 0.01, line)])
    shallow, _ = run(population, {"ETH": depth}, {"ETH": -0.2})
    deep, _ = run(population, {"ETH": depth * factor}, {"ETH": -0.2})
    assert shallow.final_prices["ETH"] == pytest.approx(p_shallow, rel=1e-9)
    assert deep.final_prices["ETH"] == pytest.approx(after(deep_sold + 0.01, True), rel=1e-9)
    assert [r.accounts_liquidated["hyperliquid"] for r in shallow.per_round] == [1, 0]
    assert [r.accounts_liquidated["hyperliquid"] for r in deep.per_round] == [1, 0, 0, 1]
    assert deep.accounts_liquidated > shallow.accounts_liquidated


long_perp = st.tuples(
    st.sampled_from(["hyperliquid", "gmx-v2"]),
    st.sampled_from(["ETH", "BTC"]),
    st.floats(min_value=0.5, max_value=50.0),  # size in units of 1,000 USD at entry
    st.floats(min_value=0.02, max_value=0.5),  # margin as a fraction of the notional at entry
    st.floats(min_value=0.7, max_value=1.1),  # entry / pre-shock price
)


@settings(max_examples=60, deadline=None)
@given(st.lists(long_perp, min_size=2, max_size=12), st.floats(min_value=0.05, max_value=0.4),
       st.floats(min_value=1e4, max_value=5e6), st.floats(min_value=1.0, max_value=100.0))
def test_deeper_pools_never_liquidate_an_account_earlier(
    accounts: list[tuple[str, str, float, float, float]], fall: float, depth: float, factor: float
) -> None:
    rows = []
    for wallet, (venue, asset, thousands, margin, entry_ratio) in enumerate(accounts):
        entry = PRICES[asset] * entry_ratio
        size = thousands * 1_000.0 / entry
        rows.append((wallet, venue, 0, asset, "perp", size, entry))
        rows.append((wallet, venue, 0, "USDC", "cash", margin * size * entry, None))
    population = table(rows)
    shock = {"ETH": -fall, "BTC": -fall}
    shallow, shallow_sets = run(population, {"ETH": depth, "BTC": 3 * depth}, shock)
    deep, deep_sets = run(population, {"ETH": depth * factor, "BTC": 3 * depth * factor}, shock)
    assert shallow.reached_fixed_point and deep.reached_fixed_point
    never = np.zeros(len(accounts), np.bool_)
    for r in range(max(len(deep_sets), len(shallow_sets))):
        mine = deep_sets[min(r, len(deep_sets) - 1)] if deep_sets else never
        theirs = shallow_sets[min(r, len(shallow_sets) - 1)] if shallow_sets else never
        assert not (mine & ~theirs).any(), f"round {r}: liquidated under the deeper pool only"
    # in the published outputs: accounts liquidated for the first time, summed up to each round, never more
    def by_round(result: CascadeResult, rounds: int) -> list[int]:
        firsts = [sum(r.accounts_first_liquidated.values()) for r in result.per_round]
        firsts += [0] * (rounds - len(firsts))
        return list(np.cumsum(firsts))

    horizon = max(deep.rounds, shallow.rounds)
    assert all(d <= s for d, s in zip(by_round(deep, horizon), by_round(shallow, horizon), strict=True))
    for asset in ("ETH", "BTC"):
        assert deep.final_prices[asset] >= shallow.final_prices[asset] * (1 - 1e-12)
    if shallow.rounds <= 1:
        assert deep.rounds == shallow.rounds
    if deep_sets:  # the shallower cascade has done all the deeper one's damage by the deeper one's last round
        final_deep = deep_sets[-1]
        by_then = shallow_sets[min(len(deep_sets), len(shallow_sets)) - 1]
        assert not (final_deep & ~by_then).any()
