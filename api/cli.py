"""The `metarisk` command line. Bad input exits 2 with one line per problem naming the field."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from pydantic import ValidationError

from api.backtest_cli import add_parser as add_backtest_parser
from api.batch_cli import add_parser as add_batch_parser
from api.cascade_cli import add_parsers as add_cascade_parsers
from api.errors import InvalidRequest, compute_request_report, describe_validation_error, problem_lines
from api.fhs_history import with_recorded_history
from api.pools_cli import add_parsers as add_pools_parsers
from api.report_text import render_report
from api.surface_cli import add_parser as add_surface_parser
from api.venue_margin_cli import add_parser as add_venue_margin_parser
from risk_core.schema.json_schema import schema_documents
from risk_core.schema.positions import SCHEMA_VERSION
from risk_core.schema.request import MarginRequest

EXIT_BAD_INPUT = 2


class BadInput(Exception):
    def __init__(self, lines: list[str]) -> None:
        super().__init__("\n".join(lines))
        self.lines = lines


def read_json_file(path: str) -> object:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as e:
        raise BadInput([f"{path}: cannot read: {e.strerror}"]) from e
    except UnicodeDecodeError as e:
        raise BadInput([f"{path}: not UTF-8 text (byte {e.start} is {e.object[e.start]:#04x})"]) from e
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise BadInput([f"{path}: invalid JSON at line {e.lineno} column {e.colno}: {e.msg}"]) from e
    except RecursionError as e:
        raise BadInput([f"{path}: JSON nested too deeply"]) from e


def _margin(args: argparse.Namespace) -> str:
    raw = read_json_file(args.request)
    try:
        report = compute_request_report(with_recorded_history(MarginRequest.model_validate(raw)))
    except ValidationError as e:
        raise BadInput(describe_validation_error(e)) from e
    except InvalidRequest as e:
        raise BadInput(problem_lines(e)) from e
    if args.format == "text":
        return render_report(report)
    return report.model_dump_json(indent=2) + "\n"


def _schema(args: argparse.Namespace) -> str:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for name, document in schema_documents().items():
        (out / name).write_text(json.dumps(document, indent=2, sort_keys=True) + "\n")
    return f"wrote {len(schema_documents())} schema files to {out}\n"


def _serve(args: argparse.Namespace) -> str:
    if args.workers < 1:
        raise BadInput([f"--workers: {args.workers} is not a number of processes (at least 1)"])
    own_metrics_dir = None
    if args.workers > 1 and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        # the workers' metric files meet here; named before prometheus_client is imported, which reads it once
        own_metrics_dir = os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="metarisk-metrics-")
    from api.http.server import serve  # imported here: the other commands need not load aiohttp and strawberry

    try:
        serve(host=args.host, port=args.port, workers=args.workers)
    finally:
        if own_metrics_dir is not None:
            shutil.rmtree(own_metrics_dir, ignore_errors=True)
    return ""


def _demo(args: argparse.Namespace) -> str:
    import asyncio

    from aggregator.attestation_signer import load_signer
    from api.demo import check_port_free, serve_demo  # imported here: it starts the devnet and the local venues

    try:
        load_signer(os.environ)  # an attestation key the environment names, checked before anything starts
    except ValueError as e:
        raise BadInput([str(e)]) from e
    try:
        check_port_free(args.host, args.port)
    except OSError as e:
        raise BadInput([f"--port: cannot listen on {args.host}:{args.port} ({e.strerror}); is another metarisk "
                        "demo running? Stop it or pick another --port"]) from e
    asyncio.run(serve_demo(host=args.host, port=args.port, database_url=os.environ.get("DATABASE_URL")))
    return ""


def _service(args: argparse.Namespace) -> str:
    import asyncio

    import yaml
    from pydantic import ValidationError as SettingsError

    from aggregator.attestation_signer import load_signer
    from api.production import load_service_chains, load_service_settings, serve_service
    from chains.errors import ChainConfigError

    try:
        settings = load_service_settings(Path(args.config), os.environ)
        chains = load_service_chains(settings)
        attestation_signer = load_signer(os.environ)
    except ChainConfigError as e:
        raise BadInput([f"{args.config}: {e}"]) from e
    except OSError as e:
        raise BadInput([f"{args.config}: cannot read: {e.strerror}"]) from e
    except yaml.YAMLError as e:
        raise BadInput([f"{args.config}: invalid YAML: {e}"]) from e
    except SettingsError as e:
        raise BadInput([f"{args.config}: {line}" for line in describe_validation_error(e)]) from e
    except ValueError as e:  # the attestation key's variables, named in the message
        raise BadInput([str(e)]) from e
    if not os.environ.get("METARISK_API_KEYS", "").strip():
        # the built-in demo key must never guard a real service
        raise BadInput(["METARISK_API_KEYS: set the service's API keys (comma-separated)"])
    asyncio.run(serve_service(settings, chains, host=args.host, port=args.port, attestation_signer=attestation_signer))
    return ""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="metarisk", description="cross-chain portfolio margin")
    commands = parser.add_subparsers(dest="command", required=True)
    margin = commands.add_parser("margin", help="margin report of a request {positions, market, params}")
    margin.add_argument("request", help="path of the request JSON")
    margin.add_argument("--format", choices=("json", "text"), default="json")
    margin.set_defaults(run=_margin)
    schema = commands.add_parser("schema", help="write the JSON Schema files of the public models")
    schema.add_argument("out", nargs="?", default=f"schema/v{SCHEMA_VERSION}")
    schema.set_defaults(run=_schema)
    serve = commands.add_parser("serve", help="serve the REST and GraphQL API (what-if margin; no aggregator yet)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8080)
    serve.add_argument("--workers", type=int, default=1, help="processes serving the port (default 1)")
    serve.set_defaults(run=_serve)
    demo = commands.add_parser("demo", help="devnet + local venues + the service with a seeded demo account")
    demo.add_argument("--host", default="127.0.0.1")
    demo.add_argument("--port", type=int, default=8080)
    demo.set_defaults(run=_demo)
    service = commands.add_parser("service", help="the aggregator service against the chains and venues of a config")
    service.add_argument("config", help="ServiceSettings as YAML (see examples/service.yaml)")
    service.add_argument("--host", default="127.0.0.1")
    service.add_argument("--port", type=int, default=8080)
    service.set_defaults(run=_service)
    add_venue_margin_parser(commands)
    add_surface_parser(commands)
    add_batch_parser(commands)
    add_backtest_parser(commands, BadInput)
    add_cascade_parsers(commands)
    add_pools_parsers(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        sys.stdout.write(args.run(args))
    except BadInput as e:
        for line in e.lines:
            print(f"error: {line}", file=sys.stderr)
        return EXIT_BAD_INPUT
    return 0


if __name__ == "__main__":
    sys.exit(main())
