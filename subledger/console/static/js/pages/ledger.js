// Ledger: read models with position and lag, rebuilds (ADMIN), verifyLedger and reconciliation.
import { gql } from "../api.js";
import { count, dateTime } from "../format.js";
import { session } from "../session.js";
import { cards, el, errorBox, fill, table } from "../ui.js";

export const title = "Ledger";

const PROJECTIONS = "query ReadModels { projections { name position headPosition lag } }";
const REBUILD = "mutation Rebuild($name: String!) { rebuildProjection(name: $name) { name position headPosition lag } }";
const VERIFY = "mutation Verify { verifyLedger { eventsReplayed aggregatesChecked mismatches } }";
const RECONCILE = `query Reconcile($since: DateTime) { reconciliation(since: $since) {
  since until paymentsChecked gatewayOrdersChecked clean
  disagreements { finding provider orderId paymentId ledger gateway } } }`;

export async function render(root) {
  const models = el("div", { "data-section": "projections" });
  const verify = el("div", { "data-section": "verify" });
  const reconcile = el("div", { "data-section": "reconciliation" });
  root.append(el("h2", { id: "page-title" }, "Ledger"),
    el("h3", {}, "Read models"), models,
    el("h3", {}, "Verify the ledger"),
    el("p", { class: "muted" }, "Replays every aggregate and compares it with the read models; changes nothing."),
    action("Run verifyLedger", verify, runVerify, session.has("admin", "auditor"), "verifyLedger needs ADMIN or AUDITOR."), verify,
    el("h3", {}, "Reconciliation with the gateways"),
    el("p", { class: "muted" }, "Asks the payment gateways about every payment and compares their answers with the ledger; changes nothing."),
    action("Run reconciliation", reconcile, runReconcile, session.has("admin", "auditor"), "Reconciliation needs ADMIN or AUDITOR."), reconcile);
  await showModels(models);
}

function action(label, slot, run, allowed, why) {
  if (!allowed) return el("p", { class: "notice" }, why);
  const button = el("button", { type: "button" }, label);
  button.addEventListener("click", async () => {
    button.disabled = true;
    await fill(slot, run);
    button.disabled = false;
  });
  return button;
}

async function showModels(slot) {
  const canRebuild = session.has("admin");
  await fill(slot, async () => {
    const { projections } = await gql(PROJECTIONS);
    const columns = [{ label: "Read model", rowHeader: true }, { label: "Position", num: true }, { label: "Ledger head", num: true }, { label: "Lag (events)", num: true }];
    if (canRebuild) columns.push({ label: "Rebuild" });
    const progress = el("div", { "data-rebuild-progress": "", "aria-live": "polite" });
    const rows = projections.map((p) => {
      const cells = [p.name, count(p.position), count(p.headPosition), count(p.lag)];
      if (canRebuild) cells.push(el("button", { type: "button", "data-rebuild": p.name, onclick: () => rebuild(p.name, slot, progress) }, `Rebuild ${p.name}`));
      return { attrs: { "data-projection": p.name }, cells };
    });
    return [
      table("Each read model's position in the ledger", columns, rows, "No read models.", { "data-table": "projections" }),
      canRebuild ? progress : el("p", { class: "notice", "data-rebuild-absent": "" }, "Rebuilding read models is left to ADMIN tokens in the console."),
    ];
  });
}

async function rebuild(name, slot, progress) {
  for (const button of slot.querySelectorAll("button[data-rebuild]")) button.disabled = true;
  const started = performance.now();
  const bar = el("progress", { "aria-label": `Rebuilding ${name}` });
  const text = el("span", {}, ` Rebuilding ${name} from position 0 beside the live one…`);
  progress.replaceChildren(el("p", {}, bar, text));
  const ticker = setInterval(() => { text.textContent = ` Rebuilding ${name}… ${((performance.now() - started) / 1000).toFixed(1)} s`; }, 250);
  try {
    const { rebuildProjection: p } = await gql(REBUILD, { name });
    clearInterval(ticker);
    await showModels(slot);
    slot.append(el("p", { class: "ok", role: "status", "data-rebuilt": p.name },
      `Rebuilt ${p.name} at position ${count(p.position)} (lag ${count(p.lag)}) in ${((performance.now() - started) / 1000).toFixed(1)} s.`));
  } catch (error) {
    clearInterval(ticker);
    progress.replaceChildren(errorBox(error));
    for (const button of slot.querySelectorAll("button[data-rebuild]")) button.disabled = false;
  }
}

async function runVerify() {
  const { verifyLedger: r } = await gql(VERIFY);
  return [
    cards([["Events replayed", count(r.eventsReplayed), "eventsReplayed"], ["Aggregates checked", count(r.aggregatesChecked), "aggregatesChecked"],
      ["Mismatches", count(r.mismatches.length), "mismatches"]]),
    r.mismatches.length
      ? el("ul", { class: "error" }, r.mismatches.map((m) => el("li", {}, m)))
      : el("p", { class: "ok", "data-consistent": "" }, "Consistent: every read model agrees with the ledger."),
  ];
}

async function runReconcile() {
  const { reconciliation: r } = await gql(RECONCILE, { since: null });
  return [
    cards([["Payments checked", count(r.paymentsChecked), "paymentsChecked"], ["Gateway orders checked", count(r.gatewayOrdersChecked), "gatewayOrdersChecked"],
      ["Disagreements", count(r.disagreements.length), "disagreements"]]),
    el("p", { class: "muted" }, `Up to ${dateTime(r.until)}.`),
    r.clean
      ? el("p", { class: "ok", "data-clean": "" }, "Clean: the gateways and the ledger agree on every payment.")
      : table("Disagreements", [{ label: "Finding" }, { label: "Provider" }, { label: "Order" }, { label: "Payment" }, { label: "Ledger says" }, { label: "Gateway says" }],
        r.disagreements.map((d) => [d.finding, d.provider, d.orderId, d.paymentId || "—", d.ledger, d.gateway]), "None.", { "data-table": "disagreements" }),
  ];
}
