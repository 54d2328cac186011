"""`metarisk population` and `metarisk cascade`: populations of wallets and their liquidation cascades.

    metarisk population synthetic --wallets N --seed S [--long-share F] --out POP.parquet
    metarisk population devnet [--market M.json] --out POP.parquet
    metarisk population store --database URL [--market M.json] --out POP.parquet
    metarisk population subgraph --chains CHAINS.yaml --chain NAME --url aave-v3=URL [--url uniswap-v3=URL]
                                 [--market M.json] [--page-size 1000] --out POP.parquet
    metarisk cascade POP.parquet [--market M.json] --shock BTC=-0.3,ETH=-0.35 [--workers N | --scheduler URL]
                     [--max-rounds 20] [--no-impact] [--sweep BTC,ETH=-0.05:-0.5:10] --out DIR

Bad input prints one line naming the argument or field and exits 2.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import ValidationError

from api.errors import field_path
from research.contagion import simulate
from research.contagion.accounts import AssetIndex
from research.contagion.cascade import InProcessRunner, RoundResult, ShockError, sweep
from research.contagion.depth import ImpactOutOfRange
from research.contagion.outputs import summary, write_outputs
from research.contagion.params import load_cascade_params
from research.contagion.population import (
    PopulationError,
    PositionsPopulation,
    population_from_positions,
    write_synthetic_population,
)
from research.contagion.sweep import grid_shocks, summarise, write_sweep
from risk_core.schema.market import MarketSnapshot, UniswapV3Pool
from risk_core.schema.positions import Position

if TYPE_CHECKING:
    from chains.config import ChainConfig

EXIT_BAD_INPUT = 2


class CascadeInputError(Exception):
    """Bad input, as the one line shown to the user."""


def default_prices() -> dict[str, float]:
    """The recorded market the demo replays (calm-day Deribit indices, SOL's last recorded close)."""
    from api.demo import WSTETH_PER_ETH
    from venue_servers.scenario import default_scenario

    spot = default_scenario().spot
    return {**spot, "WSTETH": spot["ETH"] * WSTETH_PER_ETH, "USDC": 1.0}


def market_prices(path: str | None) -> dict[str, float]:
    return _market(path)[0]


def read_market(path: str) -> MarketSnapshot:
    """A market snapshot file; an unreadable or invalid one is a CascadeInputError naming `--market` and the field."""
    try:
        return MarketSnapshot.model_validate_json(Path(path).read_bytes())
    except OSError as e:
        raise CascadeInputError(f"--market {path}: cannot read: {e.strerror}") from e
    except ValidationError as e:
        first = e.errors()[0]
        raise CascadeInputError(f"--market {path}: {field_path(first['loc']) or '(market)'}: {first['msg']}") from e


def _market(path: str | None) -> tuple[dict[str, float], list[UniswapV3Pool]]:
    """The market's prices and the Uniswap v3 pools it carries (none for the recorded default market)."""
    if path is None:
        return default_prices(), []
    market = read_market(path)
    return {**dict(market.spot), "USDC": market.spot.get("USDC", 1.0)}, list(market.pools)


def load_chain(chains: str, name: str) -> ChainConfig:
    """`--chain` of the `--chains` file, errors naming the argument."""
    from chains.config import ChainConfigError, load_chains_file

    try:
        return load_chains_file(Path(chains)).chain(name)
    except ChainConfigError as e:
        raise CascadeInputError(f"--chains: {e}") from e
    except KeyError:
        raise CascadeInputError(f"--chain: {name!r} is not in {chains}") from None


def parse_shock(text: str) -> dict[str, float]:
    shock: dict[str, float] = {}
    for part in filter(None, text.split(",")):
        asset, sep, value = part.partition("=")
        try:
            shock[asset.strip().upper()] = float(value)
        except ValueError:
            raise CascadeInputError(f"--shock: {part!r} is not ASSET=MOVE (e.g. BTC=-0.3)") from None
        if not sep:
            raise CascadeInputError(f"--shock: {part!r} is not ASSET=MOVE (e.g. BTC=-0.3)")
    return shock


def parse_sweep(text: str) -> list[dict[str, float]]:
    assets, _, grid = text.partition("=")
    try:
        start, stop, count = grid.split(":")
        return grid_shocks([a.strip().upper() for a in assets.split(",") if a.strip()], float(start), float(stop),
                           int(count))
    except ValueError:
        raise CascadeInputError(f"--sweep: {text!r} is not ASSETS=START:STOP:COUNT (e.g. BTC,ETH=-0.05:-0.5:10)") \
            from None


def _population(args: argparse.Namespace) -> str:
    if args.wallets <= 0:
        raise CascadeInputError("--wallets: must be a positive number of wallets")
    if not 0.0 <= args.long_share <= 1.0:
        raise CascadeInputError("--long-share: must be between 0 and 1")
    rows = write_synthetic_population(Path(args.out), args.wallets, args.seed, default_prices(),
                                      long_share=args.long_share)
    return f"{args.out}: {args.wallets:,} wallets, {rows:,} positions (seed {args.seed})\n"


def _write_discovered(args: argparse.Namespace, wallets: dict[str, list[Position]], prices: dict[str, float],
                      unknown_tokens: dict[str, int] | None = None) -> str:
    """The population of discovered wallets at `--out`, its wallet ids' addresses beside it
    (`<out>.wallets.parquet`), and a summary line of what was left out."""
    import pyarrow.parquet as pq

    built: PositionsPopulation = population_from_positions(wallets, prices)
    out = Path(args.out)
    pq.write_table(built.table, out)
    wallets_file = out.with_suffix(".wallets.parquet")
    pq.write_table(built.wallet_table(), wallets_file)
    left_out = {**built.skipped, **{f"unknown token {t}": n for t, n in (unknown_tokens or {}).items()}}
    lines = [f"{out}: {len(built.addresses):,} wallets, {built.table.num_rows:,} rows; addresses in {wallets_file}"]
    if left_out:
        lines.append("left out: " + ", ".join(f"{what} x{count}" for what, count in left_out.items()))
    return "\n".join(lines) + "\n"


def _store_population(args: argparse.Namespace) -> str:
    from aggregator.store import StoreError
    from api.population_sources import store_positions

    try:
        wallets, stored_prices = store_positions(args.database)
    except StoreError as e:
        raise CascadeInputError(f"--database: {e}") from e
    prices = market_prices(args.market) if args.market or stored_prices is None else {"USDC": 1.0, **stored_prices}
    return _write_discovered(args, wallets, prices)


def _parse_urls(values: list[str]) -> dict[str, str]:
    from indexers.subgraphs import PROTOCOLS

    urls = {}
    for value in values:
        protocol, sep, url = value.partition("=")
        if not sep or not url:
            raise CascadeInputError(f"--url: {value!r} is not PROTOCOL=URL (e.g. aave-v3=https://...)")
        if protocol.strip() not in PROTOCOLS:
            raise CascadeInputError(f"--url: {protocol.strip()!r} is not one of {', '.join(PROTOCOLS)}")
        urls[protocol.strip()] = url.strip()
    return urls


def _subgraph_population(args: argparse.Namespace) -> str:
    from indexers.subgraphs import SubgraphError, discover_chain

    chain = load_chain(args.chains, args.chain)
    try:
        found = asyncio.run(discover_chain(chain, _parse_urls(args.url), page_size=args.page_size))
    except SubgraphError as e:
        raise CascadeInputError(f"--url: {e}") from e
    return _write_discovered(args, found.positions, market_prices(args.market), found.unknown_tokens)


def _devnet_population(args: argparse.Namespace) -> str:
    from api.population_sources import devnet_positions

    found = asyncio.run(devnet_positions(page_size=args.page_size))
    return _write_discovered(args, found.positions, market_prices(args.market), found.unknown_tokens)


def _progress(result: RoundResult) -> None:
    accounts = sum(result.accounts_liquidated.values())
    prices = ", ".join(f"{a} {p:,.2f}" for a, p in result.prices.items() if a != "USDC")
    print(f"round {result.round}: {accounts:,} accounts, {result.liquidated_usd:,.0f} USD liquidated at {prices}",
          file=sys.stderr, flush=True)


def _cascade(args: argparse.Namespace) -> str:
    population = Path(args.population)
    if not population.is_file():
        raise CascadeInputError(f"{args.population}: no such file")
    prices, pools = _market(args.market)
    params = load_cascade_params()
    workers = os.cpu_count() or 1 if args.workers is None else args.workers
    if args.sweep:
        shocks = parse_sweep(args.sweep)
        assets = AssetIndex(tuple(sorted(prices)))
        results = sweep(lambda: InProcessRunner.from_file(population, assets), assets, prices, shocks, params,
                        max_rounds=args.max_rounds, price_impact=not args.no_impact, pools=pools)
        files = write_sweep(summarise(results), Path(args.out))
        return json.dumps({name: str(path) for name, path in files.items()}, indent=2) + "\n"
    result = simulate(population, prices, parse_shock(args.shock or ""), workers=workers, scheduler=args.scheduler,
                      params=params, max_rounds=args.max_rounds, price_impact=not args.no_impact,
                      on_round=_progress, pools=pools)
    files = write_outputs(result, Path(args.out))
    document = summary(result)
    print(f"{result.rounds} rounds, {result.liquidated_usd:,.0f} USD liquidated; files: "
          + ", ".join(str(p) for p in files.values()), file=sys.stderr)
    keys = ("rounds", "liquidated_usd", "liquidated_usd_by_venue", "bad_debt_usd_by_venue", "final_prices",
            "depth_source")
    return json.dumps({k: document[k] for k in keys}, indent=2) + "\n"


def _guarded(handler):  # type: ignore[no-untyped-def]
    def run(args: argparse.Namespace) -> str:
        try:
            return str(handler(args))
        except (CascadeInputError, PopulationError, ShockError, ImpactOutOfRange) as e:
            print(f"error: {e}", file=sys.stderr)
            raise SystemExit(EXIT_BAD_INPUT) from e

    return run


def add_parsers(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    population = commands.add_parser("population", help="write a wallet population (Parquet) for cascades")
    kinds = population.add_subparsers(dest="population_kind", required=True)
    synthetic = kinds.add_parser("synthetic", help="a seeded synthetic population (docs/contagion.md)")
    synthetic.add_argument("--wallets", type=int, required=True)
    synthetic.add_argument("--seed", type=int, default=0)
    synthetic.add_argument("--long-share", type=float, default=0.6, help="share of perp legs that are long")
    synthetic.add_argument("--out", required=True)
    synthetic.set_defaults(run=_guarded(_population))

    discovered = {
        "devnet": ("the devnet's wallets, discovered through its local subgraph", _devnet_population),
        "store": ("the service's watched accounts, their last stored positions", _store_population),
        "subgraph": ("every wallet of a chain's Aave v3 / Uniswap v3 subgraphs", _subgraph_population),
    }
    for name, (description, handler) in discovered.items():
        parser = kinds.add_parser(name, help=description + " (docs/contagion.md)")
        if name == "store":
            parser.add_argument("--database", required=True, help="the store's URL, e.g. postgresql+psycopg://...")
        if name == "subgraph":
            parser.add_argument("--chains", required=True, help="chains file naming the chain's tokens")
            parser.add_argument("--chain", required=True, help="the chain the subgraphs index")
            parser.add_argument("--url", action="append", required=True,
                                help="PROTOCOL=URL of a subgraph (aave-v3, uniswap-v3); repeat for both")
        if name != "store":
            parser.add_argument("--page-size", type=int, default=1000, help="entities per GraphQL page (<= 1000)")
        parser.add_argument("--market", help="market JSON whose spot prices value cash and LP amounts (default: "
                                             "the store's last market for `store`, else the recorded market)")
        parser.add_argument("--out", required=True)
        parser.set_defaults(run=_guarded(handler))

    cascade = commands.add_parser("cascade", help="liquidation cascade of a population under a price shock")
    cascade.add_argument("population", help="population Parquet file (docs/contagion.md)")
    cascade.add_argument("--market", help="market snapshot JSON (the margin request's format); default: the "
                                          "recorded market the demo replays")
    cascade.add_argument("--shock", help="relative moves, e.g. BTC=-0.3,ETH=-0.35")
    cascade.add_argument("--sweep", help="a grid of shocks instead: ASSETS=START:STOP:COUNT")
    cascade.add_argument("--workers", type=int, help="LocalCluster processes (default: the cores; 0: in-process)")
    cascade.add_argument("--scheduler", help="a Dask scheduler, e.g. tcp://host:8786")
    cascade.add_argument("--max-rounds", type=int, default=20)
    cascade.add_argument("--no-impact", action="store_true", help="no price impact: one round")
    cascade.add_argument("--out", required=True, help="directory for summary.json, Parquet tables and plots")
    cascade.set_defaults(run=_guarded(_cascade))
