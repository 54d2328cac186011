"""Scenario sweeps: the liquidatable-value curve, and VaR / LaR of a scenario set (Gauntlet's measures: VaR is a
quantile of the insolvent debt a scenario leaves, LaR a quantile of the value it liquidates)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from research.contagion.cascade import CascadeResult  # noqa: E402


@dataclass(frozen=True)
class SweepPoint:
    shock: dict[str, float]
    liquidatable_usd: float  # liquidated at the shocked prices alone (round 0): Perez et al.'s figure
    liquidated_usd: float  # through the whole cascade
    bad_debt_usd: float
    rounds: int


@dataclass(frozen=True)
class SweepSummary:
    points: list[SweepPoint]
    var_95_usd: float
    var_99_usd: float
    lar_95_usd: float
    lar_99_usd: float


def summarise(results: list[CascadeResult]) -> SweepSummary:
    """Each scenario weighs the same; quantiles interpolate linearly (numpy's default)."""
    points = [
        SweepPoint(
            shock=r.shock,
            liquidatable_usd=r.per_round[0].liquidated_usd if r.per_round else 0.0,
            liquidated_usd=r.liquidated_usd,
            bad_debt_usd=sum(r.bad_debt_usd_by_venue.values()),
            rounds=r.rounds,
        )
        for r in results
    ]
    bad_debt = np.array([p.bad_debt_usd for p in points])
    liquidated = np.array([p.liquidated_usd for p in points])
    return SweepSummary(
        points=points,
        var_95_usd=float(np.quantile(bad_debt, 0.95)),
        var_99_usd=float(np.quantile(bad_debt, 0.99)),
        lar_95_usd=float(np.quantile(liquidated, 0.95)),
        lar_99_usd=float(np.quantile(liquidated, 0.99)),
    )


def grid_shocks(assets: list[str], start: float, stop: float, count: int) -> list[dict[str, float]]:
    """`count` shocks from `start` to `stop`, the same move on every asset named."""
    return [{asset: float(move) for asset in assets} for move in np.linspace(start, stop, count)]


def write_sweep(summary: SweepSummary, directory: Path) -> dict[str, Path]:
    directory.mkdir(parents=True, exist_ok=True)
    files = {"sweep": directory / "sweep.json", "curve": directory / "liquidatable_curve.png"}
    files["sweep"].write_text(json.dumps({
        "var_95_usd": summary.var_95_usd, "var_99_usd": summary.var_99_usd,
        "lar_95_usd": summary.lar_95_usd, "lar_99_usd": summary.lar_99_usd,
        "points": [p.__dict__ for p in summary.points],
    }, indent=2))
    moves = [min(p.shock.values(), default=0.0) * 100 for p in summary.points]
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(moves, [p.liquidatable_usd / 1e6 for p in summary.points], marker="o", label="liquidatable at the shock")
    ax.plot(moves, [p.liquidated_usd / 1e6 for p in summary.points], marker="s", label="liquidated by the cascade")
    ax.plot(moves, [p.bad_debt_usd / 1e6 for p in summary.points], marker="x", label="bad debt")
    ax.set_xlabel("shock (%)")
    ax.set_ylabel("USD m")
    ax.legend()
    ax.set_title("liquidatable value per price move")
    fig.tight_layout()
    fig.savefig(files["curve"], dpi=100)
    plt.close(fig)
    return files
