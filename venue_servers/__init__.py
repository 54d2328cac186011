"""Local aiohttp servers that speak the real routes of Deribit, Derive, Hyperliquid and Pyth Hermes.

They serve fixtures built from the recorded data of reference_data (Deribit option chains, Pyth and Chainlink prices),
validate every response they send against the venue's real specification in reference_data/interfaces (OpenAPI for
Deribit and Derive, the recorded response for Hyperliquid), and can be told to fail (HTTP 500, a hang, malformed
JSON) per route. Used by tests, the aggregator's tests and the demo; nothing in production imports them.
"""
