"""Holdings built from columns (one row per position) give the figures of the Position-object batch path."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from support.batch_books import EXPIRIES, batch_market, random_wallet

from risk_core.errors import InputError
from risk_core.margin.batch import (
    BatchMarginResult,
    collect_holdings,
    compute_batch_margin,
    compute_holdings_margin,
    holdings_from_columns,
)
from risk_core.margin.instruments import UNIT_PLACE
from risk_core.schema.params import RiskParams, default_params
from risk_core.schema.positions import Position, PositionAdapter

REL = 1e-9
ABS = 1e-6  # USD: where a figure is zero in one path, the other may carry rounding of that size
FIGURES = ("equity_usd", "collateral_usd", "risk_usd", "contingency_usd", "maintenance_margin_usd",
           "initial_margin_usd")

MARKET = batch_market()
PARAM_SETS = {
    "default": default_params(),
    "offsets": default_params().with_overrides({
        "offset_credit": {"cross_venue": 0.7, "cross_chain": 0.2},
        "cross_underlying_credit": {"BTC-ETH": 0.4},
    }),
}


def _spread_wallet() -> list[Position]:
    """One wallet over four chains, six venue-accounts: hedges split across places, so offsets matter."""
    rows: list[dict[str, Any]] = [
        {"kind": "perp", "venue": "hyperliquid", "chain": "hyperliquid", "account": "a", "underlying": "ETH",
         "quantity": -20.0, "entry_price": 2_950.0},
        {"kind": "perp", "venue": "gmx", "chain": "arbitrum", "account": "a", "underlying": "ETH", "quantity": 5.0},
        {"kind": "spot", "venue": "wallet", "chain": "ethereum", "account": "a", "asset": "ETH", "quantity": 12.0},
        {"kind": "spot", "venue": "wallet", "chain": "arbitrum", "account": "a", "asset": "ETH", "quantity": 4.0},
        {"kind": "lend", "venue": "aave-v3", "chain": "arbitrum", "account": "a", "asset": "USDC",
         "quantity": 50_000.0},
        {"kind": "borrow", "venue": "aave-v3", "chain": "arbitrum", "account": "a", "asset": "ETH", "quantity": 3.0},
        {"kind": "option", "venue": "deribit", "chain": "offchain", "account": "a", "underlying": "BTC",
         "quantity": -2.0, "option_type": "call", "strike": 100_000.0, "expiry": EXPIRIES[1],
         "settlement": "inverse"},
        {"kind": "future", "venue": "deribit", "chain": "offchain", "account": "a", "underlying": "BTC",
         "quantity": 1.5, "expiry": EXPIRIES[2], "entry_price": 94_000.0},
        {"kind": "option", "venue": "deribit", "chain": "offchain", "account": "b", "underlying": "BTC",
         "quantity": 1.0, "option_type": "call", "strike": 100_000.0, "expiry": EXPIRIES[1],
         "settlement": "inverse"},
        {"kind": "perp", "venue": "hyperliquid", "chain": "hyperliquid", "account": "b", "underlying": "ETH",
         "quantity": 8.0},
    ]
    return [PositionAdapter.validate_python(r) for r in rows]


WALLETS: list[list[Position]] = [random_wallet(np.random.default_rng(300 + w), w) for w in range(12)]
WALLETS[4:4] = [[], _spread_wallet()]
WALLETS.append([])


def _instrument_key(p: Position) -> tuple[Any, ...]:
    """What makes an instrument, derived here from the dumped fields rather than the library's table."""
    dumped = p.model_dump()
    for field in ("venue", "chain", "account", "id", "provenance", "quantity", "liquidity", "entry_price"):
        dumped.pop(field, None)
    return tuple(sorted(dumped.items()))


def _columns(wallets: list[list[Position]], codes: str, rng: np.random.Generator,
             unit_instruments: bool) -> dict[str, Any]:
    """The table a researcher would hold: one row per position, places and chains as integer codes."""
    instruments: list[Position] = []
    index: dict[tuple[Any, ...], int] = {}
    columns: dict[str, list[Any]] = {name: [] for name in ("wallet", "instrument", "size", "entry_price")}
    places: list[tuple[str, ...]] = []
    chains: list[str] = []
    for w, wallet in enumerate(wallets):
        for p in wallet:
            key = _instrument_key(p)
            if key not in index:
                index[key] = len(instruments)
                if unit_instruments:
                    update: dict[str, Any] = {"venue": UNIT_PLACE, "chain": UNIT_PLACE, "account": UNIT_PLACE}
                    update["liquidity" if p.kind == "lp" else "quantity"] = 1.0
                    if p.kind in ("perp", "future"):
                        update["entry_price"] = None
                    instruments.append(p.model_copy(update=update))
                else:
                    instruments.append(p)  # any holder of the instrument will do
            columns["wallet"].append(w)
            columns["instrument"].append(index[key])
            columns["size"].append(p.liquidity if p.kind == "lp" else p.quantity)  # type: ignore[union-attr]
            entry = getattr(p, "entry_price", None)
            columns["entry_price"].append(math.nan if entry is None else entry)
            # "no-chain": the venue-account code leaves the chain out; the chain column still splits it
            places.append((p.venue, p.account) if codes == "no-chain" else (p.venue, p.chain, p.account))
            chains.append(p.chain)

    def encode(labels: list[Any]) -> list[int]:
        distinct = sorted(set(labels))
        if codes == "sparse":  # large, negative, in no particular order
            values = rng.choice(2**62, size=len(distinct), replace=False) - 2**61
        else:
            values = rng.permutation(len(distinct))
        code = {label: int(v) for label, v in zip(distinct, values, strict=True)}
        return [code[label] for label in labels]

    return {
        "instruments": instruments,
        "wallet": np.array(columns["wallet"], dtype=np.int64),
        "instrument": np.array(columns["instrument"], dtype=np.int64),
        "size": np.array(columns["size"], dtype=np.float64),
        "entry_price": np.array(columns["entry_price"], dtype=np.float64),
        "venue_account": np.array(encode(places), dtype=np.int64),
        "chain": np.array(encode(chains), dtype=np.int64),
        "n_wallets": len(wallets),
    }


def _assert_same(got: BatchMarginResult, want: BatchMarginResult) -> None:
    assert got.n_positions == want.n_positions and got.n_instruments == want.n_instruments
    for name in FIGURES:
        g, e = getattr(got, name), getattr(want, name)
        assert g.shape == e.shape, name
        for w in range(e.size):
            assert float(g[w]) == pytest.approx(float(e[w]), rel=REL, abs=ABS), f"wallet {w} {name}"


@pytest.mark.parametrize("codes", ["shuffled", "sparse", "no-chain"])
@pytest.mark.parametrize("unit_instruments", [True, False], ids=["unit-instruments", "holder-instruments"])
@pytest.mark.parametrize("params_name", list(PARAM_SETS))
def test_columns_give_the_figures_of_the_position_path(codes: str, unit_instruments: bool, params_name: str) -> None:
    params: RiskParams = PARAM_SETS[params_name]
    columns = _columns(WALLETS, codes, np.random.default_rng(11), unit_instruments)
    holdings = holdings_from_columns(**columns)
    reference = collect_holdings(WALLETS)
    # the same groups, numbered so that a wallet's and a chain's are contiguous
    assert holdings.account_chain.size == reference.account_chain.size
    assert holdings.chain_wallet.size == reference.chain_wallet.size
    assert np.all(np.diff(holdings.account_chain) >= 0) and np.all(np.diff(holdings.chain_wallet) >= 0)
    assert all(p.venue == UNIT_PLACE and p.account == UNIT_PLACE for p in holdings.instruments)
    got = compute_holdings_margin(holdings, MARKET, params)
    want = compute_batch_margin(WALLETS, MARKET, params)
    _assert_same(got, want)
    assert float(got.maintenance_margin_usd[4]) == 0.0 and float(got.equity_usd[-1]) == 0.0  # the empty wallets


def test_the_spread_wallet_spans_chains_and_venue_accounts() -> None:
    wallet = WALLETS[5]
    assert len({p.chain for p in wallet}) == 4 and len({(p.venue, p.chain, p.account) for p in wallet}) == 8
    holdings = holdings_from_columns(**_columns([wallet], "shuffled", np.random.default_rng(2), False))
    assert holdings.account_chain.size == 8 and holdings.chain_wallet.tolist() == [0] * 4
    _assert_same(compute_holdings_margin(holdings, MARKET, default_params()),
                 compute_batch_margin([wallet], MARKET, default_params()))


def test_empty_wallets_and_an_empty_table() -> None:
    columns = _columns([[], WALLETS[0], []], "shuffled", np.random.default_rng(3), True)
    holdings = holdings_from_columns(**columns)
    assert holdings.n_wallets == 3
    _assert_same(compute_holdings_margin(holdings, MARKET, default_params()),
                 compute_batch_margin([[], WALLETS[0], []], MARKET, default_params()))
    empty = np.array([], dtype=np.int64)
    nothing = holdings_from_columns([], empty, empty, [], [], empty, empty, n_wallets=2)
    result = compute_holdings_margin(nothing, MARKET, default_params())
    assert result.maintenance_margin_usd.tolist() == [0.0, 0.0] and result.n_positions == 0


def test_unheld_and_repeated_instruments_are_dropped_and_merged() -> None:
    columns = _columns(WALLETS[:3], "shuffled", np.random.default_rng(4), True)
    instruments = columns["instruments"]
    n = len(instruments)
    # every instrument listed twice, rows pointing at the second copy, plus an instrument nobody holds
    columns["instruments"] = [*instruments, *instruments, instruments[0].model_copy(update={"venue": "x"})]
    columns["instrument"] = columns["instrument"] + n
    holdings = holdings_from_columns(**columns)
    assert len(holdings.instruments) == n
    _assert_same(compute_holdings_margin(holdings, MARKET, default_params()),
                 compute_batch_margin(WALLETS[:3], MARKET, default_params()))


def test_an_unpriceable_instrument_is_named_by_its_first_row_in_its_wallet() -> None:
    bad = PositionAdapter.validate_python({"kind": "perp", "venue": "gmx", "chain": "arbitrum", "account": "x",
                                           "underlying": "DOGE", "quantity": 1.0})
    wallets = [WALLETS[0], [*WALLETS[1][:3], bad]]
    holdings = holdings_from_columns(**_columns(wallets, "shuffled", np.random.default_rng(5), False))
    with pytest.raises(InputError) as caught:
        compute_holdings_margin(holdings, MARKET, default_params())
    assert caught.value.field == "wallets[1][3].underlying"


def _bad(columns: dict[str, Any], **change: Any) -> InputError:
    with pytest.raises(InputError) as caught:
        holdings_from_columns(**{**columns, **change})
    return caught.value


def test_bad_columns_are_named() -> None:
    columns = _columns(WALLETS[:3], "shuffled", np.random.default_rng(6), True)
    n = columns["wallet"].size
    unsorted = columns["wallet"].copy()
    unsorted[[2, n - 2]] = unsorted[[n - 2, 2]]
    assert _bad(columns, wallet=unsorted).field == "wallet[3]"
    assert _bad(columns, size=columns["size"][:-1]).field == "size"
    assert _bad(columns, chain=np.append(columns["chain"], 0)).field == "chain"
    assert _bad(columns, venue_account=columns["venue_account"][:5]).field == "venue_account"
    out = columns["instrument"].copy()
    out[7] = len(columns["instruments"])
    assert _bad(columns, instrument=out).field == "instrument[7]"
    out[7] = -1
    assert _bad(columns, instrument=out).field == "instrument[7]"
    assert _bad(columns, n_wallets=2).field.startswith("wallet[")  # wallet 2 has rows
    assert _bad(columns, instrument=columns["instrument"].astype(float)).field == "instrument"
    nan_size = columns["size"].copy()
    nan_size[1] = math.inf
    assert _bad(columns, size=nan_size).field == "size[1]"
    option_row = next(k for k, i in enumerate(columns["instrument"]) if columns["instruments"][i].kind == "option")
    entry = columns["entry_price"].copy()
    entry[option_row] = 100.0
    assert _bad(columns, entry_price=entry).field == f"entry_price[{option_row}]"
    assert _bad(columns, instruments=["not a position"] * len(columns["instruments"])).field == "instruments[0]"
