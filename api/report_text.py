"""The margin report as a table a person can read in a terminal."""

from __future__ import annotations

import textwrap
from datetime import date

from risk_core.schema.report import MarginReport


def _fmt(x: float, spec: str) -> str:
    """`format(x, spec)`, except that a figure shown as zero is shown without a minus ("0.00", never "-0.00")."""
    text = format(x, spec)
    return format(0.0, spec) if "-" in text and not any(c in "123456789" for c in text) else text


def _money(x: float) -> str:
    return _fmt(x, ",.2f")


def _pct(x: float | None) -> str:
    return "n/a" if x is None else _fmt(x, "+.1%")


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
        *(f"    {asset} depth: {source}" for asset, source in report.liquidity_depth_source.items()
          if source != "depth curve"),
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
            f" {(p.underlying or '-'):<10} {_money(p.value_usd):>14} {_fmt(p.delta, '>10.4f')} {_fmt(p.vega, '>10.2f')}"
            f" {_money(p.standalone_margin_usd):>14}"
        )
    for asset, u in report.underlyings.items():
        w = u.worst_scenario
        lines += [
            "",
            f"  {asset}  spot {_money(u.spot)}  risk {_money(u.risk_usd)}  worst: spot {_pct(w.spot_shock)}"
            f" vol {_fmt(w.vol_shock, '+.0%')} ({w.name or w.kind}{_dated(w.date)})",
            f"    delta {_fmt(u.delta, ',.4f')} ({_money(u.delta_usd)} USD)  gamma {_fmt(u.gamma_usd, ',.2f')} USD/1%"
            f"  vega {_fmt(u.vega, ',.2f')}  theta {_fmt(u.theta, ',.2f')}/day"
            f"  liquidation at {_pct(u.liquidation_move.down)} / {_pct(u.liquidation_move.up)}",
            "    P&L grid (rows: spot shock, columns: vol shock)",
            "    " + f"{'':>8}" + "".join(f"{v:>+14.0%}" for v in u.grid.vol_shocks),
        ]
        for s, row in zip(u.grid.spot_shocks, u.grid.pnl, strict=True):
            lines.append("    " + _fmt(s, ">+8.1%") + "".join(_fmt(x, ">14,.0f") for x in row))
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
    lines += _offset_lines(report) + _venue_comparison_lines(report)
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


def _offset_lines(report: MarginReport) -> list[str]:
    """How the combined scenario risk is built from the netting levels, and what each offset was credited."""
    off = report.offsets
    if off is None:
        return []
    lines = [
        "",
        "  offsets: the scenario risk (before contingencies) at each level of netting",
        f"    everything netted as one portfolio        {_money(off.everything_usd):>16}",
        f"    each chain netted alone, summed           {_money(off.chains_siloed_usd):>16}",
    ]
    lines += [f"      {chain[:36]:<36} {_money(risk):>18}" for chain, risk in off.risk_by_chain_usd.items()]
    lines.append(f"    each venue-account netted alone, summed   {_money(off.venue_accounts_siloed_usd):>16}")
    lines += [
        f"      {(a.venue + ' ' + a.chain + ' ' + a.account)[:36]:<36} {_money(a.risk_usd):>18}"
        for a in off.risk_by_venue_account
    ]
    lines += [
        f"    offset across chains      {_money(off.cross_chain_offset_usd):>16} x {off.cross_chain_credit:.0%}"
        f" credited = {_money(off.cross_chain_credit_usd)}",
        f"    offset across venues      {_money(off.cross_venue_offset_usd):>16} x {off.cross_venue_credit:.0%}"
        f" credited = {_money(off.cross_venue_credit_usd)}",
        f"    combined risk = {_money(off.venue_accounts_siloed_usd)} - {_money(off.cross_chain_credit_usd)}"
        f" - {_money(off.cross_venue_credit_usd)} = {_money(off.combined_risk_usd)}",
    ]
    if off.cross_chain_offset_usd > 0 and off.cross_chain_credit < 1:
        lines += _wrapped(
            f"a hedge on another chain earns {off.cross_chain_credit:.0%} of its offset (one liquidator cannot"
            " seize both legs): the uncredited part stays in the figure, and can raise it", indent=4
        )
    return lines


def _venue_comparison_lines(report: MarginReport) -> list[str]:
    """Each venue's own maintenance margin beside the universal one of the same venue-account, and why they
    differ: the venue's method, and the universal figure's scenario risk and contingencies."""
    if not report.venue_margins:
        return []
    lines = ["", "  universal vs the venue's own margin (each venue-account alone)"]
    for m in report.venue_margins:
        lines.append(f"    {m.venue} {m.chain} {m.account}  ({m.method})")
        venue_mm, universal = m.venue_maintenance_margin_usd, m.universal_maintenance_margin_usd
        lines.append(
            "      venue's own MM     "
            + (f"{_money(venue_mm):>16}" if venue_mm is not None else f"{'none':>16}  (not a margin requirement)")
        )
        if universal is not None:
            parts = ""
            if m.universal_risk_usd is not None and m.universal_contingency_usd is not None:
                parts = f"  (scenario risk {_money(m.universal_risk_usd)} + contingencies"
                parts += f" {_money(m.universal_contingency_usd)})"
            lines.append(f"      universal MM       {_money(universal):>16}{parts}")
        if venue_mm is not None and universal is not None and venue_mm > 0:
            lines.append(f"      ratio              {universal / venue_mm:>15.1f}x")
        if m.venue_equity_usd is not None:
            lines.append(f"      venue's equity     {_money(m.venue_equity_usd):>16}")
        lines += _wrapped(f"the venue: {m.method_summary}", indent=6)
    lines += _wrapped(
        "the universal figure: the worst loss of the venue-account alone over the scan ranges, vol shocks, "
        "dampened tails and skew scenarios of the risk parameters, plus contingencies; in the wallet's figure it "
        "nets against the other venue-accounts with the offset credits above", indent=4
    )
    return lines


def _wrapped(text: str, *, indent: int) -> list[str]:
    return textwrap.wrap(text, width=116, initial_indent=" " * indent, subsequent_indent=" " * (indent + 2))


def _dated(day: date | None) -> str:
    """A historical scenario's date after its kind (the fhs model's scenarios are days of the history)."""
    return "" if day is None else " " + day.isoformat()
