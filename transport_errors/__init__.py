"""A transport failure (a node or a venue that cannot be reached) as one short human sentence, for the chain
clients and the venues' HTTP helper alike: what a user reads in a report's warnings, instead of the library's
text (aiohttp's names the address twice: `Cannot connect to host H:P ssl:default [Connect call failed ('H', P)]`)."""

from __future__ import annotations

import json
import os

import aiohttp


def describe_failure(error: BaseException) -> str:
    """What went wrong, lower-case, without the exception's class name when the failure is a familiar one."""
    if isinstance(error, aiohttp.ClientConnectorError):
        code = error.os_error.errno
        why = os.strerror(code) if code is not None else str(error.os_error)  # asyncio's text repeats the address
        return f"cannot connect to {error.host}:{error.port} ({why.lower()})"
    if isinstance(error, aiohttp.ServerDisconnectedError):
        return "the server closed the connection without answering"
    if isinstance(error, aiohttp.ClientResponseError):
        return f"HTTP {error.status} {error.message}".rstrip()
    if isinstance(error, aiohttp.ClientPayloadError):
        return "the answer was cut off"
    if isinstance(error, json.JSONDecodeError):  # web3's message quotes the document twice
        return f"answered what is not JSON: {error.doc[:80]!r}"
    if isinstance(error, TimeoutError):
        return "no answer in time"
    if isinstance(error, ConnectionRefusedError):
        return "connection refused"
    return f"{type(error).__name__}: {error}"
