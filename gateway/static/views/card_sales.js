// A card's sales at one grade (the card page's price section): newest first, flagged ones marked
// with their reason, a page at a time ("Load more" follows the history's cursor); a live sale is
// prepended.

import { h } from "../dom.js";
import { dateTime } from "../format.js";
import { formatCents } from "../money.js";
import { SOURCE_LABEL, mergeSales, reasonText, saleKey } from "../analytics_model.js";
import { href } from "../router.js";
import { suspectMark } from "./analytics_ui.js";

function refLink(sale) {
  if (!sale.ref) return h("span", { class: "ledger__none", text: "—" });
  if (sale.source === "auction") return h("a", { href: href("/auction/:id", { id: sale.ref }) }, "Auction");
  return h("span", { text: SOURCE_LABEL[sale.source] || sale.source });
}

function saleRow(sale) {
  return h("tr", { testid: "sale", class: sale.suspect ? "is-suspect" : null,
    dataset: { key: saleKey(sale), price: sale.price, at: sale.at, suspect: String(Boolean(sale.suspect)) } },
  h("td", { class: "ledger__date", text: dateTime(sale.at) }),
  h("td", { class: "num ledger__amount", testid: "sale-price", text: formatCents(sale.price) }),
  h("td", null, sale.source === "auction" ? refLink(sale) : SOURCE_LABEL[sale.source] || sale.source || "—"),
  h("td", { class: "sales__note" }, sale.suspect
    ? [suspectMark(sale), h("span", { class: "sales__reason", testid: "sale-reason", text: reasonText(sale.reason) })]
    : h("span", { class: "ledger__none", text: "—" })));
}

export class SalesList {
  /** loadMore(cursor) -> a history page ({sales, cursor}) of the grade shown. */
  constructor({ loadMore }) {
    this.fetchMore = loadMore;
    this.sales = [];
    this.cursor = null;
    this.generation = 0;
  }

  build() {
    this.rows = h("tbody", { testid: "sales-list" });
    this.more = h("button", { type: "button", class: "btn btn--ghost btn--small", testid: "sales-more", hidden: true,
      onClick: () => this.loadMore() }, "Load more");
    this.status = h("p", { class: "list-status", role: "status", testid: "sales-status" });
    return h("div", { class: "sales" },
      h("div", { class: "table-wrap" }, h("table", { class: "ledger sales__table" },
        h("caption", { class: "visually-hidden" }, "Sales of this card at the grade shown, newest first"),
        h("thead", null, h("tr", null, h("th", { scope: "col" }, "Date"), h("th", { scope: "col", class: "num" }, "Price"),
          h("th", { scope: "col" }, "Where"), h("th", { scope: "col" }, "Note"))),
        this.rows)),
      h("div", { class: "wallet__more" }, this.more, this.status));
  }

  /** The first page of a (new) grade or interval. */
  reset(sales, cursor) {
    this.generation += 1;
    this.sales = mergeSales([sales || []]);
    this.cursor = cursor ?? null;
    this.render();
  }

  /** A live sale of the grade shown. */
  prepend(sale) {
    const before = this.sales.length;
    this.sales = mergeSales([[sale], this.sales]);
    if (this.sales.length !== before) this.render();
  }

  async loadMore() {
    if (!this.cursor) return;
    const generation = this.generation;
    this.more.disabled = true;
    this.status.textContent = "";
    try {
      const page = await this.fetchMore(this.cursor);
      if (generation !== this.generation) return; // the grade changed meanwhile
      this.sales = mergeSales([this.sales, page.sales || []]);
      this.cursor = page.cursor ?? null;
      this.render();
    } catch (error) {
      this.status.textContent = error.code === "NETWORK" ? "Offline — try again" : `Couldn't load more: ${error.message}`;
    } finally {
      this.more.disabled = false;
    }
  }

  render() {
    // Rows kept by key: a prepended sale adds one row (no rebuilt table, focus stays).
    const shown = new Map([...this.rows.querySelectorAll("tr[data-key]")].map((tr) => [tr.dataset.key, tr]));
    const rows = this.sales.map((s) => shown.get(saleKey(s)) || saleRow(s));
    this.rows.replaceChildren(...(rows.length ? rows
      : [h("tr", null, h("td", { colspan: 4, class: "ledger__empty", testid: "sales-empty" }, "No sales at this grade yet."))]));
    this.rows.dataset.count = String(this.sales.length);
    this.more.hidden = !this.cursor;
  }
}
