"""The cost of a GraphQL document, measured before it is validated or run: depth, aliases and fields, each counted
with fragments expanded.

Strawberry's depth and alias limiters expand every fragment spread where it occurs, so fragments that each
spread the next one twice cost them 2^n steps (depth 20 blocked the event loop for 4 s). Here each fragment is
measured once and its figures reused wherever it is spread, so the check is linear in the document's size while
the figures it compares are those of the fully expanded query.
"""

from __future__ import annotations

from dataclasses import dataclass

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionSetNode,
)


@dataclass(frozen=True)
class CostLimits:
    max_depth: int
    max_aliases: int
    max_fields: int


@dataclass(frozen=True)
class Cost:
    depth: int  # fields nested in fields; introspection fields (`__schema`...) do not deepen, as in strawberry
    aliases: int
    fields: int  # field selections once every fragment is expanded: what execution would walk

    def __add__(self, other: Cost) -> Cost:
        return Cost(max(self.depth, other.depth), self.aliases + other.aliases, self.fields + other.fields)


_NOTHING = Cost(0, 0, 0)


class _Measure:
    def __init__(self, document: DocumentNode, limits: CostLimits) -> None:
        self._fragments = {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}
        self._limits = limits
        self._measured: dict[str, Cost] = {}
        self._measuring: set[str] = set()  # a fragment cycle counts nothing here; validation reports it

    def selections(self, selection_set: SelectionSetNode | None) -> Cost:
        total = _NOTHING
        for selection in selection_set.selections if selection_set is not None else ():
            if isinstance(selection, FieldNode):
                total += self._field(selection)
            elif isinstance(selection, InlineFragmentNode):
                total += self.selections(selection.selection_set)
            elif isinstance(selection, FragmentSpreadNode):
                total += self._fragment(selection.name.value)
        return self._capped(total)

    def _field(self, field: FieldNode) -> Cost:
        inner = self.selections(field.selection_set)
        introspection = field.name.value.startswith("__")
        depth = 0 if introspection else inner.depth + (field.selection_set is not None)
        return Cost(depth, inner.aliases + (field.alias is not None), inner.fields + 1)

    def _fragment(self, name: str) -> Cost:
        if name in self._measured:
            return self._measured[name]
        fragment = self._fragments.get(name)
        if fragment is None or name in self._measuring:
            return _NOTHING  # unknown fragment or a cycle: validation answers either
        self._measuring.add(name)
        cost = self._measured[name] = self.selections(fragment.selection_set)
        self._measuring.discard(name)
        return cost

    def _capped(self, cost: Cost) -> Cost:
        # past a limit the exact figure no longer matters: capping keeps the integers small however deep the fan-out
        limits = self._limits
        return Cost(
            min(cost.depth, limits.max_depth + 1),
            min(cost.aliases, limits.max_aliases + 1),
            min(cost.fields, limits.max_fields + 1),
        )


def measure_operations(document: DocumentNode, limits: CostLimits) -> dict[str | None, Cost]:
    """Each operation's cost (keyed by its name), fragments expanded; capped just above each limit."""
    measure = _Measure(document, limits)
    return {
        d.name.value if d.name is not None else None: measure.selections(d.selection_set)
        for d in document.definitions
        if isinstance(d, OperationDefinitionNode)
    }


def cost_errors(document: DocumentNode, limits: CostLimits) -> list[GraphQLError]:
    """One error per limit an operation of `document` exceeds, naming the limit."""
    errors = []
    for name, cost in measure_operations(document, limits).items():
        operation = f"operation {name!r}" if name is not None else "the operation"
        if cost.depth > limits.max_depth:
            errors.append(GraphQLError(f"{operation} exceeds the maximum depth of {limits.max_depth}"))
        if cost.aliases > limits.max_aliases:
            errors.append(
                GraphQLError(f"{operation} exceeds the maximum of {limits.max_aliases} aliases (fragments expanded)")
            )
        if cost.fields > limits.max_fields:
            errors.append(
                GraphQLError(f"{operation} exceeds the maximum of {limits.max_fields} fields once its fragments "
                             "are expanded")
            )
    return errors
