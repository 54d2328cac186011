"""Chainlink validation on real mainnet rounds (reference_data/market) and on the devnet's feeds, with real rounds
replayed into a MockV3Aggregator and the L2 sequencer-uptime feed taken down and brought back."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from support.devnet_fixtures import TEST_POLICY, load_abi
from web3 import Web3

import reference_data
from chains.client import ChainClient, make_chain_client
from devnet.run import RunningDevnet
from oracles.aggregation import AggregationPolicy, compute_aggregate
from oracles.chainlink import (
    HEARTBEAT_ALLOWANCE,
    ChainlinkRound,
    compute_feed_verdict,
    compute_sequencer_rejection,
    fetch_chainlink_observations,
    fetch_chainlink_prices,
)
from oracles.observations import PriceObservation, from_unix
from venue_http import SourceError

DATA = reference_data.path("market", "chainlink")
ETH_USD = DATA / "chainlink_eth_usd_mainnet_0x5f4eC3Df9cbd43714FE2740f5E3616155c5b8419.csv"
BTC_USD = DATA / "chainlink_btc_usd_mainnet_0xF4030086522a5bEEa4988F8cA5B36dbC97BeE88c.csv"
STETH_ETH = DATA / "chainlink_steth_eth_mainnet_0x86392dC19c0b719886221c78AB11eb8Cf5c52812.csv"
# Wide bounds like the real OCR aggregators' (min/max answer far from any market price).
USD_BOUNDS = {"min_answer": 10**6, "max_answer": 10**8 * 10**8}
STETH_BOUNDS = {"min_answer": 10**15, "max_answer": 10**20}


def load_rounds(path: Path) -> list[ChainlinkRound]:
    """The file's rounds, oldest first (the files list newest first; round ids are uint80 as text)."""
    with path.open() as f:
        rows = [row for row in csv.reader(f)][1:]
    rounds = [
        ChainlinkRound(
            round_id=int(row[1]),
            answer=int(row[2]),
            started_at=int(row[3]),
            updated_at=int(row[4]),
            answered_in_round=int(row[5]),
        )
        for row in rows
        if row
    ]
    return rounds[::-1]


def verdict(round_data: ChainlinkRound, *, now: int, heartbeat: int = 3600, decimals: int = 8, **bounds: int):  # type: ignore[no-untyped-def]
    return compute_feed_verdict(
        round_data,
        asset="ETH",
        decimals=decimals,
        heartbeat_seconds=heartbeat,
        **(bounds or USD_BOUNDS),
        now=now,
    )


@pytest.mark.parametrize("path", [ETH_USD, BTC_USD], ids=["ETH/USD", "BTC/USD"])
def test_real_usd_rounds_are_fresh_until_the_next_one_and_the_zero_round_is_rejected(path: Path) -> None:
    rounds = load_rounds(path)
    zero, valid = rounds[0], rounds[1:]
    assert (zero.answer, zero.started_at, zero.updated_at) == (0, 0, 0)  # the file's last row, oldest here
    zero_verdict = verdict(zero, now=valid[0].updated_at)
    assert zero_verdict.status == "failed" and zero_verdict.price is None
    assert "never completed" in (zero_verdict.reason or "")

    # Each round judged one second before its successor arrived (or at once: some rounds share their second): a real
    # feed with its real heartbeat is never stale.
    judged = [
        verdict(older, now=max(older.updated_at, newer.updated_at - 1))
        for older, newer in zip(valid, valid[1:], strict=False)
    ]
    assert {v.status for v in judged} == {"ok"}
    assert [v.price for v in judged] == [r.answer / 1e8 for r in valid[:-1]]
    # ... and a round past its heartbeat (with the allowance) is.
    last = valid[-1]
    assert verdict(last, now=last.updated_at + int(3600 * HEARTBEAT_ALLOWANCE)).status == "ok"
    stale = verdict(last, now=last.updated_at + int(3600 * HEARTBEAT_ALLOWANCE) + 1)
    assert stale.status == "stale" and stale.price is None


def test_steth_depeg_is_a_price_not_an_oracle_fault() -> None:
    rounds = load_rounds(STETH_ETH)
    judged = [
        verdict(older, now=max(older.updated_at, newer.updated_at - 1), heartbeat=86400, decimals=18, **STETH_BOUNDS)
        for older, newer in zip(rounds, rounds[1:], strict=False)
    ]
    assert {v.status for v in judged} == {"ok"}
    low = min(judged, key=lambda v: v.price or 1.0)
    assert low.price is not None and 0.93 < low.price < 0.94
    assert low.updated_at is not None and low.updated_at.date().isoformat() == "2022-06-18"


def make_round(answer: int, *, updated_at: int = 1_700_000_000, started_at: int | None = None) -> ChainlinkRound:
    return ChainlinkRound(
        round_id=7,
        answer=answer,
        started_at=updated_at if started_at is None else started_at,
        updated_at=updated_at,
        answered_in_round=7,
    )


@pytest.mark.parametrize(
    ("answer", "status", "reason"),
    [
        (2_000 * 10**8, "ok", None),
        (0, "failed", "not positive"),
        (-5, "failed", "not positive"),
        (USD_BOUNDS["min_answer"], "failed", "minimum"),
        (USD_BOUNDS["max_answer"], "failed", "maximum"),
    ],
)
def test_answer_bounds(answer: int, status: str, reason: str | None) -> None:
    judged = verdict(make_round(answer), now=1_700_000_010)
    assert judged.status == status
    assert (judged.reason is None) if reason is None else (reason in (judged.reason or ""))


def test_round_from_the_future_is_rejected() -> None:
    assert verdict(make_round(2_000 * 10**8), now=1_699_999_000).status == "failed"


@pytest.mark.parametrize(
    ("answer", "started_ago", "rejected"),
    [(0, 7200, None), (1, 7200, "down"), (0, 600, "grace period"), (0, 3600, "grace period"), (2, 7200, "neither")],
)
def test_sequencer_uptime(answer: int, started_ago: int, rejected: str | None) -> None:
    now = 1_700_000_000
    reason = compute_sequencer_rejection(
        make_round(answer, updated_at=now, started_at=now - started_ago), grace_period_seconds=3600, now=now
    )
    assert (reason is None) if rejected is None else (rejected in (reason or ""))
    assert compute_sequencer_rejection(make_round(0, started_at=0), grace_period_seconds=3600, now=now) is not None


async def test_devnet_feeds_are_fresh_and_priced(devnet: RunningDevnet, clients: dict[str, ChainClient]) -> None:
    for name, client in clients.items():
        snapshot = await fetch_chainlink_prices(client)
        assert {v.status for v in snapshot.verdicts} == {"ok"}, [(v.asset, v.reason) for v in snapshot.verdicts]
        assert snapshot.prices == {"ETH": 3000.0, "USDC": 1.0, "BTC": 60000.0, "WSTETH": 3500.0}, name


def feed_contract(devnet: RunningDevnet, web3s: dict[str, Web3], chain: str, address: str):  # type: ignore[no-untyped-def]
    return web3s[chain].eth.contract(
        address=Web3.to_checksum_address(address), abi=load_abi("chainlink/MockV3Aggregator.json")
    )


def transact(w3: Web3, call, devnet: RunningDevnet) -> None:  # type: ignore[no-untyped-def]
    w3.eth.wait_for_transaction_receipt(call.transact({"from": devnet.manifest.deployer}))


async def test_real_rounds_replayed_on_chain(
    devnet: RunningDevnet, clients: dict[str, ChainClient], web3s: dict[str, Web3], restore_chains: None
) -> None:
    w3 = web3s["ethereum"]
    feed = next(f for f in devnet.chains.chain("ethereum").price_feeds if f.asset == "ETH")
    contract = feed_contract(devnet, web3s, "ethereum", feed.address)
    now = w3.eth.get_block("latest")["timestamp"]
    rounds = load_rounds(ETH_USD)
    newest = rounds[-1]
    # The newest real round, shifted to the chain's clock: usable, at its real answer.
    age = 1800
    transact(w3, contract.functions.updateRoundData(newest.round_id, newest.answer, now - age, now - age), devnet)
    (eth,) = [v for v in (await fetch_chainlink_prices(clients["ethereum"])).verdicts if v.asset == "ETH"]
    assert (eth.status, eth.price) == ("ok", newest.answer / 1e8)
    # The same round two heartbeats old: stale.
    transact(w3, contract.functions.updateRoundData(newest.round_id, newest.answer, now - 7200, now - 7200), devnet)
    (eth,) = [v for v in (await fetch_chainlink_prices(clients["ethereum"])).verdicts if v.asset == "ETH"]
    assert eth.status == "stale"
    # The real all-zero round.
    zero = rounds[0]
    transact(w3, contract.functions.updateRoundData(zero.round_id, 0, 0, 0), devnet)
    (eth,) = [v for v in (await fetch_chainlink_prices(clients["ethereum"])).verdicts if v.asset == "ETH"]
    assert eth.status == "failed" and eth.price is None


async def test_l2_sequencer_down_or_in_grace_rejects_every_price(
    devnet: RunningDevnet, clients: dict[str, ChainClient], web3s: dict[str, Web3], restore_chains: None
) -> None:
    w3 = web3s["arbitrum"]
    sequencer = devnet.chains.chain("arbitrum").sequencer_uptime_feed
    assert sequencer is not None
    contract = feed_contract(devnet, web3s, "arbitrum", sequencer.address)
    now = w3.eth.get_block("latest")["timestamp"]
    transact(w3, contract.functions.updateRoundData(10, 1, now, now), devnet)  # down
    down = await fetch_chainlink_prices(clients["arbitrum"])
    assert {v.status for v in down.verdicts} == {"failed"} and down.prices == {}
    assert all("down" in (v.reason or "") for v in down.verdicts)
    transact(w3, contract.functions.updateRoundData(11, 0, now, now - 60), devnet)  # back up a minute ago
    grace = await fetch_chainlink_prices(clients["arbitrum"])
    assert grace.prices == {} and all("grace period" in (v.reason or "") for v in grace.verdicts)
    transact(w3, contract.functions.updateRoundData(12, 0, now, now - 2 * 3600), devnet)  # up for two hours
    up = await fetch_chainlink_prices(clients["arbitrum"])
    assert {v.status for v in up.verdicts} == {"ok"}
    # Ethereum has no sequencer: unaffected throughout.
    assert {v.status for v in (await fetch_chainlink_prices(clients["ethereum"])).verdicts} == {"ok"}


# --- the feeds as a market source: observations for the aggregation policy ------------------------------------


async def test_devnet_feeds_as_observations_carry_their_rounds(
    devnet: RunningDevnet, clients: dict[str, ChainClient], web3s: dict[str, Web3]
) -> None:
    observations = await fetch_chainlink_observations(clients["ethereum"])
    w3 = web3s["ethereum"]
    block = w3.eth.get_block("latest")
    assert [o.asset for o in observations] == [f.asset for f in devnet.chains.chain("ethereum").price_feeds]
    for obs, feed in zip(observations, devnet.chains.chain("ethereum").price_feeds, strict=True):
        round_id, answer, _, updated_at, _ = feed_contract(devnet, web3s, "ethereum", feed.address).functions \
            .latestRoundData().call()
        assert obs.source == "chainlink@ethereum" and obs.quote == "USD"
        assert obs.price == answer / 1e8
        assert obs.published_at == from_unix(updated_at)  # production: the chain's own timestamps
        assert obs.raw["roundId"] == str(round_id) and obs.raw["block"] == str(block["number"])
        assert obs.raw["blockTimestamp"] == str(block["timestamp"]) and "clock" not in obs.raw
        assert obs.heartbeat_s == feed.heartbeat_seconds and obs.sequencer is None and obs.round_complete
        assert (obs.min_price, obs.max_price) == (feed.min_answer / 1e8, feed.max_answer / 1e8)
    prices = {o.asset: o.price for o in observations}
    assert prices == {"ETH": 3000.0, "USDC": 1.0, "BTC": 60000.0, "WSTETH": 3500.0}
    # judged by the policy beside another source: the median, and the round shown in the source's status
    (eth,) = [o for o in observations if o.asset == "ETH"]
    other = PriceObservation(source="venue", asset="ETH", price=3030.0, published_at=eth.published_at,
                             heartbeat_s=60.0)
    agg = compute_aggregate([eth, other], asset="ETH", now=eth.published_at)
    assert (agg.status, agg.price, agg.dispersion) == ("ok", 3015.0, 30.0 / 3015.0)
    status = {s.name: s for s in agg.source_statuses()}["chainlink@ethereum:ETH/USD"]
    assert status.reason == (f"used at 3000; round {eth.raw['roundId']}, updatedAt {eth.raw['updatedAt']} "
                             f"({eth.published_at.isoformat()}), read at block {block['number']}")


async def test_observations_judged_at_their_block_on_another_clock(
    devnet: RunningDevnet, clients: dict[str, ChainClient], web3s: dict[str, Web3], restore_chains: None
) -> None:
    """A chain whose clock is not the service's (the demo): ages are taken at the block read, timestamps and the
    sequencer's moved onto the service's time, so staleness and the grace period are judged as on the chain."""
    w3 = web3s["arbitrum"]
    feed = next(f for f in devnet.chains.chain("arbitrum").price_feeds if f.asset == "ETH")
    now = w3.eth.get_block("latest")["timestamp"]
    transact(w3, feed_contract(devnet, web3s, "arbitrum", feed.address).functions.updateRoundData(
        7, 3_100 * 10**8, now - 7200, now - 7200), devnet)  # two heartbeats old
    block_time = w3.eth.get_block("latest")["timestamp"]
    service_now = from_unix(1_767_627_209)  # the demo's replayed market: 2026-01-05
    observations = await fetch_chainlink_observations(clients["arbitrum"], age_at_block_onto=service_now)
    (eth,) = [o for o in observations if o.asset == "ETH"]
    assert eth.raw["updatedAt"] == str(now - 7200) and eth.raw["blockTimestamp"] == str(block_time)
    assert (service_now - eth.published_at).total_seconds() == block_time - (now - 7200)
    assert eth.sequencer is not None and eth.sequencer.up
    assert (service_now - eth.sequencer.since).total_seconds() > 3600  # up for long, as on the chain
    agg = compute_aggregate([eth], asset="ETH", now=service_now, policy=AggregationPolicy(quorum=1))
    assert agg.price is None and agg.sources[0].status == "stale"
    assert "over heartbeat 3600" in str(agg.sources[0].reason)
    # the others, fresh at the block, are priced on the service's clock
    (btc,) = [o for o in observations if o.asset == "BTC"]
    assert compute_aggregate([btc], asset="BTC", now=service_now, policy=AggregationPolicy(quorum=1)).price == 60000.0
    # the sequencer down: every price of the chain dropped by the policy
    sequencer = devnet.chains.chain("arbitrum").sequencer_uptime_feed
    assert sequencer is not None
    transact(w3, feed_contract(devnet, web3s, "arbitrum", sequencer.address).functions.updateRoundData(
        10, 1, now, now), devnet)
    down = await fetch_chainlink_observations(clients["arbitrum"], age_at_block_onto=service_now)
    for obs in down:
        agg = compute_aggregate([obs], asset=obs.asset, now=service_now, policy=AggregationPolicy(quorum=1))
        assert agg.price is None and "L2 sequencer down" in str(agg.sources[0].reason)


async def test_an_unreachable_chain_is_a_source_error(devnet: RunningDevnet) -> None:
    config = devnet.chains.chain("ethereum").model_copy(update={"rpc_urls": ["http://127.0.0.1:9"]})
    client = await make_chain_client(config, policy=TEST_POLICY)
    try:
        with pytest.raises(SourceError, match="^chainlink@ethereum: "):
            await fetch_chainlink_observations(client)
    finally:
        await client.close()
