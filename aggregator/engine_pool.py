"""Engine work off the event loop: a pool of worker processes, each request under a budget of time and memory.

The margin engine is CPU-bound and, for a large book, long: run on the event loop it would stall every other
request (`/health` included) for its whole duration. Here each call runs in a worker process. A call past its time
budget has its worker killed (and reaped) and replaced; a call past its memory budget fails with MemoryError inside
its worker (an address-space limit set above the worker's own footprint), which then exits and is replaced too,
since its heap may be left fragmented. Either way the caller gets `BudgetExceeded` naming the limit.

Workers are forked from a forkserver (not from this process: its event loop, threads and sockets must not be
copied) that has the engine imported, so a replacement starts in milliseconds. Each uses one BLAS thread: two
OpenBLAS threads per worker on a shared two-core machine measured 40x slower on a 3,000-position book.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import os
import pickle
import resource
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any, Literal, TypeVar, cast

log = logging.getLogger(__name__)
Result = TypeVar("Result")
_PRELOAD = ("risk_core.margin.engine",)
_SINGLE_THREADED = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


@dataclass(frozen=True)
class EngineBudget:
    """What one engine call may use: wall time, and memory above the worker's own footprint."""

    time_s: float = 20.0
    memory_bytes: int = 1 << 30
    workers: int = 2
    max_waiting: int = 64  # calls queued for a worker beyond this are refused at once (the pool is saturated)


class BudgetExceeded(Exception):
    """An engine call went past its budget (`limit` is "time" or "memory"), or found the pool saturated ("queue")."""

    def __init__(self, limit: Literal["time", "memory", "queue"], detail: str) -> None:
        super().__init__(detail)
        self.limit = limit
        self.detail = detail


class WorkerFailed(Exception):
    """A worker died without answering (killed from outside, or crashed): its call's result is unknown."""


def _serve(conn: Connection, memory_bytes: int, recursion_limit: int) -> None:
    """A worker's loop: calls in, results (or the exception raised) out, until its pipe closes. The recursion
    limit is its parent's, so that a call answers as it would have in the parent."""
    sys.setrecursionlimit(recursion_limit)
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    with open("/proc/self/statm") as statm:
        own = int(statm.read().split()[0]) * resource.getpagesize()
    limit = own + memory_bytes
    resource.setrlimit(resource.RLIMIT_AS, (limit if hard == resource.RLIM_INFINITY else min(limit, hard), hard))
    while True:
        try:
            call, args = conn.recv()
        except (EOFError, OSError):
            return
        try:
            outcome: tuple[str, Any] = ("ok", call(*args))
        except MemoryError:
            conn.send(("memory", None))
            return  # its heap may be fragmented past the limit: the pool replaces it
        except Exception as e:  # noqa: BLE001 - handed to the caller, which decides what it means
            outcome = ("error", e)
        try:
            conn.send(outcome)
        except MemoryError:
            conn.send(("memory", None))
            return
        except (pickle.PicklingError, TypeError, AttributeError) as e:
            conn.send(("error", RuntimeError(f"engine call failed with an unpicklable result: {e!r}")))


class _Worker:
    def __init__(self, context: multiprocessing.context.ForkServerContext, memory_bytes: int) -> None:
        self.conn, child = context.Pipe()
        self.process: BaseProcess = context.Process(
            target=_serve, args=(child, memory_bytes, sys.getrecursionlimit()), daemon=True
        )
        self.process.start()
        child.close()

    def stop(self) -> None:
        """Kill and reap: a killed worker is never left a zombie (its pipe closes with it, ending any read)."""
        if self.process.is_alive():
            self.process.kill()
        self.process.join(timeout=5)
        with contextlib.suppress(OSError):
            self.conn.close()


class EnginePool:
    """`await pool.run(fn, *args)`: fn(*args) in a worker process under the budget. `fn` must be a module-level
    function (pickled by name) and its arguments and result picklable."""

    def __init__(self, budget: EngineBudget | None = None, *, preload: Sequence[str] = ()) -> None:
        """`preload`: modules of the functions it will run, imported once by the forkserver rather than by each
        new worker inside its first call's budget (the first pool of a process decides, as the forkserver is
        shared)."""
        self.budget = budget or EngineBudget()
        self._context = multiprocessing.get_context("forkserver")
        self._context.set_forkserver_preload([*_PRELOAD, *preload])
        self._idle: asyncio.Queue[_Worker] | None = None
        self._workers: list[_Worker] = []
        self._waiting = 0
        self.replaced = 0  # workers replaced after a budget or a crash (metrics, tests)

    def _spawn(self) -> _Worker:
        for name, value in _SINGLE_THREADED.items():
            # inherited by the forkserver, started by the first spawn (this process's own BLAS is loaded already)
            os.environ.setdefault(name, value)
        worker = _Worker(self._context, self.budget.memory_bytes)
        self._workers.append(worker)
        return worker

    async def start(self) -> None:
        if self._idle is not None:
            return
        self._idle = asyncio.Queue()
        for _ in range(self.budget.workers):
            self._idle.put_nowait(await asyncio.to_thread(self._spawn))

    async def close(self) -> None:
        workers, self._workers, self._idle = self._workers, [], None
        await asyncio.gather(*(asyncio.to_thread(w.stop) for w in workers))

    def _retire(self, worker: _Worker) -> None:
        worker.stop()
        if worker in self._workers:
            self._workers.remove(worker)
        self.replaced += 1

    async def run(self, call: Callable[..., Result], *args: Any) -> Result:
        """fn(*args) in a worker; the exception it raised is raised here.

        Raises:
            BudgetExceeded: past the time or memory budget (the worker is replaced), or the pool is saturated.
            WorkerFailed: the worker died without answering (it is replaced).
        """
        await self.start()
        idle = self._idle
        assert idle is not None
        if self._waiting >= self.budget.max_waiting:
            raise BudgetExceeded("queue", f"the engine is saturated: {self._waiting} calls are waiting for a worker")
        self._waiting += 1
        try:
            worker = await idle.get()
        finally:
            self._waiting -= 1
        healthy = False
        try:
            status, value = await asyncio.wait_for(self._exchange(worker, (call, args)), self.budget.time_s)
            if status == "memory":
                raise BudgetExceeded(
                    "memory", f"the engine's memory budget of {self.budget.memory_bytes / 2**20:.0f} MiB per call "
                    "was exceeded")
            healthy = True
        except TimeoutError as e:
            raise BudgetExceeded("time", f"the engine's time budget of {self.budget.time_s:g} s per call was "
                                 "exceeded") from e
        except (EOFError, OSError) as e:
            raise WorkerFailed(f"the engine worker died without answering: {e!r}") from e
        finally:
            if healthy:
                idle.put_nowait(worker)
            else:
                # killed in a thread (joining may take a moment), and a fresh worker takes its place
                await asyncio.to_thread(self._retire, worker)
                if self._idle is idle:
                    idle.put_nowait(await asyncio.to_thread(self._spawn))
        if status == "error":
            raise cast(BaseException, value)
        return cast(Result, value)

    @staticmethod
    async def _exchange(worker: _Worker, message: object) -> tuple[str, Any]:
        """Send a call and await its answer on the event loop itself (no thread hop each way): the answer is read
        once the pipe turns readable, and a worker writes its whole answer at once, so the read never waits long on
        it. (A multi-MB body or report still takes the loop a few ms to copy.) uvloop makes a watched descriptor
        non-blocking, so the pipe is put back to blocking before each send and read: a message larger than the
        socket's buffer is then read whole instead of failing with EAGAIN."""
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[tuple[str, Any]] = loop.create_future()
        fd = worker.conn.fileno()

        def readable() -> None:
            loop.remove_reader(fd)
            os.set_blocking(fd, True)
            if answer.done():
                return
            try:
                answer.set_result(worker.conn.recv())
            except (EOFError, OSError) as e:
                answer.set_exception(e)
            except Exception as e:  # noqa: BLE001 - an answer that cannot be unpickled must not leave the call waiting
                answer.set_exception(WorkerFailed(f"the engine's answer could not be read: {e!r}"))

        os.set_blocking(fd, True)
        worker.conn.send(message)
        loop.add_reader(fd, readable)
        try:
            return await answer
        finally:
            loop.remove_reader(fd)
            os.set_blocking(fd, True)

    def busy_workers(self) -> int:
        return 0 if self._idle is None else len(self._workers) - self._idle.qsize()

    def worker_pids(self) -> list[int]:
        return [w.process.pid for w in self._workers if w.process.pid is not None]
