"""`python -m devnet` (or `metarisk-devnet`): start the devnet, print its endpoints, write its chains file, and
run until interrupted."""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
import threading
from pathlib import Path

from devnet.errors import DevnetError
from devnet.run import default_cache_root, start_devnet


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="metarisk-devnet", description=__doc__)
    parser.add_argument("--chains-file", type=Path, default=Path("devnet-chains.yaml"), help="where to write it")
    parser.add_argument("--cache", type=Path, default=None, help=f"state cache (default {default_cache_root()})")
    args = parser.parse_args(argv)
    try:
        devnet = start_devnet(cache_root=args.cache)
    except DevnetError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    try:
        devnet.write_chains_file(args.chains_file)
        for chain in devnet.chains.chains:
            print(f"{chain.name:<10} chain id {chain.chain_id:<6} {chain.rpc_urls[0]}")
        print(f"demo wallet {devnet.manifest.demo_account}")
        print(f"chains file {args.chains_file.resolve()}")
        print("Ctrl-C stops the devnet.", flush=True)
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        with contextlib.suppress(KeyboardInterrupt):
            stop.wait()
    finally:
        devnet.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
