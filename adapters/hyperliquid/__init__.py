"""Hyperliquid positions: perps on the main dex and every HIP-3 dex (clearinghouseState per dex), spot balances."""
