"""Chainlink price feeds: latestRoundData with the feed's decimals, validated before any price is used.

A round is rejected when its answer is not positive, when it sits at the aggregator's min or max answer (the
aggregator clamps a price it cannot report to those bounds, so a pinned answer is not the market), when it never
completed (updatedAt 0: the all-zero round), or when it comes from the future. It is stale when older than the
feed's heartbeat with a small allowance, measured against the timestamp of the block the round was read at, so a
snapshot's staleness does not depend on when it is looked at. On an L2 with a sequencer-uptime feed, every price
is rejected while the sequencer is down or within the grace period after it came back (Chainlink's guidance:
prices during and right after an outage may not reflect the market, and liquidations would be unfair).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Annotated, Literal

from pydantic import Field
from web3.types import BlockIdentifier

from chains.client import ChainClient
from chains.config import PriceFeed, SequencerUptimeFeed
from chains.decoding import ContractOutput, parse_result, parse_single
from chains.errors import ChainError
from chains.multicall import BLOCK_CALLS, ContractCall, compute_block_calls, fetch_aggregate3
from oracles.observations import PriceObservation, SequencerStatus, from_unix, observation_from_chainlink_round
from risk_core.schema.market import SourceStatus
from venue_http import SourceError

# Chainlink updates land a little after the heartbeat (up to 3720 s observed on ETH/USD's 3600 s heartbeat).
HEARTBEAT_ALLOWANCE = 1.1
LATEST_ROUND_DATA = ("latestRoundData()", ("uint80", "int256", "uint256", "uint256", "uint80"))
DECIMALS = ("decimals()", ("uint8",))
SEQUENCER_UP = 0
SEQUENCER_DOWN = 1


class ChainlinkRound(ContractOutput):
    round_id: Annotated[int, Field(ge=0)]
    answer: int
    started_at: Annotated[int, Field(ge=0)]
    updated_at: Annotated[int, Field(ge=0)]
    answered_in_round: Annotated[int, Field(ge=0)]


@dataclass(frozen=True)
class FeedVerdict:
    """A feed's latest round judged at a point in time: the price when usable, else why not."""

    asset: str
    status: Literal["ok", "stale", "failed"]
    price: float | None  # answer / 10**decimals, set only when status is "ok"
    reason: str | None
    round: ChainlinkRound | None
    updated_at: datetime | None

    def source_status(self, *, chain: str) -> SourceStatus:
        return SourceStatus(
            name=f"chainlink:{self.asset}@{chain}", status=self.status, reason=self.reason, as_of=self.updated_at,
            asset=self.asset,
        )


def compute_feed_verdict(
    round_data: ChainlinkRound,
    *,
    asset: str,
    decimals: int,
    heartbeat_seconds: int,
    min_answer: int,
    max_answer: int,
    now: int,
) -> FeedVerdict:
    """Judge one round at unix time `now` (pure)."""
    updated = datetime.fromtimestamp(round_data.updated_at, UTC) if round_data.updated_at else None

    def verdict(status: Literal["ok", "stale", "failed"], reason: str | None) -> FeedVerdict:
        price = round_data.answer / 10**decimals if status == "ok" else None
        return FeedVerdict(asset=asset, status=status, price=price, reason=reason, round=round_data, updated_at=updated)

    if round_data.updated_at == 0:
        return verdict("failed", f"round {round_data.round_id} never completed (updatedAt 0)")
    if round_data.answer <= 0:
        return verdict("failed", f"answer {round_data.answer} is not positive")
    if round_data.answer <= min_answer:
        return verdict("failed", f"answer {round_data.answer} is pinned at the feed's minimum {min_answer}")
    if round_data.answer >= max_answer:
        return verdict("failed", f"answer {round_data.answer} is pinned at the feed's maximum {max_answer}")
    age = now - round_data.updated_at
    if age < 0:
        return verdict("failed", f"updated {-age} s in the future of the block it was read at")
    if age > heartbeat_seconds * HEARTBEAT_ALLOWANCE:
        return verdict("stale", f"{age} s old, heartbeat {heartbeat_seconds} s")
    return verdict("ok", None)


def compute_sequencer_rejection(round_data: ChainlinkRound, *, grace_period_seconds: int, now: int) -> str | None:
    """Why an L2's prices cannot be used now, or None when the sequencer has been up past its grace period."""
    if round_data.answer == SEQUENCER_DOWN:
        return "L2 sequencer is down"
    if round_data.answer != SEQUENCER_UP:
        return f"sequencer-uptime feed answers {round_data.answer}, neither up (0) nor down (1)"
    if round_data.started_at == 0:
        return "sequencer-uptime feed has no valid round (startedAt 0)"
    up_for = now - round_data.started_at
    if up_for <= grace_period_seconds:
        return f"L2 sequencer back up {up_for} s ago, within its {grace_period_seconds} s grace period"
    return None


def compute_chain_verdicts(
    rounds: Sequence[tuple[PriceFeed, ChainlinkRound, int]],
    *,
    sequencer: tuple[SequencerUptimeFeed, ChainlinkRound] | None,
    now: int,
) -> list[FeedVerdict]:
    """Every feed of a chain judged at `now`, the sequencer's state applied to all (pure)."""
    sequencer_rejection = (
        compute_sequencer_rejection(sequencer[1], grace_period_seconds=sequencer[0].grace_period_seconds, now=now)
        if sequencer is not None
        else None
    )
    verdicts = []
    for feed, round_data, decimals in rounds:
        verdict = compute_feed_verdict(
            round_data,
            asset=feed.asset,
            decimals=decimals,
            heartbeat_seconds=feed.heartbeat_seconds,
            min_answer=feed.min_answer,
            max_answer=feed.max_answer,
            now=now,
        )
        if sequencer_rejection is not None and verdict.status != "failed":
            verdict = FeedVerdict(
                asset=verdict.asset,
                status="failed",
                price=None,
                reason=sequencer_rejection,
                round=verdict.round,
                updated_at=verdict.updated_at,
            )
        verdicts.append(verdict)
    return verdicts


def read(target: str, function: tuple[str, tuple[str, ...]]) -> ContractCall:
    signature, outputs = function
    return ContractCall(target, signature, (), outputs)


@dataclass(frozen=True)
class ChainlinkSnapshot:
    chain: str
    block: int | None
    timestamp: datetime | None
    verdicts: list[FeedVerdict]

    @property
    def prices(self) -> dict[str, float]:
        """The usable prices only, by asset."""
        return {v.asset: v.price for v in self.verdicts if v.price is not None}


async def _read_feeds(client: ChainClient, block_identifier: BlockIdentifier) -> tuple[
    int, int, list[tuple[PriceFeed, ChainlinkRound, int]], ChainlinkRound | None
]:
    """(block, its timestamp, each feed's latest round and decimals, the sequencer feed's round or None): every
    feed of the client's chain in one Multicall3 batch pinned to one block.

    Raises:
        ChainError: the chain cannot be read.
    """
    chain = client.config
    calls: list[ContractCall] = compute_block_calls(chain.multicall3)
    for feed in chain.price_feeds:
        calls += [read(feed.address, LATEST_ROUND_DATA), read(feed.address, DECIMALS)]
    if chain.sequencer_uptime_feed is not None:
        calls.append(read(chain.sequencer_uptime_feed.address, LATEST_ROUND_DATA))
    results = await fetch_aggregate3(client, calls, block_identifier=block_identifier)
    block, now = (parse_single(result, int) for result in results[:2])
    feed_results = results[BLOCK_CALLS:]
    rounds = [
        (feed, parse_result(ChainlinkRound, feed_results[2 * i]), parse_single(feed_results[2 * i + 1], int))
        for i, feed in enumerate(chain.price_feeds)
    ]
    sequencer = parse_result(ChainlinkRound, results[-1]) if chain.sequencer_uptime_feed is not None else None
    return block, now, rounds, sequencer


async def fetch_chainlink_prices(
    client: ChainClient, *, block_identifier: BlockIdentifier = "latest"
) -> ChainlinkSnapshot:
    """Every feed of the client's chain (and its sequencer feed) in one Multicall3 batch, judged at that block.
    Never raises for the chain's sake: a chain that cannot be read gives a failed verdict per feed."""
    chain = client.config
    try:
        block, now, rounds, sequencer_round = await _read_feeds(client, block_identifier)
        sequencer = (
            (chain.sequencer_uptime_feed, sequencer_round)
            if chain.sequencer_uptime_feed is not None and sequencer_round is not None
            else None
        )
    except ChainError as e:
        failed = [
            FeedVerdict(asset=feed.asset, status="failed", price=None, reason=str(e), round=None, updated_at=None)
            for feed in chain.price_feeds
        ]
        return ChainlinkSnapshot(chain=chain.name, block=None, timestamp=None, verdicts=failed)
    return ChainlinkSnapshot(
        chain=chain.name,
        block=block,
        timestamp=datetime.fromtimestamp(now, UTC),
        verdicts=compute_chain_verdicts(rounds, sequencer=sequencer, now=now),
    )


def compute_chainlink_observations(
    chain: str,
    rounds: Sequence[tuple[PriceFeed, ChainlinkRound, int]],
    *,
    sequencer: ChainlinkRound | None,
    block: int,
    block_timestamp: int,
    age_at_block_onto: datetime | None = None,
) -> list[PriceObservation]:
    """Every feed's round as a `PriceObservation` of source `chainlink@CHAIN` (pure), unjudged: the aggregation
    policy judges it (bounds, completeness, staleness, the sequencer) beside the other sources.

    `age_at_block_onto`: for chains whose clock is not the service's (the demo's replayed market beside live devnet
    chains), a round's age is its age at the block it was read at, and its timestamps (and the sequencer's) are
    moved onto that time; the raw figures keep the chain's own. None (production): the chain's timestamps as
    they are."""
    shift = timedelta(0) if age_at_block_onto is None else age_at_block_onto - from_unix(block_timestamp)
    status = None
    if sequencer is not None:
        # anything but an explicit "up" (0) with a valid start reads as down
        up = sequencer.answer == SEQUENCER_UP and sequencer.started_at > 0
        status = SequencerStatus(up=up, since=from_unix(sequencer.started_at) + shift)
    out = []
    for feed, round_data, decimals in rounds:
        obs = observation_from_chainlink_round(
            source=f"chainlink@{chain}", asset=feed.asset, quote="USD", round_id=round_data.round_id,
            answer=round_data.answer, started_at=round_data.started_at, updated_at=round_data.updated_at,
            answered_in_round=round_data.answered_in_round, decimals=decimals,
            heartbeat_s=feed.heartbeat_seconds, min_answer=feed.min_answer, max_answer=feed.max_answer,
            sequencer=status,
        )
        raw = {**obs.raw, "feed": feed.address, "block": str(block), "blockTimestamp": str(block_timestamp)}
        if age_at_block_onto is not None:
            raw["clock"] = "age at the block read, moved onto the service's clock"
        out.append(replace(obs, published_at=obs.published_at + shift, raw=raw))
    return out


async def fetch_chainlink_observations(
    client: ChainClient, *, block_identifier: BlockIdentifier = "latest", age_at_block_onto: datetime | None = None
) -> list[PriceObservation]:
    """Every price feed of the client's chain (and its sequencer-uptime feed) read in one Multicall3 batch pinned to
    one block, as observations for the aggregation policy (see `compute_chainlink_observations`).

    Raises:
    SourceError: the chain cannot be read (the market snapshot makes it this source's failed fetch)."""
    chain = client.config
    try:
        block, now, rounds, sequencer = await _read_feeds(client, block_identifier)
    except ChainError as e:
        raise SourceError(f"chainlink@{chain.name}: {e}") from e
    return compute_chainlink_observations(
        chain.name, rounds, sequencer=sequencer, block=block, block_timestamp=now, age_at_block_onto=age_at_block_onto
    )
