"""Session-wide fixtures: the devnet (tests/support/devnet_fixtures.py), started only by tests that ask for it."""

from support.devnet_fixtures import clients, devnet, restore_chains, web3s

__all__ = ["clients", "devnet", "restore_chains", "web3s"]
