"""anvil nodes: one process per chain on a free local port, started empty or from a dumped state."""

from __future__ import annotations

import gzip
import json
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from devnet.errors import DevnetError
from devnet.solidity import NODE_MODULES

START_TIMEOUT_SECONDS = 30.0
# On Linux a node gets SIGTERM when the thread that started it ends, however it ends: a test run or demo killed
# outright must not leave nodes behind. util-linux's setpriv sets that (the parent-death signal) and execs anvil.
_SETPRIV = shutil.which("setpriv") if sys.platform.startswith("linux") else None
_DIE_WITH_PARENT = [_SETPRIV, "--pdeathsig", "TERM"] if _SETPRIV else []


def anvil_binary() -> Path:
    """The platform binary that npm's @foundry-rs/anvil installed. Run directly rather than through the package's
    node wrapper, so that stopping or killing the node stops anvil itself.

    Raises:
        DevnetError: npm has not installed it.
    """
    binaries = sorted(NODE_MODULES.glob("@foundry-rs/anvil-*/bin/anvil"))
    if not binaries:
        raise DevnetError(f"no anvil under {NODE_MODULES}/@foundry-rs: run `npm ci` at the repository root")
    return binaries[0]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass
class AnvilNode:
    chain_id: int
    port: int
    process: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        return self.process.pid

    def rpc(self, method: str, params: list[object]) -> object:
        """One JSON-RPC call with the standard library (the node's own plumbing, not the adapters' client).

        Raises:
            DevnetError: the node is unreachable or answers an error.
        """
        body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).encode()
        request = urllib.request.Request(self.url, data=body, headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                answer = json.loads(response.read())
        except (OSError, urllib.error.URLError, json.JSONDecodeError) as e:
            raise DevnetError(f"anvil at {self.url}: {method} failed") from e
        if "error" in answer:
            raise DevnetError(f"anvil at {self.url}: {method}: {answer['error']}")
        return answer["result"]

    def dump_state(self, path: Path) -> None:
        """The node's whole state as the JSON file `--load-state` reads (anvil_dumpState answers it gzipped)."""
        dumped = self.rpc("anvil_dumpState", [])
        assert isinstance(dumped, str)
        path.write_bytes(gzip.decompress(bytes.fromhex(dumped.removeprefix("0x"))))

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def kill(self) -> None:
        """Die at once, like a crashed node: no clean shutdown."""
        self.process.kill()
        self.process.wait()


def start_anvil(*, chain_id: int, state_file: Path | None = None) -> AnvilNode:
    """Raises:
    DevnetError: the node does not answer within START_TIMEOUT_SECONDS."""
    port = free_port()
    command = [
        str(anvil_binary()),
        "--port",
        str(port),
        "--host",
        "127.0.0.1",
        "--chain-id",
        str(chain_id),
        # Aave's Pool is above the 24 KiB limit without the optimizer settings of its own deployment.
        "--disable-code-size-limit",
        "--silent",
    ]
    if state_file is not None:
        command += ["--load-state", str(state_file)]
    process = subprocess.Popen(
        [*_DIE_WITH_PARENT, *command], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    # reaped as soon as it exits, however it exits (killed from outside, crashed): never left a zombie
    threading.Thread(target=process.wait, name=f"reap-anvil-{chain_id}", daemon=True).start()
    node = AnvilNode(chain_id=chain_id, port=port, process=process)
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            stderr = process.stderr.read().decode(errors="replace") if process.stderr else ""
            raise DevnetError(f"anvil for chain {chain_id} exited with {process.returncode}: {stderr[-2000:]}")
        try:
            if node.rpc("eth_chainId", []) == hex(chain_id):
                return node
        except DevnetError:
            time.sleep(0.05)
    node.stop()
    raise DevnetError(f"anvil for chain {chain_id} did not answer within {START_TIMEOUT_SECONDS} s")
