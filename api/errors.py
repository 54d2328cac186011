"""Bad input as the fields at fault, named from the document's root: one rendering for the API (problem details)
and the CLI (one line per problem)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from risk_core.errors import InputError
from risk_core.margin.context import PricingContext
from risk_core.margin.engine import compute_margin_request
from risk_core.schema.params import RiskParams
from risk_core.schema.report import MarginReport
from risk_core.schema.request import MarginRequest

MAX_FIELD_ERRORS = 20  # a 10,000-position request could otherwise answer with 10,000 entries


class FieldError(BaseModel):
    model_config = ConfigDict(frozen=True)

    field: str = Field(description="path of the field at fault, e.g. positions[0].strike; (request) for the body")
    reason: str


class InvalidRequest(Exception):
    """The fields at fault (the first MAX_FIELD_ERRORS) and how many problems there are in all."""

    def __init__(self, errors: list[FieldError], total: int | None = None) -> None:
        super().__init__("; ".join(f"{e.field}: {e.reason}" for e in errors))
        self.errors = errors
        self.total = len(errors) if total is None else total


def field_path(loc: tuple[int | str, ...]) -> str:
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if path else str(part)
    return path


def field_errors(error: ValidationError, *, prefix: str = "") -> list[FieldError]:
    """One entry per pydantic error (the first MAX_FIELD_ERRORS), located from the document's root: `prefix` is
    where the validated part sits in it (`params` for the parameter overrides); union branch names dropped."""
    out = []
    for e in error.errors(include_url=False, include_input=False)[:MAX_FIELD_ERRORS]:
        raw = e["loc"]
        loc = tuple(part for j, part in enumerate(raw) if not _is_branch_name(part, raw[j - 1] if j else None))
        path, reason = field_path(loc), e["msg"]
        raised = e.get("ctx", {}).get("error")
        if isinstance(raised, InputError):  # a check on a whole model names the field it is about
            path = ".".join(filter(None, (path, raised.field)))
            reason = raised.reason
        if prefix:
            path = f"{prefix}.{path}" if path else prefix
        out.append(FieldError(field=path or "(request)", reason=reason))
    return out


def problem_lines(problem: InvalidRequest) -> list[str]:
    """`field.path: reason` per problem, and how many more there are beyond those listed."""
    lines = [f"{e.field}: {e.reason}" for e in problem.errors]
    if problem.total > len(problem.errors):
        lines.append(f"... and {problem.total - len(problem.errors)} more problems")
    return lines


def describe_validation_error(error: ValidationError, *, prefix: str = "") -> list[str]:
    return problem_lines(InvalidRequest(field_errors(error, prefix=prefix), error.error_count()))


def compute_request_report(request: MarginRequest, context: PricingContext | None = None) -> MarginReport:
    """The report of a validated request (priced in `context` when the caller keeps one), its input errors as the
    fields at fault. A what-if book is the user's own input: a position the engine cannot price (an issue of
    severity `error`) is bad input here, while the service's reports leave such positions out and say so.

    Raises:
        InvalidRequest: a bad parameter override (named under `params`) or an unpriceable input.
    """
    try:
        report = compute_margin_request(request, context)
    except ValidationError as e:
        if e.title != RiskParams.__name__:
            raise  # the engine built an invalid model: a bug for the catch-all, not the client's fault
        # the parameter overrides, merged into the shipped parameters and validated inside the engine
        raise InvalidRequest(field_errors(e, prefix="params"), e.error_count()) from e
    except InputError as e:
        raise InvalidRequest([FieldError(field=e.field, reason=e.reason)]) from e
    refused = [FieldError(field=issue.field, reason=issue.message) for issue in report.issues
               if issue.severity == "error"]
    if refused:
        raise InvalidRequest(refused)
    return report


def _is_branch_name(part: int | str, previous: int | str | None) -> bool:
    """Pydantic puts the union member it tried into the location: `positions.0.option.strike`."""
    if not isinstance(part, str):
        return False
    kind_tag = isinstance(previous, int) and part in _POSITION_KINDS
    return kind_tag or part in _MODEL_NAMES or part.startswith("function-")


_POSITION_KINDS = {"spot", "lend", "borrow", "perp", "future", "option", "lp"}
_MODEL_NAMES = {"SVISurface", "ESSVISurface", "PointsSurface"}
