"""The credit view under a chosen margin model: the wallet's refreshed positions margined under fhs on the refresh's
market, with the recorded history the API injects, equal to the what-if report of the same book; the model named
and signed; an unknown model, or fhs without a history, refused naming `model`."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from aggregator.service import AggregatorService, Refreshed
from aggregator.settings import ServiceSettings
from aggregator.store.records import PositionSnapshot
from api.fhs_history import with_recorded_history
from risk_core.errors import InputError
from risk_core.margin.engine import compute_margin_request
from risk_core.schema.request import MarginRequest

DEMO_REQUEST = Path(__file__).resolve().parents[2] / "examples" / "demo_request.json"
WALLET = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
KEY = "0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a"  # anvil's third test key


def service_with_refresh(**kw: Any) -> tuple[AggregatorService, MarginRequest]:
    never_used: Any = None  # no session and no chain: the wallet's refresh is already cached
    service = AggregatorService(settings=ServiceSettings(signer_key=KEY), session=never_used, clients=[], **kw)
    request = MarginRequest.model_validate_json(DEMO_REQUEST.read_bytes())
    assert request.market is not None
    report = compute_margin_request(request)
    positions = PositionSnapshot(taken_at=request.market.as_of, positions=request.positions, complete=True)
    service._refreshed[f"wallet:{WALLET.lower()}"] = Refreshed(
        report=report, positions=positions, market=request.market, computed_at=datetime.now(UTC),
        monotonic=time.monotonic(),
    )
    return service, request


async def test_the_credit_view_under_fhs_is_the_fhs_report_of_the_book() -> None:
    service, request = service_with_refresh(with_history=with_recorded_history)
    grid = await service.wallet_credit(WALLET)
    assert (grid.model, grid.typed_data["message"]["marginModel"]) == ("grid", "grid")
    assert (await service.wallet_credit(WALLET, model="grid")).maintenance_margin_usd == grid.maintenance_margin_usd
    fhs = await service.wallet_credit(WALLET, model="fhs")
    expected = compute_margin_request(with_recorded_history(request.model_copy(update={"params": {"model": "fhs"}})))
    assert expected.model == "fhs"
    assert (fhs.model, fhs.typed_data["message"]["marginModel"]) == ("fhs", "fhs")
    assert fhs.maintenance_margin_usd == pytest.approx(expected.maintenance_margin_usd, rel=1e-12)
    assert fhs.maintenance_margin_usd != grid.maintenance_margin_usd
    assert fhs.equity_usd == pytest.approx(grid.equity_usd, rel=1e-12)  # the same book and market
    assert fhs.signature is not None


@pytest.mark.parametrize(("model", "history"), [("spanish", True), ("fhs", False)])
async def test_a_model_the_service_cannot_apply_is_refused_naming_model(model: str, history: bool) -> None:
    service, _ = service_with_refresh(with_history=with_recorded_history if history else None)
    with pytest.raises(InputError) as refused:
        await service.wallet_credit(WALLET, model=model)
    assert refused.value.field == "model"
