"""Every fixture the local venues serve is checked against the venue's real specification in reference_data/interfaces,
and a fixture that drifts (a field renamed, a type changed, a required field dropped) fails."""

from __future__ import annotations

import copy
from typing import Any

import pytest

import reference_data
from venue_servers import deribit, derive, hyperliquid, pyth
from venue_servers.scenario import default_scenario, load_deribit_file
from venue_servers.spec import (
    DERIBIT_ERRATA,
    SpecViolation,
    StaleErratum,
    _apply,
    validate_deribit_response,
    validate_derive_result,
    validate_hermes_latest,
    validate_hyperliquid_response,
)


def envelope(result: Any) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": 1, "result": result, "testnet": False, "usIn": 1, "usOut": 2, "usDiff": 1}


@pytest.fixture(scope="module")
def deribit_fx() -> deribit.DeribitFixture:
    return deribit.make_fixture(default_scenario())


def test_deribit_fixtures_match_the_openapi(deribit_fx: deribit.DeribitFixture) -> None:
    data = deribit_fx.data
    rows = data.for_currency("BTC")
    validate_deribit_response("/public/get_instruments", envelope([deribit.instrument(r) for r in rows]))
    summaries = [deribit.option_summary(r, 0) for r in rows]
    assert any(s["bid_price"] is None for s in summaries)  # no-bid options are null, not 0
    validate_deribit_response("/public/get_book_summary_by_currency", envelope(summaries))
    for cur in ("BTC", "ETH"):
        validate_deribit_response("/private/get_positions", envelope(deribit_fx.account.positions[cur]))
        for extended in (False, True):
            summary = deribit.account_summary(deribit_fx.account, cur, extended=extended)
            validate_deribit_response("/private/get_account_summary", envelope(summary))
    drifted = deribit.account_summary(deribit_fx.account, "BTC", extended=False)
    drifted.pop("balance")
    with pytest.raises(SpecViolation, match="'balance' is a required property"):
        validate_deribit_response("/private/get_account_summary", envelope(drifted))


@pytest.mark.parametrize(
    ("mutate", "words"),
    [
        (lambda s: s.pop("mark_price"), "'mark_price' is a required property"),
        (lambda s: s.__setitem__("markPrice", s.pop("mark_price")), "'markPrice' was unexpected"),
        (lambda s: s.__setitem__("strike_price", 1.0), "'strike_price' was unexpected"),
        (lambda s: s.__setitem__("mark_price", "0.1"), "'0.1' is not of type 'number'"),
    ],
)
def test_a_drifted_deribit_fixture_fails(deribit_fx: deribit.DeribitFixture, mutate: Any, words: str) -> None:
    summary = deribit.option_summary(deribit_fx.data.rows[0], 0)
    mutate(summary)
    with pytest.raises(SpecViolation, match=words):
        validate_deribit_response("/public/get_book_summary_by_currency", envelope([summary]))


def test_every_deribit_erratum_still_applies_and_is_needed(deribit_fx: deribit.DeribitFixture) -> None:
    import yaml


    with reference_data.path("interfaces", "deribit", "openapi.yaml").open() as f:
        raw = yaml.safe_load(f)
    _apply(raw, DERIBIT_ERRATA)  # raises StaleErratum when the spec no longer has a typo we correct
    twice = _apply(raw, DERIBIT_ERRATA)
    with pytest.raises(StaleErratum):
        _apply(twice, DERIBIT_ERRATA)


def test_derive_fixtures_match_the_openapi() -> None:
    fx = derive.make_fixture(default_scenario())
    sub = fx.subaccounts[derive.SUBACCOUNT_ID]
    validate_derive_result("private/get_subaccount", sub)
    validate_derive_result("private/get_positions", {"subaccount_id": sub["subaccount_id"],
                                                     "positions": sub["positions"]})
    rows = [r for r in load_deribit_file().rows if r.currency == "ETH"][:40]
    validate_derive_result("public/get_tickers", {"tickers": {derive.derive_name(r): fx.option_ticker(r)
                                                              for r in rows}})
    validate_derive_result("public/get_tickers", {"tickers": {"ETH-PERP": fx.perp_ticker("ETH")}})
    validate_derive_result("public/get_all_instruments", {"instruments": [fx.instrument(r) for r in rows],
                                                          "pagination": {"count": 40, "num_pages": 1}})
    drifted = copy.deepcopy(sub)
    drifted["positions"][0]["maint_margin"] = drifted["positions"][0].pop("maintenance_margin")
    with pytest.raises(SpecViolation, match="'maintenance_margin' is a required property"):
        validate_derive_result("private/get_subaccount", drifted)
    drifted = copy.deepcopy(sub)
    drifted["initial_margin"] = -1900.0  # a number where the venue sends a decimal string
    with pytest.raises(SpecViolation, match="is not of type 'string'"):
        validate_derive_result("private/get_subaccount", drifted)


def test_hyperliquid_fixtures_match_the_recorded_response() -> None:
    fx = hyperliquid.HyperliquidFixture(scenario=default_scenario())
    for dex in ("", hyperliquid.HIP3_DEX):
        validate_hyperliquid_response("clearinghouseState", fx.clearinghouse_state(dex, 0))
        validate_hyperliquid_response("metaAndAssetCtxs", fx.meta_and_asset_ctxs(dex))
    validate_hyperliquid_response("spotClearinghouseState", fx.spot_state())
    validate_hyperliquid_response("perpDexs", fx.perp_dexs())
    state = fx.clearinghouse_state("", 0)
    state["assetPositions"][0]["position"]["szi"] = -0.25  # a number, where the venue sends a decimal string
    with pytest.raises(SpecViolation, match="is not of type 'string'"):
        validate_hyperliquid_response("clearinghouseState", state)
    state = fx.clearinghouse_state("", 0)
    state["marginSummary"]["accountvalue"] = state["marginSummary"].pop("accountValue")
    with pytest.raises(SpecViolation, match="'accountValue' is a required property"):
        validate_hyperliquid_response("clearinghouseState", state)


def test_pyth_fixture_matches_hermes() -> None:
    fx = pyth.PythFixture(scenario=default_scenario())
    body: dict[str, Any] = {"binary": {"encoding": "hex", "data": ["00"]}, "parsed": [fx.price_update("BTC")]}
    validate_hermes_latest(body)
    body["parsed"][0]["price"]["price"] = 9.3e12
    with pytest.raises(SpecViolation):
        validate_hermes_latest(body)
