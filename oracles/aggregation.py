"""The price aggregation policy: many normalised observations of one asset -> one price with its evidence.

Pure and deterministic: `now` and the previous aggregate are arguments. In order:

1. Each observation is judged alone and dropped when it is
   - non-positive (Chainlink's all-zero invalid round, a venue answering 0);
   - from an incomplete round (answeredInRound < roundId);
   - behind an L2 sequencer that is down, or up for less than the grace period (Chainlink's L2 guidance:
     prices are not trustworthy until the sequencer has been back for a while);
   - stale: older than the feed's own heartbeat x `staleness_factor` (1.1: ETH/USD's heartbeat is 3,600 s and
     its largest recorded gap 3,720 s), or published in the future beyond `max_future_s`;
   - pinned at a bound: within `bound_tolerance` of the feed's minAnswer or maxAnswer (Venus, May 2022: the
     LUNA/USD feed sat at its $0.10 floor while LUNA traded near $0.01);
   - too uncertain: confidence / price above `max_confidence_ratio` (Pyth).
2. Quorum: at least `quorum` survivors, else the price fails (no price at all, never a guess).
3. The median of the survivors; any survivor further than `max_deviation` from it is rejected as an outlier
   (Compound, Nov 2020: one exchange printed DAI at $1.30 and a single-source oracle passed it on), the median is
   taken again over the rest, and the quorum is checked again.
4. Jump: a move of more than `jump_threshold` from the previous aggregate is not taken; the price is frozen at the
   previous one and flagged, its dispersion widened to the size of the unconfirmed move, until the new level has
   been seen `jump_confirmations` times in a row (then it is taken, flagged as a confirmed jump).
5. Peg (optional, for pegged pairs such as stETH/ETH or USDC/USD): a price off its peg by more than
   `peg_tolerance` is kept as it is (the market price, never the peg) and flagged as a depeg.

Dispersion = max((max - min) / median over the sources used, largest confidence / price among them).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from statistics import median
from typing import Literal

from oracles.observations import PriceObservation
from risk_core.schema.market import SourceStatus

PriceStatus = Literal["ok", "degraded", "frozen", "failed"]


@dataclass(frozen=True)
class AggregationPolicy:
    quorum: int = 2
    staleness_factor: float = 1.1
    max_future_s: float = 60.0
    max_confidence_ratio: float = 0.02
    bound_tolerance: float = 1e-3
    max_deviation: float = 0.02
    jump_threshold: float = 0.15
    jump_confirmations: int = 3
    sequencer_grace_s: float = 3600.0
    peg: float | None = None
    peg_tolerance: float = 0.01


@dataclass(frozen=True)
class SourceVerdict:
    """How the policy judged one observation."""

    source: str
    price: float
    published_at: datetime
    used: bool
    status: Literal["ok", "stale", "failed"]
    reason: str | None = None
    detail: str | None = None  # the source's own evidence (a Chainlink round and block), shown with its status


def compute_observation_detail(obs: PriceObservation) -> str | None:
    """What identifies an observation read on chain: its Chainlink round, updatedAt and the block it was read at;
    None for anything else (venues, recorded rounds replayed)."""
    raw = obs.raw
    if "roundId" not in raw or "block" not in raw:
        return None
    updated = datetime.fromtimestamp(int(raw.get("updatedAt", "0")), UTC).isoformat()
    detail = f"round {raw['roundId']}, updatedAt {raw.get('updatedAt')} ({updated}), read at block {raw['block']}"
    if "clock" in raw:
        detail += f" ({raw['clock']})"
    return detail


@dataclass(frozen=True)
class AggregatedPrice:
    asset: str
    quote: str
    as_of: datetime
    price: float | None  # None when the price failed: never a placeholder
    status: PriceStatus
    dispersion: float
    sources: tuple[SourceVerdict, ...]
    flags: tuple[str, ...] = ()
    published_at: datetime | None = None  # oldest publication among the sources used
    pending: float | None = None  # while frozen: the unconfirmed new level
    pending_count: int = 0

    @property
    def name(self) -> str:
        return f"{self.asset}/{self.quote}"

    @property
    def reason(self) -> str:
        used = [v.source for v in self.sources if v.used]
        head = f"{self.status}: median of {len(used)}/{len(self.sources)} sources ({', '.join(used) or 'none'})"
        head += f", dispersion {self.dispersion:.4%}"
        return "; ".join([head, *self.flags])

    def source_statuses(self) -> list[SourceStatus]:
        """One status for the price itself (`price:ASSET/QUOTE`), then one per source observation."""
        mapped: Literal["ok", "stale", "failed"] = (
            "ok" if self.status in ("ok", "degraded") else "stale" if self.status == "frozen" else "failed"
        )
        out = [SourceStatus(name=f"price:{self.name}", status=mapped, reason=self.reason, as_of=self.published_at,
                            asset=self.asset)]
        for v in self.sources:
            reason = v.reason if v.reason else f"used at {v.price:.8g}"
            out.append(
                SourceStatus(
                    name=f"{v.source}:{self.name}",
                    status=v.status,
                    reason=reason if v.detail is None else f"{reason}; {v.detail}",
                    as_of=v.published_at,
                    asset=self.asset,
                )
            )
        return out


def _judge(obs: PriceObservation, *, now: datetime, policy: AggregationPolicy) -> SourceVerdict:
    detail = compute_observation_detail(obs)

    def drop(status: Literal["stale", "failed"], reason: str) -> SourceVerdict:
        return SourceVerdict(obs.source, obs.price, obs.published_at, used=False, status=status, reason=reason,
                             detail=detail)

    if not obs.price > 0:
        return drop("failed", f"non-positive price {obs.price:g}")
    if not obs.round_complete:
        return drop("stale", "round not complete (answeredInRound < roundId, or never updated)")
    if obs.sequencer is not None:
        if not obs.sequencer.up:
            return drop("failed", f"L2 sequencer down since {obs.sequencer.since.isoformat()}")
        up_for = (now - obs.sequencer.since).total_seconds()
        if up_for < policy.sequencer_grace_s:
            return drop(
                "stale", f"L2 sequencer back up only {up_for:.0f} s ago (grace period {policy.sequencer_grace_s:.0f} s)"
            )
    age = (now - obs.published_at).total_seconds()
    limit = obs.heartbeat_s * policy.staleness_factor
    if age > limit:
        return drop("stale", f"{age:.0f} s old, over heartbeat {obs.heartbeat_s:.0f} s x {policy.staleness_factor}")
    if age < -policy.max_future_s:
        return drop("failed", f"published {-age:.0f} s in the future")
    tol = policy.bound_tolerance
    if obs.min_price is not None and obs.price <= obs.min_price * (1.0 + tol):
        return drop("failed", f"pinned at the feed's minimum {obs.min_price:g}")
    if obs.max_price is not None and obs.price >= obs.max_price * (1.0 - tol):
        return drop("failed", f"pinned at the feed's maximum {obs.max_price:g}")
    if obs.confidence is not None and obs.confidence / obs.price > policy.max_confidence_ratio:
        return drop(
            "failed",
            f"confidence {obs.confidence / obs.price:.2%} of price over {policy.max_confidence_ratio:.2%}",
        )
    return SourceVerdict(obs.source, obs.price, obs.published_at, used=True, status="ok", detail=detail)


def compute_aggregate(
    observations: Sequence[PriceObservation],
    *,
    asset: str,
    now: datetime,
    policy: AggregationPolicy | None = None,
    previous: AggregatedPrice | None = None,
    quote: str = "USD",
) -> AggregatedPrice:
    """Apply the policy (module docstring) to every observation of one asset."""
    pol = policy or AggregationPolicy()
    mismatched = [o for o in observations if o.asset != asset or o.quote != quote]
    if mismatched:
        raise ValueError(f"observations of {mismatched[0].asset}/{mismatched[0].quote} given for {asset}/{quote}")
    verdicts = [_judge(o, now=now, policy=pol) for o in observations]
    by_source = {o.source: o for o in observations}

    def failed(reason: str) -> AggregatedPrice:
        return AggregatedPrice(
            asset=asset, quote=quote, as_of=now, price=None, status="failed", dispersion=0.0,
            sources=tuple(verdicts), flags=(reason,),
        )

    alive = [v for v in verdicts if v.used]
    if len(alive) < pol.quorum:
        return failed(f"quorum not met: {len(alive)} valid of {len(verdicts)} sources, {pol.quorum} required")
    mid = median(v.price for v in alive)
    for i, v in enumerate(verdicts):
        if v.used and abs(v.price / mid - 1.0) > pol.max_deviation:
            verdicts[i] = replace(
                v, used=False, status="failed",
                reason=f"outlier: {v.price / mid - 1.0:+.2%} from the median {mid:.8g} (limit {pol.max_deviation:.2%})",
            )
    alive = [v for v in verdicts if v.used]
    if len(alive) < pol.quorum:
        return failed(
            f"quorum not met after outlier rejection: {len(alive)} of {len(verdicts)} sources agree within "
            f"{pol.max_deviation:.2%}, {pol.quorum} required"
        )
    price = median(v.price for v in alive)
    prices = [v.price for v in alive]
    dispersion = (max(prices) - min(prices)) / price
    for v in alive:
        conf = by_source[v.source].confidence
        if conf is not None:
            dispersion = max(dispersion, conf / v.price)
    flags: list[str] = []
    published = min(v.published_at for v in alive)
    status: PriceStatus = "ok" if len(alive) == len(verdicts) else "degraded"
    if status == "degraded":
        dropped = [f"{v.source} ({v.reason})" for v in verdicts if not v.used]
        flags.append("dropped: " + "; ".join(dropped))

    if previous is not None and previous.price is not None:
        move = price / previous.price - 1.0
        if abs(move) > pol.jump_threshold:
            confirming = previous.pending is not None and abs(price / previous.pending - 1.0) <= pol.max_deviation
            count = previous.pending_count + 1 if confirming else 1
            if count >= pol.jump_confirmations:
                flags.append(f"jump of {move:+.2%} confirmed over {count} snapshots")
            else:
                flags.append(
                    f"frozen: jump of {move:+.2%} from {previous.price:.8g} exceeds {pol.jump_threshold:.0%}; "
                    f"held at the previous price until seen {pol.jump_confirmations} times ({count} so far)"
                )
                return AggregatedPrice(
                    asset=asset, quote=quote, as_of=now, price=previous.price, status="frozen",
                    dispersion=max(dispersion, abs(move)), sources=tuple(verdicts), flags=tuple(flags),
                    published_at=previous.published_at, pending=price, pending_count=count,
                )
    if pol.peg is not None and abs(price / pol.peg - 1.0) > pol.peg_tolerance:
        flags.append(f"depeg: {price:.6g} is {price / pol.peg - 1.0:+.2%} from its peg {pol.peg:g}")
        if status == "ok":
            status = "degraded"
    return AggregatedPrice(
        asset=asset, quote=quote, as_of=now, price=price, status=status, dispersion=dispersion,
        sources=tuple(verdicts), flags=tuple(flags), published_at=published,
    )


def compute_cross(base: AggregatedPrice, quote_leg: AggregatedPrice) -> AggregatedPrice:
    """base.asset / quote_leg.quote from base (X/Y) and quote_leg (Y/Z): the worse status, added dispersions."""
    if base.quote != quote_leg.asset:
        raise ValueError(f"cannot chain {base.name} with {quote_leg.name}")
    order: dict[PriceStatus, int] = {"ok": 0, "degraded": 1, "frozen": 2, "failed": 3}
    status = max(base.status, quote_leg.status, key=lambda s: order[s])
    price = None if base.price is None or quote_leg.price is None else base.price * quote_leg.price
    if price is None:
        status = "failed"
    flags = tuple(f"{base.name}: {f}" for f in base.flags) + tuple(f"{quote_leg.name}: {f}" for f in quote_leg.flags)
    published = [p for p in (base.published_at, quote_leg.published_at) if p is not None]
    return AggregatedPrice(
        asset=base.asset, quote=quote_leg.quote, as_of=max(base.as_of, quote_leg.as_of), price=price, status=status,
        dispersion=base.dispersion + quote_leg.dispersion, sources=base.sources + quote_leg.sources,
        flags=(f"cross of {base.name} and {quote_leg.name}", *flags),
        published_at=min(published) if published else None,
    )
