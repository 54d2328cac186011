"""Resolve a request's positions against the market into per-underlying revaluation rows.

Like Strata's resolved products: every lookup (price, forward, vol, haircut, tenor) happens once here, so the
risk arrays that follow are pure numpy over rows x scenarios. A position exposed to two risky assets (an LP range
of two volatile tokens) has a row in each underlying's array, revalued there with the other asset held.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from operator import attrgetter
from typing import Any

import numpy as np
from numpy.typing import NDArray

from risk_core.margin.fhs import historical_scenario_sets
from risk_core.margin.issues import PricingIssue, Severity, asset_issue, position_issue
from risk_core.margin.scenarios import ScenarioSet, build_scenarios, shocked_vols
from risk_core.pricing.black76 import black76_greeks, black76_price
from risk_core.pricing.lp import lp_amounts
from risk_core.pricing.vol_surface import ResolvedSurface, year_fraction
from risk_core.schema.market import MarketSnapshot
from risk_core.schema.params import AssetScenarios, RiskParams, VolShockParams
from risk_core.schema.positions import (
    BorrowPosition,
    FuturePosition,
    LendPosition,
    LPPosition,
    OptionPosition,
    PerpPosition,
    Position,
    SpotPosition,
)

Array = NDArray[np.float64]
IntArray = NDArray[np.intp]
STABLE_CLASS = "stablecoin"
# what a contingency key charges (ContingencyKeys.side)
_NET_SHORT, _NET_LONG, _NET_EITHER = -1.0, 1.0, 0.0


@dataclass
class _RowsBuilder:
    lin_pos: list[int] = field(default_factory=list)
    lin_base: list[float] = field(default_factory=list)
    lin_slope: list[float] = field(default_factory=list)
    lin_haircut: list[float] = field(default_factory=list)
    opt_pos: list[int] = field(default_factory=list)
    opt: list[tuple[float, float, float, float, bool, float, float, float]] = field(default_factory=list)
    lp_pos: list[int] = field(default_factory=list)
    lp: list[tuple[float, float, float, float, bool, float, float, float, float]] = field(default_factory=list)


_LIN_FIELDS = ("lin_base", "lin_slope", "lin_haircut")
_OPT_FIELDS = ("opt_quantity", "opt_forward", "opt_strike", "opt_years", "opt_sigma", "opt_call", "opt_discount",
               "opt_tenor_scale", "opt_log_moneyness")
_LP_FIELDS = ("lp_liquidity", "lp_lower", "lp_upper", "lp_price", "lp_on_token0", "lp_price0", "lp_price1",
              "lp_haircut0", "lp_haircut1")
ROW_FIELDS = (_LIN_FIELDS, _OPT_FIELDS, _LP_FIELDS)  # RowParams' fields by block


@dataclass(frozen=True)
class RowParams:
    """What revaluing rows takes, in three blocks: linear rows, options, LP ranges; sizes folded in."""

    lin_base: Array
    lin_slope: Array
    lin_haircut: Array
    opt_quantity: Array  # signed quantity x inverse factor (S / F for coin-settled)
    opt_forward: Array
    opt_strike: Array
    opt_years: Array
    opt_sigma: Array
    opt_call: NDArray[np.bool_]
    opt_discount: Array
    opt_tenor_scale: Array
    opt_log_moneyness: Array
    lp_liquidity: Array
    lp_lower: Array
    lp_upper: Array
    lp_price: Array  # token1 per token0
    lp_on_token0: NDArray[np.bool_]  # the underlying is token0 of the pair
    lp_price0: Array
    lp_price1: Array
    lp_haircut0: Array
    lp_haircut1: Array

    @classmethod
    def stack(cls, parts: Sequence[RowParams]) -> RowParams:
        """The rows of `parts` as one: every part's linear rows, then options, then LP ranges."""
        if not parts:
            return cls(**{name: np.zeros(0, dtype=bool if name in ("opt_call", "lp_on_token0") else np.float64)
                          for name in cls.__dataclass_fields__})
        return cls(**{name: np.concatenate([getattr(p, name) for p in parts]) for name in cls.__dataclass_fields__})

    def revalue_blocks(self, spot_shock: Array, vols: Array) -> tuple[Array, Array, Array, Array, Array]:
        """(linear values, linear haircuts, option values, LP values, LP haircuts) in USD, each block's rows x
        moves, at relative spot moves `spot_shock` (1 x moves, or rows x moves: each row its own moves) and
        options at `vols` (options x moves)."""
        growth = 1.0 + spot_shock
        moves = spot_shock.shape[1]
        n_lin, n_opt = self.lin_base.size, self.opt_quantity.size
        lin_shock, lin_growth, opt_growth, lp_growth = (
            (spot_shock, growth, growth, growth)
            if spot_shock.shape[0] == 1
            else (spot_shock[:n_lin], growth[:n_lin], growth[n_lin : n_lin + n_opt], growth[n_lin + n_opt :])
        )
        lin_value = self.lin_base[:, None] + self.lin_slope[:, None] * lin_shock
        lin_cut = self.lin_haircut[:, None] * lin_growth
        if n_opt:
            opt_value = self.opt_quantity[:, None] * black76_price(
                self.opt_forward[:, None] * opt_growth,
                self.opt_strike[:, None],
                self.opt_years[:, None],
                vols,
                self.opt_call[:, None],
                self.opt_discount[:, None],
            )
        else:
            opt_value = np.zeros((0, moves))
        if self.lp_liquidity.size:
            on0 = self.lp_on_token0[:, None]
            price = np.where(on0, self.lp_price[:, None] * lp_growth, self.lp_price[:, None] / lp_growth)
            price0 = self.lp_price0[:, None] * np.where(on0, lp_growth, 1.0)
            price1 = self.lp_price1[:, None] * np.where(on0, 1.0, lp_growth)
            amount0, amount1 = lp_amounts(
                self.lp_liquidity[:, None], price, self.lp_lower[:, None], self.lp_upper[:, None]
            )
            lp_value = amount0 * price0 + amount1 * price1
            lp_cut = (
                self.lp_haircut0[:, None] * np.maximum(amount0, 0.0) * price0
                + self.lp_haircut1[:, None] * np.maximum(amount1, 0.0) * price1
            )
        else:
            lp_value = lp_cut = np.zeros((0, moves))
        return lin_value, lin_cut, opt_value, lp_value, lp_cut


@dataclass(frozen=True)
class UnderlyingRows:
    """Every exposure to one risky asset: its rows, ordered linear, options, LP, and (through the book's
    valuation) their values, scenario P&L and greeks."""

    asset: str
    spot: float
    scenarios: ScenarioSet
    members: IntArray  # position index of each row
    blocks: tuple[int, int, int]  # rows of each block: linear, options, LP
    # the book's underlyings, valued together (shared by every UnderlyingRows of the book)
    book_valuation: BookValuation = field(compare=False, repr=False)

    @property
    def n_rows(self) -> int:
        return int(self.members.size)

    def scenario_pnl(self) -> Array:
        """Scenario values less base values, rows x scenarios (undampened). Do not modify."""
        return self.book_valuation.scenario_pnl(self.asset)

    def base(self) -> tuple[Array, Array]:
        """(values, haircuts) at the snapshot, rows x 1. Do not modify."""
        return self.book_valuation.base(self.asset)

    def greeks(self) -> tuple[Array, Array, Array, Array]:
        """Per row: delta (units of the asset), gamma (per unit of spot), vega (USD per vol point), theta (USD/day).
        Do not modify."""
        return self.book_valuation.greeks[self.asset]

    def deltas(self) -> Array:
        """Per row: delta, as in `greeks` (alone, when the other greeks are not needed). Do not modify."""
        return self.book_valuation.row_delta(self.asset)


class BookValuation(ABC):
    """The values, scenario P&L and greeks of a book's underlyings, and revaluation of all of them at once: the
    rows of every underlying stacked (`stacked`: linear rows of every underlying in the book's order, then
    options, then LP ranges), one revaluation and one Black-76 call instead of one per underlying (at ~20
    options x 55 columns per underlying the time is numpy call overhead, not arithmetic). Element by element the
    arithmetic is that of valuing each underlying alone."""

    def __init__(self, blocks: Sequence[tuple[int, int, int]]) -> None:
        self.blocks = list(blocks)  # per underlying, in the book's order: rows of each block

    @property
    @abstractmethod
    def stacked(self) -> RowParams:
        """What revaluing the book's rows takes, every underlying's rows stacked."""

    @abstractmethod
    def base(self, asset: str) -> tuple[Array, Array]:
        """(values, haircuts) of the underlying's rows at the snapshot, rows x 1."""

    @abstractmethod
    def scenario_pnl(self, asset: str) -> Array:
        """Scenario values less base values, rows x scenarios (undampened)."""

    @property
    @abstractmethod
    def greeks(self) -> dict[str, tuple[Array, Array, Array, Array]]:
        """Per underlying and row: delta, gamma, vega, theta (see UnderlyingRows.greeks)."""

    def row_delta(self, asset: str) -> Array:
        return self.greeks[asset][0]

    def coarse_change(self, max_rise: float) -> Array | None:
        """Change of each underlying's net value on the liquidation search's coarse grid (see
        liquidation.coarse_grid), underlyings x moves, when known without revaluing."""
        return None

    def block_bounds(self) -> list[tuple[slice, slice, slice]]:
        """Per underlying: its (linear, option, LP) rows within the stacked blocks."""
        bounds = []
        lin = opt = lp = 0
        for n_lin, n_opt, n_lp in self.blocks:
            bounds.append((slice(lin, lin + n_lin), slice(opt, opt + n_opt), slice(lp, lp + n_lp)))
            lin, opt, lp = lin + n_lin, opt + n_opt, lp + n_lp
        return bounds

    def _stacked_moves(self, moves: Array) -> Array:
        """Each stacked row's moves: its underlying's row of `moves` (underlyings x columns)."""
        rows_per_block = [counts[block] for block in range(3) for counts in self.blocks]
        return np.repeat(np.tile(moves, (3, 1)), rows_per_block, axis=0)

    def revalue(self, moves: Array, vols: Array) -> list[tuple[Array, Array]]:
        """Per underlying: (values, haircuts) in USD, its rows x columns, each underlying's rows moved by its row
        of `moves` (underlyings x columns, relative spot moves) and the options at `vols` (stacked options x
        columns)."""
        lin_value, lin_cut, opt_value, lp_value, lp_cut = self.stacked.revalue_blocks(self._stacked_moves(moves), vols)
        out = []
        for lin, opt, lp in self.block_bounds():
            values = np.concatenate([lin_value[lin], opt_value[opt], lp_value[lp]])
            haircuts = np.concatenate([lin_cut[lin], np.zeros_like(opt_value[opt]), lp_cut[lp]])
            out.append((values, haircuts))
        return out

    @property
    def option_sigma(self) -> Array:
        """The snapshot's vol of every option, stacked."""
        return self.stacked.opt_sigma


class RevaluedBook(BookValuation):
    """A resolved book's valuation: its rows revalued at the snapshot and under every scenario, and their greeks,
    computed on first use for all underlyings at once."""

    def __init__(self, frozen: Sequence[_Frozen]) -> None:
        super().__init__([f.blocks for f in frozen])
        self._frozen = list(frozen)

    @cached_property
    def stacked(self) -> RowParams:
        return RowParams.stack([f.params for f in self._frozen])

    def scenario_vols(self, asset: str) -> Array:
        """The vol of each of the underlying's options in each of its scenarios, options x scenarios."""
        return next(f.scenario_vols for f in self._frozen if f.asset == asset)

    def base(self, asset: str) -> tuple[Array, Array]:
        base_value, base_haircut, _ = self.valued[asset]
        return base_value, base_haircut

    def scenario_pnl(self, asset: str) -> Array:
        base_value, _, values = self.valued[asset]
        return values - base_value

    @cached_property
    def valued(self) -> dict[str, tuple[Array, Array, Array]]:
        """Per underlying: (base values, base haircuts, scenario values). Each row is revalued at a first column
        of zero spot shock and the snapshot's vols (the base), then its underlying's scenarios; underlyings with
        fewer scenarios than the widest are padded with unshocked columns, dropped afterwards."""
        frozen, bounds = self._frozen, self.block_bounds()
        width = 1 + max(f.scenarios.size for f in frozen)
        moves = np.zeros((len(frozen), width))
        sigma = self.stacked.opt_sigma
        vols = np.empty((sigma.size, width))
        for u, (f, (_, opt, _)) in enumerate(zip(frozen, bounds, strict=True)):
            n_scenarios = f.scenarios.size
            moves[u, 1 : 1 + n_scenarios] = f.scenarios.spot_shock
            vols[opt, 0] = sigma[opt]
            vols[opt, 1 : 1 + n_scenarios] = f.scenario_vols
            vols[opt, 1 + n_scenarios :] = sigma[opt, None]
        out = {}
        for f, (values, haircuts) in zip(frozen, self.revalue(moves, vols), strict=True):
            out[f.asset] = (values[:, :1], haircuts[:, :1], values[:, 1 : 1 + f.scenarios.size])
        return out

    @cached_property
    def greeks(self) -> dict[str, tuple[Array, Array, Array, Array]]:
        """Per underlying and row: delta, gamma, vega, theta (see UnderlyingRows.greeks)."""
        frozen, s, bounds = self._frozen, self.stacked, self.block_bounds()
        g = black76_greeks(s.opt_forward, s.opt_strike, s.opt_years, s.opt_sigma, s.opt_call, s.opt_discount)
        spot_per_option = np.repeat([f.spot for f in frozen], [n_opt for _, n_opt, _ in self.blocks])
        carry = s.opt_forward / spot_per_option  # dF/dS with the basis held
        q = s.opt_quantity
        opt_delta, opt_gamma = q * g.delta * carry, q * g.gamma * carry**2
        opt_vega, opt_theta = q * g.vega / 100.0, q * g.theta / 365.0
        amount0, amount1 = lp_amounts(s.lp_liquidity, s.lp_price, s.lp_lower, s.lp_upper)
        inside = (s.lp_price > s.lp_lower) & (s.lp_price < s.lp_upper)
        lp_gamma = np.where(
            inside,
            np.where(
                s.lp_on_token0,
                -s.lp_liquidity / (2.0 * s.lp_price**1.5 * s.lp_price1),
                -s.lp_liquidity * np.sqrt(s.lp_price) / (2.0 * s.lp_price1),
            ),
            0.0,
        )
        # at an interior price the range's delta to a token's price is its holding of that token (envelope)
        lp_delta = np.where(s.lp_on_token0, amount0, amount1)
        out = {}
        for f, (lin, opt, lp) in zip(frozen, bounds, strict=True):
            zeros_lin, zeros_lp = np.zeros(lin.stop - lin.start), np.zeros(lp.stop - lp.start)
            out[f.asset] = (
                np.concatenate([s.lin_slope[lin] / f.spot, opt_delta[opt], lp_delta[lp]]),
                np.concatenate([zeros_lin, opt_gamma[opt], lp_gamma[lp]]),
                np.concatenate([zeros_lin, opt_vega[opt], zeros_lp]),
                np.concatenate([zeros_lin, opt_theta[opt], zeros_lp]),
            )
        return out


@dataclass(frozen=True)
class ContingencyKeys:
    """Net quantities per (venue-account, instrument): contingencies apply to what is left after netting.

    Kept as entries (key, position, signed quantity), one per charged position, so that a large book (or the
    batch path's book of instruments) never holds a dense keys x positions matrix unless `quantity` is asked for.
    """

    key: IntArray  # per entry: the key it nets into
    position: IntArray  # per entry: the position
    entry_quantity: Array  # per entry: the position's signed quantity
    n_positions: int
    rate: Array  # per key: USD per unit of net quantity
    side: Array  # per key, what is charged: the net short (-1: options), the net long (+1: a tracked token), either (0)

    @cached_property
    def quantity(self) -> Array:
        """keys x positions: signed quantity of each position in each key."""
        quantity = np.zeros((self.rate.size, self.n_positions))
        quantity[self.key, self.position] = self.entry_quantity  # a position has one entry at most
        return quantity


@dataclass(frozen=True)
class Places:
    """Each position's venue-account (venue, chain, account), numbered in order of first appearance."""

    venue_accounts: list[tuple[str, str, str]]
    of_position: IntArray

    @classmethod
    def of(cls, positions: Sequence[Position]) -> Places:
        number: dict[tuple[str, str, str], int] = {}
        of_position = [number.setdefault(place, len(number)) for place in map(_PLACE, positions)]
        return cls(list(number), np.array(of_position, dtype=np.intp).reshape(len(of_position)))


_PLACE = attrgetter("venue", "chain", "account")


@dataclass(frozen=True)
class ResolvedBook:
    positions: Sequence[Position]
    underlyings: dict[str, UnderlyingRows]
    primary: list[str | None]  # the underlying whose greeks each position reports
    fixed_value: Array  # value of positions with no risky asset (stablecoins)
    fixed_haircut: Array
    priced: NDArray[np.bool_]
    contingency: ContingencyKeys
    notional: Array  # USD traded to close each position (liquidation cost base)
    issues: list[PricingIssue]  # in the order met; asset-level ones once
    raised_by: list[tuple[int, ...]]  # per issue: the positions it concerns
    valuation: BookValuation  # the underlyings' values and greeks, computed together on first use
    places: Places

    @cached_property
    def primary_rows(self) -> dict[str, NDArray[np.bool_]]:
        """Per underlying: which of its rows belong to a position it is the primary underlying of (whose value and
        greeks the position reports)."""
        primary = np.array(self.primary, dtype=object)
        return {asset: primary[rows.members] == asset for asset, rows in self.underlyings.items()}


class _Resolver:
    def __init__(self, market: MarketSnapshot, params: RiskParams) -> None:
        self.market = market
        self.params = params
        self.issues: list[PricingIssue] = []
        self.raised_by: list[list[int]] = []
        self._said: dict[tuple[str, str], int] = {}
        self.at = -1  # the position being resolved

    def note(self, issue: PricingIssue, positions: Sequence[int] | None = None) -> None:
        """An issue about an asset or the market: said once, remembered as raised by each position it concerns
        (the one being resolved, unless named)."""
        j = self._said.get(issue.subject)
        if j is None:
            j = self._said[issue.subject] = len(self.issues)
            self.issues.append(issue)
            self.raised_by.append([])
        self.raised_by[j].extend([self.at] if positions is None else positions)

    def refuse(self, index: int, field: str, code: str, severity: Severity = "error", **details: Any) -> None:
        """An issue about the position at `index`; an error leaves the position out."""
        self.issues.append(position_issue(index, field, code, severity, **details))
        self.raised_by.append([index])

    def is_stable(self, asset: str) -> bool:
        return self.params.asset_class(asset) == STABLE_CLASS

    def price(self, asset: str) -> float | None:
        if asset in self.market.spot:
            return self.market.spot[asset]
        cls = self.params.class_params(asset)
        if self.is_stable(asset) and cls.peg is not None:
            self.note(asset_issue(f"market.spot.{asset}", "valued_at_peg", asset=asset, peg=cls.peg))
            return cls.peg
        return None

    def required_price(self, asset: str, index: int, field: str) -> float | None:
        """The asset's price, or None with the position refused."""
        price = self.price(asset)
        if price is None:
            self.refuse(index, field, "no_price", asset=asset)
        return price

    def moves_with(self, asset: str) -> str:
        """The underlying whose scenarios a holding of `asset` moves under: the asset it tracks when that is priced
        (see RiskParams.tracking), else its own."""
        tracked = self.params.tracking.get(asset)
        if tracked is None:
            return asset
        if self.price(tracked.underlying) is None:
            self.note(asset_issue(f"params.tracking.{asset}", "tracked_asset_unpriced", asset=asset,
                                  tracked=tracked.underlying))
            return asset
        return tracked.underlying

    def haircut(self, asset: str) -> float:
        if not self.params.is_known(asset):
            self.note(asset_issue(f"params.assets.{asset}", "unknown_asset_class", asset=asset))
        return self.params.class_params(asset).haircut

    def forward(self, asset: str, expiry: datetime, spot: float) -> float:
        """The snapshot's forward for (asset, expiry); between quoted expiries ln(F/S) is linear in time."""
        curve = self.market.forwards.get(asset)
        if not curve:
            return spot
        if expiry in curve:
            return curve[expiry]
        quoted: list[tuple[float, float]] = sorted(
            (year_fraction(self.market.as_of, e), math.log(f / spot)) for e, f in curve.items()
        )
        times = [t for t, _ in quoted if t > 0]
        carries = [c for t, c in quoted if t > 0]
        if not times:
            return spot
        t = year_fraction(self.market.as_of, expiry)
        if t > times[-1]:
            return spot * math.exp(carries[-1] / times[-1] * t)
        return spot * math.exp(float(np.interp(t, [0.0, *times], [0.0, *carries])))



def tenor_scale(years: Any, vs: VolShockParams) -> Any:
    """How an option's vol shock scales with its tenor (years, a float or an array): (reference / DTE)^power,
    the DTE floored (Deribit's form, docs/margin-model.md)."""
    return (vs.reference_days / np.maximum(years * 365.0, vs.dte_floor_days)) ** vs.power


def resolve_book(
    positions: Sequence[Position], market: MarketSnapshot, params: RiskParams, sets: ScenarioSets | None = None
) -> ResolvedBook:
    """Resolve positions into revaluation rows, with `sets` the scenario sets of `params` when the caller keeps
    them. A position the market cannot price is left out (not priced) with an `error` issue naming its field."""
    r = _Resolver(market, params)
    n = len(positions)
    builders: dict[str, _RowsBuilder] = {}
    primary: list[str | None] = [None] * n
    fixed_value = np.zeros(n)
    fixed_haircut = np.zeros(n)
    priced = np.ones(n, dtype=bool)
    notional = [0.0] * n  # a list while positions are visited one by one (a numpy item write costs more)
    keys: dict[tuple[object, ...], int] = {}
    key_entries: list[tuple[int, int, float]] = []
    key_rate: list[float] = []
    key_side: list[float] = []
    vs = params.vol_shock

    spot_of = market.spot
    lp_marks: list[tuple[int, float, float, float, float, float, float, float, float, bool]] = []
    rate_perp, rate_option = params.contingencies.perp_future, params.contingencies.short_option_minimum
    # per (underlying, expiry): years, forward, discount, tenor scale of the vol shock; computed once
    dated: dict[tuple[str, datetime], tuple[float, float, float, float]] = {}

    def add_key(key: tuple[object, ...], index: int, quantity: float, rate: float, side: float) -> None:
        k = keys.get(key)
        if k is None:
            k = keys[key] = len(key_rate)
            key_rate.append(rate)
            key_side.append(side)
        key_entries.append((k, index, quantity))

    def builder(asset: str) -> _RowsBuilder:
        b = builders.get(asset)
        if b is None:
            b = builders[asset] = _RowsBuilder()
        return b

    def expiry_terms(
        i: int, underlying: str, expiry: datetime, spot: float
    ) -> tuple[float, float, float, float] | None:
        """The dated terms, or None with the position refused when the expiry has passed."""
        terms = dated.get((underlying, expiry))
        if terms is None:
            years = year_fraction(market.as_of, expiry)
            if years <= 0:
                r.refuse(i, "expiry", "expired", expiry=expiry.isoformat())
                return None
            fwd = r.forward(underlying, expiry, spot)
            discount = math.exp(-market.rates.get(underlying, 0.0) * years)
            tenor = tenor_scale(years, vs)
            terms = dated[(underlying, expiry)] = (years, fwd, discount, tenor)
        return terms

    for i, p in enumerate(positions):
        r.at = i
        if isinstance(p, OptionPosition):  # first: most positions of a book are options
            underlying, expiry, quantity = p.underlying, p.expiry, p.quantity
            spot = spot_of.get(underlying) or r.required_price(underlying, i, "underlying")
            if spot is None:
                priced[i] = False
                continue
            if underlying not in market.vol:
                r.refuse(i, "underlying", "no_vol_surface", asset=underlying)
                priced[i] = False
                continue
            terms = dated.get((underlying, expiry)) or expiry_terms(i, underlying, expiry, spot)
            if terms is None:
                priced[i] = False
                continue
            years, fwd, discount, tenor = terms
            b = builders.get(underlying) or builder(underlying)
            b.opt_pos.append(i)
            inverse = spot / fwd if p.settlement == "inverse" else 1.0
            b.opt.append((quantity * inverse, fwd, p.strike, years, p.option_type == "call", discount, tenor, 0.0))
            primary[i] = underlying
            notional[i] = abs(quantity) * spot
            add_key(
                (p.venue, p.chain, p.account, "option", underlying, p.option_type, p.strike, expiry, p.settlement),
                i, quantity, spot * rate_option, _NET_SHORT,
            )
        elif isinstance(p, (SpotPosition, LendPosition, BorrowPosition)):
            price = r.price(p.asset)
            if price is None:
                if isinstance(p, BorrowPosition):
                    r.refuse(i, "asset", "unpriced_debt", asset=p.asset)
                else:
                    r.refuse(i, "asset", "unpriced_token", severity="warning", asset=p.asset)
                priced[i] = False
                continue
            signed = -p.quantity if isinstance(p, BorrowPosition) else p.quantity
            value = signed * price
            cut = 0.0 if isinstance(p, BorrowPosition) else r.haircut(p.asset) * max(value, 0.0)
            notional[i] = abs(value)
            if r.is_stable(p.asset):
                fixed_value[i], fixed_haircut[i] = value, cut
                continue
            moves_with = r.moves_with(p.asset)
            b = builder(moves_with)
            b.lin_pos.append(i)
            b.lin_base.append(value)
            b.lin_slope.append(value)
            b.lin_haircut.append(cut)
            primary[i] = moves_with
            if moves_with != p.asset and not isinstance(p, BorrowPosition):  # a debt gains on a depeg
                depeg = params.tracking[p.asset].depeg
                add_key((p.venue, p.chain, p.account, p.kind, p.asset), i, p.quantity, price * depeg, _NET_LONG)
        elif isinstance(p, (PerpPosition, FuturePosition)):
            spot = spot_of.get(p.underlying) or r.required_price(p.underlying, i, "underlying")
            if spot is None:
                priced[i] = False
                continue
            if isinstance(p, FuturePosition):
                terms = expiry_terms(i, p.underlying, p.expiry, spot)
                if terms is None:
                    priced[i] = False
                    continue
                mark = terms[1]
                key: tuple[object, ...] = (p.venue, p.chain, p.account, "future", p.underlying, p.expiry)
            else:
                mark = spot
                key = (p.venue, p.chain, p.account, "perp", p.underlying)
            b = builder(p.underlying)
            b.lin_pos.append(i)
            b.lin_base.append(p.quantity * (mark - p.entry_price) if p.entry_price is not None else 0.0)
            b.lin_slope.append(p.quantity * mark)
            b.lin_haircut.append(0.0)
            primary[i] = p.underlying
            notional[i] = abs(p.quantity) * mark
            add_key(key, i, p.quantity, mark * rate_perp, _NET_EITHER)
        elif isinstance(p, LPPosition):
            price0 = r.required_price(p.token0, i, "token0")
            price1 = r.required_price(p.token1, i, "token1")
            if price0 is None or price1 is None:
                priced[i] = False
                continue
            h0, h1 = r.haircut(p.token0), r.haircut(p.token1)
            pool_price = price0 / price1
            risky = [t for t in (p.token0, p.token1) if not r.is_stable(t)]
            # valued after the loop, all ranges at once
            lp_marks.append(
                (i, p.liquidity, pool_price, p.price_lower, p.price_upper, price0, price1, h0, h1, not risky)
            )
            if not risky:
                continue
            if len(risky) == 2:
                r.refuse(i, "token1", "lp_two_risky_assets", severity="warning")
            for token in risky:
                b = builder(token)
                b.lp_pos.append(i)
                b.lp.append((p.liquidity, p.price_lower, p.price_upper, pool_price, token == p.token0,
                             price0, price1, h0, h1))
            primary[i] = risky[0]

    notional_usd = np.array(notional)
    if lp_marks:
        at, liquidity, pool, lower, upper, price0, price1, h0, h1, fixed = np.array(lp_marks, dtype=np.float64).T
        at, fixed = at.astype(np.intp), fixed.astype(bool)
        amount0, amount1 = lp_amounts(liquidity, pool, lower, upper)
        value = amount0 * price0 + amount1 * price1
        notional_usd[at] = np.abs(value)
        held0, held1 = np.maximum(amount0, 0.0) * price0, np.maximum(amount1, 0.0) * price1
        fixed_value[at[fixed]] = value[fixed]
        fixed_haircut[at[fixed]] = (h0 * held0 + h1 * held1)[fixed]
    sets = sets or ScenarioSets(params)
    historical = historical_scenario_sets(market, sorted(builders), params) if params.model == "fhs" else None
    frozen = [_freeze(asset, b, r, params, sets, historical) for asset, b in sorted(builders.items())]
    valuation = RevaluedBook(frozen)
    underlyings = {
        f.asset: UnderlyingRows(f.asset, f.spot, f.scenarios, f.members, f.blocks, valuation) for f in frozen
    }
    entries = np.array(key_entries, dtype=np.float64).reshape(-1, 3)
    return ResolvedBook(
        positions=positions,
        underlyings=underlyings,
        primary=primary,
        fixed_value=fixed_value,
        fixed_haircut=fixed_haircut,
        priced=priced,
        contingency=ContingencyKeys(
            key=entries[:, 0].astype(np.intp),
            position=entries[:, 1].astype(np.intp),
            entry_quantity=entries[:, 2],
            n_positions=n,
            rate=np.array(key_rate),
            side=np.array(key_side, dtype=np.float64),
        ),
        notional=notional_usd,
        issues=r.issues,
        raised_by=[tuple(at) for at in r.raised_by],
        valuation=valuation,
        places=Places.of(positions),
    )


class ScenarioSets:
    """The scenario sets of one parameters object, built on first use per (asset, price dispersion): they depend
    on nothing else, so a caller keeping them (a pricing context) shares them across books."""

    def __init__(self, params: RiskParams) -> None:
        self.params = params
        self._sets: dict[tuple[str, float], tuple[AssetScenarios, ScenarioSet, float, float | None]] = {}

    def get(self, asset: str, dispersion: float) -> tuple[AssetScenarios, ScenarioSet, float, float | None]:
        """(spec, scenario set, spot range before widening, widening factor or None when not widened)."""
        found = self._sets.get((asset, dispersion))
        if found is None:
            params = self.params
            spec = params.scenarios_for(asset)
            widen = None
            spot_range = max((abs(s) for s in spec.spot_shocks), default=0.0)
            if dispersion > params.contingencies.dispersion_threshold and spot_range > 0:
                widen = (spot_range + dispersion) / spot_range
            scenarios = build_scenarios(spec, tail_cover=params.tails.cover, widen=1.0 if widen is None else widen)
            found = self._sets[(asset, dispersion)] = (spec, scenarios, spot_range, widen)
        return found


@dataclass(frozen=True)
class _Frozen:
    """One underlying's rows as resolved: what its UnderlyingRows and the book's valuation are made of."""

    asset: str
    spot: float
    scenarios: ScenarioSet
    members: IntArray
    blocks: tuple[int, int, int]
    params: RowParams
    scenario_vols: Array  # options x scenarios


def _freeze(
    asset: str,
    b: _RowsBuilder,
    r: _Resolver,
    params: RiskParams,
    sets: ScenarioSets,
    historical: dict[str, ScenarioSet] | None,
) -> _Frozen:
    """`historical`: the fhs model's scenario sets, which replace the grid's (None under the grid)."""
    # every row's underlying is priced (quoted, or a stablecoin at its peg), or it would have no row
    spot = r.market.spot.get(asset) or r.params.class_params(asset).peg or 0.0
    if historical is not None:
        spec, scenarios = params.scenarios_for(asset), historical[asset]
    else:
        dispersion = r.market.dispersion.get(asset, 0.0)
        spec, scenarios, spot_range, widen = sets.get(asset, dispersion)
        if widen is not None:
            r.note(asset_issue(f"market.dispersion.{asset}", "scan_range_widened", asset=asset,
                               dispersion=dispersion, widened=spot_range * widen), b.lin_pos + b.opt_pos + b.lp_pos)
    opt = np.array(b.opt, dtype=np.float64).reshape(-1, 8)
    sigma = np.zeros(len(b.opt))
    if b.opt:
        # every option row asks the surface for its vol at its own (expiry, log-moneyness)
        surface = ResolvedSurface(r.market.vol[asset], r.market.as_of, lambda e: r.forward(asset, e, spot))
        log_moneyness = np.log(opt[:, 2] / opt[:, 1])
        sigma[:] = surface.implied_vol(opt[:, 3], log_moneyness)
        opt[:, 7] = log_moneyness
    lp = np.array(b.lp, dtype=np.float64).reshape(-1, 9)
    scenario_vols = shocked_vols(
        sigma, opt[:, 6], opt[:, 7], scenarios, min_vol_up=spec.min_vol_up, skew=params.skew
    )
    return _Frozen(
        asset=asset,
        spot=spot,
        scenarios=scenarios,
        members=np.array(b.lin_pos + b.opt_pos + b.lp_pos, dtype=np.intp),
        blocks=(len(b.lin_pos), len(b.opt_pos), len(b.lp_pos)),
        params=RowParams(
            lin_base=np.array(b.lin_base),
            lin_slope=np.array(b.lin_slope),
            lin_haircut=np.array(b.lin_haircut),
            opt_quantity=opt[:, 0],
            opt_forward=opt[:, 1],
            opt_strike=opt[:, 2],
            opt_years=opt[:, 3],
            opt_sigma=sigma,
            opt_call=opt[:, 4].astype(bool),
            opt_discount=opt[:, 5],
            opt_tenor_scale=opt[:, 6],
            opt_log_moneyness=opt[:, 7],
            lp_liquidity=lp[:, 0],
            lp_lower=lp[:, 1],
            lp_upper=lp[:, 2],
            lp_price=lp[:, 3],
            lp_on_token0=lp[:, 4].astype(bool),
            lp_price0=lp[:, 5],
            lp_price1=lp[:, 6],
            lp_haircut0=lp[:, 7],
            lp_haircut1=lp[:, 8],
        ),
        scenario_vols=scenario_vols,
    )
