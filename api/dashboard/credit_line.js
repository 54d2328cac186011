// The demo's credit-line panel: the latest margin attestation of the demo wallet, its on-chain verification status
// and the loans asked of CreditLine, from GET /demo/credit-line. Outside the demo that route answers 204 and the
// panel stays hidden.
const SOURCE = "/demo/credit-line";
const REFRESH_MS = 10000;
const WAD = 10n ** 18n;

function cell(tag, text, className) {
  const node = document.createElement(tag);
  node.textContent = text;
  if (className) node.className = className;
  return node;
}

function usd(wadText) {
  // fixed point x 1e18 as a decimal string: exact integer dollars and cents, whatever its size
  const value = BigInt(wadText);
  const sign = value < 0n ? "\u2212" : ""; // the page's minus sign
  const cents = ((value < 0n ? -value : value) * 100n) / WAD;
  const dollars = (cents / 100n).toLocaleString("en-US");
  return `${sign}$${dollars}.${String(cents % 100n).padStart(2, "0")}`;
}

function time(seconds) {
  return new Date(seconds * 1000).toISOString().replace(".000Z", "Z");
}

function table(rows, headings) {
  const element = document.createElement("table");
  element.className = "data compact";
  const head = element.createTHead().insertRow();
  for (const heading of headings) head.append(cell("th", heading));
  const body = element.createTBody();
  for (const row of rows) {
    const line = body.insertRow();
    row.forEach(([text, className], index) => line.append(cell(index === 0 ? "th" : "td", text, className)));
  }
  return element;
}

function render(status) {
  const body = document.getElementById("credit-line-body");
  const parts = [];
  const attestation = status.attestation;
  if (attestation) {
    const message = attestation.typed_data.message;
    const verification = status.verification;
    const verdict = verification.verified ? "verified" : `refused: ${verification.error}`;
    const badge = cell("p", `Attestation ${verdict} on chain ${status.chain_id} at ${verification.checked_at}`,
      `badge ${verification.verified ? "badge-healthy" : "badge-liquidatable"}`);
    badge.id = "credit-line-verification";
    parts.push(badge);
    parts.push(table([
      [["Free collateral"], [usd(message.freeCollateralUsd), "num"]],
      [["Equity"], [usd(message.equityUsd), "num"]],
      [["Maintenance margin"], [usd(message.maintenanceMarginUsd), "num"]],
      [["Complete"], [String(message.complete)]],
      [["Issued"], [time(message.issuedAt)]],
      [["Expires"], [time(message.expiresAt)]],
      [["Report hash"], [message.reportHash]],
      [["Verifier"], [status.verifier]],
    ], ["Attested", ""]));
  }
  parts.push(table(status.attempts.map((attempt) => [
    [attempt.accepted ? "lent" : `refused (${attempt.refusal})`],
    [attempt.amount.toLocaleString("en-US", { maximumFractionDigits: 2 }), "num"],
    [attempt.free_collateral_usd.toLocaleString("en-US", { maximumFractionDigits: 2 }), "num"],
  ]), ["Borrow", "Amount", "Attested free collateral (USD)"]));
  parts.push(cell("p", `Debt to CreditLine ${status.credit_line}: ${status.debt.toLocaleString("en-US")}`, "hint"));
  body.replaceChildren(...parts);
  document.getElementById("credit-line").hidden = false;
}

async function refresh() {
  try {
    const response = await fetch(SOURCE);
    if (response.status === 204 || !response.ok) return false; // not the demo: no panel
    render(await response.json());
    return true;
  } catch {
    return true; // a transient failure: try again later
  }
}

if (await refresh()) setInterval(refresh, REFRESH_MS);
