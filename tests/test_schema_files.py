"""The checked-in JSON Schema files must equal what the models generate: drift fails here."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from risk_core.schema.json_schema import schema_documents
from risk_core.schema.positions import SCHEMA_VERSION

SCHEMA_DIR = Path(__file__).resolve().parents[1] / "schema" / f"v{SCHEMA_VERSION}"


@pytest.mark.parametrize("name", sorted(schema_documents()))
def test_checked_in_schema_matches_the_models(name: str) -> None:
    path = SCHEMA_DIR / name
    assert path.exists(), f"{path} missing: run `metarisk schema`"
    assert json.loads(path.read_text()) == schema_documents()[name], f"{name} drifted: run `metarisk schema`"


def test_no_stale_schema_files() -> None:
    assert sorted(p.name for p in SCHEMA_DIR.glob("*.json")) == sorted(schema_documents())


def test_position_schema_names_every_kind() -> None:
    kinds = {
        v["properties"]["kind"]["const"] for v in schema_documents()["position.schema.json"]["$defs"].values()
        if "kind" in v.get("properties", {})
    }
    assert kinds == {"spot", "lend", "borrow", "perp", "future", "option", "lp"}
