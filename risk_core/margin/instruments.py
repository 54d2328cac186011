"""The instrument table: the distinct instruments of a pricing context, resolved and valued once at size 1.

Like Strata's resolved products: every lookup (price, forward, vol, haircut, tenor) happens once, when an
instrument first appears, and the instrument is revalued then under every scenario of its underlyings (P&L per
scenario and underlying), on the liquidation search's coarse grid, and for its greeks. An instrument exposed to
two risky assets (an LP range of two volatile tokens) has a row in each underlying's table, revalued there with
the other asset held. A book (or a million wallets' holdings) is then its instruments' rows gathered and scaled
by its sizes: value, scenario P&L and greeks are linear in size, only a long holding earns a haircut, and a perp's
or future's entry price shifts its value, never its P&L. The margin function (risk_core.margin.risk_arrays)
works on the table and holdings only.

An instrument the market cannot price (unpriced asset, expired option ...) is kept too, as unpriced, with its
issues: a book holding it leaves the position out and names it. Issues about an asset or the market (unknown
asset class, price sources in disagreement) are kept with each instrument that raised them and said once per
book. The table belongs to its caller's pricing context (risk_core.margin.context) and is bounded
(_MAX_INSTRUMENTS): past the bound a book's new instruments are valued in a table of the book's own, not kept.
A table grows on its caller's thread: a caller sharing a context between threads serializes its books.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from operator import attrgetter
from typing import Any

import numpy as np
from numpy.typing import NDArray

from risk_core.margin.fhs import historical_scenario_sets
from risk_core.margin.issues import PricingIssue, Severity, asset_issue, position_issue
from risk_core.margin.liquidity import Depth, asset_depth
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
# what a contingency charges (risk_core.margin.risk_arrays.contingency_charge)
_NET_SHORT, _NET_LONG, _NET_EITHER = -1.0, 1.0, 0.0

# Per position type: the fields that make the instrument, and the field holding the position's size.
INSTRUMENT_FIELDS: dict[type, tuple[tuple[str, ...], str]] = {
    SpotPosition: (("kind", "asset"), "quantity"),
    LendPosition: (("kind", "asset"), "quantity"),
    BorrowPosition: (("kind", "asset"), "quantity"),
    PerpPosition: (("kind", "underlying"), "quantity"),
    FuturePosition: (("kind", "underlying", "expiry"), "quantity"),
    OptionPosition: (("kind", "underlying", "option_type", "strike", "expiry", "settlement"), "quantity"),
    LPPosition: (("kind", "token0", "token1", "price_lower", "price_upper"), "liquidity"),
}
UNIT_PLACE = "unit"  # venue, chain and account of a unit instrument
# per snapshot: beyond it new instruments are resolved with their book, not kept. A row costs about 2 kB
# (scenario P&L, greeks, the liquidation grid): 20,000 instruments (every listed option of BTC, ETH and SOL is
# about 10,000) bound a snapshot's cache at about 40 MB, whatever clients send.
_MAX_INSTRUMENTS = 20_000
_LIN, _OPT, _LP = 0, 1, 2  # row blocks, in the order an underlying's rows are kept


@dataclass(frozen=True)
class _Spec:
    key: Callable[[Any], tuple[Any, ...]]
    size: Callable[[Any], float]
    size_field: str
    has_entry: bool


_SPECS = {
    cls: _Spec(attrgetter(*fields), attrgetter(size_field), size_field, cls in (PerpPosition, FuturePosition))
    for cls, (fields, size_field) in INSTRUMENT_FIELDS.items()
}
# Per position type, as plain tuples for per-position loops: (its instrument key, its size, has an entry price).
INSTRUMENT_READERS = {cls: (spec.key, spec.size, spec.has_entry) for cls, spec in _SPECS.items()}
_PLACE = attrgetter("venue", "chain", "account")
_ENTRY = attrgetter("entry_price")


def unit_instrument(p: Position) -> Position:
    """The instrument a position holds: size 1, no place, no entry price, no id or provenance."""
    if is_unit_instrument(p):
        return p
    spec = _SPECS[p.__class__]
    update: dict[str, Any] = {spec.size_field: 1.0, "venue": UNIT_PLACE, "chain": UNIT_PLACE,
                              "account": UNIT_PLACE, "id": None, "provenance": None}
    if spec.has_entry:
        update["entry_price"] = None
    return p.model_copy(update=update)


def is_unit_instrument(p: Position) -> bool:
    fields = p.__dict__  # not getattr: a missing attribute costs a pydantic __getattr__
    return (fields[_SPECS[p.__class__].size_field] == 1.0
            and fields["venue"] == fields["chain"] == fields["account"] == UNIT_PLACE
            and fields["id"] is None and fields["provenance"] is None and fields.get("entry_price") is None)


def instrument_key(p: Position) -> tuple[Any, ...]:
    """What makes the instrument a position holds (see INSTRUMENT_FIELDS). Raises KeyError for a non-position."""
    return _SPECS[p.__class__].key(p)


# ------------------------------------------------------------------------------------------------ revaluation

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

    def option_greeks(self, spot: Array) -> tuple[Array, Array, Array, Array]:
        """Per option row, `spot` its underlying's price: (delta in units of the asset, gamma per unit of spot,
        vega in USD per vol point, theta in USD per day), the basis to the forward held (dF/dS = F / S)."""
        g = black76_greeks(self.opt_forward, self.opt_strike, self.opt_years, self.opt_sigma, self.opt_call,
                           self.opt_discount)
        carry = self.opt_forward / spot
        q = self.opt_quantity
        return q * g.delta * carry, q * g.gamma * carry**2, q * g.vega / 100.0, q * g.theta / 365.0

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


def tenor_scale(years: Any, vs: VolShockParams) -> Any:
    """How an option's vol shock scales with its tenor (years, a float or an array): (reference / DTE)^power,
    the DTE floored (Deribit's form, docs/margin-model.md)."""
    return (vs.reference_days / np.maximum(years * 365.0, vs.dte_floor_days)) ** vs.power


def block_bounds(blocks: Sequence[tuple[int, int, int]]) -> list[tuple[slice, slice, slice]]:
    """Per underlying (rows of each block, in order): its (linear, option, LP) rows within the stacked blocks."""
    bounds = []
    lin = opt = lp = 0
    for n_lin, n_opt, n_lp in blocks:
        bounds.append((slice(lin, lin + n_lin), slice(opt, opt + n_opt), slice(lp, lp + n_lp)))
        lin, opt, lp = lin + n_lin, opt + n_opt, lp + n_lp
    return bounds


def revalue(
    stacked: RowParams, blocks: Sequence[tuple[int, int, int]], moves: Array, vols: Array
) -> list[tuple[Array, Array]]:
    """Per underlying: (values, haircuts) in USD, its rows x columns, the rows of every underlying stacked
    (linear rows of each underlying in order, then options, then LP ranges) and revalued in one call: each
    underlying's rows moved by its row of `moves` (underlyings x columns, relative spot moves) and the options at
    `vols` (stacked options x columns). At ~20 options x 55 columns per underlying the time is numpy call
    overhead, not arithmetic; element by element the arithmetic is that of valuing each underlying alone."""
    rows_per_block = [counts[block] for block in range(3) for counts in blocks]
    stacked_moves = np.repeat(np.tile(moves, (3, 1)), rows_per_block, axis=0)
    lin_value, lin_cut, opt_value, lp_value, lp_cut = stacked.revalue_blocks(stacked_moves, vols)
    out = []
    for lin, opt, lp in block_bounds(blocks):
        values = np.concatenate([lin_value[lin], opt_value[opt], lp_value[lp]])
        haircuts = np.concatenate([lin_cut[lin], np.zeros_like(opt_value[opt]), lp_cut[lp]])
        out.append((values, haircuts))
    return out


# ------------------------------------------------------------------------------------------------- resolution


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


@dataclass(frozen=True)
class _Frozen:
    """One underlying's rows of unit instruments as resolved."""

    asset: str
    spot: float
    scenarios: ScenarioSet
    members: IntArray  # the unit of each row
    blocks: tuple[int, int, int]
    params: RowParams
    scenario_vols: Array  # options x scenarios


@dataclass(frozen=True)
class _Units:
    """Unit instruments as resolved: per underlying its rows, and per unit what needs no revaluation."""

    frozen: list[_Frozen]
    primary: list[str | None]  # the underlying whose greeks and value a unit reports
    fixed_value: Array  # value of units with no risky asset (stablecoins)
    fixed_haircut: Array
    priced: NDArray[np.bool_]
    notional: Array  # USD traded to close a unit (liquidation cost base)
    rate: Array  # contingency USD per unit held, NaN where none
    side: Array  # what a contingency charges: the net short (-1), the net long (+1), either (0)
    issues: list[PricingIssue]
    raised_by: list[list[int]]  # per issue: the units it concerns


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


def _resolve_units(
    units: Sequence[Position], market: MarketSnapshot, params: RiskParams, sets: ScenarioSets
) -> _Units:
    """Resolve distinct unit instruments into revaluation rows. One the market cannot price is left out (not
    priced) with an `error` issue naming its field."""
    r = _Resolver(market, params)
    n = len(units)
    builders: dict[str, _RowsBuilder] = {}
    primary: list[str | None] = [None] * n
    fixed_value = np.zeros(n)
    fixed_haircut = np.zeros(n)
    priced = np.ones(n, dtype=bool)
    notional = [0.0] * n  # a list while units are visited one by one (a numpy item write costs more)
    rate = np.full(n, np.nan)
    side = np.zeros(n)
    vs = params.vol_shock
    spot_of = market.spot
    lp_marks: list[tuple[int, float, float, float, float, float, float, float, float, bool]] = []
    rate_perp, rate_option = params.contingencies.perp_future, params.contingencies.short_option_minimum
    # per (underlying, expiry): years, forward, discount, tenor scale of the vol shock; computed once
    dated: dict[tuple[str, datetime], tuple[float, float, float, float]] = {}

    def builder(asset: str) -> _RowsBuilder:
        b = builders.get(asset)
        if b is None:
            b = builders[asset] = _RowsBuilder()
        return b

    def expiry_terms(
        i: int, underlying: str, expiry: datetime, spot: float
    ) -> tuple[float, float, float, float] | None:
        """The dated terms, or None with the unit refused when the expiry has passed."""
        terms = dated.get((underlying, expiry))
        if terms is None:
            years = year_fraction(market.as_of, expiry)
            if years <= 0:
                r.refuse(i, "expiry", "expired", expiry=expiry.isoformat())
                return None
            fwd = r.forward(underlying, expiry, spot)
            discount = math.exp(-market.rates.get(underlying, 0.0) * years)
            tenor = float(tenor_scale(years, vs))
            terms = dated[(underlying, expiry)] = (years, fwd, discount, tenor)
        return terms

    for i, p in enumerate(units):
        r.at = i
        if isinstance(p, OptionPosition):  # first: most instruments are options
            underlying, expiry, quantity = p.underlying, p.expiry, p.quantity
            spot = spot_of.get(underlying) or r.required_price(underlying, i, "underlying")
            if spot is None:
                priced[i] = False
                continue
            if underlying not in market.vol:
                r.refuse(i, "underlying", "no_vol_surface", asset=underlying)
                priced[i] = False
                continue
            terms = expiry_terms(i, underlying, expiry, spot)
            if terms is None:
                priced[i] = False
                continue
            years, fwd, discount, tenor = terms
            b = builder(underlying)
            b.opt_pos.append(i)
            inverse = spot / fwd if p.settlement == "inverse" else 1.0
            b.opt.append((quantity * inverse, fwd, p.strike, years, p.option_type == "call", discount, tenor, 0.0))
            primary[i] = underlying
            notional[i] = abs(quantity) * spot
            rate[i], side[i] = spot * rate_option, _NET_SHORT
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
                rate[i], side[i] = price * params.tracking[p.asset].depeg, _NET_LONG
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
            else:
                mark = spot
            b = builder(p.underlying)
            b.lin_pos.append(i)
            b.lin_base.append(p.quantity * (mark - p.entry_price) if p.entry_price is not None else 0.0)
            b.lin_slope.append(p.quantity * mark)
            b.lin_haircut.append(0.0)
            primary[i] = p.underlying
            notional[i] = abs(p.quantity) * mark
            rate[i], side[i] = mark * rate_perp, _NET_EITHER
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
    historical = historical_scenario_sets(market, sorted(builders), params) if params.model == "fhs" else None
    frozen = [_freeze(asset, b, r, params, sets, historical) for asset, b in sorted(builders.items())]
    return _Units(frozen, primary, fixed_value, fixed_haircut, priced, notional_usd, rate, side, r.issues,
                  r.raised_by)


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


def _valued(frozen: Sequence[_Frozen], stacked: RowParams) -> list[tuple[Array, Array, Array]]:
    """Per underlying: (base values, base haircuts, scenario values) of its rows. Each row is revalued at a first
    column of zero spot shock and the snapshot's vols (the base), then its underlying's scenarios; underlyings
    with fewer scenarios than the widest are padded with unshocked columns, dropped afterwards."""
    blocks = [f.blocks for f in frozen]
    width = 1 + max(f.scenarios.size for f in frozen)
    moves = np.zeros((len(frozen), width))
    sigma = stacked.opt_sigma
    vols = np.empty((sigma.size, width))
    for u, (f, (_, opt, _)) in enumerate(zip(frozen, block_bounds(blocks), strict=True)):
        n_scenarios = f.scenarios.size
        moves[u, 1 : 1 + n_scenarios] = f.scenarios.spot_shock
        vols[opt, 0] = sigma[opt]
        vols[opt, 1 : 1 + n_scenarios] = f.scenario_vols
        vols[opt, 1 + n_scenarios :] = sigma[opt, None]
    return [
        (values[:, 0], haircuts[:, 0], values[:, 1 : 1 + f.scenarios.size])
        for f, (values, haircuts) in zip(frozen, revalue(stacked, blocks, moves, vols), strict=True)
    ]


def _greeks(frozen: Sequence[_Frozen], stacked: RowParams) -> list[Array]:
    """Per underlying: its rows x (delta in units of the asset, gamma per unit of spot, vega in USD per vol
    point, theta in USD per day)."""
    s, blocks = stacked, [f.blocks for f in frozen]
    spot_per_option = np.repeat([f.spot for f in frozen], [n_opt for _, n_opt, _ in blocks])
    opt_delta, opt_gamma, opt_vega, opt_theta = s.option_greeks(spot_per_option)
    amount0, _amount1 = lp_amounts(s.lp_liquidity, s.lp_price, s.lp_lower, s.lp_upper)
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
    lp_delta = np.where(s.lp_on_token0, amount0, _amount1)
    out = []
    for f, (lin, opt, lp) in zip(frozen, block_bounds(blocks), strict=True):
        zeros_lin, zeros_lp = np.zeros(lin.stop - lin.start), np.zeros(lp.stop - lp.start)
        out.append(np.column_stack([
            np.concatenate([s.lin_slope[lin] / f.spot, opt_delta[opt], lp_delta[lp]]),
            np.concatenate([zeros_lin, opt_gamma[opt], lp_gamma[lp]]),
            np.concatenate([zeros_lin, opt_vega[opt], zeros_lp]),
            np.concatenate([zeros_lin, opt_theta[opt], zeros_lp]),
        ]).reshape(-1, 4))
    return out


# ---------------------------------------------------------------------------------------------------- the table


@dataclass
class AssetTable:
    """One underlying's rows of unit instruments, in the order they were added. Per row: its block and its row in
    that block's parameter table (shared by all underlyings), base value and haircut, scenario P&L (raw, and with
    the tail cover applied: what margin counts), greeks, and the change of value and haircut on the liquidation
    search's coarse grid."""

    spot: float
    scenarios: ScenarioSet
    row_of: IntArray  # per instrument: its row here, -1 where it has none
    block: NDArray[np.int8]
    block_row: IntArray
    base_value: Array
    base_haircut: Array
    raw: Array  # rows x scenarios
    pnl: Array  # rows x scenarios, tail cover applied
    greeks: Array  # rows x (delta, gamma, vega, theta)
    grid_value: Array  # rows x coarse moves: value less base value
    grid_haircut: Array  # rows x coarse moves: haircut less base haircut


class InstrumentTable:
    """The instruments met so far on one (market snapshot, parameters), resolved and valued at size 1."""

    def __init__(
        self, market: MarketSnapshot, params: RiskParams, grid: Array, sets: ScenarioSets, *, bounded: bool = True
    ) -> None:
        self.market, self.params, self.grid, self._sets, self._bounded = market, params, grid, sets, bounded
        self._index: dict[tuple[Any, ...], int] = {}  # instrument key -> id
        self._depths: dict[str, Depth | None] = {}  # asset -> its depth for the liquidity add-on
        self.size = 0
        # per instrument
        self.primary = np.zeros(0, dtype=np.intp)  # index into `assets`, -1 for none
        self.unit_value = np.zeros(0)  # at the snapshot
        self.unit_haircut = np.zeros(0)
        self.notional = np.zeros(0)
        self.mark = np.zeros(0)  # a perp's or future's mark: what its entry price is measured against; NaN else
        self.rate = np.zeros(0)  # contingency USD per unit, NaN where none
        self.side = np.zeros(0)
        self.priced = np.zeros(0, dtype=bool)
        self.has_issues = np.zeros(0, dtype=bool)
        self._issues: dict[int, list[PricingIssue]] = {}  # per instrument with any: its issues, as of a book of it
        self.assets: list[str] = []  # in order of first appearance
        self.tables: dict[str, AssetTable] = {}
        # unit rows' revaluation inputs by block, every underlying's rows together (RowParams' fields as columns)
        lin, opt, lp = (np.zeros((0, len(fields))) for fields in ROW_FIELDS)
        self.block_tables: tuple[Array, Array, Array] = (lin, opt, lp)

    def depth(self, asset: str) -> Depth | None:
        """The asset's depth for the liquidity add-on: the market's read pools of it, else its depth curve; None
        when the add-on is off or neither is known. Built once per asset."""
        if asset not in self._depths:
            liquidity = self.params.liquidity
            self._depths[asset] = (asset_depth(asset, self.tables[asset].spot, liquidity, self.market.pools)
                                   if liquidity.enabled else None)
        return self._depths[asset]

    def ids(self, instruments: Sequence[Position]) -> IntArray:
        """The table's id of each instrument (any position holding it), resolving and valuing new ones whatever
        the bound: a batch's table holds its input's instruments."""
        keys = [instrument_key(p) for p in instruments]
        new = {key: p for key, p in zip(keys, instruments, strict=True) if key not in self._index}
        if new:
            self._add(new)
        return np.array([self._index[key] for key in keys], dtype=np.intp).reshape(len(keys))

    def book(self, positions: Sequence[Position]) -> Book:
        """The book of `positions` on its instruments, resolving and valuing new ones."""
        index_of = self._index.get
        readers = [INSTRUMENT_READERS[p.__class__] for p in positions]
        keys = [key_of(p) for (key_of, _, _), p in zip(readers, positions, strict=True)]
        ids = [index_of(key, -1) for key in keys]
        sizes = [size_of(p) for (_, size_of, _), p in zip(readers, positions, strict=True)]
        places: dict[tuple[str, str, str], int] = {}
        place_of = [places.setdefault(place, len(places)) for place in map(_PLACE, positions)]
        entry = np.full(len(positions), np.nan)
        entered = [(i, price) for i, ((_, _, has_entry), p) in enumerate(zip(readers, positions, strict=True))
                   if has_entry and (price := _ENTRY(p)) is not None]
        if entered:
            at, price = zip(*entered, strict=True)
            entry[list(at)] = price
        if -1 in ids:
            missing: dict[tuple[Any, ...], list[int]] = {}  # new instruments: the positions holding them
            for i, (key, k) in enumerate(zip(keys, ids, strict=True)):
                if k < 0:
                    missing.setdefault(key, []).append(i)
            if self._bounded and self.size + len(missing) > _MAX_INSTRUMENTS:
                unkept = InstrumentTable(self.market, self.params, self.grid, self._sets, bounded=False)
                return unkept.book(positions)
            self._add({key: positions[at[0]] for key, at in missing.items()})
            ids = [self._index[key] for key in keys]
        n = len(positions)
        return Book(self, positions, np.array(ids, dtype=np.intp).reshape(n),
                    np.array(sizes, dtype=np.float64).reshape(n), entry,
                    Places(list(places), np.array(place_of, dtype=np.intp).reshape(n)))

    def issues_of(
        self, instrument: IntArray, wallet: IntArray, origin: IntArray
    ) -> list[tuple[int, PricingIssue]]:
        """Each wallet's issues as its own report says them, wallet by wallet: a position's own naming its index
        `origin` in the wallet, each about an asset or the market once per wallet, in the order its positions
        raise them."""
        out: list[tuple[int, PricingIssue]] = []
        at = np.flatnonzero(self.has_issues[instrument])
        at = at[np.lexsort((origin[at], wallet[at]))]  # in wallet order, positions in their given order
        said: set[tuple[int, str, str]] = set()
        for i, w, index in zip(at.tolist(), wallet[at].tolist(), origin[at].tolist(), strict=True):
            for issue in self._issues[int(instrument[i])]:
                if issue.index is not None:
                    out.append((w, issue.at(index)))
                elif (w, *issue.subject) not in said:
                    said.add((w, *issue.subject))
                    out.append((w, issue))
        return out

    def _add(self, new: dict[tuple[Any, ...], Position]) -> None:
        keys = list(new)
        units = _resolve_units([unit_instrument(p) for p in new.values()], self.market, self.params, self._sets)
        first, n_new = self.size, len(keys)
        total = first + n_new
        has_issues = np.zeros(n_new, dtype=bool)
        for issue, raised in zip(units.issues, units.raised_by, strict=True):
            for unit in raised:
                self._issues.setdefault(first + unit, []).append(issue)
                has_issues[unit] = True
        for asset in (f.asset for f in units.frozen):
            if asset not in self.assets:
                self.assets.append(asset)
        code = {asset: j for j, asset in enumerate(self.assets)}
        primary = [code[a] if a is not None else -1 for a in units.primary]
        frozen = units.frozen
        stacked = RowParams.stack([f.params for f in frozen])
        blocks = [f.blocks for f in frozen]
        value, haircut = units.fixed_value.copy(), units.fixed_haircut.copy()
        mark = np.full(n_new, np.nan)
        grid = self.grid
        first_block_row = [table.shape[0] for table in self.block_tables]
        lin_table, opt_table, lp_table = (
            np.concatenate([table, np.column_stack([getattr(stacked, name) for name in fields])
                            .reshape(-1, len(fields)).astype(np.float64)])
            for table, fields in zip(self.block_tables, ROW_FIELDS, strict=True)
        )
        self.block_tables = (lin_table, opt_table, lp_table)
        sigma = stacked.opt_sigma[:, None]
        on_grid = revalue(stacked, blocks, np.tile(grid, (len(frozen), 1)),
                          np.broadcast_to(sigma, (sigma.size, grid.size))) if frozen else []
        parts = zip(frozen, block_bounds(blocks), _valued(frozen, stacked) if frozen else [],
                    _greeks(frozen, stacked) if frozen else [], on_grid, strict=True)
        for f, spans, (base_value, base_cut, values), greeks, (grid_value, grid_cut) in parts:
            members = f.members
            mark[members[: f.blocks[0]]] = stacked.lin_slope[spans[0]]  # a unit perp's or future's slope: its mark
            own = np.array([primary[m] == code[f.asset] for m in members.tolist()], dtype=bool).reshape(-1)
            value[members[own]], haircut[members[own]] = base_value[own], base_cut[own]
            block_row = np.concatenate(
                [np.arange(span.start, span.stop) + start for span, start in zip(spans, first_block_row, strict=True)]
            )
            raw = values - base_value[:, None]
            added = AssetTable(
                spot=f.spot,
                scenarios=f.scenarios,
                row_of=np.zeros(0, dtype=np.intp),
                block=np.repeat(np.array([_LIN, _OPT, _LP], dtype=np.int8), f.blocks),
                block_row=block_row.astype(np.intp),
                base_value=base_value,
                base_haircut=base_cut,
                raw=raw,
                pnl=raw * f.scenarios.damp[None, :],
                greeks=greeks,
                grid_value=grid_value - grid_value[:, :1],
                grid_haircut=grid_cut - grid_cut[:, :1],
            )
            self.tables[f.asset] = _merged(self.tables.get(f.asset), added, members + first, total)
        for table in self.tables.values():  # every table indexes every instrument
            if table.row_of.size < total:
                table.row_of = np.concatenate([table.row_of, np.full(total - table.row_of.size, -1, np.intp)])
        self.primary = np.concatenate([self.primary, np.array(primary, dtype=np.intp).reshape(n_new)])
        self.unit_value = np.concatenate([self.unit_value, value])
        self.unit_haircut = np.concatenate([self.unit_haircut, haircut])
        self.notional = np.concatenate([self.notional, units.notional])
        self.mark = np.concatenate([self.mark, mark])
        self.rate = np.concatenate([self.rate, units.rate])
        self.side = np.concatenate([self.side, units.side])
        self.priced = np.concatenate([self.priced, units.priced])
        self.has_issues = np.concatenate([self.has_issues, has_issues])
        for j, key in enumerate(keys):
            self._index[key] = first + j
        self.size = total


def _merged(old: AssetTable | None, added: AssetTable, instrument: IntArray, total: int) -> AssetTable:
    """`old` with the rows of `added` appended; `instrument` gives the instrument id of each added row."""
    n_old = 0 if old is None else old.block.size
    row_of = np.full(total, -1, dtype=np.intp)
    if old is not None:
        row_of[: old.row_of.size] = old.row_of
    row_of[instrument] = n_old + np.arange(added.block.size)
    if old is None:
        return AssetTable(**{**added.__dict__, "row_of": row_of})
    return AssetTable(
        spot=old.spot,
        scenarios=old.scenarios,
        row_of=row_of,
        **{
            name: np.concatenate([getattr(old, name), value])
            for name, value in added.__dict__.items()
            if name not in ("spot", "scenarios", "row_of")
        },
    )


# ---------------------------------------------------------------------------------------------------- a book


@dataclass(frozen=True)
class Places:
    """Each position's venue-account (venue, chain, account), numbered in order of first appearance."""

    venue_accounts: list[tuple[str, str, str]]
    of_position: IntArray


@dataclass(frozen=True)
class Held:
    """A book's rows in one underlying, ordered linear, options, LP: its positions, their rows in the
    underlying's table, and the rows of each block."""

    asset: str
    table: AssetTable
    members: IntArray
    rows: IntArray
    blocks: tuple[int, int, int]


class Book:
    """One wallet's positions on the instrument table: which instrument each holds, in what size, at which
    entry price and place. Its figures are the table's rows gathered and scaled (risk_core.margin.risk_arrays);
    what only a report needs (greeks, the liquidation search's revaluation) is gathered here on first use."""

    def __init__(
        self, table: InstrumentTable, positions: Sequence[Position], ids: IntArray, size: Array, entry: Array,
        places: Places,
    ) -> None:
        self.table, self.positions, self.ids, self.size, self.entry, self.places = (
            table, positions, ids, size, entry, places
        )
        self.priced = table.priced[ids]

    @cached_property
    def issues(self) -> list[PricingIssue]:
        """In the order the positions raise them; each about an asset or the market once."""
        n = self.ids.size
        if not self.table.has_issues[self.ids].any():
            return []
        return [issue for _, issue in self.table.issues_of(self.ids, np.zeros(n, dtype=np.intp), np.arange(n))]

    @cached_property
    def long(self) -> Array:
        return np.maximum(self.size, 0.0)

    @cached_property
    def primary(self) -> list[str | None]:
        """The underlying whose value and greeks each position reports."""
        assets = self.table.assets
        return [assets[c] if c >= 0 else None for c in self.table.primary[self.ids].tolist()]

    @cached_property
    def notional(self) -> Array:
        """USD traded to close each position (liquidation cost base)."""
        return np.abs(self.size) * self.table.notional[self.ids]

    def values(self) -> tuple[Array, Array]:
        """Mark value and collateral haircut per position."""
        return holding_values(self.table, self.ids, self.size, self.entry)

    @cached_property
    def held(self) -> dict[str, Held]:
        """Per underlying the book holds, in name order: its rows."""
        out = {}
        for asset in sorted(self.table.tables):
            table = self.table.tables[asset]
            rows = table.row_of[self.ids]
            mine = np.flatnonzero(rows >= 0)
            if not mine.size:
                continue
            block = table.block[rows[mine]]
            order = np.argsort(block, kind="stable")
            n_lin, n_opt, n_lp = np.bincount(block, minlength=3).tolist()
            out[asset] = Held(asset, table, mine[order], rows[mine[order]], (n_lin, n_opt, n_lp))
        return out

    @property
    def assets(self) -> list[str]:
        return list(self.held)

    def scaled(self, asset: str, name: str) -> Array:
        """An underlying's rows of the table's array `name` (raw, pnl, greeks ...), each scaled by its size."""
        h = self.held[asset]
        return self.size[h.members][:, None] * getattr(h.table, name)[h.rows]

    def greeks(self) -> tuple[Array, Array, Array, Array]:
        """Per position: delta, gamma, vega, theta in its primary underlying (see _greeks)."""
        out = np.zeros((self.ids.size, 4))
        primary = self.table.primary[self.ids]
        for asset, h in self.held.items():
            own = primary[h.members] == self.table.assets.index(asset)
            out[h.members[own]] = self.size[h.members[own], None] * h.table.greeks[h.rows[own]]
        return out[:, 0], out[:, 1], out[:, 2], out[:, 3]

    # the liquidation search (risk_core.margin.liquidation): revaluation of the book's rows at other moves

    def coarse_change(self, max_rise: float) -> Array | None:
        """Change of each underlying's net value on the liquidation search's coarse grid, underlyings x (falls,
        rises), when the table's grid is that of `max_rise`."""
        if max_rise != self.table.grid[-1]:
            return None
        size, long = self.size, self.long
        change = [size[h.members] @ h.table.grid_value[h.rows] - long[h.members] @ h.table.grid_haircut[h.rows]
                  for h in self.held.values()]
        return np.array(change).reshape(2 * len(change), -1)

    @cached_property
    def stacked(self) -> RowParams:
        """Unit rows scaled by size: quantity, liquidity and the linear rows' value, slope and haircut (with the
        entry price's shift of a perp's or future's value, and haircuts on long holdings only)."""
        shift = entry_shift(self.table, self.ids, self.size, self.entry)
        columns: dict[str, Any] = {}
        for block, (fields, table) in enumerate(zip(ROW_FIELDS, self.table.block_tables, strict=True)):
            pieces, positions = [], []
            for h in self.held.values():
                start = sum(h.blocks[:block])
                span = slice(start, start + h.blocks[block])
                pieces.append(h.table.block_row[h.rows[span]])
                positions.append(h.members[span])
            unit = table[np.concatenate([np.zeros(0, dtype=np.intp), *pieces])]
            at = np.concatenate([np.zeros(0, dtype=np.intp), *positions])
            size = self.size[at]
            for j, name in enumerate(fields):
                columns[name] = unit[:, j]
            if block == _LIN:
                columns["lin_base"] = size * unit[:, 0] + shift[at]
                columns["lin_slope"] = size * unit[:, 1]
                columns["lin_haircut"] = self.long[at] * unit[:, 2]
            elif block == _OPT:
                columns["opt_quantity"] = size * unit[:, 0]
                columns["opt_call"] = unit[:, 5] > 0
            else:
                columns["lp_liquidity"] = size * unit[:, 0]
                columns["lp_on_token0"] = unit[:, 4] > 0
        return RowParams(**columns)

    @property
    def option_sigma(self) -> Array:
        """The snapshot's vol of every option held, stacked."""
        return self.stacked.opt_sigma

    def revalue(self, moves: Array, vols: Array) -> list[tuple[Array, Array]]:
        """Per underlying held: (values, haircuts) of its rows at `moves` (see `revalue`)."""
        return revalue(self.stacked, [h.blocks for h in self.held.values()], moves, vols)


def holding_values(table: InstrumentTable, ids: IntArray, size: Array, entry: Array) -> tuple[Array, Array]:
    """Mark value and collateral haircut of holdings of instruments `ids` in `size` at `entry` prices (NaN for
    none): the unit's value scaled, a perp's or future's shifted by its entry price; a haircut on long holdings."""
    return (size * table.unit_value[ids] + entry_shift(table, ids, size, entry),
            np.maximum(size, 0.0) * table.unit_haircut[ids])


def entry_shift(table: InstrumentTable, ids: IntArray, size: Array, entry: Array) -> Array:
    """A perp's or future's value moves from size x (mark - 0) to size x (mark - entry): a constant shift, 0
    where there is no entry price (NaN) or no mark (an instrument not priced)."""
    shift = np.zeros(size.size)
    entered = np.flatnonzero(~np.isnan(entry))
    if entered.size:
        mark = table.mark[ids[entered]]
        shift[entered] = np.where(np.isnan(mark), 0.0, size[entered] * (mark - entry[entered]))
    return shift


def resolve_book(positions: Sequence[Position], market: MarketSnapshot, params: RiskParams) -> Book:
    """The book of `positions` on a table of its own (no pricing context kept)."""
    from risk_core.margin.context import pricing_context  # noqa: PLC0415 - the context holds a table

    return pricing_context(market, params).instruments.book(positions)
