"""The live devnet for tests: started once per session from the cached deployed state (seconds when warm)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from web3 import Web3

import reference_data
from chains.client import ChainClient, RpcPolicy, make_chain_clients
from devnet.run import RunningDevnet, start_devnet

INTERFACES = reference_data.path("interfaces")
TEST_POLICY = RpcPolicy(timeout_seconds=2.0, retries=3, backoff_seconds=0.05)


def load_abi(relative: str) -> list[dict[str, Any]]:
    data = json.loads((INTERFACES / relative).read_text())
    return data["abi"] if isinstance(data, dict) else data


@pytest.fixture(scope="session")
def devnet() -> Iterator[RunningDevnet]:
    running = start_devnet()
    yield running
    running.stop()


@pytest.fixture
def web3s(devnet: RunningDevnet) -> dict[str, Web3]:
    """Synchronous web3 per chain, for the tests' own independent reads and transactions."""
    return {name: Web3(Web3.HTTPProvider(node.url)) for name, node in devnet.nodes.items()}


@pytest.fixture
def restore_chains(devnet: RunningDevnet) -> Iterator[None]:
    """Every chain rolled back after the test: tests that move prices leave the session's devnet as it was."""
    snapshots = {name: node.rpc("evm_snapshot", []) for name, node in devnet.nodes.items()}
    yield
    for name, node in devnet.nodes.items():
        node.rpc("evm_revert", [snapshots[name]])


@pytest.fixture
async def clients(devnet: RunningDevnet) -> AsyncIterator[dict[str, ChainClient]]:
    made = await make_chain_clients(devnet.chains, policy=TEST_POLICY)
    yield made
    for client in made.values():
        await client.close()
