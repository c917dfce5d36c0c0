// Collections: PAST_DUE and SUSPENDED subscriptions, newest failure first, linking to the user.
import { gql } from "../api.js";
import { dateTime, won } from "../format.js";
import { el, fill, table } from "../ui.js";

export const title = "Collections";

const QUERY = `query Collections($after: String) {
  collections(first: 200, after: $after) {
    items { subscription { id userId status price plan { name } } lastDeclineCode lastFailedAt attempts nextRetryAt }
    nextCursor
  }
}`;
const MAX_PAGES = 25;

/** Every case, page after page (at most MAX_PAGES pages of 200); `more`: pages were left. */
async function allCases() {
  const cases = [];
  let after = null;
  for (let page = 0; page < MAX_PAGES; page++) {
    const { collections } = await gql(QUERY, { after });
    cases.push(...collections.items);
    after = collections.nextCursor;
    if (!after) return { cases, more: false };
  }
  return { cases, more: true };
}

export async function render(root) {
  const slot = el("div");
  root.append(el("h2", { id: "page-title" }, "Collections"),
    el("p", { class: "muted" }, "Subscriptions whose renewal failed (PAST_DUE: retried 3 and 6 days after the first failure) or stopped (SUSPENDED: no retry until the payment method changes)."),
    slot);
  await fill(slot, async () => {
    const { cases: collections, more } = await allCases();
    const shown = table(`${collections.length} subscription${collections.length === 1 ? "" : "s"} in collections, newest subscription first`, [
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
    return more ? [el("p", { class: "notice" }, `Showing the newest ${collections.length}; there are more.`), shown] : shown;
  });
}
