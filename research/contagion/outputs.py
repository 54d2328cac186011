"""A cascade's files for researchers: summary.json, Parquet tables per round and per contagion edge, PNG plots."""

from __future__ import annotations

import json
import math
from dataclasses import asdict
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only, no screen
import matplotlib.pyplot as plt  # noqa: E402
import pyarrow as pa  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402

from research.contagion.cascade import CascadeResult  # noqa: E402
from research.contagion.population import VENUES  # noqa: E402


def summary(result: CascadeResult) -> dict[str, Any]:
    """The JSON summary: the keys scripts rely on (docs/contagion.md), every figure finite."""
    document = {
        "params_version": result.params_version,
        "params_sha256": result.params_sha256,
        "shock": result.shock,
        "initial_prices": result.initial_prices,
        "rounds": result.rounds,
        "reached_fixed_point": result.reached_fixed_point,
        "liquidated_usd": result.liquidated_usd,
        "liquidated_usd_by_venue": result.liquidated_usd_by_venue,
        "bad_debt_usd_by_venue": result.bad_debt_usd_by_venue,
        "final_prices": result.final_prices,
        "depth_source": result.depth_source,
        "per_round": [asdict(r) for r in result.per_round],
        "contagion": [asdict(edge) for edge in result.contagion],
    }
    _check_finite(document, "summary")
    return document


def _check_finite(value: Any, where: str) -> None:
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{where} is not finite")
    if isinstance(value, dict):
        for key, item in value.items():
            _check_finite(item, f"{where}.{key}")
    if isinstance(value, list):
        for index, item in enumerate(value):
            _check_finite(item, f"{where}[{index}]")


def rounds_table(result: CascadeResult) -> pa.Table:
    """One row per round, venue and asset: liquidated USD and net units sold, with the round's price."""
    rows: dict[str, list[Any]] = {"round": [], "venue": [], "asset": [], "liquidated_usd": [], "price": []}
    for r in result.per_round:
        for venue in VENUES:
            for asset, value in r.liquidated_usd_by_venue_asset[venue].items():
                rows["round"].append(r.round)
                rows["venue"].append(venue)
                rows["asset"].append(asset)
                rows["liquidated_usd"].append(value)
                rows["price"].append(r.prices[asset])
    return pa.table(rows)


def write_outputs(result: CascadeResult, directory: Path) -> dict[str, Path]:
    directory.mkdir(parents=True, exist_ok=True)
    files = {
        "summary": directory / "summary.json",
        "rounds": directory / "rounds.parquet",
        "contagion": directory / "contagion.parquet",
        "cascade_plot": directory / "cascade.png",
        "contagion_plot": directory / "contagion.png",
    }
    files["summary"].write_text(json.dumps(summary(result), indent=2))
    pq.write_table(rounds_table(result), files["rounds"])
    pq.write_table(pa.Table.from_pylist([asdict(e) for e in result.contagion],
                                        schema=pa.schema([("source", pa.string()), ("target", pa.string()),
                                                          ("round", pa.int64()), ("value_usd", pa.float64())])),
                   files["contagion"])
    _plot_cascade(result, files["cascade_plot"])
    _plot_contagion(result, files["contagion_plot"])
    return files


def _plot_cascade(result: CascadeResult, path: Path) -> None:
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(8, 6), sharex=True)
    rounds = [r.round for r in result.per_round]
    bottom_stack = [0.0] * len(rounds)
    for venue in VENUES:
        values = [r.liquidated_usd_by_venue[venue] / 1e6 for r in result.per_round]
        top.bar(rounds, values, bottom=bottom_stack, label=venue)
        bottom_stack = [a + b for a, b in zip(bottom_stack, values, strict=True)]
    top.set_ylabel("liquidated (USD m)")
    top.legend()
    for asset, start in result.initial_prices.items():
        series = [r.prices[asset] / start for r in result.per_round]
        if max(series, default=1.0) != min(series, default=1.0) or asset in result.shock:
            bottom.plot(rounds, series, marker="o", label=asset)
    bottom.set_ylabel("price / pre-shock")
    bottom.set_xlabel("round")
    bottom.legend()
    fig.suptitle(f"cascade: {result.rounds} rounds, {result.liquidated_usd / 1e6:,.1f}m USD liquidated")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _plot_contagion(result: CascadeResult, path: Path) -> None:
    """The contagion graph: nodes on a circle (the shock and the venues), arrows weighted by value."""
    nodes = ["shock", *VENUES]
    position = {n: (math.cos(2 * math.pi * i / len(nodes)), math.sin(2 * math.pi * i / len(nodes)))
                for i, n in enumerate(nodes)}
    weight: dict[tuple[str, str], float] = {}
    for edge in result.contagion:
        weight[(edge.source, edge.target)] = weight.get((edge.source, edge.target), 0.0) + edge.value_usd
    largest = max(weight.values(), default=1.0)
    fig, ax = plt.subplots(figsize=(6, 6))
    for (source, target), value in weight.items():
        (x0, y0), (x1, y1) = position[source], position[target]
        if source == target:
            ax.add_patch(plt.Circle((x0 * 1.15, y0 * 1.15), 0.12, fill=False, lw=0.5 + 6 * value / largest))
            continue
        # bent to the right of its direction, so the two edges of a pair and their labels stay apart
        ax.annotate("", xy=(x1, y1), xytext=(x0, y0),
                    arrowprops={"arrowstyle": "->", "lw": 0.5 + 6 * value / largest, "shrinkA": 18, "shrinkB": 18,
                                "connectionstyle": "arc3,rad=0.2"})
        label_x, label_y = (x0 + x1) / 2 + 0.1 * (y1 - y0), (y0 + y1) / 2 - 0.1 * (x1 - x0)
        ax.text(label_x, label_y, f"{value / 1e6:,.1f}m", fontsize=8, ha="center")
    for node, (x, y) in position.items():
        ax.text(x, y, node, ha="center", va="center", bbox={"boxstyle": "round", "fc": "white"})
    ax.set_xlim(-1.5, 1.5)
    ax.set_ylim(-1.5, 1.5)
    ax.set_axis_off()
    ax.set_title("contagion: liquidations caused, by venue (USD)")
    fig.savefig(path, dpi=100)
    plt.close(fig)
