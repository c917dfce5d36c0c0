// User: one user's subscription timeline (ledger events), subscriptions, payments and refunds,
// wallet, lots with expiry and point history, as of any moment (the asOf picker).
import { gql } from "../api.js";
import { count, dateTime, instantOfWall, wallParts, won } from "../format.js";
import { cards, el, fill, table } from "../ui.js";

export const title = "User";

const EVENTS = `query UserEvents($userId: ID!) {
  eventsPage(userId: $userId, first: 1000) { items { position aggregateId aggregateType type occurredAt data } nextCursor }
}`;
const SUBSCRIPTION_FIELDS = "id status plan { name } billingCycle price startedAt currentPeriodEnd nextBillingAt trialEndsAt canceledAt suspendedAt consecutiveFailures";
const PAYMENTS = `query UserPayments($userId: ID!) {
  paymentsPage(userId: $userId, first: 200) { items {
    id kind amount refundedAmount status failureCode attempt createdAt paidAt
    refunds { id amount reason status requestedAt settledAt }
  } nextCursor }
}`;
const WALLET = `query UserWallet($userId: ID!, $asOf: DateTime) {
  wallet(userId: $userId, asOf: $asOf) {
    totalBalance usableBalance pendingBalance lifetimeEarned lifetimeSpent
    expiringSoon(withinDays: 3650) { amount expiresAt }
    transactions(first: 200) { totalCount items { id createdAt type amount balanceAfter description expiresAt } }
  }
}`;

function wallInput(iso) {
  const p = wallParts(new Date(iso));
  const two = (n) => String(n).padStart(2, "0");
  return `${p.year}-${two(p.month)}-${two(p.day)}T${two(p.hour)}:${two(p.minute)}`;
}

export async function render(root, [userId = "", asOfWall = ""]) {
  const { clock } = await gql("query Now { clock { now } }");
  const form = el("form", { class: "inline", "aria-label": "User and moment" },
    el("label", {}, "User id", el("input", { name: "user", value: userId, required: true, size: 30 })),
    el("label", {}, "As of (service time zone)", el("input", { type: "datetime-local", name: "asOf", value: asOfWall || wallInput(clock.now) })),
    el("button", { type: "submit" }, "Show"));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    location.hash = `#/user/${encodeURIComponent(form.user.value.trim())}/${encodeURIComponent(form.asOf.value)}`;
  });
  root.append(el("h2", { id: "page-title" }, userId ? `User ${userId}` : "User"), form);
  if (!userId) {
    root.append(el("p", { class: "empty" }, "Enter a user id (or follow a link from Collections)."));
    return;
  }
  const asOf = asOfWall ? instantOfWall(asOfWall) : clock.now;
  root.append(el("p", { class: "muted", "data-as-of": asOf }, `As of ${dateTime(asOf)}.`));
  const slots = Object.fromEntries(["timeline", "subscriptions", "payments", "wallet", "lots", "points"].map((name) => [name, el("div", { "data-section": name })]));
  root.append(
    el("h3", {}, "Subscription timeline"), slots.timeline,
    el("h3", {}, "Subscriptions"), slots.subscriptions,
    el("h3", {}, "Payments and refunds"), slots.payments,
    el("h3", {}, "Wallet"), slots.wallet,
    el("h3", {}, "Point lots with expiry"), slots.lots,
    el("h3", {}, "Point history"), slots.points);

  const eventsLoad = gql(EVENTS, { userId }).then((d) => d.eventsPage.items.filter((e) => new Date(e.occurredAt) <= new Date(asOf)));
  eventsLoad.catch(() => {});
  await Promise.all([
    fill(slots.timeline, async () => timeline(await eventsLoad)),
    fill(slots.subscriptions, async () => subscriptions(await eventsLoad, asOf)),
    fill(slots.payments, async () => payments((await gql(PAYMENTS, { userId })).paymentsPage.items, asOf)),
    walletSections(slots, userId, asOf),
  ]);
}

function timeline(events) {
  const subscriptionEvents = events.filter((e) => e.aggregateType === "Subscription");
  return table("Subscription events from the ledger, oldest first", [
    { label: "When" }, { label: "Event" }, { label: "Subscription" }, { label: "Status after", },
  ], subscriptionEvents.map((e) => ({
    attrs: { "data-position": e.position },
    cells: [dateTime(e.occurredAt), e.type, el("code", {}, e.aggregateId), (e.data && e.data.status) || ""],
  })), "No subscription events for this user up to this moment.", { "data-table": "timeline" });
}

async function subscriptions(events, asOf) {
  const ids = [...new Set(events.filter((e) => e.aggregateType === "Subscription").map((e) => e.aggregateId))];
  if (!ids.length) return el("p", { class: "empty" }, "No subscriptions up to this moment.");
  const fields = ids.slice(0, 25).map((id, i) => `s${i}: subscription(id: ${JSON.stringify(id)}, asOf: $asOf) { ${SUBSCRIPTION_FIELDS} }`);
  const data = await gql(`query UserSubscriptions($asOf: DateTime) { ${fields.join("\n")} }`, { asOf });
  const subs = ids.slice(0, 25).map((_, i) => data[`s${i}`]).filter(Boolean);
  return table("Each subscription as it stood at that moment", [
    { label: "Subscription" }, { label: "Plan" }, { label: "Cycle" }, { label: "Price", num: true }, { label: "Status" },
    { label: "Started" }, { label: "Period ends" }, { label: "Next charge" }, { label: "Failures in a row", num: true },
  ], subs.map((s) => ({
    attrs: { "data-subscription": s.id },
    cells: [el("code", {}, s.id), s.plan.name, s.billingCycle, won(s.price), el("span", { class: "badge" }, s.status),
      dateTime(s.startedAt), dateTime(s.currentPeriodEnd), dateTime(s.nextBillingAt), String(s.consecutiveFailures)],
  })), "No subscriptions.", { "data-table": "subscriptions" });
}

function payments(items, asOf) {
  const shown = items.filter((p) => new Date(p.createdAt) <= new Date(asOf));
  const rows = [];
  for (const p of shown) {
    rows.push({
      attrs: { "data-payment": p.id },
      cells: [dateTime(p.createdAt), p.kind, won(p.amount), p.status, p.failureCode || "", String(p.attempt), won(p.refundedAmount)],
    });
    for (const r of p.refunds.filter((r) => new Date(r.requestedAt) <= new Date(asOf))) {
      rows.push({
        attrs: { "data-refund": r.id },
        cells: [dateTime(r.requestedAt), `refund: ${r.reason}`, won(-r.amount), r.status, "", "", ""],
      });
    }
  }
  return table("Payments recorded up to that moment, newest first, each followed by its refunds", [
    { label: "When" }, { label: "Kind" }, { label: "Amount", num: true }, { label: "Status" }, { label: "Decline code" },
    { label: "Attempt", num: true }, { label: "Refunded", num: true },
  ], rows, "No payments up to this moment.", { "data-table": "payments" });
}

async function walletSections(slots, userId, asOf) {
  const load = gql(WALLET, { userId, asOf }).then((d) => d.wallet);
  load.catch(() => {});
  await Promise.all([
    fill(slots.wallet, async () => {
      const w = await load;
      return cards([
        ["Total balance", `${count(w.totalBalance)} P`, "totalBalance"],
        ["Usable", `${count(w.usableBalance)} P`, "usableBalance"],
        ["Pending", `${count(w.pendingBalance)} P`, "pendingBalance"],
        ["Earned (lifetime)", `${count(w.lifetimeEarned)} P`, "lifetimeEarned"],
        ["Spent (lifetime)", `${count(w.lifetimeSpent)} P`, "lifetimeSpent"],
      ]);
    }),
    fill(slots.lots, async () => table("Points that will expire, soonest first", [{ label: "Expires" }, { label: "Points", num: true }],
      (await load).expiringSoon.map((lot) => [dateTime(lot.expiresAt), count(lot.amount)]),
      "No points with an expiry.", { "data-table": "lots" })),
    fill(slots.points, async () => {
      const t = (await load).transactions;
      return table(`Point transactions, newest first (${t.items.length} of ${t.totalCount})`, [
        { label: "When" }, { label: "Type" }, { label: "Points", num: true }, { label: "Balance after", num: true },
        { label: "Description" }, { label: "Expires" },
      ], t.items.map((x) => ({
        attrs: { "data-transaction": x.id },
        cells: [dateTime(x.createdAt), x.type, count(x.amount), count(x.balanceAfter), x.description, x.expiresAt ? dateTime(x.expiresAt) : ""],
      })), "No point transactions up to this moment.", { "data-table": "points" });
    }),
  ]);
}
