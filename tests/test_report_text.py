"""The text report explains the figure: the offset decomposition with the credit each offset earned, and each
venue's own maintenance margin beside the universal one with what makes them differ. Checked against the report's
own values and against figures worked out here."""

from __future__ import annotations

from support.explained import ETH_MAX_LEVERAGE, explained_request

from api.report_text import render_report
from risk_core.margin.engine import compute_margin_request


def money(x: float) -> str:
    return f"{x:,.2f}"


def test_the_offsets_and_the_venue_comparison_are_printed_with_the_reports_values() -> None:
    request = explained_request()
    report = compute_margin_request(request)
    text = render_report(report)
    off = report.offsets
    assert off is not None and len(off.risk_by_chain_usd) >= 3  # the demo spans chains: offsets to explain
    # the three levels, each chain and venue-account, and the combination, with the report's values
    assert f"everything netted as one portfolio        {money(off.everything_usd):>16}" in text
    assert f"each chain netted alone, summed           {money(off.chains_siloed_usd):>16}" in text
    for chain, risk in off.risk_by_chain_usd.items():
        assert f"{chain:<36} {money(risk):>18}" in text
    for level in off.risk_by_venue_account:
        assert f"{level.venue} {level.chain} {level.account}"[:36] in text
    credited = off.cross_chain_credit * (off.chains_siloed_usd - off.everything_usd)
    assert f"x 25% credited = {money(credited)}" in text
    combined = off.venue_accounts_siloed_usd - off.cross_chain_credit_usd - off.cross_venue_credit_usd
    assert f"= {money(combined)}" in text and money(report.risk_usd) == money(combined)
    assert "a hedge on another chain earns 25% of its offset" in " ".join(text.split())

    # Hyperliquid's own MM (notional / (2 x 25)) beside the universal MM of its venue-account alone
    (venue,) = report.venue_margins
    perp = next(p for p in request.positions if p.venue == "hyperliquid")
    own = abs(perp.quantity) * request.market.spot["ETH"] / (2 * ETH_MAX_LEVERAGE)  # type: ignore[union-attr]
    assert venue.venue_maintenance_margin_usd == own
    assert f"venue's own MM     {money(own):>16}" in text
    universal = venue.universal_maintenance_margin_usd
    assert universal is not None and venue.universal_risk_usd is not None
    assert venue.universal_contingency_usd is not None
    assert universal == venue.universal_risk_usd + venue.universal_contingency_usd
    assert f"universal MM       {money(universal):>16}  (scenario risk {money(venue.universal_risk_usd)}" in text
    assert f"ratio              {universal / own:>15.1f}x" in text
    assert "notional / (2 x its max leverage)" in " ".join(text.split())
    assert max(map(len, text.splitlines()[-20:])) <= 120
