"""`metarisk pools`: Uniswap v3 pools' depth read into a market snapshot's `pools`, for `metarisk cascade --market`
and for a margin request's liquidity add-on (docs/contagion.md, docs/margin-model.md).

    metarisk pools --chains CHAINS.yaml --chain ethereum --pool 0x... [--pool 0x...] --market M.json --out M2.json
        [--subgraph URL] [--quote USDC] [--words-each-side 8] [--block N]

On chain (default) every pool is read through Multicall3 at one block (the first read names it unless `--block`
does); with `--subgraph` from the Uniswap v3 subgraph at that URL. Pools already in the market that are read again
are replaced; the others are kept.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from api.cascade_cli import EXIT_BAD_INPUT, CascadeInputError, load_chain, read_market
from risk_core.pricing.pool_impact import pool_label
from risk_core.schema.market import UniswapV3Pool

if TYPE_CHECKING:
    from chains.config import ChainConfig



async def _read(chain: ChainConfig, args: argparse.Namespace) -> list[UniswapV3Pool]:
    from chains.client import make_chain_client
    from indexers.subgraphs import read_pool_depth as read_from_subgraph
    from oracles.uniswap_v3_pools import read_pool_depth as read_on_chain

    if args.subgraph:
        return [await read_from_subgraph(args.subgraph, chain, pool, quote=args.quote) for pool in args.pool]
    client = await make_chain_client(chain)
    try:
        read: list[UniswapV3Pool] = []
        block = args.block
        for pool in args.pool:
            words = {} if args.words_each_side is None else {"words_each_side": args.words_each_side}
            read.append(await read_on_chain(client, pool, quote=args.quote, block=block, **words))
            block = read[-1].block  # every pool at the first one's block
        return read
    finally:
        await client.close()


def _pools(args: argparse.Namespace) -> str:
    # chain, subgraph and oracle code only when the command runs: web3 raises the interpreter's recursion limit at
    # import, and the other commands' refusal of deeply nested JSON relies on the default one
    from chains.errors import RpcError
    from indexers.subgraphs import SubgraphError

    chain = load_chain(args.chains, args.chain)
    market = read_market(args.market)
    try:
        read = asyncio.run(_read(chain, args))
    except (RpcError, SubgraphError) as e:
        raise CascadeInputError(f"{'--subgraph' if args.subgraph else '--pool'}: {e}") from e
    again = {pool.address for pool in read}
    kept = [pool for pool in market.pools if pool.address not in again]
    Path(args.out).write_text(market.model_copy(update={"pools": [*kept, *read]}).model_dump_json(indent=2))
    lines = [f"{pool_label(p)}: {len(p.ticks)} initialised ticks" + (
        f" in ticks {p.tick_range[0]}..{p.tick_range[1]}" if p.tick_range else "") for p in read]
    return "\n".join([*lines, f"{args.out}: {len(kept) + len(read)} pools"]) + "\n"


def _guarded(args: argparse.Namespace) -> str:
    try:
        return _pools(args)
    except CascadeInputError as e:
        print(f"error: {e}", file=sys.stderr)
        raise SystemExit(EXIT_BAD_INPUT) from e


def add_parsers(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    pools = commands.add_parser("pools", help="read Uniswap v3 pools' depth into a market snapshot's `pools`")
    pools.add_argument("--chains", required=True, help="chains file (its RPC and tokens)")
    pools.add_argument("--chain", required=True)
    pools.add_argument("--pool", action="append", required=True, help="a pool's address; repeat for several")
    pools.add_argument("--market", required=True, help="the market snapshot JSON to add the pools to")
    pools.add_argument("--out", required=True, help="the market snapshot JSON written")
    pools.add_argument("--subgraph", help="read from the Uniswap v3 subgraph at this URL instead of the chain")
    pools.add_argument("--quote", default="USDC", help="the pools' quote asset (the other token is the asset)")
    pools.add_argument("--words-each-side", type=int,
                       help="tick bitmap words read either side of the price (on chain; default 8)")
    pools.add_argument("--block", type=int, help="the block to read at (on chain; default: the latest)")
    pools.set_defaults(run=_guarded)
