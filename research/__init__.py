"""Research tooling above risk_core: studies of many wallets at once (contagion cascades), not the service's API."""
