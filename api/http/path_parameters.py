"""The patterns path parameters must match, checked in full before the service is asked and stated in the
OpenAPI document: the one list both read, so the document never says less than the server enforces."""

from __future__ import annotations

import re
from typing import Any

from aggregator.service import ADDRESS_PATTERN
from aggregator.store.records import ACCOUNT_ID_PATTERN
from api.http.problems import FieldError, invalid_request

PATH_PATTERNS = {"address": ADDRESS_PATTERN, "account_id": ACCOUNT_ID_PATTERN}
_COMPILED = {name: re.compile(pattern) for name, pattern in PATH_PATTERNS.items()}
_REASONS = {
    "address": "not a 0x-prefixed 20-byte hex address",
    "account_id": "not an account id (lower-case letters, digits, - and _, at most 64)",
}


def check_path_parameter(name: str, value: str) -> str:
    """`value` when it matches its parameter's pattern in full (a parameter without one passes).

    Raises:
        Problem: 422 naming the parameter.
    """
    pattern = _COMPILED.get(name)
    if pattern is not None and pattern.fullmatch(value) is None:
        raise invalid_request([FieldError(field=name, reason=_REASONS[name])])
    return value


def path_parameter_schema(name: str) -> dict[str, Any]:
    pattern = PATH_PATTERNS.get(name)
    return {"type": "string"} if pattern is None else {"type": "string", "pattern": pattern}
