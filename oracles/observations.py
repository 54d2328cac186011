"""Normalised price observations: what every price source hands to the aggregation policy.

A source reports an integer and a scale (Chainlink: `answer` with the feed's `decimals`; Pyth: `price` with a
negative `expo`, `conf` sharing it) or a decimal; here it becomes one float in human units, exactly (through
`Decimal`), with everything the policy needs to judge it: when it was published, the feed's heartbeat, its
confidence, the bounds it can be pinned at, the L2 sequencer behind it and whether its round completed.

`observation_from_chainlink_round` is pure: the on-chain client (oracles/chainlink.py) and the replays of recorded
rounds build their observations with it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal


def normalize_fixed_point(value: int, decimals: int) -> float:
    """`value` x 10^-decimals, exactly rounded to the nearest float (Chainlink answers, ERC-20 amounts)."""
    return float(Decimal(value).scaleb(-decimals))


def normalize_exponent(value: int, expo: int) -> float:
    """`value` x 10^expo, exactly rounded to the nearest float (Pyth prices and confidences)."""
    return float(Decimal(value).scaleb(expo))


def from_unix(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, tz=UTC)


@dataclass(frozen=True)
class SequencerStatus:
    """An L2 sequencer uptime feed (Chainlink: answer 0 = up, 1 = down; `startedAt` = when that status began)."""

    up: bool
    since: datetime


@dataclass(frozen=True)
class PriceObservation:
    source: str  # e.g. "pyth", "chainlink@arbitrum", "deribit-index", "hyperliquid-oracle"
    asset: str
    price: float  # human units of `quote` per unit of `asset`
    published_at: datetime
    heartbeat_s: float  # the feed's own update interval: older than heartbeat x tolerance is stale
    quote: str = "USD"
    confidence: float | None = None  # absolute, in price units (Pyth conf)
    min_price: float | None = None  # the feed's bounds (Chainlink minAnswer / maxAnswer), normalised
    max_price: float | None = None
    sequencer: SequencerStatus | None = None
    round_complete: bool = True  # Chainlink: answeredInRound >= roundId
    raw: dict[str, str] = field(default_factory=dict)  # the source's own figures, for provenance


def observation_from_chainlink_round(
    *,
    source: str,
    asset: str,
    quote: str,
    round_id: int,
    answer: int,
    started_at: int,
    updated_at: int,
    answered_in_round: int,
    decimals: int,
    heartbeat_s: float,
    min_answer: int | None = None,
    max_answer: int | None = None,
    sequencer: SequencerStatus | None = None,
) -> PriceObservation:
    """One `latestRoundData()` (or recorded round) of an AggregatorV3Interface feed, normalised by `decimals`."""
    return PriceObservation(
        source=source,
        asset=asset,
        quote=quote,
        price=normalize_fixed_point(answer, decimals),
        published_at=from_unix(updated_at),
        heartbeat_s=heartbeat_s,
        min_price=None if min_answer is None else normalize_fixed_point(min_answer, decimals),
        max_price=None if max_answer is None else normalize_fixed_point(max_answer, decimals),
        sequencer=sequencer,
        round_complete=answered_in_round >= round_id and updated_at > 0,
        raw={
            "roundId": str(round_id),
            "answer": str(answer),
            "startedAt": str(started_at),
            "updatedAt": str(updated_at),
            "answeredInRound": str(answered_in_round),
            "decimals": str(decimals),
        },
    )


def observation_from_pyth(
    *, source: str, asset: str, price: int, conf: int, expo: int, publish_time: int, heartbeat_s: float
) -> PriceObservation:
    """A Pyth price (Hermes `parsed[].price` or on-chain `getPriceNoOlderThan`): price and conf share `expo`."""
    return PriceObservation(
        source=source,
        asset=asset,
        price=normalize_exponent(price, expo),
        confidence=normalize_exponent(conf, expo),
        published_at=from_unix(publish_time),
        heartbeat_s=heartbeat_s,
        raw={"price": str(price), "conf": str(conf), "expo": str(expo), "publish_time": str(publish_time)},
    )
