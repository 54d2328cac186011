"""The GraphQL schema: typed summary fields, and the big grids as one JSON scalar (typed GraphQL fields cost
~40x more per number; PERFORMANCE_NOTES.md). Without an aggregator service only the what-if `margin` exists."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TypeVar

import strawberry
from graphql import GraphQLError
from pydantic import BaseModel, ValidationError
from strawberry.extensions import (
    AddValidationRules,
    DisableIntrospection,
    MaskErrors,
    MaxTokensLimiter,
    ParserCache,
)
from strawberry.scalars import JSON
from strawberry.schema.config import StrawberryConfig
from strawberry.types import ExecutionContext, Info

from aggregator.engine_pool import EnginePool
from api.graphql.attestation_types import AttestationSigner
from api.graphql.cost import CostLimits
from api.graphql.limits import BoundedValidation
from api.graphql.service_types import AccountHistory, Market, StoredReport
from api.http.access import LiveReadSlots
from api.http.attestation import AttestationProvider
from api.http.history import DEFAULT_LIMIT, HistoryQuery
from api.http.metrics import ApiMetrics
from api.http.problems import Problem, field_errors, invalid_request
from api.http.service import CreditQuery, RiskService
from api.http.settings import ApiSettings
from api.http.what_if import compute_what_if_in_pool
from risk_core.errors import InputError
from risk_core.schema.report import MarginReport
from risk_core.schema.report import PositionRisk as PositionRiskModel

log = logging.getLogger(__name__)
Answer = TypeVar("Answer")
BAD_USER_INPUT = "BAD_USER_INPUT"  # Apollo's code for a bad argument value, which GraphQL clients and tools know
CACHED_QUERIES = 256  # distinct query texts kept parsed and validated; bounded so unique texts cannot grow memory


@dataclass(frozen=True)
class GraphQLContext:
    metrics: ApiMetrics
    service: RiskService | None
    engine: EnginePool
    attestations: AttestationProvider | None = None
    live_reads: LiveReadSlots | None = None  # the REST wallet routes' slots: one bound for both
    client: str = "graphql"  # who asks (the view sets it per request): their share of the live reads


@strawberry.type
class PositionRisk:
    id: str | None
    index: int
    kind: str
    category: str
    venue: str
    chain: str
    account: str
    underlying: str | None
    value_usd: float
    delta: float
    gamma: float
    vega: float
    theta: float
    standalone_margin_usd: float
    priced: bool

    @classmethod
    def from_model(cls, p: PositionRiskModel) -> PositionRisk:
        return cls(**{name: getattr(p, name) for name in PositionRiskModel.model_fields})


@strawberry.type
class UnderlyingGreeks:
    asset: str
    spot: float
    risk_usd: float
    delta: float
    delta_usd: float
    gamma: float
    gamma_usd: float = strawberry.field(description="change of delta_usd for a 1% spot move")
    vega: float = strawberry.field(description="USD per vol point (0.01)")
    theta: float = strawberry.field(description="USD per calendar day")
    liquidation_down: float | None = strawberry.field(
        description="spot fall to liquidation as a signed relative move <= 0 (0: already below MM); null if none"
    )
    liquidation_up: float | None = strawberry.field(
        description="spot rise to liquidation as a signed relative move >= 0 (0: already below MM); null if none"
    )


@strawberry.type(description="A margin report: the summary as typed fields, grids and breakdowns as JSON")
class Margin:
    report: strawberry.Private[MarginReport]
    as_of: datetime
    params_version: str
    equity_usd: float
    collateral_usd: float
    maintenance_margin_usd: float
    initial_margin_usd: float
    free_collateral_usd: float
    margin_ratio: float | None
    status: str
    isolated_margin_usd: float
    portfolio_saving_usd: float
    risk_usd: float
    contingency_usd: float
    complete: bool
    warnings: list[str]

    @classmethod
    def from_report(cls, report: MarginReport) -> Margin:
        summary = {name: getattr(report, name) for name in _SUMMARY_FIELDS}
        return cls(report=report, **summary)

    @strawberry.field
    def positions(self) -> list[PositionRisk]:
        return [PositionRisk.from_model(p) for p in self.report.positions]

    @strawberry.field
    def greeks(self) -> list[UnderlyingGreeks]:
        return [
            UnderlyingGreeks(
                asset=asset,
                spot=u.spot,
                risk_usd=u.risk_usd,
                delta=u.delta,
                delta_usd=u.delta_usd,
                gamma=u.gamma,
                gamma_usd=u.gamma_usd,
                vega=u.vega,
                theta=u.theta,
                liquidation_down=u.liquidation_move.down,
                liquidation_up=u.liquidation_move.up,
            )
            for asset, u in self.report.underlyings.items()
        ]

    @strawberry.field(description="per underlying: spot x vol P&L grid, extreme and skew scenarios, worst scenario")
    def scenarios(self) -> JSON:
        return JSON(
            {
                asset: {"worst": u.worst_scenario.model_dump(mode="json"), **u.grid.model_dump(mode="json")}
                for asset, u in self.report.underlyings.items()
            }
        )

    @strawberry.field(description="equity, collateral and margin per venue and per chain")
    def breakdown(self) -> JSON:
        return JSON(self.report.model_dump(mode="json", include={"by_venue", "by_chain"}))

    @strawberry.field(description="the whole report, as POST /v1/margin answers it")
    def report_json(self) -> JSON:
        return JSON(self.report.model_dump(mode="json"))


_SUMMARY_FIELDS = [name for name in Margin.__annotations__ if name != "report" and name in MarginReport.model_fields]


def _graphql_error(problem: Problem) -> GraphQLError:
    return GraphQLError(
        problem.detail,
        extensions={
            "code": BAD_USER_INPUT,
            "status": problem.status,
            "errors": [e.model_dump() for e in problem.errors],
        },
    )


@strawberry.type
class WhatIfQuery:
    @strawberry.field(description="What-if margin of a request: the JSON body POST /v1/margin takes (naming no "
                      "market, it is priced against the service's current snapshot)")
    async def margin(self, info: Info[GraphQLContext, None], request: JSON) -> Margin:
        try:
            context = info.context
            outcome = await compute_what_if_in_pool(request, context.service, context.engine, context.metrics)
            return Margin.from_report(MarginReport.model_validate_json(outcome.report_json or b""))
        except Problem as problem:
            raise _graphql_error(problem) from problem


@strawberry.type
class Wallet:
    address: str

    @strawberry.field(description="null when the aggregator does not know the wallet")
    async def risk(self, info: Info[GraphQLContext, None]) -> Margin | None:
        with _live_read(info):
            report = await _lookup(_service(info).wallet_risk, self.address, "address")
        return Margin.from_report(report) if report is not None else None

    @strawberry.field(description="the wallet's positions as the aggregator read them; null when unknown")
    async def positions(self, info: Info[GraphQLContext, None]) -> JSON | None:
        with _live_read(info):
            return _as_json(await _lookup(_service(info).wallet_positions, self.address, "address"))

    @strawberry.field(description="the wallet's signed credit view under margin model `model` (grid or fhs; "
                      "omitted, the service's own), as GET /v1/wallets/{address}/credit?model= answers it; null "
                      "when the aggregator does not know the wallet")
    async def credit(self, info: Info[GraphQLContext, None], model: str | None = None) -> JSON | None:
        try:
            query = CreditQuery(model=model)  # type: ignore[arg-type]  # validated here: 422 naming `model`
        except ValidationError as e:
            raise _graphql_error(invalid_request(field_errors(e))) from e
        with _live_read(info):
            asked = _service(info).wallet_credit(self.address, model=query.model)
            return _as_json(await _answer(asked, "address", queried=frozenset({"model"})))


@contextmanager
def _live_read(info: Info[GraphQLContext, None]) -> Iterator[None]:
    """Holds one of the live-read slots while a wallet is read; none free is an error naming the limit."""
    slots = info.context.live_reads
    if slots is None:
        yield
        return
    try:
        slots.acquire(info.context.client)
    except Problem as problem:
        raise GraphQLError(problem.detail, extensions={"code": "RATE_LIMITED", "status": problem.status}) from problem
    try:
        yield
    finally:
        slots.release(info.context.client)


@strawberry.type
class AttestedWallet(Wallet):
    @strawberry.field(description="the wallet's signed margin attestation for the verifier on chain `chainId`, as "
                      "GET /v1/wallets/{address}/attestation answers it; null when the wallet is unknown")
    async def attestation(self, info: Info[GraphQLContext, None], chain_id: int) -> JSON | None:
        return _as_json(await _attest(info, self.address, chain_id))


@strawberry.type
class ServiceQuery(WhatIfQuery):
    @strawberry.field(description="Margin report of an account; null when there is no such account")
    async def account(self, info: Info[GraphQLContext, None], id: str) -> Margin | None:
        report = await _lookup(_service(info).account_risk, id, "id")
        return Margin.from_report(report) if report is not None else None

    @strawberry.field
    def wallet(self, address: str) -> Wallet:
        return Wallet(address=address)

    @strawberry.field(description="Spot, sources and vol surface of an asset; null when it has no market")
    async def market(self, info: Info[GraphQLContext, None], asset: str) -> Market | None:
        view = await _lookup(_service(info).market, asset, "asset")
        return None if view is None else Market.from_view(view)

    @strawberry.field(
        description="A page of an account's stored report headlines, newest first, with since <= computedAt < "
        "until, as GET /v1/accounts/{account_id}/history answers it (next page: until = its next_until); null "
        "when there is no such account"
    )
    async def account_history(
        self,
        info: Info[GraphQLContext, None],
        account_id: str,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = DEFAULT_LIMIT,
    ) -> AccountHistory | None:
        try:
            query = HistoryQuery(since=since, until=until, limit=limit)
        except ValidationError as e:
            raise _graphql_error(invalid_request(field_errors(e))) from e
        asked = _service(info).account_history(account_id, since=query.since, until=query.until, limit=query.limit)
        page = await _answer(asked, "accountId")
        return None if page is None else AccountHistory.from_page(page)

    @strawberry.field(
        description="One stored report of an account with its ids and computedAt, as GET "
        "/v1/accounts/{account_id}/reports/{report_id} answers it; null when the account has no such report"
    )
    async def stored_report(
        self, info: Info[GraphQLContext, None], account_id: str, report_id: int
    ) -> StoredReport | None:
        stored = await _answer(_service(info).stored_report(account_id, report_id), "accountId")
        return None if stored is None else StoredReport.from_stored(stored)


@strawberry.type
class AttestedServiceQuery(ServiceQuery):
    @strawberry.field
    def wallet(self, address: str) -> AttestedWallet:  # type: ignore[override]
        return AttestedWallet(address=address)

    @strawberry.field(description="The service's attestation signer, its chains and rotated keys, as GET "
                      "/v1/attestations/signer answers it")
    def attestation_signer(self, info: Info[GraphQLContext, None]) -> AttestationSigner:
        return AttestationSigner.from_info(_attestations(info).signer_info())


def _attestations(info: Info[GraphQLContext, None]) -> AttestationProvider:
    attestations = info.context.attestations
    if attestations is None:
        raise GraphQLError("no attestation signer is configured", extensions={"code": "SERVICE_UNAVAILABLE"})
    return attestations


async def _attest(info: Info[GraphQLContext, None], address: str, chain_id: int) -> BaseModel | None:
    attestations = _attestations(info)

    async def attest() -> BaseModel:
        try:
            return await attestations.wallet_attestation(address, chain_id)
        except InputError as e:
            if e.field != "chain_id":
                raise
            errors = [{"field": "chainId", "reason": e.reason}]  # the argument's GraphQL name
            raise GraphQLError(str(e), extensions={"code": BAD_USER_INPUT, "status": 422, "errors": errors}) from e

    return await _answer(attest(), "address")


def _service(info: Info[GraphQLContext, None]) -> RiskService:
    service = info.context.service
    if service is None:  # the schema without service fields is used then; this guards a misassembled app
        raise GraphQLError("no aggregator service is configured", extensions={"code": "SERVICE_UNAVAILABLE"})
    return service


async def _lookup(method: Callable[[str], Awaitable[Answer]], identifier: str, argument: str) -> Answer | None:
    return await _answer(method(identifier), argument)


async def _answer(
    asked: Awaitable[Answer | None], argument: str, *, queried: frozenset[str] = frozenset()
) -> Answer | None:
    """The service's answer; None (GraphQL's null, the idiom for a missing object) when it knows no such thing. An
    InputError names `argument`, or the argument of `queried` it names."""
    try:
        return await asked
    except LookupError:
        return None
    except InputError as e:
        field = e.field if e.field in queried else argument
        raise GraphQLError(
            str(e),
            extensions={"code": BAD_USER_INPUT, "status": 422, "errors": [{"field": field, "reason": e.reason}]},
        ) from e
    except ConnectionError as e:  # a dependency is down (the database): the client may retry, nothing is wrong
        raise GraphQLError(str(e), extensions={"code": "SERVICE_UNAVAILABLE", "status": 503}) from e


def _as_json(model: BaseModel | None) -> JSON | None:
    return JSON(model.model_dump(mode="json")) if model is not None else None


def _utc_text(value: datetime) -> str:
    """A time as REST writes it (pydantic): ISO 8601 in UTC with "Z", not "+00:00"."""
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


UTC_DATETIME = strawberry.scalar(
    name="DateTime",
    description="ISO 8601 date and time; answered in UTC with a Z, as REST answers it",
    serialize=_utc_text,
    parse_value=datetime.fromisoformat,
)


class LoggedSchema(strawberry.Schema):
    """Logs only unexpected errors (with their traceback); a client's bad query or input is not a server event."""

    def process_errors(self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None) -> None:
        for error in errors:
            if _is_unexpected(error):
                log.error("GraphQL resolver failed", exc_info=error.original_error)


def _is_unexpected(error: GraphQLError) -> bool:
    return error.original_error is not None and not isinstance(error.original_error, GraphQLError)


def build_schema(*, service: RiskService | None, settings: ApiSettings, attested: bool = False) -> strawberry.Schema:
    # rule classes are made once: the validation cache is keyed by them, so a rule class made per request would
    # never hit; extensions themselves are per-request factories (they hold request state)
    limits = CostLimits(
        max_depth=settings.graphql_max_depth,
        max_aliases=settings.graphql_max_aliases,
        max_fields=settings.graphql_max_fields,
    )
    rules = [] if settings.graphql_introspection else list(DisableIntrospection().validation_rules)
    return LoggedSchema(
        query=(AttestedServiceQuery if attested else ServiceQuery) if service is not None else WhatIfQuery,
        config=StrawberryConfig(scalar_map={datetime: UTC_DATETIME}),
        extensions=[
            lambda: ParserCache(maxsize=CACHED_QUERIES),
            lambda: AddValidationRules(rules),
            lambda: BoundedValidation(limits, maxsize=CACHED_QUERIES),
            lambda: MaxTokensLimiter(max_token_count=settings.graphql_max_tokens),
            lambda: MaskErrors(should_mask_error=_is_unexpected, error_message="internal error"),
        ],
    )
