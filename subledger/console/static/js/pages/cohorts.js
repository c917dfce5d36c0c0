// Cohorts: monthly signup cohorts as a retention grid, coloured by the share retained.
import { gql } from "../api.js";
import { count, monthOf, percent } from "../format.js";
import { service } from "../main.js";
import { cell, el, fill, monthRange, table } from "../ui.js";

export const title = "Cohorts";

const QUERY = `query Cohorts($from: String!, $to: String!) { cohorts(fromMonth: $from, toMonth: $to) { cohort size retained } }`;

/**
 * Light to dark blue by share: below half, light shades (96% to 62% lightness) under dark text;
 * from half up, dark shades (42% to 18%) under white text. Mid-blues, where neither text colour
 * reaches a 4.5:1 contrast, are skipped.
 */
function shade(share) {
  const dark = share >= 0.5;
  const lightness = Math.round(dark ? 42 - (share - 0.5) * 48 : 96 - share * 68);
  return `background: hsl(214 70% ${lightness}%); color: ${dark ? "#fff" : "#1b1f24"}`;
}

export async function render(root, params) {
  const [from, to, form] = monthRange("cohorts", params, 11, ["First cohort", "Last cohort"], monthOf(service.now));
  const slot = el("div");
  root.append(el("h2", { id: "page-title" }, "Cohorts"),
    el("p", { class: "muted" }, "Users by the month of their first subscription; month k: the share with a paid or trialing subscription k months later."),
    form, slot);
  await fill(slot, async () => {
    const { cohorts } = await gql(QUERY, { from, to });
    const width = Math.max(0, ...cohorts.map((c) => c.retained.length));
    const columns = [{ label: "Cohort", rowHeader: true }, { label: "Users", num: true },
      ...Array.from({ length: width }, (_, k) => ({ label: `Month ${k}`, num: true }))];
    const rows = cohorts.filter((c) => c.size > 0).map((c) => ({
      attrs: { "data-cohort": c.cohort },
      cells: [c.cohort, count(c.size), ...Array.from({ length: width }, (_, k) => {
        if (k >= c.retained.length) return cell("", { "data-k": k });
        const share = c.retained[k] / c.size;
        return cell(percent(share), { style: shade(share), title: `${c.retained[k]} of ${c.size}`, "data-k": k, "data-retained": c.retained[k] });
      })],
    }));
    return table("Retention by signup month", columns, rows, "No users signed up in these months.", { "data-table": "cohorts" });
  });
}
