"""The demo end to end, in process: `run_demo_service()` (its own devnet from the cache, the local venues, the
service with the seeded demo account, a SQLite store) behind the real aiohttp app. Every route answers for the demo
account with the expected shape and never a 500; and the acceptance criterion: a chain killed mid-refresh or the
database gone loses no stored snapshot, and the API answers `complete: false` rather than an error."""

from __future__ import annotations

import json
import math
import statistics
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from aiohttp.test_utils import TestClient, TestServer
from aiohttp.web import Application
from eth_account import Account
from eth_account.messages import encode_typed_data
from prometheus_client.parser import text_string_to_metric_families
from web3 import Web3

from aggregator.store import AsyncStore, Store
from api.demo import DEMO_ACCOUNT, Demo, run_demo_service
from api.http.service import SERVICE_ROUTES
from api.http.settings import DEMO_API_KEY
from chains.client import make_chain_client
from devnet import run as devnet_run
from devnet.deploy import compile_abi
from devnet.run import RunningDevnet
from venue_servers.scenario import pyth_confidence_ratio

pytestmark = pytest.mark.asyncio(loop_scope="module")

ROOT = Path(__file__).resolve().parents[2]
KEY = {"X-API-Key": DEMO_API_KEY}
START_BUDGET_S = 30.0  # from the cache: seconds (anvil loads three states, the venues start, the market is read)
ONCHAIN_VENUES = {"wallet", "aave-v3", "uniswap-v3", "gmx-v2"}
VENUES = {"hyperliquid", "hyperliquid-xyz", "hyperliquid-spot", "deribit", "derive"}


@dataclass
class Running:
    demo: Demo
    client: TestClient[Any, Application]
    started_in_s: float
    cache_built: list[Path]
    database: Path


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def running(devnet: RunningDevnet, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Running]:
    """The demo, started once for the module. `devnet` (the session's) only guarantees the cached state exists:
    the demo starts a devnet of its own from it, beside the session's, on other ports."""
    database = tmp_path_factory.mktemp("demo") / "metarisk.db"
    built: list[Path] = []
    real_build = devnet_run.build_cache

    def build_cache(directory: Path) -> Any:  # recorded: the demo must reuse the cache, never rebuild it
        built.append(directory)
        return real_build(directory)

    devnet_run.build_cache = build_cache
    try:
        started = time.monotonic()
        # the keeper publishes once, at start: the feeds then hold still while the tests compare them
        async with run_demo_service(database_url=f"sqlite:///{database}", data_directory=database.parent,
                                    keeper_interval_s=3600.0) as demo:
            started_in = time.monotonic() - started
            devnet_run.build_cache = real_build
            client: TestClient[Any, Application] = TestClient(TestServer(demo.app))
            await client.start_server()
            try:
                yield Running(demo, client, started_in, built, database)
            finally:
                await client.close()
    finally:
        devnet_run.build_cache = real_build


async def get_json(client: TestClient[Any, Application], path: str, **kwargs: Any) -> Any:
    response = await client.get(path, **kwargs)
    assert response.status == 200, (path, response.status, await response.text())
    assert response.content_type == "application/json"
    return await response.json()


def position_sources(report: dict[str, Any]) -> dict[str, str]:
    """Market sources are named kind:... (fetch:chainlink@ethereum, chainlink@ethereum:ETH/USD); these are not."""
    return {s["name"]: s["status"] for s in report["sources"]
            if ":" not in s["name"] and ("@" in s["name"] or s["name"] in ("hyperliquid", "deribit", "derive"))}


async def test_the_demo_starts_from_the_cache_in_seconds(running: Running, devnet: RunningDevnet) -> None:
    assert running.cache_built == []
    assert running.started_in_s < START_BUDGET_S
    demo = running.demo
    assert set(demo.devnet.nodes) == {"ethereum", "arbitrum", "base"}
    assert {n.port for n in demo.devnet.nodes.values()}.isdisjoint(n.port for n in devnet.nodes.values())
    assert demo.devnet.manifest == devnet.manifest  # the same cached deployment
    assert await demo.service.watched_account(DEMO_ACCOUNT) is not None
    assert running.database.exists()


async def test_account_risk(running: Running) -> None:
    report = await get_json(running.client, f"/v1/accounts/{DEMO_ACCOUNT}/risk")
    assert report["complete"] is True, [w for w in report["warnings"] if " is " in w]
    assert set(position_sources(report).values()) == {"ok"}
    assert len(position_sources(report)) == 10  # 7 on-chain sources over 3 chains, 3 venues
    venues = {p["venue"] for p in report["positions"]}
    assert venues == ONCHAIN_VENUES | VENUES
    assert {p["chain"] for p in report["positions"]} >= {"ethereum", "arbitrum", "base"}
    assert math.isclose(report["equity_usd"], sum(p["value_usd"] for p in report["positions"]), rel_tol=1e-9)
    assert report["status"] in ("healthy", "margin_call", "liquidatable")
    assert report["maintenance_margin_usd"] > 0 and report["margin_ratio"] > 0
    assert report["computed_at"] is not None and report["age_seconds"] >= 0
    assert set(report["underlyings"]) >= {"BTC", "ETH"}
    # the refresh is stored: the store's latest report is the one served
    store = running.demo.service.store
    assert store is not None
    stored = await store.latest_report(DEMO_ACCOUNT)
    assert stored is not None and stored.report.equity_usd == report["equity_usd"]
    assert stored.computed_at.isoformat().replace("+00:00", "Z") == report["computed_at"].replace("+00:00", "Z")


async def test_each_venue_equity_stands_beside_the_venues_own_margin(running: Running) -> None:
    """The off-chain venue-accounts' collateral is read (Deribit's cash per currency, Derive's collaterals,
    Hyperliquid's account value and spot balances): each equity as the report adds it up matches the venue's own
    account figure and stands above the venue's own maintenance margin, as a live, healthy account's does."""
    report = await get_json(running.client, f"/v1/accounts/{DEMO_ACCOUNT}/risk")
    equity = {venue: b["equity_usd"] for venue, b in report["by_venue"].items()}
    own = {m["venue"]: m["reported"] for m in report["venue_margins"] if m["chain"] != "ethereum"
           and m["method"] != "aave-v3-health-factor"}
    assert set(own) == {"deribit", "derive", "hyperliquid", "hyperliquid-xyz"}
    # Deribit: equity (cash + options value + futures P&L) at the venue's index vs the snapshot's spot
    assert equity["deribit"] >= own["deribit"]["maintenance_margin_usd"] > 0
    assert equity["deribit"] == pytest.approx(own["deribit"]["equity_usd"], rel=0.01)
    # Derive reports margin balances: above zero is not short of margin; the requirement is value less balance
    assert own["derive"]["maintenance_margin"] > 0
    assert equity["derive"] == pytest.approx(own["derive"]["subaccount_value"], rel=0.01)
    assert equity["derive"] >= own["derive"]["subaccount_value"] - own["derive"]["maintenance_margin"] > 0
    for venue in ("hyperliquid", "hyperliquid-xyz"):
        assert equity[venue] == pytest.approx(own[venue]["account_value_usd"], rel=0.01)
        assert equity[venue] >= own[venue]["maintenance_margin_usd"] > 0
    # the cash behind them is a position with its provenance
    cash = {p["id"] for p in report["positions"] if p["kind"] == "spot" and p["venue"] in own}
    assert {"deribit:BTC", "deribit:ETH", "derive:USDC", "derive:ETH", "hyperliquid:USDC"} <= cash


async def test_wallet_routes(running: Running) -> None:
    wallet = running.demo.devnet.manifest.demo_account
    client = running.client
    risk = await get_json(client, f"/v1/wallets/{wallet}/risk")
    assert {p["chain"] for p in risk["positions"]} >= {"ethereum", "arbitrum", "base"}
    assert {p["venue"] for p in risk["positions"]} >= ONCHAIN_VENUES
    assert {n: s for n, s in position_sources(risk).items() if "@" in n} == dict.fromkeys(
        ["wallet@ethereum", "aave-v3@ethereum", "uniswap-v3@ethereum", "wallet@arbitrum", "aave-v3@arbitrum",
         "gmx-v2@arbitrum", "wallet@base"], "ok")

    positions = await get_json(client, f"/v1/wallets/{wallet}/positions")
    assert positions["address"] == wallet
    assert set(positions["blocks"]) == {"ethereum", "arbitrum", "base"}
    assert all(isinstance(b, int) and b > 0 for b in positions["blocks"].values())
    ethereum = running.demo.devnet.manifest.chain("ethereum").seeds
    held = {p["id"]: p for p in positions["positions"]}
    assert held["wallet:ethereum:WBTC"]["quantity"] == ethereum.erc20["WBTC"] / 1e8
    assert held["aave-v3:ethereum:WETH:supply"]["quantity"] == ethereum.aave.supplied["WETH"] / 1e18  # type: ignore[union-attr]
    assert [p["id"] for p in risk["positions"]] == [p["id"] for p in positions["positions"]]


async def test_the_demo_wallet_route_is_complete(running: Running) -> None:
    wallet = running.demo.devnet.manifest.demo_account
    risk = await get_json(running.client, f"/v1/wallets/{wallet}/risk")
    assert position_sources(risk)["hyperliquid"] == "ok"
    assert risk["complete"] is True


async def test_credit_is_keyed_and_signed(running: Running) -> None:
    wallet = running.demo.devnet.manifest.demo_account
    assert (await running.client.get(f"/v1/wallets/{wallet}/credit")).status == 401
    credit = await get_json(running.client, f"/v1/wallets/{wallet}/credit", headers=KEY)
    signer = running.demo.attestations.signer.address  # the service's own key, not the wallet's
    assert credit["signer"] == signer != wallet
    message = encode_typed_data(full_message=credit["typed_data"])
    assert Account.recover_message(message, signature=credit["signature"]) == signer
    assert credit["typed_data"]["message"]["wallet"] == wallet
    assert credit["typed_data"]["message"]["equityUsd"] == round(credit["equity_usd"] * 1e8)
    assert {e["asset"] for e in credit["exposures"]} >= {"BTC", "ETH"}


async def test_market(running: Running) -> None:
    market = await get_json(running.client, "/v1/markets/ETH")
    assert market["asset"] == "ETH"
    assert market["spot"] > 0 and market["vol"] is not None and market["forwards"]
    # the asset's own statuses, and the fetches that feed every asset (pyth, hyperliquid, chainlink@CHAIN)
    shared = {s["name"] for s in market["sources"] if "ETH" not in s["name"]}
    assert market["sources"] and "fetch:chainlink@ethereum" in shared
    assert all(name.startswith("fetch:") and not any(a in name for a in ("BTC", "SOL")) for name in shared)
    assert (await running.client.get("/v1/markets/DOGE")).status == 404


async def test_every_position_is_priced_and_the_devnet_chainlink_feeds_are_a_market_source(running: Running) -> None:
    demo = running.demo
    report = await get_json(running.client, f"/v1/accounts/{DEMO_ACCOUNT}/risk")
    assert not [w for w in report["warnings"] if "no price" in w]
    assert [p["id"] for p in report["positions"] if not p["priced"]] == []
    held = {p["id"]: p for p in report["positions"]}
    spot = demo.service._market.snapshot.spot  # type: ignore[union-attr]  # noqa: SLF001 - the snapshot served
    wsteth = demo.devnet.manifest.chain("arbitrum").seeds.erc20["WSTETH"] / 1e18
    assert held["wallet:arbitrum:WSTETH"]["value_usd"] == pytest.approx(wsteth * spot["WSTETH"])
    assert held["aave-v3:arbitrum:WSTETH:supply"]["value_usd"] > 0
    assert held["hyperliquid-spot:HYPE"]["value_usd"] == pytest.approx(42.0 * spot["HYPE"])
    market_sources = {s["name"]: s for s in report["sources"]}
    assert "approximated" in market_sources["price:WSTETH/USD"]["reason"]
    # a surface is missing only where options should exist: SOL (the recorded Deribit day has BTC and ETH), not
    # the HIP-3 dex's GOLD nor the tokens, which have no options anywhere
    assert {n for n, s in market_sources.items() if n.startswith("vol:") and s["status"] != "ok"} == {"vol:SOL"}

    # ETH: the demo devnet's feed, as the keeper published it, among the sources the policy used; the keeper
    # publishes the market as it has moved since start-up, and the next snapshot reads it
    await demo.keeper.publish()
    await demo.service.refresh_market()
    w3 = Web3(Web3.HTTPProvider(demo.devnet.nodes["ethereum"].url))
    feed = next(f for f in demo.devnet.chains.chain("ethereum").price_feeds if f.asset == "ETH")
    contract = w3.eth.contract(address=Web3.to_checksum_address(feed.address), abi=compile_abi("MockV3Aggregator"))
    round_id, answer, _, updated_at, _ = contract.functions.latestRoundData().call()
    assert answer == demo.keeper.published["ethereum"]["ETH"]
    market = await get_json(running.client, "/v1/markets/ETH")
    sources = {s["name"]: s for s in market["sources"]}
    chainlink = sources["chainlink@ethereum:ETH/USD"]
    assert chainlink["status"] == "ok"
    assert chainlink["reason"].startswith(f"used at {answer / 1e8:.8g}; round {round_id}, updatedAt {updated_at} (")
    assert "chainlink@ethereum" in sources["price:ETH/USD"]["reason"] and market_sources["chainlink@ethereum:ETH/USD"]
    # the policy's answer given those sources: their median, the dispersion their spread (or Pyth's confidence)
    eth = demo.service._market.prices["ETH"]  # type: ignore[union-attr]  # noqa: SLF001
    used = {v.source: v.price for v in eth.sources if v.used}
    assert used["chainlink@ethereum"] == answer / 1e8
    assert set(used) == {"chainlink@ethereum", "pyth", "hyperliquid-oracle", "deribit-index", "derive-index"}
    assert market["spot"] == statistics.median(used.values())
    spread = (max(used.values()) - min(used.values())) / market["spot"]
    assert market["dispersion"] == pytest.approx(max(spread, pyth_confidence_ratio()), rel=1e-6)


async def test_health_openapi_and_the_what_if_margin(running: Running) -> None:
    client = running.client
    health = await get_json(client, "/health")
    assert health["status"] == "ok" and health["aggregator"] is True
    document = await get_json(client, "/openapi.json")
    assert {r.path for r in SERVICE_ROUTES} | {"/v1/margin", "/health"} <= set(document["paths"])
    request = (ROOT / "examples" / "demo_request.json").read_bytes()
    margin = await client.post("/v1/margin", data=request, headers={**KEY, "Content-Type": "application/json"})
    assert margin.status == 200
    report = await margin.json()
    assert report["status"] == "healthy" and len(report["positions"]) == len(json.loads(request)["positions"])


async def test_a_what_if_without_market_is_priced_at_the_live_snapshot(running: Running) -> None:
    """The lender's question: these positions, at the market the service sees now."""
    request = json.loads((ROOT / "examples" / "demo_request.json").read_bytes())
    del request["market"]
    response = await running.client.post("/v1/margin", json=request, headers=KEY)
    assert response.status == 200, await response.text()
    report = await response.json()
    snapshot = await running.demo.service.market_snapshot()
    assert report["as_of"] == snapshot.as_of.isoformat().replace("+00:00", "Z")
    spot = {asset: risk["spot"] for asset, risk in report["underlyings"].items()}
    assert spot == {asset: snapshot.spot[asset] for asset in spot}
    assert {s["name"] for s in report["sources"]} >= {s.name for s in snapshot.sources}


async def test_graphql_account_query(running: Running) -> None:
    query = """query($id: String!) { account(id: $id) { complete equityUsd status positions { id venue chain } } }"""
    response = await running.client.post(
        "/graphql", json={"query": query, "variables": {"id": DEMO_ACCOUNT}}, headers=KEY
    )
    assert response.status == 200
    body = await response.json()
    assert "errors" not in body, body
    account = body["data"]["account"]
    rest = await get_json(running.client, f"/v1/accounts/{DEMO_ACCOUNT}/risk")  # the same cached report
    assert account["equityUsd"] == rest["equity_usd"]
    assert account["complete"] is rest["complete"] is True
    assert [p["id"] for p in account["positions"]] == [p["id"] for p in rest["positions"]]
    missing = await running.client.post("/graphql", json={"query": '{ account(id: "nobody") { status } }'}, headers=KEY)
    assert (await missing.json()) == {"data": {"account": None}}


async def test_history_lists_the_stored_reports(running: Running) -> None:
    """After a refresh, the history's newest headline is the report /risk serves, and /reports/{id} is that report."""
    client = running.client
    risk = await get_json(client, f"/v1/accounts/{DEMO_ACCOUNT}/risk")
    page = await get_json(client, f"/v1/accounts/{DEMO_ACCOUNT}/history")
    assert page["reports"] and page["more"] is False and page["next_until"] is None
    newest = page["reports"][0]
    figures = ("equity_usd", "maintenance_margin_usd", "initial_margin_usd", "status", "complete")
    assert {k: newest[k] for k in figures} == {k: risk[k] for k in figures}
    assert newest["computed_at"].replace("+00:00", "Z") == risk["computed_at"].replace("+00:00", "Z")
    stored = await get_json(client, f"/v1/accounts/{DEMO_ACCOUNT}/reports/{newest['id']}")
    assert (stored["id"], stored["account_id"], stored["computed_at"]) == (
        newest["id"], DEMO_ACCOUNT, newest["computed_at"]
    )
    served_when = ("computed_at", "age_seconds")  # stamped when served; the stored report holds the figures
    assert {k: v for k, v in stored["report"].items() if k not in served_when} == {
        k: v for k, v in risk.items() if k not in served_when
    }
    unknown = await client.get(f"/v1/accounts/{DEMO_ACCOUNT}/reports/{newest['id'] + 1_000_000}")
    assert unknown.status == 404


async def test_dashboard_page(running: Running) -> None:
    response = await running.client.get("/", params={"account": DEMO_ACCOUNT})
    assert response.status == 200
    assert response.content_type == "text/html"
    assert "<html" in (await response.text()).lower()


async def test_no_route_answered_500(running: Running) -> None:
    """The server's own count of every answer so far (this module's requests): none was a 5xx."""
    exposition = await (await running.client.get("/metrics")).text()
    answered = {
        (s.labels["route"], s.labels["status"]): s.value
        for family in text_string_to_metric_families(exposition) if family.name == "metarisk_http_requests"
        for s in family.samples if s.name.endswith("_total")
    }
    routes = {route for route, _ in answered}
    assert {r.path for r in SERVICE_ROUTES} | {"/v1/margin", "/health", "/openapi.json", "/graphql"} <= routes
    assert {"/v1/accounts/{account_id}/history", "/v1/accounts/{account_id}/reports/{report_id}"} <= routes
    assert not {key: n for key, n in answered.items() if key[1].startswith("5")}


# --- acceptance: a database or a chain lost mid-refresh ---------------------------------------------------------


def expire_cached_reports(demo: Demo) -> None:
    demo.service.settings = demo.service.settings.model_copy(update={"report_ttl_s": 1e-9})


async def test_a_lost_database_answers_incomplete_and_keeps_the_stored_snapshot(
    running: Running, tmp_path: Path
) -> None:
    service = running.demo.service
    store = service.store
    assert store is not None
    before = await store.latest_report(DEMO_ACCOUNT)
    assert before is not None and before.report.complete
    history = len(await store.report_history(DEMO_ACCOUNT))
    # the database gone: a path whose directory does not exist cannot be opened (OperationalError)
    unreachable = Store.from_url(f"sqlite:///{tmp_path / 'gone' / 'metarisk.db'}", timeout_s=0.5)
    service.store = AsyncStore(unreachable)
    expire_cached_reports(running.demo)
    try:
        report = await get_json(running.client, f"/v1/accounts/{DEMO_ACCOUNT}/risk")
    finally:
        service.store = store
        unreachable.close()
        service.settings = service.settings.model_copy(update={"report_ttl_s": 10.0})
    assert report["complete"] is False
    assert any(w.startswith("history not stored: database unavailable") for w in report["warnings"])
    assert set(position_sources(report).values()) == {"ok"}  # the reads themselves were whole
    after = await store.latest_report(DEMO_ACCOUNT)
    assert after == before
    assert len(await store.report_history(DEMO_ACCOUNT)) == history


async def test_a_chain_killed_mid_refresh_answers_incomplete_and_keeps_the_stored_snapshot(running: Running) -> None:
    """Last in the module: it kills the demo devnet's arbitrum node."""
    demo = running.demo
    service, node = demo.service, demo.devnet.nodes["arbitrum"]
    store = service.store
    assert store is not None
    last_complete = await store.latest_report(DEMO_ACCOUNT, complete_only=True)
    assert last_complete is not None

    killed: list[str] = []

    async def kill_on_first_request(
        _: aiohttp.ClientSession, __: SimpleNamespace, params: aiohttp.TraceRequestStartParams
    ) -> None:
        if node.process.poll() is None:
            node.kill()  # the node dies as the refresh's first read of it goes out
            killed.append(str(params.url))

    trace = aiohttp.TraceConfig()
    trace.on_request_start.append(kill_on_first_request)
    index = next(i for i, c in enumerate(service.clients) if c.config.name == "arbitrum")
    original = service.clients[index]
    traced = await make_chain_client(original.config, trace_configs=[trace])
    service.clients[index] = traced
    expire_cached_reports(demo)
    try:
        report = await get_json(running.client, f"/v1/accounts/{DEMO_ACCOUNT}/risk")
    finally:
        service.clients[index] = original
        await traced.close()
    assert killed == [node.url]

    assert report["complete"] is False
    sources = position_sources(report)
    assert {n: s for n, s in sources.items() if s != "ok"} == dict.fromkeys(
        ["wallet@arbitrum", "aave-v3@arbitrum", "gmx-v2@arbitrum"], "failed")
    assert not [p for p in report["positions"] if p["chain"] == "arbitrum"]
    assert {p["chain"] for p in report["positions"]} >= {"ethereum", "base"}
    # stored as the incomplete refresh it is; the last complete snapshot is still there, unchanged
    latest = await store.latest_report(DEMO_ACCOUNT)
    assert latest is not None and latest.report.complete is False
    assert await store.latest_report(DEMO_ACCOUNT, complete_only=True) == last_complete
    complete_positions = await store.position_snapshot(last_complete.position_snapshot_id)
    assert complete_positions is not None
    assert {p.venue for p in complete_positions.snapshot.positions if p.chain == "arbitrum"} == {
        "wallet", "aave-v3", "gmx-v2"
    }
