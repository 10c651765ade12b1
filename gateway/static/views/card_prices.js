// A card's prices (the card page's price section): a grade to show (the one with the most sales
// first), its candlestick chart with the volume under it (daily or weekly), the value table of
// every grade, and the grade's sales. Live over the "card:<card_id>" channel: a `candle` of the
// grade and interval shown updates the chart, a `sale` of that grade is prepended to the sales
// (and the values re-read). A grade without sales shows an empty state, never an empty chart.

import { api } from "../api.js";
import { h, setText } from "../dom.js";
import {
  CARD_INTERVALS, INTERVAL_LABEL, MA_COLORS, MA_LINES, candleIsFor, cleanCandles, defaultSegment, historyQuery,
  mergeCandle, parseSegmentKey, sameSegment, segmentKey, segmentLabel, trendFacts,
} from "../analytics_model.js";
import { follow } from "../analytics_live.js";
import { priceChart } from "../charts.js";
import { formatCents } from "../money.js";
import { changeText, chartHost, emptyChart, toggle } from "./analytics_ui.js";
import { SalesList } from "./card_sales.js";
import { valueRows, valuesTable } from "./card_values.js";

const SALES_PAGE = 20;
const VALUES_AFTER_SALE_MS = 600; // re-read the values once a burst of sales has passed

export class PriceSection {
  constructor(cardId, population) {
    this.cardId = cardId;
    this.population = population;
    this.valueList = null; // GET /api/cards/{id}/values' rows
    this.segment = null; // {grader, grade} shown
    this.interval = "1d";
    this.candles = [];
    this.generation = 0;
  }

  build() {
    this.select = h("select", { id: "price-segment", testid: "segment-select",
      onChange: () => this.pick(parseSegmentKey(this.select.value)) });
    this.intervals = toggle({ label: "Chart interval", testid: "card-interval", value: this.interval,
      options: CARD_INTERVALS.map((i) => [i, INTERVAL_LABEL[i]]),
      onChange: (value) => { this.interval = value; this.loadHistory(); } });
    this.host = chartHost("price-chart", "Price chart");
    this.host.hidden = true;
    this.empty = emptyChart("price-empty", "No sales yet", "");
    this.status = h("p", { class: "list-status", role: "status", testid: "price-status" });
    this.summary = h("p", { class: "hint price__summary", testid: "price-summary", "aria-live": "polite" });
    this.trend = h("dl", { class: "price__trend", testid: "price-trend", hidden: true });
    this.legend = h("p", { class: "hint price__legend", testid: "price-legend", hidden: true });
    this.table = valuesTable({ onPick: (row) => this.pick(row) });
    this.sales = new SalesList({ loadMore: (cursor) => this.history(cursor) });
    this.tools = h("div", { class: "panel__tools", hidden: true },
      h("div", { class: "field field--inline" }, h("label", { for: "price-segment" }, "Grade"), this.select),
      this.intervals);
    this.salesSection = h("section", { "aria-labelledby": "sales-heading", hidden: true },
      h("h3", { class: "section-title", id: "sales-heading" }, "Sales"), this.sales.build());
    return h("section", { class: "price", testid: "price-section", "aria-labelledby": "price-heading" },
      h("div", { class: "panel__head" },
        h("h2", { class: "section-title", id: "price-heading", text: "Prices" }), this.tools),
      this.status, this.trend, this.summary, this.host, this.legend, this.empty,
      h("section", { "aria-labelledby": "values-heading" },
        h("h3", { class: "section-title", id: "values-heading", text: "Value by grade" }), this.table),
      this.salesSection);
  }

  start() {
    this.stop = follow(`card:${this.cardId}`, {
      onEvent: (message) => this.onEvent(message),
      onResync: () => this.reload(),
    });
    this.reload();
  }

  destroy() {
    this.gone = true;
    this.stop?.();
    clearTimeout(this.valuesTimer);
    this.chart?.remove();
  }

  /** Values, then the history of the grade shown (the busiest grade when none is chosen yet). */
  async reload() {
    await this.loadValues();
    if (this.gone) return;
    if (!this.segment) this.segment = defaultSegment(this.valueList);
    this.renderValues();
    if (this.segment) this.loadHistory();
    else this.showEmpty("No sales of this card yet", "Its price chart starts with its first sale on the exchange.");
  }

  async loadValues() {
    try {
      const { values } = await api.cardValues(this.cardId);
      this.valueList = Array.isArray(values) ? values : [];
      setText(this.status, "");
    } catch (error) {
      this.valueList ??= [];
      if (!this.gone) setText(this.status, error.code === "NETWORK" ? "Offline — prices will load when you're back" : `Couldn't load prices: ${error.message}`);
    }
  }

  renderValues() {
    const rows = valueRows(this.valueList, this.population);
    const key = segmentKey(this.segment);
    this.table.show(rows, key);
    const sold = rows.filter((r) => Number.isInteger(r.count) && r.count > 0);
    if (this.segment && !sold.some((r) => segmentKey(r) === key)) sold.unshift({ ...this.segment, count: 0 });
    this.select.replaceChildren(...sold.map((r) => h("option", { value: segmentKey(r) },
      `${segmentLabel(r)} · ${r.count} sale${r.count === 1 ? "" : "s"}`)));
    this.select.value = key;
    this.tools.hidden = !this.segment;
    this.renderTrend(rows.find((r) => segmentKey(r) === key && Number.isInteger(r.count) && r.count > 0));
  }

  /** The grade's value changes and last 30 days' trading, above its chart. */
  renderTrend(row) {
    const facts = trendFacts(row);
    this.trend.hidden = !facts.length;
    this.trend.replaceChildren(...facts.map((f) => h("div", { class: "price__fact", testid: `trend-${f.key}` },
      h("dt", { text: f.label }),
      h("dd", null, f.text ? h("span", { class: "price__figure", text: f.text }) : null, changeText(f.change)))));
  }

  pick(segment) {
    if (!segment || sameSegment(segment, this.segment)) return;
    this.segment = { grader: segment.grader, grade: segment.grader === "RAW" ? null : Number(segment.grade) };
    this.renderValues();
    this.loadHistory();
  }

  history(cursor = null) {
    return api.cardHistory(this.cardId, historyQuery({ ...this.segment, interval: this.interval, cursor, limit: SALES_PAGE }));
  }

  async loadHistory() {
    const generation = ++this.generation;
    setText(this.status, "Loading…");
    try {
      const page = await this.history();
      if (generation !== this.generation || this.gone) return;
      setText(this.status, "");
      this.candles = cleanCandles(page.candles);
      this.salesSection.hidden = false;
      this.sales.reset(page.sales, page.cursor);
      await this.renderChart();
    } catch (error) {
      if (generation !== this.generation || this.gone) return;
      setText(this.status, error.code === "NETWORK" ? "Offline — prices will load when you're back" : `Couldn't load the price history: ${error.message}`);
    }
  }

  showEmpty(title, text) {
    this.host.hidden = true;
    this.host.dataset.state = "empty";
    this.empty.hidden = false;
    this.legend.hidden = true;
    setText(this.empty.querySelector(".empty__title"), title);
    setText(this.empty.querySelector("p:last-child"), text);
    setText(this.summary, "");
  }

  async renderChart() {
    const label = segmentLabel(this.segment);
    if (!this.candles.length) {
      this.showEmpty(`No ${label} sales to chart`, this.sales.sales.length
        ? "Its only sales are flagged (listed below), and flagged sales are left out of the chart."
        : `No ${label} copy of this card has sold yet. Choose another grade, or check back after a sale.`);
      return;
    }
    this.empty.hidden = true;
    this.host.hidden = false;
    this.chart ??= await priceChart(this.host);
    if (this.gone) return;
    this.chart.set(this.candles, this.interval);
    this.legend.hidden = false;
    this.legend.replaceChildren("Lines: ", ...MA_LINES[this.interval].flatMap(([, label], i) => [
      h("span", { class: "price__swatch", style: `background:${MA_COLORS[i]}`, "aria-hidden": "true" }),
      `${label}${i < MA_LINES[this.interval].length - 1 ? " · " : ""}`]),
    " (mean price of the clean sales in the window ending with each period).");
    this.describe();
  }

  /** What the chart shows, in words and data-* attributes (screen readers; the browser test). */
  describe() {
    const last = this.candles[this.candles.length - 1];
    const label = segmentLabel(this.segment);
    Object.assign(this.host.dataset, {
      state: "ready", segment: segmentKey(this.segment), interval: this.interval, candles: String(this.candles.length),
      lastT: String(last.t), lastClose: String(last.close), lastCount: String(last.count ?? ""),
    });
    const text = `${INTERVAL_LABEL[this.interval]} ${label} prices: ${this.candles.length} period${this.candles.length === 1 ? "" : "s"}, `
      + `last close ${formatCents(last.close)} (${last.count ?? "?"} sale${last.count === 1 ? "" : "s"} in the last period)`;
    this.host.setAttribute("aria-label", text);
    setText(this.summary, text);
  }

  onEvent(message) {
    const of = message.type === "sale" ? message.sale : message;
    if (!this.segment && of && typeof of.grader === "string") {
      // The card's first sale (or the first one since this page opened without any): show it.
      this.segment = { grader: of.grader, grade: of.grader === "RAW" ? null : Number(of.grade) };
      this.reload();
      return;
    }
    if (message.type === "candle" && message.candle) {
      if (candleIsFor(message, { ...this.segment, interval: this.interval })) {
        this.candles = mergeCandle(this.candles, message.candle);
        if (this.chart && this.host.dataset.state === "ready") {
          this.chart.update(message.candle, this.candles);
          this.describe();
        } else {
          this.renderChart();
        }
      }
    } else if (message.type === "sale" && message.sale) {
      if (sameSegment(message.sale, this.segment)) this.sales.prepend(message.sale);
      clearTimeout(this.valuesTimer);
      this.valuesTimer = setTimeout(async () => {
        await this.loadValues();
        if (!this.gone) this.renderValues();
      }, VALUES_AFTER_SALE_MS);
    }
  }
}
