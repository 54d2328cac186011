"""A local Hyperliquid info API (POST /info): metaAndAssetCtxs, perpDexs, clearinghouseState (main dex and every
HIP-3 dex, by `dex`), spotClearinghouseState. Numbers are decimal strings, as on the venue.

The account is shaped like the recorded 2023 response in reference_data/interfaces/hyperliquid (its keys, plus the newer
fields its note lists), with sizes and prices moved to the scenario's market. Every answer is validated before it
is sent.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from venue_servers.faults import Faults, rename_key
from venue_servers.scenario import MarketScenario
from venue_servers.spec import validate_hyperliquid_response, validate_once

RENAMED = ("szi", "size")
USER = "0x5e9ee1089755c3435139848e47e6635505d5a13a"  # the recorded cassette's user
HIP3_DEX = "xyz"
# name, szDecimals, maxLeverage (HYPE as listed on the venue: the spot HYPE the demo account holds is priced by
# the oracle of its perp)
MAIN_UNIVERSE = (("BTC", 5, 40), ("ETH", 4, 25), ("SOL", 2, 20), ("HYPE", 2, 10))
HIP3_UNIVERSE = (("xyz:GOLD", 4, 10),)


def dec(x: float, places: int = 6) -> str:
    text = f"{x:.{places}f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


@dataclass(frozen=True)
class HyperliquidPosition:
    coin: str
    szi: float
    entry: float
    leverage: int
    isolated: bool = False


@dataclass
class HyperliquidFixture:
    scenario: MarketScenario
    gold: float = 2650.0  # the HIP-3 dex's only asset (a stated fixture level)
    hype: float = 25.0  # a stated fixture level too: reference_data/market records no HYPE price
    user: str = USER
    usdc: float = 25_000.0

    def level(self, coin: str, venue: str) -> float:
        if coin == "HYPE":
            return self.hype * (1.0 + self.scenario.offsets.get(venue, 0.0))
        return self.scenario.price(venue, coin)

    def mark(self, coin: str) -> float:
        if coin == "xyz:GOLD":
            return self.gold
        return self.level(coin, "hyperliquid-mark")

    def oracle(self, coin: str) -> float:
        if coin == "xyz:GOLD":
            return self.gold * 0.9999
        return self.level(coin, "hyperliquid-oracle")

    def positions(self, dex: str) -> list[HyperliquidPosition]:
        s = self.scenario.spot
        if dex == HIP3_DEX:
            return [HyperliquidPosition("xyz:GOLD", 3.0, self.gold * 0.98, 10, isolated=True)]
        return [
            HyperliquidPosition("BTC", -0.25, s["BTC"] * 1.02, 20),
            HyperliquidPosition("ETH", 4.0, s["ETH"] * 0.97, 20),
            HyperliquidPosition("SOL", -150.0, s["SOL"] * 1.01, 10),
        ]

    def universe(self, dex: str) -> tuple[tuple[str, int, int], ...]:
        return HIP3_UNIVERSE if dex == HIP3_DEX else MAIN_UNIVERSE

    def clearinghouse_state(self, dex: str, time_ms: int) -> dict[str, Any]:
        max_lev = {name: lev for name, _, lev in self.universe(dex)}
        items = []
        ntl = upnl = used = mm = 0.0
        for p in self.positions(dex):
            mark = self.mark(p.coin)
            liq = None if p.szi > 0 and p.coin == "ETH" else dec(p.entry * (1 - 0.9 / p.leverage * (1 if p.szi > 0
                                                                                               else -1)), 2)
            value = abs(p.szi) * mark
            pnl = p.szi * (mark - p.entry)
            margin = value / p.leverage
            ntl, upnl, used, mm = ntl + value, upnl + pnl, used + margin, mm + value / (2 * max_lev[p.coin])
            leverage: dict[str, Any] = {"type": "isolated" if p.isolated else "cross", "value": p.leverage}
            if p.isolated:
                leverage["rawUsd"] = dec(margin - p.szi * p.entry)
            items.append({"type": "oneWay", "position": {
                "coin": p.coin, "szi": dec(p.szi, 5), "leverage": leverage, "entryPx": dec(p.entry, 2),
                "positionValue": dec(value), "unrealizedPnl": dec(pnl), "returnOnEquity": dec(pnl / margin, 8),
                "liquidationPx": liq,
                "marginUsed": dec(margin), "maxTradeSzs": [dec(10.0, 5), dec(10.0, 5)],
                "maxLeverage": max_lev[p.coin],
                "cumFunding": {"allTime": dec(-12.5), "sinceOpen": dec(-3.25), "sinceChange": dec(-1.0)},
            }})
        balance = self.usdc if dex == "" else 5_000.0
        value = balance + upnl
        summary = {"accountValue": dec(value), "totalNtlPos": dec(ntl), "totalRawUsd": dec(balance),
                   "totalMarginUsed": dec(used)}
        return {"assetPositions": items, "crossMarginSummary": summary, "marginSummary": summary,
                "crossMaintenanceMarginUsed": dec(mm), "withdrawable": dec(max(value - used, 0.0)), "time": time_ms}

    def meta_and_asset_ctxs(self, dex: str) -> list[Any]:
        universe = [{"name": n, "szDecimals": sz, "maxLeverage": lev, "marginTableId": lev}
                    for n, sz, lev in self.universe(dex)]
        ctxs = []
        for n, _, _ in self.universe(dex):
            mark, oracle = self.mark(n), self.oracle(n)
            ctxs.append({
                "prevDayPx": dec(oracle * 0.99, 4), "dayNtlVlm": dec(1.0e9, 2), "markPx": dec(mark, 4),
                "midPx": dec(mark, 4), "funding": dec(1.25e-5, 8), "openInterest": dec(1.0e4, 4),
                "premium": dec(mark / oracle - 1, 8), "oraclePx": dec(oracle, 4),
                "impactPxs": [dec(mark * 0.9999, 4), dec(mark * 1.0001, 4)], "dayBaseVlm": dec(1.0e4, 4),
            })
        return [{"universe": universe, "marginTables": [], "collateralToken": 0}, ctxs]

    def spot_state(self) -> dict[str, Any]:
        return {"balances": [
            {"coin": "USDC", "token": 0, "total": dec(1_250.5), "hold": "0", "entryNtl": "0"},
            {"coin": "HYPE", "token": 150, "total": dec(42.0), "hold": "0", "entryNtl": dec(42.0 * 24.1)},
        ]}

    def perp_dexs(self) -> list[Any]:
        return [None, {
            "name": HIP3_DEX, "fullName": "XYZ", "deployer": "0x88806a71d74ad0a510b350545c9ae490912f0888",
            "oracleUpdater": None, "feeRecipient": None, "assetToStreamingOiCap": [["xyz:GOLD", "100000000.0"]],
            "subDeployers": [], "deployerFeeScale": "1.0", "lastDeployerFeeScaleChangeTime": "1970-01-01T00:00:00",
            "assetToFundingMultiplier": [],
        }]


def empty_clearinghouse_state(time_ms: int) -> dict[str, Any]:
    summary = {"accountValue": "0.0", "totalNtlPos": "0.0", "totalRawUsd": "0.0", "totalMarginUsed": "0.0"}
    return {"assetPositions": [], "crossMarginSummary": summary, "marginSummary": summary,
            "crossMaintenanceMarginUsed": "0.0", "withdrawable": "0.0", "time": time_ms}


def make_app(fixture: HyperliquidFixture, faults: Faults | None = None, *, validate: bool = True) -> web.Application:
    flt = faults or Faults()

    async def info(request: web.Request) -> web.Response:
        try:
            req = await request.json()
        except json.JSONDecodeError:
            return web.Response(status=422, text="Failed to deserialize the JSON body")
        kind = req.get("type")
        faulty = await flt.intercept(str(kind))
        if faulty is not None:
            return faulty
        time_ms = int(fixture.scenario.now().timestamp() * 1000)
        dex = req.get("dex", "")
        if dex not in ("", HIP3_DEX):
            return web.Response(status=422, text=f"unknown dex {dex}")
        # any other address is an account with nothing on the venue, answered as the venue does: zeros, no balances
        known_user = str(req.get("user", "")).lower() == fixture.user
        body: Any
        if kind == "metaAndAssetCtxs":
            body = fixture.meta_and_asset_ctxs(dex)
        elif kind == "perpDexs":
            body = fixture.perp_dexs()
        elif kind == "clearinghouseState":
            body = fixture.clearinghouse_state(dex, time_ms) if known_user else empty_clearinghouse_state(time_ms)
        elif kind == "spotClearinghouseState":
            body = fixture.spot_state() if known_user else {"balances": []}
        else:
            return web.Response(status=422, text=f"unknown info type {kind}")
        if validate:
            validate_once(f"hyperliquid {kind}", body, lambda b: validate_hyperliquid_response(str(kind), b))
        if flt.renames(str(kind)):
            body = rename_key(body, *RENAMED)
        return web.Response(text=json.dumps(body), content_type="application/json")

    app = web.Application()
    app.router.add_post("/info", info)
    return app
