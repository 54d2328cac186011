"""The engine pool hands back what a call raised, as it was raised; an answer it cannot read fails that call at
once (never a call left waiting out its time budget) and the pool goes on serving."""

from __future__ import annotations

import asyncio

import pytest
from support.engine_calls import add, answer_unreadably, large_answer, refuse_the_asset

from aggregator.engine_pool import EngineBudget, EnginePool, WorkerFailed
from risk_core.errors import InputError


async def test_an_input_error_raised_in_a_worker_keeps_its_field_and_reason() -> None:
    pool = EnginePool(EngineBudget(workers=1))
    try:
        with pytest.raises(InputError) as raised:
            await pool.run(refuse_the_asset, "DOGE")
        assert (raised.value.field, raised.value.reason) == ("asset", "'DOGE' has no option quotes")
    finally:
        await pool.close()


async def test_an_unreadable_answer_fails_its_call_and_the_pool_serves_the_next() -> None:
    pool = EnginePool(EngineBudget(workers=1, time_s=60.0))
    try:
        with pytest.raises(WorkerFailed, match="could not be read"):
            await pool.run(answer_unreadably)
        assert await pool.run(add, 2, 3) == 5
        assert pool.replaced == 1
    finally:
        await pool.close()


def test_under_uvloop_an_answer_larger_than_the_pipe_buffer_arrives_whole() -> None:
    """uvloop makes a watched descriptor non-blocking: a report of a few hundred kB (a 100-position what-if) failed
    with EAGAIN half-read, and every such what-if was a 503."""
    uvloop = pytest.importorskip("uvloop")

    async def sizes() -> list[int]:
        pool = EnginePool(EngineBudget(workers=1))
        try:
            return [len(await pool.run(large_answer, n)) for n in (1 << 10, 1 << 20, 5 << 20, 1 << 10)]
        finally:
            await pool.close()

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        assert runner.run(sizes()) == [1 << 10, 1 << 20, 5 << 20, 1 << 10]
