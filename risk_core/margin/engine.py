"""The grid margin model of docs/margin-model.md: from a request to the margin report."""

from __future__ import annotations

import math
from collections.abc import Sequence
from operator import attrgetter
from typing import Literal

import numpy as np
from numpy.typing import NDArray

from risk_core.errors import InputError
from risk_core.margin.context import MAX_RISE_SEARCHED, PricingContext, effective_params, pricing_context
from risk_core.margin.fhs import historical_loss, worst_scenarios
from risk_core.margin.finite import require_finite
from risk_core.margin.instruments import Book
from risk_core.margin.liquidation import liquidation_moves, liquidation_plan
from risk_core.margin.liquidity import depth_source
from risk_core.margin.risk_arrays import RiskArrays
from risk_core.margin.scenarios import SKEW_NAMES
from risk_core.margin.venue_parity import compute_venue_margins
from risk_core.schema.market import MarketSnapshot, SourceStatus
from risk_core.schema.params import RiskParams
from risk_core.schema.positions import CATEGORY_BY_KIND, SCHEMA_VERSION, BorrowPosition, Position
from risk_core.schema.report import (
    Breakdown,
    HistoricalScenario,
    Issue,
    LiquidationMove,
    LiquidationPlan,
    LiquidationStep,
    MarginReport,
    OffsetDecomposition,
    PositionRisk,
    ScenarioGrid,
    ScenarioPoint,
    UnderlyingRisk,
    VenueAccountRisk,
)
from risk_core.schema.request import MarginRequest
from risk_core.schema.venues import VenueState

Array = NDArray[np.float64]
_VENUE, _CHAIN = attrgetter("venue"), attrgetter("chain")
_WORST_SCENARIOS_SHOWN = 5


def compute_margin_request(request: MarginRequest, context: PricingContext | None = None) -> MarginReport:
    """The report of a request, priced in `context` when the caller keeps one for the request's market and
    parameters. Raises InputError when it names no market (only the API can fill one in)."""
    if context is None:
        if request.market is None:
            raise InputError("market", "required: the market snapshot to price against")
        context = pricing_context(request.market, effective_params(request.params))
    return compute_margin(
        request.positions, context.market, context.params, sources=request.sources,
        venue_states=request.venue_states, context=context,
    )


def _source_sentence(kind: str, source: SourceStatus) -> str:
    """`position source wallet@arbitrum failed: why`, `market source pyth is stale`."""
    verb = "failed" if source.status == "failed" else f"is {source.status}"
    return f"{kind} source {source.name} {verb}" + (f": {source.reason}" if source.reason else "")


def _assets_held(positions: Sequence[Position]) -> set[str]:
    """Every asset a position names: held, owed, underlying, or either token of a range."""
    fields = ("asset", "underlying", "token0", "token1")
    # from each model's __dict__: getattr of a field the model lacks costs a pydantic __getattr__ and an exception
    return {a for p in positions for f in fields if isinstance(a := p.__dict__.get(f), str)}


def compute_margin(
    positions: Sequence[Position],
    market: MarketSnapshot,
    params: RiskParams,
    *,
    sources: Sequence[SourceStatus] = (),
    venue_states: Sequence[VenueState] = (),
    context: PricingContext | None = None,
) -> MarginReport:
    """The margin report of a book, priced in `context` (built from market and params when not given). A position
    the market cannot price is left out and named in `issues`; the report is then incomplete."""
    if context is None:
        context = pricing_context(market, params)
    elif context.market is not market or context.params is not params:
        raise ValueError("the pricing context was built on another market snapshot or parameters")
    book = context.instruments.book(positions)
    arrays = RiskArrays(book, params)
    n = len(positions)
    value, haircut = book.values()
    equity = float(value.sum())
    collateral = equity - float(haircut.sum())

    # one call of the margin function: the book, its venue and chain breakdowns, each venue state's
    # venue-account (for the universal figure beside the venue's own) and each position alone
    venue_of, chain_of = list(map(_VENUE, positions)), list(map(_CHAIN, positions))
    venues, venue_member = _membership(venue_of)
    chains, chain_member = _membership(chain_of)
    state_member = np.array(
        [[p.venue_account == (s.venue, s.chain, s.account) for p in positions] for s in venue_states], dtype=float
    ).reshape(len(venue_states), n)
    figures = arrays.margin(np.concatenate([np.ones((1, n)), venue_member, chain_member, state_member]), alone=True)
    n_venues, n_chains = len(venues), len(chains)
    venue_mm = figures.maintenance[1 : 1 + n_venues]
    chain_mm = figures.maintenance[1 + n_venues : 1 + n_venues + n_chains]
    states = slice(1 + n_venues + n_chains, 1 + n_venues + n_chains + len(venue_states))
    standalone = figures.maintenance[1 + n_venues + n_chains + len(venue_states) :]
    mm = float(figures.maintenance[0])
    im = mm * params.im_factor
    isolated = float(standalone.sum())
    status: Literal["healthy", "margin_call", "liquidatable"] = (
        "liquidatable" if collateral < mm else "margin_call" if collateral < im else "healthy"
    )

    issues = [Issue.trusted(index=i.index, field=i.path, code=i.code, severity=i.severity, message=i.message)
              for i in book.issues]
    warnings = [f"{i.field}: {i.message}" for i in issues]
    failing = [s for s in market.sources if s.status != "ok"]
    if failing:  # the assets held are read only when a market source failed
        held = _assets_held(positions) | set(book.assets)  # with the assets tracked tokens are revalued under
        warnings.extend(_source_sentence("market", s) for s in failing if s.asset is None or s.asset in held)
    complete = (
        bool(book.priced.all())
        and all(p.provenance is None or p.provenance.complete for p in positions)
        and all(s.status != "failed" for s in sources)
    )
    for s in sources:
        if s.status != "ok":
            warnings.append(_source_sentence("position", s))

    greeks = book.greeks()
    liquidation = liquidation_moves(book, collateral, mm, max_rise=MAX_RISE_SEARCHED)
    plan = None
    if status == "liquidatable":
        plan, bounded = _plan(book, arrays, collateral, params, value, haircut)
        if bounded:
            warnings.append("liquidation plan: the book is too large for a full greedy search; the plan was cut "
                            "short by its budget of trials (see risk_core.margin.liquidation)")

    # The position rows skip validation (`trusted_rows`): each value is built here from validated inputs with its
    # field's type (Python floats from tolist, ints, bools, str); validating 100 rows again costs ~0.3 ms.
    # `+ 0.0` turns IEEE negative zeros (a perp's vega is -1 x 0.0) into 0: a report never says -0
    delta_of, gamma_of, vega_of, theta_of = ((g + 0.0).tolist() for g in greeks)
    kinds = [p.kind for p in positions]
    report = MarginReport(
        as_of=market.as_of,
        params_version=params.version,
        schema_version=SCHEMA_VERSION,
        equity_usd=equity,
        collateral_usd=collateral,
        maintenance_margin_usd=mm,
        initial_margin_usd=im,
        free_collateral_usd=collateral - im,
        margin_ratio=mm / collateral if collateral > 0 else None,
        status=status,
        isolated_margin_usd=isolated,
        portfolio_saving_usd=isolated - mm,
        risk_usd=float(figures.risk[0]),
        contingency_usd=float(figures.contingency[0]),
        liquidity_addon_usd=float(figures.liquidity[0]),
        liquidity_depth_source={asset: depth_source(d) for asset, d in arrays.depth.items()},
        model=params.model,
        worst_scenarios=_worst_scenarios(book, arrays),
        complete=complete,
        warnings=warnings,
        sources=[*market.sources, *sources],
        positions=PositionRisk.trusted_rows(
            id=[p.id for p in positions],
            index=range(n),
            kind=kinds,
            category=[CATEGORY_BY_KIND[kind] for kind in kinds],
            venue=venue_of,
            chain=chain_of,
            account=[p.account for p in positions],
            underlying=book.primary,
            value_usd=(value + 0.0).tolist(),
            delta=delta_of,
            gamma=gamma_of,
            vega=vega_of,
            theta=theta_of,
            standalone_margin_usd=standalone.tolist(),
            priced=book.priced.tolist(),
        ),
        underlyings={asset: _underlying_report(book, asset, liquidation[asset]) for asset in book.assets},
        by_venue=_breakdown(venues, venue_member, venue_mm, value, haircut),
        by_chain=_breakdown(chains, chain_member, chain_mm, value, haircut),
        liquidation_plan=plan,
        venue_margins=compute_venue_margins(
            positions, market, venue_states, universal_mm=figures.maintenance[states].tolist(),
            universal_risk=figures.risk[states].tolist(), universal_contingency=figures.contingency[states].tolist(),
        ),
        offsets=_offsets(arrays, figures.levels[0], params),
        issues=issues,
        params_hash=context.params_hash,
        market_hash=context.market_hash,
    )
    rows_finite = bool(np.isfinite(value).all() and np.isfinite(standalone).all()
                       and all(np.isfinite(g).all() for g in greeks))
    return require_finite(report, positions, market, rows_finite=rows_finite)


def _offsets(arrays: RiskArrays, levels: Array, params: RiskParams) -> OffsetDecomposition:
    """The book's netting levels and the credit each offset earned: the terms of `combine_levels`, by name."""
    everything, by_chain, by_account = arrays.split_levels(levels)
    chains_siloed = math.fsum(by_chain.values())
    accounts_siloed = math.fsum(risk for _, risk in by_account)
    credit = params.offset_credit
    cross_chain, cross_venue = chains_siloed - everything, accounts_siloed - chains_siloed
    # built from the engine's own floats and strings: not validated again (see ReportModel.trusted)
    return OffsetDecomposition.trusted(
        everything_usd=everything,
        risk_by_chain_usd=by_chain,
        chains_siloed_usd=chains_siloed,
        risk_by_venue_account=[
            VenueAccountRisk.trusted(venue=venue, chain=chain, account=account, risk_usd=risk)
            for (venue, chain, account), risk in by_account
        ],
        venue_accounts_siloed_usd=accounts_siloed,
        cross_chain_offset_usd=cross_chain,
        cross_chain_credit=credit.cross_chain,
        cross_chain_credit_usd=credit.cross_chain * cross_chain,
        cross_venue_offset_usd=cross_venue,
        cross_venue_credit=credit.cross_venue,
        cross_venue_credit_usd=credit.cross_venue * cross_venue,
        combined_risk_usd=accounts_siloed - credit.cross_chain * cross_chain - credit.cross_venue * cross_venue,
    )


def _worst_scenarios(book: Book, arrays: RiskArrays) -> list[HistoricalScenario]:
    """The book's worst historical scenarios (fhs); none under the grid."""
    if arrays.layout is None:
        return []
    book_pnl = sum(book.scaled(asset, "pnl").sum(axis=0) for asset in book.assets)
    return [
        HistoricalScenario(date=day, pnl_usd=pnl, stressed=stressed)
        for day, pnl, stressed in worst_scenarios(np.asarray(book_pnl), arrays.layout, _WORST_SCENARIOS_SHOWN)
    ]


def _underlying_report(book: Book, asset: str, liquidation: tuple[float | None, float | None]) -> UnderlyingRisk:
    table = book.held[asset].table
    sc, spot = table.scenarios, table.spot
    counted = book.scaled(asset, "pnl").sum(axis=0)
    raw = book.scaled(asset, "raw").sum(axis=0)
    worst = int(np.argmin(counted))
    layout = sc.history
    risk = max(0.0, -float(counted[worst])) if layout is None else float(historical_loss(counted, layout))
    delta, gamma, vega, theta = (float(g) + 0.0 for g in book.scaled(asset, "greeks").sum(axis=0))  # no -0
    down, up = liquidation
    n_spot, n_vol = len(sc.grid_spots), len(sc.grid_vols)
    raw_of, counted_of = raw.tolist(), counted.tolist()
    # built from the engine's own floats, lists and strings: not validated again (see ReportModel.trusted)
    return UnderlyingRisk.trusted(
        spot=float(spot),
        risk_usd=risk,
        worst_scenario=ScenarioPoint.trusted(
            spot_shock=float(sc.spot_shock[worst]),
            vol_shock=float(sc.vol_shock[worst]),
            kind=sc.kind(worst),
            name=SKEW_NAMES.get(int(sc.skew[worst])),
            date=None if layout is None else layout.date_of(worst),
        ),
        delta=delta,
        delta_usd=delta * spot,
        gamma=gamma,
        gamma_usd=gamma * spot * spot * 0.01,  # a product overflows to inf (checked), ** raises
        vega=vega,
        theta=theta,
        liquidation_move=LiquidationMove.trusted(down=down, up=up),
        grid=ScenarioGrid.trusted(
            spot_shocks=list(sc.grid_spots),
            vol_shocks=list(sc.grid_vols),
            pnl=(raw[: sc.grid_size] + 0.0).reshape(n_spot, n_vol).tolist(),
            extreme=[
                {"spot_shock": float(sc.spot_shock[i]), "pnl": raw_of[i], "counted": counted_of[i]}
                for i in sc.extremes
            ],
            skew=[{"name": name, "pnl": raw_of[i]} for i, name in sc.tilts],
        ),
    )


def _membership(labels: list[str]) -> tuple[list[str], Array]:
    """The distinct labels, sorted, and a 0/1 matrix (labels x positions) of which positions carry each."""
    names = sorted(set(labels))
    index = {name: j for j, name in enumerate(names)}
    of_position = np.array([index[label] for label in labels], dtype=np.intp)
    return names, (np.arange(len(names))[:, None] == of_position[None, :]).astype(np.float64)


def _breakdown(names: list[str], member: Array, mm: Array, value: Array, haircut: Array) -> dict[str, Breakdown]:
    return {
        name: Breakdown.trusted(
            equity_usd=equity,
            collateral_usd=collateral,
            maintenance_margin_usd=margin,
            positions=count,
        )
        for name, equity, collateral, margin, count in zip(
            names, (member @ value).tolist(), (member @ (value - haircut)).tolist(), mm.tolist(),
            member.sum(axis=1).astype(int).tolist(), strict=True,
        )
    }


def _plan(
    book: Book, arrays: RiskArrays, collateral: float, params: RiskParams, value: Array, haircut: Array
) -> tuple[LiquidationPlan, bool]:
    """The plan, and whether its search was cut short by its budget."""
    positions = book.positions
    closable = np.array(
        [book.primary[i] is not None and not isinstance(p, BorrowPosition) for i, p in enumerate(positions)],
        dtype=bool,
    )
    cost = np.array([params.liquidation.cost_for(p.venue) for p in positions]) * book.notional
    fractions, restored, bounded = liquidation_plan(
        arrays, collateral=collateral, im_factor=params.im_factor, closable=closable, release=haircut, cost=cost
    )
    steps = [
        LiquidationStep(
            index=i, id=positions[i].id, venue=positions[i].venue,
            fraction=float(fractions[i]), cost_usd=float(fractions[i] * cost[i]),
        )
        for i in map(int, np.flatnonzero(fractions > 0))
    ]
    plan = LiquidationPlan(
        steps=steps, total_cost_usd=float(sum(s.cost_usd for s in steps)), restores_initial_margin=restored
    )
    return plan, bounded


