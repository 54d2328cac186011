"""Strict parsing of decoded contract outputs into named, typed models: a contract that answers something else
than its ABI says (wrong arity, a negative where a uint is due, a bool that is not one) fails loudly here."""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import Annotated, Any, TypeVar

from eth_utils import to_checksum_address
from pydantic import AfterValidator, BaseModel, ConfigDict, ValidationError

from chains.errors import RpcError
from chains.multicall import CallResult


@lru_cache(maxsize=4096)
def _checksummed(address: str) -> str:
    # The same few addresses come back in every refresh; checksumming (a keccak each) adds up.
    return to_checksum_address(address)


# eth_abi decodes addresses in lower case; the chains file and every comparison use the checksummed form.
Address = Annotated[str, AfterValidator(_checksummed)]


class ContractOutput(BaseModel):
    """Fields in the order of the function's outputs."""

    model_config = ConfigDict(strict=True, frozen=True, extra="forbid")


Output = TypeVar("Output", bound=ContractOutput)


def parse_values(model: type[Output], values: Sequence[Any], *, what: str) -> Output:
    """Raises:
    RpcError: the values are not what the model says."""
    names = list(model.model_fields)
    if len(values) != len(names):
        raise RpcError(f"{what}: {len(values)} outputs where {len(names)} are due")
    try:
        return model.model_validate(dict(zip(names, values, strict=True)))
    except ValidationError as e:
        raise RpcError(f"{what}: {e.errors()[0]['loc']} {e.errors()[0]['msg']}") from e


def parse_result(model: type[Output], result: CallResult) -> Output:
    """A call's outputs as `model`. Raises RpcError (reverted, undecodable or not matching the model)."""
    return parse_values(model, result.decoded(), what=f"{result.call.signature} on {result.call.target}")


def parse_single(result: CallResult, kind: type) -> Any:
    """The one output of a call, checked to be of `kind`. Raises RpcError."""
    (value,) = result.decoded()
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise RpcError(f"{result.call.signature} on {result.call.target}: {type(value).__name__} is not {kind}")
    return value
