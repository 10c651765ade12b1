// Someone's public portfolio (#/users/:id/portfolio), read-only and for anyone, signed in or
// not: the cards with their values (range, confidence, the sales behind each), the total value
// and its range, allocation, diversification and liquidity — never what the owner paid or made
// (GET /api/users/{id}/portfolio leaves that out). A 404 means private (or no such user: the
// server does not tell the two apart).

import { api } from "../api.js";
import { h, setText } from "../dom.js";
import { formatCents } from "../money.js";
import { confidenceMix, mixText, rangeText } from "../portfolio_model.js";
import { holdingsTable, placeholderName } from "./portfolio_holdings.js";
import { allocationPanel, diversificationPanel } from "./portfolio_panels.js";

const NAMES_AT_ONCE = 4;

function privateState() {
  return h("div", { class: "empty", testid: "public-portfolio-private" },
    h("p", { class: "empty__title", text: "This collection is private" }),
    h("p", { text: "Its owner has not made it public, or there is no such collector." }),
    h("a", { class: "btn btn--primary", href: "#/" }, "Browse live auctions"));
}

export class PublicPortfolioView {
  title = "Collection";

  constructor(userId) {
    this.userId = userId;
    this.names = new Map(); // card_id -> its catalog name
  }

  mount(main) {
    this.gone = false;
    this.heading = h("h1", { class: "page__title", testid: "public-portfolio-title", text: "Collection" });
    this.status = h("p", { class: "list-status", role: "status", testid: "public-portfolio-status" }, "Loading…");
    this.root = h("section", { class: "page portfolio", testid: "public-portfolio-page", "aria-busy": "true" },
      h("div", { class: "page__head" }, h("div", null, this.heading,
        h("p", { class: "page__sub", text: "A collector's public portfolio: the cards and what they are worth, from recent sales of the same card and grade." }))),
      this.status);
    main.append(this.root);
    this.load();
  }

  unmount() {
    this.gone = true;
  }

  async load() {
    let portfolio;
    try {
      portfolio = await api.publicPortfolio(this.userId);
    } catch (error) {
      if (this.gone) return;
      this.root.setAttribute("aria-busy", "false");
      if (error.status === 404 || error.status === 400) {
        this.status.replaceWith(privateState());
        return;
      }
      setText(this.status, error.code === "NETWORK" ? "Offline — reload when you're back" : `Couldn't load this collection: ${error.message}`);
      this.status.classList.add("list-status--error");
      return;
    }
    if (this.gone) return;
    this.portfolio = portfolio;
    this.root.setAttribute("aria-busy", "false");
    this.title = `${portfolio.username}'s collection`;
    document.title = `${this.title} — ECE`;
    setText(this.heading, this.title);
    const name = (id) => this.names.get(id) ?? placeholderName(id);
    this.holdings = holdingsTable({ name, publicView: true });
    this.allocation = allocationPanel();
    this.diversification = diversificationPanel("the collection's");
    this.status.replaceWith(h("div", { class: "portfolio__body" },
      this.summary(portfolio.totals || {}, portfolio.holdings || []),
      h("section", { "aria-labelledby": "holdings-heading" },
        h("h2", { class: "section-title", id: "holdings-heading", text: "Cards" }), this.holdings),
      h("div", { class: "portfolio__panels" }, this.allocation, this.diversification)));
    this.holdings.show(portfolio.holdings);
    this.allocation.show(portfolio.allocation);
    this.diversification.show(portfolio, name);
    this.loadNames();
  }

  summary(t, holdings) {
    const range = rangeText(t.low, t.high);
    const unvalued = Number.isInteger(t.unvalued) && t.unvalued > 0 ? `${t.unvalued} of ${t.holdings} without a value yet` : null;
    return h("dl", { class: "stats portfolio__summary", testid: "public-portfolio-summary" },
      h("div", { class: "stat" }, h("dt", null, "Total value"),
        h("dd", { testid: "public-portfolio-total" }, formatCents(t.value)),
        h("span", { class: "stat-sub" },
          range ? h("span", { class: "portfolio__range" }, `range ${range}`) : null,
          h("span", { class: "portfolio__mix" }, mixText(confidenceMix(holdings))),
          unvalued ? h("span", null, unvalued) : null)),
      h("div", { class: "stat" }, h("dt", null, "Cards"),
        h("dd", { testid: "public-portfolio-count" }, String(t.holdings ?? holdings.length))));
  }

  /** The catalog names of the cards shown (a few requests at a time). */
  async loadNames() {
    const wanted = [...new Set((this.portfolio.holdings || []).map((x) => x.card_id))].filter(Boolean).slice(0, 200);
    const next = async () => {
      for (let id = wanted.shift(); id !== undefined; id = wanted.shift()) {
        const card = await api.card(id).catch(() => null);
        this.names.set(id, card?.name ? `${card.name}${card.number ? ` #${card.number}` : ""}` : placeholderName(id));
      }
    };
    await Promise.all(Array.from({ length: NAMES_AT_ONCE }, next));
    if (this.gone) return;
    this.holdings.rename();
    this.diversification.show(this.portfolio, (id) => this.names.get(id) ?? placeholderName(id));
  }
}
