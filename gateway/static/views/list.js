// The list of live auctions, refreshed every few seconds (and when a listed Dutch price is due
// to drop). Prices are shown as the server gave them.

import { ApiError, api, clock } from "../api.js";
import { h, setText } from "../dom.js";
import { TYPE_LABEL, clockTime, duration, priceLine } from "../format.js";
import { formatCents } from "../money.js";
import { cardArt } from "./card_art.js";

const LIST_REFRESH_MS = 4_000;
const DROP_RETRY_MS = 1_000;

export class ListView {
  title = "Live auctions";

  mount(main) {
    this.items = new Map(); // auction_id -> {el, view, refs}
    this.loading = false;
    this.nextDrop = null; // the earliest next_drop_at of a listed Dutch auction
    this.notBefore = 0; // no drop-triggered refresh before this (local time)
    this.grid = h("div", { class: "auction-grid", testid: "auction-list", "aria-live": "off" });
    this.empty = h("div", { class: "empty", hidden: true },
      h("p", { class: "empty__title", text: "No live auctions right now" }),
      h("p", null, "New listings appear here as soon as they open. "),
      h("a", { class: "btn btn--primary", href: "#/sell" }, "Sell a card"));
    this.status = h("p", { class: "list-status", role: "status", testid: "list-status" }, "Loading…");
    main.append(h("section", { class: "page" },
      h("div", { class: "page__head" },
        h("div", null,
          h("h1", { class: "page__title", text: "Live auctions" }),
          h("p", { class: "page__sub", text: "Graded and rare cards, bid in real time." })),
        h("div", { class: "page__tools" }, this.status,
          h("button", { type: "button", class: "btn btn--ghost btn--small", testid: "list-refresh",
            onClick: () => this.refresh() }, "Refresh"))),
      this.grid, this.empty));
    this.refresh();
    this.timer = setInterval(() => {
      if (document.visibilityState === "visible") this.refresh();
    }, LIST_REFRESH_MS);
  }

  unmount() {
    clearInterval(this.timer);
    this.gone = true;
  }

  async refresh() {
    if (this.loading) return; // one request at a time
    this.loading = true;
    try {
      const { auctions } = await api.liveAuctions();
      if (this.gone) return;
      this.render(auctions);
      setText(this.status, `Updated ${clockTime(Date.now())}`);
      this.status.classList.remove("list-status--error");
    } catch (error) {
      if (this.gone) return;
      this.notBefore = Date.now() + DROP_RETRY_MS;
      setText(this.status, error instanceof ApiError && error.code === "NETWORK"
        ? "Offline — retrying" : "Couldn't refresh — retrying");
      this.status.classList.add("list-status--error");
    } finally {
      this.loading = false;
    }
  }

  render(auctions) {
    const seen = new Set();
    const drops = [];
    auctions.forEach((view, index) => {
      seen.add(view.auction_id);
      let item = this.items.get(view.auction_id);
      if (!item) {
        item = this.build(view);
        this.items.set(view.auction_id, item);
      }
      item.view = view;
      if (Number.isInteger(view.next_drop_at)) drops.push(view.next_drop_at);
      if (this.grid.children[index] !== item.el) this.grid.insertBefore(item.el, this.grid.children[index] || null);
      this.update(item, clock.now());
    });
    for (const [id, item] of this.items) {
      if (!seen.has(id)) {
        item.el.remove();
        this.items.delete(id);
      }
    }
    this.empty.hidden = auctions.length > 0;
    const nextDrop = drops.length ? Math.min(...drops) : null;
    // The same drop still ahead (our clock runs a little early): ask again a bit later.
    if (nextDrop !== null && nextDrop <= clock.now()) this.notBefore = Date.now() + DROP_RETRY_MS;
    this.nextDrop = nextDrop;
  }

  build(view) {
    const refs = {
      priceLabel: h("span", { class: "tile__label" }),
      price: h("span", { class: "tile__price", testid: "item-price" }),
      minBid: h("span", { testid: "item-min-bid" }),
      bids: h("span", { testid: "item-bid-count" }),
      countdown: h("span", { class: "tile__countdown", testid: "item-countdown" }),
    };
    const el = h("a", {
      class: "tile", href: `#/auction/${encodeURIComponent(view.auction_id)}`,
      testid: "auction-item", dataset: { auctionId: view.auction_id },
    },
    cardArt(view, null, "small"),
    h("div", { class: "tile__body" },
      h("h2", { class: "tile__title", testid: "item-title", text: view.title || "Untitled card" }),
      h("div", { class: "tile__row" },
        h("span", { class: `chip chip--${view.type}`, testid: "item-type",
          text: TYPE_LABEL[view.type] || view.type }),
        refs.countdown),
      h("div", { class: "tile__row tile__row--price" },
        h("div", null, refs.priceLabel, refs.price),
        h("div", { class: "tile__meta" }, refs.minBid, refs.bids))));
    return { el, view, refs };
  }

  update(item, now) {
    const { view, refs } = item;
    const [label, price] = priceLine(view);
    setText(refs.priceLabel, label);
    setText(refs.price, price);
    const minBid = view.min_bid;
    setText(refs.minBid, minBid === null || minBid === undefined ? "" : `Min ${formatCents(minBid)}`);
    setText(refs.bids, `${view.bid_count} bid${view.bid_count === 1 ? "" : "s"}`);
    const left = view.ends_at - now;
    setText(refs.countdown, view.status === "scheduled"
      ? `Starts in ${duration(view.starts_at - now)}`
      : left > 0 ? `${duration(left)} left` : "Closing…");
    refs.countdown.classList.toggle("is-urgent", left < 60_000);
  }

  tick(now) {
    for (const item of this.items.values()) this.update(item, now);
    // A listed Dutch price is due to drop: fetch the list for the server's new price.
    if (this.nextDrop !== null && now >= this.nextDrop && Date.now() >= this.notBefore
        && document.visibilityState === "visible") {
      this.refresh();
    }
  }
}
