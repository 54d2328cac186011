"""The margin report as a table a person can read in a terminal."""

from __future__ import annotations

from risk_core.schema.report import MarginReport


def _money(x: float) -> str:
    return f"{x:,.2f}"


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{x:+.1%}"


def render_report(report: MarginReport) -> str:
    lines = [
        f"metarisk margin report  as of {report.as_of.isoformat()}  params {report.params_version}"
        f"  model {report.model}"
        + ("" if report.complete else "  [INCOMPLETE: some positions are missing]"),
        "",
        f"  status                {report.status.upper()}",
        f"  equity                {_money(report.equity_usd):>18} USD",
        f"  collateral (haircut)  {_money(report.collateral_usd):>18} USD",
        f"  maintenance margin    {_money(report.maintenance_margin_usd):>18} USD"
        f"   (risk {_money(report.risk_usd)} + contingencies {_money(report.contingency_usd)}"
        f" + liquidity {_money(report.liquidity_addon_usd)})",
        f"  liquidity add-on      {_money(report.liquidity_addon_usd):>18} USD",
        f"  initial margin        {_money(report.initial_margin_usd):>18} USD",
        f"  free collateral       {_money(report.free_collateral_usd):>18} USD",
        "  margin ratio          "
        + ("n/a" if report.margin_ratio is None else f"{report.margin_ratio:>17.2%}"),
        f"  isolated margin       {_money(report.isolated_margin_usd):>18} USD"
        f"   (portfolio saves {_money(report.portfolio_saving_usd)})",
        "",
        "  positions",
        f"  {'#':>3} {'id':<18} {'kind':<7} {'venue':<12} {'chain':<11} {'underlying':<10} {'value USD':>14}"
        f" {'delta':>10} {'vega':>10} {'standalone MM':>14}",
    ]
    for p in report.positions:
        lines.append(
            f"  {p.index:>3} {(p.id or '-')[:18]:<18} {p.kind:<7} {p.venue[:12]:<12} {p.chain[:11]:<11}"
            f" {(p.underlying or '-'):<10} {_money(p.value_usd):>14} {p.delta:>10.4f} {p.vega:>10.2f}"
            f" {_money(p.standalone_margin_usd):>14}"
        )
    for asset, u in report.underlyings.items():
        w = u.worst_scenario
        lines += [
            "",
            f"  {asset}  spot {_money(u.spot)}  risk {_money(u.risk_usd)}  worst: spot {w.spot_shock:+.1%}"
            f" vol {w.vol_shock:+.0%} ({w.name or w.kind}{'' if w.date is None else ' ' + w.date.isoformat()})",
            f"    delta {u.delta:,.4f} ({_money(u.delta_usd)} USD)  gamma {u.gamma_usd:,.2f} USD/1%"
            f"  vega {u.vega:,.2f}  theta {u.theta:,.2f}/day"
            f"  liquidation at {_pct(u.liquidation_move.down)} / {_pct(u.liquidation_move.up)}",
            "    P&L grid (rows: spot shock, columns: vol shock)",
            "    " + f"{'':>8}" + "".join(f"{v:>+14.0%}" for v in u.grid.vol_shocks),
        ]
        for s, row in zip(u.grid.spot_shocks, u.grid.pnl, strict=True):
            lines.append("    " + f"{s:>+8.1%}" + "".join(f"{x:>14,.0f}" for x in row))
    if report.worst_scenarios:
        lines += ["", "  worst historical scenarios (fhs)"]
        lines += [
            f"    {w.date.isoformat()}  {_money(w.pnl_usd):>16} USD" + ("  (stressed window)" if w.stressed else "")
            for w in report.worst_scenarios
        ]
    for title, table in (("venue", report.by_venue), ("chain", report.by_chain)):
        lines += ["", f"  by {title}", f"  {'':<14} {'equity':>16} {'collateral':>16} {'MM alone':>16}"]
        for name, b in table.items():
            lines.append(
                f"  {name[:14]:<14} {_money(b.equity_usd):>16} {_money(b.collateral_usd):>16}"
                f" {_money(b.maintenance_margin_usd):>16}"
            )
    if report.liquidation_plan:
        plan = report.liquidation_plan
        lines += ["", "  liquidation plan" + ("" if plan.restores_initial_margin else " (does NOT restore IM)")]
        for step in plan.steps:
            lines.append(
                f"    close {step.fraction:.1%} of #{step.index} {step.id or ''} on {step.venue}"
                f"  cost {_money(step.cost_usd)}"
            )
    if report.warnings:
        lines += ["", "  warnings"] + [f"    - {w}" for w in report.warnings]
    return "\n".join(lines) + "\n"
