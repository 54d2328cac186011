"""One demo key: the key the served OpenAPI document names is the one `make run` (the demo) and `metarisk serve`
accept, and the README names it."""

from __future__ import annotations

import re
from pathlib import Path

from api.demo import demo_api_settings
from api.http.openapi import build_openapi
from api.http.settings import ApiSettings

README = Path(__file__).resolve().parents[2] / "README.md"


def test_the_key_the_openapi_document_names_is_accepted_by_the_demo_and_by_serve() -> None:
    description = build_openapi(version="test", service=None)["info"]["description"]
    named = re.findall(r"the local demo accepts `([^`]+)`", description)
    assert len(named) == 1
    key = named[0]
    assert key in demo_api_settings({}).api_keys  # make run
    assert ApiSettings.from_env({}).api_keys == frozenset({key})  # metarisk serve, no keys configured
    # the environment's keys are added to it, never replace it, in the demo
    assert demo_api_settings({"METARISK_API_KEYS": "ops-key"}).api_keys == frozenset({"ops-key", key})
    assert f"`{key}`" in README.read_text()
