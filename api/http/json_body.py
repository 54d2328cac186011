"""What makes a request body JSON here: the media type `application/json`, and no key given twice in one object
(JSON parsers keep one of the two silently, so the client and the server would read different requests)."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from api.http.problems import FieldError, Problem, invalid_request

JSON_MEDIA_TYPE = "application/json"


class _DuplicateKey(Exception):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _object_without_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    document = dict(pairs)
    if len(document) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _DuplicateKey(key)
            seen.add(key)
    return document


def require_json_media_type(request: web.Request) -> None:
    """Raises Problem 415 unless the body is declared `application/json` (a charset parameter is allowed)."""
    if request.content_type != JSON_MEDIA_TYPE:
        raise Problem(
            415,
            "unsupported-media-type",
            "Unsupported media type",
            f"the body must be {JSON_MEDIA_TYPE}, not {request.content_type or 'undeclared'}: set Content-Type",
            headers={"Accept-Post": JSON_MEDIA_TYPE},
        )


def refuse_duplicate_keys(body: bytes | str) -> None:
    """Raises Problem 422 naming a key that occurs twice in one object of `body`.

    Call it only on a body a depth-limited parser (orjson, pydantic's) has accepted: the standard json module
    used here recurses in C, which only such a body keeps shallow.
    """
    try:
        json.loads(body, object_pairs_hook=_object_without_duplicates)
    except _DuplicateKey as e:
        raise invalid_request([FieldError(field=e.key, reason="given more than once in one JSON object")]) from e
    except RecursionError as e:  # a request nests a few levels; this one nests near the parsers' limits
        raise invalid_request([FieldError(field="(request)", reason="JSON nested too deeply")]) from e
    except ValueError:
        return  # not JSON the standard parser reads (e.g. non-standard numbers): the caller's parser judged it
