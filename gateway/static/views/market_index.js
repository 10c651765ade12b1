// The market page's index panel: the whole market's index line and, to compare, a category's or a
// set's; the interval (weekly, monthly); how each index is computed, said plainly; the 7/30/90-day
// changes. Live `index` points of the "market" channel extend the lines.

import { api } from "../api.js";
import { h, setText } from "../dom.js";
import {
  CHANGE_WINDOWS, INDEX_INTERVALS, INTERVAL_LABEL, comparable, mergePoint, methodLabel, segmentName,
} from "../analytics_model.js";
import { indexChart } from "../charts.js";
import { changeText, chartHost, emptyChart, toggle } from "./analytics_ui.js";

const WINDOW_LABEL = { "7d": "7 days", "30d": "30 days", "90d": "90 days" };

/** A segment's index, or null when it has none yet (no sale in it: INDEX_NOT_FOUND). */
async function indexOrNone(segment, interval) {
  try {
    return await api.marketIndex(segment, interval);
  } catch (error) {
    if (error.code === "INDEX_NOT_FOUND" || error.status === 404) return null;
    throw error;
  }
}

export class IndexPanel {
  constructor() {
    this.interval = "1w";
    this.compare = null; // a segment ("category:pokemon") or null
    this.segments = [];
    this.data = { market: null, compare: null }; // GET /api/market/index answers
    this.generation = 0;
  }

  build() {
    this.select = h("select", { id: "index-compare", testid: "index-segment",
      onChange: () => { this.compare = this.select.value || null; this.load(); } },
    h("option", { value: "" }, "Nothing"));
    this.intervals = toggle({ label: "Index interval", testid: "index-interval", value: this.interval,
      options: INDEX_INTERVALS.map((i) => [i, INTERVAL_LABEL[i]]),
      onChange: (value) => { this.interval = value; this.load(); } });
    this.method = h("p", { class: "index__method", testid: "index-method" });
    this.compareMethod = h("p", { class: "index__method index__method--compare", testid: "index-compare-method", hidden: true });
    this.host = chartHost("index-chart", "Market index chart");
    this.empty = emptyChart("index-empty", "No index yet",
      "The index starts once cards have sold on the exchange in more than one period.");
    this.changes = h("tbody");
    this.status = h("p", { class: "list-status", role: "status", testid: "index-status" });
    this.legend = h("p", { class: "chart-legend", "aria-hidden": "true" });
    return h("section", { class: "panel market__index", "aria-labelledby": "index-heading" },
      h("div", { class: "panel__head" },
        h("h2", { class: "section-title", id: "index-heading", text: "Market index" }),
        h("div", { class: "panel__tools" },
          h("div", { class: "field field--inline" }, h("label", { for: "index-compare" }, "Compare with"), this.select),
          this.intervals)),
      this.method, this.compareMethod, this.status,
      this.host, this.empty, this.legend,
      h("div", { class: "table-wrap" }, h("table", { class: "ledger changes", testid: "index-changes" },
        h("caption", { class: "visually-hidden" }, "Index change over 7, 30 and 90 days"),
        h("thead", null, h("tr", null, h("th", { scope: "col" }, "Index"),
          CHANGE_WINDOWS.map((w) => h("th", { scope: "col", class: "num" }, WINDOW_LABEL[w])))),
        this.changes)));
  }

  async load() {
    const generation = ++this.generation;
    setText(this.status, "Loading…");
    try {
      if (!this.segments.length) await this.loadSegments();
      const { interval, compare } = this; // (the first load picks the segment to compare)
      const [market, other] = await Promise.all([
        indexOrNone("market", interval),
        compare ? indexOrNone(compare, interval) : Promise.resolve(null),
      ]);
      if (generation !== this.generation || this.gone) return;
      this.data = { market, compare: other };
      setText(this.status, "");
      await this.render();
    } catch (error) {
      if (generation !== this.generation || this.gone) return;
      setText(this.status, error.code === "NETWORK" ? "Offline — the index will load when you're back"
        : `Couldn't load the index: ${error.message}`);
    }
  }

  async loadSegments() {
    const { segments } = await api.marketSegments();
    this.segments = Array.isArray(segments) ? segments : [];
    const options = comparable(this.segments);
    this.select.replaceChildren(h("option", { value: "" }, "Nothing"),
      ...["category", "set"].map((kind) => {
        const of = options.filter((s) => s.kind === kind);
        return of.length ? h("optgroup", { label: kind === "category" ? "Categories" : "Sets" },
          of.map((s) => h("option", { value: s.segment }, segmentName(s.segment)))) : null;
      }).filter(Boolean));
    if (this.compare === null) this.compare = options.find((s) => s.kind === "category")?.segment ?? null;
    this.select.value = this.compare ?? "";
  }

  name(which) {
    return which === "market" ? segmentName("market", this.segments) : segmentName(this.compare, this.segments);
  }

  async render() {
    const { market, compare } = this.data;
    setText(this.method, market ? `${this.name("market")}: ${methodLabel(market)}` : "");
    this.compareMethod.hidden = !this.compare;
    setText(this.compareMethod, !this.compare ? "" : compare ? `${this.name("compare")}: ${methodLabel(compare)}`
      : `${this.name("compare")}: no index yet (too few sales)`);
    this.changes.replaceChildren(...[["market", market], ["compare", compare]].filter(([, d]) => d)
      .map(([which, d]) => h("tr", { testid: "index-change-row", dataset: { segment: d.segment || which } },
        h("th", { scope: "row" }, h("span", { class: `swatch swatch--${which}`, "aria-hidden": "true" }), this.name(which)),
        CHANGE_WINDOWS.map((w) => h("td", { class: "num" }, changeText(d.change?.[w], `index-change-${w}`))))));
    const points = (d) => (Array.isArray(d?.points) ? d.points.length : 0);
    const shown = points(market) + points(compare) > 0;
    this.empty.hidden = shown;
    this.host.hidden = !shown;
    this.host.dataset.points = String(points(market));
    this.host.dataset.comparePoints = String(points(compare));
    this.host.setAttribute("aria-label", `${INTERVAL_LABEL[this.interval]} index: ${this.name("market")}${compare ? ` and ${this.name("compare")}` : ""}`
      + ` (change over each window in the table below)`);
    this.legend.replaceChildren(...(compare ? ["market", "compare"].map((which) => h("span", { class: "chart-legend__item" },
      h("span", { class: `swatch swatch--${which}` }), this.name(which))) : []));
    if (!shown) {
      this.host.dataset.state = "empty";
      return;
    }
    this.chart ??= await indexChart(this.host);
    if (this.gone) return;
    this.chart.set("market", market?.points || []);
    this.chart.set("compare", compare?.points || []);
    this.host.dataset.state = "ready";
  }

  /** An `index` event of the market channel: a new or revised point of a line shown. */
  onIndex(event) {
    if (event.interval !== this.interval || !event.point) return;
    const which = event.segment === "market" ? "market" : event.segment === this.compare ? "compare" : null;
    if (!which) return;
    const current = this.data[which];
    if (!current) {
      this.load(); // its first point: the whole index (method, base, changes)
      return;
    }
    // The changes (7/30/90 days) come with the index: re-read it once a burst of points has passed.
    clearTimeout(this.refreshTimer);
    this.refreshTimer = setTimeout(() => this.load(), 2_000);
    current.points = mergePoint(current.points || [], event.point);
    if (this.chart && this.host.dataset.state === "ready") {
      this.chart.update(which, event.point, current.points);
      this.host.dataset.points = String(this.data.market?.points?.length ?? 0);
    } else {
      this.render();
    }
  }

  destroy() {
    this.gone = true;
    clearTimeout(this.refreshTimer);
    this.chart?.remove();
  }
}
