"""Implied-vol surface per asset from option quotes: the snapshot's `vol` field, an eSSVI surface.

Per expiry:
1. Forward: the mark of the dated future of that expiry when the venue lists one; otherwise put-call parity on the
   strikes nearest the money where both the call and the put have a two-sided market (median of the implied
   forwards); otherwise, flagged, the venue's own underlying price for the expiry.
2. Quotes: out-of-the-money only (calls at K >= F, puts below); the price is the mark held within the bid-ask (the
   mid without a mark, the bid without an ask), converted to USD (inverse options: coin price x F), inverted to an
   implied vol. A quote with no bid still counts through its mark, at a lower weight (`SurfacePolicy`); a price
   with no recoverable vol (below intrinsic, or no price at all) cannot be used.
3. One joint eSSVI fit of every expiry (`oracles.essvi`), arbitrage-free at every strike and maturity by the
   constraints of its parameters: every expiry with a usable quote gets a fitted slice, an expiry whose quotes are
   all unusable gets the slice the surface interpolates at its time (status "interpolated"), none is dropped.
4. Slices eSSVI misses by more than `oracles.essvi.CORRECT_ABOVE_VOL_POINTS` get a B-spline correction of their
   total variance, fitted under butterfly and calendar constraints and checked on dense grids
   (`oracles.essvi.fit_corrections`; docs/vol-surface.md, "Corrected slices").
Across expiries risk_core interpolates the parameters in time (linearly in total variance next to a corrected
slice) and extrapolates in total variance (`risk_core.pricing.vol_surface`). With no usable quote at all there is
no surface and the status says why.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

import numpy as np
from numpy.typing import NDArray

from oracles.essvi import Node, SliceData, fit_corrections, fit_essvi
from oracles.implied_vol import compute_implied_vol
from risk_core.pricing.black76 import black76_greeks
from risk_core.pricing.smile import corrected_essvi
from risk_core.pricing.vol_surface import SECONDS_PER_YEAR, ESSVIPath
from risk_core.schema.market import ESSVICorrection, ESSVISlice, ESSVISurface

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
    min_years: float = 1.0 / (365.0 * 24.0)  # expiries closer than an hour are not fitted
    parity_strikes: int = 5
    mark_only_weight: float = 0.25  # a quote without a bid, priced at its mark, counts this much of its vega


@dataclass(frozen=True)
class ExpiryForward:
    expiry: datetime
    forward: float
    method: ForwardMethod
    venue: str


@dataclass(frozen=True)
class QuoteFit:
    """One usable quote beside the surface's implied vol at its strike (decimals)."""

    instrument: str
    strike: float
    market_iv: float
    model_iv: float


@dataclass(frozen=True)
class SliceFit:
    expiry: datetime
    years: float
    forward: float
    forward_method: ForwardMethod
    n_quotes: int
    status: Literal["fitted", "interpolated"]
    params: ESSVISlice
    quotes: tuple[QuoteFit, ...] = ()
    rmse_vol_points: float | None = None  # vega-weighted, on the slice's own quotes; None without a quote

    def total_variance(self, k: Array) -> Array:
        """The slice's total variance at k: eSSVI plus its correction, if any."""
        return self.variance_terms(k)[0]

    def variance_terms(self, k: Array, derivatives: int = 0) -> tuple[Array, ...]:
        """The slice's total variance at k and its first `derivatives` derivatives in k."""
        p = self.params
        return corrected_essvi(
            np.asarray(k, dtype=np.float64), p.theta, p.psi * (1 + p.rho) / 2, p.psi * (1 - p.rho) / 2,
            p.correction.as_tuple() if p.correction is not None else None, derivatives,
        )


@dataclass(frozen=True)
class SurfaceFit:
    asset: str
    as_of: datetime
    status: Literal["ok", "failed"]
    surface: ESSVISurface | None
    slices: tuple[SliceFit, ...]
    forwards: dict[datetime, float]
    flags: tuple[str, ...]
    venues: tuple[str, ...]
    rmse_vol_points: float | None = None  # vega-weighted over every quote of every expiry

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
    quality: Array  # 1 for a quote with a bid, the policy's mark-only weight without
    instrument: tuple[str, ...]


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


@dataclass(frozen=True)
class _OTMPrices:
    """One venue's out-of-the-money quotes of one expiry, priced in USD, before their implied vols."""

    quotes: tuple[OptionQuote, ...]
    prices: Array
    quality: Array
    forward: float
    years: float


def _otm_prices(quotes: Sequence[OptionQuote], *, forward: float, years: float, mark_only_weight: float
                ) -> _OTMPrices:
    prices: list[float] = []
    kept: list[OptionQuote] = []
    quality: list[float] = []
    for q in quotes:
        if q.is_call != (q.strike >= forward):
            continue
        bid = q.bid if q.bid is not None and q.bid > 0 else None
        ask = q.ask if q.ask is not None and (bid is None or q.ask >= bid) else None
        if q.mark is not None:
            price = min(max(q.mark, bid or 0.0), ask) if ask is not None else max(q.mark, bid or 0.0)
        elif bid is not None:
            price = 0.5 * (bid + ask) if ask is not None else bid
        else:
            continue
        prices.append(price * forward if q.inverse else price)
        kept.append(q)
        quality.append(1.0 if bid is not None else mark_only_weight)
    return _OTMPrices(quotes=tuple(kept), prices=np.array(prices, dtype=np.float64),
                      quality=np.array(quality, dtype=np.float64), forward=forward, years=years)


def _implied(parts: Sequence[_OTMPrices]) -> list[_SliceQuotes]:
    """The implied vols and vegas of every part in one vectorized inversion (one Newton loop, not one a part),
    prices with no vol left out."""
    count = [p.prices.size for p in parts]
    strike = np.array([q.strike for p in parts for q in p.quotes], dtype=np.float64)
    is_call = np.array([q.is_call for p in parts for q in p.quotes], dtype=bool)
    forward = np.repeat([p.forward for p in parts], count).astype(np.float64)
    years = np.repeat([p.years for p in parts], count).astype(np.float64)
    prices = np.concatenate([p.prices for p in parts]) if parts else np.zeros(0)
    iv = compute_implied_vol(prices, forward, strike, years, is_call)
    ok = np.isfinite(iv) & (iv > 0)
    vega = np.full(iv.shape, np.nan)
    vega[ok] = black76_greeks(forward[ok], strike[ok], years[ok], iv[ok], is_call[ok]).vega
    out = []
    for p, lo, hi in zip(parts, np.cumsum([0, *count[:-1]]), np.cumsum(count), strict=True):
        use = ok[lo:hi]
        out.append(_SliceQuotes(
            k=np.log(strike[lo:hi][use] / p.forward), iv=iv[lo:hi][use], vega=vega[lo:hi][use],
            strike=strike[lo:hi][use], is_call=is_call[lo:hi][use], quality=p.quality[use],
            instrument=tuple(q.instrument for q, usable in zip(p.quotes, use, strict=True) if usable),
        ))
    return out


def compute_otm_quotes(
    quotes: Sequence[OptionQuote], *, forward: float, years: float, mark_only_weight: float = 0.25
) -> _SliceQuotes:
    """Out-of-the-money quotes as (log-moneyness, implied vol, vega, quality); prices with no vol left out."""
    return _implied([_otm_prices(quotes, forward=forward, years=years, mark_only_weight=mark_only_weight)])[0]


def _merge(parts: Sequence[_SliceQuotes]) -> _SliceQuotes:
    k, iv, vega, strike, is_call, quality = (
        np.concatenate([getattr(p, f) for p in parts]) for f in ("k", "iv", "vega", "strike", "is_call", "quality")
    )
    return _SliceQuotes(k=k, iv=iv, vega=vega, strike=strike, is_call=is_call, quality=quality,
                        instrument=tuple(i for p in parts for i in p.instrument))


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

    forwards: dict[datetime, float] = {}
    expiries: list[tuple[datetime, float, ExpiryForward, _SliceQuotes]] = []
    priced: list[tuple[datetime, float, list[tuple[ExpiryForward, _OTMPrices]]]] = []
    for expiry in sorted(by_expiry):
        years = _years(as_of, expiry)
        if years < pol.min_years:
            continue
        venue_parts: list[tuple[ExpiryForward, _OTMPrices]] = []
        for chain, qs in by_expiry[expiry]:
            fwd = compute_forward(
                qs, expiry=expiry, future=chain.futures.get(expiry), venue=chain.venue,
                parity_strikes=pol.parity_strikes,
            )
            if fwd is not None:
                venue_parts.append((fwd, _otm_prices(qs, forward=fwd.forward, years=years,
                                                     mark_only_weight=pol.mark_only_weight)))
        priced.append((expiry, years, venue_parts))
    implied = iter(_implied([part for _, _, venue_parts in priced for _, part in venue_parts]))
    for expiry, years, venue_parts in priced:
        parts: list[_SliceQuotes] = []
        best: tuple[int, ExpiryForward] | None = None
        for fwd, _ in venue_parts:
            part = next(implied)
            parts.append(part)
            if best is None or part.k.size > best[0]:
                best = (part.k.size, fwd)
        if best is None:
            flags.append(f"{expiry:%Y-%m-%d}: no forward (no future, no parity pair, no underlying price)")
            continue
        efwd = best[1]
        forwards[expiry] = efwd.forward
        if efwd.method == "venue-underlying":
            flags.append(f"{expiry:%Y-%m-%d}: forward from the venue's underlying price (no future, no parity pair)")
        expiries.append((expiry, years, efwd, _merge(parts)))

    venues = tuple(sorted({c.venue for c in chains}))
    quoted = [e for e in expiries if e[3].k.size]
    if not quoted:
        flags.append("no usable option quote (none out of the money with a recoverable implied vol)")
        return SurfaceFit(asset=asset, as_of=as_of, status="failed", surface=None, slices=(), forwards=forwards,
                          flags=tuple(flags), venues=venues)
    slice_data = [
        SliceData(years=years, k=sq.k, total_variance=sq.iv * sq.iv * years, iv=sq.iv, weight=sq.vega * sq.quality)
        for _, years, _, sq in quoted
    ]
    fit = fit_essvi(slice_data)
    if not fit.converged:
        flags.append(f"eSSVI fit stopped before convergence ({fit.message}); its constraints still hold")
    backbone = ESSVIPath(np.array([e[1] for e in quoted]), fit.theta, fit.up, fit.down)
    times = np.array([e[1] for e in expiries])
    theta, up, down = backbone.at(times)
    data = {id(sq): d for (_, _, _, sq), d in zip(quoted, slice_data, strict=True)}
    nodes = [Node(years=float(t), theta=float(a), up=float(u), down=float(d), data=data.get(id(e[3])))
             for t, a, u, d, e in zip(times, theta, up, down, expiries, strict=True)]
    corrected = fit_corrections(nodes)
    if corrected.scale < 1.0:
        flags.append(f"slice corrections: {corrected.message}")
    path = ESSVIPath(times, theta, up, down, corrected.corrections)
    slices: list[SliceFit] = []
    errors, vegas = [], []
    for i, (expiry, years, efwd, sq) in enumerate(expiries):
        node, correction = nodes[i], corrected.corrections[i]
        params = ESSVISlice(
            expiry=expiry, theta=node.theta, rho=(node.up - node.down) / (node.up + node.down),
            psi=node.up + node.down,
            correction=None if correction is None else ESSVICorrection(
                k_start=correction.k_start, k_step=correction.k_step, coefficients=correction.coefficients.tolist()),
        )
        common = dict(expiry=expiry, years=years, forward=efwd.forward, forward_method=efwd.method,
                      n_quotes=int(sq.k.size), params=params)
        if not sq.k.size:
            flags.append(f"{expiry:%Y-%m-%d}: no usable quote; the slice is the surface's interpolation")
            slices.append(SliceFit(status="interpolated", **common))  # type: ignore[arg-type]
            continue
        model_iv = np.sqrt(path.total_variance(np.full(sq.k.size, years), sq.k) / years)
        quotes = tuple(
            QuoteFit(instrument=i, strike=float(k), market_iv=float(m), model_iv=float(f))
            for i, k, m, f in zip(sq.instrument, sq.strike, sq.iv, model_iv, strict=True)
        )
        rmse = vega_weighted_rmse(model_iv, sq.iv, sq.vega)
        errors.append(model_iv - sq.iv)
        vegas.append(sq.vega)
        slices.append(SliceFit(status="fitted", quotes=quotes, rmse_vol_points=rmse, **common))  # type: ignore[arg-type]
    surface = ESSVISurface(essvi=[s.params for s in slices])
    every_error, every_vega = np.concatenate(errors), np.concatenate(vegas)
    return SurfaceFit(asset=asset, as_of=as_of, status="ok", surface=surface, slices=tuple(slices),
                      forwards=forwards, flags=tuple(flags), venues=venues,
                      rmse_vol_points=vega_weighted_rmse(every_error, np.zeros_like(every_error), every_vega))
