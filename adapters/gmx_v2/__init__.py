"""GMX v2 perpetuals through the Reader's getAccountPositions and getMarket."""

from adapters.gmx_v2.adapter import GmxV2Adapter

__all__ = ["GmxV2Adapter"]
