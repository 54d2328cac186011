"""Reading on-chain venues of one wallet: every adapter of a chain in one Multicall3 batch, pinned to one block.

An on-chain adapter is pure: it says which reads it needs (`compute_calls`) and turns their results into an
AdapterResult (`compute_result`). What it must discover before it can read (Aave's reserve list, the wallet's
Uniswap token ids and their pools) is its `discovery`, derived from results by `compute_discovery`. A refresh
sends the calls of the last known discovery together with the reads that re-derive it; when the re-derived
discovery equals the one the calls were built from, the results are complete and consistent, so a steady-state
refresh is one round trip per chain. Otherwise the refresh repeats at the same block with the new discovery
(a new wallet: up to MAX_DISCOVERY_ROUNDS round trips).

No exception escapes `fetch_chain_refresh` / `fetch_wallet_refresh`: a chain that is down, slow or answering garbage
turns into `failed` results naming the reason.
"""

from __future__ import annotations

import asyncio
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

from web3.types import BlockIdentifier

from adapters.base import AdapterResult
from chains.client import ChainClient
from chains.config import ChainConfig
from chains.errors import ChainError, RpcError
from chains.multicall import BLOCK_CALLS, CallResult, ContractCall, compute_block_calls, fetch_aggregate3
from risk_core.schema.market import SourceStatus
from risk_core.schema.positions import Provenance

MAX_DISCOVERY_ROUNDS = 4


@dataclass(frozen=True)
class BlockSnapshot:
    chain: str
    block: int
    timestamp: datetime

    def provenance(self, source: str, *, complete: bool = True) -> Provenance:
        return Provenance(source=source, block=self.block, timestamp=self.timestamp, complete=complete)


class OnchainAdapter(Protocol):
    venue: str  # e.g. "aave-v3"; the source is "<venue>@<chain>"

    def applies_to(self, chain: ChainConfig) -> bool: ...

    def compute_calls(self, *, chain: ChainConfig, account: str, discovery: Hashable | None) -> list[ContractCall]:
        """The reads for this discovery (None: nothing known yet), including those that re-derive it."""
        ...

    def compute_discovery(
        self, *, chain: ChainConfig, account: str, discovery: Hashable | None, results: Sequence[CallResult]
    ) -> Hashable:
        """What the results say must be read; `results` answer `compute_calls(discovery)`.

        Raises:
            ChainError: a result does not decode.
        """
        ...

    def compute_result(
        self,
        *,
        chain: ChainConfig,
        account: str,
        discovery: Hashable,
        results: Sequence[CallResult],
        snapshot: BlockSnapshot,
    ) -> AdapterResult:
        """Raises:
        ChainError: a result does not decode."""
        ...


def compute_source(adapter: OnchainAdapter, chain: ChainConfig) -> str:
    return f"{adapter.venue}@{chain.name}"


def compute_failed_result(source: str, reason: str, *, block: int | None = None) -> AdapterResult:
    return AdapterResult(source=source, status=SourceStatus(name=source, status="failed", reason=reason), block=block)


@dataclass
class DiscoveryCache:
    """What each adapter discovered last time, by (chain, account, venue): the next refresh starts from it."""

    entries: dict[tuple[str, str, str], Hashable] = field(default_factory=dict)


@dataclass(frozen=True)
class SettledRead:
    """One adapter's reads at the snapshot's block, from a discovery that the same reads confirmed; or why not."""

    adapter: OnchainAdapter
    discovery: Hashable | None
    results: Sequence[CallResult]
    failure: str | None


@dataclass(frozen=True)
class ChainReads:
    chain: ChainConfig
    snapshot: BlockSnapshot | None  # None: nothing could be read
    reads: list[SettledRead]


async def fetch_settled_reads(
    client: ChainClient,
    adapters: Sequence[OnchainAdapter],
    *,
    account: str,
    cache: DiscoveryCache,
    block_identifier: BlockIdentifier = "latest",
) -> ChainReads:
    """The batched reads of every applicable adapter, repeated at the first answer's block until each adapter's
    discovery is confirmed by the reads built from it. Never raises for the chain's sake: failures are values."""
    chain = client.config
    applicable = [adapter for adapter in adapters if adapter.applies_to(chain)]
    discoveries: list[Hashable | None] = [cache.entries.get((chain.name, account, a.venue)) for a in applicable]
    failed: dict[int, str] = {}  # adapter index -> why its discovery reads did not decode
    pinned: BlockIdentifier = block_identifier
    sliced: dict[int, Sequence[CallResult]] = {}
    block_number = timestamp = 0
    try:
        for _ in range(MAX_DISCOVERY_ROUNDS):
            active = [index for index in range(len(applicable)) if index not in failed]
            per_adapter = {
                index: applicable[index].compute_calls(chain=chain, account=account, discovery=discoveries[index])
                for index in active
            }
            calls = compute_block_calls(chain.multicall3) + [call for calls in per_adapter.values() for call in calls]
            results = await fetch_aggregate3(client, calls, block_identifier=pinned)
            block_number, timestamp = (parse_block_value(result) for result in results[:2])  # then the chain id
            pinned = block_number  # a repeat for discovery reads the same block
            sliced = dict(
                zip(active, _slice(results[BLOCK_CALLS:], [len(c) for c in per_adapter.values()]), strict=True)
            )
            settled = True
            for index in active:
                try:
                    derived = applicable[index].compute_discovery(
                        chain=chain, account=account, discovery=discoveries[index], results=sliced[index]
                    )
                except ChainError as e:
                    failed[index] = str(e)
                    continue
                if derived != discoveries[index]:
                    discoveries[index] = derived
                    settled = False
            if settled:
                break
        else:
            reason = f"discovery did not settle within {MAX_DISCOVERY_ROUNDS} rounds at block {block_number}"
            return ChainReads(chain=chain, snapshot=None, reads=[SettledRead(a, None, (), reason) for a in applicable])
    except ChainError as e:
        return ChainReads(chain=chain, snapshot=None, reads=[SettledRead(a, None, (), str(e)) for a in applicable])

    snapshot = BlockSnapshot(chain=chain.name, block=block_number, timestamp=datetime.fromtimestamp(timestamp, UTC))
    reads = []
    for index, adapter in enumerate(applicable):
        if index in failed:
            reads.append(SettledRead(adapter, None, (), failed[index]))
        else:
            cache.entries[(chain.name, account, adapter.venue)] = discoveries[index]
            reads.append(SettledRead(adapter, discoveries[index], sliced[index], None))
    return ChainReads(chain=chain, snapshot=snapshot, reads=reads)


def parse_block_value(result: CallResult) -> int:
    """Multicall3's block number or timestamp. Raises ChainError."""
    (value,) = result.decoded()
    if not isinstance(value, int):
        raise RpcError(f"{result.call.signature}: not an integer")
    return value


def compute_chain_results(chain_reads: ChainReads, *, account: str) -> list[AdapterResult]:
    chain, snapshot = chain_reads.chain, chain_reads.snapshot
    out = []
    for read in chain_reads.reads:
        source = compute_source(read.adapter, chain)
        block = snapshot.block if snapshot else None
        if read.failure is not None or snapshot is None or read.discovery is None:
            out.append(compute_failed_result(source, read.failure or "nothing read", block=block))
            continue
        try:
            out.append(
                read.adapter.compute_result(
                    chain=chain, account=account, discovery=read.discovery, results=read.results, snapshot=snapshot
                )
            )
        except (ChainError, ValueError) as e:
            # ValueError: a decoded value the schema rejects (e.g. a negative balance from a broken contract).
            out.append(compute_failed_result(source, f"{type(e).__name__}: {e}", block=block))
    return out


async def fetch_chain_refresh(
    client: ChainClient,
    adapters: Sequence[OnchainAdapter],
    *,
    account: str,
    cache: DiscoveryCache,
    block_identifier: BlockIdentifier = "latest",
) -> list[AdapterResult]:
    """Every applicable adapter's result for `account` on the client's chain, all read at one block."""
    chain_reads = await fetch_settled_reads(
        client, adapters, account=account, cache=cache, block_identifier=block_identifier
    )
    return compute_chain_results(chain_reads, account=account)


def _slice(results: Sequence[CallResult], lengths: Sequence[int]) -> list[Sequence[CallResult]]:
    out, start = [], 0
    for length in lengths:
        out.append(results[start : start + length])
        start += length
    return out


@dataclass(frozen=True)
class WalletRefresh:
    results: list[AdapterResult]

    @property
    def complete(self) -> bool:
        return all(result.complete for result in self.results)

    @property
    def failed_sources(self) -> list[str]:
        return [result.source for result in self.results if not result.complete]


async def fetch_wallet_refresh(
    clients: Sequence[ChainClient],
    adapters: Sequence[OnchainAdapter],
    *,
    account: str,
    cache: DiscoveryCache,
    timeout_seconds: float,
) -> WalletRefresh:
    """All chains at once, each at its own latest block; a chain not done within `timeout_seconds` is failed."""

    async def one_chain(client: ChainClient) -> list[AdapterResult]:
        try:
            async with asyncio.timeout(timeout_seconds):
                return await fetch_chain_refresh(client, adapters, account=account, cache=cache)
        except TimeoutError:
            reason = f"{client.config.name}: no answer within {timeout_seconds} s"
            return [
                compute_failed_result(compute_source(adapter, client.config), reason)
                for adapter in adapters
                if adapter.applies_to(client.config)
            ]

    per_chain = await asyncio.gather(*(one_chain(client) for client in clients))
    return WalletRefresh(results=[result for results in per_chain for result in results])
