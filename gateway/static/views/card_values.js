// A card's value per grade (the card page's price section): the value, its 30-day change, the
// 7/30/90-day medians, the last sale, how many sold and how many copies exist on the exchange.
// Grades with copies but no sale yet are listed too (their prices "—").

import { h } from "../dom.js";
import { formatCents } from "../money.js";
import { busiestRows, lastSale, segmentKey, segmentLabel, sortValues } from "../analytics_model.js";
import { populationTable } from "../catalog.js";
import { changeText } from "./analytics_ui.js";

const SHORT = 8; // grades listed before "Show all"

/** /values rows and the card's population as one list of rows, in the catalog's order. */
export function valueRows(values, population) {
  const table = populationTable(population);
  const rows = new Map(sortValues(values).map((v) => [segmentKey(v), { ...v }]));
  for (const grader of table.graders) {
    const grades = grader === "RAW" ? [null] : table.grades.filter((g) => table.count(grader, g) > 0);
    for (const grade of grades) {
      const key = segmentKey({ grader, grade });
      if (!rows.has(key)) rows.set(key, { grader, grade, count: 0 });
    }
  }
  return sortValues([...rows.values()]).map((row) => ({
    ...row, population: table.count(row.grader, row.grader === "RAW" ? null : Number(row.grade)),
  }));
}

function lastCell(last) {
  if (!last) return h("td", { class: "num ledger__none", text: "—" });
  return h("td", { class: "num values__last" }, h("span", { text: last.price }),
    last.date ? h("span", { class: "values__date", text: last.date }) : null);
}

/**
 * The table's element; `onPick(segment)` when a grade with sales is chosen from it. The element's
 * show(rows, selectedKey) fills it.
 */
export function valuesTable({ onPick }) {
  const body = h("tbody", { testid: "values-rows" });
  let expanded = false;
  let last = [[], ""];
  const more = h("button", { type: "button", class: "btn btn--ghost btn--small", testid: "values-more", hidden: true,
    "aria-expanded": "false", onClick: () => { expanded = !expanded; el.show(...last); } });
  const money = (cents) => (Number.isInteger(cents) ? formatCents(cents) : "—");
  const el = h("div", { class: "values-wrap" }, h("div", { class: "table-wrap" }, h("table", { class: "ledger values", testid: "values-table" },
    h("caption", { class: "visually-hidden" }, "Value of this card per grade"),
    h("thead", null, h("tr", null,
      ["Grade", "Value", "30 days", "Median 7 d", "Median 30 d", "Median 90 d", "Last sale", "Sales", "Copies"]
        .map((t, i) => h("th", { scope: "col", class: i > 0 ? "num" : null,
          title: i === 2 ? "Change of the value over 30 days" : i === 8 ? "Graded copies on the exchange" : null }, t)))),
    body)), h("div", { class: "values__more" }, more));
  el.show = (all, selectedKey) => {
    last = [all, selectedKey];
    const rows = expanded ? all : busiestRows(all, SHORT, selectedKey);
    more.hidden = all.length <= SHORT;
    more.setAttribute("aria-expanded", String(expanded));
    more.textContent = expanded ? "Show the busiest grades" : `Show all ${all.length} grades`;
    body.replaceChildren(...rows.map((row) => {
      const key = segmentKey(row);
      const sold = Number.isInteger(row.count) && row.count > 0;
      const label = segmentLabel(row);
      return h("tr", { testid: "value-row", class: key === selectedKey ? "is-selected" : null,
        dataset: { segment: key }, "aria-current": key === selectedKey ? "true" : null },
      h("th", { scope: "row" }, sold
        ? h("button", { type: "button", class: "link-button", title: `Show ${label} prices`, onClick: () => onPick(row) },
          h("span", { class: "slab", dataset: { grader: row.grader } }, label))
        : h("span", { class: "slab", dataset: { grader: row.grader } }, label)),
      h("td", { class: "num values__value", testid: "value-value", text: money(row.value) }),
      h("td", { class: "num" }, changeText(row.change_30d)),
      h("td", { class: "num", text: money(row.median_7d) }),
      h("td", { class: "num", text: money(row.median_30d) }),
      h("td", { class: "num", text: money(row.median_90d) }),
      lastCell(lastSale(row)),
      h("td", { class: "num", testid: "value-count", text: String(Number.isInteger(row.count) ? row.count : 0) }),
      h("td", { class: "num", text: String(row.population) }));
    }));
    if (!all.length) {
      body.append(h("tr", null, h("td", { colspan: 9, class: "ledger__empty" }, "No copies or sales of this card yet.")));
    }
  };
  return el;
}
