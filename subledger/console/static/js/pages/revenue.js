// Revenue: MRR and revenue by month and plan, subscribers, churn and trial-to-paid for a range.
import { gql } from "../api.js";
import { count, lastDay, monthOf, monthsBetween, percent, won } from "../format.js";
import { service } from "../main.js";
import { cards, chart, el, fill, monthRange, table } from "../ui.js";

export const title = "Revenue";
const MAX_MONTHS = 24; // one alias per month; the API allows 30

const SUMMARY = `query RevenueSummary($from: Date!, $to: Date!) {
  catalog { plans { id name } }
  subscriptionsByStatus { status count }
  subscriptionMetrics(from: $from, to: $to) {
    revenue { total mrr arr byPlan { planId revenue } }
    subscribers { totalActive newSubscribers churnedSubscribers churnRate retentionRate }
    conversions { trialToPaid planUpgrades planDowngrades }
    payments { successRate failedPayments refunds refundedAmount }
  }
}`;

function monthlyQuery(months) {
  const fields = months.map((m, i) => `m${i}: subscriptionMetrics(from: "${m}-01", to: "${lastDay(m)}") {
    revenue { total mrr byPlan { planId revenue } }
    subscribers { totalActive newSubscribers churnedSubscribers } }`);
  return `query RevenueByMonth { ${fields.join("\n")} }`;
}

export async function render(root, params) {
  const [from, to, form] = monthRange("revenue", params, 5, ["From month", "To month"], monthOf(service.now));
  const slot = el("div");
  root.append(el("h2", { id: "page-title" }, "Revenue"), form, slot);
  await fill(slot, () => load(from, to));
}

async function load(from, to) {
  const months = monthsBetween(from, to);
  if (!months.length) return el("p", { class: "error", role: "alert" }, "The range ends before it starts.");
  if (months.length > MAX_MONTHS) return el("p", { class: "error", role: "alert" }, `Choose at most ${MAX_MONTHS} months.`);
  const [summary, monthly] = await Promise.all([
    gql(SUMMARY, { from: `${from}-01`, to: lastDay(to) }),
    gql(monthlyQuery(months)),
  ]);
  const m = summary.subscriptionMetrics;
  const names = Object.fromEntries(summary.catalog.plans.map((p) => [p.id, p.name]));
  const rows = months.map((month, i) => ({ month, ...monthly[`m${i}`] }));
  const planIds = [...new Set([...m.revenue.byPlan.map((p) => p.planId), ...rows.flatMap((r) => r.revenue.byPlan.map((p) => p.planId))])];
  const revenueOf = (row, planId) => (row.revenue.byPlan.find((p) => p.planId === planId) || { revenue: 0 }).revenue;
  return [
    el("h3", {}, `${from} to ${to}`),
    cards([
      ["MRR at the end", won(m.revenue.mrr), "mrr"],
      ["ARR", won(m.revenue.arr), "arr"],
      ["Net revenue", won(m.revenue.total), "revenue"],
      ["Subscribers at the end", count(m.subscribers.totalActive), "totalActive"],
      ["New subscribers", count(m.subscribers.newSubscribers), "newSubscribers"],
      ["Churned subscribers", count(m.subscribers.churnedSubscribers), "churnedSubscribers"],
      ["Churn rate", percent(m.subscribers.churnRate), "churnRate"],
      ["Trial to paid", percent(m.conversions.trialToPaid), "trialToPaid"],
      ["Payment success", percent(m.payments.successRate), "successRate"],
      ["Refunded", won(m.payments.refundedAmount), "refundedAmount"],
    ]),
    el("div", { class: "charts" },
      chart("MRR by month", {
        type: "line",
        data: { labels: months, datasets: [{ label: "MRR (₩)", data: rows.map((r) => r.revenue.mrr) }] },
      }),
      chart("Net revenue by month and plan", {
        type: "bar",
        data: { labels: months, datasets: planIds.map((id) => ({ label: names[id] || id, data: rows.map((r) => revenueOf(r, id)) })) },
        options: { scales: { x: { stacked: true }, y: { stacked: true } } },
      }),
      chart("Subscriptions by status now", {
        type: "doughnut",
        data: {
          labels: summary.subscriptionsByStatus.map((s) => s.status),
          datasets: [{ label: "Subscriptions", data: summary.subscriptionsByStatus.map((s) => s.count),
            backgroundColor: ["#7c3aed", "#0f766e", "#c2410c", "#a16207", "#6b7785", "#4d7c0f", "#b91c1c"] }],
        },
      }),
      chart("Subscribers by month", {
        type: "bar",
        data: {
          labels: months,
          datasets: [
            { label: "At month end", data: rows.map((r) => r.subscribers.totalActive) },
            { label: "New", data: rows.map((r) => r.subscribers.newSubscribers) },
            { label: "Churned", data: rows.map((r) => r.subscribers.churnedSubscribers) },
          ],
        },
      })),
    table("By month", [
      { label: "Month", rowHeader: true }, { label: "Net revenue", num: true }, { label: "MRR at month end", num: true },
      { label: "Subscribers at month end", num: true }, { label: "New", num: true }, { label: "Churned", num: true },
    ], rows.map((r) => ({
      attrs: { "data-month": r.month },
      cells: [r.month, won(r.revenue.total), won(r.revenue.mrr), count(r.subscribers.totalActive),
        count(r.subscribers.newSubscribers), count(r.subscribers.churnedSubscribers)],
    })), "No months in the range.", { "data-table": "months" }),
    table("Subscriptions by status now", [{ label: "Status", rowHeader: true }, { label: "Subscriptions", num: true }],
      summary.subscriptionsByStatus.map((s) => ({ attrs: { "data-status": s.status }, cells: [s.status, count(s.count)] })),
      "No subscriptions.", { "data-table": "statuses" }),
    table("Net revenue by plan over the range", [{ label: "Plan", rowHeader: true }, { label: "Net revenue", num: true }],
      m.revenue.byPlan.map((p) => ({ attrs: { "data-plan": p.planId }, cells: [names[p.planId] || p.planId, won(p.revenue)] })),
      "No revenue in this range.", { "data-table": "plans" }),
  ];
}
