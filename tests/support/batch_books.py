"""Books for the batch tests: a market with SVI and point surfaces, and random mixed wallets over many venues
and chains (options of both settlements, perps, futures, spot, lend and borrow, LP ranges), shared by the
Position-object and the columnar batch tests."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

from risk_core.schema.holdings import HOLDINGS_ARROW_SCHEMA
from risk_core.schema.market import MarketSnapshot
from risk_core.schema.positions import Position, PositionAdapter

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


def batch_market() -> MarketSnapshot:
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




def random_wallet(rng: np.random.Generator, w: int) -> list[Position]:
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


def rows_of(wallets: list[list[Position]], labels: list[str]) -> list[dict[str, Any]]:
    """One row per position, the instrument's fields from the position's own dump (not the library's reader)."""
    out = []
    for label, wallet in zip(labels, wallets, strict=True):
        for p in wallet:
            fields = p.model_dump(exclude={"id", "provenance"})
            size = fields.pop("liquidity" if p.kind == "lp" else "quantity")
            out.append({name: None for name in HOLDINGS_ARROW_SCHEMA.names} | fields | {"wallet": label, "size": size})
    return out
