"""Off-chain adapters against the local venues (real routes; fixtures validated against the real specs on every
response): whole-output checks, and each venue failure as a failed (incomplete) result, never an exception."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import aiohttp
import pytest

from adapters.deribit.adapter import fetch_deribit_positions
from adapters.derive.adapter import fetch_derive_positions
from adapters.hyperliquid.adapter import fetch_hyperliquid_positions
from risk_core.schema.positions import FuturePosition, OptionPosition, PerpPosition, SpotPosition
from venue_servers import derive as derive_server
from venue_servers.hyperliquid import USER
from venue_servers.runner import VenueServers, run_venue_servers


@pytest.fixture
async def venues() -> AsyncIterator[VenueServers]:
    async with run_venue_servers() as servers:
        yield servers


async def test_hyperliquid_main_and_hip3_dex_and_spot(venues: VenueServers) -> None:
    fx = venues.hyperliquid
    async with aiohttp.ClientSession() as s:
        r = await fetch_hyperliquid_positions(s, venues.urls["hyperliquid"], USER, now=venues.scenario.as_of)
    assert r.status.status == "ok" and r.complete
    perps = {(p.venue, p.underlying): p for p in r.positions if isinstance(p, PerpPosition)}
    assert set(perps) == {("hyperliquid", "BTC"), ("hyperliquid", "ETH"), ("hyperliquid", "SOL"),
                          ("hyperliquid-xyz", "GOLD")}
    for dex in ("", "xyz"):
        for fp in fx.positions(dex):
            coin = fp.coin.split(":")[-1]
            p = perps[("hyperliquid" if dex == "" else "hyperliquid-xyz", coin)]
            assert p.quantity == pytest.approx(fp.szi) and p.entry_price == pytest.approx(fp.entry, abs=0.005)
    # USDC = account value - unrealised PnL = the fixture's balance
    usdc = {p.venue: p.quantity for p in r.positions if isinstance(p, SpotPosition) and p.asset == "USDC"}
    assert usdc["hyperliquid"] == pytest.approx(fx.usdc, abs=1e-5)
    assert usdc["hyperliquid-xyz"] == pytest.approx(5_000.0, abs=1e-5)
    assert usdc["hyperliquid-spot"] == 1250.5
    spot = {p.asset: p.quantity for p in r.positions if isinstance(p, SpotPosition) and p.venue == "hyperliquid-spot"}
    assert spot == {"USDC": 1250.5, "HYPE": 42.0}
    main = next(v for v in r.venue_states if v.venue == "hyperliquid")
    assert main.method == "hyperliquid-cross-margin"
    assert main.parameters["max_leverage"] == {"BTC": 40, "ETH": 25, "SOL": 20}
    expected_mm = sum(abs(p.szi) * fx.mark(p.coin) / (2 * lev) for p, lev in zip(
        fx.positions(""), (40, 25, 20), strict=True))
    assert main.reported["maintenance_margin_usd"] == pytest.approx(expected_mm, abs=1e-5)


async def test_hyperliquid_failing_dex_is_partial_and_flagged(venues: VenueServers) -> None:
    venues.faults["hyperliquid"].set("spotClearinghouseState", "http-500")
    async with aiohttp.ClientSession() as s:
        r = await fetch_hyperliquid_positions(s, venues.urls["hyperliquid"], USER)
    assert not r.complete and r.status.status == "failed"
    assert r.status.reason is not None and r.status.reason.startswith("partial: spot: HTTP 500")
    assert r.positions and all(p.provenance is not None and not p.provenance.complete for p in r.positions)


@pytest.mark.parametrize(("fault", "words"), [("http-500", "HTTP 500"), ("malformed-json", "malformed JSON"),
                                              ("rename-field", "szi: Field required")])
async def test_hyperliquid_venue_failures(venues: VenueServers, fault: str, words: str) -> None:
    venues.faults["hyperliquid"].set("clearinghouseState", fault)  # type: ignore[arg-type]
    async with aiohttp.ClientSession() as s:
        r = await fetch_hyperliquid_positions(s, venues.urls["hyperliquid"], USER)
    assert r.status.status == "failed" and words in (r.status.reason or "")


async def test_deribit_options_and_futures_with_venue_margins(venues: VenueServers) -> None:
    acct = venues.deribit.account
    async with aiohttp.ClientSession() as s:
        r = await fetch_deribit_positions(s, venues.urls["deribit"], client_id=acct.client_id,
                                          client_secret=acct.client_secret, account="main")
    assert r.status.status == "ok", r.status.reason
    options = [p for p in r.positions if isinstance(p, OptionPosition)]
    futures = [p for p in r.positions if isinstance(p, FuturePosition)]
    assert len(options) == 3 and len(futures) == 1
    raw = {p["instrument_name"]: p for cur in ("BTC", "ETH") for p in acct.positions[cur]}
    for o in options:
        name = o.id.removeprefix("deribit:") if o.id else ""
        _, code, strike, kind = name.split("-")
        assert o.settlement == "inverse" and o.quantity == raw[name]["size"] and o.strike == float(strike)
        assert o.option_type == ("call" if kind == "C" else "put") and o.expiry.hour == 8
    f = futures[0]
    fr = raw[f.id.removeprefix("deribit:") if f.id else ""]
    assert f.quantity == pytest.approx(50_000.0 / 92_000.0) and f.entry_price == 92_000.0
    code = fr["instrument_name"].split("-")[1]
    assert f.expiry == datetime.strptime(code, "%d%b%y").replace(hour=8, tzinfo=UTC)
    (state,) = r.venue_states
    assert state.method == "deribit-portfolio-margin" and state.account == f.account
    assert state.provenance is not None and state.provenance.source == "deribit"
    # the venue's own figures: the account summary per currency, in coin and at the venue's index
    for cur in ("BTC", "ETH"):
        own = [p for p in acct.positions[cur]]
        index = venues.deribit.index(cur)
        assert state.reported[f"{cur}.maintenance_margin"] == pytest.approx(sum(p["maintenance_margin"] for p in own))
        assert state.reported[f"{cur}.maintenance_margin_usd"] == pytest.approx(
            sum(p["maintenance_margin"] for p in own) * index)
        options_value = sum(p["size"] * p["mark_price"] for p in own if p["kind"] == "option")
        futures_pl = sum(p["floating_profit_loss"] for p in own if p["kind"] == "future")
        assert state.reported[f"{cur}.equity"] == pytest.approx(acct.balances[cur] + options_value + futures_pl)
    assert state.reported["maintenance_margin_usd"] == pytest.approx(
        state.reported["BTC.maintenance_margin_usd"] + state.reported["ETH.maintenance_margin_usd"])
    # the collateral: each currency's cash balance, a spot holding of the coin with its provenance
    cash = {p.asset: p for p in r.positions if isinstance(p, SpotPosition)}
    assert {a: p.quantity for a, p in cash.items()} == acct.balances
    assert all(p.venue == "deribit" and p.provenance is not None and p.provenance.source == "deribit"
               and p.provenance.timestamp is not None for p in cash.values())
    assert fr["kind"] == "future"


async def test_deribit_account_summary_answers_as_the_spec_says(venues: VenueServers) -> None:
    """Extended or not, the served summary passes the real spec (the server validates every answer); extended
    adds the account's identity fields, which the spec describes as present only then."""
    acct = venues.deribit.account
    base = venues.urls["deribit"]
    async with aiohttp.ClientSession() as s:
        async with s.get(f"{base}/public/auth", params={"grant_type": "client_credentials",
                                                        "client_id": acct.client_id,
                                                        "client_secret": acct.client_secret}) as resp:
            token = (await resp.json())["result"]["access_token"]
        bodies = {}
        for extended in ("false", "true"):
            async with s.get(f"{base}/private/get_account_summary", params={"currency": "BTC", "extended": extended},
                             headers={"Authorization": f"Bearer {token}"}) as resp:
                assert resp.status == 200
                bodies[extended] = (await resp.json())["result"]
        async with s.get(f"{base}/private/get_account_summary", params={"currency": "BTC"}) as resp:
            assert resp.status == 401
    assert set(bodies["true"]) - set(bodies["false"]) == {"id", "email", "system_name", "type", "username",
                                                          "tfa_enabled"}
    assert bodies["false"]["balance"] == acct.balances["BTC"]
    assert bodies["false"]["margin_balance"] == bodies["false"]["equity"]


async def test_deribit_bad_key_and_outage(venues: VenueServers) -> None:
    async with aiohttp.ClientSession() as s:
        r = await fetch_deribit_positions(s, venues.urls["deribit"], client_id="x", client_secret="y", account="m")
        assert r.status.status == "failed" and "public/auth" in (r.status.reason or "")
        venues.faults["deribit"].set("/private/get_positions", "hang")
        acct = venues.deribit.account
        r = await fetch_deribit_positions(s, venues.urls["deribit"], client_id=acct.client_id,
                                          client_secret=acct.client_secret, account="m", timeout_s=0.3)
        venues.faults["deribit"].release()
    assert r.status.status == "failed" and "timeout after 0.3 s" in (r.status.reason or "")


async def test_derive_subaccount_with_session_key(venues: VenueServers) -> None:
    sub = venues.derive.subaccounts[derive_server.SUBACCOUNT_ID]
    async with aiohttp.ClientSession() as s:
        r = await fetch_derive_positions(s, venues.urls["derive"], wallet=derive_server.WALLET,
                                         session_key=derive_server.SESSION_KEY,
                                         subaccount_id=derive_server.SUBACCOUNT_ID)
    assert r.status.status == "ok"
    opts = {p.id: p for p in r.positions if isinstance(p, OptionPosition)}
    perps = [p for p in r.positions if isinstance(p, PerpPosition)]
    spots = {p.asset: p.quantity for p in r.positions if isinstance(p, SpotPosition)}
    raw = {f"derive:{p['instrument_name']}": p for p in sub["positions"]}
    assert len(opts) == 2 and len(perps) == 1 and spots == {"USDC": 50_000.0, "ETH": 3.0}
    for pid, o in opts.items():
        assert pid is not None
        assert o.quantity == float(raw[pid]["amount"]) and o.settlement == "linear" and o.expiry.hour == 8
    assert perps[0].quantity == 2.5 and perps[0].entry_price == float(raw["derive:ETH-PERP"]["average_price"])
    (state,) = r.venue_states
    reported = state.reported
    assert reported["maintenance_margin"] == float(sub["maintenance_margin"])
    # Derive's margins are balances: the requirement is the subaccount's value less the balance, and positive
    assert reported["maintenance_margin_usd"] == pytest.approx(
        float(sub["subaccount_value"]) - float(sub["maintenance_margin"]))
    assert 0 < reported["maintenance_margin_usd"] < reported["initial_margin_usd"] < reported["equity_usd"]
    # the subaccount's value adds up as the universal equity does: collaterals at mark, options at mark value,
    # a perp at its unrealised P&L (not its notional)
    collaterals = sum(float(c["amount"]) * float(c["mark_price"]) for c in sub["collaterals"])
    marks = sum(float(p["amount"]) * float(p["mark_price"]) for p in sub["positions"]
                if p["instrument_type"] == "option")
    perp = raw["derive:ETH-PERP"]
    perp_pnl = float(perp["amount"]) * (float(perp["mark_price"]) - float(perp["average_price"]))
    assert reported["equity_usd"] == pytest.approx(collaterals + marks + perp_pnl, abs=0.05)


async def test_derive_rejects_a_foreign_signer_and_a_stale_timestamp(venues: VenueServers) -> None:
    async with aiohttp.ClientSession() as s:
        r = await fetch_derive_positions(s, venues.urls["derive"], wallet=derive_server.WALLET,
                                         session_key="0x" + "11" * 32, subaccount_id=derive_server.SUBACCOUNT_ID)
        assert r.status.status == "failed" and "HTTP 401" in (r.status.reason or "")
        assert "not a session key" in (r.status.reason or "")
        from adapters.derive import adapter as derive_adapter

        old = derive_adapter.auth_headers(derive_server.WALLET, derive_server.SESSION_KEY,
                                          now_ms=int((datetime.now(UTC) - timedelta(hours=1)).timestamp() * 1000))
        async with s.post(f"{venues.urls['derive']}/private/get_subaccount", headers=old,
                          json={"subaccount_id": derive_server.SUBACCOUNT_ID}) as resp:
            body = await resp.json()
        assert resp.status == 401 and body["error"]["data"] == "timestamp outside the authentication window"


async def test_derive_renamed_field_fails_loudly(venues: VenueServers) -> None:
    venues.faults["derive"].set("private/get_subaccount", "rename-field")
    async with aiohttp.ClientSession() as s:
        r = await fetch_derive_positions(s, venues.urls["derive"], wallet=derive_server.WALLET,
                                         session_key=derive_server.SESSION_KEY,
                                         subaccount_id=derive_server.SUBACCOUNT_ID)
    assert r.status.status == "failed" and "maintenance_margin: Field required" in (r.status.reason or "")
    assert r.positions == []


async def test_an_unreachable_venue_is_one_sentence() -> None:
    """A venue whose port nothing listens on: the failed source says so once, not in aiohttp's words."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again before the request: nothing listens there
    async with aiohttp.ClientSession() as s:
        r = await fetch_hyperliquid_positions(s, f"http://127.0.0.1:{port}", USER)
    assert r.status.status == "failed"
    assert r.status.reason == f"http://127.0.0.1:{port}/info: cannot connect to 127.0.0.1:{port} (connection refused)"
