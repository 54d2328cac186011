"""The local venues validate each shape of answer once: a moving market changes numbers, not shapes, and a full
spec check of every answer held the demo's event loop. Whatever the spec can tell apart by type and sign must
still reach the validator."""

from __future__ import annotations

from typing import Any

from venue_servers.spec import answer_shape, validate_once


def test_answers_differing_only_in_market_values_share_a_shape() -> None:
    before = {"mark_price": 64_012.5, "volume": 12, "index": "97.25", "instrument": "BTC-27DEC24-100000-C"}
    after = {"mark_price": 63_998.75, "volume": 40, "index": "101.5", "instrument": "BTC-27DEC24-100000-C"}
    assert answer_shape(before) == answer_shape(after)


def test_type_sign_zero_and_keys_change_the_shape() -> None:
    base = answer_shape({"price": 1.5, "size": 2, "fee": "0.1"})
    assert answer_shape({"price": -1.5, "size": 2, "fee": "0.1"}) != base   # sign (a spec's minimum)
    assert answer_shape({"price": 1.5, "size": 2.5, "fee": "0.1"}) != base  # integer vs fraction
    assert answer_shape({"price": 0.0, "size": 2, "fee": "0.1"}) != base    # zero
    assert answer_shape({"price": 1.5, "size": 2, "fee": 0.1}) != base      # a decimal string vs a number
    assert answer_shape({"price": 1.5, "size": 2, "fees": "0.1"}) != base   # a renamed field


def test_a_new_shape_is_validated_a_repeated_one_is_not() -> None:
    seen: list[Any] = []
    what = "test route (validate_once)"
    validate_once(what, {"p": 1.0}, seen.append)
    validate_once(what, {"p": 2.0}, seen.append)   # same shape: skipped
    validate_once(what, {"p": -2.0}, seen.append)  # negative: checked
    validate_once(what, {"p": None}, seen.append)  # null: checked
    assert seen == [{"p": 1.0}, {"p": -2.0}, {"p": None}]
