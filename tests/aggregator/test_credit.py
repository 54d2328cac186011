"""The signed credit view: the EIP-712 signature recovers to the service's key, over figures that are the report's
x 1e8 (ratios in basis points), hashed as an independent EIP-712 encoder (what a Solidity verifier does) hashes
them; no key, no signature."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from eth_abi import encode
from eth_account import Account
from eth_account.messages import SignableMessage, encode_typed_data
from eth_utils import keccak

from aggregator.credit import NO_RATIO, CreditView, compute_credit_view
from risk_core.margin.engine import compute_margin_request
from risk_core.schema.report import MarginReport
from risk_core.schema.request import MarginRequest

DEMO_REQUEST = Path(__file__).resolve().parents[2] / "examples" / "demo_request.json"
# anvil's third well-known test key: public, for tests only
KEY = "0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a"
SIGNER = "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC"
WALLET = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
COMPUTED_AT = datetime(2026, 11, 25, 0, 0, 7, 900_000, tzinfo=UTC)


@cache
def demo_report() -> MarginReport:
    return compute_margin_request(MarginRequest.model_validate_json(DEMO_REQUEST.read_bytes()))


def view_of(report: MarginReport, *, key: str | None = KEY) -> CreditView:
    return compute_credit_view(WALLET, report, computed_at=COMPUTED_AT, age_seconds=1.5, signer_key=key)


def recover(typed_data: dict[str, Any], signature: str | None) -> str:
    assert signature is not None
    recovered: str = Account.recover_message(encode_typed_data(full_message=typed_data), signature=signature)
    return recovered


# --- an EIP-712 encoder of our own, for the two types of the view -----------------------------------------------

EXPOSURE_TYPE = "Exposure(string asset,int256 deltaUsd)"
CREDIT_VIEW_TYPE = (
    "CreditView(address wallet,Exposure[] exposures,int256 equityUsd,int256 collateralUsd,"
    "uint256 maintenanceMarginUsd,uint256 initialMarginUsd,int256 freeCollateralUsd,uint256 marginRatioBps,"
    "bool complete,uint64 asOf,uint64 computedAt,string paramsVersion,string marginModel)"
)


def domain_separator() -> bytes:
    type_hash = keccak(text="EIP712Domain(string name,string version,uint256 chainId)")
    return keccak(type_hash + keccak(text="metarisk") + keccak(text="1") + encode(["uint256"], [1]))


def struct_hash(m: dict[str, Any]) -> bytes:
    exposures = b"".join(
        keccak(keccak(text=EXPOSURE_TYPE) + keccak(text=e["asset"]) + encode(["int256"], [e["deltaUsd"]]))
        for e in m["exposures"]
    )
    fields = encode(
        ["address", "bytes32", "int256", "int256", "uint256", "uint256", "int256", "uint256", "bool", "uint64",
         "uint64", "bytes32", "bytes32"],
        [m["wallet"], keccak(exposures), m["equityUsd"], m["collateralUsd"], m["maintenanceMarginUsd"],
         m["initialMarginUsd"], m["freeCollateralUsd"], m["marginRatioBps"], m["complete"], m["asOf"],
         m["computedAt"], keccak(text=m["paramsVersion"]), keccak(text=m["marginModel"])],
    )
    return keccak(keccak(text=CREDIT_VIEW_TYPE + EXPOSURE_TYPE) + fields)


def test_the_signature_recovers_to_the_signer() -> None:
    view = view_of(demo_report())
    assert view.signer == SIGNER == Account.from_key(KEY).address
    assert view.signature is not None and len(bytes.fromhex(view.signature.removeprefix("0x"))) == 65
    assert recover(view.typed_data, view.signature) == SIGNER
    # as a client gets it: the view as JSON, typed data and signature read back from the wire
    wire = json.loads(view.model_dump_json())
    assert recover(wire["typed_data"], wire["signature"]) == SIGNER


def test_the_signed_digest_is_the_eip712_hash_of_the_figures() -> None:
    view = view_of(demo_report())
    ours = SignableMessage(version=b"\x01", header=domain_separator(), body=struct_hash(view.typed_data["message"]))
    assert ours == encode_typed_data(full_message=view.typed_data)
    assert Account.recover_message(ours, signature=view.signature) == SIGNER


def test_a_figure_changed_after_signing_does_not_verify() -> None:
    view = view_of(demo_report())
    tampered = json.loads(json.dumps(view.typed_data))
    tampered["message"]["freeCollateralUsd"] += 1  # one hundred-millionth of a dollar more
    assert recover(tampered, view.signature) != SIGNER


def test_integers_are_the_report_figures_times_1e8_and_the_ratio_in_bps() -> None:
    report = demo_report()
    view = view_of(report)
    m = view.typed_data["message"]
    assert m["wallet"] == WALLET
    assert m["equityUsd"] == round(report.equity_usd * 1e8) == 16_255_315_887_780
    assert m["collateralUsd"] == round(report.collateral_usd * 1e8) == 15_964_469_010_889
    assert m["maintenanceMarginUsd"] == round(report.maintenance_margin_usd * 1e8) == 1_703_160_083_446
    assert m["initialMarginUsd"] == round(report.initial_margin_usd * 1e8) == 2_128_950_104_307
    assert m["freeCollateralUsd"] == round(report.free_collateral_usd * 1e8) == 13_835_518_906_582
    assert report.margin_ratio is not None
    assert m["marginRatioBps"] == round(report.margin_ratio * 10_000) == 1_067
    assert m["exposures"] == [
        {"asset": "BTC", "deltaUsd": round(report.underlyings["BTC"].delta_usd * 1e8)},
        {"asset": "ETH", "deltaUsd": round(report.underlyings["ETH"].delta_usd * 1e8)},
    ]
    assert m["complete"] is report.complete is True
    assert m["asOf"] == int(report.as_of.timestamp()) == 1_795_564_800
    assert m["computedAt"] == 1_795_564_807  # whole seconds, truncated
    assert m["paramsVersion"] == report.params_version
    # the readable figures beside it are the report's own
    assert (view.equity_usd, view.free_collateral_usd, view.margin_ratio, view.status) == (
        report.equity_usd, report.free_collateral_usd, report.margin_ratio, report.status
    )
    assert [(e.asset, e.delta, e.delta_usd) for e in view.exposures] == [
        (a, u.delta, u.delta_usd) for a, u in sorted(report.underlyings.items())
    ]
    assert (view.computed_at, view.age_seconds) == (COMPUTED_AT, 1.5)


@pytest.mark.parametrize(
    ("figure", "value", "fixed"),
    [
        ("equity_usd", 1234.56789012, 123_456_789_012),
        ("equity_usd", 0.000000004, 0),  # below the last decimal: rounds to zero
        ("equity_usd", 0.000000006, 1),
        ("free_collateral_usd", -2500.123456789, -250_012_345_679),  # int256: negative free collateral signs too
    ],
)
def test_rounding_to_eight_decimals(figure: str, value: float, fixed: int) -> None:
    view = view_of(demo_report().model_copy(update={figure: value}))
    key = {"equity_usd": "equityUsd", "free_collateral_usd": "freeCollateralUsd"}[figure]
    assert view.typed_data["message"][key] == fixed
    assert recover(view.typed_data, view.signature) == SIGNER


def test_no_ratio_without_collateral_is_the_largest_uint256() -> None:
    report = demo_report().model_copy(update={"margin_ratio": None, "collateral_usd": 0.0, "complete": False})
    view = view_of(report)
    assert view.typed_data["message"]["marginRatioBps"] == NO_RATIO == 2**256 - 1
    assert view.typed_data["message"]["complete"] is False
    assert view.margin_ratio is None
    assert recover(view.typed_data, view.signature) == SIGNER


def test_no_key_no_signature() -> None:
    report = demo_report()
    unsigned = view_of(report, key=None)
    assert unsigned.signer is None and unsigned.signature is None
    assert unsigned.typed_data == view_of(report).typed_data  # the same message, ready for a signer elsewhere
    assert view_of(report, key="").signature is None


def test_the_signed_view_names_its_margin_model() -> None:
    request = MarginRequest.model_validate_json(DEMO_REQUEST.read_bytes())
    assert view_of(demo_report()).typed_data["message"]["marginModel"] == "grid"
    fhs = demo_report().model_copy(update={"model": "fhs"})
    view = view_of(fhs)
    assert (view.model, view.typed_data["message"]["marginModel"]) == ("fhs", "fhs")
    assert recover(view.typed_data, view.signature) == SIGNER
    # the model is signed: a view re-labelled after signing does not verify
    relabelled = json.loads(json.dumps(view.typed_data))
    relabelled["message"]["marginModel"] = "grid"
    assert recover(relabelled, view.signature) != SIGNER
    assert request.positions  # the demo book the figures come from
