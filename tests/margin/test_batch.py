"""The batch path gives, for every wallet, the figures compute_margin gives for that wallet alone."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest

from risk_core.errors import InputError
from risk_core.margin.batch import BatchMarginResult, collect_holdings, compute_batch_margin
from risk_core.margin.engine import compute_margin
from risk_core.schema.market import MarketSnapshot
from risk_core.schema.params import RiskParams, default_params
from risk_core.schema.positions import Position, PositionAdapter

REL = 1e-9  # relative agreement asked of the batch path
ABS = 1e-6  # USD: where a figure is zero in one path, the other may carry rounding of that size

AS_OF = datetime(2026, 11, 25, tzinfo=UTC)
EXPIRIES = [AS_OF + timedelta(days=d, hours=8) for d in (2, 9, 30, 93)]
SPOT = {"BTC": 93_000.0, "ETH": 3_000.0, "SOL": 140.0, "USDC": 1.0, "UNI": 9.0}
SIZE = {"BTC": 1.0, "ETH": 10.0, "SOL": 200.0}
# (venue, chain) per kind: several venues share a chain, several chains are present
VENUES = {
    "option-inverse": [("deribit", "offchain")],
    "option-linear": [("derive", "derive"), ("aevo", "ethereum")],
    "perp": [("hyperliquid", "hyperliquid"), ("deribit", "offchain"), ("gmx", "arbitrum")],
    "future": [("deribit", "offchain"), ("okx", "offchain")],
    "spot": [("wallet", "ethereum"), ("wallet", "arbitrum"), ("deribit", "offchain")],
    "lend": [("aave-v3", "ethereum"), ("aave-v3", "arbitrum"), ("compound-v3", "ethereum")],
    "lp": [("uniswap-v3", "ethereum"), ("uniswap-v3", "arbitrum")],
}


def _market() -> MarketSnapshot:
    def svi(asset: str, atm: float) -> dict[str, Any]:
        slices = []
        for e in EXPIRIES:
            t = (e - AS_OF).total_seconds() / (365 * 86400)
            slices.append({"expiry": e, "a": atm**2 * t * 0.8, "b": 0.6 * atm * math.sqrt(t), "rho": -0.3, "m": 0.02,
                           "sigma": 0.2})
        return {"svi": slices}

    eth_points = [
        {"expiry": e, "strike": k, "iv": iv}
        for e in EXPIRIES[1:]
        for k, iv in ((2_200.0, 0.85), (3_000.0, 0.66), (3_900.0, 0.72))
    ]
    return MarketSnapshot.model_validate({
        "as_of": AS_OF,
        "spot": SPOT,
        "forwards": {
            "BTC": {e: 93_000.0 * math.exp(0.06 * (e - AS_OF).days / 365) for e in EXPIRIES},
            "ETH": {EXPIRIES[2]: 3_020.0, EXPIRIES[3]: 3_060.0},
        },
        "vol": {"BTC": svi("BTC", 0.5), "ETH": {"points": eth_points}, "SOL": svi("SOL", 0.85)},
        "dispersion": {"SOL": 0.01},  # widens SOL's scan range
    })


MARKET = _market()


def _wallet(rng: np.random.Generator, w: int) -> list[Position]:
    """A mixed wallet: options of both settlements, perps, futures, spot, lend and borrow, LP ranges (one- and
    two-risky-asset pools, some short), on several venues and chains, some instruments held twice."""
    account = f"0x{w:04x}"
    raw: list[dict[str, Any]] = []

    def place(kind: str) -> dict[str, Any]:
        venue, chain = VENUES[kind][int(rng.integers(len(VENUES[kind])))]
        # a second account on the same venue now and then
        return {"venue": venue, "chain": chain, "account": account if rng.random() < 0.8 else account + "-2"}

    for _ in range(int(rng.integers(4, 14))):
        asset = ["BTC", "ETH", "SOL"][int(rng.integers(3))]
        expiry = EXPIRIES[int(rng.integers(len(EXPIRIES)))]
        settlement = "inverse" if asset != "SOL" and rng.random() < 0.5 else "linear"
        strike = round(SPOT[asset] * math.exp(rng.normal(0.0, 0.15)), -1 if asset == "SOL" else -2) or 10.0
        raw.append({
            "kind": "option", **place(f"option-{settlement}"), "underlying": asset,
            "quantity": round(rng.normal(0.0, 2.0) * SIZE[asset], 2) or 0.5,
            "option_type": "call" if rng.random() < 0.5 else "put", "strike": strike, "expiry": expiry,
            "settlement": settlement,
        })
    for _ in range(int(rng.integers(0, 4))):
        asset = ["BTC", "ETH", "SOL"][int(rng.integers(3))]
        perp: dict[str, Any] = {"kind": "perp", **place("perp"), "underlying": asset,
                                "quantity": round(rng.normal(0.0, 1.0) * SIZE[asset], 3) or 0.1}
        if rng.random() < 0.7:
            perp["entry_price"] = round(SPOT[asset] * math.exp(rng.normal(0.0, 0.05)), 2)
        raw.append(perp)
    for _ in range(int(rng.integers(0, 3))):
        asset = ["BTC", "ETH"][int(rng.integers(2))]
        future: dict[str, Any] = {"kind": "future", **place("future"), "underlying": asset,
                                  "quantity": round(rng.normal(0.0, 1.0) * SIZE[asset], 3) or 0.1,
                                  "expiry": EXPIRIES[int(rng.integers(1, len(EXPIRIES)))]}
        if rng.random() < 0.5:
            future["entry_price"] = round(SPOT[asset] * math.exp(rng.normal(0.0, 0.05)), 2)
        raw.append(future)
    for _ in range(int(rng.integers(1, 4))):
        asset = ["BTC", "ETH", "SOL", "USDC", "UNI", "PEPE"][int(rng.integers(6))]
        quantity = round(rng.lognormal(0.0, 0.5) * SIZE.get(asset, 20_000.0), 4)
        raw.append({"kind": "spot", **place("spot"), "asset": asset,
                    "quantity": -quantity if rng.random() < 0.15 else quantity})
    for kind, pool in (("lend", ["ETH", "BTC", "USDC", "SOL"]), ("borrow", ["USDC", "ETH"])):
        for _ in range(int(rng.integers(0, 3))):
            asset = pool[int(rng.integers(len(pool)))]
            scale = 0.3 if kind == "borrow" else 1.0
            raw.append({"kind": kind, **place("lend"), "asset": asset,
                        "quantity": round(rng.lognormal(0.0, 0.4) * scale * SIZE.get(asset, 20_000.0), 4)})
    for _ in range(int(rng.integers(0, 4))):
        token0, token1 = [("ETH", "USDC"), ("BTC", "USDC"), ("ETH", "BTC"), ("USDC", "USDT")][int(rng.integers(4))]
        price = SPOT[token0] / SPOT.get(token1, 1.0)
        lower, upper = price * 1.02 ** int(rng.integers(-6, 1)), price * 1.02 ** int(rng.integers(1, 7))
        liquidity = round(rng.lognormal(0.0, 0.5) * 3e4 / math.sqrt(price) / SPOT.get(token1, 1.0) * 10, 3)
        raw.append({"kind": "lp", **place("lp"), "token0": token0, "token1": token1,
                    "liquidity": -liquidity if rng.random() < 0.15 else liquidity,
                    "price_lower": lower, "price_upper": upper})
    raw.append({"kind": "spot", **place("spot"), "asset": "USDC", "quantity": round(rng.uniform(0, 3e5), 2)})
    # the same instrument twice: once more in the same place, once elsewhere
    for extra in rng.choice(len(raw), size=2, replace=False):
        again = dict(raw[int(extra)])
        if rng.random() < 0.5:
            again.update(place(str(again["kind"]) if again["kind"] in VENUES else "spot"))
        raw.append(again)
    rng.shuffle(raw)  # type: ignore[arg-type]
    return [PositionAdapter.validate_python(p) for p in raw]


WALLETS = [_wallet(np.random.default_rng(1000 + w), w) for w in range(20)]

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
