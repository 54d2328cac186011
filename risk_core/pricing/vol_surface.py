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
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from functools import partial

import numpy as np
from numpy.typing import ArrayLike, NDArray

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
    return _essvi_wings(k, theta, psi * (1.0 + rho) / 2.0, psi * (1.0 - rho) / 2.0)


def _essvi_wings(k: Array, theta: float | Array, up: float | Array, down: float | Array) -> Array:
    """eSSVI in its wing slopes up = psi (1 + rho) / 2, down = psi (1 - rho) / 2 (w ~ up k as k -> +inf)."""
    psi, rho_psi = up + down, up - down
    return 0.5 * (theta + rho_psi * k + np.sqrt((psi * k) ** 2 + 2.0 * theta * rho_psi * k + theta * theta))


class ESSVIPath:
    """theta and the wing slopes of an eSSVI surface at any T > 0 (interpolated and extrapolated as above)."""

    def __init__(self, times: Array, theta: Array, up: Array, down: Array) -> None:
        self.times, self.theta, self.up, self.down = times, theta, up, down
        self._last_slope = (
            (theta[-1] - theta[-2]) / (times[-1] - times[-2]) if times.size > 1 else theta[0] / times[0]
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

    def total_variance(self, t: Array, k: Array) -> Array:
        theta, up, down = self.at(t)
        return _essvi_wings(k, theta, up, down)


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
                self._essvi = ESSVIPath(times, theta, psi * (1.0 + rho) / 2.0, psi * (1.0 - rho) / 2.0)
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
