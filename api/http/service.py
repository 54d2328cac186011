"""What the API asks of the aggregator. It is injected into the app; without one, its routes answer 503."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field

from api.http.access import OPEN, Access, KeyRule
from risk_core.schema.market import MarketSnapshot
from risk_core.schema.report import MarginReport


@runtime_checkable
class RiskService(Protocol):
    """Live risk of accounts and wallets, read from the chains and venues.

    Every method may raise LookupError (unknown account, wallet or asset: answered 404),
    risk_core.errors.InputError (a malformed identifier: answered 422 naming the field) or ConnectionError (a
    dependency it cannot answer without is down: answered 503). The models returned by
    `wallet_positions`, `wallet_credit` and `market` are the aggregator's own: the API serializes them as they
    are and documents their JSON Schema from these methods' return annotations; so are those of
    `account_history` and `stored_report`.
    """

    async def account_risk(self, account_id: str) -> MarginReport: ...

    async def wallet_risk(self, address: str) -> MarginReport: ...

    async def wallet_positions(self, address: str) -> BaseModel: ...

    async def wallet_credit(self, address: str, model: str | None = None) -> BaseModel:
        """The signed credit view under margin model `model` (None: the service's own); InputError naming `model`
        when the service cannot margin the wallet under it."""
        ...

    async def market(self, asset: str) -> BaseModel: ...

    async def account_history(
        self, account_id: str, *, since: datetime | None, until: datetime | None, limit: int
    ) -> BaseModel:
        """A page of the account's stored report headlines with since <= computed_at < until, newest first."""
        ...

    async def stored_report(self, account_id: str, report_id: int) -> BaseModel | None:
        """One stored report of the account; None when the account has no report with this id."""
        ...

    async def market_snapshot(self) -> MarketSnapshot:
        """The current market snapshot: what a what-if request naming no market is priced against."""
        ...


class CreditQuery(BaseModel):
    """The query of GET /v1/wallets/{address}/credit. An unknown parameter is an error."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: Literal["grid", "fhs"] | None = Field(
        default=None,
        description="the margin model: grid (the scenario grid) or fhs (filtered historical simulation); omitted, "
        "the service's own (the parameter file's, grid). The signed view names it (marginModel)",
    )


@dataclass(frozen=True)
class ServiceRoute:
    """A GET route answered by one RiskService method called with the route's one path parameter, and the
    fields of its query when it takes one (`query`: a model forbidding unknown parameters)."""

    path: str
    method_name: str
    operation_id: str
    summary: str
    access: Access = OPEN
    query: type[BaseModel] | None = None

    @property
    def parameter(self) -> str:
        return self.path.split("{", 1)[1].split("}", 1)[0]


# any address is a live read of every chain and venue: a key, or the per-client limit, and a bounded number at once
WALLET_READ = Access(KeyRule.OR_CLIENT_LIMIT, live_read=True)
SERVICE_ROUTES = (
    ServiceRoute("/v1/accounts/{account_id}/risk", "account_risk", "accountRisk", "Account margin report"),
    ServiceRoute("/v1/wallets/{address}/risk", "wallet_risk", "walletRisk", "Wallet margin report, all chains",
                 WALLET_READ),
    ServiceRoute("/v1/wallets/{address}/positions", "wallet_positions", "walletPositions", "Wallet positions",
                 WALLET_READ),
    # signed by the service's key
    ServiceRoute("/v1/wallets/{address}/credit", "wallet_credit", "walletCredit", "Signed credit view",
                 Access(KeyRule.REQUIRED, live_read=True), query=CreditQuery),
    ServiceRoute("/v1/markets/{asset}", "market", "market", "Spot, sources and vol surface of an asset"),
)
