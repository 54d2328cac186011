"""JSON Schema documents of the public models, versioned with SCHEMA_VERSION (written by `metarisk schema`)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, TypeAdapter

from risk_core.schema.holdings import HoldingsRow
from risk_core.schema.market import MarketSnapshot
from risk_core.schema.params import RiskParams
from risk_core.schema.positions import SCHEMA_VERSION, Position
from risk_core.schema.report import MarginReport
from risk_core.schema.request import MarginRequest
from risk_core.schema.surface_report import SurfaceReport

_MODELS: dict[str, type[BaseModel] | TypeAdapter[Any]] = {
    "position": TypeAdapter(Position),
    "market": MarketSnapshot,
    "risk_params": RiskParams,
    "margin_request": MarginRequest,
    "margin_report": MarginReport,
    "surface_report": SurfaceReport,
    "holdings_row": HoldingsRow,
}


def schema_documents() -> dict[str, dict[str, Any]]:
    """File name -> JSON Schema (draft 2020-12), each with a versioned $id."""
    documents = {}
    for name, model in _MODELS.items():
        schema = model.json_schema() if isinstance(model, TypeAdapter) else model.model_json_schema()
        file_name = f"{name}.schema.json"
        documents[file_name] = {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "$id": f"https://metarisk.dev/schema/v{SCHEMA_VERSION}/{file_name}",
            **schema,
        }
    return documents
