"""EIP-712 written from the specification (https://eips.ethereum.org/EIPS/eip-712), independent of eth_account's
typed-data encoder the service signs with: encodeType, encodeData, hashStruct and the digest, with eth_abi for
the atomic values and keccak; signatures recovered with eth_keys."""

from __future__ import annotations

import re
from typing import Any

from eth_abi import encode
from eth_keys import keys
from eth_utils import keccak, to_checksum_address

Types = dict[str, list[dict[str, str]]]
_ARRAY = re.compile(r"^(?P<item>.+)\[(?P<length>\d*)\]$")


def _referenced(primary: str, types: Types, found: set[str]) -> set[str]:
    if primary in found or primary not in types:
        return found
    found.add(primary)
    for field in types[primary]:
        _referenced(_ARRAY.sub(r"\g<item>", field["type"]), types, found)
    return found


def encode_type(primary: str, types: Types) -> str:
    """The primary type, then the struct types it references, sorted by name."""
    dependencies = sorted(_referenced(primary, types, set()) - {primary})
    members = {name: ",".join(f"{field['type']} {field['name']}" for field in types[name]) for name in types}
    return "".join(f"{name}({members[name]})" for name in [primary, *dependencies])


def type_hash(primary: str, types: Types) -> bytes:
    return keccak(text=encode_type(primary, types))


def _encode_value(kind: str, value: Any, types: Types) -> bytes:
    """One 32-byte word of encodeData."""
    if kind in types:
        return hash_struct(kind, value, types)
    if array := _ARRAY.match(kind):
        return keccak(b"".join(_encode_value(array["item"], item, types) for item in value))
    if kind == "string":
        return keccak(text=value)
    if kind == "bytes":
        return keccak(bytes.fromhex(value.removeprefix("0x")) if isinstance(value, str) else value)
    if kind.startswith("bytes") and isinstance(value, str):
        value = bytes.fromhex(value.removeprefix("0x"))
    elif kind.startswith(("int", "uint")) and isinstance(value, str):
        value = int(value, 0)  # JSON carries large integers as decimal (or 0x-hex) strings
    return encode([kind], [value])


def hash_struct(primary: str, data: dict[str, Any], types: Types) -> bytes:
    encoded = b"".join(_encode_value(f["type"], data[f["name"]], types) for f in types[primary])
    return keccak(type_hash(primary, types) + encoded)


def digest(typed_data: dict[str, Any]) -> bytes:
    types = typed_data["types"]
    domain_separator = hash_struct("EIP712Domain", typed_data["domain"], types)
    return keccak(b"\x19\x01" + domain_separator + hash_struct(typed_data["primaryType"], typed_data["message"], types))


def recover(typed_data: dict[str, Any], signature: str) -> str:
    raw = bytes.fromhex(signature.removeprefix("0x"))
    vrs = (raw[64] - 27, int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:64], "big"))
    public_key = keys.Signature(vrs=vrs).recover_public_key_from_msg_hash(digest(typed_data))
    return to_checksum_address(public_key.to_checksum_address())
