// The market (#/market): the market index (and a category's or a set's to compare), the movers,
// the exchange's auction figures and a live ticker of sales. Live over the "market" channel:
// `sale` (ticker), `index` (the lines), `movers` (the tables); after a reconnect, all re-fetched.

import { api } from "../api.js";
import { h, setText } from "../dom.js";
import { formatMean, formatShare, lagText, tickerAdd, tickerKey } from "../analytics_model.js";
import { follow } from "../analytics_live.js";
import { tickerItem } from "./analytics_ui.js";
import { IndexPanel } from "./market_index.js";
import { MoversPanel } from "./market_movers.js";

const TICKER = 30;

export class MarketView {
  title = "Market";

  mount(main) {
    this.gone = false;
    this.sales = [];
    this.index = new IndexPanel();
    this.movers = new MoversPanel();
    this.ticker = h("ol", { class: "ticker", testid: "ticker", role: "log", "aria-live": "polite",
      "aria-relevant": "additions", "aria-label": "Latest sales" });
    this.tickerEmpty = h("p", { class: "hint", testid: "ticker-empty", hidden: true }, "No sales yet.");
    this.tickerStatus = h("p", { class: "list-status", role: "status", testid: "ticker-status" });
    this.stats = h("dl", { class: "stats market__stats", testid: "market-stats" });
    this.lag = h("p", { class: "hint", testid: "market-lag" });
    main.append(h("section", { class: "page market", testid: "market-page" },
      h("div", { class: "page__head" }, h("div", null,
        h("h1", { class: "page__title", text: "Market" }),
        h("p", { class: "page__sub", text: "Prices across the exchange: the index, the biggest movers and every sale as it happens. Flagged sales (outliers, trades between linked accounts) are listed but left out of prices." }))),
      h("div", { class: "market__grid" },
        h("div", { class: "market__main" }, this.index.build(), this.movers.build(),
          h("section", { "aria-labelledby": "market-stats-heading" },
            h("h2", { class: "section-title", id: "market-stats-heading", text: "The exchange in numbers" }), this.stats, this.lag)),
        h("aside", { class: "panel market__ticker", "aria-labelledby": "ticker-heading" },
          h("div", { class: "panel__head" },
            h("h2", { class: "section-title", id: "ticker-heading" },
              h("span", { class: "live-dot", "aria-hidden": "true" }), "Live sales"),
            this.tickerStatus),
          this.ticker, this.tickerEmpty))));
    this.stop = follow("market", {
      onEvent: (message) => this.onEvent(message),
      onResync: () => this.load(),
    });
    this.load();
  }

  unmount() {
    this.gone = true;
    this.stop?.();
    this.index.destroy();
    this.movers.destroy();
  }

  load() {
    this.index.load();
    this.movers.load();
    this.loadSales();
    this.loadStats();
  }

  async loadSales() {
    try {
      const { sales } = await api.marketSales(TICKER);
      if (this.gone) return;
      // Merged with any that arrived live meanwhile.
      this.sales = (Array.isArray(sales) ? sales : []).reduce((list, s) => tickerAdd(list, s, TICKER), this.sales);
      setText(this.tickerStatus, "");
      this.renderTicker();
    } catch (error) {
      if (!this.gone) setText(this.tickerStatus, error.code === "NETWORK" ? "Offline" : "Couldn't load sales");
    }
  }

  renderTicker() {
    // Only what is new is added (the log announces additions, not a rebuilt list).
    const shown = new Map([...this.ticker.children].map((li) => [li.dataset.key, li]));
    const items = this.sales.map((s) => {
      const key = tickerKey(s);
      const li = shown.get(key) || tickerItem(s);
      li.dataset.key = key;
      return li;
    });
    items.forEach((li, i) => {
      if (this.ticker.children[i] !== li) this.ticker.insertBefore(li, this.ticker.children[i] || null);
    });
    while (this.ticker.children.length > items.length) this.ticker.lastElementChild.remove();
    this.tickerEmpty.hidden = this.sales.length > 0;
  }

  async loadStats() {
    try {
      const m = await api.marketAnalytics();
      if (this.gone) return;
      const stat = (label, value, key, sub = null) => h("div", { class: "stat" }, h("dt", null, label),
        h("dd", { testid: `market-${key}`, text: value }), sub ? h("span", { class: "stat-sub", text: sub }) : null);
      const whole = (n) => (Number.isInteger(n) ? n.toLocaleString("en-US") : "—");
      this.stats.replaceChildren(
        stat("Sales", whole(m.sales_total), "sales-total",
          Number.isInteger(m.suspect_total) && m.suspect_total > 0 ? `${whole(m.suspect_total)} flagged` : null),
        stat("Auctions closed", whole(m.auctions), "auctions"),
        stat("Bidders per auction", formatMean(m.bidders_per_auction), "bidders", "on average"),
        stat("Extensions per auction", formatMean(m.extensions_per_auction), "extensions", "soft-close, on average"),
        stat("Reserve met", formatShare(m.reserve_met_share), "reserve-met", "of auctions with a reserve"),
        stat("Watchers per auction", formatMean(m.watchers_per_auction), "watchers", "signed in, on average"),
        stat("Watchers who bid", formatShare(m.watcher_bid_share), "watcher-bid-share", "in the auction they watched"),
        stat("Sold", formatShare(m.sold_share), "sold", "of auctions closed"));
      setText(this.lag, lagText(m.lag));
    } catch {
      if (!this.gone) this.stats.replaceChildren(h("p", { class: "hint" }, "Auction figures are not available right now."));
    }
  }

  onEvent(message) {
    if (message.type === "sale" && message.sale) {
      this.sales = tickerAdd(this.sales, message.sale, TICKER);
      this.renderTicker();
    } else if (message.type === "index") {
      this.index.onIndex(message);
    } else if (message.type === "movers") {
      this.movers.onMovers(message);
    }
  }
}
