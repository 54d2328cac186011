"""Turn bad input into one readable line per problem, naming the field (for the CLI and the API)."""

from __future__ import annotations

from pydantic import ValidationError


def field_path(loc: tuple[int | str, ...]) -> str:
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if path else str(part)
    return path


def describe_validation_error(error: ValidationError, *, limit: int = 10) -> list[str]:
    """`field.path: reason` per error; the union branch names pydantic adds to a location are dropped."""
    lines = []
    for e in error.errors()[:limit]:
        raw = e["loc"]
        loc = tuple(part for j, part in enumerate(raw) if not _is_branch_name(part, raw[j - 1] if j else None))
        lines.append(f"{field_path(loc) or '(request)'}: {e['msg']}")
    if error.error_count() > limit:
        lines.append(f"... and {error.error_count() - limit} more errors")
    return lines


def _is_branch_name(part: int | str, previous: int | str | None) -> bool:
    """Pydantic puts the union member it tried into the location: `positions.0.option.strike`."""
    if not isinstance(part, str):
        return False
    kind_tag = isinstance(previous, int) and part in _POSITION_KINDS
    return kind_tag or part in _MODEL_NAMES or part.startswith("function-")


_POSITION_KINDS = {"spot", "lend", "borrow", "perp", "future", "option", "lp"}
_MODEL_NAMES = {"SVISurface", "ESSVISurface", "PointsSurface"}
