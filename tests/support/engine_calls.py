"""Calls for the engine pool's tests: module-level, so a worker process can import them by name."""

from __future__ import annotations

from typing import Any

from risk_core.errors import InputError


def refuse_the_asset(asset: str) -> None:
    raise InputError("asset", f"{asset!r} has no option quotes")


def _cannot_be_rebuilt() -> None:
    raise ValueError("this answer cannot be unpickled")


class Unreadable:
    """Pickles in the worker; unpickling it in the parent raises."""

    def __reduce__(self) -> tuple[Any, tuple[()]]:
        return (_cannot_be_rebuilt, ())


def answer_unreadably() -> Unreadable:
    return Unreadable()


def add(a: int, b: int) -> int:
    return a + b


def large_answer(n_bytes: int) -> bytes:
    return bytes(range(256)) * (n_bytes // 256) + bytes(n_bytes % 256)
