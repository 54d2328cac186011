"""The Dockerfile and the compose `service`, replayed outside a container (this machine has no Docker engine).

Every instruction is read from the Dockerfile, so a change there changes what is replayed: FROM must name this
machine's Debian release and Node major; the apt-get step is checked, not run (it needs root and would change the
machine), by asking dpkg that each package it installs is installed here; every other RUN runs for real with /app
and /venv mapped into tmp_path; COPY copies from the build context (the tracked files, less .dockerignore); ENV
and WORKDIR apply to what follows. Then the CMD runs with the compose service's environment and volumes, on a
PostgreSQL schema of its own, and must answer /health, /openapi.json and POST /v1/margin, and stop on SIGTERM.
A failure names the Dockerfile (or compose) line it comes from. Slow: npm ci and pip install make it about 30 s.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import time
import tomllib
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import pytest
import yaml
from sqlalchemy import create_engine, make_url
from store.helpers import pg_base_url, pg_unreachable_reason, postgresql_required, scratch_schema
from support.golden import market, option, position

from api.http.routes import HealthReport
from risk_core.margin.engine import compute_margin_request
from risk_core.schema.params import default_params
from risk_core.schema.positions import SCHEMA_VERSION
from risk_core.schema.request import MarginRequest

ROOT = Path(__file__).resolve().parents[1]
COMPOSE_SERVICE = "service"
API_KEY = "k-dockerfile-replay"
# node:20-bookworm-slim's PATH (Debian's default). With it `python3` is Debian's /usr/bin/python3 (3.11, as in the
# image) rather than a pyenv shim earlier in the caller's PATH; a pyenv 3.11 would do too: same minor version.
IMAGE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# What a builder would supply from its host, not the image: registry mirrors, proxies and CA bundles.
HOST_SETTINGS = re.compile(r"^(PIP_|NPM_CONFIG_)|PROXY|CERT|CA_BUNDLE|SSL_", re.IGNORECASE)
RUN_TIMEOUT_S = 900.0
START_DEADLINE_S = 60.0
REQUEST_TIMEOUT_S = 30.0
STOP_DEADLINE_S = 30.0


@dataclass(frozen=True)
class Instruction:
    line: int  # where the instruction starts in the Dockerfile, 1-based
    keyword: str
    args: str

    def fail(self, reason: str) -> NoReturn:
        pytest.fail(f"Dockerfile line {self.line}: {self.keyword} {self.args}\n{reason}", pytrace=False)


def parse_dockerfile(source: str) -> list[Instruction]:
    """Instructions with `\\` continuations joined; comment lines (also inside a continuation) dropped."""
    instructions: list[Instruction] = []
    pending: list[str] = []
    start = 0
    for number, raw in enumerate(source.splitlines(), start=1):
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if not pending:
            start = number
        continued = stripped.endswith("\\")
        pending.append(stripped[:-1].strip() if continued else stripped)
        if not continued:
            keyword, _, args = " ".join(pending).partition(" ")
            instructions.append(Instruction(start, keyword.upper(), args.strip()))
            pending = []
    assert not pending, f"Dockerfile line {start}: the file ends inside a `\\` continuation"
    return instructions


def map_paths(command: str, mapping: Mapping[str, Path]) -> str:
    """Container paths (whole path components only) replaced by their stand-ins, longest first."""
    for container in sorted(mapping, key=len, reverse=True):
        pattern = rf"(?<![\w./-]){re.escape(container)}(?=/|$|[\s\"':;,])"
        command = re.sub(pattern, str(mapping[container]).replace("\\", "\\\\"), command)
    return command


def dockerignore_excludes(patterns: list[str], path: str) -> bool:
    """Docker's rule: the last pattern matching the path or one of its parent directories wins; `!` re-includes."""
    parts = path.split("/")
    excluded = False
    for pattern in patterns:
        negated = pattern.startswith("!")
        body = pattern.lstrip("!").strip("/")
        regex = re.escape(body).replace(r"\*\*/", "(.*/)?").replace(r"\*\*", ".*")
        regex = regex.replace(r"\*", "[^/]*").replace(r"\?", "[^/]")
        if any(re.fullmatch(regex, "/".join(parts[:n])) for n in range(1, len(parts) + 1)):
            excluded = not negated
    return excluded


def build_context(into: Path) -> Path:
    """The tracked files of the working tree (uncommitted edits included) less .dockerignore: what `docker build .`
    of a checkout sees. Untracked files (.venv, node_modules, scratch) are left out like a fresh clone's."""
    ignore = ROOT / ".dockerignore"
    patterns = [p.strip() for p in ignore.read_text().splitlines() if p.strip() and not p.startswith("#")]
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout.decode()
    for name in filter(None, listed.split("\0")):
        source = ROOT / name
        if dockerignore_excludes(patterns, name) or not source.exists():  # deleted in the working tree
            continue
        (into / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, into / name, follow_symlinks=False)
    return into


def copy_into(instruction: Instruction, context: Path, workdir: Path, mapping: Mapping[str, Path]) -> None:
    args = shlex.split(instruction.args)
    if any(a.startswith("--") for a in args):
        instruction.fail("flags of COPY (--from, --chown, ...) are not replayed")
    *sources, dest = args
    target = Path(map_paths(dest, mapping)) if dest.startswith("/") else workdir / dest
    into_directory = dest.endswith("/") or dest in (".", "./") or len(sources) > 1
    for pattern in sources:
        matches = [context] if pattern in (".", "./") else sorted(context.glob(pattern))
        if not matches:
            instruction.fail(f"{pattern}: no such file in the build context")
        for match in matches:
            if match.is_dir():
                shutil.copytree(match, target, symlinks=True, dirs_exist_ok=True)
            else:
                destination = target / match.name if into_directory else target
                destination.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(match, destination, follow_symlinks=False)


def check_apt_step(instruction: Instruction) -> None:
    """The apt-get RUN is not run: this machine must already hold each package it installs."""
    for command in instruction.args.split("&&"):
        words = shlex.split(command)
        if words[:2] == ["apt-get", "update"] or words == ["rm", "-rf", "/var/lib/apt/lists/*"]:
            continue  # the package lists: fetched and dropped within the step, nothing installed
        if words[:2] != ["apt-get", "install"]:
            instruction.fail(f"`{command.strip()}`: not replayable beside apt-get (it would need root)")
        packages = [w for w in words[2:] if not w.startswith("-")]
        for package in packages:
            status = subprocess.run(["dpkg-query", "-W", "-f=${Status}", package], capture_output=True, text=True)
            if status.stdout != "install ok installed":
                found = status.stdout or status.stderr
                instruction.fail(f"package {package} is not installed on this machine: {found}")


def check_base_image(instruction: Instruction) -> None:
    """This machine stands in for the base image: the same Debian release and, for node:N-*, the same Node major."""
    image, _, tag = instruction.args.partition(":")
    release = dict(line.split("=", 1) for line in Path("/etc/os-release").read_text().splitlines() if "=" in line)
    codename = release.get("VERSION_CODENAME", "").strip('"')
    if codename not in tag.split("-"):
        instruction.fail(f"the image's Debian release is not this machine's ({codename})")
    if image == "node":
        node = subprocess.run(["node", "--version"], capture_output=True, text=True, env={"PATH": IMAGE_PATH})
        if node.stdout.strip().lstrip("v").split(".")[0] != tag.split("-")[0]:
            instruction.fail(f"this machine's Node is {node.stdout.strip() or node.stderr.strip()}")


def run_step(instruction: Instruction, workdir: Path, env: Mapping[str, str], mapping: Mapping[str, Path]) -> None:
    # --no-cache-dir dropped: pip's cache keeps the replay to a minute; the image keeps no cache, which changes its
    # size, not what is installed
    command = re.sub(r"\s--no-cache-dir\b", "", map_paths(instruction.args, mapping))
    try:
        done = subprocess.run(["/bin/sh", "-c", command], cwd=workdir, env=dict(env), capture_output=True, text=True,
                              timeout=RUN_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        instruction.fail(f"`{command}` did not finish within {RUN_TIMEOUT_S:.0f} s")
    if done.returncode != 0:
        instruction.fail(f"`{command}` exited {done.returncode}:\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}")


def expand(value: str, env: Mapping[str, str]) -> str:
    return re.sub(r"\$\{?(\w+)\}?", lambda m: env.get(m.group(1), ""), value)


def apply_env(instruction: Instruction, env: dict[str, str], mapping: Mapping[str, Path]) -> None:
    words = shlex.split(instruction.args)
    legacy = not all("=" in w for w in words)  # `ENV KEY value with spaces`
    pairs = [(words[0], "=", " ".join(words[1:]))] if legacy else [w.partition("=") for w in words]
    updates = {key: map_paths(expand(value, env), mapping) for key, _, value in pairs}  # all read the old values
    env.update(updates)


def interpolate(value: str, shell: Mapping[str, str]) -> str:
    """Compose's ${VAR}, ${VAR:-default} and ${VAR:?message}, against the shell environment `shell`."""

    def one(m: re.Match[str]) -> str:
        name, op, word = m.group(1), m.group(2) or "", m.group(3) or ""
        if shell.get(name):
            return shell[name]
        if op == ":?":
            pytest.fail(f"docker-compose.yml: {name} must be set: {word}", pytrace=False)
        return word

    return re.sub(r"\$\{(\w+)(?:(:[-?])([^}]*))?\}", one, value)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.fixture
def pg_schema_url() -> Iterator[str]:
    """The local PostgreSQL, a schema of its own (as the store tests do); fails instead of skipping under CI."""
    if reason := pg_unreachable_reason():
        message = f"PostgreSQL at {pg_base_url().render_as_string()} unreachable: {reason}"
        if postgresql_required():
            pytest.fail(message)
        pytest.skip(message)
    admin = create_engine(pg_base_url(), isolation_level="AUTOCOMMIT")
    try:
        with scratch_schema(admin, "dockerfile_replay") as url:
            yield url
    finally:
        admin.dispose()


def http(url: str, body: bytes | None = None, headers: Mapping[str, str] | None = None) -> tuple[int, Any]:
    request = urllib.request.Request(url, data=body, headers=dict(headers or {}))
    try:
        with urllib.request.urlopen(request, timeout=REQUEST_TIMEOUT_S) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode(errors="replace")


def test_the_dockerfile_and_compose_service_replayed_on_this_machine(tmp_path: Path, pg_schema_url: str) -> None:
    instructions = parse_dockerfile((ROOT / "Dockerfile").read_text())
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    service = compose["services"][COMPOSE_SERVICE]
    assert service["build"] == ".", "docker-compose.yml: the service is not built from this Dockerfile"

    context = build_context(tmp_path / "context")
    mapping = {"/app": tmp_path / "app", "/venv": tmp_path / "venv"}
    env = {"PATH": IMAGE_PATH, "HOME": os.environ["HOME"]}
    env.update({k: v for k, v in os.environ.items() if HOST_SETTINGS.search(k)})
    workdir = Path("/")
    exposed: list[str] = []
    cmd: Instruction | None = None
    for instruction in instructions:
        match instruction.keyword:
            case "FROM":
                check_base_image(instruction)
            case "RUN" if instruction.args.startswith("apt-get"):
                check_apt_step(instruction)
            case "RUN":
                run_step(instruction, workdir, env, mapping)
            case "WORKDIR":
                workdir = Path(map_paths(instruction.args, mapping))
                if not workdir.is_relative_to(tmp_path):
                    instruction.fail("no stand-in for this directory")
                workdir.mkdir(parents=True, exist_ok=True)
            case "COPY":
                copy_into(instruction, context, workdir, mapping)
            case "ENV":
                apply_env(instruction, env, mapping)
            case "EXPOSE":
                exposed += [port.partition("/")[0] for port in instruction.args.split()]
            case "CMD":
                cmd = instruction
            case _:
                instruction.fail("an instruction this replay does not know")
    assert cmd is not None, "Dockerfile: no CMD"

    # the compose service: its command (else the image's CMD), environment and bind mounts
    argv: list[str] = service.get("command") or json.loads(cmd.args)
    if "--port" not in argv or argv[argv.index("--port") + 1] not in exposed:
        cmd.fail(f"the command {argv} does not serve the EXPOSEd port {exposed}")
    published = [str(p).rpartition(":")[2] for p in service.get("ports", [])]
    assert published and set(published) <= set(exposed), f"docker-compose.yml: ports {published} vs EXPOSE {exposed}"
    run_mapping: dict[str, Path] = dict(mapping)
    for volume in service.get("volumes", []):
        source, target = volume.split(":")[:2]
        assert source.startswith("."), f"docker-compose.yml: volume {volume} is not a bind mount of this checkout"
        run_mapping[target] = ROOT / source
        assert (ROOT / source).exists(), f"docker-compose.yml: volume {volume}: {source} does not exist"
    variables = service["environment"]
    if isinstance(variables, list):
        variables = dict(v.partition("=")[::2] for v in variables)
    run_env = {**env, **{k: interpolate(str(v), {"METARISK_API_KEYS": API_KEY}) for k, v in variables.items()}}
    # the `db` host exists only in compose: the local PostgreSQL stands in, on a schema of its own
    compose_db = make_url(run_env["DATABASE_URL"])
    db = compose["services"][compose_db.host]["environment"]
    assert (compose_db.username, compose_db.password, compose_db.database) == (
        db["POSTGRES_USER"], db["POSTGRES_PASSWORD"], db["POSTGRES_DB"]
    ), "docker-compose.yml: the service's DATABASE_URL does not name the db service's database and user"
    run_env["DATABASE_URL"] = make_url(pg_schema_url).set(drivername=compose_db.drivername).render_as_string(False)

    port = free_port()
    argv = [map_paths(arg, run_mapping) for arg in argv]
    argv[argv.index("--port") + 1] = str(port)
    if "--host" in argv:
        argv[argv.index("--host") + 1] = "127.0.0.1"
    executable = shutil.which(argv[0], path=run_env["PATH"])
    if executable is None:
        cmd.fail(f"{argv[0]} is not on the image's PATH {run_env['PATH']}")
    log = tmp_path / "service.log"
    with log.open("wb") as output:
        process = subprocess.Popen([executable, *argv[1:]], cwd=workdir, env=run_env, stdout=output,
                                   stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_DEADLINE_S
        while True:  # poll readiness: the service migrates the schema and starts its scheduler first
            if process.poll() is not None:
                cmd.fail(f"`{shlex.join(argv)}` exited {process.returncode} before answering:\n{log.read_text()}")
            try:
                status, health = http(f"{base}/health")
                break
            except (urllib.error.URLError, ConnectionError):
                if time.monotonic() > deadline:
                    cmd.fail(f"no answer at {base}/health within {START_DEADLINE_S} s:\n{log.read_text()}")
                time.sleep(0.2)
        assert status == 200, health
        assert HealthReport.model_validate(health) == HealthReport(
            status="ok",
            version=tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"],
            schema_version=SCHEMA_VERSION,
            params_version=default_params().version,
            aggregator=True,
        )

        status, document = http(f"{base}/openapi.json")
        assert status == 200, document
        assert document["openapi"].startswith("3.1.") and "/v1/margin" in document["paths"]

        body = {"positions": [option(-1, "call", 110_000), position("spot", asset="USDC", quantity=20_000)],
                "market": market()}
        expected = compute_margin_request(MarginRequest.model_validate(body)).maintenance_margin_usd
        status, denied = http(f"{base}/v1/margin", json.dumps(body).encode(), {"Content-Type": "application/json"})
        assert status == 401, denied  # the compose keys guard it, not the built-in demo key
        status, report = http(f"{base}/v1/margin", json.dumps(body).encode(),
                              {"Content-Type": "application/json", "X-API-Key": API_KEY})
        assert status == 200, report
        assert report["maintenance_margin_usd"] == pytest.approx(expected, rel=1e-9, abs=0.0)

        process.send_signal(signal.SIGTERM)
        try:
            returncode = process.wait(timeout=STOP_DEADLINE_S)
        except subprocess.TimeoutExpired:
            cmd.fail(f"still running {STOP_DEADLINE_S} s after SIGTERM:\n{log.read_text()}")
        assert returncode == 0, log.read_text()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert "Traceback" not in log.read_text(), log.read_text()
