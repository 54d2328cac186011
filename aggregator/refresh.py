"""One refresh of an account's positions: every on-chain and off-chain source at once, merged.

Sources never raise for a venue's sake (each adapter degrades to a `failed` result); the merge keeps every
position once and the snapshot says which sources are missing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection, Mapping, Sequence
from dataclasses import replace
from datetime import datetime

import aiohttp

from adapters import ONCHAIN_ADAPTERS
from adapters.base import AdapterResult
from adapters.deribit.adapter import fetch_deribit_positions
from adapters.derive.adapter import fetch_derive_positions
from adapters.hyperliquid.adapter import fetch_hyperliquid_positions
from adapters.onchain import DiscoveryCache, compute_failed_result, fetch_wallet_refresh
from aggregator.settings import ServiceSettings
from aggregator.store import PositionSnapshot
from chains.client import ChainClient
from risk_core.schema.positions import Position


async def fetch_account_positions(
    *,
    evm_addresses: Mapping[str, Collection[str] | None],
    venue_accounts: Mapping[str, Sequence[str]],
    clients: Sequence[ChainClient],
    session: aiohttp.ClientSession,
    settings: ServiceSettings,
    discovery: DiscoveryCache,
    now: datetime,
) -> PositionSnapshot:
    """Every position of the account's addresses and venue sub-accounts, read concurrently. `evm_addresses` maps
    each address to the chains it is read on (None: every chain of `clients`); a chain the service has no client
    for is a failed source, not a silent gap."""
    timeout = settings.source_timeout_s
    by_chain = {client.config.name: client for client in clients}
    onchain = []
    unknown: list[AdapterResult] = []
    for address, chains in evm_addresses.items():
        selected = list(clients) if chains is None else [by_chain[c] for c in sorted(chains) if c in by_chain]
        unknown += [compute_failed_result(f"wallet@{c}", f"chain {c} is not configured in this service")
                    for c in sorted(set(chains or ()) - set(by_chain))]
        onchain.append(fetch_wallet_refresh(selected, ONCHAIN_ADAPTERS, account=address, cache=discovery,
                                            timeout_seconds=timeout))
    offchain = [_fetch_venue(venue, sub, session=session, settings=settings, now=now)
                for venue, subs in venue_accounts.items() for sub in subs]
    wallet_refreshes = await asyncio.gather(*onchain)
    venue_results = await asyncio.gather(*offchain)
    read = [r for refresh in wallet_refreshes for r in refresh.results]
    if settings.chainlink_age_at_block:  # the chains' clock is not the service's: one clock in the report
        read = [compute_on_service_clock(r, now) for r in read]
    results = read + unknown + list(venue_results)
    return compute_position_snapshot(results, taken_at=now)


def compute_on_service_clock(result: AdapterResult, now: datetime) -> AdapterResult:
    """An on-chain read stamped with the service's clock: the block it was pinned to (kept in its provenance) is
    the chain's state at `now`, as a Chainlink round's age is taken at the block it was read at."""
    status = result.status if result.status.as_of is None else result.status.model_copy(update={"as_of": now})
    positions = [
        p if p.provenance is None or p.provenance.timestamp is None
        else p.model_copy(update={"provenance": p.provenance.model_copy(update={"timestamp": now})})
        for p in result.positions
    ]
    return replace(result, status=status, positions=positions)


def compute_position_snapshot(results: Sequence[AdapterResult], *, taken_at: datetime) -> PositionSnapshot:
    """Merge adapter results. A position is counted once: adapters own disjoint holdings (the wallet adapter
    reads only the chains file's tokens, never aTokens, debt tokens or LP NFTs), and a position read twice (the
    same address listed twice) is dropped by its identity."""
    seen: set[str] = set()
    positions: list[Position] = []
    for result in results:
        for position in result.positions:
            key = position.model_dump_json(exclude={"id"})
            if key not in seen:
                seen.add(key)
                positions.append(position)
    blocks = {}
    for result in results:
        if result.block is not None:
            blocks[result.source.rsplit("@", 1)[-1]] = result.block
    return PositionSnapshot(
        taken_at=taken_at,
        positions=positions,
        sources=[r.status for r in results],
        blocks=blocks,
        venue_states=[s for r in results for s in r.venue_states],
        complete=all(r.complete for r in results),
    )


async def _fetch_venue(
    venue: str, sub_account: str, *, session: aiohttp.ClientSession, settings: ServiceSettings, now: datetime
) -> AdapterResult:
    urls, secrets, timeout = settings.venues, settings.credentials, settings.source_timeout_s
    source = f"{venue}:{sub_account}"
    if venue == "hyperliquid" and urls.hyperliquid:
        return await fetch_hyperliquid_positions(session, urls.hyperliquid, sub_account, now=now, timeout_s=timeout)
    if venue == "deribit" and urls.deribit:
        if sub_account not in secrets.deribit:
            return compute_failed_result(source, "no read-only key configured for this Deribit client id")
        return await fetch_deribit_positions(
            session, urls.deribit, client_id=sub_account, client_secret=secrets.deribit[sub_account],
            account=sub_account, now=now, timeout_s=timeout,
        )
    if venue == "derive" and urls.derive:
        wallet, _, subaccount_id = sub_account.partition("/")
        if wallet not in secrets.derive or not subaccount_id.isdigit():
            return compute_failed_result(source, "expected WALLET/SUBACCOUNT_ID with a session key configured")
        return await fetch_derive_positions(
            session, urls.derive, wallet=wallet, session_key=secrets.derive[wallet],
            subaccount_id=int(subaccount_id), now=now, timeout_s=timeout,
        )
    return compute_failed_result(source, f"venue {venue} is not configured")
