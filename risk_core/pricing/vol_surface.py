"""Implied vol at any (expiry, strike) from a snapshot's surface, interpolated in total variance.

Within an expiry, total variance w = iv^2 T is a function of log-moneyness k = ln(K / F(T)): SVI, or the quoted
points joined linearly (flat beyond the outermost strikes). Across expiries, w at fixed k is linear in T; before
the first expiry and after the last the implied vol is held flat. A quoted point therefore comes back exactly.

An eSSVI surface is read through its parameters instead (Corbetta, Cohort, Laachir & Martini 2019, section 5):
theta, the wing slopes psi (1 + rho) / 2 and psi (1 - rho) / 2 are linear in T between expiries, which keeps the
no-arbitrage conditions of the slices at every T in between. Before the first expiry theta falls linearly to 0 at
T = 0 and the wing slopes as sqrt(T) (psi^2 / theta constant: the butterfly bound holds); after the last, theta
grows at the last interval's forward variance (T1's own with one slice) and the wings stay. Every T therefore has
an arbitrage-free slice, extrapolated in total variance rather than at flat vol.

A slice may carry a correction (a cubic B-spline of total variance, zero outside its knots; never the last slice).
An interval with a corrected slice at either end is linear in total variance at fixed k, which keeps the order of
its ends at every T (calendar); before a corrected first slice w(k, T) = w1(k) T / T1, free of both arbitrages
(docs/vol-surface.md, "Corrected slices"); the extrapolation past the last slice grows theta at the forward ATM
variance of the corrected slices.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import partial

import numpy as np
from numpy.typing import ArrayLike, NDArray

from risk_core.pricing.smile import bspline_support, bspline_values, essvi_wings
from risk_core.schema.market import ESSVISurface, PointsSurface, SVISurface, VolSurface

Array = NDArray[np.float64]
SECONDS_PER_YEAR = 365.0 * 86400.0
Forward = Callable[[datetime], float]


def year_fraction(start: datetime, end: datetime) -> float:
    """ACT/365 in years."""
    return (end - start).total_seconds() / SECONDS_PER_YEAR


def svi_total_variance(
    k: Array, a: float | Array, b: float | Array, rho: float | Array, m: float | Array, sigma: float | Array
) -> Array:
    x = k - m
    return a + b * (rho * x + np.sqrt(x * x + sigma * sigma))


def essvi_total_variance(k: Array, theta: float | Array, rho: float | Array, psi: float | Array) -> Array:
    """w(k) = (theta + rho psi k + sqrt((psi k + rho theta)^2 + (1 - rho^2) theta^2)) / 2."""
    return essvi_wings(k, theta, psi * (1.0 + rho) / 2.0, psi * (1.0 - rho) / 2.0)[0]


@dataclass(frozen=True)
class SliceCorrection:
    """Total variance added to an eSSVI slice: sum_j coefficients[j] B_j(k), the cubic B-splines of
    `risk_core.pricing.smile.bspline_basis` on the knots k_start + i k_step; zero outside its support."""

    k_start: float
    k_step: float
    coefficients: Array

    def terms(self, k: Array, derivatives: int = 0) -> tuple[Array, ...]:
        """The correction at k and its first `derivatives` derivatives in k."""
        return tuple(bspline_values(k, self.k_start, self.k_step, self.coefficients, d) for d in range(derivatives + 1))

    def as_tuple(self) -> tuple[float, float, Array]:
        return self.k_start, self.k_step, self.coefficients

    @property
    def support(self) -> tuple[float, float]:
        return bspline_support(self.k_start, self.k_step, self.coefficients.size)


class ESSVIPath:
    """theta and the wing slopes of an eSSVI surface at any T > 0 (interpolated and extrapolated as above), and
    the total variance of the surface, with the slices' corrections where there are any."""

    def __init__(
        self, times: Array, theta: Array, up: Array, down: Array,
        corrections: Sequence[SliceCorrection | None] | None = None,
    ) -> None:
        self.times, self.theta, self.up, self.down = times, theta, up, down
        self.corrections: tuple[SliceCorrection | None, ...] = (
            tuple(corrections) if corrections is not None else (None,) * times.size
        )
        self._corrected = np.array([c is not None for c in self.corrections], dtype=bool)
        # beyond the last expiry theta grows at the forward ATM variance of the last interval (of the slices as
        # corrected: a correction moves the ATM variance of its slice); the last slice itself is never corrected
        atm = self.slice_variance(np.arange(times.size), np.zeros(times.size))
        self._last_slope = (
            (theta[-1] - atm[-2]) / (times[-1] - times[-2]) if times.size > 1 else theta[0] / times[0]
        )

    def at(self, t: Array) -> tuple[Array, Array, Array]:
        times = self.times
        before, after = t < times[0], t > times[-1]
        theta = np.interp(t, times, self.theta)
        up, down = np.interp(t, times, self.up), np.interp(t, times, self.down)
        scale = np.sqrt(np.where(before, t / times[0], 1.0))
        theta = np.where(before, self.theta[0] * t / times[0], theta)
        theta = np.where(after, self.theta[-1] + self._last_slope * (t - times[-1]), theta)
        return theta, up * scale, down * scale

    def slice_variance(self, index: NDArray[np.intp], k: Array) -> Array:
        """Total variance of slice `index[i]` (eSSVI plus its correction) at k[i]."""
        w = essvi_wings(k, self.theta[index], self.up[index], self.down[index])[0]
        for j in np.unique(index[self._corrected[index]]):
            where = index == j
            correction = self.corrections[j]
            assert correction is not None
            w[where] += correction.terms(k[where])[0]
        return w

    def total_variance(self, t: Array, k: Array) -> Array:
        theta, up, down = self.at(t)
        w = essvi_wings(k, theta, up, down)[0]
        if not self._corrected.any():
            return w
        # an interval with a corrected slice at either end is linear in total variance at fixed k (ordered at its
        # ends, so at every T in between); before a corrected first slice, w1(k) T / T1
        times = self.times
        hi = np.searchsorted(times, t)  # times[hi - 1] < t <= times[hi]
        inner = (hi >= 1) & (hi < times.size)
        lo = np.maximum(hi - 1, 0)
        top = np.minimum(hi, times.size - 1)
        linear = inner & (self._corrected[lo] | self._corrected[top])
        first = (hi == 0) & self._corrected[0]
        if linear.any():
            i_lo, i_hi, kk = lo[linear], top[linear], k[linear]
            w_lo, w_hi = self.slice_variance(i_lo, kk), self.slice_variance(i_hi, kk)
            weight = (t[linear] - times[i_lo]) / (times[i_hi] - times[i_lo])
            w[linear] = w_lo + (w_hi - w_lo) * weight
        if first.any():
            w[first] = self.slice_variance(np.zeros(int(first.sum()), dtype=np.intp), k[first]) * t[first] / times[0]
        return w


def _linear_slice(k: Array, *, strikes_k: Array, variances: Array) -> Array:
    return np.asarray(np.interp(k, strikes_k, variances), dtype=np.float64)


class ResolvedSurface:
    """A surface resolved once against its snapshot: slice times and per-slice total-variance functions."""

    def __init__(self, surface: VolSurface, as_of: datetime, forward: Forward) -> None:
        expiries: list[datetime] = []
        # SVI: the parameters of each live slice (rows a, b, rho, m, sigma), gathered per query by `_variance_at`
        # so that all queries are evaluated in one call; quoted points: an interpolating function per slice
        self._svi: Array | None = None
        self._variance: list[Callable[[Array], Array]] = []
        self._essvi: ESSVIPath | None = None
        if isinstance(surface, ESSVISurface):
            live = [s for s in surface.essvi if s.expiry > as_of]
            expiries = [s.expiry for s in live]
            if live:
                theta, rho, psi = (np.array([getattr(s, f) for s in live]) for f in ("theta", "rho", "psi"))
                times = np.array([year_fraction(as_of, e) for e in expiries])
                corrections = [
                    None if s.correction is None else SliceCorrection(
                        s.correction.k_start, s.correction.k_step, np.array(s.correction.coefficients))
                    for s in live
                ]
                self._essvi = ESSVIPath(times, theta, psi * (1.0 + rho) / 2.0, psi * (1.0 - rho) / 2.0, corrections)
        elif isinstance(surface, SVISurface):
            params = {s.expiry: (s.a, s.b, s.rho, s.m, s.sigma) for s in surface.svi}
            expiries = sorted(e for e in params if e > as_of)
            self._svi = np.array([params[e] for e in expiries], dtype=np.float64).reshape(-1, 5).T
        elif isinstance(surface, PointsSurface):
            by_expiry: dict[datetime, list[tuple[float, float]]] = {}
            for p in surface.points:
                by_expiry.setdefault(p.expiry, []).append((p.strike, p.iv))
            slices: dict[datetime, Callable[[Array], Array]] = {}
            for expiry, quotes in by_expiry.items():
                t = year_fraction(as_of, expiry)
                quotes.sort()
                ks = np.log(np.array([q[0] for q in quotes]) / forward(expiry))
                ws = np.array([q[1] for q in quotes]) ** 2 * t
                slices[expiry] = partial(_linear_slice, strikes_k=ks, variances=ws)
            expiries = sorted(e for e in slices if e > as_of)
            self._variance = [slices[e] for e in expiries]
        if not expiries:
            raise ValueError("every expiry of the surface is at or before the snapshot time")
        self._times = np.array([year_fraction(as_of, e) for e in expiries])

    def _variance_at(self, slice_index: NDArray[np.intp], k: Array) -> Array:
        """Total variance of slice `slice_index[i]` at `k[i]`: each slice is evaluated only where it is needed."""
        if self._svi is not None:
            a, b, rho, m, sigma = self._svi[:, slice_index]
            return svi_total_variance(k, a, b, rho, m, sigma)
        out = np.empty(k.size)
        for j in np.unique(slice_index):
            where = slice_index == j
            out[where] = self._variance[j](k[where])
        return out

    @property
    def expiry_years(self) -> Array:
        return self._times

    def implied_vol(self, years: ArrayLike, log_moneyness: ArrayLike) -> Array:
        """Implied vol at each (T, k); T > 0. T and k broadcast against each other."""
        t, k = np.asarray(years, dtype=np.float64), np.asarray(log_moneyness, dtype=np.float64)
        if t.shape != k.shape:  # np.broadcast_arrays costs ~10 us even when there is nothing to broadcast
            t, k = np.broadcast_arrays(t, k)
        shape = t.shape
        t, k = t.ravel(), k.ravel()
        if self._essvi is not None:
            return np.sqrt(np.maximum(self._essvi.total_variance(t, k), 0.0) / t).reshape(shape)
        times = self._times
        # the two slices around each T (one slice, scaled, before the first expiry and after the last)
        after = np.searchsorted(times, t)  # in 0..times.size
        lo = np.maximum(after - 1, 0)
        hi = np.minimum(after, times.size - 1)
        both = self._variance_at(np.concatenate([lo, hi]), np.concatenate([k, k]))  # both slices in one call
        w_lo, w_hi = both[: k.size], both[k.size :]
        t_lo, t_hi = times[lo], times[hi]
        flat = lo == hi
        span = np.where(flat, 1.0, t_hi - t_lo)
        w = np.where(flat, w_lo * t / t_lo, w_lo + (w_hi - w_lo) * (t - t_lo) / span)
        return np.sqrt(np.maximum(w, 0.0) / t).reshape(shape)
