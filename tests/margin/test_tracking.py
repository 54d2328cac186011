"""Tracked tokens (RiskParams.tracking): a liquid-staking ETH held moves with ETH's scenarios at its own price, and
its depeg is charged as a contingency on the net holding. Expected figures are worked out by hand from the
shipped parameters (ETH: 16% range, 2% haircut; wstETH: 5% haircut, depeg 7%), never read back from the engine."""

from __future__ import annotations

import csv
from typing import Any

import pytest
from support.golden import COVER, ETH, market, position

import reference_data
from risk_core.margin.batch import compute_batch_margin
from risk_core.margin.engine import compute_margin_request
from risk_core.schema.params import default_params
from risk_core.schema.report import MarginReport
from risk_core.schema.request import MarginRequest

WSTETH = 3_600.0  # 1.2 ETH a token, as wstETH's accrued rate makes it
RANGE, DEPEG, WSTETH_HAIRCUT, ETH_HAIRCUT = 0.16, 0.07, 0.05, 0.02
AAVE = {"venue": "aave-v3", "chain": "ethereum", "account": "0xloop"}
REL = 1e-9
MARKET_DATA = reference_data.path("market")


def run(positions: list[dict[str, Any]], **market_fields: Any) -> MarginReport:
    spot = {"ETH": ETH, "WSTETH": WSTETH, "USDC": 1.0, **market_fields.pop("spot", {})}
    document = {"positions": positions, "market": market(spot=spot, **market_fields)}
    return compute_margin_request(MarginRequest.model_validate(document))


def supply(quantity: float, asset: str = "WSTETH") -> dict[str, Any]:
    return position("lend", asset=asset, quantity=quantity, id=f"supply-{asset}", **AAVE)


def debt(quantity: float, asset: str = "ETH") -> dict[str, Any]:
    return position("borrow", asset=asset, quantity=quantity, id=f"debt-{asset}", **AAVE)


def test_a_staking_loop_nets_as_eth_and_pays_the_depeg() -> None:
    # 10 wstETH supplied ($36,000) against 11 ETH borrowed ($33,000): long $3,000 of ETH, plus the depeg
    report = run([supply(10), debt(11)])
    supplied, owed = 10 * WSTETH, 11 * ETH
    net = supplied - owed
    risk = max(RANGE, COVER) * net  # linear: the -16% grid point binds (a tail counts 13.86%)
    depeg = DEPEG * supplied
    assert report.equity_usd == pytest.approx(net, rel=REL)
    assert report.collateral_usd == pytest.approx(net - WSTETH_HAIRCUT * supplied, rel=REL)
    assert report.risk_usd == pytest.approx(risk, rel=REL)
    assert report.contingency_usd == pytest.approx(depeg, rel=REL)
    assert report.maintenance_margin_usd == pytest.approx(risk + depeg, rel=REL)
    assert list(report.underlyings) == ["ETH"]
    eth = report.underlyings["ETH"]
    assert eth.delta == pytest.approx(10 * WSTETH / ETH - 11, rel=REL)  # 12 ETH of wstETH less 11 owed
    assert [p.underlying for p in report.positions] == ["ETH", "ETH"]


def test_the_loop_margins_far_below_its_legs_alone() -> None:
    report = run([supply(10), debt(11)])
    legs = [run([supply(10)]).maintenance_margin_usd, run([debt(11)]).maintenance_margin_usd]
    assert legs == pytest.approx([RANGE * 10 * WSTETH + DEPEG * 10 * WSTETH, RANGE * 11 * ETH], rel=REL)
    assert report.maintenance_margin_usd < 0.25 * sum(legs)
    assert report.isolated_margin_usd == pytest.approx(sum(legs), rel=REL)


def test_a_debt_in_the_token_pays_no_depeg() -> None:
    # short wstETH against long ETH: a depeg is a gain, so only the (net) ETH move is charged
    report = run([debt(10, "WSTETH"), supply(13, "ETH")])
    net = 13 * ETH - 10 * WSTETH
    assert report.contingency_usd == 0.0
    assert report.risk_usd == pytest.approx(RANGE * net, rel=REL)
    assert report.collateral_usd == pytest.approx(net - ETH_HAIRCUT * 13 * ETH, rel=REL)


def test_the_depeg_nets_within_a_venue_account_only() -> None:
    # a wallet's short spot balance of the token nets the wallet's long; the Aave supply is another venue-account
    wallet = {"venue": "wallet", "chain": "ethereum", "account": "0xloop"}
    long_wallet = position("spot", asset="WSTETH", quantity=4, id="w-long", **wallet)
    short_venue = position("spot", asset="WSTETH", quantity=-1, id="w-short", **wallet)
    report = run([supply(2), long_wallet, short_venue])
    assert report.contingency_usd == pytest.approx(DEPEG * WSTETH * (2 + 4 - 1), rel=REL)


def test_without_a_price_for_eth_the_token_keeps_its_own_scenarios() -> None:
    document = {"positions": [supply(1)], "market": market(spot={"WSTETH": WSTETH, "USDC": 1.0})}
    alone = compute_margin_request(MarginRequest.model_validate(document))
    assert list(alone.underlyings) == ["WSTETH"]
    assert any("tracks ETH, which has no price" in w for w in alone.warnings)
    assert alone.contingency_usd == 0.0
    assert alone.risk_usd == pytest.approx(0.25 * WSTETH, rel=REL)  # the liquid_staking class's own 25% range


def test_the_depeg_covers_the_deepest_steth_discount_on_record() -> None:
    path = next((MARKET_DATA / "chainlink").glob("chainlink_steth_eth_mainnet_*.csv"))
    with path.open() as f:
        ratios = [int(row["answer"]) / 1e18 for row in csv.DictReader(f) if int(row["answer"]) > 0]
    deepest = 1.0 - min(ratios)
    assert 0.06 < deepest < default_params().tracking["WSTETH"].depeg  # 0.935 on 2022-06-18


def test_the_batch_path_margins_tracked_tokens_as_one_request_does() -> None:
    wallet = {"venue": "wallet", "chain": "base", "account": "0xother"}
    wallets = [
        [supply(10), debt(11)],
        [debt(10, "WSTETH"), supply(13, "ETH")],
        [supply(2), position("spot", asset="WSTETH", quantity=-1, id="s", **wallet)],
    ]
    m = market(spot={"ETH": ETH, "WSTETH": WSTETH, "USDC": 1.0})
    requests = [MarginRequest.model_validate({"positions": w, "market": m}) for w in wallets]
    assert requests[0].market is not None
    batch = compute_batch_margin([r.positions for r in requests], requests[0].market, default_params())
    for w, request in enumerate(requests):
        alone = compute_margin_request(request)
        assert batch.maintenance_margin_usd[w] == pytest.approx(alone.maintenance_margin_usd, rel=REL)
        assert batch.contingency_usd[w] == pytest.approx(alone.contingency_usd, rel=REL, abs=1e-9)
        assert batch.collateral_usd[w] == pytest.approx(alone.collateral_usd, rel=REL)
