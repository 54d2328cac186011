"""Multicall3 `aggregate3`: many contract reads in one eth_call, all against the state of one block.

A read is described by its Solidity signature and output types, encoded and decoded with eth_abi; a read that
reverts comes back as a failed `CallResult` (allowFailure), never sinking the batch. Multicall3's own
getBlockNumber and getCurrentBlockTimestamp ride in the same batch, so a snapshot names its block without a
second round trip.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from eth_abi import decode, encode
from eth_abi.exceptions import DecodingError
from eth_utils import keccak
from web3.exceptions import Web3Exception
from web3.types import BlockIdentifier

from chains.client import ChainClient
from chains.errors import RpcError

AGGREGATE3 = "aggregate3((address,bool,bytes)[])"
AGGREGATE3_OUTPUT = "(bool,bytes)[]"


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

    @property
    def input_types(self) -> list[str]:
        return split_types(self.signature[self.signature.index("(") + 1 : -1])

    @property
    def selector(self) -> bytes:
        return keccak(text=self.signature)[:4]

    def calldata(self) -> bytes:
        return self.selector + encode(self.input_types, list(self.args))


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
    payload = [(call.target, True, call.calldata()) for call in calls]
    data = keccak(text=AGGREGATE3)[:4] + encode(["(address,bool,bytes)[]"], [payload])
    try:
        raw = await client.w3.eth.call(
            {"to": client.w3.to_checksum_address(client.config.multicall3), "data": data},
            block_identifier=block_identifier,
        )
    except (Web3Exception, OSError, TimeoutError, ValueError) as e:
        raise RpcError(f"{client.config.name}: eth_call aggregate3 failed: {type(e).__name__}: {e}") from e
    except Exception as e:  # aiohttp's errors and anything a broken node provokes inside web3
        raise RpcError(f"{client.config.name}: eth_call aggregate3 failed: {type(e).__name__}: {e}") from e
    try:
        (results,) = decode([AGGREGATE3_OUTPUT], bytes(raw))
    except (DecodingError, ValueError, OverflowError) as e:
        raise RpcError(f"{client.config.name}: aggregate3 answered undecodable data") from e
    if len(results) != len(calls):
        raise RpcError(f"{client.config.name}: aggregate3 answered {len(results)} results for {len(calls)} calls")
    return [
        CallResult(call=call, success=bool(ok), return_data=bytes(out))
        for call, (ok, out) in zip(calls, results, strict=True)
    ]
