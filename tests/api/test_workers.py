"""`metarisk serve --workers N`: pre-forked workers on one socket, /metrics summed over them, a clean stop."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from api.cli import main
from risk_core.margin.engine import compute_margin_request
from risk_core.schema.request import MarginRequest

ROOT = Path(__file__).resolve().parents[2]
REQUEST = (ROOT / "examples" / "demo_request.json").read_bytes()
API_KEY = "test-key"
N_REQUESTS, N_CONNECTIONS = 20, 4


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_until_accepting(port: int, server: subprocess.Popen[bytes], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        assert server.poll() is None, f"the server exited with {server.returncode}"
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            connection.request("GET", "/health")
            if connection.getresponse().status == 200:
                connection.close()
                return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"nothing answered on port {port} within {timeout} s")
        time.sleep(0.05)


def children_of(pid: int) -> list[int]:
    return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


@pytest.fixture
def server() -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
    env["METARISK_API_KEYS"] = API_KEY
    process = subprocess.Popen(
        [sys.executable, "-m", "api.cli", "serve", "--host", "127.0.0.1", "--port", str(port), "--workers", "2"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    try:
        wait_until_accepting(port, process)
        yield process, port
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if process.stderr is not None:
            process.stderr.close()


def post_margins(port: int, count: int) -> list[tuple[int, bytes]]:
    """`count` POSTs on one keep-alive connection."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    out = []
    try:
        for _ in range(count):
            connection.request("POST", "/v1/margin", body=REQUEST,
                               headers={"X-API-Key": API_KEY, "Content-Type": "application/json"})
            response = connection.getresponse()
            out.append((response.status, response.read()))
    finally:
        connection.close()
    return out


def get(port: int, path: str) -> tuple[int, str]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, response.read().decode()
    finally:
        connection.close()


def metric(text: str, sample_name: str, **labels: str) -> float:
    values = [
        s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == sample_name and all(s.labels.get(k) == v for k, v in labels.items())
    ]
    assert values, f"no sample {sample_name}{labels} in /metrics"
    return sum(values)


def metric_dirs_of(pids: list[int]) -> set[Path]:
    """The multiprocess metric directories holding a value file of one of `pids` (prometheus_client names them
    <type>_<pid>.db)."""
    found = set()
    for directory in Path(tempfile.gettempdir()).glob("metarisk-metrics-*"):
        try:
            names = [f.name for f in directory.iterdir()]
        except FileNotFoundError:
            continue
        if any(name.endswith(f"_{pid}.db") for name in names for pid in pids):
            found.add(directory)
    return found


def test_two_workers_answer_alike_sum_their_metrics_and_stop_on_sigterm(
    server: tuple[subprocess.Popen[bytes], int],
) -> None:
    process, port = server
    workers = children_of(process.pid)
    assert len(workers) == 2 and all(alive(w) for w in workers)

    per_connection = N_REQUESTS // N_CONNECTIONS
    with ThreadPoolExecutor(N_CONNECTIONS) as pool:
        answers = [a for batch in pool.map(post_margins, [port] * N_CONNECTIONS, [per_connection] * N_CONNECTIONS)
                   for a in batch]
    assert len(answers) == N_REQUESTS
    assert {status for status, _ in answers} == {200}
    assert len({body for _, body in answers}) == 1
    expected = compute_margin_request(MarginRequest.model_validate_json(REQUEST))
    answered = json.loads(answers[0][1])
    assert answered["maintenance_margin_usd"] == pytest.approx(expected.maintenance_margin_usd, rel=1e-9)
    assert answered["status"] == expected.status

    status, text = get(port, "/metrics")
    assert status == 200
    # summed over both workers, whichever answered: every request counted once
    assert metric(text, "metarisk_margin_computations_total", outcome="ok") == N_REQUESTS
    assert metric(text, "metarisk_margin_compute_seconds_count") == N_REQUESTS
    assert metric(text, "metarisk_http_requests_total", route="/v1/margin", method="POST", status="200") == N_REQUESTS
    metric_dirs = metric_dirs_of(workers)
    assert len(metric_dirs) == 1

    process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 5.0
    while process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert process.returncode == 0
    assert not any(alive(w) for w in workers)
    assert not any(d.exists() for d in metric_dirs)  # the CLI's own metrics directory is removed on exit
    assert process.stderr is not None
    assert b"Traceback" not in process.stderr.read()


@pytest.mark.parametrize("workers", ["0", "-1"])
def test_serve_refuses_fewer_than_one_worker(workers: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "--port", str(free_port()), "--workers", workers]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --workers:")
    assert f"{workers} is not a number of processes" in err
