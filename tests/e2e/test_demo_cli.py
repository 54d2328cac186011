"""`metarisk demo --port P` as a user runs it: prints its URL within a bounded time, serves the demo account's risk,
and stops cleanly on SIGTERM, taking its devnet with it. Bounded by deadlines on the output and the answers."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import socket
import sys
from pathlib import Path

import aiohttp
import pytest

from devnet.run import RunningDevnet

ROOT = Path(__file__).resolve().parents[2]
START_DEADLINE_S = 60.0  # import, three anvil nodes from the cache, the venues, the migrations, the first market
REQUEST_TIMEOUT_S = 30.0
STOP_DEADLINE_S = 30.0
URL_LINE = re.compile(r"^metarisk demo serving at (http://\S+?)/\?account=demo$")
CHAIN_LINE = re.compile(r"^\s+chain\s+(\w+)\s+(http://\S+)$")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def demo_command(port: int) -> list[str]:
    script = shutil.which("metarisk", path=str(Path(sys.executable).parent))
    prefix = [script] if script else [sys.executable, "-m", "api.cli"]
    return [*prefix, "demo", "--host", "127.0.0.1", "--port", str(port)]


async def read_until_wallet(stdout: asyncio.StreamReader, deadline: float) -> list[str]:
    """The banner's lines, up to the last one (the wallet), each read within what is left of the deadline."""
    lines: list[str] = []
    loop = asyncio.get_running_loop()
    while not (lines and lines[-1].lstrip().startswith("wallet")):
        line = await asyncio.wait_for(stdout.readline(), timeout=max(0.0, deadline - loop.time()))
        if not line:
            raise AssertionError(f"metarisk demo exited before printing its banner: {lines}")
        lines.append(line.decode().rstrip("\n"))
    return lines


async def node_answers(session: aiohttp.ClientSession, url: str) -> bool:
    try:
        async with session.post(url, json={"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []},
                                timeout=aiohttp.ClientTimeout(total=5)) as response:
            return response.status == 200
    except aiohttp.ClientError:
        return False


@pytest.mark.asyncio
async def test_metarisk_demo_prints_its_url_and_serves_the_demo_account(
    devnet: RunningDevnet, tmp_path: Path
) -> None:
    """`devnet` (the session's) only makes sure the cached devnet state exists, so the demo starts in seconds."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "METARISK_API_KEYS")}
    env["METARISK_DATA_DIR"] = str(tmp_path)  # the demo's SQLite file, away from the user's data directory
    process = await asyncio.create_subprocess_exec(
        *demo_command(port), cwd=ROOT, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    assert process.stdout is not None and process.stderr is not None
    stderr_read = asyncio.create_task(process.stderr.read())  # drained all along: a full pipe would stall the demo
    stderr = b""
    try:
        deadline = asyncio.get_running_loop().time() + START_DEADLINE_S
        banner = await read_until_wallet(process.stdout, deadline)
        match = URL_LINE.match(banner[0])
        assert match, banner
        base = match.group(1)
        assert base == f"http://127.0.0.1:{port}"
        chains = dict(m.groups() for line in banner if (m := CHAIN_LINE.match(line)))
        assert set(chains) == {"ethereum", "arbitrum", "base"}
        assert banner[-1].split() == ["wallet", devnet.manifest.demo_account]

        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S)) as session:
            async with session.get(f"{base}/v1/accounts/demo/risk") as response:
                assert response.status == 200
                report = await response.json()
            assert report["complete"] is True, [w for w in report["warnings"] if " is " in w]
            assert {p["chain"] for p in report["positions"]} >= {"ethereum", "arbitrum", "base"}
            assert report["equity_usd"] > 0 and report["computed_at"] is not None
            async with session.get(f"{base}/health") as response:
                assert (await response.json())["aggregator"] is True
            assert all([await node_answers(session, url) for url in chains.values()])

            process.terminate()
            await asyncio.wait_for(process.wait(), timeout=STOP_DEADLINE_S)
            stderr = await stderr_read
            assert process.returncode == 0, stderr.decode()[-2000:]
            # its devnet went with it
            assert not any([await node_answers(session, url) for url in chains.values()])
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
        stderr = stderr or await stderr_read
    assert b"Traceback" not in stderr
    assert (tmp_path / "metarisk.db").exists()
