"""Async RPC clients: one AsyncWeb3 per chain over one aiohttp session whose limits are set once, here.

The session carries the policy of every read: a per-request timeout, a cap on concurrent connections to the node
(the per-chain concurrency limit) and web3's retry with exponential backoff on transport errors. Callers never
retry on their own, so no read waits longer than `timeout x retries + backoff`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

import aiohttp
from web3 import AsyncHTTPProvider, AsyncWeb3
from web3.providers.rpc.utils import ExceptionRetryConfiguration

from chains.config import ChainConfig, ChainsFile

# Reads only: a retried eth_call or block query is harmless, a retried transaction is not.
RETRIED_METHODS = ("eth_call", "eth_blockNumber", "eth_getBlockByNumber", "eth_chainId", "eth_getBalance")


@dataclass(frozen=True)
class RpcPolicy:
    timeout_seconds: float = 4.0
    retries: int = 3
    backoff_seconds: float = 0.1  # doubles at each retry
    max_connections: int = 8


@dataclass
class ChainClient:
    config: ChainConfig
    w3: AsyncWeb3[AsyncHTTPProvider]
    session: aiohttp.ClientSession
    policy: RpcPolicy

    async def close(self) -> None:
        await self.session.close()


async def make_chain_client(
    config: ChainConfig,
    *,
    policy: RpcPolicy | None = None,
    trace_configs: Sequence[aiohttp.TraceConfig] = (),
) -> ChainClient:
    """A client for the chain's first RPC URL (must run inside the event loop that will use it).

    `trace_configs` let a caller observe every HTTP request, e.g. to count round trips."""
    policy = policy or RpcPolicy()
    timeout = aiohttp.ClientTimeout(total=policy.timeout_seconds)
    session = aiohttp.ClientSession(
        raise_for_status=True,  # web3 expects it: an HTTP error status is a failed request, not a body to parse
        timeout=timeout,
        connector=aiohttp.TCPConnector(limit=policy.max_connections),
        trace_configs=list(trace_configs),
    )
    provider = AsyncHTTPProvider(
        config.rpc_urls[0],
        request_kwargs={"timeout": timeout},
        exception_retry_configuration=ExceptionRetryConfiguration(
            errors=(aiohttp.ClientError, asyncio.TimeoutError),
            retries=policy.retries,
            backoff_factor=policy.backoff_seconds,
            method_allowlist=RETRIED_METHODS,
        ),
    )
    await provider.cache_async_session(session)
    w3 = AsyncWeb3(provider)
    # web3's validation middleware asks the node for its chain id before every eth_call, doubling the round trips
    # of a refresh; the chain id is checked instead inside each Multicall3 batch (chains.multicall).
    w3.middleware_onion.remove("validation")
    return ChainClient(config=config, w3=w3, session=session, policy=policy)


async def make_chain_clients(
    chains: ChainsFile,
    *,
    policy: RpcPolicy | None = None,
    trace_configs: Sequence[aiohttp.TraceConfig] = (),
) -> dict[str, ChainClient]:
    """One client per chain of the file, by chain name."""
    return {
        chain.name: await make_chain_client(chain, policy=policy, trace_configs=trace_configs)
        for chain in chains.chains
    }
