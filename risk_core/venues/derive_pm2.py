"""Derive PM2 portfolio margin, reproduced from the venue's own test-case layout (docs/venue-parity.md).

Implemented from the method's published description, never from Derive's (BUSL) source. Where the description
leaves a choice open, Derive's published portfolio cases settle it:
- option values use each option's `MarkVol`; the feed's SVI parameters are read but unused (the long 4200 call of
  the OTM call-spread case has an SVI vol of 0.907 against a mark of 0.883, and only the mark reproduces it);
- the static discount multiplies the expiry value already discounted by disc = exp(-max(rate, 0) tau);
- a negative rate counts as 0 everywhere, in disc and in the static discount's rate shocks (the negative-rate
  case; Derive's contract floors the feed's rate at 0 before both);
- every parameter takes the range Derive's contract setters accept (PMRMLib_2's `set...Params`, derivexyz/v2-core
  @ 7736900), bottoms of 0 included; the two zeros the contract then divides by (DTE_FLOOR with an option at
  expiry, a k* of 0) are refused, naming the parameter, where the contract reverts;
- the last-30-minutes forward rule also moves the basis-contingency forwards (settlement case);
- a skew scenario's dampening factor multiplies its loss (linear-skew case, dampening 2);
- the collateral oracle contingency ignores `StableConfidence` (multi-collateral risk-cancelling case).
The published cases cannot tell apart the two readings of MIN_VOL_EVAL_SHOCKED (floor or cap), whether the basis
values carry disc, or whether a long at another expiry covers a short's strike, and none has an option feed below
the confidence threshold; for these the description's own wording is followed (a floor; carrying disc, like MTM;
shorts net per expiry and strike).

Margins are the venue's *balances*: negative means short of margin.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Annotated, Literal

import numpy as np
from numpy.typing import NDArray
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator
from pydantic.alias_generators import to_pascal
from pydantic_core import PydanticCustomError

from risk_core.pricing.black76 import black76_price

FloatArray = NDArray[np.float64]

SECONDS_PER_DAY = 86_400.0
SECONDS_PER_YEAR = 365.0 * SECONDS_PER_DAY
SETTLEMENT_WINDOW_SECONDS = 1_800.0
VOL_SHOCK_REFERENCE_SECONDS = 30.0 * SECONDS_PER_DAY

VolShockDirection = Literal["Up", "None", "Down", "LINEAR", "ABS"]
SKEW_DIRECTIONS: frozenset[str] = frozenset({"LINEAR", "ABS"})
# Rows of the vol candidates _scenario_vols stacks; "None" keeps the mark vol.
DIRECTION_CODE = {"None": 0, "Up": 1, "Down": 2, "LINEAR": 3, "ABS": 4}

Positive = Annotated[float, Field(gt=0)]
NonNegative = Annotated[float, Field(ge=0)]
Fraction = Annotated[float, Field(ge=0, le=1)]


def _number_from_text(value: object) -> object:
    # The venue writes most SVI parameters as decimal strings and some as JSON numbers.
    return float(value) if isinstance(value, str) else value


SviNumber = Annotated[float, BeforeValidator(_number_from_text)]


class _PascalCaseModel(BaseModel):
    """Venue keys in PascalCase; strict, closed and frozen: a misspelt or mistyped field is an error."""

    model_config = ConfigDict(
        strict=True, extra="forbid", frozen=True, allow_inf_nan=False, alias_generator=to_pascal
    )


class _UpperCaseModel(BaseModel):
    """Venue parameter keys in UPPER_SNAKE_CASE; strict, closed and frozen."""

    model_config = ConfigDict(
        strict=True, extra="forbid", frozen=True, allow_inf_nan=False, alias_generator=str.upper
    )


class Collateral(_PascalCaseModel):
    name: str = Field(min_length=1)
    amount: NonNegative
    price: NonNegative = Field(description="USD price")
    confidence: Fraction
    mm_haircut: Fraction = Field(alias="MMHaircut")
    im_haircut: Fraction = Field(alias="IMHaircut")
    is_risk_cancelling: bool = Field(description="moves with spot in the stress scenarios")
    confidence_factor: Fraction | None = Field(default=None, description="carried by the venue's cases; unused")


class OptionPosition(_PascalCaseModel):
    expiry: NonNegative = Field(description="seconds to expiry")
    exiry_ts: int | None = Field(default=None, ge=0, description="venue's (misspelt) expiry timestamp; unused")
    strike: Positive
    is_call: Literal[0, 1]
    mark_vol: NonNegative
    amount: float = Field(description="signed: short < 0")


class OptionFeed(_PascalCaseModel):
    feed_expiry: NonNegative = Field(description="equals the Expiry of the options it prices")
    forward: Positive
    forward_confidence: Fraction
    rate: float
    rate_confidence: Fraction
    option_vol_confidences: Fraction
    svi_param: Annotated[tuple[SviNumber, ...], Field(strict=False)] | None = Field(
        default=None, alias="SVIparam", description="the feed's SVI vol surface; unused, MarkVol prices options"
    )


class Pm2Account(_PascalCaseModel):
    """The venue's `Scenario` block: the account and its market state."""

    cash: float
    collaterals: Annotated[tuple[Collateral, ...], Field(strict=False)] = ()
    spot_price: Positive
    spot_confidence: Fraction
    stable_price: Positive
    stable_confidence: Fraction = Field(description="carried by the venue's cases; unused by the method")
    num_perps: float = Field(description="signed: short < 0")
    perp_price: NonNegative
    perp_confidence: Fraction
    unrealised_perp_pnl: float = Field(alias="UnrealisedPerpPNL")
    unrealised_funding: float
    options: Annotated[tuple[OptionPosition, ...], Field(strict=False)] = ()
    option_feeds: Annotated[tuple[OptionFeed, ...], Field(strict=False)] = ()
    last_entry_price: NonNegative | None = Field(default=None, description="unused: UnrealisedPerpPNL carries it")
    funding_index: float | None = Field(default=None, description="unused: UnrealisedFunding carries it")
    system_funding_index: float | None = Field(default=None, description="unused: UnrealisedFunding carries it")

    @model_validator(mode="after")
    def _every_expiry_has_one_feed(self) -> Pm2Account:
        feed_expiries = [feed.feed_expiry for feed in self.option_feeds]
        for index, expiry in enumerate(feed_expiries):
            if expiry in feed_expiries[:index]:
                raise PydanticCustomError(
                    "duplicate_feed", "OptionFeeds[{index}].FeedExpiry = {expiry} repeats an earlier feed",
                    {"index": index, "expiry": f"{expiry:g}"},
                )
        for index, option in enumerate(self.options):
            if option.expiry not in feed_expiries:
                raise PydanticCustomError(
                    "missing_feed", "Options[{index}].Expiry = {expiry} has no OptionFeeds entry",
                    {"index": index, "expiry": f"{option.expiry:g}"},
                )
        return self


class StressScenario(_PascalCaseModel):
    spot_shock: Positive = Field(description="spot multiplier: 1.18 is +18%")
    vol_shock_direction: VolShockDirection
    dampening_factor: NonNegative


class VolShockParameters(_UpperCaseModel):
    vol_range_up: float = Field(alias="VOLRANGEUP", ge=0, le=10)
    vol_range_down: float = Field(alias="VOLRANGEDOWN", ge=0, le=10)
    short_term_power: float = Field(alias="SHORTTERMPOWER", le=10)
    long_term_power: float = Field(alias="LONGTERMPOWER", le=10)
    dte_floor_days: float = Field(alias="DTE_FLOOR", ge=0, le=400)
    min_vol_eval_shocked: float = Field(ge=0, le=20)


class MarginParameters(_UpperCaseModel):
    mm_loss_factor: float = Field(ge=0.1, le=10)
    im_loss_factor: float = Field(ge=0.5, le=10)
    base_static_discount: float = Field(ge=0, le=4)
    base_static_discount_neg: float = Field(ge=0, le=4)
    long_rate_multscale: float = Field(ge=0, le=10)
    long_rate_addscale: float = Field(ge=0, le=10)
    short_rate_multscale: float = Field(ge=0, le=10)
    short_rate_addscale: float = Field(ge=0, le=10)


class BasisContingencyParameters(_UpperCaseModel):
    scenario_spot_up: float = Field(gt=1, lt=3)
    scenario_spot_down: float = Field(ge=0, lt=1)
    basis_cont_add_factor: float = Field(ge=0, le=20)
    basis_cont_mult_factor: float = Field(ge=0, le=20)


class OtherContingencyParameters(_UpperCaseModel):
    peg_loss_threshold: float = Field(ge=0, le=100)
    peg_loss_factor: float = Field(ge=0, le=10)
    conf_threshold: Fraction
    conf_margin: float = Field(ge=0, le=20)
    mm_perp_percent: float = Field(ge=0, le=3)
    im_perp_percent: float = Field(ge=0, le=3)
    mm_option_percent: float = Field(ge=0, le=2)
    im_option_percent: float = Field(ge=0, le=2)
    im_perp_percent_normal: NonNegative | None = Field(default=None, description="unused by the method")
    im_option_percent_normal: NonNegative | None = Field(default=None, description="unused by the method")


class SkewShockParameters(_UpperCaseModel):
    linear_scale_cap: float = Field(ge=0, le=10)
    linear_cbase: float = Field(ge=-10, le=10)
    abs_scale_cap: float = Field(ge=0, le=10)
    abs_cbase: float = Field(ge=-10, le=10)
    min_k_star: float = Field(ge=0, le=10)
    min_width_scale: float = Field(ge=0, le=10)
    vol_param_static: float = Field(ge=0, le=10)
    vol_param_scale: float = Field(ge=-20, le=20)


class Pm2Parameters(_PascalCaseModel):
    scenarios: Annotated[tuple[StressScenario, ...], Field(strict=False, min_length=1)]
    vol_shock: VolShockParameters
    margin: MarginParameters
    basis_contingency: BasisContingencyParameters
    other_contingency: OtherContingencyParameters
    skew_shock: SkewShockParameters


class ExpectedMargin(_UpperCaseModel):
    """The venue's own answer, carried by its test cases."""

    mm: float
    im: float


class Pm2Case(_PascalCaseModel):
    """One PM2 input in the venue's layout: {"Scenario": ..., "Parameters": ..., "Expected"?: ...}."""

    scenario: Pm2Account
    parameters: Pm2Parameters
    expected: ExpectedMargin | None = None

    @model_validator(mode="after")
    def _no_division_by_zero(self) -> Pm2Case:
        """Refuse, naming the parameter, the inputs on which Derive's contract divides by zero (and reverts)."""
        expiries = np.array(sorted({o.expiry for o in self.scenario.options}), dtype=np.float64)
        if expiries.size == 0:
            return self
        if self.parameters.vol_shock.dte_floor_days == 0 and expiries[0] == 0:
            raise PydanticCustomError(
                "division_by_zero", "Parameters.VolShock.DTE_FLOOR = 0 with an option at Expiry 0: the vol shock "
                "divides by max(Expiry, DTE_FLOOR) = 0", {},
            )
        if np.any(_k_star(np.sqrt(expiries / SECONDS_PER_YEAR), self.parameters.skew_shock) <= 0):
            raise PydanticCustomError(
                "division_by_zero", "Parameters.SkewShock.MIN_K_STAR = 0 and an expiry whose k* is not positive: "
                "the skew shock divides by k*", {},
            )
        return self


@dataclass(frozen=True)
class ScenarioPnl:
    """One scenario's dampened P&L; `index` is its position in Parameters.Scenarios (the basis contingency comes
    after the last one)."""

    index: int
    description: str
    pnl: float


@dataclass(frozen=True)
class Pm2Result:
    """Margins as balances (negative: short of margin); `worst_loss` is the lowest scenario P&L (<= 0).

    `scenario_pnl` holds every stress scenario's P&L in the venue's order, then the basis contingency, which
    competes with them for the worst loss; `scenarios` pairs them with descriptions (built on first use, off the
    evaluation's hot path). The contingencies are the amounts subtracted (IM subtracts both)."""

    mm: float
    im: float
    mtm: float
    worst_loss: float
    worst_index: int
    scenario_pnl: tuple[float, ...]
    mm_contingency: float
    im_contingency: float
    stress_scenarios: tuple[StressScenario, ...]

    @cached_property
    def scenarios(self) -> tuple[ScenarioPnl, ...]:
        descriptions = [_describe(s) for s in self.stress_scenarios] + ["basis contingency"]
        return tuple(
            ScenarioPnl(index=i, description=text, pnl=pnl)
            for i, (text, pnl) in enumerate(zip(descriptions, self.scenario_pnl, strict=True))
        )

    @property
    def worst_scenario(self) -> ScenarioPnl:
        return self.scenarios[self.worst_index]


@dataclass(frozen=True)
class _OptionBook:
    """Option legs and their expiries as arrays; leg i belongs to expiry `expiry_of_leg[i]`."""

    strike: FloatArray
    is_call: NDArray[np.bool_]
    amount: FloatArray
    mark_vol: FloatArray
    expiry_of_leg: NDArray[np.intp]
    seconds: FloatArray
    forward: FloatArray
    rate: FloatArray
    confidence: FloatArray
    tau: FloatArray
    disc: FloatArray

    @classmethod
    def from_account(cls, account: Pm2Account) -> _OptionBook:
        legs = np.array(
            [(o.expiry, o.strike, o.is_call, o.amount, o.mark_vol) for o in account.options], dtype=np.float64
        ).reshape(-1, 5)
        # The expiries are the feeds' (validation gives every option's expiry one); one without options adds 0.
        expiry_feeds = sorted(account.option_feeds, key=lambda feed: feed.feed_expiry)
        seconds = np.array([feed.feed_expiry for feed in expiry_feeds], dtype=np.float64)
        expiry_of_leg = np.searchsorted(seconds, legs[:, 0])
        market_confidence = account.spot_confidence
        if account.num_perps != 0:
            market_confidence = min(market_confidence, account.perp_confidence)
        forward, rate, confidence = np.array(
            [
                (f.forward, f.rate, min(f.forward_confidence, f.rate_confidence, f.option_vol_confidences,
                                        market_confidence))
                for f in expiry_feeds
            ],
            dtype=np.float64,
        ).reshape(-1, 3).T
        tau = seconds / SECONDS_PER_YEAR
        rate = np.maximum(rate, 0.0)
        return cls(
            strike=legs[:, 1],
            is_call=legs[:, 2] == 1,
            amount=legs[:, 3],
            mark_vol=legs[:, 4],
            expiry_of_leg=expiry_of_leg,
            seconds=seconds,
            forward=forward,
            rate=rate,
            confidence=confidence,
            tau=tau,
            disc=np.exp(-rate * tau),
        )


@dataclass(frozen=True)
class _Collaterals:
    value: FloatArray  # in stable units: Amount x Price / StablePrice
    mm_haircut: FloatArray
    im_haircut: FloatArray
    oracle_confidence: FloatArray
    is_risk_cancelling: NDArray[np.bool_]

    @classmethod
    def from_account(cls, account: Pm2Account) -> _Collaterals:
        collaterals = account.collaterals
        return cls(
            value=np.array([c.amount * c.price for c in collaterals], dtype=np.float64) / account.stable_price,
            mm_haircut=np.array([c.mm_haircut for c in collaterals], dtype=np.float64),
            im_haircut=np.array([c.im_haircut for c in collaterals], dtype=np.float64),
            oracle_confidence=np.array(
                [min(c.confidence, account.spot_confidence) for c in collaterals], dtype=np.float64
            ),
            is_risk_cancelling=np.array([c.is_risk_cancelling for c in collaterals], dtype=np.bool_),
        )


def _skew_vol_factor(
    log_moneyness: FloatArray, sqrt_tau: FloatArray, scale_cap: float, cbase: float, skew: SkewShockParameters
) -> FloatArray:
    cap = cbase * sqrt_tau + scale_cap
    return np.maximum(0.0, 1.0 + np.clip(log_moneyness * cap / _k_star(sqrt_tau, skew), -cap, cap))


def _k_star(sqrt_tau: FloatArray, skew: SkewShockParameters) -> FloatArray:
    """Where the skew shock's multiplier reaches its cap, in log-moneyness."""
    return np.maximum(
        skew.min_k_star, sqrt_tau * skew.min_width_scale * (skew.vol_param_static + sqrt_tau * skew.vol_param_scale)
    )


def _scenario_vols(book: _OptionBook, direction_code: NDArray[np.intp], params: Pm2Parameters) -> FloatArray:
    """Vol of every leg under every direction code (rows x legs)."""
    vol_shock, skew = params.vol_shock, params.skew_shock
    leg = book.expiry_of_leg
    power = np.where(book.seconds <= VOL_SHOCK_REFERENCE_SECONDS, vol_shock.short_term_power,
                     vol_shock.long_term_power)
    floored_seconds = np.maximum(book.seconds, vol_shock.dte_floor_days * SECONDS_PER_DAY)
    term_scale = ((VOL_SHOCK_REFERENCE_SECONDS / floored_seconds) ** power)[leg]
    vol_up = np.maximum(vol_shock.min_vol_eval_shocked, book.mark_vol * (1.0 + vol_shock.vol_range_up * term_scale))
    vol_down = book.mark_vol * np.maximum(0.0, 1.0 - vol_shock.vol_range_down * term_scale)

    sqrt_tau = np.sqrt(book.tau)[leg]
    log_moneyness = np.log(book.strike / book.forward[leg])
    linear_factor = _skew_vol_factor(log_moneyness, sqrt_tau, skew.linear_scale_cap, skew.linear_cbase, skew)
    abs_factor = _skew_vol_factor(np.abs(log_moneyness), sqrt_tau, skew.abs_scale_cap, skew.abs_cbase, skew)

    vol_by_code = np.stack(
        [book.mark_vol, vol_up, vol_down, book.mark_vol * linear_factor, book.mark_vol * abs_factor]
    )
    return vol_by_code[direction_code]


def _static_discount(value: FloatArray, book: _OptionBook, margin: MarginParameters) -> FloatArray:
    """Haircut a gain, inflate a loss (at most undoing disc): the scenario's expiry value as margin counts it."""
    tau, rate = book.tau, book.rate
    long_rate_discount = np.exp(-tau * (rate * margin.long_rate_multscale + margin.long_rate_addscale))
    gain_factor = margin.base_static_discount * long_rate_discount
    short_rate_discount = np.exp(-tau * (rate * margin.short_rate_multscale + margin.short_rate_addscale))
    loss_factor = np.minimum(1.0 / book.disc, margin.base_static_discount_neg / short_rate_discount)
    return value * np.where(value >= 0, gain_factor, loss_factor)


def _contingencies(
    account: Pm2Account, book: _OptionBook, collaterals: _Collaterals, other: OtherContingencyParameters
) -> tuple[float, float]:
    """(MM contingency, IM contingency on top of it), both >= 0."""
    spot = account.spot_price
    # A short is naked for the amount no opposite long at its strike and expiry covers; calls and puts net.
    strikes, strike_index = np.unique(book.strike, return_inverse=True)
    expiry_strike_key = book.expiry_of_leg * strikes.size + strike_index.reshape(-1)
    net_at_strike = np.bincount(expiry_strike_key, weights=book.amount)
    naked_short_notional = float(np.maximum(-net_at_strike, 0.0).sum()) * spot
    perp_notional = abs(account.num_perps) * spot
    gross_amount = np.bincount(book.expiry_of_leg, weights=np.abs(book.amount), minlength=book.seconds.size)
    gross_option_notional = np.asarray(gross_amount, dtype=np.float64) * spot

    mm_contingency = (
        perp_notional * other.mm_perp_percent
        + naked_short_notional * other.mm_option_percent
        + float(collaterals.value @ collaterals.mm_haircut)
    )
    # Notional priced by a feed whose confidence is under the threshold costs IM in proportion to the shortfall.
    confidence = np.concatenate(
        [[min(account.spot_confidence, account.perp_confidence)], book.confidence, collaterals.oracle_confidence]
    )
    notional = np.concatenate([[perp_notional], gross_option_notional, collaterals.value])
    shortfall = np.where(confidence < other.conf_threshold, 1.0 - confidence, 0.0)
    oracle_contingency = float(shortfall @ notional) * other.conf_margin
    im_contingency = (
        perp_notional * other.im_perp_percent
        + naked_short_notional * other.im_option_percent
        + float(collaterals.value @ collaterals.im_haircut)
        + oracle_contingency
    )
    return mm_contingency, im_contingency


def _describe(scenario: StressScenario) -> str:
    if scenario.vol_shock_direction in SKEW_DIRECTIONS:
        text = f"skew {scenario.vol_shock_direction}"
    else:
        text = f"spot {scenario.spot_shock - 1:+.1%}, vol {scenario.vol_shock_direction}"
    if scenario.dampening_factor != 1:
        text += f", dampening {scenario.dampening_factor:.4g}"
    return text


def evaluate_pm2(case: Pm2Case) -> Pm2Result:
    account, params = case.scenario, case.parameters
    book = _OptionBook.from_account(account)
    collaterals = _Collaterals.from_account(account)
    basis = params.basis_contingency

    scenarios = params.scenarios
    spot_shock = np.array([s.spot_shock for s in scenarios], dtype=np.float64)
    dampening = np.array([s.dampening_factor for s in scenarios], dtype=np.float64)
    direction_code = np.array([DIRECTION_CODE[s.vol_shock_direction] for s in scenarios], dtype=np.intp)
    is_skew = direction_code >= DIRECTION_CODE["LINEAR"]
    shock = np.where(is_skew, 1.0, spot_shock)  # skew scenarios leave spot alone

    # All revaluations in one Black-76 call: the scenarios, then the mark and the two basis forwards at mark vol.
    forward_multiplier = np.concatenate([shock, [1.0, basis.scenario_spot_up, basis.scenario_spot_down]])
    row_direction = np.concatenate([direction_code, np.full(3, DIRECTION_CODE["None"])])
    leg = book.expiry_of_leg
    # Near settlement most of the settlement average is already fixed: only the fraction T/1800 of F moves.
    moving_fraction = np.minimum(book.seconds / SETTLEMENT_WINDOW_SECONDS, 1.0)[leg]
    forward = book.forward[leg] * (1.0 + moving_fraction * (forward_multiplier[:, None] - 1.0))
    vol = _scenario_vols(book, row_direction, params)
    price = np.maximum(black76_price(forward, book.strike, book.tau[leg], vol, book.is_call, book.disc[leg]), 0.0)
    legs_of_expiry = (leg[:, None] == np.arange(book.seconds.size)).astype(np.float64)
    expiry_value = (price * book.amount) @ legs_of_expiry  # revaluations x expiries
    scenario_value, mark_value, basis_up_value, basis_down_value = (
        expiry_value[:-3], expiry_value[-3], expiry_value[-2], expiry_value[-1]
    )

    expiry_pnl = _static_discount(scenario_value, book, params.margin) - mark_value
    delta_one_value = account.num_perps * account.perp_price + collaterals.value[collaterals.is_risk_cancelling].sum()
    spot_pnl = delta_one_value * (shock - 1.0) + expiry_pnl.sum(axis=1)
    skew_pnl = -np.abs(expiry_pnl).sum(axis=1)
    scenario_pnl = dampening * np.where(is_skew, skew_pnl, spot_pnl)

    basis_loss = np.minimum(np.minimum(basis_up_value, basis_down_value) - mark_value, 0.0)
    basis_weight = basis.basis_cont_add_factor + basis.basis_cont_mult_factor * book.tau
    all_pnl = np.append(scenario_pnl, (basis_loss * basis_weight).sum())
    worst_index = int(np.argmin(all_pnl))
    worst_loss = float(all_pnl[worst_index])

    other, margin = params.other_contingency, params.margin
    mm_contingency, im_contingency = _contingencies(account, book, collaterals, other)
    mtm = float(account.unrealised_perp_pnl + account.unrealised_funding + mark_value.sum() + collaterals.value.sum())
    peg_loss_factor = other.peg_loss_factor * max(0.0, other.peg_loss_threshold - account.stable_price)
    mm = worst_loss * margin.mm_loss_factor - mm_contingency + mtm + account.cash
    im = worst_loss * (margin.im_loss_factor + peg_loss_factor) - mm_contingency - im_contingency + mtm + account.cash

    return Pm2Result(
        mm=mm,
        im=im,
        mtm=mtm,
        worst_loss=worst_loss,
        worst_index=worst_index,
        scenario_pnl=tuple(all_pnl.tolist()),
        mm_contingency=mm_contingency,
        im_contingency=im_contingency,
        stress_scenarios=scenarios,
    )
