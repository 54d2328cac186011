"""What the history routes read from a request: the query of a page of history and a stored report's id."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, TypeVar

from multidict import MultiMapping
from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    model_validator,
)
from pydantic_core import PydanticCustomError

from api.http.problems import FieldError, field_errors, invalid_request
from risk_core.errors import InputError

Query = TypeVar("Query", bound=BaseModel)
HISTORY_PATH = "/v1/accounts/{account_id}/history"
STORED_REPORT_PATH = "/v1/accounts/{account_id}/reports/{report_id}"
DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
MAX_REPORT_ID = 2**63 - 1  # the largest id a database holds: a larger one would fail in the driver, not be a 404

_ISO_DATETIME = re.compile(
    r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?(?P<zone>Z|[+-]\d{2}:\d{2})?", re.IGNORECASE
)


def _iso_datetime(value: Any) -> Any:
    """An ISO 8601 datetime string with its timezone; a datetime (GraphQL's DateTime scalar) passes through."""
    if value is None or isinstance(value, datetime):
        return value
    if not isinstance(value, str) or (match := _ISO_DATETIME.fullmatch(value)) is None:
        if isinstance(value, str) and _ISO_DATETIME.fullmatch(value.replace(" ", "+")):
            # an unencoded offset: a URL query reads "+02:00" as " 02:00"
            raise PydanticCustomError("iso_datetime", "a '+' in a URL query reads as a space: write it %2B, or use Z")
        raise PydanticCustomError("iso_datetime", "not an ISO 8601 datetime such as 2026-01-05T08:00:00Z")
    if match["zone"] is None:
        raise PydanticCustomError("iso_datetime", "no timezone: end it with Z or an offset such as +02:00")
    try:
        return datetime.fromisoformat(value.upper())
    except ValueError as e:  # shaped right but no such instant, e.g. month 13
        raise PydanticCustomError("iso_datetime", "not a valid datetime: {reason}", {"reason": str(e)}) from e


IsoDatetime = Annotated[AwareDatetime | None, BeforeValidator(_iso_datetime)]


class HistoryQuery(BaseModel):
    """The query of GET /v1/accounts/{account_id}/history. An unknown parameter is an error: a misspelt `since`
    silently ignored would answer a different range than the one asked for."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    since: IsoDatetime = Field(
        default=None, description="reports computed at or after this ISO 8601 datetime with timezone (inclusive)"
    )
    until: IsoDatetime = Field(
        default=None,
        description="reports computed before this ISO 8601 datetime with timezone (exclusive): pass a page's "
        "`next_until` here for the next, older page",
    )
    limit: int = Field(default=DEFAULT_LIMIT, ge=1, le=MAX_LIMIT, description="most reports in the page")

    @model_validator(mode="after")
    def _since_before_until(self) -> HistoryQuery:
        if self.since is not None and self.until is not None and self.since >= self.until:
            raise InputError("until", "must be later than since")
        return self


def parse_history_query(query: MultiMapping[str]) -> HistoryQuery:
    """Raises Problem 422 naming each query parameter at fault."""
    return parse_query(HistoryQuery, query)


def parse_query(model: type[Query], query: MultiMapping[str]) -> Query:
    """A route's query as `model` (which forbids unknown parameters). Raises Problem 422 naming each query
    parameter at fault."""
    repeated = sorted({name for name in query if len(query.getall(name)) > 1})
    if repeated:
        raise invalid_request([FieldError(field=name, reason="given more than once") for name in repeated])
    try:
        return model.model_validate(dict(query))
    except ValidationError as e:
        raise invalid_request(field_errors(e)) from e


_REPORT_ID = TypeAdapter(Annotated[int, Field(ge=1, le=MAX_REPORT_ID)])


def parse_report_id(text: str) -> int:
    """Raises Problem 422 naming report_id."""
    try:
        return _REPORT_ID.validate_python(text)
    except ValidationError as e:
        raise invalid_request(field_errors(e, prefix="report_id")) from e


def query_parameters(model: type[BaseModel] | None = None) -> list[dict[str, Any]]:
    """A route's query (the history's by default) as OpenAPI parameters, from its model's own schema (a query
    string has no null)."""
    properties = (model or HistoryQuery).model_json_schema()["properties"]
    parameters = []
    for name, schema in properties.items():
        description = schema.pop("description")
        schema.pop("title", None)
        options = schema.pop("anyOf", None)
        if options is not None:
            schema.update(next(option for option in options if option.get("type") != "null"))
            schema.pop("default", None)
        parameters.append(
            {"name": name, "in": "query", "required": False, "description": description, "schema": schema}
        )
    return parameters


def report_id_schema() -> dict[str, Any]:
    return {"type": "integer", "format": "int64", "minimum": 1, "maximum": MAX_REPORT_ID}

