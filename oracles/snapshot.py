"""The market snapshot: every price and surface source fetched concurrently, judged, and frozen into one immutable,
timestamped `MarketSnapshot` (the model risk_core reads), with the evidence behind each figure.

`compute_market_snapshot` is the pure assembly; `fetch_market_snapshot` runs the clients (each failure becomes that
source's `failed` status, never an exception) and then assembles. Scheduling belongs to the aggregator.

What lands in the snapshot:
- `spot[asset]`: the aggregated price, only when the policy produced one (a failed price is absent, never a
  guess; a frozen price is the held previous price, its status `stale`).
- `dispersion[asset]`: the aggregate's dispersion (widened to the unconfirmed move while frozen).
- `forwards[asset]` and `vol[asset]`: from the fitted surface (SVI, or flagged points fallback).
- `sources`: one status per fetch (`fetch:SOURCE`), per price (`price:ASSET/USD`, its reason naming the sources
  used, the dispersion and every flag), per observation (`SOURCE:ASSET/USD`), and per surface (`vol:ASSET`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from oracles.aggregation import AggregatedPrice
from oracles.surface import SurfaceFit
from risk_core.schema.market import MarketSnapshot, SourceStatus


@dataclass(frozen=True)
class SnapshotBuild:
    """A snapshot and the evidence behind it."""

    snapshot: MarketSnapshot
    prices: Mapping[str, AggregatedPrice]
    surfaces: Mapping[str, SurfaceFit]
    fetches: tuple[SourceStatus, ...]
    timings_s: Mapping[str, float] = field(default_factory=dict)


def surface_status(fit: SurfaceFit) -> SourceStatus:
    status = {"ok": "ok", "fallback": "stale", "failed": "failed"}[fit.status]
    fitted = sum(1 for s in fit.slices if s.status == "fitted")
    head = f"{fit.status}: {fitted}/{len(fit.slices)} expiries fitted (SVI) from {', '.join(fit.venues)}"
    return SourceStatus(
        name=f"vol:{fit.asset}",
        status=status,  # type: ignore[arg-type]
        reason="; ".join([head, *fit.flags]),
        as_of=fit.as_of,
    )


def compute_market_snapshot(
    *,
    as_of: datetime,
    prices: Mapping[str, AggregatedPrice],
    surfaces: Mapping[str, SurfaceFit],
    fetches: Sequence[SourceStatus] = (),
) -> MarketSnapshot:
    spot: dict[str, float] = {}
    dispersion: dict[str, float] = {}
    sources: list[SourceStatus] = list(fetches)
    for asset, agg in sorted(prices.items()):
        if agg.quote != "USD":
            raise ValueError(f"spot of {asset} must be in USD, not {agg.quote}")
        sources.extend(agg.source_statuses())
        if agg.price is not None:
            spot[asset] = agg.price
            dispersion[asset] = agg.dispersion
    forwards = {}
    vol = {}
    for asset, fit in sorted(surfaces.items()):
        sources.append(surface_status(fit))
        if fit.surface is not None:
            vol[asset] = fit.surface
            forwards[asset] = dict(sorted(fit.forwards.items()))
    return MarketSnapshot(
        as_of=as_of, spot=spot, forwards=forwards, vol=vol, dispersion=dispersion, sources=sources,
    )
