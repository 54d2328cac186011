"""Where discovered populations come from, besides a subgraph (indexers.subgraphs.discover_chain): the service's
store, and the devnet through its local subgraph.

Each source hands back schema positions by wallet; research.contagion.population.population_from_positions turns
them into population rows, the same way for all three.
"""

from __future__ import annotations

from aggregator.store import Store
from chains.client import make_chain_clients
from indexers.subgraphs import PROTOCOLS, Discovery, discover_chain, merge
from risk_core.schema.positions import Position


def store_positions(url: str) -> tuple[dict[str, list[Position]], dict[str, float] | None]:
    """Each watched account's last stored positions (by account id; accounts never refreshed are left out), and
    the spot prices of the last stored market snapshot (None when there is none).

    Raises StoreUnavailable."""
    store = Store.from_url(url)
    try:
        positions = {}
        for account in store.list_accounts():
            stored = store.latest_position_snapshot(account.id)
            if stored is not None:
                positions[account.id] = list(stored.snapshot.positions)
        market = store.latest_market_snapshot()
        return positions, None if market is None else dict(market.snapshot.spot)
    finally:
        store.close()


async def devnet_positions(*, page_size: int) -> Discovery:
    """The devnet started from its cache, its events indexed by the local subgraph, every wallet discovered
    through it (as `metarisk population subgraph` would from real subgraphs)."""
    from devnet.run import start_devnet
    from venue_servers.subgraph import run_subgraph_server, subgraph_url

    devnet = start_devnet()
    try:
        clients = await make_chain_clients(devnet.chains)
        try:
            async with run_subgraph_server(clients) as base:
                found = []
                for chain in devnet.chains.chains:
                    present = {"aave-v3": chain.aave_v3, "uniswap-v3": chain.uniswap_v3}
                    urls = {p: subgraph_url(base, p, chain.name) for p in PROTOCOLS if present[p] is not None}
                    if urls:
                        found.append(await discover_chain(chain, urls, page_size=page_size))
                return merge(*found)
        finally:
            for client in clients.values():
                await client.close()
    finally:
        devnet.stop()
