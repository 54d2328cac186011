"""Implied-vol surface per asset from option quotes: the snapshot's `vol` field.

Per expiry:
1. Forward: the mark of the dated future of that expiry when the venue lists one; otherwise put-call parity on the
   strikes nearest the money where both the call and the put have a two-sided market (median of the implied
   forwards); otherwise, flagged, the venue's own underlying price for the expiry.
2. Quotes: out-of-the-money only (calls at K >= F, puts below), a quote without a bid is dropped, the price is the
   mid (or the mark when there is no ask), converted to USD (inverse options: coin price x F), inverted to an
   implied vol; prices with no recoverable vol are dropped.
3. SVI by the quasi-explicit method inside its admissible domain, vega-weighted (`oracles.svi`); butterfly-free
   (g(k) >= 0) on a dense grid, and calendar-free against the previous fitted expiry (total variance at every k of
   the grid not below the previous slice's). A slice that cannot meet both is dropped and flagged.
Across expiries risk_core interpolates total variance linearly in time at fixed k (`ResolvedSurface`).

Thin data: an expiry with fewer than `min_quotes` usable quotes (or fewer than 2 on either side of the forward) is
not fitted; when no expiry can be fitted the surface falls back, flagged, to the raw quoted points (a
`PointsSurface`), and with no usable quote at all there is no surface and the status says why.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

import numpy as np
from numpy.typing import NDArray

from oracles.implied_vol import compute_implied_vol
from oracles.svi import SVIParams, butterfly_free, calendar_free, compute_svi_fit
from risk_core.pricing.black76 import black76_greeks
from risk_core.pricing.vol_surface import SECONDS_PER_YEAR
from risk_core.schema.market import PointsSurface, SVISlice, SVISurface, VolPoint, VolSurface

Array = NDArray[np.float64]
ForwardMethod = Literal["future", "parity", "venue-underlying"]


@dataclass(frozen=True, slots=True)
class OptionQuote:
    """One option's market from one venue. Prices are per unit of underlying: in coin when `inverse`, else USD."""

    venue: str
    instrument: str
    expiry: datetime
    strike: float
    is_call: bool
    bid: float | None
    ask: float | None
    mark: float | None
    underlying_price: float | None  # the venue's forward for this option, when it says
    inverse: bool


@dataclass(frozen=True)
class VenueChain:
    """One venue's option chain for one asset, and the marks of its dated futures by expiry."""

    venue: str
    asset: str
    as_of: datetime
    quotes: tuple[OptionQuote, ...]
    futures: Mapping[datetime, float] = field(default_factory=dict)


@dataclass(frozen=True)
class SurfacePolicy:
    min_quotes: int = 6  # per expiry, for an SVI fit
    min_side: int = 2  # quotes on each side of the forward
    min_years: float = 1.0 / (365.0 * 24.0)  # expiries closer than an hour are not fitted
    parity_strikes: int = 5
    check_points: int = 401
    calendar_tol: float = 1e-8  # total variance
    calendar_pad: float = 0.25  # the calendar grid extends the quoted range by this fraction of it


@dataclass(frozen=True)
class ExpiryForward:
    expiry: datetime
    forward: float
    method: ForwardMethod
    venue: str


@dataclass(frozen=True)
class SliceFit:
    expiry: datetime
    years: float
    forward: float
    forward_method: ForwardMethod
    n_quotes: int
    status: Literal["fitted", "thin", "rejected"]
    params: SVIParams | None = None
    rmse_vol_points: float | None = None  # vega-weighted, on the slice's own quotes
    reason: str | None = None


@dataclass(frozen=True)
class SurfaceFit:
    asset: str
    as_of: datetime
    status: Literal["ok", "fallback", "failed"]
    surface: VolSurface | None
    slices: tuple[SliceFit, ...]
    forwards: dict[datetime, float]
    flags: tuple[str, ...]
    venues: tuple[str, ...]

    @property
    def reason(self) -> str:
        return "; ".join(self.flags) if self.flags else "ok"


@dataclass(frozen=True)
class _SliceQuotes:
    k: Array
    iv: Array
    vega: Array
    strike: Array
    is_call: Array


def _years(as_of: datetime, expiry: datetime) -> float:
    return (expiry - as_of).total_seconds() / SECONDS_PER_YEAR


def _two_sided(q: OptionQuote) -> bool:
    return q.bid is not None and q.bid > 0 and q.ask is not None and q.ask >= q.bid


def compute_forward(
    quotes: Sequence[OptionQuote], *, expiry: datetime, future: float | None, venue: str, parity_strikes: int = 5
) -> ExpiryForward | None:
    """The forward of one expiry of one venue: future mark, else put-call parity, else the venue's underlying."""
    if future is not None and future > 0:
        return ExpiryForward(expiry=expiry, forward=future, method="future", venue=venue)
    calls = {q.strike: q for q in quotes if q.is_call and _two_sided(q)}
    puts = {q.strike: q for q in quotes if not q.is_call and _two_sided(q)}
    implied: list[tuple[float, float]] = []  # (|call - put| in units of the strike, forward)
    for strike in calls.keys() & puts.keys():
        c, p = calls[strike], puts[strike]
        assert c.bid is not None and c.ask is not None and p.bid is not None and p.ask is not None
        diff = 0.5 * (c.bid + c.ask) - 0.5 * (p.bid + p.ask)
        if c.inverse:
            # coin prices: c - p = (F - K) / F  =>  F = K / (1 - (c - p))
            if diff >= 1.0:
                continue
            fwd = strike / (1.0 - diff)
            implied.append((abs(diff), fwd))
        else:
            fwd = strike + diff
            implied.append((abs(diff) / strike, fwd))
    if implied:
        implied.sort()
        nearest = [f for _, f in implied[:parity_strikes] if f > 0]
        if nearest:
            return ExpiryForward(expiry=expiry, forward=float(np.median(nearest)), method="parity", venue=venue)
    underlying = [q.underlying_price for q in quotes if q.underlying_price is not None and q.underlying_price > 0]
    if underlying:
        median = float(np.median(underlying))
        return ExpiryForward(expiry=expiry, forward=median, method="venue-underlying", venue=venue)
    return None


def compute_otm_quotes(quotes: Sequence[OptionQuote], *, forward: float, years: float) -> _SliceQuotes:
    """Out-of-the-money quotes with a bid, as (log-moneyness, implied vol, vega); unusable prices dropped."""
    rows = [q for q in quotes if q.bid is not None and q.bid > 0 and (q.is_call == (q.strike >= forward))]
    prices: list[float] = []
    kept: list[OptionQuote] = []
    for q in rows:
        assert q.bid is not None
        ask = q.ask if q.ask is not None and q.ask >= q.bid else None
        if q.mark is not None:
            price = min(max(q.mark, q.bid), ask) if ask is not None else max(q.mark, q.bid)
        elif ask is not None:
            price = 0.5 * (q.bid + ask)
        else:
            continue
        prices.append(price * forward if q.inverse else price)
        kept.append(q)
    if not kept:
        empty = np.zeros(0)
        return _SliceQuotes(k=empty, iv=empty, vega=empty, strike=empty, is_call=np.zeros(0, dtype=bool))
    strike = np.array([q.strike for q in kept])
    is_call = np.array([q.is_call for q in kept])
    iv = compute_implied_vol(np.array(prices), forward, strike, years, is_call)
    ok = np.isfinite(iv)
    strike, is_call, iv = strike[ok], is_call[ok], iv[ok]
    vega = black76_greeks(forward, strike, years, iv, is_call).vega
    return _SliceQuotes(k=np.log(strike / forward), iv=iv, vega=vega, strike=strike, is_call=is_call)


def _merge(parts: Sequence[_SliceQuotes]) -> _SliceQuotes:
    return _SliceQuotes(
        *(np.concatenate([getattr(p, name) for p in parts]) for name in ("k", "iv", "vega", "strike", "is_call"))
    )


def _check_grid(k: Array, w: Array, points: int) -> Array:
    span = float(k.max() - k.min())
    width = max(0.5 * span, 4.0 * float(np.sqrt(np.median(w))))
    return np.linspace(float(k.min()) - width, float(k.max()) + width, points)


def _calendar_grid(k: Array, prev_k: Array, pol: SurfacePolicy) -> Array:
    """Where two slices are compared: the listed log-moneyness of both, widened by a quarter of its span."""
    lo, hi = min(float(k.min()), float(prev_k.min())), max(float(k.max()), float(prev_k.max()))
    pad = pol.calendar_pad * (hi - lo)
    return np.linspace(lo - pad, hi + pad, pol.check_points)


def vega_weighted_rmse(fitted_iv: Array, quoted_iv: Array, vega: Array) -> float:
    """sqrt(sum(vega (fit - quote)^2) / sum(vega)), in vol points (1 = 0.01)."""
    err = fitted_iv - quoted_iv
    return float(100.0 * np.sqrt(np.sum(vega * err * err) / np.sum(vega)))


def compute_surface(
    chains: Sequence[VenueChain], *, asset: str, as_of: datetime, policy: SurfacePolicy | None = None
) -> SurfaceFit:
    """Fit the asset's surface from every venue's chain (quotes of one expiry are pooled in log-moneyness, each
    against its own venue's forward; the snapshot forward of an expiry is that of the venue with most quotes)."""
    pol = policy or SurfacePolicy()
    flags: list[str] = []
    by_expiry: dict[datetime, list[tuple[VenueChain, list[OptionQuote]]]] = defaultdict(list)
    for chain in chains:
        groups: dict[datetime, list[OptionQuote]] = defaultdict(list)
        for q in chain.quotes:
            groups[q.expiry].append(q)
        for expiry, qs in groups.items():
            by_expiry[expiry].append((chain, qs))

    slices: list[SliceFit] = []
    forwards: dict[datetime, float] = {}
    fitted: list[tuple[SliceFit, _SliceQuotes]] = []
    usable_points: list[VolPoint] = []
    prev: tuple[SVIParams, Array] | None = None
    for expiry in sorted(by_expiry):
        years = _years(as_of, expiry)
        if years < pol.min_years:
            continue
        parts: list[_SliceQuotes] = []
        best: tuple[int, ExpiryForward] | None = None
        for chain, qs in by_expiry[expiry]:
            fwd = compute_forward(
                qs, expiry=expiry, future=chain.futures.get(expiry), venue=chain.venue,
                parity_strikes=pol.parity_strikes,
            )
            if fwd is None:
                continue
            part = compute_otm_quotes(qs, forward=fwd.forward, years=years)
            parts.append(part)
            if best is None or part.k.size > best[0]:
                best = (part.k.size, fwd)
        if best is None:
            continue
        efwd = best[1]
        forwards[expiry] = efwd.forward
        if efwd.method == "venue-underlying":
            flags.append(f"{expiry:%Y-%m-%d}: forward from the venue's underlying price (no future, no parity pair)")
        sq = _merge(parts)
        listed_k = np.log(np.array([q.strike for _, qs in by_expiry[expiry] for q in qs]) / efwd.forward)
        for strike_k, iv in zip(sq.k, sq.iv, strict=True):
            usable_points.append(VolPoint(expiry=expiry, strike=float(efwd.forward * np.exp(strike_k)), iv=float(iv)))
        n = int(sq.k.size)
        n_left, n_right = int(np.sum(sq.k < 0)), int(np.sum(sq.k >= 0))
        common = dict(expiry=expiry, years=years, forward=efwd.forward, forward_method=efwd.method, n_quotes=n)
        if n < pol.min_quotes or min(n_left, n_right) < pol.min_side:
            slices.append(SliceFit(status="thin", reason=f"{n} usable quotes ({n_left} below, {n_right} above F)",
                                   **common))  # type: ignore[arg-type]
            continue
        w = sq.iv * sq.iv * years
        weight = sq.vega / (2.0 * sq.iv * years) ** 2
        check_k = _check_grid(np.concatenate([sq.k, listed_k]), w, pol.check_points)
        predicates = [butterfly_free(check_k)]
        if prev is not None:
            grid = _calendar_grid(listed_k, prev[1], pol)
            predicates.append(calendar_free(grid, prev[0].total_variance(grid), pol.calendar_tol))
        choice = compute_svi_fit(sq.k, w, weight, admissible=predicates)
        if choice is None:
            reason = "no SVI in the admissible domain is free of butterfly" + (
                " and calendar arbitrage" if prev is not None else " arbitrage") + " on these quotes"
            slices.append(SliceFit(status="rejected", reason=reason, **common))  # type: ignore[arg-type]
            flags.append(f"{expiry:%Y-%m-%d}: slice rejected ({reason})")
            continue
        fit_iv = np.sqrt(np.maximum(choice.params.total_variance(sq.k), 0.0) / years)
        rmse = vega_weighted_rmse(fit_iv, sq.iv, sq.vega)
        sf = SliceFit(status="fitted", params=choice.params, rmse_vol_points=rmse, **common)  # type: ignore[arg-type]
        slices.append(sf)
        fitted.append((sf, sq))
        prev = (choice.params, listed_k)

    thin = [s for s in slices if s.status == "thin"]
    venues = tuple(sorted({c.venue for c in chains}))
    if fitted:
        if thin:
            flags.append("thin expiries not fitted: " + ", ".join(f"{s.expiry:%Y-%m-%d} ({s.reason})" for s in thin))
        svi = [
            SVISlice(expiry=s.expiry, a=s.params.a, b=s.params.b, rho=s.params.rho, m=s.params.m, sigma=s.params.sigma)
            for s, _ in fitted
            if s.params is not None
        ]
        return SurfaceFit(asset=asset, as_of=as_of, status="ok", surface=SVISurface(svi=svi), slices=tuple(slices),
                          forwards=forwards, flags=tuple(flags), venues=venues)
    if usable_points:
        flags.append(f"fallback: no expiry had enough quotes for SVI; surface is the {len(usable_points)} quoted "
                     "points joined linearly in total variance")
        return SurfaceFit(asset=asset, as_of=as_of, status="fallback", surface=PointsSurface(points=usable_points),
                          slices=tuple(slices), forwards=forwards, flags=tuple(flags), venues=venues)
    flags.append("no usable option quote (none out of the money with a bid and a recoverable implied vol)")
    return SurfaceFit(asset=asset, as_of=as_of, status="failed", surface=None, slices=tuple(slices),
                      forwards=forwards, flags=tuple(flags), venues=venues)
