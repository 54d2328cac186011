"""Start the devnet: three anvil chains loaded from the cached deployed state, building that cache when cold.

The cache key hashes everything that shapes the deployed state (package-lock.json, the deploy code, our
contracts, the chains-file model, the Multicall3 transaction), so a change to any of them rebuilds it.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from web3 import Web3

from chains.config import ChainsFile, dump_chains_file
from devnet.deploy import DEMO_ACCOUNT, DEPLOYER, INTERFACES_DIR, PLANS, ChainPlan, deploy_chain, refresh_feeds
from devnet.errors import DevnetError
from devnet.manifest import DevnetChain, DevnetManifest, load_manifest
from devnet.node import AnvilNode, start_anvil
from devnet.solidity import REPO_ROOT, compile_sources

MANIFEST = "manifest.json"


def compute_cache_key() -> str:
    digest = hashlib.sha256()
    inputs = [
        REPO_ROOT / "package-lock.json",
        REPO_ROOT / "chains" / "config.py",
        INTERFACES_DIR / "multicall3" / "presigned_deploy_tx.txt",
        *sorted((REPO_ROOT / "devnet").glob("*.py")),
        *sorted((REPO_ROOT / "contracts").glob("*.sol")),
    ]
    for path in inputs:
        digest.update(path.relative_to(path.parent.parent).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def default_cache_root() -> Path:
    return Path(os.environ.get("METARISK_DEVNET_CACHE", REPO_ROOT / ".devnet-cache"))


def _build_chain(plan: ChainPlan, directory: Path) -> DevnetChain:
    node = start_anvil(chain_id=plan.chain_id)
    try:
        chain = deploy_chain(Web3(Web3.HTTPProvider(node.url, request_kwargs={"timeout": 60})), plan)
        node.dump_state(directory / f"{plan.name}.state.json")
        return chain
    finally:
        node.stop()


def build_cache(directory: Path) -> DevnetManifest:
    """Deploy and seed every chain on fresh nodes, save their states and the manifest (chains in parallel)."""
    # The first start of a checkout lands here for a minute or so: say so rather than sit silent.
    print(f"devnet: building the deployed-state cache in {directory} (first run only)", file=sys.stderr, flush=True)
    compile_sources()  # once, before the threads share it
    directory.parent.mkdir(parents=True, exist_ok=True)
    # A private staging directory: two test sessions building at once must not share one.
    staging = Path(tempfile.mkdtemp(prefix=directory.name + ".partial-", dir=directory.parent))
    with ThreadPoolExecutor(max_workers=len(PLANS)) as pool:
        chains = list(pool.map(lambda plan: _build_chain(plan, staging), PLANS))
    manifest = DevnetManifest(demo_account=DEMO_ACCOUNT, deployer=DEPLOYER, chains=chains)
    (staging / MANIFEST).write_text(manifest.model_dump_json(indent=2))
    # A cache directory exists only whole: an interrupted build leaves nothing that looks valid. When another
    # session finished the same build first, its copy stands and ours goes.
    try:
        staging.rename(directory)
    except OSError:
        shutil.rmtree(staging, ignore_errors=True)
        return load_manifest(directory / MANIFEST)
    for stale in directory.parent.iterdir():
        if stale.name != directory.name and ".partial-" not in stale.name:
            shutil.rmtree(stale, ignore_errors=True)
    return manifest


@dataclass
class RunningDevnet:
    manifest: DevnetManifest
    nodes: dict[str, AnvilNode]  # by chain name

    @property
    def chains(self) -> ChainsFile:
        return ChainsFile(
            chains=[
                chain.config.model_copy(update={"rpc_urls": [self.nodes[chain.config.name].url]})
                for chain in self.manifest.chains
            ]
        )

    def write_chains_file(self, path: Path) -> None:
        dump_chains_file(self.chains, path)

    def stop(self) -> None:
        for node in self.nodes.values():
            node.stop()


def start_devnet(*, cache_root: Path | None = None) -> RunningDevnet:
    """Raises:
    DevnetError: a node does not start or the deployment fails."""
    directory = (cache_root or default_cache_root()) / compute_cache_key()
    manifest = load_manifest(directory / MANIFEST) if (directory / MANIFEST).exists() else build_cache(directory)
    nodes: dict[str, AnvilNode] = {}
    try:
        for chain in manifest.chains:
            node = start_anvil(chain_id=chain.config.chain_id, state_file=directory / f"{chain.config.name}.state.json")
            nodes[chain.config.name] = node
            refresh_feeds(Web3(Web3.HTTPProvider(node.url)), chain)
    except DevnetError:
        for node in nodes.values():
            node.stop()
        raise
    return RunningDevnet(manifest=manifest, nodes=nodes)
