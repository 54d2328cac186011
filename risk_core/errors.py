"""The one exception risk_core raises on purpose: bad input, naming the field and the reason."""


class InputError(ValueError):
    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason
