"""A local Deribit (JSON-RPC over HTTP GET, /api/v2/...) serving a real option chain from reference_data/market/deribit.

Public: get_instruments, get_book_summary_by_currency (options: bid/ask/mark in coin, `underlying_price` and
`underlying_index` per option; futures: marks), ticker (the perpetual: mark and index), get_index, get_time.
Private (Authorization: Bearer from public/auth with client_credentials): get_positions with the venue's own
initial and maintenance margin per position, and get_account_summary per currency (the cash balance and what it
adds up to; see `account_summary`).

Values not in the CSV are stated here: book `high`/`low`/`last` are null (no trade history recorded), a future's
bid/ask are its mark -/+ half a tick, the perpetual's mark is the index. Every response is validated against the
real OpenAPI description before it is sent (strict: no field the spec does not declare).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from aiohttp import web

from venue_servers.faults import Faults, rename_key
from venue_servers.scenario import DeribitFile, DeribitRow, MarketScenario, load_deribit_file
from venue_servers.spec import SpecViolation, validate_deribit_query, validate_deribit_response, validate_once

CREATED_MS = 1_735_689_600_000  # 2025-01-01: creation time of every fixture instrument
RENAMED = ("mark_price", "markPrice")  # the field the 'rename-field' fault renames


def _ms(dt: datetime) -> int:
    return int(dt.timestamp() * 1000)


@dataclass(frozen=True)
class DeribitAccount:
    client_id: str
    client_secret: str
    positions: dict[str, list[dict[str, Any]]]  # currency -> get_positions items
    balances: dict[str, float]  # currency -> cash balance in coin (get_account_summary's `balance`)


@dataclass
class DeribitFixture:
    data: DeribitFile
    account: DeribitAccount
    scenario: MarketScenario
    tokens: set[str] = field(default_factory=set)

    def index(self, currency: str) -> float:
        """The index now: the recorded chain's first index of the currency, moved along the scenario's path."""
        return self.scenario.price("deribit-index", currency)


def _settlement_period(expiry: datetime) -> str:
    return "month" if expiry.day >= 24 and expiry.weekday() == 4 else "week"


def instrument(row: DeribitRow) -> dict[str, Any]:
    return {
        "instrument_name": row.instrument, "kind": "option", "base_currency": row.currency, "quote_currency": "USD",
        "option_type": "call" if row.is_call else "put", "strike": row.strike, "tick_size": 0.0001,
        "contract_size": 1, "min_trade_amount": 0.1, "is_active": True,
        "settlement_period": _settlement_period(row.expiry), "creation_timestamp": CREATED_MS,
        "expiration_timestamp": _ms(row.expiry),
    }


def futures(data: DeribitFile, currency: str) -> dict[str, tuple[float, datetime]]:
    return {r.futures_name: (r.futures_price, r.expiry) for r in data.for_currency(currency)
            if not r.futures_name.startswith("SYN.")}


def future_instrument(name: str, currency: str, expiry: datetime) -> dict[str, Any]:
    return {
        "instrument_name": name, "kind": "future", "base_currency": currency, "quote_currency": "USD",
        "tick_size": 0.5 if currency == "BTC" else 0.05, "contract_size": 10 if currency == "BTC" else 1,
        "min_trade_amount": 10, "is_active": True, "settlement_period": _settlement_period(expiry),
        "creation_timestamp": CREATED_MS, "expiration_timestamp": _ms(expiry),
    }


def option_summary(row: DeribitRow, at_ms: int) -> dict[str, Any]:
    mid = 0.5 * (row.bid + row.ask) if row.bid is not None and row.ask is not None else None
    return {
        "instrument_name": row.instrument, "base_currency": row.currency, "quote_currency": "USD",
        "bid_price": row.bid, "ask_price": row.ask, "mid_price": mid, "mark_price": row.mark,
        "underlying_price": row.underlying, "underlying_index": row.underlying_name, "interest_rate": 0.0,
        "open_interest": row.open_interest, "volume": row.volume, "high": None, "low": None, "last": None,
        "creation_timestamp": at_ms,
    }


def future_summary(name: str, currency: str, mark: float, at_ms: int) -> dict[str, Any]:
    half = 0.25 if currency == "BTC" else 0.025
    return {
        "instrument_name": name, "base_currency": currency, "quote_currency": "USD", "bid_price": mark - half,
        "ask_price": mark + half, "mid_price": mark, "mark_price": mark, "open_interest": 1.0e8, "volume": 1000.0,
        "volume_usd": 1.0e8, "high": None, "low": None, "last": None, "creation_timestamp": at_ms,
        "estimated_delivery_price": mark,
    }


def default_account(data: DeribitFile) -> DeribitAccount:
    """A read-only account: a short put spread and a long future on BTC, a long call on ETH, with Deribit-style
    margins (figures of the fixture, in coin)."""
    by_name = {r.instrument: r for r in data.rows}

    def option(name: str, size: float, avg: float, im: float, mm: float) -> dict[str, Any]:
        r = by_name[name]
        return {
            "instrument_name": name, "kind": "option", "direction": "buy" if size > 0 else "sell", "size": size,
            "average_price": avg, "average_price_usd": avg * r.index, "mark_price": r.mark, "index_price": r.index,
            "delta": round(r.delta * size, 5), "initial_margin": im, "maintenance_margin": mm,
            "open_orders_margin": 0.0, "floating_profit_loss": (r.mark - avg) * size,
            "floating_profit_loss_usd": (r.mark - avg) * size * r.index, "realized_profit_loss": 0.0,
            "total_profit_loss": (r.mark - avg) * size, "settlement_price": 0.0,
        }

    btc_future = next(iter(futures(data, "BTC").items()))
    name, (fmark, _) = btc_future
    index = by_name[next(r.instrument for r in data.rows if r.currency == "BTC")].index
    size_usd = 50_000.0
    avg = 92_000.0
    future = {
        "instrument_name": name, "kind": "future", "direction": "buy", "size": size_usd, "size_currency":
        round(size_usd / fmark, 8), "average_price": avg, "mark_price": fmark, "index_price": index,
        "delta": round(size_usd / fmark, 8), "initial_margin": round(size_usd / fmark * 0.02, 8),
        "maintenance_margin": round(size_usd / fmark * 0.01, 8), "open_orders_margin": 0.0,
        "floating_profit_loss": round(size_usd * (1 / avg - 1 / fmark), 8), "realized_profit_loss": 0.0,
        "total_profit_loss": round(size_usd * (1 / avg - 1 / fmark), 8), "settlement_price": avg,
        "estimated_liquidation_price": 41_000.0,
    }
    btc_puts = sorted((r for r in data.rows if r.currency == "BTC" and not r.is_call
                       and r.expiry.month == 3 and 70_000 <= r.strike <= 90_000), key=lambda r: r.strike)
    eth_call = next(r for r in data.rows if r.currency == "ETH" and r.is_call and r.expiry.month == 3
                    and r.strike >= 3500)
    short_put, long_put = btc_puts[-1], btc_puts[0]
    return DeribitAccount(
        client_id="metarisk-readonly",
        client_secret="fixture-secret",
        positions={
            "BTC": [
                option(short_put.instrument, -5.0, short_put.mark * 1.05, 0.9, 0.7),
                option(long_put.instrument, 5.0, long_put.mark * 0.95, 0.0, 0.0),
                future,
            ],
            "ETH": [option(eth_call.instrument, 20.0, eth_call.mark * 0.9, 0.0, 0.0)],
        },
        # cash that carries the short put spread: its equity stands about 2.4x Deribit's own maintenance margin
        balances={"BTC": 2.0, "ETH": 6.0},
    )


def account_summary(account: DeribitAccount, currency: str, *, extended: bool) -> dict[str, Any]:
    """get_account_summary of one currency, in coin, added up from the account's positions as Deribit does:
    equity = balance + the options' mark value + the futures' session P&L (the fixture's futures were opened this
    session: their settlement price is the entry), margin balance = equity (a portfolio-margin account), the
    margins the sums of the positions' own. Greeks other than delta are not modelled by the fixture: 0."""
    items = account.positions.get(currency, [])
    options = [p for p in items if p["kind"] == "option"]
    futures_ = [p for p in items if p["kind"] == "future"]
    balance = account.balances.get(currency, 0.0)
    options_pl = sum(p["floating_profit_loss"] for p in options)
    futures_pl = sum(p["floating_profit_loss"] for p in futures_)
    equity = balance + sum(p["size"] * p["mark_price"] for p in options) + futures_pl
    im, mm = sum(p["initial_margin"] for p in items), sum(p["maintenance_margin"] for p in items)
    summary: dict[str, Any] = {
        "currency": currency, "balance": balance, "equity": equity, "margin_balance": equity,
        "initial_margin": im, "maintenance_margin": mm, "projected_initial_margin": im,
        "projected_maintenance_margin": mm, "available_funds": equity - im,
        "available_withdrawal_funds": max(0.0, min(balance, equity - im)), "portfolio_margining_enabled": True,
        "delta_total": sum(p["delta"] for p in items), "options_delta": sum(p["delta"] for p in options),
        "options_gamma": 0.0, "options_vega": 0.0, "options_theta": 0.0,
        "options_pl": options_pl, "options_session_upl": options_pl, "options_session_rpl": 0.0,
        "futures_pl": futures_pl, "futures_session_upl": futures_pl, "futures_session_rpl": 0.0,
        "total_pl": options_pl + futures_pl, "session_upl": options_pl + futures_pl, "session_rpl": 0.0,
        "session_funding": 0.0,
    }
    if extended:
        summary.update({"id": 1001, "email": "metarisk-fixture@example.invalid", "system_name": account.client_id,
                        "username": account.client_id, "type": "main", "tfa_enabled": True})
    return summary


def make_fixture(scenario: MarketScenario) -> DeribitFixture:
    data = load_deribit_file(scenario.deribit_file)
    return DeribitFixture(data=data, account=default_account(data), scenario=scenario)


def _envelope(result: Any, now_us: int) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": 1, "result": result, "testnet": False, "usIn": now_us, "usOut": now_us + 50,
            "usDiff": 50}


def make_app(fixture: DeribitFixture, faults: Faults | None = None, *, validate: bool = True) -> web.Application:
    flt = faults or Faults()
    app = web.Application()

    def respond(route: str, result: Any) -> web.Response:
        body = _envelope(result, _ms(fixture.scenario.now()) * 1000)  # the venue's clock
        if validate:
            validate_once(route, body, lambda b: validate_deribit_response(route, b))
        if flt.renames(route):
            body = rename_key(body, *RENAMED)  # type: ignore[assignment]
        return web.Response(text=json.dumps(body), content_type="application/json")

    def error(code: int, message: str, status: int = 400) -> web.Response:
        body = {"jsonrpc": "2.0", "id": 1, "error": {"code": code, "message": message}, "testnet": False,
                "usIn": 0, "usOut": 0, "usDiff": 0}
        return web.Response(status=status, text=json.dumps(body), content_type="application/json")

    async def handle(request: web.Request) -> web.Response:
        route = "/" + request.match_info["method"]
        faulty = await flt.intercept(route)
        if faulty is not None:
            return faulty
        query = dict(request.query)
        try:
            validate_deribit_query(route, query)
        except SpecViolation as e:
            return error(-32602, f"invalid params: {e}")
        data = fixture.scenario.deribit_data()  # the chain as the market stands now
        at_ms = _ms(fixture.scenario.now())
        if route == "/public/get_time":
            return respond(route, at_ms)
        if route == "/public/get_index":
            cur = query["currency"]
            return respond(route, {cur: fixture.index(cur), "edp": fixture.index(cur)})
        if route == "/public/get_instruments":
            cur, kind = query["currency"], query.get("kind")
            items: list[dict[str, Any]] = []
            if kind in (None, "option"):
                items += [instrument(r) for r in data.for_currency(cur)]
            if kind in (None, "future"):
                items += [future_instrument(n, cur, e) for n, (_, e) in futures(data, cur).items()]
            return respond(route, items)
        if route == "/public/get_book_summary_by_currency":
            cur, kind = query["currency"], query.get("kind")
            items = []
            if kind in (None, "option"):
                items += [option_summary(r, at_ms) for r in data.for_currency(cur)]
            if kind in (None, "future"):
                items += [future_summary(n, cur, m, at_ms) for n, (m, _) in futures(data, cur).items()]
            return respond(route, items)
        if route == "/public/ticker":
            name = query["instrument_name"]
            cur = name.split("-")[0]
            if name != f"{cur}-PERPETUAL" or cur not in ("BTC", "ETH"):
                return error(10009, "instrument_not_found")
            idx = fixture.index(cur)
            return respond(route, {
                "instrument_name": name, "timestamp": at_ms, "state": "open", "index_price": idx, "mark_price": idx,
                "last_price": idx, "best_bid_price": idx - 0.5, "best_ask_price": idx + 0.5, "best_bid_amount": 1e4,
                "best_ask_amount": 1e4, "max_price": idx * 1.015, "min_price": idx * 0.985, "open_interest": 1e9,
                "current_funding": 0.0, "funding_8h": 0.0001, "stats": {"volume": 1e4, "high": idx * 1.01,
                                                                         "low": idx * 0.99},
            })
        if route == "/public/auth":
            acct = fixture.account
            if (query.get("grant_type") != "client_credentials" or query.get("client_id") != acct.client_id
                    or query.get("client_secret") != acct.client_secret):
                return error(13004, "invalid_credentials", status=400)
            token = f"tok-{len(fixture.tokens) + 1}"
            fixture.tokens.add(token)
            return respond(route, {"access_token": token, "token_type": "bearer", "expires_in": 900,
                                   "refresh_token": f"refresh-{token}", "scope": "account:read trade:read"})
        if route.startswith("/private/"):
            auth = request.headers.get("Authorization", "")
            if not auth.lower().startswith("bearer ") or auth.split(" ", 1)[1] not in fixture.tokens:
                return error(13009, "unauthorized", status=401)
        if route == "/private/get_account_summary":
            return respond(route, account_summary(fixture.account, query["currency"],
                                                  extended=query.get("extended") == "true"))
        if route == "/private/get_positions":
            items = fixture.account.positions.get(query["currency"], [])
            kind = query.get("kind")
            return respond(route, [p for p in items if kind is None or p["kind"] == kind])
        return error(-32601, "Method not found", status=404)

    app.router.add_get("/api/v2/{method:(public|private)/[a-z_]+}", handle)
    return app
