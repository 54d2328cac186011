"""A local Pyth Hermes: GET /v2/updates/price/latest?ids[]=ID&... with parsed prices (expo -8), validated.

Prices are the scenario's; confidences use the real Pyth BTC sample's median confidence / price. Feed ids are
Pyth's real mainnet ids.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from venue_servers.faults import Faults, rename_key
from venue_servers.scenario import MarketScenario, pyth_confidence_ratio
from venue_servers.spec import validate_hermes_latest, validate_once

FEED_IDS = {
    "BTC": "e62df6c8b4a85fe1a67db44dc12de5db330f7ac66b72dc658afedf0f4a415b43",
    "ETH": "ff61491a931112ddf1bd8147cd1b641375f79f5825126d665480874634fd0ace",
    "SOL": "ef0d8b6fda2ceba41da15d4095d1da392a0d2f8ed0c6c7bc0f4cfac8c280b56d",
}
EXPO = -8
RENAMED = ("publish_time", "publishTime")


@dataclass
class PythFixture:
    scenario: MarketScenario
    lag_s: int = 1  # publish time before the scenario's moment
    overrides: dict[str, dict[str, int]] = field(default_factory=dict)  # asset -> raw fields to force

    def price_update(self, asset: str) -> dict[str, Any]:
        price = self.scenario.price("pyth", asset)
        conf = price * pyth_confidence_ratio()
        publish = int(self.scenario.now().timestamp()) - self.lag_s
        raw = {"price": round(price / 10**EXPO), "conf": round(conf / 10**EXPO), "expo": EXPO,
               "publish_time": publish}
        raw.update(self.overrides.get(asset, {}))
        p = {"price": str(raw["price"]), "conf": str(raw["conf"]), "expo": raw["expo"],
             "publish_time": raw["publish_time"]}
        return {"id": FEED_IDS[asset], "price": p, "ema_price": dict(p),
                "metadata": {"slot": 190_000_000, "proof_available_time": publish + 1,
                             "prev_publish_time": publish - 1}}


def make_app(fixture: PythFixture, faults: Faults | None = None, *, validate: bool = True) -> web.Application:
    flt = faults or Faults()
    by_id = {v: k for k, v in FEED_IDS.items()}

    async def latest(request: web.Request) -> web.Response:
        faulty = await flt.intercept("/v2/updates/price/latest")
        if faulty is not None:
            return faulty
        ids = [i.removeprefix("0x").lower() for i in request.query.getall("ids[]", [])]
        if not ids:
            return web.Response(status=400, text="Missing query parameter ids[]")
        unknown = [i for i in ids if i not in by_id]
        if unknown:
            return web.Response(status=404, text=f"Price ids not found: {', '.join(unknown)}")
        body: Any = {"binary": {"encoding": "hex", "data": ["504e4155" + "00" * 32]},
                     "parsed": [fixture.price_update(by_id[i]) for i in ids]}
        if validate:
            validate_once("hermes latest", body, validate_hermes_latest)
        if flt.renames("/v2/updates/price/latest"):
            body = rename_key(body, *RENAMED)
        return web.Response(text=json.dumps(body), content_type="application/json")

    app = web.Application()
    app.router.add_get("/v2/updates/price/latest", latest)
    return app
