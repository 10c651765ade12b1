// The list of live auctions, searched and filtered by the server (GET /api/auctions?...), and
// refreshed every few seconds (and when a listed Dutch price is due to drop). The search lives
// in the URL ("#/?q=charizard&grader=PSA&sort=price_desc"): it can be shared and survives a
// reload. Prices are shown as the server gave them.

import { ApiError, api, clock } from "../api.js";
import { h, setText } from "../dom.js";
import { clockTime } from "../format.js";
import { apiQuery, isFiltered, listHash, parseListQuery, sameFilters } from "../list_query.js";
import { renderAccount } from "../shell.js";
import { renderTiles, updateTile } from "./auction_tile.js";
import { ListFilters } from "./list_filters.js";

const LIST_REFRESH_MS = 4_000;
const DROP_RETRY_MS = 1_000;

export class ListView {
  title = "Live auctions";

  constructor(query = new URLSearchParams()) {
    this.filters = parseListQuery(query);
  }

  mount(main) {
    this.items = new Map(); // auction_id -> {el, view, refs}
    this.loading = false;
    this.again = false; // the filters changed while a request was in flight
    this.nextDrop = null; // the earliest next_drop_at of a listed Dutch auction
    this.notBefore = 0; // no drop-triggered refresh before this (local time)
    this.form = new ListFilters((filters) => this.search(filters));
    this.form.show(this.filters);
    this.grid = h("div", { class: "auction-grid", testid: "auction-list", "aria-live": "off" });
    this.emptyTitle = h("p", { class: "empty__title" });
    this.emptyText = h("p");
    this.emptyAction = h("div", { class: "empty__actions" });
    this.empty = h("div", { class: "empty", testid: "list-empty", hidden: true },
      this.emptyTitle, this.emptyText, this.emptyAction);
    this.count = h("p", { class: "list-count", testid: "list-count", role: "status" });
    this.status = h("p", { class: "list-status", role: "status", testid: "list-status" }, "Loading…");
    main.append(h("section", { class: "page" },
      h("div", { class: "page__head" },
        h("div", null,
          h("h1", { class: "page__title", text: "Live auctions" }),
          h("p", { class: "page__sub", text: "Graded and rare cards, bid in real time." })),
        h("div", { class: "page__tools" }, this.status,
          h("button", { type: "button", class: "btn btn--ghost btn--small", testid: "list-refresh",
            onClick: () => this.refresh() }, "Refresh"))),
      this.form.el, this.count, this.grid, this.empty));
    this.refresh();
    this.timer = setInterval(() => {
      if (document.visibilityState === "visible") this.refresh();
    }, LIST_REFRESH_MS);
  }

  unmount() {
    clearInterval(this.timer);
    this.form.stop();
    this.gone = true;
  }

  /** New filters from the form: into the URL (no new page, no history entry) and asked for. */
  search(filters) {
    if (sameFilters(filters, this.filters)) return;
    this.filters = filters;
    const hash = listHash(filters);
    if (location.hash !== hash && !(hash === "#/" && (location.hash === "" || location.hash === "#"))) {
      history.replaceState(history.state, "", `${location.pathname}${location.search}${hash}`);
      renderAccount(); // its "Sign in" link returns here, to this search
    }
    this.refresh();
  }

  async refresh() {
    if (this.loading) {
      this.again = true; // one request at a time; the latest filters are asked for next
      return;
    }
    this.loading = true;
    this.again = false;
    const filters = this.filters;
    try {
      const { auctions } = await api.auctions(apiQuery(filters));
      if (this.gone || !sameFilters(filters, this.filters)) return;
      this.render(auctions || []);
      setText(this.status, `Updated ${clockTime(Date.now())}`);
      this.status.classList.remove("list-status--error");
    } catch (error) {
      if (this.gone) return;
      this.notBefore = Date.now() + DROP_RETRY_MS;
      setText(this.status, error instanceof ApiError && error.code === "NETWORK"
        ? "Offline — retrying"
        : error instanceof ApiError && error.status === 400 ? `Search not accepted: ${error.message}`
          : "Couldn't refresh — retrying");
      this.status.classList.add("list-status--error");
    } finally {
      this.loading = false;
      if (this.again && !this.gone) this.refresh();
    }
  }

  render(auctions) {
    const nextDrop = renderTiles(this.grid, this.items, auctions, clock.now());
    const filtered = isFiltered(this.filters);
    this.empty.hidden = auctions.length > 0;
    setText(this.count, filtered
      ? `${auctions.length} auction${auctions.length === 1 ? "" : "s"} match${auctions.length === 1 ? "es" : ""}`
      : "");
    if (!auctions.length) this.renderEmpty(filtered);
    // The same drop still ahead (our clock runs a little early): ask again a bit later.
    if (nextDrop !== null && nextDrop <= clock.now()) this.notBefore = Date.now() + DROP_RETRY_MS;
    this.nextDrop = nextDrop;
  }

  renderEmpty(filtered) {
    if (this.empty.dataset.filtered === String(filtered)) return;
    this.empty.dataset.filtered = String(filtered);
    setText(this.emptyTitle, filtered ? "No live auctions match your search" : "No live auctions right now");
    setText(this.emptyText, filtered
      ? "Try fewer words or wider filters."
      : "New listings appear here as soon as they open.");
    this.emptyAction.replaceChildren(filtered
      ? h("button", { type: "button", class: "btn btn--primary", testid: "empty-clear",
        onClick: () => this.form.clear.click() }, "Clear filters")
      : h("a", { class: "btn btn--primary", href: "#/sell" }, "Sell a card"));
  }

  tick(now) {
    for (const item of this.items.values()) updateTile(item, now);
    // A listed Dutch price is due to drop: fetch the list for the server's new price.
    if (this.nextDrop !== null && now >= this.nextDrop && Date.now() >= this.notBefore
        && document.visibilityState === "visible") {
      this.refresh();
    }
  }
}
