"""Aave v3: per-reserve supply and debt, e-mode, liquidation thresholds and the venue's own health factor."""

from adapters.aave_v3.adapter import AaveV3Adapter

__all__ = ["AaveV3Adapter"]
