"""The cascade's partitions on a Dask cluster: a LocalCluster of worker processes, or a remote scheduler.

Each worker reads its own row groups of the population file and keeps the partitions in memory between rounds;
per round the client broadcasts the round's inputs (prices, PM2 unit balances) once and gathers only the small
per-partition totals. The round function is the in-process one, so both give the same figures.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass, field
from pathlib import Path

from distributed import Client, Future, LocalCluster

from research.contagion.accounts import AssetIndex, Partition, RoundInputs, RoundTotals, liquidate_round
from research.contagion.population import partition_count, read_partition


def _load(path: Path, index: int, assets: AssetIndex) -> Partition:
    return Partition.from_table(read_partition(path, index), assets)


@dataclass
class DaskRunner:
    client: Client
    partitions: list[Future] = field(default_factory=list)

    @classmethod
    def from_file(cls, client: Client, path: Path, assets: AssetIndex) -> DaskRunner:
        count = partition_count(path)
        futures = [client.submit(_load, path, i, assets, pure=False) for i in range(count)]
        return cls(client=client, partitions=futures)

    def run_round(self, inputs: RoundInputs) -> list[RoundTotals]:
        [shared] = self.client.scatter([inputs], broadcast=True)
        results = [self.client.submit(liquidate_round, part, shared, pure=False) for part in self.partitions]
        self.partitions = [self.client.submit(operator.itemgetter(0), r, pure=False) for r in results]
        totals: list[RoundTotals] = self.client.gather(
            [self.client.submit(operator.itemgetter(1), r, pure=False) for r in results]
        )
        return totals


def connect(scheduler: str | None, workers: int) -> Client:
    """A client of `scheduler` (tcp://host:8786), else of a LocalCluster of `workers` single-threaded processes."""
    if scheduler:
        return Client(scheduler)
    cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None)
    return Client(cluster)
