"""The attestation document and its signer: figures in exact 1e18 fixed point (negative ones too), an incomplete
report attested incomplete, hashes reproducible from the served report's JSON, the signature recovering (by the
EIP-712 of the specification) to the service's key, and that key loaded from the environment or a keystore."""

from __future__ import annotations

import json
import math
import stat
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_utils import keccak
from support.attestation_chain import demo_report
from support.eip712_reference import digest, hash_struct, recover

from aggregator.attestation import (
    UNBOUNDED_RATIO,
    compute_message,
    compute_typed_data,
    sign_attestation,
    to_wad,
)
from aggregator.attestation_signer import (
    KEY_VARIABLE,
    KEYSTORE_VARIABLE,
    PASSWORD_VARIABLE,
    SignerWindow,
    load_or_create_keystore,
    load_signer,
)
from aggregator.attestations import AttestationService
from aggregator.settings import AttestationSettings
from risk_core.errors import InputError
from risk_core.schema.market import SourceStatus

SIGNER = Account.from_key(keccak(text="metarisk attestation unit-test signer"))
WALLET = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
VERIFIER = "0x04C89607413713Ec9775E14b954286519d836FEf"
ISSUED = datetime(2026, 12, 4, 12, 0, 0, 700_000, tzinfo=UTC)


def _message(**overrides: Any) -> dict[str, Any]:
    kwargs: dict[str, Any] = {
        "blocks": {42161: 7, 1: 19_000_001},
        "offchain_sources": [SourceStatus(name="deribit", status="ok", as_of=ISSUED - timedelta(seconds=3))],
        "issued_at": ISSUED,
        "ttl": timedelta(minutes=5),
    }
    report = overrides.pop("report", demo_report())
    return compute_message(WALLET, report, **{**kwargs, **overrides})


@pytest.mark.parametrize(
    ("value", "wad"),
    [(1234.5, 1_234_500_000_000_000_000_000), (-0.1, -100_000_000_000_000_000), (0.0, 0), (3e-18, 3)],
)
def test_fixed_point_is_the_decimal_figure_times_1e18(value: float, wad: int) -> None:
    assert to_wad(value, "x") == wad


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_a_figure_that_is_not_finite_is_refused_naming_it(value: float) -> None:
    with pytest.raises(ValueError, match="^equity_usd: "):
        to_wad(value, "equity_usd")


def test_the_message_carries_the_reports_figures_exactly() -> None:
    report = demo_report()
    m = _message()
    for field, figure in [("equityUsd", report.equity_usd), ("collateralUsd", report.collateral_usd),
                          ("maintenanceMarginUsd", report.maintenance_margin_usd),
                          ("initialMarginUsd", report.initial_margin_usd),
                          ("freeCollateralUsd", report.free_collateral_usd)]:
        assert Fraction(int(m[field]), 10**18) == Fraction(repr(figure)), field
    assert report.margin_ratio is not None
    assert Fraction(int(m["marginRatio"]), 10**18) == Fraction(repr(report.margin_ratio))
    # free collateral = collateral - IM, to the report's float precision (a few ulps of 1e5 USD: 1e-10 USD)
    free, collateral, im = (int(m[f]) for f in ("freeCollateralUsd", "collateralUsd", "initialMarginUsd"))
    assert abs(free - (collateral - im)) <= 10**8
    assert m["complete"] is True
    assert m["blocks"] == [{"chainId": 1, "blockNumber": 19_000_001}, {"chainId": 42161, "blockNumber": 7}]
    issued = math.floor(ISSUED.timestamp())
    assert (m["issuedAt"], m["expiresAt"]) == (issued, issued + 300)
    assert m["sources"] == [
        {"source": "deribit", "timestamp": issued - 3},
        {"source": "market", "timestamp": int(report.as_of.timestamp())},
    ]


def test_negative_figures_an_unbounded_ratio_and_incompleteness_are_attested_as_they_are() -> None:
    underwater = demo_report().model_copy(
        update={"equity_usd": -50.25, "collateral_usd": -60.5, "free_collateral_usd": -70.75, "margin_ratio": None,
                "complete": False}
    )
    m = _message(report=underwater)
    assert (m["equityUsd"], m["collateralUsd"], m["freeCollateralUsd"]) == (
        "-50250000000000000000", "-60500000000000000000", "-70750000000000000000"
    )
    assert int(m["marginRatio"]) == UNBOUNDED_RATIO == 2**256 - 1
    assert m["complete"] is False
    signed = sign_attestation(compute_typed_data(m, chain_id=1, verifying_contract=VERIFIER), SIGNER)
    assert recover(signed.typed_data, signed.signature) == SIGNER.address  # int256 < 0 encodes and signs


def test_report_and_input_hashes_are_reproducible_from_the_served_json() -> None:
    report = demo_report().model_copy(update={"computed_at": ISSUED, "age_seconds": 4.5})
    served = json.loads(report.model_dump_json())  # what GET /v1/wallets/{address}/risk answers
    del served["age_seconds"]

    def canonical(document: Any) -> bytes:
        return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()

    m = _message(report=report)
    assert m["reportHash"] == "0x" + keccak(canonical(served)).hex()
    assert m["paramsHash"] == "0x" + keccak(canonical({"params_version": served["params_version"]})).hex()
    market = {"as_of": served["as_of"], "sources": served["sources"]}
    assert m["marketHash"] == "0x" + keccak(canonical(market)).hex()
    # the age is not part of what is attested; the figures are
    assert _message(report=report.model_copy(update={"age_seconds": 9.0}))["reportHash"] == m["reportHash"]
    moved = report.model_copy(update={"maintenance_margin_usd": report.maintenance_margin_usd + 1})
    assert _message(report=moved)["reportHash"] != m["reportHash"]


def test_the_signature_is_eip712_of_the_consuming_chain_and_verifier() -> None:
    typed = compute_typed_data(_message(), chain_id=42161, verifying_contract=VERIFIER)
    signed = sign_attestation(typed, SIGNER)
    assert signed.typed_data["domain"] == {"name": "metarisk", "version": "1", "chainId": 42161,
                                           "verifyingContract": VERIFIER}
    # eth_account's encoding (the signing path) and the specification's agree on both halves of the digest
    signable = encode_typed_data(full_message=typed)
    assert signable.header == hash_struct("EIP712Domain", typed["domain"], typed["types"])
    assert signable.body == hash_struct("MarginAttestation", typed["message"], typed["types"])
    assert keccak(b"\x19\x01" + signable.header + signable.body) == digest(typed)
    assert recover(typed, signed.signature) == SIGNER.address
    assert Account.recover_message(encode_typed_data(full_message=typed), signature=signed.signature) == SIGNER.address


class _Risk:
    """The aggregator's two calls the attestation service makes."""

    def __init__(self) -> None:
        positions = SimpleNamespace(
            blocks={"ethereum": 21, "arbitrum": 42, "unknown": 1},
            sources=[SourceStatus(name="aave_v3@ethereum", status="ok"),
                     SourceStatus(name="hyperliquid", status="failed", reason="down")],
        )
        self.refreshed = SimpleNamespace(report=demo_report(), positions=positions)

    async def wallet_refresh(self, address: str) -> Any:
        if address != WALLET:
            raise LookupError(address)
        return self.refreshed

    def chain_ids(self) -> dict[str, int]:
        return {"ethereum": 1, "arbitrum": 42161}


def _service() -> AttestationService:
    settings = AttestationSettings(
        verifiers={42161: VERIFIER},
        ttl_s=120,
        rotated_signers=[SignerWindow(address=WALLET, valid_from=ISSUED - timedelta(days=30),
                                      valid_until=ISSUED - timedelta(days=1))],
    )
    return AttestationService(risk=_Risk(), signer=SIGNER, settings=settings, clock=lambda: ISSUED)  # type: ignore[arg-type]


async def test_the_service_binds_blocks_by_chain_id_and_offchain_sources() -> None:
    signed = await _service().wallet_attestation(WALLET, 42161)
    m = signed.typed_data["message"]
    assert m["blocks"] == [{"chainId": 1, "blockNumber": 21}, {"chainId": 42161, "blockNumber": 42}]
    # on-chain sources are bound by their blocks; a failed off-chain source was never read: timestamp 0
    assert [s["source"] for s in m["sources"]] == ["hyperliquid", "market"]
    assert m["sources"][0]["timestamp"] == 0
    assert m["expiresAt"] - m["issuedAt"] == 120
    assert recover(signed.typed_data, signed.signature) == SIGNER.address


async def test_the_service_refuses_a_chain_without_verifier_naming_chain_id() -> None:
    with pytest.raises(InputError) as refused:
        await _service().wallet_attestation(WALLET, 10)
    assert refused.value.field == "chain_id" and "42161" in refused.value.reason


def test_signer_info_publishes_chains_and_rotated_keys() -> None:
    info = _service().signer_info()
    assert info.address == SIGNER.address
    assert [(c.chain_id, c.verifying_contract) for c in info.chains] == [(42161, VERIFIER)]
    assert [h.address for h in info.history] == [WALLET] and info.ttl_seconds == 120


def test_the_key_comes_from_the_environment_or_a_keystore(tmp_path: Path) -> None:
    assert load_signer({}) is None
    from_env = load_signer({KEY_VARIABLE: SIGNER.key.hex()})
    assert from_env is not None and from_env.address == SIGNER.address
    with pytest.raises(ValueError, match=f"^{KEY_VARIABLE}: "):
        load_signer({KEY_VARIABLE: "0x1234"})
    keystore = tmp_path / "signer.json"
    keystore.write_text(json.dumps(Account.encrypt(SIGNER.key, "pw", kdf="pbkdf2", iterations=2)))
    from_file = load_signer({KEYSTORE_VARIABLE: str(keystore), PASSWORD_VARIABLE: "pw"})
    assert from_file is not None and from_file.address == SIGNER.address
    with pytest.raises(ValueError, match=f"^{KEYSTORE_VARIABLE}: "):
        load_signer({KEYSTORE_VARIABLE: str(keystore), PASSWORD_VARIABLE: "wrong"})
    with pytest.raises(ValueError, match=f"^{PASSWORD_VARIABLE}: "):
        load_signer({KEYSTORE_VARIABLE: str(keystore)})
    with pytest.raises(ValueError, match=f"^{KEYSTORE_VARIABLE}: cannot read"):
        load_signer({KEYSTORE_VARIABLE: str(tmp_path / "missing.json"), PASSWORD_VARIABLE: "pw"})


def test_the_demo_key_is_created_once_owner_only_then_reloaded(tmp_path: Path) -> None:
    path = tmp_path / "data" / "attestation-key.json"
    created = load_or_create_keystore(path, "demo")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_or_create_keystore(path, "demo").address == created.address
    assert load_or_create_keystore(tmp_path / "other.json", "demo").address != created.address
