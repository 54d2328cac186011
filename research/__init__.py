"""Research tooling above risk_core: margin backtests and the published evidence (docs/backtests.md)."""
