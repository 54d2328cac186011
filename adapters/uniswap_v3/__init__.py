"""Uniswap v3 ranges held as NonfungiblePositionManager tokens: exact amounts and uncollected fees."""

from adapters.uniswap_v3.adapter import UniswapV3Adapter

__all__ = ["UniswapV3Adapter"]
