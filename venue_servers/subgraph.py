"""A local subgraph: the devnet's own Aave v3 and Uniswap v3 events indexed into the published subgraphs' entities,
served over GraphQL at /subgraphs/name/aave-v3/<chain> and /subgraphs/name/uniswap-v3/<chain>, like graph-node.

The schema served is the subset in reference_data/interfaces/subgraphs (the real subgraphs' field names), executed
by graphql-core, with graph-node's list arguments: `first` (default 100, at most 1000), `skip`, `orderBy`,
`orderDirection` and `where` filters (`field`, `field_gt|_lt|_gte|_lte|_in|_not`).

What it indexes, read through the chain client from the last indexed block up to the latest at each request:
- Aave v3 Pool: Supply and Borrow credit `onBehalfOf`, Withdraw and Repay debit `user` (a repay with aTokens also
  debits the supply; a repay takes the variable debt first). Balances are the events' sums: exact on the devnet,
  whose reserves accrue no interest (zero-rate strategy); liquidations and aToken transfers are not indexed.
  Reserve symbol and decimals are read from the token, as the published subgraph does at ReserveInitialized.
- Uniswap v3 NonfungiblePositionManager: IncreaseLiquidity / DecreaseLiquidity move a position's liquidity,
  Transfer its owner; a new token id's pool and ticks are read from `positions(tokenId)` and the factory's
  `getPool`, as the published subgraph's mapping does. A pool's sqrtPrice and tick are its `slot0`, its liquidity
  its `liquidity()`, when indexed.
- Uniswap v3 pools (each from the block 0 once a position names it): Mint and Burn move the Tick entities'
  liquidityGross and liquidityNet as the published mapping's handlers do (lower tick +amount, upper tick -amount
  on a mint; the opposite on a burn), served as `Pool.ticks` and the top-level `ticks`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import operator
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from eth_utils import event_abi_to_log_topic, to_checksum_address
from graphql import GraphQLSchema, build_schema, graphql
from web3.contract.async_contract import AsyncContract

import reference_data
from chains.client import ChainClient
from venue_servers.runner import serve_app

MAX_FIRST = 1000
INTERFACES = reference_data.path("interfaces")
ERC20_METADATA_ABI = [
    {"type": "function", "name": name, "stateMutability": "view", "inputs": [],
     "outputs": [{"name": "", "type": kind}]}
    for name, kind in (("symbol", "string"), ("name", "string"), ("decimals", "uint8"))
]
COMPARISONS: dict[str, Callable[[Any, Any], bool]] = {
    "": operator.eq, "not": operator.ne, "gt": operator.gt, "lt": operator.lt, "gte": operator.ge, "lte": operator.le,
    "in": lambda value, wanted: value in wanted, "not_in": lambda value, wanted: value not in wanted,
}
BIG_INT_FIELDS = frozenset({"liquidity", "currentATokenBalance", "currentTotalDebt", "borrowedReservesCount",
                            "tickIdx", "liquidityGross", "liquidityNet"})


def _abi(relative: str) -> list[dict[str, Any]]:
    data = json.loads((INTERFACES / relative).read_text())
    return data["abi"] if isinstance(data, dict) else data  # type: ignore[no-any-return]


def _key(value: Any) -> Any:
    return value.lower() if isinstance(value, str) and value.startswith("0x") else value


def _matches(entity: Mapping[str, Any], where: Mapping[str, Any]) -> bool:
    """graph-node's `where`: `field` equals, `field_gt|_lt|_gte|_lte` compare, `field_in|_not` (ids as strings,
    BigInts as integers, addresses in lower case)."""
    for name, wanted in where.items():
        field_name, _, comparison = name.partition("_")
        value = entity[field_name]
        if isinstance(value, Mapping):  # a reference to another entity compares by its id
            value = value["id"]
        if field_name in BIG_INT_FIELDS:
            value = int(value)
            wanted = [int(w) for w in wanted] if isinstance(wanted, list) else int(wanted)
        else:
            value = _key(value)
            wanted = [_key(w) for w in wanted] if isinstance(wanted, list) else _key(wanted)
        if not COMPARISONS[comparison](value, wanted):
            return False
    return True


def _page(entities: list[dict[str, Any]], args: Mapping[str, Any]) -> list[dict[str, Any]]:
    first, skip = args.get("first", 100), args.get("skip", 0)
    if not 0 <= first <= MAX_FIRST:
        raise ValueError(f"The `first` argument must be between 0 and {MAX_FIRST}, but is {first}")
    chosen = [e for e in entities if _matches(e, args.get("where") or {})]
    order = args.get("orderBy") or "id"
    chosen.sort(key=lambda e: int(e[order]) if order in BIG_INT_FIELDS else e[order],
                reverse=args.get("orderDirection") == "desc")
    return chosen[skip: skip + first]


@dataclass
class _EventLog:
    """One contract's events, decoded in chain order from the next unindexed block."""

    contract: AsyncContract
    names: tuple[str, ...]
    next_block: int = 0

    async def new_events(self, client: ChainClient, latest: int) -> list[tuple[str, Mapping[str, Any]]]:
        if latest < self.next_block:
            return []
        by_topic = {event_abi_to_log_topic(abi): abi["name"] for abi in self.contract.abi
                    if abi["type"] == "event" and abi["name"] in self.names}
        logs = await client.w3.eth.get_logs({"address": self.contract.address, "fromBlock": self.next_block,
                                             "toBlock": latest})
        self.next_block = latest + 1
        decoded = []
        for log in logs:
            name = by_topic.get(bytes(log["topics"][0])) if log["topics"] else None
            if name is not None:
                decoded.append((name, self.contract.events[name]().process_log(log)["args"]))
        return decoded


@dataclass
class ChainSubgraphs:
    """The Aave v3 and Uniswap v3 entities of one chain, kept up to date from its events."""

    client: ChainClient
    users: dict[str, dict[str, Any]] = field(default_factory=dict)  # user -> User entity
    reserves: dict[str, dict[str, Any]] = field(default_factory=dict)  # underlying -> Reserve entity
    positions: dict[str, dict[str, Any]] = field(default_factory=dict)  # token id -> Position entity
    tokens: dict[str, dict[str, Any]] = field(default_factory=dict)  # address -> Token entity
    pools: dict[str, dict[str, Any]] = field(default_factory=dict)  # address -> Pool entity
    ticks: dict[str, dict[str, Any]] = field(default_factory=dict)  # "<pool>#<tick>" -> Tick entity
    _logs: list[tuple[_EventLog, Callable[[str, Mapping[str, Any]], Any]]] = field(default_factory=list)
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    def __post_init__(self) -> None:
        chain, eth = self.client.config, self.client.w3.eth
        if chain.aave_v3 is not None:
            pool = eth.contract(address=to_checksum_address(chain.aave_v3.pool), abi=_abi("aave-v3/Pool.abi.json"))
            self._logs.append((_EventLog(pool, ("Supply", "Withdraw", "Borrow", "Repay")), self._on_aave))
        if chain.uniswap_v3 is not None:
            manager = eth.contract(address=to_checksum_address(chain.uniswap_v3.position_manager),
                                   abi=_abi("uniswap-v3/NonfungiblePositionManager.abi.json"))
            self._manager = manager
            self._factory = eth.contract(address=to_checksum_address(chain.uniswap_v3.factory),
                                         abi=_abi("uniswap-v3/UniswapV3Factory.abi.json"))
            self._logs.append((_EventLog(manager, ("IncreaseLiquidity", "DecreaseLiquidity", "Transfer")),
                               self._on_uniswap))

    async def sync(self) -> None:
        """Index every event up to the chain's latest block (one request at a time)."""
        async with self._lock:
            latest = await self.client.w3.eth.block_number
            for log, handle in self._logs:
                for name, args in await log.new_events(self.client, latest):
                    await handle(name, args)
            for pool in self.pools.values():
                contract = self.client.w3.eth.contract(address=to_checksum_address(pool["id"]),
                                                       abi=_abi("uniswap-v3/UniswapV3Pool.abi.json"))
                sqrt_price, tick, *_ = await contract.functions.slot0().call(block_identifier=latest)
                liquidity = await contract.functions.liquidity().call(block_identifier=latest)
                pool.update(sqrtPrice=str(sqrt_price), tick=str(tick), liquidity=str(liquidity))

    async def _token(self, address: str) -> dict[str, Any]:
        address = address.lower()
        if address not in self.tokens:
            erc20 = self.client.w3.eth.contract(address=to_checksum_address(address), abi=ERC20_METADATA_ABI)
            self.tokens[address] = {
                "id": address,
                "symbol": await erc20.functions.symbol().call(),
                "name": await erc20.functions.name().call(),
                "decimals": await erc20.functions.decimals().call(),
            }
        return self.tokens[address]

    async def _user_reserve(self, user: str, underlying: str) -> dict[str, Any]:
        user, underlying = user.lower(), underlying.lower()
        if underlying not in self.reserves:
            token = await self._token(underlying)
            self.reserves[underlying] = {"id": underlying, "underlyingAsset": underlying, "symbol": token["symbol"],
                                         "name": token["name"], "decimals": token["decimals"]}
        entity = self.users.setdefault(user, {"id": user, "borrowedReservesCount": 0, "reserves": []})
        for held in entity["reserves"]:
            if held["reserve"]["id"] == underlying:
                return held  # type: ignore[no-any-return]
        held = {"id": user + underlying, "reserve": self.reserves[underlying], "user": entity,
                "usageAsCollateralEnabledOnUser": True, "supplied": 0, "variable": 0, "stable": 0}
        entity["reserves"].append(held)
        return held

    async def _on_aave(self, name: str, args: Mapping[str, Any]) -> None:
        if name == "Supply":
            (await self._user_reserve(args["onBehalfOf"], args["reserve"]))["supplied"] += args["amount"]
        elif name == "Withdraw":
            (await self._user_reserve(args["user"], args["reserve"]))["supplied"] -= args["amount"]
        elif name == "Borrow":
            held = await self._user_reserve(args["onBehalfOf"], args["reserve"])
            held["stable" if args["interestRateMode"] == 1 else "variable"] += args["amount"]
        else:  # Repay
            held = await self._user_reserve(args["user"], args["reserve"])
            from_variable = min(held["variable"], args["amount"])
            held["variable"] -= from_variable
            held["stable"] -= args["amount"] - from_variable
            if args["useATokens"]:
                held["supplied"] -= args["amount"]
        user = self.users[(args.get("onBehalfOf") or args["user"]).lower()]
        for held in user["reserves"]:
            held.update(scaledATokenBalance=str(held["supplied"]), currentATokenBalance=str(held["supplied"]),
                        scaledVariableDebt=str(held["variable"]), currentVariableDebt=str(held["variable"]),
                        principalStableDebt=str(held["stable"]), currentStableDebt=str(held["stable"]),
                        currentTotalDebt=str(held["variable"] + held["stable"]))
        user["borrowedReservesCount"] = sum(1 for held in user["reserves"] if held["variable"] + held["stable"])

    async def _on_uniswap(self, name: str, args: Mapping[str, Any]) -> None:
        token_id = str(args["tokenId"])
        if name == "Transfer":
            if token_id in self.positions:
                self.positions[token_id]["owner"] = args["to"].lower()
            else:  # minted: the Transfer comes before IncreaseLiquidity
                self.positions[token_id] = {"id": token_id, "owner": args["to"].lower(), "liquidity": "0"}
            return
        position = self.positions[token_id]
        if "pool" not in position:
            await self._describe(position)
        change = args["liquidity"] if name == "IncreaseLiquidity" else -args["liquidity"]
        position["liquidity"] = str(int(position["liquidity"]) + change)

    def _on_pool(self, address: str) -> Callable[[str, Mapping[str, Any]], Any]:
        async def handle(name: str, args: Mapping[str, Any]) -> None:
            amount = args["amount"] if name == "Mint" else -args["amount"]
            for tick, sign in ((args["tickLower"], 1), (args["tickUpper"], -1)):
                entity = self.ticks.setdefault(f"{address}#{tick}", {
                    "id": f"{address}#{tick}", "poolAddress": address, "tickIdx": str(tick),
                    "pool": self.pools[address], "liquidityGross": "0", "liquidityNet": "0"})
                entity["liquidityGross"] = str(int(entity["liquidityGross"]) + amount)
                entity["liquidityNet"] = str(int(entity["liquidityNet"]) + sign * amount)

        return handle

    async def _describe(self, position: dict[str, Any]) -> None:
        """A new token id's pool and range, from the position manager and the factory."""
        values = await self._manager.functions.positions(int(position["id"])).call()
        token0, token1, fee, tick_lower, tick_upper = values[2], values[3], values[4], values[5], values[6]
        address = (await self._factory.functions.getPool(token0, token1, fee).call()).lower()
        if address not in self.pools:
            self.pools[address] = {"id": address, "token0": await self._token(token0),
                                   "token1": await self._token(token1), "feeTier": str(fee), "liquidity": "0",
                                   "sqrtPrice": "0", "tick": None,
                                   "ticks": lambda _info, **args: _page(
                                       [t for t in self.ticks.values() if t["poolAddress"] == address], args)}
            contract = self.client.w3.eth.contract(address=to_checksum_address(address),
                                                   abi=_abi("uniswap-v3/UniswapV3Pool.abi.json"))
            self._logs.append((_EventLog(contract, ("Mint", "Burn")), self._on_pool(address)))
        pool = self.pools[address]
        position.update(
            pool=pool, token0=pool["token0"], token1=pool["token1"],
            tickLower={"id": f"{address}#{tick_lower}", "poolAddress": address, "tickIdx": str(tick_lower),
                       "pool": pool},
            tickUpper={"id": f"{address}#{tick_upper}", "poolAddress": address, "tickIdx": str(tick_upper),
                       "pool": pool},
        )


def _schema(name: str, resolvers: Mapping[str, Callable[..., Any]]) -> GraphQLSchema:
    schema = build_schema((INTERFACES / "subgraphs" / f"{name}.graphql").read_text())
    assert schema.query_type is not None
    for field_name, resolve in resolvers.items():
        schema.query_type.fields[field_name].resolve = resolve
    return schema


def make_app(subgraphs: Mapping[str, ChainSubgraphs]) -> web.Application:
    """The GraphQL routes of every chain's subgraphs: POST {query, variables, operationName}, as graph-node."""

    def served(chain: ChainSubgraphs) -> dict[str, GraphQLSchema]:
        return {
            "aave-v3": _schema("aave-v3", {
                "users": lambda _root, _info, **args: _page(list(chain.users.values()), args),
                "user": lambda _root, _info, id: chain.users.get(id.lower()),
            }),
            "uniswap-v3": _schema("uniswap-v3", {
                "positions": lambda _root, _info, **args: _page(
                    [p for p in chain.positions.values() if "pool" in p], args),
                "position": lambda _root, _info, id: chain.positions.get(id),
                "pool": lambda _root, _info, id: chain.pools.get(id.lower()),
                "ticks": lambda _root, _info, **args: _page(list(chain.ticks.values()), args),
            }),
        }

    schemas = {name: served(chain) for name, chain in subgraphs.items()}

    async def query(request: web.Request) -> web.Response:
        chain_name, subgraph = request.match_info["chain"], request.match_info["subgraph"]
        if chain_name not in schemas or subgraph not in schemas[chain_name]:
            return web.json_response({"errors": [{"message": f"subgraph {subgraph}/{chain_name} not found"}]},
                                     status=404)
        try:
            body = await request.json()
        except json.JSONDecodeError:
            return web.json_response({"errors": [{"message": "the body is not JSON"}]}, status=400)
        if not isinstance(body, dict) or not isinstance(body.get("query"), str):
            return web.json_response({"errors": [{"message": "the body has no `query` string"}]}, status=400)
        await subgraphs[chain_name].sync()
        result = await graphql(schemas[chain_name][subgraph], body["query"],
                               variable_values=body.get("variables"), operation_name=body.get("operationName"))
        return web.json_response(result.formatted)

    app = web.Application()
    app.router.add_post("/subgraphs/name/{subgraph}/{chain}", query)
    return app


@contextlib.asynccontextmanager
async def run_subgraph_server(clients: Mapping[str, ChainClient]) -> AsyncIterator[str]:
    """The local subgraphs of every chain client on 127.0.0.1 (ephemeral port); yields the base URL, under which
    each is at /subgraphs/name/<aave-v3|uniswap-v3>/<chain>."""
    runner, url = await serve_app(make_app({name: ChainSubgraphs(client) for name, client in clients.items()}))
    try:
        yield url
    finally:
        await runner.cleanup()


def subgraph_url(base: str, protocol: str, chain: str) -> str:
    return f"{base}/subgraphs/name/{protocol}/{chain}"
