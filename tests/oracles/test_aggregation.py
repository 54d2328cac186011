"""The aggregation policy rule by rule, on hand-made observations whose outcome is worked out here."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from oracles.aggregation import AggregationPolicy, compute_aggregate, compute_cross
from oracles.observations import (
    PriceObservation,
    SequencerStatus,
    normalize_exponent,
    normalize_fixed_point,
    observation_from_chainlink_round,
    observation_from_pyth,
)

NOW = datetime(2026, 1, 5, 15, 33, 29, tzinfo=UTC)


def obs(source: str, price: float, *, age_s: float = 10.0, heartbeat_s: float = 60.0, **kw: object) -> PriceObservation:
    return PriceObservation(
        source=source, asset="BTC", price=price, published_at=NOW - timedelta(seconds=age_s),
        heartbeat_s=heartbeat_s, **kw,  # type: ignore[arg-type]
    )


def test_normalisation_is_exact() -> None:
    assert normalize_fixed_point(229750276106, 8) == 2297.50276106
    assert normalize_fixed_point(999692734093987600, 18) == 0.9996927340939876
    assert normalize_exponent(9564181266289, -8) == 95641.81266289
    assert normalize_exponent(3271124147, -8) == 32.71124147
    assert normalize_exponent(123, 2) == 12300.0


def test_chainlink_round_and_pyth_price_become_observations() -> None:
    o = observation_from_chainlink_round(
        source="chainlink", asset="ETH", quote="USD", round_id=110680464442257320802, answer=229750276106,
        started_at=1706558123, updated_at=1706558123, answered_in_round=110680464442257320802, decimals=8,
        heartbeat_s=3600, min_answer=1, max_answer=95780971304118053647396689196894323976171195136475135,
    )
    assert o.price == 2297.50276106 and o.round_complete
    assert o.published_at == datetime(2024, 1, 29, 19, 55, 23, tzinfo=UTC)
    assert o.min_price == 1e-8
    p = observation_from_pyth(source="pyth", asset="BTC", price=9564181266289, conf=3271124147, expo=-8,
                              publish_time=1739872176, heartbeat_s=60)
    assert p.price == 95641.81266289 and p.confidence == 32.71124147


def test_median_of_agreeing_sources_with_their_spread() -> None:
    agg = compute_aggregate([obs("a", 100.0), obs("b", 101.0), obs("c", 100.4)], asset="BTC", now=NOW)
    assert agg.status == "ok" and agg.price == 100.4
    assert agg.dispersion == pytest.approx(1.0 / 100.4)
    assert agg.published_at == NOW - timedelta(seconds=10)
    assert all(v.used for v in agg.sources)


def test_even_count_takes_the_middle_two() -> None:
    agg = compute_aggregate([obs("a", 100.0), obs("b", 101.0)], asset="BTC", now=NOW)
    assert agg.price == 100.5


@pytest.mark.parametrize(
    ("bad", "status", "words"),
    [
        (obs("x", 0.0), "failed", "non-positive"),
        (obs("x", -5.0), "failed", "non-positive"),
        (obs("x", 100.2, age_s=67.0), "stale", "67 s old, over heartbeat 60 s x 1.1"),
        (obs("x", 100.2, age_s=-120.0), "failed", "in the future"),
        (obs("x", 100.2, min_price=100.15), "failed", "pinned at the feed's minimum"),
        (obs("x", 100.2, max_price=100.25), "failed", "pinned at the feed's maximum"),
        (obs("x", 100.2, confidence=2.5), "failed", "confidence 2.50% of price over 2.00%"),
        (obs("x", 100.2, round_complete=False), "stale", "round not complete"),
        (obs("x", 100.2, sequencer=SequencerStatus(up=False, since=NOW - timedelta(minutes=5))), "failed",
         "sequencer down"),
        (obs("x", 100.2, sequencer=SequencerStatus(up=True, since=NOW - timedelta(minutes=20))), "stale",
         "back up only 1200 s ago (grace period 3600 s)"),
    ],
)
def test_each_rule_drops_the_bad_source_and_names_why(bad: PriceObservation, status: str, words: str) -> None:
    agg = compute_aggregate([obs("a", 100.0), obs("b", 100.4), bad], asset="BTC", now=NOW)
    assert agg.status == "degraded" and agg.price == 100.2
    verdict = next(v for v in agg.sources if v.source == "x")
    assert not verdict.used and verdict.status == status and verdict.reason is not None and words in verdict.reason
    assert any(words in f for f in agg.flags)


def test_a_feed_inside_its_bounds_and_an_old_sequencer_restart_are_fine() -> None:
    good = obs("x", 100.2, min_price=1.0, max_price=1e6, confidence=0.05,
               sequencer=SequencerStatus(up=True, since=NOW - timedelta(hours=2)))
    agg = compute_aggregate([obs("a", 100.0), obs("b", 100.4), good], asset="BTC", now=NOW)
    assert agg.status == "ok" and all(v.used for v in agg.sources)


def test_quorum_failure_gives_no_price() -> None:
    agg = compute_aggregate([obs("a", 100.0), obs("b", 0.0)], asset="BTC", now=NOW)
    assert agg.status == "failed" and agg.price is None
    assert "quorum not met: 1 valid of 2 sources, 2 required" in agg.flags[0]


def test_outlier_rejected_and_median_retaken() -> None:
    agg = compute_aggregate([obs("a", 100.0), obs("b", 100.6), obs("c", 130.0)], asset="BTC", now=NOW)
    # first median 100.6; 130 is +29.2% away; the median of the other two is 100.3
    assert agg.price == pytest.approx(100.3) and agg.status == "degraded"
    c = next(v for v in agg.sources if v.source == "c")
    assert not c.used and c.reason is not None and c.reason.startswith("outlier: +29.22%")


def test_two_disagreeing_sources_fail_rather_than_pick_one() -> None:
    agg = compute_aggregate([obs("a", 100.0), obs("b", 130.0)], asset="BTC", now=NOW)
    assert agg.price is None and agg.status == "failed"
    assert "after outlier rejection" in agg.flags[0]


def test_jump_freezes_then_confirms() -> None:
    policy = AggregationPolicy(jump_threshold=0.15, jump_confirmations=3)
    first = compute_aggregate([obs("a", 100.0), obs("b", 100.0)], asset="BTC", now=NOW, policy=policy)
    jumped = compute_aggregate([obs("a", 80.0), obs("b", 80.2)], asset="BTC", now=NOW, policy=policy, previous=first)
    assert jumped.status == "frozen" and jumped.price == 100.0
    assert jumped.pending == pytest.approx(80.1) and jumped.pending_count == 1
    assert jumped.dispersion == pytest.approx(0.199)  # the unconfirmed move widens the scan range
    second = compute_aggregate([obs("a", 80.1), obs("b", 80.3)], asset="BTC", now=NOW, policy=policy, previous=jumped)
    assert second.status == "frozen" and second.price == 100.0 and second.pending_count == 2
    third = compute_aggregate([obs("a", 80.0), obs("b", 80.4)], asset="BTC", now=NOW, policy=policy, previous=second)
    assert third.status == "ok" and third.price == pytest.approx(80.2)
    assert "confirmed over 3 snapshots" in third.flags[0]


def test_a_jump_that_reverts_is_never_taken() -> None:
    policy = AggregationPolicy(jump_threshold=0.15)
    first = compute_aggregate([obs("a", 100.0), obs("b", 100.0)], asset="BTC", now=NOW, policy=policy)
    spike = compute_aggregate([obs("a", 130.0), obs("b", 130.0)], asset="BTC", now=NOW, policy=policy, previous=first)
    back = compute_aggregate([obs("a", 100.5), obs("b", 100.5)], asset="BTC", now=NOW, policy=policy, previous=spike)
    assert spike.price == 100.0 and back.price == 100.5 and back.status == "ok"


def test_statuses_for_the_snapshot() -> None:
    agg = compute_aggregate([obs("a", 100.0), obs("b", 100.4), obs("x", 0.0)], asset="BTC", now=NOW)
    statuses = {s.name: s for s in agg.source_statuses()}
    assert statuses["price:BTC/USD"].status == "ok"
    assert statuses["price:BTC/USD"].reason is not None
    assert statuses["price:BTC/USD"].reason.startswith("degraded: median of 2/3 sources (a, b)")
    assert statuses["x:BTC/USD"].status == "failed"
    assert statuses["a:BTC/USD"].reason == "used at 100"


def test_cross_rate_chains_prices_and_keeps_the_worse_status() -> None:
    steth = [PriceObservation(source=s, asset="stETH", quote="ETH", price=p, published_at=NOW, heartbeat_s=86400)
             for s, p in (("chainlink", 0.95), ("curve", 0.951))]
    eth = [PriceObservation(source=s, asset="ETH", price=p, published_at=NOW, heartbeat_s=3600)
           for s, p in (("pyth", 2000.0), ("deribit", 2002.0))]
    base = compute_aggregate(steth, asset="stETH", quote="ETH", now=NOW,
                             policy=AggregationPolicy(peg=1.0, peg_tolerance=0.01))
    usd = compute_cross(base, compute_aggregate(eth, asset="ETH", now=NOW))
    assert usd.name == "stETH/USD" and usd.price == pytest.approx(0.9505 * 2001.0)
    assert usd.status == "degraded" and any("depeg" in f for f in usd.flags)
    with pytest.raises(ValueError, match="cannot chain"):
        compute_cross(usd, base)
