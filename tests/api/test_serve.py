"""`metarisk serve` starts the app on the given host and port, keys from the environment."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_for(url: str, timeout: float = 30.0) -> bytes:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                body: bytes = response.read()
                return body
        except (urllib.error.URLError, ConnectionError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def test_serve_answers_health_and_margin_with_a_key_from_the_environment() -> None:
    port = free_port()
    env = {**os.environ, "METARISK_API_KEYS": "k-serve"}
    server = subprocess.Popen(
        [sys.executable, "-m", "api.cli", "serve", "--host", "127.0.0.1", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        health = json.loads(wait_for(f"http://127.0.0.1:{port}/health"))
        assert health["status"] == "ok" and health["aggregator"] is False
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/v1/margin",
            data=(ROOT / "examples" / "demo_request.json").read_bytes(),
            headers={"X-API-Key": "k-serve", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            assert json.loads(response.read())["status"] == "healthy"
    finally:
        server.terminate()
        _, stderr = server.communicate(timeout=30)
    assert b"Traceback" not in stderr
