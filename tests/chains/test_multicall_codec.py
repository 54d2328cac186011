"""The hand-rolled aggregate3 codec equals eth_abi's encoding byte for byte, and rejects malformed answers."""

from __future__ import annotations

import pytest
from eth_abi import encode
from eth_utils import keccak, to_checksum_address
from hypothesis import given
from hypothesis import strategies as st

from chains.multicall import ContractCall, decode_aggregate3, encode_aggregate3

addresses = st.binary(min_size=20, max_size=20).map(lambda raw: to_checksum_address(raw))
calls = st.lists(
    st.tuples(addresses, st.integers(min_value=0, max_value=2**256 - 1), addresses).map(
        lambda t: ContractCall(t[0], "f(uint256,address)", (t[1], t[2]), ("uint256",))
    ),
    max_size=12,
)
results = st.lists(st.tuples(st.booleans(), st.binary(max_size=200)), max_size=12)


@given(calls)
def test_encoding_equals_eth_abi(batch: list[ContractCall]) -> None:
    expected = keccak(text="aggregate3((address,bool,bytes)[])")[:4] + encode(
        ["(address,bool,bytes)[]"], [[(call.target, True, call.calldata()) for call in batch]]
    )
    assert encode_aggregate3(batch) == expected


@given(results)
def test_decoding_inverts_eth_abi(answers: list[tuple[bool, bytes]]) -> None:
    assert decode_aggregate3(encode(["(bool,bytes)[]"], [answers])) == answers


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"\xde\xad\xbe\xef",
        encode(["uint256", "uint256"], [32, 2**64]),  # a count that cannot fit
        encode(["(bool,bytes)[]"], [[(True, b"abc")]])[:-32],  # truncated
        encode(["uint256", "uint256", "uint256", "uint256", "uint256"], [32, 1, 32, 7, 64]),  # success flag 7
    ],
)
def test_malformed_answers_are_rejected(raw: bytes) -> None:
    with pytest.raises(ValueError):
        decode_aggregate3(raw)
