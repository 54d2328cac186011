"""The one exception risk_core raises on purpose: bad input, naming the field and the reason."""

from __future__ import annotations


class InputError(ValueError):
    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason

    def __reduce__(self) -> tuple[type[InputError], tuple[str, str]]:
        # rebuilt from its fields, not its message, when it crosses a process boundary (the engine pool)
        return (InputError, (self.field, self.reason))
