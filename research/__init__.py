"""Research tooling above risk_core: margin backtests and the published evidence (docs/backtests.md), and
studies of many wallets at once (contagion cascades over populations); never the service's API."""
