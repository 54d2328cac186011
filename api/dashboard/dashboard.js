// metarisk dashboard: fetches one account's margin report (GET /v1/accounts/{id}/risk, a MarginReport) and renders
// it. Every datum enters the DOM as text (text nodes) or as the value of a fixed attribute: never as markup.

const STATUS_LABELS = { healthy: "Healthy", margin_call: "Margin call", liquidatable: "Liquidatable" };
const SOURCE_STATUSES = new Set(["ok", "stale", "failed"]);
const MINUS = "\u2212";
const DASH = "\u2014";

// ---------------------------------------------------------------- formatting (fixed locale: figures read the same
// everywhere, and the tests compare them)

const isNumber = (x) => typeof x === "number" && Number.isFinite(x);

function grouped(x, digits) {
  return Math.abs(x).toLocaleString("en-US", { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

function sign(x, digits, always) {
  if (Math.abs(x) < 0.5 * 10 ** -digits) return always ? "\u00b1" : "";
  if (x < 0) return MINUS;
  return always ? "+" : "";
}

/** -1234.5 -> "−$1,234.50"; null -> "—" */
function usd(x, digits = 2) {
  return isNumber(x) ? `${sign(x, digits, false)}$${grouped(x, digits)}` : DASH;
}

/** -1234.5 -> "−1,234.50" (no currency sign: the column header names the unit) */
function num(x, digits = 2) {
  return isNumber(x) ? `${sign(x, digits, false)}${grouped(x, digits)}` : DASH;
}

/** 0.0685 -> "6.9%" */
function pct(x, digits = 1) {
  return isNumber(x) ? `${sign(x, digits, false)}${grouped(x * 100, digits)}%` : DASH;
}

/** a shock: 0.0685 -> "+6.9%", 0 -> "±0%" */
function shock(x, digits = 1) {
  if (!isNumber(x)) return DASH;
  const shown = grouped(x * 100, digits).replace(/\.0+$/, "");
  return `${sign(x * 100, digits, true)}${shown}%`;
}

function utc(iso) {
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return String(iso);
  return `${date.toISOString().slice(0, 19).replace("T", " ")} UTC`;
}

function age(seconds) {
  if (!isNumber(seconds)) return DASH;
  const s = Math.max(0, seconds);
  if (s < 90) return `${Math.round(s)} s`;
  if (s < 90 * 60) return `${Math.round(s / 60)} min`;
  if (s < 48 * 3600) return `${Math.round(s / 3600)} h`;
  return `${Math.round(s / 86400)} d`;
}

// ---------------------------------------------------------------- DOM helpers

/** el("td", {class: "num"}, "1.00"): attributes set one by one, children appended as nodes or text nodes. */
function filled(node, attributes, children) {
  for (const [name, value] of Object.entries(attributes)) {
    if (value === null || value === undefined || value === false) continue;
    node.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function el(tag, attributes = {}, ...children) {
  return filled(document.createElement(tag), attributes, children);
}

const SVG_NS = "http://www.w3.org/2000/svg";

function svg(tag, attributes = {}, ...children) {
  return filled(document.createElementNS(SVG_NS, tag), attributes, children);
}

const byId = (id) => document.getElementById(id);

function show(id) {
  const section = byId(id);
  section.hidden = false;
  return section;
}

function fill(id, ...children) {
  byId(id).replaceChildren(...children.flat());
}

const numberClass = (x) => (isNumber(x) && x < 0 ? "num neg" : "num");
const numCell = (text, x) => el("td", { class: numberClass(x) }, text);

/** A table: `head` is a list of column titles (strings, or [title, class]), `rows` a list of <tr>. */
function table({ label, caption, head, rows, className = "data" }) {
  const headRow = el(
    "tr",
    {},
    head.map((h) => {
      const [title, cls] = Array.isArray(h) ? h : [h, null];
      return el("th", { scope: "col", class: cls }, title);
    }),
  );
  return el(
    "table",
    { class: className, "aria-label": label },
    caption ? el("caption", {}, caption) : null,
    el("thead", {}, headRow),
    rows instanceof Node ? rows : el("tbody", {}, rows),
  );
}

// ---------------------------------------------------------------- sections

function renderHeader(report) {
  const status = Object.hasOwn(STATUS_LABELS, report.status) ? report.status : "unknown";
  const badge = byId("status");
  badge.textContent = STATUS_LABELS[status] ?? String(report.status);
  badge.className = `badge badge-${status}`;
  badge.setAttribute("aria-label", `Status: ${badge.textContent}`);
  badge.hidden = false;

  const parts = [el("span", {}, "Market as of ", el("time", { datetime: report.as_of }, utc(report.as_of)))];
  if (report.computed_at) {
    parts.push(el("span", {}, "computed ", el("time", { id: "computed-at", datetime: report.computed_at }, utc(report.computed_at))));
  }
  let seconds = report.age_seconds;
  if (!isNumber(seconds) && report.computed_at) seconds = (Date.now() - new Date(report.computed_at).getTime()) / 1000;
  if (isNumber(seconds)) parts.push(el("span", { id: "age" }, `age ${age(seconds)}`));
  fill("as-of", parts.flatMap((p, i) => (i ? [" \u00b7 ", p] : [p])));
  fill("versions", `params ${report.params_version} \u00b7 schema ${report.schema_version}`);
}

function renderCompleteness(report) {
  // Every source that is not ok and touches the book is one warning sentence; the Sources panel lists them all.
  // The banner shows each failure once, as its sentence.
  const warnings = Array.isArray(report.warnings) ? report.warnings : [];
  const warningList = warnings.length ? el("ul", { class: "warnings" }, warnings.map((w) => el("li", {}, w))) : null;
  if (report.complete === false) {
    show("completeness").replaceChildren(
      el("strong", {}, "Incomplete report."),
      " Some positions or sources were not read in full: the figures cover only what was read.",
      warningList,
    );
  } else if (warningList) {
    show("notices").replaceChildren(el("strong", {}, "Warnings"), warningList);
  }
}

function card(field, label, value, x, sub) {
  const id = `card-${field}`;
  return el(
    "article",
    { class: "card", "aria-labelledby": id },
    el("h3", { id }, label),
    el("p", { class: `value${isNumber(x) && x < 0 ? " neg" : ""}`, "data-field": field }, value),
    sub ? el("p", { class: "sub" }, sub) : null,
  );
}

function renderSummary(r) {
  const factor = r.maintenance_margin_usd > 0 ? r.initial_margin_usd / r.maintenance_margin_usd : null;
  fill(
    "cards",
    card("equity_usd", "Equity", usd(r.equity_usd), r.equity_usd, `collateral after haircuts ${usd(r.collateral_usd)}`),
    card(
      "maintenance_margin_usd",
      "Maintenance margin",
      usd(r.maintenance_margin_usd),
      null,
      `risk ${usd(r.risk_usd)} + contingencies ${usd(r.contingency_usd)}`,
    ),
    card(
      "initial_margin_usd",
      "Initial margin",
      usd(r.initial_margin_usd),
      null,
      isNumber(factor) ? `MM \u00d7 ${num(factor, 2)}` : null,
    ),
    card("free_collateral_usd", "Free collateral", usd(r.free_collateral_usd), r.free_collateral_usd, "collateral \u2212 IM"),
    card(
      "margin_ratio",
      "Margin ratio",
      isNumber(r.margin_ratio) ? pct(r.margin_ratio, 1) : "n/a",
      null,
      isNumber(r.margin_ratio) ? "MM / collateral" : "no collateral",
    ),
  );
  show("summary");
}

function bar(label, parts, scale, total) {
  const track = el("div", { class: "track", "aria-hidden": "true" });
  for (const [cls, x] of parts) {
    const fillNode = el("div", { class: `fill ${cls}` });
    fillNode.style.width = `${scale > 0 ? Math.max(0, (100 * x) / scale) : 0}%`;
    track.append(fillNode);
  }
  return [el("dt", {}, label), el("dd", {}, track, el("span", { class: "amount" }, usd(total)))];
}

function renderMargin(r) {
  const scale = Math.max(r.isolated_margin_usd, r.initial_margin_usd, r.maintenance_margin_usd, 0);
  const saving = r.portfolio_saving_usd;
  const share = r.isolated_margin_usd > 0 ? saving / r.isolated_margin_usd : null;
  fill(
    "margin-bars",
    el(
      "dl",
      { class: "bars" },
      bar("Isolated: each position margined alone", [["isolated", r.isolated_margin_usd]], scale, r.isolated_margin_usd),
      bar(
        "Portfolio MM: scenario risk + contingencies",
        [
          ["risk", r.risk_usd],
          ["contingency", r.contingency_usd],
        ],
        scale,
        r.maintenance_margin_usd,
      ),
      bar("Portfolio IM", [["initial", r.initial_margin_usd]], scale, r.initial_margin_usd),
    ),
    el(
      "p",
      { class: `saving${saving < 0 ? " neg" : ""}`, id: "saving" },
      saving >= 0 ? "Portfolio margining saves " : "Portfolio margining costs ",
      el("strong", {}, usd(Math.abs(saving))),
      isNumber(share) ? ` (${pct(Math.abs(share), 1)} of the isolated margin)` : "",
    ),
    el(
      "p",
      { class: "legend-inline", "aria-hidden": "true" },
      el("span", { class: "swatch risk" }),
      " scenario risk ",
      el("span", { class: "swatch contingency" }),
      " contingencies",
    ),
  );
  show("margin");
}

function positionLabel(p) {
  return p.id ?? `#${p.index}`;
}

// An EVM address in an account id (a wallet, or a Derive wallet/subaccount) shortened as explorers do, 0x7099…79C8:
// at full length the column alone is wider than the page. The whole id stays in the cell's title.
const EVM_ADDRESS = /0x[0-9a-fA-F]{40}/g;

function shortAccount(account) {
  return account.replace(EVM_ADDRESS, (a) => `${a.slice(0, 6)}\u2026${a.slice(-4)}`);
}

function renderPositions(r, by) {
  const other = by === "venue" ? "chain" : "venue";
  const breakdowns = (by === "venue" ? r.by_venue : r.by_chain) ?? {};
  const groups = new Map(Object.keys(breakdowns).map((k) => [k, []]));
  for (const p of r.positions) {
    if (!groups.has(p[by])) groups.set(p[by], []);
    groups.get(p[by]).push(p);
  }
  const otherTitle = other === "venue" ? "Venue" : "Chain";
  const head = [
    "Position",
    "Kind",
    otherTitle,
    "Account",
    "Underlying",
    ["Value (USD)", "num"],
    ["Delta", "num"],
    ["Vega (USD/vol pt)", "num"],
    ["Standalone MM (USD)", "num"],
  ];
  const bodies = [...groups].map(([key, members]) => {
    const b = breakdowns[key];
    const summary = b
      ? [
          ` \u00b7 ${b.positions} position${b.positions === 1 ? "" : "s"} \u00b7 equity ${usd(b.equity_usd)}`,
          ` \u00b7 collateral ${usd(b.collateral_usd)} \u00b7 MM as a group ${usd(b.maintenance_margin_usd)}`,
        ]
      : [];
    const groupRow = el(
      "tr",
      { class: "group" },
      el("th", { scope: "rowgroup", colspan: head.length }, el("span", { class: "group-name" }, key), summary),
    );
    const rows = members.map((p) =>
      el(
        "tr",
        { class: p.priced === false ? "unpriced" : null },
        el("th", { scope: "row" }, positionLabel(p)),
        el("td", {}, p.kind, p.priced === false ? el("span", { class: "tag" }, "unpriced") : null),
        el("td", {}, p[other]),
        el("td", { class: "account-id", title: p.account }, shortAccount(p.account)),
        el("td", {}, p.underlying ?? DASH),
        numCell(num(p.value_usd), p.value_usd),
        numCell(num(p.delta, 4), p.delta),
        numCell(num(p.vega), p.vega),
        numCell(num(p.standalone_margin_usd), p.standalone_margin_usd),
      ),
    );
    return el("tbody", { "data-group": key }, groupRow, rows);
  });
  const t = table({ label: `Positions grouped by ${by}`, head, rows: [] });
  t.querySelector("tbody").replaceWith(...bodies);
  fill("positions-body", t);
}

function heatColour(t) {
  // diverging: losses red, gains blue (readable with red-green colour blindness), zero a light neutral
  const neutral = [247, 247, 247];
  const end = t < 0 ? [178, 24, 43] : [33, 102, 172];
  const k = Math.min(1, Math.abs(t));
  const rgb = neutral.map((c, i) => Math.round(c + (end[i] - c) * k));
  return { background: `rgb(${rgb.join(", ")})`, ink: k > 0.55 ? "#fff" : "#1b1f24" };
}

function sameShock(a, b) {
  return isNumber(a) && isNumber(b) && Math.abs(a - b) < 1e-9;
}

function describeWorst(w) {
  if (!w) return DASH;
  if (w.kind === "skew") return `skew scenario ${w.name ?? ""}`.trim();
  if (w.kind === "extreme") return `tail, spot ${shock(w.spot_shock, 0)}`;
  return `spot ${shock(w.spot_shock)}, vol ${shock(w.vol_shock, 0)}`;
}

function heatmap(asset, u) {
  const grid = u.grid;
  const columns = grid.vol_shocks.map((v, j) => j).sort((a, b) => grid.vol_shocks[a] - grid.vol_shocks[b]);
  const rows = grid.spot_shocks.map((s, i) => i).sort((a, b) => grid.spot_shocks[a] - grid.spot_shocks[b]);
  const maxAbs = Math.max(0, ...grid.pnl.flat().filter(isNumber).map(Math.abs));

  // the worst cell: the report's worst scenario when it is a grid point, else the grid's own minimum
  let worst = null;
  const w = u.worst_scenario;
  if (w && w.kind === "grid") {
    const i = grid.spot_shocks.findIndex((s) => sameShock(s, w.spot_shock));
    const j = grid.vol_shocks.findIndex((v) => sameShock(v, w.vol_shock));
    if (i >= 0 && j >= 0) worst = [i, j];
  }
  if (!worst) {
    grid.pnl.forEach((row, i) =>
      row.forEach((x, j) => {
        if (isNumber(x) && (!worst || x < grid.pnl[worst[0]][worst[1]])) worst = [i, j];
      }),
    );
  }

  const head = el(
    "tr",
    {},
    el("th", { scope: "col", class: "corner" }, el("span", { class: "visually-hidden" }, "Spot shock"), "spot \u2193 vol \u2192"),
    columns.map((j) => el("th", { scope: "col" }, shock(grid.vol_shocks[j], 0))),
  );
  const body = rows.map((i) =>
    el(
      "tr",
      {},
      el("th", { scope: "row" }, shock(grid.spot_shocks[i])),
      columns.map((j) => {
        const x = grid.pnl[i][j];
        const isWorst = worst && worst[0] === i && worst[1] === j;
        const label = `spot ${shock(grid.spot_shocks[i])}, vol ${shock(grid.vol_shocks[j], 0)}: P&L ${num(x, 0)} USD${isWorst ? ", worst" : ""}`;
        const cell = el("td", { class: isWorst ? "cell worst" : "cell", "aria-label": label, title: label }, num(x, 0));
        const { background, ink } = heatColour(maxAbs > 0 && isNumber(x) ? x / maxAbs : 0);
        cell.style.backgroundColor = background;
        cell.style.color = ink;
        return cell;
      }),
    ),
  );
  const map = el(
    "table",
    { class: "heatmap", "aria-label": `${asset} scenario P&L in USD: rows are spot shocks, columns vol shocks` },
    el("thead", {}, head),
    el("tbody", {}, body),
  );

  const legend = el(
    "div",
    { class: "scale", "aria-hidden": "true" },
    el("span", {}, num(-maxAbs, 0)),
    el("span", { class: "gradient" }),
    el("span", {}, `+${num(maxAbs, 0)}`),
  );

  const tails = (grid.extreme ?? []).map((e) => {
    const isWorst = w && w.kind === "extreme" && sameShock(w.spot_shock, e.spot_shock);
    return el(
      "tr",
      { class: isWorst ? "worst-row" : null },
      el("th", { scope: "row" }, shock(e.spot_shock, 0)),
      numCell(num(e.pnl, 0), e.pnl),
      numCell(num(e.counted, 0), e.counted),
    );
  });
  const skews = (grid.skew ?? []).map((s) => {
    const isWorst = w && w.kind === "skew" && w.name === s.name;
    return el(
      "tr",
      { class: isWorst ? "worst-row" : null },
      el("th", { scope: "row" }, String(s.name ?? DASH)),
      numCell(num(s.pnl, 0), s.pnl),
    );
  });

  return el(
    "article",
    { class: "underlying", "data-asset": asset, "aria-labelledby": `heatmap-${asset}` },
    el("h3", { id: `heatmap-${asset}` }, asset),
    el(
      "p",
      { class: "meta" },
      `spot ${usd(u.spot)} \u00b7 scenario risk ${usd(u.risk_usd)} \u00b7 worst: `,
      el("span", { class: "worst-label" }, describeWorst(w)),
    ),
    el("div", { class: "scroll" }, map),
    legend,
    el(
      "div",
      { class: "extras" },
      tails.length
        ? table({
            label: `${asset} tail scenarios`,
            caption: "Tails (at vol up, counted dampened)",
            head: ["Spot", ["P&L", "num"], ["Counted (dampened)", "num"]],
            rows: tails,
            className: "data compact",
          })
        : null,
      skews.length
        ? table({
            label: `${asset} skew scenarios`,
            caption: "Skew",
            head: ["Scenario", ["P&L", "num"]],
            rows: skews,
            className: "data compact",
          })
        : null,
    ),
  );
}

function renderUnderlyings(r) {
  const entries = Object.entries(r.underlyings ?? {});
  if (!entries.length) return;
  fill("heatmaps", entries.map(([asset, u]) => heatmap(asset, u)));
  show("scenarios");

  fill(
    "greeks-body",
    table({
      label: "Greeks by underlying",
      head: [
        "Underlying",
        ["Delta", "num"],
        ["Delta (USD)", "num"],
        ["Gamma (USD per 1%)", "num"],
        ["Vega (USD/vol pt)", "num"],
        ["Theta (USD/day)", "num"],
      ],
      rows: entries.map(([asset, u]) =>
        el(
          "tr",
          { "data-asset": asset },
          el("th", { scope: "row" }, asset),
          numCell(num(u.delta, 4), u.delta),
          numCell(num(u.delta_usd), u.delta_usd),
          numCell(num(u.gamma_usd), u.gamma_usd),
          numCell(num(u.vega), u.vega),
          numCell(num(u.theta), u.theta),
        ),
      ),
    }),
  );
  show("greeks");

  // a liquidation move is the signed relative spot change (down <= 0, up >= 0; schema: LiquidationMove); 0 means
  // collateral is already below MM
  const move = (x, spot) => {
    if (!isNumber(x)) return [el("td", { class: "num none" }, "none"), el("td", { class: "num none" }, DASH)];
    const distance = Math.abs(x);
    const text = distance === 0 ? "now" : `${x < 0 ? MINUS : "+"}${pct(distance)}`;
    return [
      el("td", { class: distance < 0.1 ? "num near" : "num" }, text),
      el("td", { class: "num" }, usd(spot * (1 + x))),
    ];
  };
  fill(
    "liquidation-body",
    table({
      label: "Liquidation distance by underlying",
      head: [
        "Underlying",
        ["Spot", "num"],
        ["Down move", "num"],
        ["Spot after it", "num"],
        ["Up move", "num"],
        ["Spot after it", "num"],
      ],
      rows: entries.map(([asset, u]) =>
        el(
          "tr",
          { "data-asset": asset },
          el("th", { scope: "row" }, asset),
          el("td", { class: "num" }, usd(u.spot)),
          move(u.liquidation_move?.down, u.spot),
          move(u.liquidation_move?.up, u.spot),
        ),
      ),
    }),
  );
  show("liquidation");
}

function renderPlan(r) {
  const plan = r.liquidation_plan;
  if (!plan) return;
  const byIndex = new Map(r.positions.map((p) => [p.index, p]));
  fill(
    "plan-body",
    el(
      "p",
      { id: "plan-summary" },
      `Closing ${plan.steps.length} position${plan.steps.length === 1 ? "" : "s"} costs about `,
      el("strong", {}, usd(plan.total_cost_usd)),
      plan.restores_initial_margin ? " and restores initial margin." : " and does not restore initial margin.",
    ),
    table({
      label: "Liquidation plan steps",
      head: ["Position", "Venue", "Kind", ["Fraction to close", "num"], ["Cost (USD)", "num"]],
      rows: plan.steps.map((s) =>
        el(
          "tr",
          {},
          el("th", { scope: "row" }, s.id ?? `#${s.index}`),
          el("td", {}, s.venue),
          el("td", {}, byIndex.get(s.index)?.kind ?? DASH),
          el("td", { class: "num" }, pct(s.fraction, 0)),
          numCell(num(s.cost_usd), s.cost_usd),
        ),
      ),
    }),
  );
  show("liquidation-plan");
}

function figure(key, x) {
  return key.endsWith("_usd") ? num(x) : num(x, 4);
}

function renderVenueMargins(r) {
  const margins = r.venue_margins ?? [];
  if (!margins.length) return;
  fill(
    "venue-margins-body",
    margins.map((m) => {
      const reported = m.reported ?? {};
      const reproduced = m.reproduced ?? {};
      const difference = m.difference ?? {};
      const keys = [...new Set([...Object.keys(reported), ...Object.keys(reproduced)])];
      return el(
        "div",
        { class: "venue-margin" },
        table({
          label: `${m.venue} on ${m.chain}, account ${m.account}: venue figure and our reproduction`,
          caption: `${m.venue} \u00b7 ${m.chain} \u00b7 ${m.account} \u00b7 ${m.method}`,
          head: ["Figure", ["Venue reports", "num"], ["We reproduce", "num"], ["Difference", "num"]],
          rows: keys.map((k) =>
            el(
              "tr",
              {},
              el("th", { scope: "row" }, k),
              el("td", { class: "num" }, Object.hasOwn(reported, k) ? figure(k, reported[k]) : DASH),
              el("td", { class: "num" }, Object.hasOwn(reproduced, k) ? figure(k, reproduced[k]) : DASH),
              numCell(Object.hasOwn(difference, k) ? figure(k, difference[k]) : DASH, difference[k]),
            ),
          ),
          className: "data compact",
        }),
        m.universal_maintenance_margin_usd == null
          ? null
          : el(
              "p",
              { class: "note" },
              `Universal model, this venue-account alone: MM ${num(m.universal_maintenance_margin_usd)}`,
            ),
        m.note ? el("p", { class: "note" }, m.note) : null,
      );
    }),
  );
  show("venue-margins");
}

// ---------------------------------------------------------------- why the figure is what it is

function offsetRow(label, field, x, ...more) {
  return el("tr", {}, el("th", { scope: "row" }, label), el("td", { class: "num", "data-offset": field }, num(x)), more);
}

/** The netting levels of the combined scenario risk and the credit each offset earned (report.offsets). */
function renderOffsets(r) {
  const o = r.offsets;
  if (!o) return;
  const credited = (offset, credit, earned, field) =>
    el(
      "tr",
      {},
      el("th", { scope: "row" }, offset),
      el("td", { class: "num", "data-offset": `${field}_offset_usd` }, num(o[`${field}_offset_usd`])),
      el("td", { class: "num", "data-offset": `${field}_credit` }, pct(credit, 0)),
      el("td", { class: "num", "data-offset": `${field}_credit_usd` }, num(earned)),
    );
  const hedge =
    o.cross_chain_offset_usd > 0 && o.cross_chain_credit < 1
      ? el(
          "p",
          { class: "note", id: "offsets-hedge" },
          `A hedge held on another chain earns ${pct(o.cross_chain_credit, 0)} of the risk it offsets: the rest ` +
            `(${usd(o.cross_chain_offset_usd - o.cross_chain_credit_usd)} here) stays in the figure, so such a ` +
            "hedge can raise the margin above that of the unhedged side alone.",
        )
      : null;
  fill(
    "offsets-body",
    table({
      label: "Scenario risk at each level of netting",
      head: ["Netted", ["Risk USD", "num"]],
      rows: [
        offsetRow("Everything as one portfolio", "everything_usd", o.everything_usd),
        offsetRow("Each chain alone, summed", "chains_siloed_usd", o.chains_siloed_usd),
        offsetRow("Each venue-account alone, summed", "venue_accounts_siloed_usd", o.venue_accounts_siloed_usd),
      ],
      className: "data compact",
    }),
    table({
      label: "Credit earned by each offset",
      head: ["Offset", ["Offset USD", "num"], ["Credit", "num"], ["Credited USD", "num"]],
      rows: [
        credited("Across chains", o.cross_chain_credit, o.cross_chain_credit_usd, "cross_chain"),
        credited("Across venues on one chain", o.cross_venue_credit, o.cross_venue_credit_usd, "cross_venue"),
        el(
          "tr",
          {},
          el("th", { scope: "row" }, "Combined risk = venue-accounts summed − credits"),
          el("td", {}),
          el("td", {}),
          el("td", { class: "num", "data-offset": "combined_risk_usd" }, num(o.combined_risk_usd)),
        ),
      ],
      className: "data compact",
    }),
    hedge,
    table({
      label: "Scenario risk of each chain and venue-account netted alone",
      head: ["Chain", "Venue-account", ["Risk USD", "num"]],
      rows: [
        ...Object.entries(o.risk_by_chain_usd).map(([chain, risk]) =>
          el("tr", { "data-chain": chain }, el("th", { scope: "row" }, chain), el("td", {}, "all"), numCell(num(risk), risk)),
        ),
        ...o.risk_by_venue_account.map((a) =>
          el(
            "tr",
            { "data-venue-account": `${a.venue}|${a.chain}|${a.account}` },
            el("th", { scope: "row" }, a.chain),
            el("td", {}, `${a.venue} ${shortAccount(a.account)}`),
            numCell(num(a.risk_usd), a.risk_usd),
          ),
        ),
      ],
      className: "data compact",
    }),
  );
  show("offsets");
}

/** Each venue's own maintenance margin beside the universal one of the same venue-account, and why they differ. */
function renderVenueComparison(r) {
  const margins = (r.venue_margins ?? []).filter((m) => m.universal_maintenance_margin_usd != null);
  if (!margins.length) return;
  fill(
    "venue-comparison-body",
    margins.map((m) => {
      const own = m.venue_maintenance_margin_usd;
      const universal = m.universal_maintenance_margin_usd;
      const ratio = isNumber(own) && own > 0 ? `${num(universal / own, 1)}× the venue's` : DASH;
      return el(
        "div",
        { class: "venue-margin", "data-venue-account": `${m.venue}|${m.chain}|${m.account}` },
        table({
          label: `${m.venue} on ${m.chain}, account ${m.account}: universal and venue maintenance margin`,
          caption: `${m.venue} · ${m.chain} · ${shortAccount(m.account)}`,
          head: ["", ["USD", "num"]],
          rows: [
            el("tr", {}, el("th", { scope: "row" }, "Venue's own MM"), el("td", { class: "num", "data-compare": "venue" }, isNumber(own) ? num(own) : "none")),
            el("tr", {}, el("th", { scope: "row" }, "Universal MM, this venue-account alone"), el("td", { class: "num", "data-compare": "universal" }, num(universal))),
            el("tr", {}, el("th", { scope: "row" }, " of which scenario risk"), el("td", { class: "num", "data-compare": "risk" }, num(m.universal_risk_usd))),
            el("tr", {}, el("th", { scope: "row" }, " of which contingencies"), el("td", { class: "num", "data-compare": "contingency" }, num(m.universal_contingency_usd))),
            el("tr", {}, el("th", { scope: "row" }, "Universal / venue"), el("td", { class: "num", "data-compare": "ratio" }, ratio)),
          ],
          className: "data compact",
        }),
        el("p", { class: "note", "data-compare": "method" }, `The venue: ${m.method_summary}.`),
        el(
          "p",
          { class: "note" },
          "The universal figure: the worst loss of these positions over the scan ranges, vol shocks, dampened " +
            "tails and skew scenarios of the risk parameters, plus contingencies. In the wallet's figure this " +
            "risk nets against the other venue-accounts' with the offset credits above.",
        ),
      );
    }),
  );
  show("venue-comparison");
}

function renderSources(r) {
  const sources = r.sources ?? [];
  if (!sources.length) return;
  fill(
    "sources-body",
    table({
      label: "Data sources",
      head: ["Source", "Status", "Reason", "As of"],
      rows: sources.map((s) =>
        el(
          "tr",
          {},
          el("th", { scope: "row" }, s.name),
          el("td", {}, el("span", { class: `pill pill-${SOURCE_STATUSES.has(s.status) ? s.status : "unknown"}` }, s.status)),
          el("td", {}, s.reason ?? DASH),
          el("td", {}, s.as_of ? utc(s.as_of) : DASH),
        ),
      ),
      className: "data compact",
    }),
  );
  show("sources");
}

function render(report) {
  renderHeader(report);
  renderCompleteness(report);
  renderSummary(report);
  renderMargin(report);
  renderPlan(report);
  const positions = show("positions");
  const grouping = () => positions.querySelector('input[name="group"]:checked')?.value ?? "venue";
  renderPositions(report, grouping());
  for (const radio of positions.querySelectorAll('input[name="group"]')) {
    radio.addEventListener("change", () => renderPositions(report, grouping()));
  }
  renderUnderlyings(report);
  renderVenueMargins(report);
  renderOffsets(report);
  renderVenueComparison(report);
  renderSources(report);
}

// ---------------------------------------------------------------- history

const CHART = { width: 960, height: 220, left: 56, right: 16, top: 12, bottom: 28 };

/** Stored reports with a margin ratio, as a line over time, oldest left. */
function historyChart(rows) {
  const points = rows.map((h) => ({ ...h, t: new Date(h.computed_at).getTime() })).sort((a, b) => a.t - b.t);
  // margin call where collateral falls below IM = MM x im_factor: at a ratio of MM / IM, read off the reports
  const sized = points.find((h) => h.maintenance_margin_usd > 0);
  const callAt = sized ? sized.maintenance_margin_usd / sized.initial_margin_usd : null;
  const top = Math.max(1.1, ...points.map((h) => h.margin_ratio)) * 1.05;
  const t0 = points[0].t;
  const span = Math.max(points[points.length - 1].t - t0, 1);
  const { width, height, left, right, top: pad, bottom } = CHART;
  const x = (t) => left + ((t - t0) / span) * (width - left - right);
  const y = (ratio) => pad + (1 - ratio / top) * (height - pad - bottom);
  const threshold = (ratio, label, cls) => [
    svg("line", { class: `threshold ${cls}`, x1: left, x2: width - right, y1: y(ratio), y2: y(ratio) }),
    svg("text", { class: "axis", x: left - 6, y: y(ratio) + 4, "text-anchor": "end" }, label),
  ];
  return svg(
    "svg",
    { viewBox: `0 0 ${width} ${height}`, role: "img", class: "history-chart",
      "aria-label": `Margin ratio of ${points.length} stored reports` },
    threshold(0, "0%", "zero"),
    callAt === null ? null : threshold(callAt, pct(callAt, 0), "call"),
    threshold(1, "100%", "liquidation"),
    svg("polyline", { class: "ratio", points: points.map((h) => `${x(h.t)},${y(h.margin_ratio)}`).join(" ") }),
    points.map((h) =>
      svg(
        "circle",
        { class: `point status-${h.status}${h.complete ? "" : " incomplete"}`, cx: x(h.t), cy: y(h.margin_ratio),
          r: 3.5, "data-report": h.id, "data-ratio": h.margin_ratio },
        svg("title", {}, `${utc(h.computed_at)}: margin ratio ${pct(h.margin_ratio)}, ${STATUS_LABELS[h.status] ?? h.status}` +
          `${h.complete ? "" : ", incomplete"}; equity ${usd(h.equity_usd)}, MM ${usd(h.maintenance_margin_usd)}`),
      ),
    ),
    svg("text", { class: "axis", x: left, y: height - 8 }, utc(points[0].computed_at)),
    svg("text", { class: "axis", x: width - right, y: height - 8, "text-anchor": "end" },
      utc(points[points.length - 1].computed_at)),
  );
}

function renderHistory(page) {
  const section = byId("history");
  const rows = page.reports ?? [];
  const charted = rows.filter((h) => isNumber(h.margin_ratio));
  if (charted.length < 2) {
    fill("history-body", el("p", { class: "loading" }, rows.length ? "One stored report so far." : "No stored reports yet."));
  } else {
    const ratios = charted.map((h) => h.margin_ratio);
    fill(
      "history-body",
      historyChart(charted),
      el(
        "p",
        { id: "history-summary" },
        `${charted.length} reports, ${utc(charted[charted.length - 1].computed_at)} to ${utc(charted[0].computed_at)}` +
          ` \u00b7 margin ratio now ${pct(ratios[0])}, highest ${pct(Math.max(...ratios))}` +
          (page.more ? " \u00b7 older reports not shown" : ""),
      ),
    );
  }
  section.hidden = false;
}

async function loadHistory(account) {
  // history is an extra: without a database the service answers 503, and the report above still stands
  const section = byId("history");
  try {
    const response = await fetch(`/v1/accounts/${encodeURIComponent(account)}/history?limit=500`, {
      headers: { Accept: "application/json" },
    });
    if (!response.ok) throw await problem(response);
    renderHistory(await response.json());
    section.dataset.state = "ready";
  } catch (error) {
    fill("history-body", el("p", { class: "loading" }, `No history: ${error.message ?? error}`));
    section.hidden = false;
    section.dataset.state = "error";
  }
}

// ---------------------------------------------------------------- loading

async function problem(response) {
  // the API answers failures as application/problem+json: title and detail say what went wrong
  let title = `HTTP ${response.status}`;
  let detail = response.statusText;
  try {
    const body = await response.json();
    title = body.title ?? title;
    detail = body.detail ?? detail;
  } catch {
    // not JSON: keep the status line
  }
  return new Error(`${title}: ${detail}`);
}

async function main() {
  const query = new URLSearchParams(window.location.search);
  const account = (query.get("account") ?? "").trim() || "demo";
  byId("account-input").value = account;
  byId("account-name").textContent = account;
  document.title = `metarisk \u00b7 ${account}`;
  const root = byId("main");
  try {
    const response = await fetch(`/v1/accounts/${encodeURIComponent(account)}/risk`, {
      headers: { Accept: "application/json" },
    });
    if (!response.ok) throw await problem(response);
    render(await response.json());
    root.dataset.state = "ready";
    loadHistory(account);
  } catch (error) {
    show("error").replaceChildren(el("strong", {}, "Could not load the report. "), String(error.message ?? error));
    root.dataset.state = "error";
  } finally {
    byId("loading").hidden = true;
    root.setAttribute("aria-busy", "false");
  }
}

main();
