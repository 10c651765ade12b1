// A catalog card (#/card/<card_id>): its catalog data, its prices (views/card_prices.js: chart,
// value per grade, sales, live), its population (how many graded copies per grader and grade) and
// the live auctions of copies of it.

import { api, clock } from "../api.js";
import { h, setText } from "../dom.js";
import { CATEGORY_LABEL, populationTable } from "../catalog.js";
import { cardArt } from "./card_art.js";
import { renderTiles, setAndYear, updateTile } from "./auction_tile.js";
import { PriceSection } from "./card_prices.js";

const REFRESH_MS = 5_000;
const FACTS = [
  ["set", "Set"], ["number", "Number"], ["year", "Year"], ["category", "Category"], ["player", "Player"],
  ["character", "Character"], ["variant", "Variant"], ["rarity", "Rarity"],
];

export class CardView {
  constructor(cardId) {
    this.cardId = cardId;
    this.title = "Card";
    this.items = new Map();
  }

  mount(main) {
    this.root = h("section", { class: "page card-page", testid: "card-page", "aria-busy": "true" },
      h("nav", { class: "crumbs", "aria-label": "Breadcrumb" }, h("a", { href: "#/" }, "← Live auctions")),
      h("p", { class: "loading", text: "Loading card…" }));
    main.append(this.root);
    this.load();
  }

  unmount() {
    this.gone = true;
    clearInterval(this.timer);
    this.prices?.destroy();
  }

  async load() {
    let card;
    try {
      card = await api.card(this.cardId);
    } catch (error) {
      if (this.gone) return;
      const missing = error.code === "CARD_NOT_FOUND" || error.status === 404;
      this.root.setAttribute("aria-busy", "false");
      this.root.replaceChildren(this.root.firstChild, h("div", { class: "empty", testid: "card-missing" },
        h("p", { class: "empty__title", text: missing ? "No such card" : "Couldn't load this card" }),
        h("p", { text: missing ? "This card is not in the exchange's catalog." : error.message }),
        h("a", { class: "btn btn--primary", href: "#/" }, "Live auctions")));
      return;
    }
    if (this.gone) return;
    this.render(card);
    this.prices.start();
    this.refresh();
    this.timer = setInterval(() => {
      if (document.visibilityState === "visible") this.refresh();
    }, REFRESH_MS);
  }

  render(card) {
    this.title = card.name;
    document.title = `${card.name} — ECE`;
    const facts = FACTS.filter(([key]) => card[key] !== null && card[key] !== undefined && card[key] !== "")
      .map(([key, label]) => h("div", { class: "stat" }, h("dt", null, label),
        h("dd", { testid: `card-${key}`, text: key === "category" ? CATEGORY_LABEL[card[key]] || card[key] : String(card[key]) })));
    this.grid = h("div", { class: "auction-grid", testid: "card-auctions" });
    this.empty = h("p", { class: "empty empty--small", testid: "card-auctions-empty", hidden: true },
      "No copy of this card is up for auction right now.");
    this.status = h("p", { class: "list-status", role: "status", testid: "card-auctions-status" });
    const searchAll = `#/?q=${encodeURIComponent(card.name)}`;
    this.prices = new PriceSection(card.card_id, card.population);
    this.root.setAttribute("aria-busy", "false");
    this.root.replaceChildren(this.root.firstChild,
      h("div", { class: "card-page__grid" },
        h("div", { class: "card-page__art" },
          cardArt({ asset_id: card.card_id, title: card.name, badge: CATEGORY_LABEL[card.category] || card.category }, card)),
        h("div", { class: "card-page__main" },
          h("header", { class: "room__head" },
            h("h1", { class: "room__title", testid: "card-name", text: card.name }),
            h("p", { class: "page__sub", testid: "card-subtitle", text: setAndYear(card) })),
          h("dl", { class: "stats card-page__facts", testid: "card-facts" }, facts),
          this.prices.build(),
          h("section", { "aria-labelledby": "pop-heading" },
            h("h2", { class: "section-title", id: "pop-heading", text: "Population" }),
            populationSection(card.population)),
          h("section", { "aria-labelledby": "card-auctions-heading" },
            h("div", { class: "card-page__sectionhead" },
              h("h2", { class: "section-title", id: "card-auctions-heading", text: "Live auctions of this card" }),
              this.status),
            this.grid, this.empty,
            h("p", { class: "hint" }, h("a", { href: searchAll, testid: "card-search-similar" },
              `Search all live auctions for “${card.name}”`))))));
  }

  async refresh() {
    if (this.loading) return;
    this.loading = true;
    try {
      const query = new URLSearchParams({ status: "live", card_id: this.cardId }).toString();
      const { auctions } = await api.auctions(query);
      if (this.gone) return;
      // Only copies of this card (a server that does not filter by card_id answers every auction).
      const mine = (auctions || []).filter((a) => a.card && a.card.card_id === this.cardId);
      renderTiles(this.grid, this.items, mine, clock.now());
      this.empty.hidden = mine.length > 0;
      setText(this.status, "");
    } catch (error) {
      if (this.gone) return;
      setText(this.status, error.code === "NETWORK" ? "Offline — retrying" : "Couldn't refresh — retrying");
    } finally {
      this.loading = false;
    }
  }

  tick(now) {
    for (const item of this.items.values()) updateTile(item, now);
  }
}

function populationSection(rows) {
  const table = populationTable(rows);
  if (!table.graders.length) {
    return h("p", { class: "hint", testid: "population-empty" }, "No graded copies of this card on the exchange yet.");
  }
  const gradeText = (g) => String(g);
  return h("div", { class: "pop-wrap" }, h("table", { class: "pop", testid: "population" },
    h("caption", { class: "visually-hidden" }, "Copies on the exchange per grader and grade"),
    h("thead", null, h("tr", null,
      h("th", { scope: "col" }, "Grader / grade"),
      table.grades.map((g) => h("th", { scope: "col" }, gradeText(g))),
      table.hasRaw ? h("th", { scope: "col" }, "Raw") : null,
      h("th", { scope: "col" }, "Total"))),
    h("tbody", null, table.graders.map((grader) => h("tr", { testid: "population-row", dataset: { grader } },
      h("th", { scope: "row" }, h("span", { class: "slab", dataset: { grader } }, grader === "RAW" ? "Raw" : grader)),
      table.grades.map((g) => {
        const n = grader === "RAW" ? 0 : table.count(grader, g);
        return h("td", { class: n ? "" : "pop__zero", dataset: { grade: gradeText(g) } }, n ? String(n) : "·");
      }),
      table.hasRaw ? h("td", { class: grader === "RAW" ? "" : "pop__zero" },
        grader === "RAW" ? String(table.count("RAW", null)) : "·") : null,
      h("td", { class: "pop__total", testid: "population-total" }, String(table.total(grader))))))));
}
