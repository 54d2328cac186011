"""Multicall3 `aggregate3`: many contract reads in one eth_call, all against the state of one block.

A read is described by its Solidity signature and output types, encoded and decoded with eth_abi; a read that
reverts comes back as a failed `CallResult` (allowFailure), never sinking the batch. Multicall3's own
getBlockNumber and getCurrentBlockTimestamp ride in the same batch, so a snapshot names its block without a
second round trip.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, cast

import aiohttp
from eth_abi import decode, encode
from eth_abi.exceptions import DecodingError
from eth_typing import ChecksumAddress
from eth_utils import keccak
from web3.exceptions import Web3Exception
from web3.types import BlockIdentifier

from chains.client import ChainClient
from chains.errors import RpcError
from transport_errors import describe_failure

AGGREGATE3_SELECTOR = keccak(text="aggregate3((address,bool,bytes)[])")[:4]


def split_types(signature_arguments: str) -> list[str]:
    """'address,(uint256,bool),bytes' -> ['address', '(uint256,bool)', 'bytes']: commas at the top level only."""
    types, depth, start = [], 0, 0
    for index, char in enumerate(signature_arguments):
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        elif char == "," and depth == 0:
            types.append(signature_arguments[start:index])
            start = index + 1
    if signature_arguments:
        types.append(signature_arguments[start:])
    return types


@dataclass(frozen=True)
class ContractCall:
    target: str
    signature: str  # e.g. "getUserAccountData(address)"
    args: tuple[Any, ...] = ()
    output_types: tuple[str, ...] = ()

    def calldata(self) -> bytes:
        return _encode_calldata(self.signature, self.args)


@lru_cache(maxsize=4096)
def _encode_calldata(signature: str, args: tuple[Any, ...]) -> bytes:
    """A refresh re-sends the same reads block after block: eth_abi encoding is the costly part of building them."""
    input_types = split_types(signature[signature.index("(") + 1 : -1])
    return keccak(text=signature)[:4] + encode(input_types, list(args))


@dataclass(frozen=True)
class CallResult:
    call: ContractCall
    success: bool
    return_data: bytes

    def decoded(self) -> tuple[Any, ...]:
        """The outputs, decoded with the call's output types.

        Raises:
            RpcError: the call reverted or returned bytes that do not decode (a contract that is not what the
                chains file says it is).
        """
        if not self.success:
            raise RpcError(f"{self.call.signature} on {self.call.target} reverted")
        try:
            return tuple(decode(list(self.call.output_types), self.return_data))
        except (DecodingError, ValueError, OverflowError) as e:
            raise RpcError(f"{self.call.signature} on {self.call.target} returned undecodable data") from e


def _word(value: int) -> bytes:
    return value.to_bytes(32, "big")


def _padded(data: bytes) -> bytes:
    return data + b"\x00" * (-len(data) % 32)


def encode_aggregate3(calls: Sequence[ContractCall]) -> bytes:
    """aggregate3's calldata, encoded by hand: the same bytes as eth_abi for `(address,bool,bytes)[]` (the tests
    check it), at a fraction of its cost on the refresh's hot path."""
    tuples = []
    for call in calls:
        data = call.calldata()
        target = bytes.fromhex(call.target.removeprefix("0x"))
        # address, allowFailure = true, offset of the bytes (after three words), then length and padded bytes
        tuples.append(b"\x00" * 12 + target + _word(1) + _word(96) + _word(len(data)) + _padded(data))
    offsets, position = [], 32 * len(tuples)
    for encoded in tuples:
        offsets.append(_word(position))
        position += len(encoded)
    return AGGREGATE3_SELECTOR + _word(32) + _word(len(tuples)) + b"".join(offsets) + b"".join(tuples)


def decode_aggregate3(raw: bytes) -> list[tuple[bool, bytes]]:
    """aggregate3's `(bool,bytes)[]` result, decoded by hand with every offset and length bounds-checked.

    Raises:
        ValueError: the bytes are not such a result.
    """

    def word(at: int) -> int:
        if at < 0 or at + 32 > len(raw):
            raise ValueError(f"read past the end of {len(raw)} bytes at {at}")
        return int.from_bytes(raw[at : at + 32], "big")

    array = word(0)
    count = word(array)
    if count > len(raw) // 32:
        raise ValueError(f"{count} results cannot fit in {len(raw)} bytes")
    base = array + 32
    out = []
    for index in range(count):
        start = base + word(base + 32 * index)
        success = word(start)
        if success > 1:
            raise ValueError(f"result {index}: success flag {success} is not a bool")
        data_start = start + word(start + 32)
        length = word(data_start)
        if data_start + 32 + length > len(raw):
            raise ValueError(f"result {index}: {length} bytes overrun the answer")
        out.append((bool(success), raw[data_start + 32 : data_start + 32 + length]))
    return out


def compute_block_calls(multicall3: str) -> list[ContractCall]:
    """Block number and timestamp of the batch, and the chain id (checked by fetch_aggregate3)."""
    return [
        ContractCall(multicall3, "getBlockNumber()", (), ("uint256",)),
        ContractCall(multicall3, "getCurrentBlockTimestamp()", (), ("uint256",)),
        ContractCall(multicall3, "getChainId()", (), ("uint256",)),
    ]


BLOCK_CALLS = len(compute_block_calls("0x0000000000000000000000000000000000000000"))


async def fetch_aggregate3(
    client: ChainClient, calls: Sequence[ContractCall], *, block_identifier: BlockIdentifier
) -> list[CallResult]:
    """Raises:
    RpcError: the node is unreachable, times out after its retries, errors, or answers bytes that are not an
        aggregate3 result of the right length."""
    data = encode_aggregate3(calls)
    try:
        raw = await client.w3.eth.call(
            {"to": cast(ChecksumAddress, client.config.multicall3), "data": data},  # checksummed by the chains file
            block_identifier=block_identifier,
        )
    except (Web3Exception, aiohttp.ClientError, OSError, TimeoutError, ValueError, TypeError) as e:
        # Transport failures after the session's retries, JSON-RPC errors, and answers web3 cannot parse.
        raise RpcError(f"{client.config.name} node: {describe_failure(e)}") from e
    try:
        results = decode_aggregate3(bytes(raw))
    except ValueError as e:
        raise RpcError(f"{client.config.name}: aggregate3 answered undecodable data") from e
    if len(results) != len(calls):
        raise RpcError(f"{client.config.name}: aggregate3 answered {len(results)} results for {len(calls)} calls")
    out = [
        CallResult(call=call, success=bool(ok), return_data=bytes(data))
        for call, (ok, data) in zip(calls, results, strict=True)
    ]
    # A node of another chain (a wrong URL in the chains file) would answer plausible but foreign data.
    for result in out:
        if result.call.signature == "getChainId()" and result.call.target == client.config.multicall3:
            (chain_id,) = result.decoded()
            if chain_id != client.config.chain_id:
                raise RpcError(f"{client.config.name}: the node is chain {chain_id}, not {client.config.chain_id}")
    return out
