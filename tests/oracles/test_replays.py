"""Replays of real oracle failure modes through the policy and into the snapshot.

Each one asserts that the snapshot never carries the bad value silently: either the bad source is dropped (and the
snapshot says so), or the price is held or absent with a `stale`/`failed` status naming the reason.

Recorded data (reference_data/market/chainlink/, read here): the all-zero invalid round at the end of the ETH/USD and
BTC/USD files; stETH/ETH daily rounds through the June 2022 depeg (low 0.935 on 2022-06-18); ETH/USD rounds for
the L2 case. Reconstructed events (figures from the public post-mortems, not recorded feeds):
- Compound, 26 Nov 2020: Coinbase Pro printed DAI at ~$1.30 for about an hour and Compound's single-reporter
  oracle used it, liquidating ~$89M.
- Venus, 12-13 May 2022: Chainlink's LUNA/USD aggregator stopped at its minAnswer floor of $0.10 while LUNA traded
  near $0.01; borrowers posted LUNA at 10x its price.
"""

from __future__ import annotations

import csv
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

import reference_data
from oracles.aggregation import AggregatedPrice, AggregationPolicy, compute_aggregate, compute_cross
from oracles.observations import (
    PriceObservation,
    SequencerStatus,
    from_unix,
    observation_from_chainlink_round,
)
from oracles.snapshot import compute_market_snapshot

DATA = reference_data.path("market")
CHAINLINK = DATA / "chainlink"
ETH_USD = CHAINLINK / "chainlink_eth_usd_mainnet_0x5f4eC3Df9cbd43714FE2740f5E3616155c5b8419.csv"
BTC_USD = CHAINLINK / "chainlink_btc_usd_mainnet_0xF4030086522a5bEEa4988F8cA5B36dbC97BeE88c.csv"
STETH_ETH = CHAINLINK / "chainlink_steth_eth_mainnet_0x86392dC19c0b719886221c78AB11eb8Cf5c52812.csv"
ETH_DAILY = DATA / "prices" / "coingecko_eth-usd-max.csv"


HEARTBEAT_USD = 3600.0
HEARTBEAT_STETH = 86400.0


def rounds(path: Path) -> list[dict[str, int]]:
    """The file's rounds, oldest first. Round ids are uint80: read as text, parsed as Python ints."""
    with path.open(newline="") as f:
        rows = [
            {"round": int(r["round"]), "answer": int(r["answer"]), "start": int(r["start"]),
             "update": int(r["update"]), "answeredInRound": int(r["answeredInRound"])}
            for r in csv.DictReader(f)
        ]
    return sorted(rows, key=lambda r: (r["update"], r["round"]))


def chainlink(row: dict[str, int], *, asset: str, quote: str = "USD", decimals: int = 8,
              heartbeat_s: float = HEARTBEAT_USD, source: str = "chainlink",
              sequencer: SequencerStatus | None = None) -> PriceObservation:
    return observation_from_chainlink_round(
        source=source, asset=asset, quote=quote, round_id=row["round"], answer=row["answer"], started_at=row["start"],
        updated_at=row["update"], answered_in_round=row["answeredInRound"], decimals=decimals,
        heartbeat_s=heartbeat_s, sequencer=sequencer,
    )


def other(source: str, asset: str, price: float, at: datetime, heartbeat_s: float = 60.0) -> PriceObservation:
    return PriceObservation(source=source, asset=asset, price=price, published_at=at, heartbeat_s=heartbeat_s)


def spot_and_status(asset: str, agg: AggregatedPrice) -> tuple[float | None, dict[str, tuple[str, str | None]]]:
    snap = compute_market_snapshot(as_of=agg.as_of, prices={asset: agg}, surfaces={})
    return snap.spot.get(asset), {s.name: (s.status, s.reason) for s in snap.sources}


@pytest.mark.parametrize(("path", "asset"), [(ETH_USD, "ETH"), (BTC_USD, "BTC")])
def test_all_zero_invalid_round(path: Path, asset: str) -> None:
    rows = rounds(path)
    zero = next(r for r in rows if r["answer"] == 0)
    assert zero == {"round": zero["round"], "answer": 0, "start": 0, "update": 0, "answeredInRound": zero["round"]}
    last_good = rows[-1]
    now = from_unix(last_good["update"] + 30)
    good_price = last_good["answer"] / 1e8
    observations = [
        chainlink(zero, asset=asset),
        other("pyth", asset, good_price * 1.0004, now - timedelta(seconds=2)),
        other("deribit-index", asset, good_price * 0.9998, now - timedelta(seconds=1)),
    ]
    agg = compute_aggregate(observations, asset=asset, now=now)
    spot, statuses = spot_and_status(asset, agg)
    assert spot == pytest.approx(good_price * 1.0001)
    assert statuses[f"chainlink:{asset}/USD"] == ("failed", "non-positive price 0")
    assert statuses[f"price:{asset}/USD"][0] == "ok"
    assert "dropped: chainlink (non-positive price 0)" in (statuses[f"price:{asset}/USD"][1] or "")

    alone = compute_aggregate([chainlink(zero, asset=asset)], asset=asset, now=now,
                              policy=AggregationPolicy(quorum=1))
    spot, statuses = spot_and_status(asset, alone)
    assert spot is None
    assert statuses[f"price:{asset}/USD"][0] == "failed"


def test_steth_depeg_is_priced_at_market_and_flagged() -> None:
    steth = rounds(STETH_ETH)
    with ETH_DAILY.open(newline="") as f:
        eth_close = {r["snapped_at"][:10]: float(r["price"]) for r in csv.DictReader(f)}
    policy = AggregationPolicy(quorum=1, peg=1.0, peg_tolerance=0.01, jump_threshold=0.15)
    previous = None
    depegged_days = 0
    checked_low = False
    for row in steth:
        now = from_unix(row["update"] + 60)
        agg = compute_aggregate([chainlink(row, asset="stETH", quote="ETH", decimals=18,
                                           heartbeat_s=HEARTBEAT_STETH)],
                                asset="stETH", quote="ETH", now=now, policy=policy, previous=previous)
        answer = row["answer"] / 1e18
        assert agg.status != "frozen" and agg.price == pytest.approx(answer, rel=1e-15)
        off_peg = abs(answer - 1.0) > 0.01
        assert any("depeg" in f for f in agg.flags) == off_peg
        depegged_days += off_peg
        previous = agg
        if now.date().isoformat() == "2022-06-18":
            day = now.date().isoformat()
            eth = compute_aggregate(
                [other("coingecko", "ETH", eth_close[day], now), other("pyth", "ETH", eth_close[day] * 1.001, now)],
                asset="ETH", now=now,
            )
            usd = compute_cross(agg, eth)
            snap = compute_market_snapshot(as_of=now, prices={"stETH": usd, "ETH": eth}, surfaces={})
            assert answer == pytest.approx(0.93501933)
            assert snap.spot["stETH"] == pytest.approx(0.93501933 * eth_close[day] * 1.0005)
            assert snap.spot["stETH"] < 0.94 * snap.spot["ETH"]  # never the peg
            reason = next(s.reason for s in snap.sources if s.name == "price:stETH/USD") or ""
            assert "depeg: 0.935019 is -6.50% from its peg 1" in reason
            checked_low = True
    assert checked_low
    assert 30 < depegged_days < len(steth)


def test_single_source_outlier_compound_dai_2020() -> None:
    now = datetime(2020, 11, 26, 9, 0, tzinfo=UTC)
    policy = AggregationPolicy(quorum=2, max_deviation=0.01, jump_threshold=0.05, peg=1.0, peg_tolerance=0.02)
    before = compute_aggregate(
        [other("coinbase", "DAI", 1.0012, now), other("chainlink", "DAI", 1.0009, now, 3600),
         other("uniswap-twap", "DAI", 1.0006, now, 600)],
        asset="DAI", now=now, policy=policy,
    )
    spike_time = now + timedelta(minutes=5)
    spike = [other("coinbase", "DAI", 1.30, spike_time), other("chainlink", "DAI", 1.0011, spike_time, 3600),
             other("uniswap-twap", "DAI", 1.0008, spike_time, 600)]
    agg = compute_aggregate(spike, asset="DAI", now=spike_time, policy=policy, previous=before)
    spot, statuses = spot_and_status("DAI", agg)
    assert spot == pytest.approx((1.0011 + 1.0008) / 2)
    status, reason = statuses["coinbase:DAI/USD"]
    assert status == "failed" and reason is not None and reason.startswith("outlier: +29.")

    # Compound's own set-up: one reporter. The same print is a 30% jump for a stablecoin: frozen, flagged, and the
    # scan range widened by the unconfirmed move.
    single = AggregationPolicy(quorum=1, jump_threshold=0.05, peg=1.0, peg_tolerance=0.02)
    prev = compute_aggregate([other("coinbase", "DAI", 1.0012, now)], asset="DAI", now=now, policy=single)
    agg = compute_aggregate([other("coinbase", "DAI", 1.30, spike_time)], asset="DAI", now=spike_time,
                            policy=single, previous=prev)
    snap = compute_market_snapshot(as_of=spike_time, prices={"DAI": agg}, surfaces={})
    assert snap.spot["DAI"] == 1.0012
    assert snap.dispersion["DAI"] == pytest.approx(1.30 / 1.0012 - 1.0)
    price_status = next(s for s in snap.sources if s.name == "price:DAI/USD")
    assert price_status.status == "stale" and "frozen: jump of +29.84%" in (price_status.reason or "")


def test_bound_pinned_answer_venus_luna_2022() -> None:
    now = datetime(2022, 5, 13, 6, 0, tzinfo=UTC)
    min_answer = 10_000_000  # $0.10 at 8 decimals
    pinned = observation_from_chainlink_round(
        source="chainlink", asset="LUNA", quote="USD", round_id=2**64 + 9000, answer=min_answer,
        started_at=int(now.timestamp()) - 600, updated_at=int(now.timestamp()) - 600,
        answered_in_round=2**64 + 9000, decimals=8, heartbeat_s=3600, min_answer=min_answer,
        max_answer=100_000_000_000_000,
    )
    market = [other("pyth", "LUNA", 0.0105, now - timedelta(seconds=3)),
              other("hyperliquid-oracle", "LUNA", 0.0112, now - timedelta(seconds=5))]
    agg = compute_aggregate([pinned, *market], asset="LUNA", now=now, policy=AggregationPolicy(max_deviation=0.1))
    spot, statuses = spot_and_status("LUNA", agg)
    assert spot == pytest.approx(0.01085)
    assert statuses["chainlink:LUNA/USD"] == ("failed", "pinned at the feed's minimum 0.1")

    alone = compute_aggregate([pinned], asset="LUNA", now=now, policy=AggregationPolicy(quorum=1))
    spot, statuses = spot_and_status("LUNA", alone)
    assert spot is None and statuses["price:LUNA/USD"][0] == "failed"


def test_stale_l2_feed_behind_a_downed_sequencer() -> None:
    row = rounds(ETH_USD)[5000]
    updated = from_unix(row["update"])
    price = row["answer"] / 1e8
    now = updated + timedelta(hours=2)  # past the 1 h heartbeat (x 1.1)
    down = SequencerStatus(up=False, since=updated + timedelta(minutes=50))
    l2 = chainlink(row, asset="ETH", source="chainlink@arbitrum", sequencer=down)
    market = [other("pyth", "ETH", price * 1.012, now - timedelta(seconds=1)),
              other("deribit-index", "ETH", price * 1.011, now - timedelta(seconds=1))]
    agg = compute_aggregate([l2, *market], asset="ETH", now=now)
    spot, statuses = spot_and_status("ETH", agg)
    assert spot == pytest.approx(price * 1.0115)
    status, reason = statuses["chainlink@arbitrum:ETH/USD"]
    assert status == "failed" and reason == f"L2 sequencer down since {down.since.isoformat()}"

    # back up 10 minutes ago, and the feed has updated since: still inside the grace period, still not used
    fresh = dict(row, update=int((now - timedelta(seconds=30)).timestamp()))
    back = SequencerStatus(up=True, since=now - timedelta(minutes=10))
    agg = compute_aggregate([chainlink(fresh, asset="ETH", source="chainlink@arbitrum", sequencer=back), *market],
                            asset="ETH", now=now)
    verdict = next(v for v in agg.sources if v.source == "chainlink@arbitrum")
    assert not verdict.used and verdict.status == "stale" and "grace period 3600 s" in (verdict.reason or "")

    # the same feed alone: no price at all
    alone = compute_aggregate([l2], asset="ETH", now=now, policy=AggregationPolicy(quorum=1))
    spot, statuses = spot_and_status("ETH", alone)
    assert spot is None and statuses["price:ETH/USD"][0] == "failed"
    # and with the sequencer up, the 2-hour-old answer is stale on its own account
    stale = compute_aggregate([chainlink(row, asset="ETH", source="chainlink@arbitrum")], asset="ETH", now=now,
                              policy=AggregationPolicy(quorum=1))
    assert stale.price is None and "7200 s old, over heartbeat 3600 s x 1.1" in (stale.sources[0].reason or "")
