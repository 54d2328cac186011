"""The batch path gives, for every wallet, the figures compute_margin gives for that wallet alone: on one
instrument table, in blocks, with unpriceable positions left out and named per wallet."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.batch_books import batch_market, random_wallet

from risk_core.margin import batch as batch_module
from risk_core.margin import risk_arrays
from risk_core.margin.batch import BatchMarginResult, compute_batch_margin
from risk_core.margin.context import pricing_context
from risk_core.margin.engine import compute_margin
from risk_core.schema.params import RiskParams, default_params
from risk_core.schema.positions import Position, PositionAdapter

REL = 1e-9  # relative agreement asked of the batch path
ABS = 1e-6  # USD: where a figure is zero in one path, the other may carry rounding of that size
FIGURES = ("equity_usd", "collateral_usd", "risk_usd", "contingency_usd", "maintenance_margin_usd",
           "initial_margin_usd")

MARKET = batch_market()
WALLETS = [random_wallet(np.random.default_rng(1000 + w), w) for w in range(20)]

PARAM_SETS = {
    "default": default_params(),
    "overridden": default_params().with_overrides({
        "offset_credit": {"cross_venue": 0.8, "cross_chain": 0.1},
        "cross_underlying_credit": {"BTC-ETH": 0.4, "ETH-SOL": 0.2},
        "im_factor": 1.5,
        "scenarios": {"ETH": {"spot_shocks": [-0.2, -0.1, 0.05, 0.1, 0.2], "skew_enabled": False},
                      "BTC": {"extreme_shocks": []}},
    }),
    "no-contingencies": default_params().with_overrides({"contingencies_enabled": False}),
}


def _assert_matches(batch: BatchMarginResult, w: int, wallet: list[Position], params: RiskParams) -> None:
    report = compute_margin(wallet, MARKET, params)
    for name in FIGURES:
        got = float(getattr(batch, name)[w])
        assert got == pytest.approx(getattr(report, name), rel=REL, abs=ABS), f"wallet {w} {name}"
    assert bool(batch.complete[w]) == report.complete
    assert int(batch.left_out[w]) == sum(not p.priced for p in report.positions)
    own = [issue for at, issue in batch.issues if at == w]
    assert [(i.path, i.code, i.severity) for i in own] == [(i.field, i.code, i.severity) for i in report.issues]


@pytest.mark.parametrize("params_name", list(PARAM_SETS))
def test_batch_matches_compute_margin_wallet_by_wallet(params_name: str) -> None:
    params = PARAM_SETS[params_name]
    context = pricing_context(MARKET, params)
    batch = compute_batch_margin(WALLETS, MARKET, params, context=context)
    assert batch.maintenance_margin_usd.shape == (len(WALLETS),)
    assert context.instruments.size < sum(len(w) for w in WALLETS)  # duplicates were merged
    for w, wallet in enumerate(WALLETS):
        _assert_matches(batch, w, wallet, params)


def test_random_wallets_cover_the_cases_they_claim() -> None:
    positions = [p for wallet in WALLETS for p in wallet]
    kinds = {p.kind for p in positions}
    assert kinds == {"option", "perp", "future", "spot", "lend", "borrow", "lp"}
    assert {getattr(p, "settlement", None) for p in positions} >= {"inverse", "linear"}
    assert len({p.venue for p in positions}) >= 8 and len({p.chain for p in positions}) >= 5
    assert any(p.kind == "lp" and p.liquidity < 0 for p in positions)
    assert any(p.kind == "lp" and p.token1 == "BTC" for p in positions)
    assert any(p.kind == "spot" and p.quantity < 0 for p in positions)
    assert all(compute_margin(w, MARKET, PARAM_SETS["default"]).contingency_usd > 0 for w in WALLETS[:5])


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 2**32 - 1), st.integers(1, 6), st.sampled_from(list(PARAM_SETS)))
def test_single_cached_and_batch_paths_agree_on_random_books(seed: int, n_wallets: int, params_name: str) -> None:
    """compute_margin on a fresh context (single), on one context kept across the books (cached), and the batch
    path over all of them: the same figures to 1e-9."""
    params = PARAM_SETS[params_name]
    rng = np.random.default_rng(seed)
    wallets = [random_wallet(rng, w) for w in range(n_wallets)]
    kept = pricing_context(MARKET, params)
    batch = compute_batch_margin(wallets, MARKET, params)
    for w, wallet in enumerate(wallets):
        single = compute_margin(wallet, MARKET, params)
        cached = compute_margin(wallet, MARKET, params, context=kept)
        for name in FIGURES:
            want = getattr(single, name)
            assert getattr(cached, name) == pytest.approx(want, rel=REL, abs=ABS), name
            assert float(getattr(batch, name)[w]) == pytest.approx(want, rel=REL, abs=ABS), name


def test_wallet_order_company_and_blocks_do_not_change_a_wallet(monkeypatch: pytest.MonkeyPatch) -> None:
    params = default_params()
    alone = compute_batch_margin([WALLETS[3]], MARKET, params)
    together = compute_batch_margin([[], *WALLETS[::-1]], MARKET, params)
    monkeypatch.setattr(batch_module, "BLOCK_POSITIONS", 40)  # a block every few wallets
    in_blocks = compute_batch_margin([[], *WALLETS[::-1]], MARKET, params)
    w = len(WALLETS) - 3
    for name in FIGURES:
        assert float(getattr(together, name)[w]) == pytest.approx(float(getattr(alone, name)[0]), rel=REL)
        assert np.allclose(getattr(in_blocks, name), getattr(together, name), rtol=REL, atol=ABS)
    assert in_blocks.issues == together.issues
    assert float(together.maintenance_margin_usd[0]) == 0.0 and float(together.equity_usd[0]) == 0.0


def test_instruments_are_shared_and_entry_price_is_not_part_of_one() -> None:
    base = {"venue": "hyperliquid", "chain": "hyperliquid", "underlying": "ETH", "kind": "perp"}
    wallets = [
        [PositionAdapter.validate_python({**base, "account": "a", "quantity": 2.0, "entry_price": 2900.0})],
        [PositionAdapter.validate_python({**base, "account": "b", "quantity": -1.0, "entry_price": 3100.0}),
         PositionAdapter.validate_python({**base, "account": "b", "quantity": 3.0})],
    ]
    context = pricing_context(MARKET, default_params())
    batch = compute_batch_margin(wallets, MARKET, default_params(), context=context)
    assert context.instruments.size == 1
    for w, wallet in enumerate(wallets):
        _assert_matches(batch, w, wallet, default_params())
    assert float(batch.equity_usd[1]) == pytest.approx(-1.0 * (3_000.0 - 3_100.0), rel=1e-12)


def test_an_unpriceable_position_is_left_out_and_named_by_wallet_and_index() -> None:
    bad = PositionAdapter.validate_python({"kind": "perp", "venue": "gmx", "chain": "arbitrum", "account": "x",
                                           "underlying": "DOGE", "quantity": 1.0})
    wallets = [WALLETS[0], [*WALLETS[1][:3], bad]]
    batch = compute_batch_margin(wallets, MARKET, default_params())
    errors = [(w, i.path, i.code) for w, i in batch.issues if i.severity == "error"]
    assert errors == [(1, "positions[3].underlying", "no_price")]
    assert int(batch.left_out[1]) == 1 and not batch.complete[1]
    for w, wallet in enumerate(wallets):
        _assert_matches(batch, w, wallet, default_params())
    # the wallet's figures are those of its other positions
    rest = compute_batch_margin([WALLETS[1][:3]], MARKET, default_params())
    assert float(batch.maintenance_margin_usd[1]) == pytest.approx(float(rest.maintenance_margin_usd[0]), rel=REL)


def test_ten_thousand_wallets_run() -> None:
    rng = np.random.default_rng(5)
    pool = [p for wallet in WALLETS for p in wallet]
    wallets = [[pool[int(i)] for i in rng.choice(len(pool), size=int(rng.integers(5, 30)))] for _ in range(10_000)]
    params = default_params()
    context = pricing_context(MARKET, params)
    batch = compute_batch_margin(wallets, MARKET, params, context=context)
    assert batch.maintenance_margin_usd.shape == (10_000,)
    assert np.all(np.isfinite(batch.maintenance_margin_usd)) and np.all(batch.maintenance_margin_usd >= 0)
    assert context.instruments.size <= len(pool)
    for w in (0, 4_321, 9_999):
        _assert_matches(batch, w, wallets[w], params)


def test_large_blocks_sum_by_sparse_products_to_the_same_figures(monkeypatch: pytest.MonkeyPatch) -> None:
    """A block of many positions sums venue-accounts, chains and wallets by sparse products, a few positions by
    gathers and runs (risk_core.margin.risk_arrays._SPARSE_FROM): the figures agree."""
    params = default_params()
    dense = compute_batch_margin(WALLETS, MARKET, params)
    monkeypatch.setattr(risk_arrays, "_SPARSE_FROM", 1)
    in_sparse = compute_batch_margin(WALLETS, MARKET, params)
    for name in FIGURES:
        assert np.allclose(getattr(in_sparse, name), getattr(dense, name), rtol=REL, atol=ABS), name
