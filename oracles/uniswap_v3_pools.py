"""A Uniswap v3 pool's depth read on chain at one block, through Multicall3: slot0, the active liquidity, the fee
and tick spacing, the tickBitmap words around the price, and ticks(i).liquidityNet of every tick those words flag.

Three batches, every one pinned to the block the first one names (the first asks Multicall3 for it beside
slot0), so the profile is one block's state even while the chain moves. The bitmap words read are
`words_each_side` either side of the price's word: beyond them the depth is unknown, and the profile says where
(`tick_range`); the swap maths refuse to price past it rather than extrapolate.
"""

from __future__ import annotations

from chains.client import ChainClient
from chains.errors import RpcError
from chains.multicall import BLOCK_CALLS, ContractCall, compute_block_calls, fetch_aggregate3
from risk_core.pricing.uniswap_v3 import MAX_TICK, MIN_TICK
from risk_core.schema.market import PoolTick, UniswapV3Pool

SLOT0 = ("slot0()", ("uint160", "int24", "uint16", "uint16", "uint16", "uint8", "bool"))
LIQUIDITY = ("liquidity()", ("uint128",))
FEE = ("fee()", ("uint24",))
TICK_SPACING = ("tickSpacing()", ("int24",))
TOKEN0 = ("token0()", ("address",))
TOKEN1 = ("token1()", ("address",))
TICK_BITMAP = ("tickBitmap(int16)", ("uint256",))
TICKS = ("ticks(int24)", ("uint128", "int128", "uint256", "uint256", "int56", "uint160", "uint32", "bool"))
DEFAULT_WORDS_EACH_SIDE = 8  # 0.05% pools (spacing 10): +-20,480 ticks, a price within a factor of ~7.7 either way


def _call(pool: str, read: tuple[str, tuple[str, ...]], *args: object) -> ContractCall:
    return ContractCall(pool, read[0], tuple(args), read[1])


def bitmap_ticks(word_position: int, word: int, spacing: int) -> list[int]:
    """The initialised ticks a bitmap word flags (TickBitmap.position: compressed tick = word x 256 + bit)."""
    return [(word_position * 256 + bit) * spacing for bit in range(256) if word >> bit & 1]


async def read_pool_depth(client: ChainClient, pool: str, *, quote: str = "USDC",
                          words_each_side: int = DEFAULT_WORDS_EACH_SIDE,
                          block: int | None = None) -> UniswapV3Pool:
    """The pool's tick-liquidity profile at `block` (default: the latest, named by the first batch). Its tokens are
    named and their decimals read from the chains file; the asset is the one that is not `quote`.

    Raises:
        RpcError: a read failed, the contract is not an initialised pool (a revert or undecodable answer), or a
            token the chains file does not list."""
    head = [*compute_block_calls(client.config.multicall3),
            *(_call(pool, read) for read in (SLOT0, LIQUIDITY, FEE, TICK_SPACING, TOKEN0, TOKEN1))]
    results = await fetch_aggregate3(client, head, block_identifier=block if block is not None else "latest")
    (block_number,) = results[0].decoded()
    sqrt_price, tick = results[BLOCK_CALLS].decoded()[:2]
    (liquidity,), (fee,), (spacing,) = (r.decoded() for r in results[BLOCK_CALLS + 1:BLOCK_CALLS + 4])
    if sqrt_price == 0:
        raise RpcError(f"{client.config.name}: pool {pool} is not initialised")
    (address0,), (address1,) = (r.decoded() for r in results[BLOCK_CALLS + 4:BLOCK_CALLS + 6])
    token0, token1 = client.config.token_by_address(address0), client.config.token_by_address(address1)
    if token0 is None or token1 is None:
        raise RpcError(f"{client.config.name}: pool {pool} has a token the chains file does not list")
    asset_is_token0 = token0.asset != quote
    asset, other = (token0, token1) if asset_is_token0 else (token1, token0)

    centre = (tick // spacing) >> 8
    positions = range(max(centre - words_each_side, MIN_TICK // spacing >> 8),
                      min(centre + words_each_side, MAX_TICK // spacing >> 8) + 1)
    words = await fetch_aggregate3(client, [_call(pool, TICK_BITMAP, w) for w in positions],
                                   block_identifier=block_number)
    initialised = [t for w, r in zip(positions, words, strict=True) for t in bitmap_ticks(w, r.decoded()[0], spacing)]
    infos = await fetch_aggregate3(client, [_call(pool, TICKS, t) for t in initialised], block_identifier=block_number)
    ticks = [PoolTick(tick=t, liquidity_net=r.decoded()[1]) for t, r in zip(initialised, infos, strict=True)]
    lower = max(positions[0] * 256 * spacing, MIN_TICK)
    upper = min((positions[-1] * 256 + 255) * spacing, MAX_TICK)
    return UniswapV3Pool(
        asset=asset.asset, quote=other.asset, asset_is_token0=asset_is_token0, decimals0=token0.decimals,
        decimals1=token1.decimals, fee=fee, tick_spacing=spacing, sqrt_price_x96=sqrt_price, tick=tick,
        liquidity=liquidity, ticks=ticks, tick_range=(lower, upper), source="onchain", address=pool.lower(),
        chain=client.config.name, block=block_number,
    )
