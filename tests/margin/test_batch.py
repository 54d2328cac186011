"""The batch path gives, for every wallet, the figures compute_margin gives for that wallet alone."""

from __future__ import annotations

import numpy as np
import pytest
from support.batch_books import batch_market, random_wallet

from risk_core.errors import InputError
from risk_core.margin.batch import BatchMarginResult, collect_holdings, compute_batch_margin
from risk_core.margin.engine import compute_margin
from risk_core.schema.params import RiskParams, default_params
from risk_core.schema.positions import Position, PositionAdapter

REL = 1e-9  # relative agreement asked of the batch path
ABS = 1e-6  # USD: where a figure is zero in one path, the other may carry rounding of that size

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
    expected = {
        "equity_usd": report.equity_usd,
        "collateral_usd": report.collateral_usd,
        "risk_usd": report.risk_usd,
        "contingency_usd": report.contingency_usd,
        "maintenance_margin_usd": report.maintenance_margin_usd,
        "initial_margin_usd": report.initial_margin_usd,
    }
    for name, value in expected.items():
        got = float(getattr(batch, name)[w])
        assert got == pytest.approx(value, rel=REL, abs=ABS), f"wallet {w} {name}"


@pytest.mark.parametrize("params_name", list(PARAM_SETS))
def test_batch_matches_compute_margin_wallet_by_wallet(params_name: str) -> None:
    params = PARAM_SETS[params_name]
    batch = compute_batch_margin(WALLETS, MARKET, params)
    assert batch.maintenance_margin_usd.shape == (len(WALLETS),)
    assert batch.n_positions == sum(len(w) for w in WALLETS)
    assert batch.n_instruments < batch.n_positions  # duplicates were merged
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


def test_wallet_order_and_company_do_not_change_a_wallet() -> None:
    params = default_params()
    alone = compute_batch_margin([WALLETS[3]], MARKET, params)
    together = compute_batch_margin([[], *WALLETS[::-1]], MARKET, params)
    w = len(WALLETS) - 3
    for name in ("equity_usd", "collateral_usd", "maintenance_margin_usd"):
        assert float(getattr(together, name)[w]) == pytest.approx(float(getattr(alone, name)[0]), rel=REL)
    assert float(together.maintenance_margin_usd[0]) == 0.0 and float(together.equity_usd[0]) == 0.0


def test_instruments_are_shared_and_entry_price_is_not_part_of_one() -> None:
    base = {"venue": "hyperliquid", "chain": "hyperliquid", "underlying": "ETH", "kind": "perp"}
    wallets = [
        [PositionAdapter.validate_python({**base, "account": "a", "quantity": 2.0, "entry_price": 2900.0})],
        [PositionAdapter.validate_python({**base, "account": "b", "quantity": -1.0, "entry_price": 3100.0}),
         PositionAdapter.validate_python({**base, "account": "b", "quantity": 3.0})],
    ]
    holdings = collect_holdings(wallets)
    assert len(holdings.instruments) == 1
    assert holdings.instruments[0].quantity == 1.0  # type: ignore[union-attr]
    batch = compute_batch_margin(wallets, MARKET, default_params())
    for w, wallet in enumerate(wallets):
        _assert_matches(batch, w, wallet, default_params())


def test_an_unpriceable_position_is_named_by_wallet_and_index() -> None:
    bad = PositionAdapter.validate_python({"kind": "perp", "venue": "gmx", "chain": "arbitrum", "account": "x",
                                           "underlying": "DOGE", "quantity": 1.0})
    with pytest.raises(InputError) as caught:
        compute_batch_margin([WALLETS[0], [*WALLETS[1][:3], bad]], MARKET, default_params())
    assert caught.value.field == "wallets[1][3].underlying"


def test_warnings_name_a_holding_position() -> None:
    batch = compute_batch_margin(WALLETS, MARKET, default_params())
    assert any("PEPE" in message for message in batch.warnings)
    assert not any("positions[" in message for message in batch.warnings)


def test_ten_thousand_wallets_run() -> None:
    rng = np.random.default_rng(5)
    pool = [p for wallet in WALLETS for p in wallet]
    wallets = [[pool[int(i)] for i in rng.choice(len(pool), size=int(rng.integers(5, 30)))] for _ in range(10_000)]
    params = default_params()
    batch = compute_batch_margin(wallets, MARKET, params)
    assert batch.maintenance_margin_usd.shape == (10_000,)
    assert np.all(np.isfinite(batch.maintenance_margin_usd)) and np.all(batch.maintenance_margin_usd >= 0)
    assert batch.n_instruments <= len(pool)
    for w in (0, 4_321, 9_999):
        _assert_matches(batch, w, wallets[w], params)
