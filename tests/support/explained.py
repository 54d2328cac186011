"""The demo request (examples/demo_request.json) with Hyperliquid's own view of its venue-account: a report that
carries both the offset decomposition and a venue's own maintenance margin beside the universal one."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from risk_core.schema.request import MarginRequest

DEMO_REQUEST = Path(__file__).resolve().parents[2] / "examples" / "demo_request.json"
ETH_MAX_LEVERAGE = 25  # Hyperliquid's ETH listing


def hyperliquid_maintenance_margin(positions: list[dict[str, Any]], eth: float) -> float:
    """Hyperliquid's own cross maintenance margin of the ETH perps: notional / (2 x max leverage)."""
    return sum(abs(p["quantity"]) * eth / (2 * ETH_MAX_LEVERAGE) for p in positions)


def explained_request() -> MarginRequest:
    document = json.loads(DEMO_REQUEST.read_text())
    perps = [p for p in document["positions"] if p["venue"] == "hyperliquid"]
    assert {p["underlying"] for p in perps} == {"ETH"}
    eth = document["market"]["spot"]["ETH"]
    account = perps[0]["account"]
    document["venue_states"] = [{
        "venue": "hyperliquid", "chain": "hyperliquid", "account": account, "method": "hyperliquid-cross-margin",
        "parameters": {"max_leverage": {"ETH": ETH_MAX_LEVERAGE}},
        "reported": {"maintenance_margin_usd": hyperliquid_maintenance_margin(perps, eth),
                     "account_value_usd": sum(p["quantity"] * (eth - p["entry_price"]) for p in perps)},
    }]
    return MarginRequest.model_validate(document)
