"""A wallet refresh under failure and its cost: one round trip per chain in steady state; a chain killed
mid-refresh, a slow node, a node answering garbage and a contract that is not what the chains file says all come
back as failed sources with a reason, within the timeout, and never as an exception."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from types import SimpleNamespace

import aiohttp
import pytest
from aiohttp import web

from adapters import ONCHAIN_ADAPTERS
from adapters.onchain import DiscoveryCache, WalletRefresh, fetch_wallet_refresh
from chains.client import RpcPolicy, make_chain_clients
from chains.config import ChainsFile
from devnet.node import start_anvil
from devnet.run import RunningDevnet, compute_cache_key, default_cache_root

FAST_POLICY = RpcPolicy(timeout_seconds=0.5, retries=2, backoff_seconds=0.05)
REFRESH_TIMEOUT_SECONDS = 3.0

OnRequest = Callable[[aiohttp.ClientSession, SimpleNamespace, aiohttp.TraceRequestStartParams], Awaitable[None]]


def tracing(on_request_start: OnRequest) -> aiohttp.TraceConfig:
    trace = aiohttp.TraceConfig()
    trace.on_request_start.append(on_request_start)
    return trace


async def refresh(
    chains: ChainsFile,
    account: str,
    *,
    cache: DiscoveryCache | None = None,
    policy: RpcPolicy = FAST_POLICY,
    trace: aiohttp.TraceConfig | None = None,
) -> WalletRefresh:
    clients = await make_chain_clients(chains, policy=policy, trace_configs=[trace] if trace else [])
    try:
        return await fetch_wallet_refresh(
            list(clients.values()),
            ONCHAIN_ADAPTERS,
            account=account,
            cache=cache or DiscoveryCache(),
            timeout_seconds=REFRESH_TIMEOUT_SECONDS,
        )
    finally:
        for client in clients.values():
            await client.close()


def with_rpc(chains: ChainsFile, name: str, url: str) -> ChainsFile:
    return ChainsFile(chains=[c.model_copy(update={"rpc_urls": [url]}) if c.name == name else c for c in chains.chains])


def sources_of(outcome: WalletRefresh, chain: str) -> dict[str, str]:
    return {r.source: r.status.status for r in outcome.results if r.source.endswith(f"@{chain}")}


async def test_steady_refresh_is_one_round_trip_per_chain(devnet: RunningDevnet) -> None:
    requests: Counter[str] = Counter()

    async def count(_: aiohttp.ClientSession, __: SimpleNamespace, params: aiohttp.TraceRequestStartParams) -> None:
        requests[str(params.url)] += 1

    cache = DiscoveryCache()
    cold = await refresh(devnet.chains, devnet.manifest.demo_account, cache=cache, trace=tracing(count))
    assert cold.complete
    # A new wallet: discovery takes a few rounds (Uniswap's count -> ids -> positions is the deepest).
    assert all(2 <= n <= 4 for n in requests.values()), requests
    requests.clear()
    warm = await refresh(devnet.chains, devnet.manifest.demo_account, cache=cache, trace=tracing(count))
    assert warm.complete
    assert requests == Counter({f"{node.url}": 1 for node in devnet.nodes.values()}), requests
    assert [r.positions for r in warm.results] == [r.positions for r in cold.results]


async def test_chain_killed_mid_refresh_is_flagged_within_the_timeout(devnet: RunningDevnet) -> None:
    state = default_cache_root() / compute_cache_key() / "arbitrum.state.json"
    doomed = start_anvil(chain_id=42161, state_file=state)
    try:

        async def kill_on_first_request(
            _: aiohttp.ClientSession, __: SimpleNamespace, params: aiohttp.TraceRequestStartParams
        ) -> None:
            if str(params.url).startswith(doomed.url) and doomed.process.poll() is None:
                doomed.kill()

        chains = with_rpc(devnet.chains, "arbitrum", doomed.url)
        started = time.monotonic()
        outcome = await refresh(chains, devnet.manifest.demo_account, trace=tracing(kill_on_first_request))
        elapsed = time.monotonic() - started
    finally:
        doomed.stop()
    assert elapsed < REFRESH_TIMEOUT_SECONDS
    assert not outcome.complete
    assert sorted(outcome.failed_sources) == ["aave-v3@arbitrum", "gmx-v2@arbitrum", "wallet@arbitrum"]
    for result in outcome.results:
        if result.source.endswith("@arbitrum"):
            assert result.status.reason and result.status.reason.startswith("arbitrum node: ")
    assert set(sources_of(outcome, "ethereum").values()) == set(sources_of(outcome, "base").values()) == {"ok"}


@pytest.fixture
async def fake_node() -> AsyncIterator[
    Callable[[Callable[[web.Request], Awaitable[web.StreamResponse]]], Awaitable[str]]
]:
    """A local HTTP server standing in for a broken RPC node; yields a function that starts one per handler."""
    runners: list[web.AppRunner] = []

    async def serve(handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> str:
        app = web.Application()
        app.router.add_post("/", handler)
        runner = web.AppRunner(app, shutdown_timeout=0.1)  # do not wait out the slow handler
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        runners.append(runner)
        port = runner.addresses[0][1]
        return f"http://127.0.0.1:{port}"

    yield serve
    for runner in runners:
        await runner.cleanup()


async def slow(request: web.Request) -> web.StreamResponse:
    await asyncio.sleep(5)
    return web.json_response({})


async def undecodable_result(request: web.Request) -> web.StreamResponse:
    body = await request.json()
    return web.json_response({"jsonrpc": "2.0", "id": body["id"], "result": "0xdeadbeef"})


async def not_json(request: web.Request) -> web.StreamResponse:
    return web.Response(text="<html>bad gateway</html>", content_type="text/html")


async def server_error(request: web.Request) -> web.StreamResponse:
    return web.Response(status=502, text="bad gateway")


async def rpc_error(request: web.Request) -> web.StreamResponse:
    body = await request.json()
    return web.json_response(
        {"jsonrpc": "2.0", "id": body["id"], "error": {"code": -32000, "message": "header not found"}}
    )


@pytest.mark.parametrize(
    ("handler", "reason"),
    [
        (slow, "node: no answer in time"),
        (undecodable_result, "undecodable"),
        (not_json, "node: answered what is not JSON: '<html>bad gateway</html>'"),
        (server_error, "502"),
        (rpc_error, "header not found"),
    ],
)
async def test_broken_node_gives_failed_sources_with_the_reason(
    devnet: RunningDevnet,
    fake_node: Callable[[Callable[[web.Request], Awaitable[web.StreamResponse]]], Awaitable[str]],
    handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
    reason: str,
) -> None:
    url = await fake_node(handler)
    started = time.monotonic()
    outcome = await refresh(with_rpc(devnet.chains, "base", url), devnet.manifest.demo_account)
    assert time.monotonic() - started < REFRESH_TIMEOUT_SECONDS + 0.5
    assert outcome.failed_sources == ["wallet@base"]
    (failed,) = [r for r in outcome.results if r.source == "wallet@base"]
    assert failed.status.status == "failed" and reason in (failed.status.reason or ""), failed.status.reason
    assert failed.positions == []
    assert set(sources_of(outcome, "ethereum").values()) == {"ok"}


async def test_contract_that_is_not_what_the_chains_file_says_fails_only_its_adapter(devnet: RunningDevnet) -> None:
    ethereum = devnet.chains.chain("ethereum")
    assert ethereum.aave_v3 is not None
    # The Aave "pool" is in fact the USDC token: its reads revert, the wallet and Uniswap reads are unharmed.
    usdc = next(t.address for t in ethereum.tokens if t.symbol == "USDC")
    broken = ethereum.model_copy(update={"aave_v3": ethereum.aave_v3.model_copy(update={"pool": usdc})})
    chains = ChainsFile(chains=[broken if c.name == "ethereum" else c for c in devnet.chains.chains])
    outcome = await refresh(chains, devnet.manifest.demo_account)
    assert outcome.failed_sources == ["aave-v3@ethereum"]
    (failed,) = [r for r in outcome.results if r.source == "aave-v3@ethereum"]
    assert "reverted" in (failed.status.reason or "")


async def test_node_of_another_chain_is_refused(devnet: RunningDevnet) -> None:
    # A chains-file mistake: arbitrum's URL points at the base node, which would answer plausible foreign data.
    outcome = await refresh(with_rpc(devnet.chains, "arbitrum", devnet.nodes["base"].url), devnet.manifest.demo_account)
    assert sorted(outcome.failed_sources) == ["aave-v3@arbitrum", "gmx-v2@arbitrum", "wallet@arbitrum"]
    for result in outcome.results:
        if result.source.endswith("@arbitrum"):
            assert "the node is chain 8453, not 42161" in (result.status.reason or "")
