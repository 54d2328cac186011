"""The dashboard at `/`, driven in headless Chromium (Debian's package, Playwright pointed at it): real reports from
the engine served by a stand-in RiskService, the figures on the page checked against them, and a screenshot kept
in docs/dashboard.png.

Without /usr/bin/chromium the browser tests skip, unless CI is set: there they fail (.ci/run installs chromium).
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
import urllib.request
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from support.explained import ETH_MAX_LEVERAGE, explained_request

from aggregator.history import AccountHistory, page_of_history
from aggregator.store.records import ReportHeadline, StoredReport
from api.http import ApiSettings, RateLimit, RiskService, create_app
from risk_core.margin.engine import compute_margin_request
from risk_core.schema.market import MarketSnapshot
from risk_core.schema.report import MarginReport, VenueMargin
from risk_core.schema.request import MarginRequest

ROOT = Path(__file__).resolve().parents[2]
DEMO_REQUEST = ROOT / "examples" / "demo_request.json"
SCREENSHOT = ROOT / "docs" / "dashboard.png"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
MINUS = "\u2212"
HOSTILE = '<img src=x onerror="window.__injected = 1">'


# ---------------------------------------------------------------- the reports served


def _request(
    extra_positions: Sequence[dict[str, Any]] = (),
    sources: Sequence[dict[str, Any]] = (),
    market_sources: Sequence[dict[str, Any]] = (),
) -> MarginRequest:
    """The demo request, with positions and source statuses added."""
    document = json.loads(DEMO_REQUEST.read_text())
    document["positions"].extend(extra_positions)
    document["sources"] = list(sources)
    document["market"]["sources"] = list(market_sources)
    return MarginRequest.model_validate(document)


@cache
def demo_report() -> MarginReport:
    return compute_margin_request(_request())


@cache
def liquidatable_report() -> MarginReport:
    """The demo wallet with a large extra USDC loan: collateral falls below MM, and the report plans a liquidation."""
    loan = {
        "id": "usdc-loan", "kind": "borrow", "venue": "aave-v3", "chain": "ethereum", "account": "0xdemo",
        "asset": "USDC", "quantity": 150_000,
    }  # fmt: skip
    return compute_margin_request(_request(extra_positions=[loan]))


@cache
def incomplete_report() -> MarginReport:
    """A failed position source (the report is incomplete), a stale market source, an age, and a venue's own
    figures; some strings carry markup, which must reach the page as text."""
    report = compute_margin_request(
        _request(
            sources=[{"name": "hyperliquid", "status": "failed", "reason": "timeout after 5 s"}],
            market_sources=[{"name": "pyth", "status": "stale", "reason": f"last update 95 s ago {HOSTILE}"}],
        )
    )
    venue = VenueMargin(
        venue="aave-v3",
        chain="ethereum",
        account="0xdemo",
        method="aave_health_factor",
        reproduced={"health_factor": 2.0625, "total_collateral_usd": 30_000.0, "total_debt_usd": 12_000.0},
        reported={"health_factor": 2.0631, "total_collateral_usd": 30_010.0, "total_debt_usd": 12_000.0},
        difference={"health_factor": -0.0006, "total_collateral_usd": -10.0, "total_debt_usd": 0.0},
        note="oracle prices of the venue differ from the index by 3 bp",
    )
    return report.model_copy(
        update={
            "venue_margins": [venue],
            "computed_at": datetime(2026, 11, 25, 0, 0, 42, tzinfo=UTC),
            "age_seconds": 17.0,
        }
    )


@cache
def near_liquidation_report() -> MarginReport:
    """The demo wallet leveraged: a USDC loan spent on BTC and a large ETH perp short, so that a BTC fall and an
    ETH rise each liquidate it (signed moves: down < 0, up > 0), while the account is healthy today."""
    extra = [
        {"id": "usdc-loan", "kind": "borrow", "venue": "aave-v3", "chain": "ethereum", "account": "0xdemo",
         "asset": "USDC", "quantity": 100_000},
        {"id": "btc-wallet", "kind": "spot", "venue": "wallet", "chain": "ethereum", "account": "0xdemo",
         "asset": "BTC", "quantity": 1},
        {"id": "eth-perp-big", "kind": "perp", "venue": "hyperliquid", "chain": "hyperliquid", "account": "0xdemo",
         "underlying": "ETH", "quantity": -30},
    ]  # fmt: skip
    return compute_margin_request(_request(extra_positions=extra))


WALLET = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
DERIVE_SUBACCOUNT = "0x8EF9c3a5b9A2a3E5F0dCc4D3bB9cC0F6A1e2D3C4/30769"


@cache
def addressed_report() -> MarginReport:
    """The demo wallet as a real one holds it: every position at a full EVM address, one at a Derive
    wallet/subaccount, as the service's reports name them."""
    document = _request().model_dump(mode="json")
    for i, position in enumerate(document["positions"]):
        position["account"] = DERIVE_SUBACCOUNT if i == 0 else WALLET
    return compute_margin_request(MarginRequest.model_validate(document))


# the demo account's stored reports, newest first: the report itself, then earlier margin ratios through margin
# call (above 1 / im_factor = 0.8) and liquidation (above 1)
EARLIER_RATIOS = (0.45, 0.9, 1.15, 0.7, 0.3)


@cache
def demo_history() -> list[ReportHeadline]:
    report = demo_report()
    im_factor = report.initial_margin_usd / report.maintenance_margin_usd
    assert report.margin_ratio is not None
    rows = []
    for n, ratio in enumerate((report.margin_ratio, *EARLIER_RATIOS)):
        mm = ratio * report.collateral_usd
        status = "liquidatable" if ratio > 1 else "margin_call" if ratio * im_factor > 1 else "healthy"
        rows.append(ReportHeadline(
            id=100 - n, account_id="demo", position_snapshot_id=100 - n, market_snapshot_id=1,
            computed_at=datetime(2026, 11, 25, 0, tzinfo=UTC) - timedelta(hours=n),
            equity_usd=report.equity_usd, collateral_usd=report.collateral_usd, maintenance_margin_usd=mm,
            initial_margin_usd=mm * im_factor, margin_ratio=ratio, status=status, complete=n != 3,
            params_version=report.params_version,
        ))
    return rows


@cache
def explained_report() -> MarginReport:
    """The demo request with Hyperliquid's own view of its venue-account (support/explained.py)."""
    return compute_margin_request(explained_request())


ACCOUNTS = {"demo": demo_report, "under-water": liquidatable_report, "partial": incomplete_report,
            "addressed": addressed_report, "explained": explained_report, "leveraged": near_liquidation_report}


class FakeService:
    """The RiskService protocol, answered from reports the engine computed; other methods are not on the page."""

    async def account_risk(self, account_id: str) -> MarginReport:
        if account_id not in ACCOUNTS:
            raise LookupError(account_id)
        return ACCOUNTS[account_id]()

    async def wallet_risk(self, address: str) -> MarginReport:
        raise LookupError(address)

    async def wallet_positions(self, address: str) -> MarginReport:
        raise LookupError(address)

    async def wallet_credit(self, address: str) -> MarginReport:
        raise LookupError(address)

    async def market(self, asset: str) -> MarginReport:
        raise LookupError(asset)

    async def market_snapshot(self) -> MarketSnapshot:
        raise ConnectionError("no market sources in the dashboard's tests")

    async def account_history(
        self, account_id: str, *, since: datetime | None, until: datetime | None, limit: int
    ) -> AccountHistory:
        if account_id not in ACCOUNTS:
            raise LookupError(account_id)
        rows = demo_history() if account_id == "demo" else []
        return page_of_history(account_id, rows[: limit + 1], since=since, until=until, limit=limit)

    async def stored_report(self, account_id: str, report_id: int) -> StoredReport | None:
        raise LookupError(account_id)


def test_the_fake_is_a_risk_service() -> None:
    assert isinstance(FakeService(), RiskService)


# ---------------------------------------------------------------- the server and the browser


class Server:
    """The app on a free port of 127.0.0.1, served by its own event loop in its own thread: Playwright's sync API
    keeps a loop of its own running in the test's thread."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.runner = web.AppRunner(
            create_app(
                service=FakeService(), settings=ApiSettings(rate_limit=RateLimit(per_second=1_000, burst=1_000))
            ),
            access_log=None,
        )
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    async def _start(self) -> str:
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", 0).start()
        host, port = self.runner.addresses[0][:2]
        return f"http://{host}:{port}"

    def start(self) -> str:
        self.thread.start()
        return asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(timeout=30)

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(timeout=30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=30)
        self.loop.close()


@pytest.fixture(scope="module")
def base_url() -> Iterator[str]:
    server = Server()
    try:
        yield server.start()
    finally:
        server.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        reason = f"{CHROMIUM} is absent (Debian's chromium package: apt-get install chromium)"
        if os.environ.get("CI"):
            pytest.fail(f"{reason}; CI must run the browser tests (.ci/run installs it)")
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        # launch() gives Chromium a fresh temporary profile (--user-data-dir) and removes it on close
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


class Page:
    """A page of a fresh context with every console error and uncaught exception recorded."""

    def __init__(self, browser: Any, base_url: str) -> None:
        self.context = browser.new_context(viewport={"width": 1280, "height": 900}, device_scale_factor=1)
        self.page = self.context.new_page()
        self.base_url = base_url
        self.errors: list[str] = []
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(f"uncaught: {e}"))

    def open(self, account: str, state: str = "ready") -> Any:
        self.page.goto(f"{self.base_url}/?account={account}")
        self.page.wait_for_selector(f"main[data-state={state}]", timeout=10_000)
        return self.page

    def text(self, selector: str) -> str:
        return str(self.page.locator(selector).text_content()).strip()


@pytest.fixture
def page(browser: Any, base_url: str) -> Iterator[Page]:
    wrapper = Page(browser, base_url)
    yield wrapper
    wrapper.context.close()


def usd(x: float) -> str:
    """The page's money format: -1234.5 -> "−$1,234.50"."""
    return f"{MINUS if round(x, 2) < 0 else ''}${abs(x):,.2f}"


def num(x: float, digits: int) -> str:
    return f"{MINUS if round(x, digits) < 0 else ''}{abs(x):,.{digits}f}"


# ---------------------------------------------------------------- the tests


def test_the_demo_account(page: Page) -> None:
    report = demo_report()
    p = page.open("demo")

    assert page.text("#status") == "Healthy"
    assert page.text("#account-name") == "demo"
    assert page.text('[data-field="equity_usd"]') == usd(report.equity_usd)
    assert page.text('[data-field="maintenance_margin_usd"]') == usd(report.maintenance_margin_usd)
    assert page.text('[data-field="initial_margin_usd"]') == usd(report.initial_margin_usd)
    assert page.text('[data-field="free_collateral_usd"]') == usd(report.free_collateral_usd)
    assert report.margin_ratio is not None
    assert page.text('[data-field="margin_ratio"]') == f"{report.margin_ratio * 100:.1f}%"
    assert usd(report.portfolio_saving_usd) in page.text("#saving")
    assert p.locator("#completeness").is_hidden()
    assert p.locator("#liquidation-plan").is_hidden()
    assert "2026-11-25 00:00:00 UTC" in page.text("#as-of")

    # positions grouped by venue, then by chain: one row group per breakdown, every position once
    assert p.locator("#positions-body tbody").evaluate_all("bs => bs.map(b => b.dataset.group)") == list(
        report.by_venue
    )
    assert p.locator("#positions-body tbody tr:not(.group)").count() == len(report.positions)
    p.get_by_role("radio", name="Chain").check()
    assert p.locator("#positions-body tbody").evaluate_all("bs => bs.map(b => b.dataset.group)") == list(
        report.by_chain
    )
    assert p.locator("#positions-body tbody tr:not(.group)").count() == len(report.positions)
    p.get_by_role("radio", name="Venue").check()

    # a heatmap per underlying: spots x vols cells, the worst one outlined and equal to minus the risk
    for asset, u in report.underlyings.items():
        card = p.locator(f'article.underlying[data-asset="{asset}"]')
        grid = card.get_by_role("table", name=f"{asset} scenario P&L")
        assert grid.locator("td.cell").count() == len(u.grid.spot_shocks) * len(u.grid.vol_shocks)
        assert grid.locator("thead th").count() == len(u.grid.vol_shocks) + 1
        worst = grid.locator("td.worst")
        assert worst.count() == 1
        assert u.worst_scenario.kind == "grid"
        i = u.grid.spot_shocks.index(u.worst_scenario.spot_shock)
        j = u.grid.vol_shocks.index(u.worst_scenario.vol_shock)
        assert u.grid.pnl[i][j] == pytest.approx(-u.risk_usd)
        assert worst.text_content() == num(u.grid.pnl[i][j], 0)
        assert "worst" in str(worst.get_attribute("aria-label"))
        outline = worst.evaluate("c => getComputedStyle(c).outlineStyle")
        assert outline == "solid"
        assert card.get_by_role("table", name=f"{asset} tail scenarios").locator("tbody tr").count() == len(
            u.grid.extreme
        )
        assert card.get_by_role("table", name=f"{asset} skew scenarios").locator("tbody tr").count() == len(u.grid.skew)
        # greeks and liquidation distance (none within range for the demo wallet)
        greeks = p.locator(f'#greeks-body tr[data-asset="{asset}"] td')
        assert greeks.nth(1).text_content() == num(u.delta_usd, 2)
        assert greeks.nth(2).text_content() == num(u.gamma_usd, 2)
        liquidation = p.locator(f'#liquidation-body tr[data-asset="{asset}"]').text_content() or ""
        assert u.liquidation_move.down is None and liquidation.count("none") == 2

    # the margin ratio of each stored report, oldest left; statuses and the incomplete report marked
    p.wait_for_selector("#history[data-state=ready]", timeout=10_000)
    history = demo_history()
    points = p.locator("#history-body circle.point")
    assert points.count() == len(history)
    shown = points.evaluate_all(
        "ps => ps.map(c => [Number(c.dataset.report), Number(c.dataset.ratio), c.getAttribute('class')])"
    )
    oldest_first = sorted(history, key=lambda h: h.computed_at)
    assert [(i, r) for i, r, _ in shown] == [(h.id, pytest.approx(h.margin_ratio, rel=1e-12)) for h in oldest_first]
    for (_, _, classes), h in zip(shown, oldest_first, strict=True):
        assert f"status-{h.status}" in classes and ("incomplete" in classes) is (not h.complete)
    assert {h.status for h in history} == {"healthy", "margin_call", "liquidatable"}
    assert history[0].margin_ratio is not None
    im_factor = history[0].initial_margin_usd / history[0].maintenance_margin_usd
    assert page.text("#history-body text.axis >> nth=1") == f"{100 / im_factor:.0f}%"  # the margin-call line
    summary = page.text("#history-summary")
    assert f"{len(history)} reports" in summary and f"now {history[0].margin_ratio * 100:.1f}%" in summary

    SCREENSHOT.parent.mkdir(exist_ok=True)
    p.screenshot(path=str(SCREENSHOT), full_page=True)
    assert page.errors == []


def test_the_offsets_and_the_venues_own_margin_are_explained(page: Page) -> None:
    report = explained_report()
    request = explained_request()
    page.open("explained")
    off = report.offsets
    assert off is not None
    for field in ("everything_usd", "chains_siloed_usd", "venue_accounts_siloed_usd", "cross_chain_offset_usd",
                  "cross_chain_credit_usd", "cross_venue_offset_usd", "cross_venue_credit_usd"):
        assert page.text(f'[data-offset="{field}"]') == num(getattr(off, field), 2), field
    assert page.text('[data-offset="cross_chain_credit"]') == "25%"
    assert page.text('[data-offset="cross_venue_credit"]') == "50%"
    # the combination, worked out from the levels and the shipped credits: the report's scenario risk
    combined = (off.venue_accounts_siloed_usd - 0.25 * (off.chains_siloed_usd - off.everything_usd)
                - 0.5 * (off.venue_accounts_siloed_usd - off.chains_siloed_usd))
    assert page.text('[data-offset="combined_risk_usd"]') == num(combined, 2) == num(report.risk_usd, 2)
    assert off.cross_chain_offset_usd > 0  # the demo's Aave ETH and Deribit legs offset across chains
    uncredited = 0.75 * (off.chains_siloed_usd - off.everything_usd)
    assert f"the rest ({usd(uncredited)} here) stays in the figure" in page.text("#offsets-hedge")
    for chain, risk in off.risk_by_chain_usd.items():
        assert page.text(f'#offsets tr[data-chain="{chain}"] td.num') == num(risk, 2)
    for level in off.risk_by_venue_account:
        row = f'#offsets tr[data-venue-account="{level.venue}|{level.chain}|{level.account}"] td.num'
        assert page.text(row) == num(level.risk_usd, 2)

    # Hyperliquid: its own MM (notional / (2 x max leverage), worked out here) beside the universal one
    (venue,) = report.venue_margins
    perp = next(p for p in request.positions if p.venue == "hyperliquid")
    own = abs(perp.quantity) * 3_000.0 / (2 * ETH_MAX_LEVERAGE)  # type: ignore[union-attr]
    block = f'#venue-comparison [data-venue-account="hyperliquid|hyperliquid|{venue.account}"]'
    assert page.text(f'{block} [data-compare="venue"]') == num(own, 2)
    universal = venue.universal_maintenance_margin_usd
    assert universal is not None and venue.universal_risk_usd is not None
    assert page.text(f'{block} [data-compare="universal"]') == num(universal, 2)
    assert page.text(f'{block} [data-compare="risk"]') == num(venue.universal_risk_usd, 2)
    ratio, rest = page.text(f'{block} [data-compare="ratio"]').split("\u00d7")
    assert float(ratio) == pytest.approx(universal / own, abs=0.05 + 1e-9) and rest == " the venue's"
    assert "notional / (2 x its max leverage)" in page.text(f'{block} [data-compare="method"]')
    assert page.errors == []


def test_a_liquidatable_account_shows_its_liquidation_plan(page: Page, tmp_path: Path) -> None:
    report = liquidatable_report()
    assert report.status == "liquidatable" and report.liquidation_plan is not None
    p = page.open("under-water")

    assert page.text("#status") == "Liquidatable"
    assert page.text('[data-field="free_collateral_usd"]') == usd(report.free_collateral_usd)
    assert "neg" in str(p.locator('[data-field="free_collateral_usd"]').get_attribute("class"))
    plan = p.locator("#liquidation-plan")
    assert plan.is_visible()
    assert plan.locator("tbody tr").count() == len(report.liquidation_plan.steps)
    assert usd(report.liquidation_plan.total_cost_usd) in page.text("#plan-summary")
    assert "does not restore" in page.text("#plan-summary")
    assert [s.id for s in report.liquidation_plan.steps] == plan.locator("tbody th").all_text_contents()
    # already below MM: no move is needed
    assert p.locator("#liquidation-body td.near").count() == 2 * len(report.underlyings)
    p.wait_for_selector("#history[data-state=ready]", timeout=10_000)
    assert page.text("#history-body") == "No stored reports yet."
    p.screenshot(path=str(tmp_path / "liquidatable.png"), full_page=True)
    assert page.errors == []


def test_liquidation_distance_reads_the_signed_moves(page: Page) -> None:
    report = near_liquidation_report()
    btc, eth = report.underlyings["BTC"], report.underlyings["ETH"]
    down, up = btc.liquidation_move.down, eth.liquidation_move.up
    assert report.status == "healthy" and down is not None and up is not None
    assert down < -0.1 and up > 0.1 and btc.liquidation_move.up is None and eth.liquidation_move.down is None
    p = page.open("leveraged")

    def cells(asset: str) -> list[str]:
        return [c.strip() for c in p.locator(f'#liquidation-body tr[data-asset="{asset}"] td').all_text_contents()]

    # a fall: shown as a fall, spot after it below today's; no rise liquidates BTC
    assert cells("BTC") == [usd(btc.spot), f"{MINUS}{abs(down) * 100:,.1f}%", usd(btc.spot * (1 + down)), "none", "—"]
    assert btc.spot * (1 + down) < btc.spot
    # a rise: shown as a rise, spot after it above today's; no fall liquidates ETH
    assert cells("ETH") == [usd(eth.spot), "none", "—", f"+{up * 100:,.1f}%", usd(eth.spot * (1 + up))]
    # healthy and both moves over 10% away: nothing flagged as near, nothing says "now"
    assert p.locator("#liquidation-body td.near").count() == 0
    assert "now" not in page.text("#liquidation-body")
    assert page.errors == []


def test_full_addresses_are_shortened_and_the_page_fits_its_width(page: Page) -> None:
    report = addressed_report()
    p = page.open("addressed")
    cells = p.locator("#positions-body td.account-id")
    assert cells.count() == len(report.positions)
    shown = dict(zip(cells.evaluate_all("cs => cs.map(c => c.title)"), cells.all_text_contents(), strict=False))
    assert shown == {WALLET: "0x7099\u202679C8", DERIVE_SUBACCOUNT: "0x8EF9\u2026D3C4/30769"}
    # no horizontal scrolling of the page at 1280 px: a table wider than its panel scrolls inside it
    assert p.evaluate("document.documentElement.scrollWidth") <= 1280
    assert page.errors == []


def test_an_incomplete_report_says_so_and_renders_data_as_text(page: Page, tmp_path: Path) -> None:
    report = incomplete_report()
    assert not report.complete
    p = page.open("partial")

    banner = p.locator("#completeness")
    assert banner.is_visible()
    assert banner.get_attribute("role") == "alert"
    text = page.text("#completeness")
    assert "Incomplete report" in text
    for warning in report.warnings:
        assert text.count(warning) == 1  # each failure once, as its sentence; the markup arrives as text...
    assert text.count("timeout after 5 s") == 1 and text.count("last update 95 s ago") == 1
    assert p.locator("#completeness img, #sources-body img").count() == 0  # ...and is never parsed
    assert p.evaluate("window.__injected") is None

    assert page.text("#computed-at") == "2026-11-25 00:00:42 UTC"
    assert page.text("#age") == "age 17 s"

    venue = p.get_by_role("table", name="aave-v3 on ethereum, account 0xdemo: venue figure and our reproduction")
    assert venue.is_visible()
    health = venue.locator("tbody tr", has=p.locator("th", has_text="health_factor"))
    assert health.locator("td").all_text_contents() == ["2.0631", "2.0625", f"{MINUS}0.0006"]
    assert p.locator("#sources-body tbody tr").count() == len(report.sources)
    p.screenshot(path=str(tmp_path / "incomplete.png"), full_page=True)
    assert page.errors == []


def test_an_unknown_account_shows_the_problem(page: Page) -> None:
    p = page.open("nobody", state="error")
    assert "Not found" in page.text("#error")
    assert "nobody" in page.text("#error")
    assert p.locator("#summary").is_hidden()
    # the browser logs the failed fetch itself; nothing else may fail
    assert [e for e in page.errors if "404" not in e] == []


# ---------------------------------------------------------------- the routes (no browser needed)


def _get(url: str) -> tuple[int, dict[str, str], bytes]:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.status, dict(response.headers), response.read()


def test_the_page_and_its_assets_are_served(base_url: str) -> None:
    status, headers, body = _get(base_url + "/")
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    assert "script-src 'self'" in headers["Content-Security-Policy"]
    assert b'src="/dashboard/dashboard.js"' in body
    for asset, content_type in (("dashboard.js", "text/javascript"), ("dashboard.css", "text/css")):
        status, headers, _ = _get(f"{base_url}/dashboard/{asset}")
        assert status == 200 and headers["Content-Type"].startswith(content_type)
        assert headers["X-Content-Type-Options"] == "nosniff"
    with pytest.raises(urllib.error.HTTPError) as missing:
        _get(base_url + "/dashboard/__init__.py")
    assert missing.value.code == 404


def test_the_page_is_not_part_of_the_api_document(base_url: str) -> None:
    _, _, body = _get(base_url + "/openapi.json")
    paths = json.loads(body)["paths"]
    assert "/" not in paths and not any(path.startswith("/dashboard") for path in paths)
