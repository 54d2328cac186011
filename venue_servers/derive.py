"""A local Derive (JSON-RPC over HTTP POST, /public/... and /private/...), answering `{"id", "result"}` or
`{"id", "error"}` as the venue does.

Public: get_all_instruments (options, with option_details), get_tickers (options per currency and expiry_date,
perps per currency), get_time. Private: get_subaccount and get_positions, authenticated per request by session key
(headers X-DeriveWallet / X-DeriveTimestamp / X-DeriveSignature, or their older X-Lyra* names): the signature is an
EIP-191 personal_sign of the millisecond timestamp, by the wallet's owner or a registered session key.

Option markets are built from the recorded Deribit chain (Derive lists the same 08:00 UTC expiries): prices
in USD = Deribit's coin price x its underlying, the same implied vols; a quote without a Deribit bid has bid "0"
(an empty side, as Derive shows it). Every result is validated against the real OpenAPI description before it is
sent, and every request body against its request schema.
"""

from __future__ import annotations

import json
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from eth_account import Account
from eth_account.messages import encode_defunct

from venue_servers.faults import Faults, rename_key
from venue_servers.hyperliquid import dec
from venue_servers.scenario import DeribitRow, MarketScenario, load_deribit_file
from venue_servers.spec import SpecViolation, validate_derive_params, validate_derive_result, validate_once

RENAMED = {  # what the 'rename-field' fault renames, per method
    "public/get_tickers": ("M", "mark"),
    "public/get_all_instruments": ("option_details", "optionDetails"),
    "private/get_subaccount": ("maintenance_margin", "maint_margin"),
    "private/get_positions": ("amount", "size"),
}
AUTH_WINDOW_MS = 300_000
CURRENCIES = ("BTC", "ETH", "SOL")
# A fixed test identity (never a real key): the Derive smart-contract wallet, its owner and a read-only session key.
WALLET = "0x8Ef9c3a5b9A2a3E5F0dCc4D3bB9cC0F6A1e2D3C4"
SESSION_KEY = "0x" + "5e" * 32
SUBACCOUNT_ID = 30769


def derive_name(row: DeribitRow) -> str:
    return f"{row.currency}-{row.expiry:%Y%m%d}-{row.strike:.0f}-{'C' if row.is_call else 'P'}"


@dataclass
class DeriveFixture:
    scenario: MarketScenario
    rows: tuple[DeribitRow, ...]
    wallet: str = WALLET
    session_keys: set[str] = field(default_factory=lambda: {Account.from_key(SESSION_KEY).address})
    subaccounts: dict[int, dict[str, Any]] = field(default_factory=dict)

    @property
    def t_ms(self) -> int:
        return int(self.scenario.now().timestamp() * 1000)

    def option_ticker(self, r: DeribitRow) -> dict[str, Any]:
        usd = r.underlying
        bid = 0.0 if r.bid is None else r.bid * usd
        ask = 0.0 if r.ask is None else r.ask * usd
        stats = {"c": "12.5", "h": dec(r.mark * usd * 1.1, 2), "l": dec(r.mark * usd * 0.9, 2), "n": 7,
                 "oi": dec(r.open_interest, 2), "p": "0.01", "pr": dec(r.mark * usd * 12.5, 2), "v": "1000"}
        return {
            "A": "10" if ask else "0", "B": "10" if bid else "0", "I": dec(self.scenario.price("derive-index",
                                                                                              r.currency), 2),
            "M": dec(r.mark * usd, 4), "a": dec(ask, 4), "b": dec(bid, 4), "maxp": dec(r.mark * usd * 2 + 50, 2),
            "minp": "0", "stats": stats, "t": self.t_ms, "f": None,
            "option_pricing": {"ai": dec(r.iv, 4), "bi": dec(r.iv, 4), "d": dec(r.delta, 5), "df": "1",
                               "f": dec(usd, 2), "g": "0.0001", "i": dec(r.iv, 4), "m": dec(r.mark * usd, 4),
                               "r": "0", "t": "-10", "v": dec(r.vega, 5)},
        }

    def perp_ticker(self, currency: str) -> dict[str, Any]:
        index = self.scenario.price("derive-index", currency)
        mark = index * 1.0001
        stats = {"c": "100", "h": dec(index * 1.02, 2), "l": dec(index * 0.98, 2), "n": 100, "oi": "1000",
                 "p": "0.001", "pr": "0", "v": dec(index * 100, 2)}
        return {"A": "5", "B": "5", "I": dec(index, 4), "M": dec(mark, 4), "a": dec(mark * 1.0001, 4),
                "b": dec(mark * 0.9999, 4), "maxp": dec(mark * 1.05, 2), "minp": dec(mark * 0.95, 2),
                "stats": stats, "t": self.t_ms, "f": "0.0000125", "option_pricing": None}

    def instrument(self, r: DeribitRow) -> dict[str, Any]:
        return {
            "instrument_name": derive_name(r), "instrument_type": "option", "base_currency": r.currency,
            "quote_currency": "USDC", "is_active": True, "tick_size": "0.1", "amount_step": "0.01",
            "minimum_amount": "0.01", "maximum_amount": "10000", "base_fee": "0.5", "maker_fee_rate": "0.0003",
            "taker_fee_rate": "0.0003", "fifo_min_allocation": "0", "pro_rata_amount_step": "0.01",
            "pro_rata_fraction": "0", "scheduled_activation": 1_735_689_600, "scheduled_deactivation":
            int(r.expiry.timestamp()), "base_asset_address": "0x4BB4C3CDc7562f08e9910A0C7D8bB7e108861eB4",
            "base_asset_sub_id": str(int(r.expiry.timestamp())), "erc20_details": None, "perp_details": None,
            "mark_price_fee_rate_cap": None,
            "option_details": {"expiry": int(r.expiry.timestamp()), "index": f"{r.currency}-USD",
                               "option_type": "C" if r.is_call else "P", "strike": dec(r.strike, 2),
                               "settlement_price": None},
        }


def _position(name: str, kind: str, amount: float, avg: float, mark: float, index: float, im: float, mm: float,
              delta: float, t_ms: int) -> dict[str, Any]:
    pnl = amount * (mark - avg)
    # an option is worth its mark; a perp's value is its unrealised P&L (its notional is not the holder's)
    value = amount * mark if kind == "option" else pnl
    return {
        "instrument_name": name, "instrument_type": kind, "amount": dec(amount, 4), "amount_step": "0.01",
        "average_price": dec(avg, 4), "average_price_excl_fees": dec(avg, 4), "creation_timestamp": t_ms,
        "cumulative_funding": "0", "delta": dec(delta, 5), "gamma": "0", "index_price": dec(index, 2),
        "initial_margin": dec(im, 2), "maintenance_margin": dec(mm, 2), "mark_price": dec(mark, 4),
        "mark_value": dec(value, 2), "net_settlements": "0", "open_orders_margin": "0",
        "pending_funding": "0", "realized_pnl": "0", "realized_pnl_excl_fees": "0", "theta": "0", "total_fees": "0",
        "unrealized_pnl": dec(pnl, 2), "unrealized_pnl_excl_fees": dec(pnl, 2), "vega": "0", "leverage": None,
        "liquidation_price": None,
    }


def _collateral(asset: str, amount: float, price: float, t_ms: int) -> dict[str, Any]:
    return {
        "asset_name": asset, "asset_type": "erc20", "currency": asset, "amount": dec(amount, 6),
        "amount_step": "0.000001", "average_price": dec(price, 4), "average_price_excl_fees": dec(price, 4),
        "creation_timestamp": t_ms, "cumulative_interest": "0", "delta": "1" if asset != "USDC" else "0",
        "delta_currency": asset, "initial_margin": "0", "maintenance_margin": "0", "mark_price": dec(price, 4),
        "mark_value": dec(amount * price, 2), "open_orders_margin": "0", "pending_interest": "0",
        "realized_pnl": "0", "realized_pnl_excl_fees": "0", "total_fees": "0", "unrealized_pnl": "0",
        "unrealized_pnl_excl_fees": "0",
    }


def default_subaccount(fx: DeriveFixture) -> dict[str, Any]:
    eth_index = fx.scenario.price("derive-index", "ETH")
    call = next(r for r in fx.rows if r.currency == "ETH" and r.is_call and r.expiry.month == 3 and r.strike >= 3600)
    put = next(r for r in fx.rows if r.currency == "ETH" and not r.is_call and r.expiry.month == 3
               and r.strike <= 2800 and r.strike >= 2600)
    t = fx.t_ms
    positions = [
        _position(derive_name(call), "option", -10.0, call.mark * call.underlying * 1.1, call.mark * call.underlying,
                  eth_index, 1500.0, 1200.0, -10 * call.delta, t),
        _position(derive_name(put), "option", 10.0, put.mark * put.underlying * 0.9, put.mark * put.underlying,
                  eth_index, 0.0, 0.0, 10 * put.delta, t),
        _position("ETH-PERP", "perp", 2.5, eth_index * 0.98, eth_index * 1.0001, eth_index, 400.0, 250.0, 2.5, t),
    ]
    collaterals = [_collateral("USDC", 50_000.0, 1.0, t), _collateral("ETH", 3.0, eth_index, t)]
    # the positions' requirements: Derive reports margins as balances (value less requirement; below 0 is short of
    # margin), each part's own: collaterals carry their value (no haircut on USDC and ETH here), positions their
    # value less their requirement
    im, mm = 1900.0, 1450.0
    collaterals_value = 50_000.0 + 3.0 * eth_index
    positions_value = sum(float(p["mark_value"]) for p in positions)
    return {
        "subaccount_id": SUBACCOUNT_ID, "label": "metarisk fixture", "currency": ["USDC", "ETH"], "manager_id": 2,
        "risk_universe_id": 0, "margin_type": "PM2", "is_under_liquidation": False, "failed_to_fetch": False,
        "collaterals": collaterals, "collaterals_initial_margin": dec(collaterals_value, 2),
        "collaterals_maintenance_margin": dec(collaterals_value, 2),
        "collaterals_value": dec(collaterals_value, 2), "positions": positions,
        "positions_initial_margin": dec(positions_value - im, 2),
        "positions_maintenance_margin": dec(positions_value - mm, 2),
        "positions_value": dec(positions_value, 2),
        "initial_margin": dec(collaterals_value + positions_value - im, 2),
        "maintenance_margin": dec(collaterals_value + positions_value - mm, 2), "open_orders": [],
        "open_orders_margin": "0", "mm_credits": "0", "projected_margin_change": "0",
        "subaccount_value": dec(collaterals_value + positions_value, 2), "vault_deposit_holds": [],
    }


def make_fixture(scenario: MarketScenario) -> DeriveFixture:
    rows = load_deribit_file(scenario.deribit_file).rows
    fx = DeriveFixture(scenario=scenario, rows=rows)
    fx.subaccounts[SUBACCOUNT_ID] = default_subaccount(fx)
    return fx


def _header(request: web.Request, name: str) -> str | None:
    return request.headers.get(f"X-Derive{name}") or request.headers.get(f"X-Lyra{name}")


def authenticate(fx: DeriveFixture, request: web.Request, *, now_ms: int) -> str | None:
    """None when the request is signed by the wallet's owner or a session key, else the reason it is not."""
    wallet, ts, sig = _header(request, "Wallet"), _header(request, "Timestamp"), _header(request, "Signature")
    if not wallet or not ts or not sig:
        return "missing X-DeriveWallet / X-DeriveTimestamp / X-DeriveSignature"
    if wallet.lower() != fx.wallet.lower():
        return "unknown wallet"
    if not ts.isdigit() or abs(int(ts) - now_ms) > AUTH_WINDOW_MS:
        return "timestamp outside the authentication window"
    try:
        signer = Account.recover_message(encode_defunct(text=ts), signature=sig)
    except Exception:  # noqa: BLE001 - any undecodable signature is simply not valid
        return "invalid signature"
    if signer not in fx.session_keys:
        return "signer is not a session key of this wallet"
    return None


def make_app(fixture: DeriveFixture, faults: Faults | None = None, *, validate: bool = True) -> web.Application:
    flt = faults or Faults()
    by_expiry: dict[tuple[str, str], list[DeribitRow]] = defaultdict(list)
    for r in fixture.rows:
        by_expiry[(r.currency, f"{r.expiry:%Y%m%d}")].append(r)

    def result(method: str, rid: Any, body: Any) -> web.Response:
        if validate:
            validate_once(method, body, lambda b: validate_derive_result(method, b))
        out: Any = {"id": rid, "result": body}
        if flt.renames(method):
            out = rename_key(out, *RENAMED[method])
        return web.Response(text=json.dumps(out), content_type="application/json")

    def error(rid: Any, code: int, message: str, status: int = 200, data: str | None = None) -> web.Response:
        return web.Response(status=status, content_type="application/json",
                            text=json.dumps({"id": rid, "error": {"code": code, "message": message, "data": data}}))

    async def handle(request: web.Request) -> web.Response:
        method = request.match_info["method"]
        faulty = await flt.intercept(method)
        if faulty is not None:
            return faulty
        try:
            params = await request.json()
        except json.JSONDecodeError:
            return error(None, -32700, "Parse error", status=400)
        rid = params.pop("id", None) if isinstance(params, dict) else None
        if f"/{method}" not in {"/public/get_all_instruments", "/public/get_tickers", "/public/get_time",
                                "/private/get_subaccount", "/private/get_positions"}:
            return error(rid, -32601, "Method not found", status=404)
        try:
            validate_derive_params(method, params)
        except SpecViolation as e:
            return error(rid, -32602, "Invalid params", data=str(e))
        if method.startswith("private/"):
            reason = authenticate(fixture, request, now_ms=int(time.time() * 1000))
            if reason is not None:
                return error(rid, 14014, "Authentication failed", status=401, data=reason)
            sub = fixture.subaccounts.get(int(params["subaccount_id"]))
            if sub is None:
                return error(rid, 14001, "Subaccount does not exist")
            if method == "private/get_subaccount":
                return result(method, rid, sub)
            return result(method, rid, {"subaccount_id": sub["subaccount_id"], "positions": sub["positions"]})
        if method == "public/get_time":
            return result(method, rid, fixture.t_ms)
        if method == "public/get_all_instruments":
            kind, cur = params["instrument_type"], params.get("currency")
            items = [fixture.instrument(r) for r in fixture.rows
                     if kind == "option" and (cur is None or r.currency == cur) and not params["expired"]]
            return result(method, rid, {"instruments": items, "pagination": {"count": len(items), "num_pages": 1}})
        kind, cur = params["instrument_type"], params.get("currency")
        if kind == "option":
            expiry = params.get("expiry_date")
            if cur is None or expiry is None:
                return error(rid, -32602, "Invalid params", data="options need currency and expiry_date")
            listed = {r.instrument for r in by_expiry.get((cur, str(expiry)), [])}
            rows = [r for r in fixture.scenario.deribit_data().rows if r.instrument in listed]  # priced now
            return result(method, rid, {"tickers": {derive_name(r): fixture.option_ticker(r) for r in rows}})
        if kind == "perp":
            curs = [cur] if cur else list(CURRENCIES)
            return result(method, rid, {"tickers": {f"{c}-PERP": fixture.perp_ticker(c) for c in curs
                                                    if c in fixture.scenario.spot}})
        return result(method, rid, {"tickers": {}})

    app = web.Application()
    app.router.add_post("/{method:(public|private)/[a-z_]+}", handle)
    return app
