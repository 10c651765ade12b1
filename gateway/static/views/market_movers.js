// The market page's movers: the cards whose price rose or fell most over 7 or 30 days, and the
// most traded; each row links to the card. A `movers` event of the "market" channel replaces them.

import { api } from "../api.js";
import { h, setText } from "../dom.js";
import { gradeLabel } from "../format.js";
import { MOVER_WINDOWS, compactCents } from "../analytics_model.js";
import { href } from "../router.js";
import { changeText, toggle } from "./analytics_ui.js";

const TABLES = [
  { key: "gainers", title: "Gainers", empty: "No card rose in this window." },
  { key: "losers", title: "Losers", empty: "No card fell in this window." },
  { key: "most_traded", title: "Most traded", empty: "No sales in this window." },
];
const WINDOW_TEXT = { "7d": "7 days", "30d": "30 days" };

function moverRow(item) {
  return h("tr", { testid: "mover", dataset: { cardId: item.card_id } },
    h("th", { scope: "row", class: "movers__card" },
      h("a", { href: href("/card/:id", { id: item.card_id }), testid: "mover-link" }, item.name || item.card_id),
      h("span", { class: "movers__grade", text: gradeLabel(item) })),
    h("td", { class: "num" }, changeText(item.change)),
    h("td", { class: "num", text: Number.isInteger(item.count) ? String(item.count) : "—" }),
    h("td", { class: "num", text: compactCents(item.volume) }));
}

export class MoversPanel {
  constructor() {
    this.window = "7d";
    this.generation = 0;
  }

  build() {
    this.windows = toggle({ label: "Movers window", testid: "movers-window", value: this.window,
      options: MOVER_WINDOWS.map((w) => [w, WINDOW_TEXT[w]]),
      onChange: (value) => { this.window = value; this.load(); } });
    this.status = h("p", { class: "list-status", role: "status", testid: "movers-status" });
    this.bodies = {};
    const tables = TABLES.map(({ key, title }) => {
      this.bodies[key] = h("tbody");
      return h("div", { class: "table-wrap movers__table" }, h("table", { class: "ledger movers", testid: `movers-${key}` },
        h("caption", { class: "movers__caption" }, title),
        h("thead", null, h("tr", null, h("th", { scope: "col" }, "Card and grade"),
          h("th", { scope: "col", class: "num" }, "Change"), h("th", { scope: "col", class: "num" }, "Sales"),
          h("th", { scope: "col", class: "num" }, "Volume"))),
        this.bodies[key]));
    });
    return h("section", { class: "market__movers", testid: "movers", "aria-labelledby": "movers-heading" },
      h("div", { class: "panel__head" },
        h("h2", { class: "section-title", id: "movers-heading", text: "Movers" }),
        h("div", { class: "panel__tools" }, this.status, this.windows)),
      h("div", { class: "movers__grid" }, tables));
  }

  async load() {
    const generation = ++this.generation;
    setText(this.status, "Loading…");
    try {
      const movers = await api.movers(this.window, 10);
      if (generation !== this.generation || this.gone) return;
      setText(this.status, "");
      this.render(movers);
    } catch (error) {
      if (generation !== this.generation || this.gone) return;
      setText(this.status, error.code === "NETWORK" ? "Offline" : `Couldn't load movers: ${error.message}`);
    }
  }

  render(movers) {
    for (const { key, empty } of TABLES) {
      const items = (Array.isArray(movers?.[key]) ? movers[key] : []).filter((i) => i && i.card_id);
      this.bodies[key].replaceChildren(...(items.length ? items.map(moverRow)
        : [h("tr", null, h("td", { colspan: 4, class: "ledger__empty", testid: `movers-${key}-empty` }, empty))]));
    }
  }

  /** A `movers` event of the market channel (the window's new lists). */
  onMovers(event) {
    if (event.window === this.window) this.render(event);
  }

  destroy() {
    this.gone = true;
  }
}
