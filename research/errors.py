"""Bad research input, naming where: a file and line, or a field."""


class BacktestInputError(ValueError):
    def __init__(self, where: str, reason: str) -> None:
        super().__init__(f"{where}: {reason}")
        self.where = where
        self.reason = reason
