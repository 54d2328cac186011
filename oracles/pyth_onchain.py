"""Pyth on-chain: IPyth.getPriceNoOlderThan(id, age) on the chain's Pyth contract (MockPyth on the devnet), read at
one pinned block, normalised into observations.

The contract reverts with `StalePrice()` when the stored price is older than `age` at that block: the feed is then
stale, reported as a `SourceError` naming it, never a price. `PriceFeedNotFound()` fails the same way.
"""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
from eth_utils import keccak
from web3 import AsyncWeb3
from web3.exceptions import ContractCustomError, ContractLogicError, Web3Exception

from chains.client import ChainClient
from oracles.observations import PriceObservation, observation_from_pyth
from venue_http import SourceError

# The one function read, as in reference_data/interfaces/pyth/IPyth.json (a test checks they agree).
GET_PRICE_NO_OLDER_THAN_ABI: list[dict[str, Any]] = [{
    "inputs": [{"internalType": "bytes32", "name": "id", "type": "bytes32"},
               {"internalType": "uint256", "name": "age", "type": "uint256"}],
    "name": "getPriceNoOlderThan",
    "outputs": [{"components": [{"internalType": "int64", "name": "price", "type": "int64"},
                                {"internalType": "uint64", "name": "conf", "type": "uint64"},
                                {"internalType": "int32", "name": "expo", "type": "int32"},
                                {"internalType": "uint256", "name": "publishTime", "type": "uint256"}],
                 "internalType": "struct PythStructs.Price", "name": "price", "type": "tuple"}],
    "stateMutability": "view", "type": "function",
}]
ERRORS = {"0x" + keccak(text=f"{name}()")[:4].hex(): name for name in ("StalePrice", "PriceFeedNotFound")}


def _revert_name(e: Exception) -> str | None:
    data = getattr(e, "data", None) or (e.args[1] if len(e.args) > 1 else None)
    if isinstance(data, str):
        for selector, name in ERRORS.items():
            if data.startswith(selector):
                return name
    return None


async def fetch_pyth_onchain_observations(
    client: ChainClient, *, assets: list[str], max_age_s: int, block: int | None = None, source: str | None = None,
) -> list[PriceObservation]:
    """One observation per asset of the chain's Pyth config, read at `block` (latest when None).

    Raises: SourceError when the chain has no Pyth contract, a feed is stale or missing, or the RPC fails."""
    config = client.config.pyth
    if config is None:
        raise SourceError(f"{client.config.name}: no Pyth contract configured")
    name = source or f"pyth@{client.config.name}"
    contract = client.w3.eth.contract(address=AsyncWeb3.to_checksum_address(config.address),
                                      abi=GET_PRICE_NO_OLDER_THAN_ABI)
    try:
        pinned = block if block is not None else await client.w3.eth.block_number
    except (Web3Exception, aiohttp.ClientError, TimeoutError) as e:
        raise SourceError(f"{name}: {type(e).__name__}: {e}") from e
    wanted = [a for a in assets if a in config.price_ids]

    async def read(asset: str) -> PriceObservation:
        feed = config.price_ids[asset]
        try:
            price, conf, expo, publish_time = await contract.functions.getPriceNoOlderThan(
                bytes.fromhex(feed.removeprefix("0x")), max_age_s).call(block_identifier=pinned)
        except (ContractCustomError, ContractLogicError) as e:
            reason = _revert_name(e) or str(e)
            raise SourceError(f"{name}: {asset} reverted {reason} (max age {max_age_s} s, block {pinned})") from e
        except (Web3Exception, aiohttp.ClientError, TimeoutError) as e:
            raise SourceError(f"{name}: {type(e).__name__}: {e}") from e
        obs = observation_from_pyth(source=name, asset=asset, price=price, conf=conf, expo=expo,
                                    publish_time=publish_time, heartbeat_s=float(max_age_s))
        return PriceObservation(**{**obs.__dict__, "raw": {**obs.raw, "block": str(pinned)}})

    return list(await asyncio.gather(*(read(a) for a in wanted)))
