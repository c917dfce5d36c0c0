import { addMonths } from "./format.js";

// Small DOM helpers shared by the pages: elements, figure cards, tables, states, charts.

/** el("td", {class: "num"}, "₩9,900") */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

/** Figure cards: [[label, text, key]], each value marked data-figure=key for tests and scripts. */
export function cards(figures) {
  return el("dl", { class: "cards" },
    figures.map(([label, text, key]) => el("div", {}, el("dt", {}, label), el("dd", { "data-figure": key }, text))));
}

/**
 * A semantic table. columns: [{label, num}]; rows: [{cells: [...], attrs}] or arrays of cells.
 * With no rows, the caption is followed by the empty state instead.
 */
export function table(caption, columns, rows, empty, attrs = {}) {
  if (!rows.length) return el("p", { class: "empty", ...attrs, "data-empty": "" }, empty);
  const head = el("thead", {}, el("tr", {}, columns.map((c) => el("th", { scope: "col", class: c.num ? "num" : null }, c.label))));
  const body = el("tbody", {}, rows.map((row) => {
    const cells = Array.isArray(row) ? row : row.cells;
    const rowAttrs = Array.isArray(row) ? {} : row.attrs || {};
    return el("tr", rowAttrs, cells.map((cell, i) => {
      const tag = i === 0 && columns[0].rowHeader ? "th" : "td";
      return el(tag, { class: columns[i].num ? "num" : null, scope: tag === "th" ? "row" : null, ...(cell && cell.attrs) },
        cell && cell.attrs ? cell.content : cell);
    }));
  }));
  return el("table", attrs, el("caption", {}, caption), head, body);
}

/** A cell with attributes: cell("25.0%", {style: ...}) */
export function cell(content, attrs) {
  return { content, attrs };
}

const TITLES = {
  unauthenticated: "Your token is no longer accepted",
  forbidden: "Not allowed for your scope",
  api: "The API answered with an error",
  network: "The API could not be reached",
};

/** The visible state of a failed call: expired token, FORBIDDEN, API error or network. */
export function errorBox(error) {
  const kind = error.kind || "api";
  const hint = {
    unauthenticated: "It may have expired. Sign out and sign in with a new token.",
    forbidden: "Your token's scope does not allow this part; the rest of the console still works.",
  }[kind];
  return el("div", { class: "error", role: "alert", "data-error": kind },
    el("strong", {}, TITLES[kind] || TITLES.api), `: ${error.message}`, error.code ? ` (${error.code})` : "", hint ? el("br") : null, hint || "");
}

/** Run `load` and put what it answers into `slot`, or its error. */
export async function fill(slot, load) {
  slot.replaceChildren(el("p", { class: "muted" }, "Loading…"));
  try {
    const content = await load();
    slot.replaceChildren(...[content].flat().filter(Boolean));
  } catch (error) {
    if (!error.kind) console.error(error);
    slot.replaceChildren(errorBox(error));
  }
}

/**
 * A form choosing a range of months for page `page` (#/page/FROM/TO), with `months` back from
 * the service's current month by default. Answers [from, to, form].
 */
export function monthRange(page, params, months, [fromLabel, toLabel], current) {
  const [from = addMonths(current, -months), to = current] = params;
  const form = el("form", { class: "inline", "aria-label": "Months" },
    el("label", {}, fromLabel, el("input", { type: "month", name: "from", value: from, required: true })),
    el("label", {}, toLabel, el("input", { type: "month", name: "to", value: to, required: true })),
    el("button", { type: "submit" }, "Show"));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    location.hash = `#/${page}/${form.from.value}/${form.to.value}`;
  });
  return [from, to, form];
}

const PALETTE = ["#0b57d0", "#c2410c", "#0f766e", "#7c3aed", "#b91c1c", "#4d7c0f", "#a16207", "#be185d"];

/** A Chart.js chart in a labelled figure; the first one drawn marks window.__consoleFirstChart. */
export function chart(label, config) {
  const canvas = el("canvas", { role: "img", "aria-label": label });
  const figure = el("figure", { class: "chart-figure" }, el("figcaption", {}, label), el("div", { class: "chart" }, canvas));
  requestAnimationFrame(() => {
    config.data.datasets.forEach((set, i) => {
      set.backgroundColor ??= PALETTE[i % PALETTE.length];
      set.borderColor ??= PALETTE[i % PALETTE.length];
    });
    new window.Chart(canvas, {
      ...config,
      options: { animation: false, maintainAspectRatio: false, responsive: true, ...(config.options || {}) },
    });
    if (window.__consoleFirstChart === undefined) window.__consoleFirstChart = performance.now();
  });
  return figure;
}
