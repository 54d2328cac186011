"""Validation that measures a document's cost first: a document over a limit is refused before graphql-core's
rules walk it (some of them, such as overlapping-fields, grow with the expanded query)."""

from __future__ import annotations

from collections.abc import Iterator

from strawberry.extensions import ValidationCache

from api.graphql.cost import CostLimits, cost_errors


class BoundedValidation(ValidationCache):
    """The cached validation, preceded by the cost limits (depth, aliases, fields with fragments expanded)."""

    def __init__(self, limits: CostLimits, *, maxsize: int) -> None:
        super().__init__(maxsize=maxsize)
        self._limits = limits

    def on_validate(self) -> Iterator[None]:
        document = self.execution_context.graphql_document
        errors = cost_errors(document, self._limits) if document is not None else []
        if errors:
            self.execution_context.pre_execution_errors = errors
            yield
            return
        yield from super().on_validate()
