// The portfolio page's holdings table: each card held, its value with the range and the
// confidence ("no value yet" when there is none, never $0.00), what it cost, its P/L and the days
// it would take to sell. Sortable by value, P/L, confidence and days to sell (the column heads
// are buttons; aria-sort says the order). "Sales" opens a row listing the sales behind the value,
// fetched from GET /api/cards/{id}/value on demand. `publicView`: someone's public portfolio,
// read-only, without the Cost and P/L columns (the public answer has neither).

import { api } from "../api.js";
import { flash, h, setText } from "../dom.js";
import { gradeLabel, shortId } from "../format.js";
import { formatCents } from "../money.js";
import {
  SORTS, confidenceText, dayText, daysText, pnlText, pnlTone, rangeText, sortHoldings, valueText,
} from "../portfolio_model.js";
import { href } from "../router.js";

const SHORT = 50; // rows shown before "Show all"
const BASIS_LABEL = { purchase: "bought", swap: "swapped (valued then)", mint: "minted: nothing paid", unknown: "not known" };

/** The table; `name(card_id)` words a card. The element's show(holdings, changed ids) fills it. */
export function holdingsTable({ name, publicView = false }) {
  const columns = publicView ? 5 : 7;
  const money = (...cells) => (publicView ? [] : cells);
  let sort = { key: "value", dir: "desc" };
  let holdings = [];
  let expanded = false;
  const open = new Set(); // asset ids whose sales are listed
  const sales = new Map(); // position -> Promise of the /value answer
  const body = h("tbody", { testid: "holdings-rows" });
  const heads = new Map();
  const head = (key, text, cls = "num") => {
    if (!SORTS[key]) return h("th", { scope: "col", class: cls }, text);
    const button = h("button", { type: "button", class: "sort", testid: `sort-${key}`,
      onClick: () => {
        sort = { key, dir: sort.key === key && sort.dir === "desc" ? "asc" : "desc" };
        render();
      } }, text, h("span", { class: "sort__mark", "aria-hidden": "true" }));
    const th = h("th", { scope: "col", class: cls }, button);
    heads.set(key, th);
    return th;
  };
  const more = h("button", { type: "button", class: "btn btn--ghost btn--small", testid: "holdings-more", hidden: true,
    onClick: () => { expanded = !expanded; render(); } });
  const el = h("div", { class: "holdings-wrap" },
    h("div", { class: "table-wrap" }, h("table", { class: "ledger holdings", testid: "holdings" },
      h("caption", { class: "visually-hidden" }, `${publicView ? "The" : "Your"} holdings, with each value's range and confidence`),
      h("thead", null, h("tr", null,
        head(null, "Card", null), head("value", "Value"), head("confidence", "Confidence", null),
        ...money(head(null, "Cost"), head("pnl", "P/L")), head("days", "Days to sell"), head(null, h("span", { class: "visually-hidden" }, "Sales"), null))),
      body)),
    h("div", { class: "values__more" }, more));

  function valueOf(holding) {
    const key = holding.position;
    if (!sales.has(key)) {
      const promise = api.cardValue(holding.card_id, holding.grader, holding.grade);
      promise.catch(() => sales.delete(key)); // a failed fetch is tried again next time
      sales.set(key, promise);
    }
    return sales.get(key);
  }

  function salesRow(holding) {
    const cell = h("td", { colspan: columns, class: "holding__sales", testid: "holding-sales-list" },
      h("p", { class: "hint", role: "status" }, "Loading the sales behind this value…"));
    valueOf(holding).then((answer) => cell.replaceChildren(...salesList(answer, holding.value).filter(Boolean)), (error) => {
      cell.replaceChildren(h("p", { class: "hint list-status--error" }, `Couldn't load the sales: ${error.message}`));
    });
    return h("tr", { class: "holding__detail", dataset: { assetId: holding.asset_id } }, cell);
  }

  function row(holding, flashed) {
    const v = holding.value;
    const isOpen = open.has(holding.asset_id);
    const detailId = `sales-${holding.asset_id}`;
    const card = h("th", { scope: "row", class: "holding__card" },
      h("a", { href: href("/card/:id", { id: holding.card_id }), class: "holding__name", testid: "holding-name" }, name(holding.card_id)),
      h("span", { class: "holding__grade" }, h("span", { class: "slab", dataset: { grader: holding.grader } }, gradeLabel(holding))));
    const value = h("td", { class: `num holding__value${v ? "" : " is-none"}` },
      h("span", { class: "holding__point", testid: "holding-value", text: valueText(v) }),
      v ? h("span", { class: "holding__range", testid: "holding-range", text: rangeText(v.low, v.high) }) : null);
    const tr = h("tr", { class: "holding", testid: "holding", dataset: { assetId: holding.asset_id, position: holding.position } },
      card, value,
      h("td", { class: "holding__confidence", testid: "holding-confidence" }, v
        ? h("span", { class: "confidence", dataset: { level: v.confidence } }, confidenceText(v))
        : h("span", { class: "hint" }, "no sale of this card and grade yet")),
      ...money(h("td", { class: "num" }, h("span", { text: Number.isInteger(holding.cost_basis) ? formatCents(holding.cost_basis) : "not known" }),
        h("span", { class: "holding__sub", text: BASIS_LABEL[holding.basis_how] ?? "" })),
      h("td", { class: `num change change--${pnlTone(holding.pnl)}`, testid: "holding-pnl", text: pnlText(holding.pnl) })),
      h("td", { class: "num", testid: "holding-days", text: daysText(holding.days_to_sell) }),
      h("td", null, v ? h("button", { type: "button", class: "btn btn--ghost btn--small", testid: "holding-sales",
        "aria-expanded": String(isOpen), "aria-controls": detailId,
        title: "The sales this value comes from",
        onClick: () => {
          if (open.has(holding.asset_id)) open.delete(holding.asset_id);
          else open.add(holding.asset_id);
          render();
        } }, isOpen ? "Hide sales" : "Sales") : null));
    if (flashed) flash(value);
    if (!isOpen || !v) return [tr];
    const detail = salesRow(holding);
    detail.id = detailId;
    return [tr, detail];
  }

  function render(changed = []) {
    for (const [key, th] of heads) {
      th.setAttribute("aria-sort", key === sort.key ? (sort.dir === "desc" ? "descending" : "ascending") : "none");
    }
    const all = sortHoldings(holdings, sort.key, sort.dir);
    const shown = expanded ? all : all.slice(0, SHORT);
    const fresh = new Set(changed);
    body.replaceChildren(...shown.flatMap((holding) => row(holding, fresh.has(holding.asset_id))));
    if (!all.length) body.append(h("tr", null, h("td", { colspan: columns, class: "ledger__empty" }, publicView ? "No cards in this collection yet." : "You hold no cards.")));
    more.hidden = all.length <= SHORT;
    setText(more, expanded ? `Show the first ${SHORT}` : `Show all ${all.length} holdings`);
  }

  /** Fill (or refill) the table; `changed`: asset ids whose value just changed (their listed
   * sales are fetched again, their value flashes). */
  el.show = (list, changed = []) => {
    holdings = Array.isArray(list) ? list : [];
    for (const id of changed) {
      const holding = holdings.find((x) => x.asset_id === id);
      if (holding) sales.delete(holding.position);
    }
    render(changed);
  };
  el.rename = () => render();
  return el;
}

/** The sales behind a value (`value` the holding's): when, the price, the index factor and the price adjusted to today. */
function salesList(answer, value) {
  const list = (Array.isArray(answer?.sales) ? answer.sales : []).filter(Boolean)
    .sort((a, b) => (Number(b.at) || 0) - (Number(a.at) || 0)); // newest first
  const from = Array.isArray(answer?.derived_from) && answer.derived_from.length ? ` (${answer.derived_from.join(", ")})` : "";
  const derived = from || value?.method === "derived" || answer?.value?.method === "derived"
    ? h("p", { class: "hint" }, `No sale of this grade itself: its value is derived from the card's other ${answer?.grader ?? ""} grades${from}, along the prices of grades that sold.`)
    : null;
  if (!list.length) return [derived ?? h("p", { class: "hint" }, "No sales listed for this value.")];
  const factor = (f) => (typeof f === "number" && Number.isFinite(f) ? `×${f.toFixed(3)}` : "—");
  return [
    h("p", { class: "holding__sales-title" }, `The ${list.length} sale${list.length === 1 ? "" : "s"} behind this value — each price moved to today by the market index, the value is their median:`),
    h("table", { class: "ledger ledger--inner" },
      h("caption", { class: "visually-hidden" }, "Sales behind this value"),
      h("thead", null, h("tr", null, ["Sold", "Price", "Index since", "Adjusted to today"].map((t, i) =>
        h("th", { scope: "col", class: i ? "num" : null }, t)))),
      h("tbody", null, list.map((s) => h("tr", { testid: "holding-sale" },
        h("td", { text: dayText(s.at) || "—" }),
        h("td", { class: "num", testid: "holding-sale-price", text: formatCents(s.price) }),
        h("td", { class: "num", text: factor(s.factor) }),
        h("td", { class: "num", text: formatCents(Number.isFinite(s.adjusted) ? Math.round(s.adjusted) : s.adjusted) }))))),
    derived,
  ];
}

/** A card's name for a holding or a warning until its catalog record is known. */
export function placeholderName(cardId) {
  return `Card ${shortId(cardId, 6, 4)}`;
}
