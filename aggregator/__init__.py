"""Fans out adapters and oracles, merges, caches, persists and calls risk_core."""
