// Collections: PAST_DUE and SUSPENDED subscriptions, newest failure first, linking to the user.
import { gql } from "../api.js";
import { dateTime, won } from "../format.js";
import { el, fill, table } from "../ui.js";

export const title = "Collections";

const QUERY = `query Collections {
  collections(first: 500) {
    subscription { id userId status price plan { name } }
    lastDeclineCode lastFailedAt attempts nextRetryAt
  }
}`;

export async function render(root) {
  const slot = el("div");
  root.append(el("h2", { id: "page-title" }, "Collections"),
    el("p", { class: "muted" }, "Subscriptions whose renewal failed (PAST_DUE: retried 3 and 6 days after the first failure) or stopped (SUSPENDED: no retry until the payment method changes)."),
    slot);
  await fill(slot, async () => {
    const { collections } = await gql(QUERY);
    return table(`${collections.length} subscription${collections.length === 1 ? "" : "s"} in collections, newest failure first`, [
      { label: "User" }, { label: "Subscription" }, { label: "Plan" }, { label: "Price", num: true }, { label: "Status" },
      { label: "Last decline code" }, { label: "Last failed" }, { label: "Attempts", num: true }, { label: "Next retry" },
    ], collections.map((c) => ({
      attrs: { "data-subscription": c.subscription.id },
      cells: [
        el("a", { href: `#/user/${encodeURIComponent(c.subscription.userId)}` }, c.subscription.userId),
        el("code", {}, c.subscription.id),
        c.subscription.plan.name,
        won(c.subscription.price),
        el("span", { class: "badge" }, c.subscription.status),
        c.lastDeclineCode || "—",
        dateTime(c.lastFailedAt),
        String(c.attempts),
        c.nextRetryAt ? dateTime(c.nextRetryAt) : "none (suspended)",
      ],
    })), "No subscription is PAST_DUE or SUSPENDED.", { "data-table": "collections" });
  });
}
