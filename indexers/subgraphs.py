"""Aave v3 users and Uniswap v3 positions paged out of their subgraphs, as schema positions.

Queries are written against the subgraphs' real schemas (reference_data/interfaces/subgraphs, copied from the
published schema files) and gql validates each one against that schema before sending it. Pagination is the one
The Graph documents for large sets: `first` (at most 1000) with `where: {id_gt: <last id>}`, ordered by id.

Positions carry the ids the on-chain adapters give the same holdings (`aave-v3:<chain>:<symbol>:supply`,
`uniswap-v3:<chain>:<token id>`), so a population discovered here and one read on chain compare position by
position. Amounts are as the subgraph has them: Aave's `currentATokenBalance` / debts are the indexed balances (the
published subgraph updates them at each event; interest accrued since is not in them), Uniswap's `liquidity` is
exact.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from eth_utils import to_checksum_address
from gql import Client, GraphQLRequest
from gql.transport.aiohttp import AIOHTTPTransport
from gql.transport.exceptions import TransportError
from graphql import GraphQLError

import reference_data
from chains.config import ChainConfig
from risk_core.pricing.lp import human_liquidity, tick_price
from risk_core.pricing.uniswap_v3 import TICK_SPACING
from risk_core.schema.market import PoolTick, UniswapV3Pool
from risk_core.schema.positions import BorrowPosition, LendPosition, LPPosition, Position, Provenance

MAX_PAGE = 1000  # graph-node's limit on `first`
SCHEMAS = reference_data.path("interfaces", "subgraphs")

AAVE_USERS = GraphQLRequest("""
query AaveUsers($first: Int!, $after: ID!) {
  users(first: $first, orderBy: id, orderDirection: asc, where: {id_gt: $after}) {
    id
    reserves(first: 1000) {
      currentATokenBalance
      currentVariableDebt
      currentStableDebt
      reserve { symbol decimals underlyingAsset }
    }
  }
}
""")

# what a Uniswap v3 position is read as, in both the population's pages and one owner's
_UNISWAP_POSITION_FIELDS = """    id
    owner
    liquidity
    tickLower { tickIdx }
    tickUpper { tickIdx }
    token0 { id symbol decimals }
    token1 { id symbol decimals }
    pool { id feeTier sqrtPrice tick }
"""

UNISWAP_POSITIONS = GraphQLRequest("""
query UniswapPositions($first: Int!, $after: ID!) {
  positions(first: $first, orderBy: id, orderDirection: asc, where: {id_gt: $after, liquidity_gt: 0}) {
"""
                                   + _UNISWAP_POSITION_FIELDS + "  }\n}\n")

UNISWAP_OWNER_POSITIONS = GraphQLRequest("""
query UniswapOwnerPositions($first: Int!, $after: ID!, $owner: Bytes!) {
  positions(first: $first, orderBy: id, orderDirection: asc, where: {owner: $owner, id_gt: $after, liquidity_gt: 0}) {
"""
                                         + _UNISWAP_POSITION_FIELDS + "  }\n}\n")


UNISWAP_POOL = GraphQLRequest("""
query UniswapPool($id: ID!) {
  pool(id: $id) {
    id
    feeTier
    liquidity
    sqrtPrice
    tick
    token0 { id symbol decimals }
    token1 { id symbol decimals }
  }
}
""")

UNISWAP_TICKS = GraphQLRequest("""
query UniswapTicks($first: Int!, $after: ID!, $pool: String!) {
  ticks(first: $first, orderBy: id, orderDirection: asc, where: {pool: $pool, id_gt: $after, liquidityGross_gt: 0}) {
    id
    tickIdx
    liquidityNet
  }
}
""")


class SubgraphError(Exception):
    """The subgraph could not be read: unreachable, an error answer, or a query the schema refuses."""


@dataclass(frozen=True)
class Discovery:
    """Positions by wallet (checksummed address), and the holdings left out because the chains file does not
    list their token (counted by token address: they cannot be named or priced)."""

    positions: dict[str, list[Position]]
    unknown_tokens: dict[str, int]


def load_schema(name: str) -> str:
    """The schema subset of a subgraph (`aave-v3` or `uniswap-v3`)."""
    return (SCHEMAS / f"{name}.graphql").read_text()


async def _pages(url: str, schema: str, request: GraphQLRequest, field: str, *, page_size: int,
                 variables: Mapping[str, Any] | None = None, timeout_seconds: float = 30.0) -> list[dict[str, Any]]:
    """Every entity of a list field, page after page (`id_gt` the last id seen) until a short page."""
    if not 1 <= page_size <= MAX_PAGE:
        raise ValueError(f"page_size: must be between 1 and {MAX_PAGE}")
    transport = AIOHTTPTransport(url=url, timeout=int(timeout_seconds))
    entities: list[dict[str, Any]] = []
    after = ""
    try:
        async with Client(transport=transport, schema=schema, execute_timeout=timeout_seconds) as session:
            while True:
                page_request = GraphQLRequest(request.document, variable_values={
                    **(variables or {}), "first": page_size, "after": after})
                page = (await session.execute(page_request))[field]
                entities.extend(page)
                if len(page) < page_size:
                    return entities
                after = page[-1]["id"]
    except (TransportError, GraphQLError, OSError, TimeoutError) as error:
        raise SubgraphError(f"{url}: {type(error).__name__}: {error}") from error


async def _one(url: str, schema: str, request: GraphQLRequest, variables: Mapping[str, Any],
               timeout_seconds: float = 30.0) -> dict[str, Any]:
    transport = AIOHTTPTransport(url=url, timeout=int(timeout_seconds))
    try:
        async with Client(transport=transport, schema=schema, execute_timeout=timeout_seconds) as session:
            return await session.execute(GraphQLRequest(request.document, variable_values=dict(variables)))
    except (TransportError, GraphQLError, OSError, TimeoutError) as error:
        raise SubgraphError(f"{url}: {type(error).__name__}: {error}") from error


async def read_pool_depth(url: str, chain: ChainConfig, pool: str, *, quote: str = "USDC",
                          page_size: int = MAX_PAGE) -> UniswapV3Pool:
    """A Uniswap v3 pool's depth as its subgraph indexes it: `sqrtPrice`, `tick`, `liquidity` and `feeTier` of the
    Pool, and every Tick with liquidity (`liquidityGross` > 0: initialised in the pool) by `tickIdx` and
    `liquidityNet`. The asset is the token that is not `quote`; tokens are named by the chains file. The tick
    spacing is the factory's for the fee tier. Not block-pinned: each page is the subgraph's state when it answers.

    Raises:
        SubgraphError: unreachable, an error answer, no such pool, or a token the chains file does not list."""
    schema = load_schema("uniswap-v3")
    found = (await _one(url, schema, UNISWAP_POOL, {"id": pool.lower()}))["pool"]
    if found is None:
        raise SubgraphError(f"{url}: no pool {pool}")
    token0, token1 = (chain.token_by_address(found[side]["id"]) for side in ("token0", "token1"))
    if token0 is None or token1 is None:
        raise SubgraphError(f"{url}: pool {pool} has a token the chains file does not list")
    ticks = await _pages(url, schema, UNISWAP_TICKS, "ticks", page_size=page_size, variables={"pool": pool.lower()})
    fee = int(found["feeTier"])
    asset_is_token0 = token0.asset != quote
    asset, other = (token0, token1) if asset_is_token0 else (token1, token0)
    return UniswapV3Pool(
        asset=asset.asset, quote=other.asset,
        asset_is_token0=asset_is_token0, decimals0=token0.decimals, decimals1=token1.decimals, fee=fee,
        tick_spacing=TICK_SPACING[fee], sqrt_price_x96=int(found["sqrtPrice"]), tick=int(found["tick"]),
        liquidity=int(found["liquidity"]),
        ticks=sorted((PoolTick(tick=int(t["tickIdx"]), liquidity_net=int(t["liquidityNet"])) for t in ticks),
                     key=lambda t: t.tick),
        source="subgraph", address=pool.lower(), chain=chain.name,
    )


async def discover_aave(url: str, chain: ChainConfig, *, page_size: int = MAX_PAGE) -> Discovery:
    """Every Aave v3 user of the subgraph with a supply or a debt, as lend / borrow positions on `chain`."""
    users = await _pages(url, load_schema("aave-v3"), AAVE_USERS, "users", page_size=page_size)
    positions: dict[str, list[Position]] = {}
    unknown: dict[str, int] = defaultdict(int)
    provenance = Provenance(source=f"subgraph:aave-v3@{chain.name}")
    for user in users:
        account = to_checksum_address(user["id"])
        held: list[Position] = []
        for entry in user["reserves"]:
            supplied = int(entry["currentATokenBalance"])
            debt = int(entry["currentVariableDebt"]) + int(entry["currentStableDebt"])
            if not supplied and not debt:
                continue
            token = chain.token_by_address(entry["reserve"]["underlyingAsset"])
            if token is None:
                unknown[entry["reserve"]["underlyingAsset"].lower()] += 1
                continue
            common = {"venue": "aave-v3", "chain": chain.name, "account": account, "provenance": provenance}
            prefix = f"aave-v3:{chain.name}:{token.symbol}"
            if supplied:
                held.append(LendPosition(kind="lend", id=f"{prefix}:supply", asset=token.asset,
                                         quantity=supplied / 10**token.decimals, **common))
            if debt:
                held.append(BorrowPosition(kind="borrow", id=f"{prefix}:debt", asset=token.asset,
                                           quantity=debt / 10**token.decimals, **common))
        if held:
            positions[account] = held
    return Discovery(positions, dict(unknown))


async def discover_uniswap(url: str, chain: ChainConfig, *, owners: Sequence[str] | None = None,
                           page_size: int = MAX_PAGE) -> Discovery:
    """Every open Uniswap v3 range of the subgraph (or of `owners` only), as lp positions on `chain`."""
    schema = load_schema("uniswap-v3")
    if owners is None:
        found = await _pages(url, schema, UNISWAP_POSITIONS, "positions", page_size=page_size)
    else:
        found = []
        for owner in owners:
            found += await _pages(url, schema, UNISWAP_OWNER_POSITIONS, "positions", page_size=page_size,
                                  variables={"owner": owner.lower()})
    positions: dict[str, list[Position]] = defaultdict(list)
    unknown: dict[str, int] = defaultdict(int)
    provenance = Provenance(source=f"subgraph:uniswap-v3@{chain.name}")
    for entry in found:
        token0 = chain.token_by_address(entry["token0"]["id"])
        token1 = chain.token_by_address(entry["token1"]["id"])
        if token0 is None or token1 is None:
            for side, token in (("token0", token0), ("token1", token1)):
                if token is None:
                    unknown[entry[side]["id"].lower()] += 1
            continue
        account = to_checksum_address(entry["owner"])
        positions[account].append(LPPosition(
            kind="lp",
            id=f"uniswap-v3:{chain.name}:{entry['id']}",
            venue="uniswap-v3",
            chain=chain.name,
            account=account,
            provenance=provenance,
            token0=token0.asset,
            token1=token1.asset,
            liquidity=human_liquidity(int(entry["liquidity"]), token0.decimals, token1.decimals),
            price_lower=tick_price(int(entry["tickLower"]["tickIdx"]), token0.decimals, token1.decimals),
            price_upper=tick_price(int(entry["tickUpper"]["tickIdx"]), token0.decimals, token1.decimals),
        ))
    return Discovery(dict(positions), dict(unknown))


def merge(*discoveries: Discovery) -> Discovery:
    """Several subgraphs' discoveries as one: each wallet's positions side by side."""
    positions: dict[str, list[Position]] = defaultdict(list)
    unknown: dict[str, int] = defaultdict(int)
    for discovery in discoveries:
        for account, held in discovery.positions.items():
            positions[account].extend(held)
        for token, count in discovery.unknown_tokens.items():
            unknown[token] += count
    return Discovery(dict(positions), dict(unknown))


PROTOCOLS = ("aave-v3", "uniswap-v3")


async def discover_chain(chain: ChainConfig, urls: Mapping[str, str], *, page_size: int = MAX_PAGE) -> Discovery:
    """Every wallet of one chain found in its subgraphs, `urls` by protocol (aave-v3, uniswap-v3)."""
    unknown = sorted(set(urls) - set(PROTOCOLS))
    if unknown:
        raise ValueError(f"protocol: {unknown[0]!r} is not one of {', '.join(PROTOCOLS)}")
    found = []
    if "aave-v3" in urls:
        found.append(await discover_aave(urls["aave-v3"], chain, page_size=page_size))
    if "uniswap-v3" in urls:
        found.append(await discover_uniswap(urls["uniswap-v3"], chain, page_size=page_size))
    return merge(*found)
