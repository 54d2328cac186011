"""The compact view a lender needs before extending credit, signed (EIP-712) so a contract can verify it.

Figures are fixed-point integers in the signed message (USD with 8 decimals, ratios in basis points), the scale
Chainlink and Aave use, so a Solidity verifier reads them without floats.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from eth_account import Account
from eth_account.messages import encode_typed_data
from pydantic import BaseModel, ConfigDict, Field

from risk_core.schema.report import MarginReport

USD_DECIMALS = 8
DOMAIN = {"name": "metarisk", "version": "1", "chainId": 1}
TYPES = {
    "Exposure": [{"name": "asset", "type": "string"}, {"name": "deltaUsd", "type": "int256"}],
    "CreditView": [
        {"name": "wallet", "type": "address"},
        {"name": "exposures", "type": "Exposure[]"},
        {"name": "equityUsd", "type": "int256"},
        {"name": "collateralUsd", "type": "int256"},
        {"name": "maintenanceMarginUsd", "type": "uint256"},
        {"name": "initialMarginUsd", "type": "uint256"},
        {"name": "freeCollateralUsd", "type": "int256"},
        {"name": "marginRatioBps", "type": "uint256"},
        {"name": "complete", "type": "bool"},
        {"name": "asOf", "type": "uint64"},
        {"name": "computedAt", "type": "uint64"},
        {"name": "paramsVersion", "type": "string"},
        {"name": "marginModel", "type": "string"},
    ],
}
MARGIN_MODELS = ("grid", "fhs")  # params.model: the scenario grid, filtered historical simulation
NO_RATIO = 2**256 - 1  # collateral <= 0: the ratio is unbounded


class NetExposure(BaseModel):
    model_config = ConfigDict(frozen=True)

    asset: str
    delta: float = Field(description="units of the asset, all venues and chains")
    delta_usd: float


class CreditView(BaseModel):
    model_config = ConfigDict(frozen=True)

    wallet: str
    exposures: list[NetExposure]
    equity_usd: float
    collateral_usd: float
    maintenance_margin_usd: float
    initial_margin_usd: float
    free_collateral_usd: float
    margin_ratio: float | None
    status: str
    complete: bool
    as_of: datetime = Field(description="market snapshot time")
    computed_at: datetime
    age_seconds: float
    params_version: str
    model: Literal["grid", "fhs"] = Field(description="the margin model the figures are computed under (signed)")
    typed_data: dict[str, Any] = Field(description="the EIP-712 message that was signed")
    signer: str | None = Field(description="the service's address; null when the service has no signing key")
    signature: str | None


def _usd(x: float) -> int:
    return round(x * 10**USD_DECIMALS)


def compute_typed_data(wallet: str, report: MarginReport, *, computed_at: datetime) -> dict[str, Any]:
    exposures = [{"asset": a, "deltaUsd": _usd(u.delta_usd)} for a, u in sorted(report.underlyings.items())]
    ratio = NO_RATIO if report.margin_ratio is None else round(report.margin_ratio * 10_000)
    return {
        "domain": DOMAIN,
        "types": TYPES,
        "primaryType": "CreditView",
        "message": {
            "wallet": wallet,
            "exposures": exposures,
            "equityUsd": _usd(report.equity_usd),
            "collateralUsd": _usd(report.collateral_usd),
            "maintenanceMarginUsd": _usd(report.maintenance_margin_usd),
            "initialMarginUsd": _usd(report.initial_margin_usd),
            "freeCollateralUsd": _usd(report.free_collateral_usd),
            "marginRatioBps": ratio,
            "complete": report.complete,
            "asOf": int(report.as_of.timestamp()),
            "computedAt": int(computed_at.timestamp()),
            "paramsVersion": report.params_version,
            "marginModel": report.model,
        },
    }


def compute_credit_view(
    wallet: str, report: MarginReport, *, computed_at: datetime, age_seconds: float, signer_key: str | None
) -> CreditView:
    typed = compute_typed_data(wallet, report, computed_at=computed_at)
    signer = signature = None
    if signer_key:
        account = Account.from_key(signer_key)
        signed = account.sign_message(encode_typed_data(full_message=typed))
        signer, signature = account.address, "0x" + signed.signature.hex().removeprefix("0x")
    return CreditView(
        wallet=wallet,
        exposures=[
            NetExposure(asset=a, delta=u.delta, delta_usd=u.delta_usd) for a, u in sorted(report.underlyings.items())
        ],
        equity_usd=report.equity_usd,
        collateral_usd=report.collateral_usd,
        maintenance_margin_usd=report.maintenance_margin_usd,
        initial_margin_usd=report.initial_margin_usd,
        free_collateral_usd=report.free_collateral_usd,
        margin_ratio=report.margin_ratio,
        status=report.status,
        complete=report.complete,
        as_of=report.as_of,
        computed_at=computed_at,
        age_seconds=age_seconds,
        params_version=report.params_version,
        model=report.model,
        typed_data=typed,
        signer=signer,
        signature=signature,
    )
