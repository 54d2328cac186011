"""The report's offset decomposition: the risk at each netting level (everything, per chain, per venue-account)
and the credit each offset earned, checked against hand-worked figures and against the engine's own figures for
each level computed separately (the level's positions alone, with full credit inside it)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from margin.test_properties import a_position
from support.golden import ETH, market

from risk_core.margin.engine import compute_margin_request
from risk_core.schema.params import default_params
from risk_core.schema.report import MarginReport
from risk_core.schema.request import MarginRequest

HYPERLIQUID = {"venue": "hyperliquid", "chain": "hyperliquid", "account": "0xa"}
GMX = {"venue": "gmx-v2", "chain": "arbitrum", "account": "0xa"}
AAVE = {"venue": "aave-v3", "chain": "arbitrum", "account": "0xa"}
MAJOR_RANGE = 0.16  # the shipped scan range of BTC and ETH
PERP_CONTINGENCY = 0.005  # of each venue-account's net perp notional


def report(positions: list[dict[str, Any]], **params: Any) -> MarginReport:
    return compute_margin_request(
        MarginRequest.model_validate({"positions": positions, "market": market(), "params": params or None})
    )


def eth_perp(quantity: float, where: dict[str, str]) -> dict[str, Any]:
    return {"kind": "perp", "underlying": "ETH", "quantity": quantity, "entry_price": ETH, **where}


def test_a_hedge_on_another_chain_raises_the_figure_and_the_decomposition_says_why() -> None:
    alone = report([eth_perp(10, HYPERLIQUID)])
    hedged = report([eth_perp(10, HYPERLIQUID), eth_perp(-10, GMX)])
    leg = 10 * ETH * MAJOR_RANGE  # each leg's worst loss over the +-16% scan: 4,800
    assert alone.risk_usd == pytest.approx(leg)
    assert alone.maintenance_margin_usd == pytest.approx(leg + 10 * ETH * PERP_CONTINGENCY)

    off = hedged.offsets
    assert off is not None
    assert off.everything_usd == pytest.approx(0.0, abs=1e-6)  # netted together the hedge is perfect
    assert off.risk_by_chain_usd == pytest.approx({"arbitrum": leg, "hyperliquid": leg})
    assert off.chains_siloed_usd == off.venue_accounts_siloed_usd == pytest.approx(2 * leg)
    assert off.cross_chain_offset_usd == pytest.approx(2 * leg)
    assert off.cross_chain_credit == default_params().offset_credit.cross_chain == 0.25
    assert off.cross_chain_credit_usd == pytest.approx(0.25 * 2 * leg)
    assert off.cross_venue_offset_usd == pytest.approx(0.0, abs=1e-6)
    # 9,600 siloed less a quarter credited: 7,200, above the 4,800 of the unhedged leg
    assert hedged.risk_usd == off.combined_risk_usd == pytest.approx(1.5 * leg)
    assert hedged.maintenance_margin_usd > alone.maintenance_margin_usd
    assert hedged.maintenance_margin_usd == pytest.approx(1.5 * leg + 2 * 10 * ETH * PERP_CONTINGENCY)


def test_opposite_legs_on_one_chain_earn_the_cross_venue_credit() -> None:
    """Two venue-accounts on one chain: the offset between them is credited at half (shipped cross_venue)."""
    off = report([eth_perp(10, GMX), eth_perp(-10, AAVE)]).offsets
    leg = 10 * ETH * MAJOR_RANGE
    assert off is not None
    assert off.risk_by_chain_usd == pytest.approx({"arbitrum": 0.0}, abs=1e-6)
    assert off.cross_venue_offset_usd == pytest.approx(2 * leg)
    assert off.cross_venue_credit_usd == pytest.approx(0.5 * 2 * leg)
    assert off.combined_risk_usd == pytest.approx(leg)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(a_position(), min_size=1, max_size=8))
def test_each_level_is_the_risk_of_its_positions_margined_alone(positions: list[dict[str, Any]]) -> None:
    full = {"offset_credit": {"cross_chain": 1.0, "cross_venue": 1.0}}
    none = {"offset_credit": {"cross_chain": 0.0, "cross_venue": 0.0}}
    r = report(positions)
    off = r.offsets
    assert off is not None
    assert off.combined_risk_usd == pytest.approx(r.risk_usd, rel=1e-9, abs=1e-6)
    assert off.combined_risk_usd == pytest.approx(
        off.venue_accounts_siloed_usd - off.cross_chain_credit_usd - off.cross_venue_credit_usd, abs=1e-6)
    # full credit is the book netted as one portfolio; no credit the sum of venue-accounts margined apart
    assert report(positions, **full).risk_usd == pytest.approx(off.everything_usd, rel=1e-9, abs=1e-6)
    assert report(positions, **none).risk_usd == pytest.approx(off.venue_accounts_siloed_usd, rel=1e-9, abs=1e-6)
    for chain, risk in off.risk_by_chain_usd.items():
        own = [p for p in positions if p["chain"] == chain]
        assert report(own, **full).risk_usd == pytest.approx(risk, rel=1e-9, abs=1e-6)
    for level in off.risk_by_venue_account:
        own = [p for p in positions if (p["venue"], p["chain"], p["account"]) == (level.venue, level.chain,
                                                                                 level.account)]
        assert report(own).risk_usd == pytest.approx(level.risk_usd, rel=1e-9, abs=1e-6)
