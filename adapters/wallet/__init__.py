"""Wallet balances: the native coin and every ERC-20 of the chains file."""

from adapters.wallet.adapter import WalletAdapter

__all__ = ["WalletAdapter"]
