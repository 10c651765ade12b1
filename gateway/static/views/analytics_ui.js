// Small pieces the analytics pages share (market, card prices, my activity): a toggle of a few
// options, a change figure, a chart's frame, a sales row, bars as accessible HTML.

import { h } from "../dom.js";
import { dateTime, gradeLabel } from "../format.js";
import { formatCents } from "../money.js";
import { SOURCE_LABEL, formatChange, reasonText } from "../analytics_model.js";
import { href } from "../router.js";

/**
 * A row of buttons, one pressed: `options` [[value, text]]. onChange(value) when another is
 * chosen. The element's set(value) presses one without calling onChange.
 */
export function toggle({ label, options, value, onChange, testid }) {
  const buttons = options.map(([v, text]) => h("button", {
    type: "button", class: "toggle__option", testid: `${testid}-${v}`, "aria-pressed": String(v === value),
    onClick: () => {
      if (el.dataset.value === v) return;
      el.set(v);
      onChange(v);
    },
  }, text));
  const el = h("div", { class: "toggle", role: "group", "aria-label": label, testid, dataset: { value } }, buttons);
  el.set = (v) => {
    el.dataset.value = v;
    buttons.forEach((b, i) => b.setAttribute("aria-pressed", String(options[i][0] === v)));
  };
  return el;
}

/** A change figure ("+12.3%", green up / red down), its sign also in words for screen readers. */
export function changeText(fraction, testid = null) {
  const { text, tone } = formatChange(fraction);
  const words = tone === "up" ? "up " : tone === "down" ? "down " : "";
  return h("span", { class: `change change--${tone}`, testid, dataset: { tone } },
    h("span", { "aria-hidden": "true" }, text),
    h("span", { class: "visually-hidden" }, tone === "none" ? "no data" : `${words}${text.replace(/^[+-]/, "")}`));
}

/** A chart's host: sized by CSS, described for screen readers; `data-state` loading|ready|empty. */
export function chartHost(testid, label) {
  return h("div", { class: "chart", testid, role: "img", "aria-label": label, dataset: { state: "loading" } });
}

/** An empty state in place of a chart (never an empty chart frame). */
export function emptyChart(testid, title, text) {
  return h("div", { class: "empty empty--small chart-empty", testid, hidden: true },
    h("p", { class: "empty__title", text: title }), h("p", { text }));
}

/** A flagged sale's mark: "Flagged" with its reason (in words beside it, not only on hover). */
export function suspectMark(sale) {
  if (!sale.suspect) return null;
  const why = reasonText(sale.reason);
  return h("span", { class: "chip chip--suspect", testid: "sale-suspect", title: `${why} — left out of the chart and values` },
    "Flagged", h("span", { class: "visually-hidden" }, `: ${why}`));
}

/** A sale of the market ticker: time, card (linked), grade, price, source, flagged or not. */
export function tickerItem(sale) {
  const card = sale.card_id ? h("a", { href: href("/card/:id", { id: sale.card_id }), class: "ticker__card" },
    sale.name || "A card") : h("span", { class: "ticker__card" }, sale.name || "A card");
  return h("li", { class: `ticker__sale${sale.suspect ? " is-suspect" : ""}`, testid: "ticker-sale",
    dataset: { cardId: sale.card_id || "", price: sale.price, suspect: String(Boolean(sale.suspect)) } },
  card,
  h("span", { class: "ticker__grade" }, gradeLabel(sale), " · ",
    h("time", { class: "ticker__time", datetime: new Date(sale.at).toISOString(), title: dateTime(sale.at), text: whenShort(sale.at) })),
  h("span", { class: "ticker__price", text: formatCents(sale.price) }),
  sale.suspect ? suspectMark(sale) : h("span", { class: "ticker__source", text: SOURCE_LABEL[sale.source] || sale.source || "" }));
}

/** A time of today ("3:04 PM"), else its day ("Nov 5"); the full date is in the title. */
function whenShort(ms) {
  const date = new Date(ms);
  return date.toDateString() === new Date().toDateString()
    ? date.toLocaleTimeString([], { hour: "numeric", minute: "2-digit" })
    : date.toLocaleDateString([], { month: "short", day: "numeric" });
}

/**
 * Counts as horizontal HTML bars (a categorical axis: clearer and more accessible than a time
 * chart): a table of label, bar and count. `rows` from analytics_model.js's bars().
 */
export function barTable({ caption, rows, testid, unit = "bids", compact = false }) {
  return h("table", { class: `bars${compact ? " bars--compact" : ""}`, testid },
    h("caption", { class: "visually-hidden" }, caption),
    h("thead", { class: "visually-hidden" }, h("tr", null,
      h("th", { scope: "col" }, "When"), h("th", { scope: "col" }, "Share"), h("th", { scope: "col" }, unit))),
    h("tbody", null, rows.map((r) => h("tr", { testid: `${testid}-row`, dataset: { label: r.label, count: r.count } },
      h("th", { scope: "row", class: "bars__label" }, r.label),
      h("td", { class: "bars__track", "aria-hidden": "true" }, r.count > 0
        ? h("span", { class: "bars__fill", style: `width: ${Math.max(1, Math.round(r.fraction * 100))}%` }) : null),
      h("td", { class: "bars__count" }, String(r.count))))));
}
