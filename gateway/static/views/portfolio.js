// The portfolio (#/portfolio): what the signed-in user holds, what it is worth and how sure ECE
// is (each value's range and confidence), today's change, P/L and the time-weighted return; the
// value over time with the P/L; the holdings (sortable, with the sales behind each value); the
// allocation, diversification, liquidity and risk panels. Live: a `portfolio` event of the "me"
// channel (no seq: a live view, header.js's onMeLive) updates the total and the changed holdings
// at once, then the whole portfolio is read again (debounced) for the panels; after a reconnect,
// everything is read again.

import { api, clock } from "../api.js";
import { flash, h, setText } from "../dom.js";
import { portfolioChart } from "../charts.js";
import { onMeLive } from "../header.js";
import {
  RANGES, RANGE_LABEL, applyLive, confidenceMix, dayStart, historyLines, mixText, pnlText, pnlTone,
  rangeText, todayChange, twrText,
} from "../portfolio_model.js";
import { formatCents } from "../money.js";
import { changeText, chartHost, emptyChart, toggle } from "./analytics_ui.js";
import { live, signOut, state } from "../shell.js";
import { holdingsTable, placeholderName } from "./portfolio_holdings.js";
import { allocationPanel, diversificationPanel, riskPanel } from "./portfolio_panels.js";
import { visibilitySwitch } from "./portfolio_visibility.js";

const NEXT = "#/portfolio";
const REFRESH_MS = 800; // a burst of live events: one re-read
const STALE_READS = 40; // re-reads of a portfolio older than the last event before showing it
const NAMES_AT_ONCE = 4;
const names = new Map(); // card_id -> its name (or a placeholder while unknown), for every visit

function signInPrompt() {
  return h("div", { class: "empty", testid: "portfolio-signin" },
    h("p", { class: "empty__title", text: "Sign in to see your portfolio" }),
    h("p", { text: "What your cards are worth, how sure that is, what you made, and how exposed you are." }),
    h("a", { class: "btn btn--primary", href: `#/signin?next=${encodeURIComponent(NEXT)}` }, "Sign in"));
}

export class PortfolioView {
  title = "Portfolio";

  mount(main) {
    this.main = main;
    this.gone = false;
    this.range = "1y";
    this.portfolio = null;
    this.points = [];
    this.liveAt = 0; // the newest live event's `at`: a portfolio read older than it waits
    this.stale = 0;
    this.generation = 0;
    this.root = h("section", { class: "page portfolio", testid: "portfolio-page", "aria-busy": "true" },
      h("div", { class: "page__head" }, h("div", null,
        h("h1", { class: "page__title", text: "Portfolio" }),
        h("p", { class: "page__sub", text: "What your cards are worth, how sure ECE is of it, and what you made. Values come from recent sales of the same card and grade." }))));
    main.append(this.root);
    if (!state.session) {
      this.root.setAttribute("aria-busy", "false");
      this.root.append(signInPrompt());
      return;
    }
    this.status = h("p", { class: "list-status", role: "status", testid: "portfolio-status" }, "Loading…");
    this.root.append(visibilitySwitch(state.session), this.status);
    this.stopLive = onMeLive((message) => this.onLive(message));
    this.load();
  }

  unmount() {
    this.gone = true;
    clearTimeout(this.refreshTimer);
    this.stopLive?.();
    this.chart?.remove();
    this.chart = null;
  }

  onSession() {
    this.unmount();
    this.main.replaceChildren();
    this.mount(this.main);
  }

  /** Back online: events may have been missed meanwhile. */
  onConnection() {
    if (live.state === "live" && this.portfolio) this.refresh();
  }

  async load() {
    const token = state.session.token;
    try {
      const [portfolio, history] = await Promise.all([api.portfolio(token), api.portfolioHistory(token, this.range)]);
      if (this.gone) return;
      this.portfolio = portfolio;
      this.points = history?.points ?? [];
    } catch (error) {
      if (this.gone) return;
      if (error.code === "UNAUTHORIZED" || error.status === 401) {
        signOut("Your session has expired — please sign in again");
        return;
      }
      setText(this.status, error.code === "NETWORK" ? "Offline — reload when you're back" : `Couldn't load your portfolio: ${error.message}`);
      this.status.classList.add("list-status--error");
      return;
    }
    this.root.setAttribute("aria-busy", "false");
    this.status.remove();
    this.root.append(this.portfolio.holdings?.length ? this.build() : empty());
    if (this.portfolio.holdings?.length) this.render();
  }

  build() {
    this.stats = h("dl", { class: "stats portfolio__summary", testid: "portfolio-summary" });
    this.host = chartHost("portfolio-chart", "Your collection's value over time");
    this.chartEmpty = emptyChart("portfolio-chart-empty", "Not enough history yet",
      "The chart starts once your collection has been valued on two days.");
    this.gain = h("p", { class: "hint", testid: "portfolio-gain" });
    this.ranges = toggle({ label: "Chart range", testid: "portfolio-range-toggle", value: this.range,
      options: RANGES.map((r) => [r, RANGE_LABEL[r]]),
      onChange: (value) => { this.range = value; this.loadHistory(); } });
    this.holdings = holdingsTable({ name: (id) => names.get(id) ?? placeholderName(id) });
    this.allocation = allocationPanel();
    this.diversification = diversificationPanel();
    this.risk = riskPanel();
    this.updated = h("p", { class: "hint", testid: "portfolio-updated", "aria-live": "polite" });
    return h("div", { class: "portfolio__body" },
      this.stats,
      h("section", { class: "panel", "aria-labelledby": "value-heading" },
        h("div", { class: "panel__head" },
          h("h2", { class: "section-title", id: "value-heading", text: "Value over time" }), this.ranges),
        this.host, this.chartEmpty,
        this.legend = h("p", { class: "chart-legend", "aria-hidden": "true" },
          h("span", { class: "chart-legend__item" }, h("span", { class: "swatch swatch--market" }), "Value"),
          h("span", { class: "chart-legend__item" }, h("span", { class: "swatch swatch--band" }), "Low–high range"),
          h("span", { class: "chart-legend__item" }, h("span", { class: "swatch swatch--pnl" }), "P/L since the first day shown")),
        this.gain),
      h("section", { "aria-labelledby": "holdings-heading" },
        h("h2", { class: "section-title", id: "holdings-heading", text: "Holdings" }), this.holdings),
      h("div", { class: "portfolio__panels" }, this.allocation, this.diversification, this.risk),
      this.updated);
  }

  render(changed = []) {
    const p = this.portfolio;
    this.renderSummary(changed.length > 0);
    this.holdings.show(p.holdings, changed);
    this.allocation.show(p.allocation);
    this.diversification.show(p, (id) => names.get(id) ?? placeholderName(id));
    this.risk.show(p.risk);
    this.renderChart();
    setText(this.updated, Number.isInteger(p.computed_at)
      ? `Figures as of ${new Date(p.computed_at).toLocaleString([], { dateStyle: "medium", timeStyle: "short" })}; they update live as cards like yours sell.` : "");
    this.loadNames();
  }

  renderSummary(moved) {
    const t = this.portfolio.totals || {};
    const stat = (label, key, value, sub = null, tone = null) => h("div", { class: "stat" }, h("dt", null, label),
      h("dd", { testid: `portfolio-${key}`, class: tone ? `change change--${tone}` : null }, value),
      sub ? h("span", { class: "stat-sub", testid: `portfolio-${key}-sub` }, sub) : null);
    const unvalued = Number.isInteger(t.unvalued) && t.unvalued > 0
      ? `${t.unvalued} of ${t.holdings} without a value yet` : null;
    const range = rangeText(t.low, t.high);
    const today = todayChange(this.points, t.value, dayStart(clock.now()));
    const valueSub = h("span", null,
      range ? h("span", { class: "portfolio__range", testid: "portfolio-range" }, `range ${range}`) : null,
      h("span", { class: "portfolio__mix", testid: "portfolio-mix" }, mixText(confidenceMix(this.portfolio.holdings))),
      unvalued ? h("span", null, unvalued) : null);
    const todayValue = today ? h("span", null, pnlText(today.cents), " ", today.fraction !== null ? changeText(today.fraction) : null) : "—";
    const unknown = Number.isInteger(t.unknown_basis) && t.unknown_basis > 0
      ? `${t.unknown_basis} with an unknown cost left out` : "value less what you paid, for what you hold";
    this.stats.replaceChildren(
      stat("Total value", "total", formatCents(t.value), valueSub),
      stat("Today", "today", todayValue, today ? "market moves since yesterday; purchases and sales taken out"
        : "from tomorrow: your first day has nothing to compare with", today ? pnlTone(today.cents) : null),
      stat("Unrealised P/L", "unrealised", pnlText(t.unrealised_pnl), unknown, pnlTone(t.unrealised_pnl)),
      stat("Realised P/L", "realised", pnlText(t.realised_pnl), "what your sales made over what they cost", pnlTone(t.realised_pnl)),
      stat("Return", "twr", twrText(t.twr), typeof t.twr === "number"
        ? "time-weighted: how your cards did, with the money you put in or took out set aside"
        : "time-weighted, once there are two days of values",
        typeof t.twr === "number" ? pnlTone(Math.sign(t.twr)) : null));
    if (moved) flash(this.stats.querySelector("[data-testid=portfolio-total]"));
  }

  async loadHistory() {
    const generation = ++this.generation;
    try {
      const history = await api.portfolioHistory(state.session.token, this.range);
      if (this.gone || generation !== this.generation) return;
      this.points = history?.points ?? [];
      this.renderSummary(false);
      this.renderChart();
    } catch (error) {
      if (!this.gone) setText(this.gain, `Couldn't load the history: ${error.message}`);
    }
  }

  async renderChart() {
    const lines = historyLines(this.points);
    const enough = lines.value.length >= 2;
    this.host.hidden = !enough;
    this.chartEmpty.hidden = enough;
    this.legend.hidden = !enough;
    this.host.dataset.points = String(lines.value.length);
    const gain = lines.pnl.length ? lines.pnl[lines.pnl.length - 1].value : null;
    setText(this.gain, enough ? `Over ${this.range === "all" ? "all your history" : `the last ${RANGE_LABEL[this.range]}`}: ${pnlText(gain)} from market moves (purchases and sales taken out).` : "");
    if (!enough) {
      this.host.dataset.state = "empty";
      return;
    }
    this.host.setAttribute("aria-label", `Your collection's value over ${RANGE_LABEL[this.range]}: ${lines.value.length} days, `
      + `latest ${formatCents(lines.value[lines.value.length - 1].value)}; P/L ${pnlText(gain)}`);
    try {
      this.chart ??= await portfolioChart(this.host);
    } catch {
      if (!this.gone) this.host.dataset.state = "error";
      return;
    }
    if (this.gone) return;
    this.chart.set(lines);
    this.host.dataset.state = "ready";
  }

  /** The catalog names of the cards held (once per card; a few requests at a time). */
  async loadNames() {
    const wanted = [...new Set([
      ...(this.portfolio.holdings || []).map((x) => x.card_id),
      ...(this.portfolio.diversification?.warnings || []).filter((w) => w.by === "card").map((w) => w.label),
    ])].filter((id) => id && !names.has(id)).slice(0, 200);
    if (!wanted.length || this.naming) return;
    this.naming = true;
    const next = async () => {
      for (let id = wanted.shift(); id !== undefined; id = wanted.shift()) {
        try {
          const card = await api.card(id);
          names.set(id, card.name ? `${card.name}${card.number ? ` #${card.number}` : ""}` : placeholderName(id));
        } catch {
          names.set(id, placeholderName(id));
        }
      }
    };
    await Promise.all(Array.from({ length: NAMES_AT_ONCE }, next));
    this.naming = false;
    if (this.gone) return;
    this.holdings.rename();
    this.diversification.show(this.portfolio, (id) => names.get(id) ?? placeholderName(id));
  }

  onLive(message) {
    if (message.type !== "portfolio" || !this.portfolio || this.gone) return;
    this.liveAt = Math.max(this.liveAt, message.at ?? 0);
    const { portfolio, changed } = applyLive(this.portfolio, message);
    this.portfolio = portfolio;
    if (this.stats) {
      this.renderSummary(true);
      this.holdings.show(portfolio.holdings, changed);
    } else {
      this.refresh(); // the first card: the whole page
    }
    clearTimeout(this.refreshTimer);
    this.refreshTimer = setTimeout(() => this.refresh(), REFRESH_MS);
  }

  /** Read the portfolio and its history again (the panels the events do not carry). */
  async refresh() {
    const token = state.session?.token;
    if (!token || this.refreshing) {
      this.again = true;
      return;
    }
    this.refreshing = true;
    this.again = false;
    try {
      const [portfolio, history] = await Promise.all([api.portfolio(token), api.portfolioHistory(token, this.range)]);
      if (this.gone) return;
      if ((portfolio.computed_at ?? Infinity) < this.liveAt && this.stale++ < STALE_READS) {
        this.again = true; // older than an event shown already: not shown, read again
        return;
      }
      this.stale = 0;
      const changed = movedSince(this.portfolio, portfolio);
      this.portfolio = portfolio;
      this.points = history?.points ?? [];
      if (!this.stats && portfolio.holdings?.length) {
        this.root.querySelector("[data-testid=portfolio-empty]")?.remove();
        this.root.append(this.build());
      }
      if (this.stats) this.render(changed);
    } catch {
      // the next event, or the next reconnect, reads it again
    } finally {
      this.refreshing = false;
      if (this.again && !this.gone) this.refreshTimer = setTimeout(() => this.refresh(), REFRESH_MS);
    }
  }
}

/** The asset ids whose value differs between two answers (their listed sales are stale). */
function movedSince(before, after) {
  const old = new Map((before?.holdings || []).map((x) => [x.asset_id, JSON.stringify(x.value)]));
  return (after?.holdings || []).filter((x) => old.has(x.asset_id) && old.get(x.asset_id) !== JSON.stringify(x.value))
    .map((x) => x.asset_id);
}

function empty() {
  return h("div", { class: "empty", testid: "portfolio-empty" },
    h("p", { class: "empty__title", text: "Nothing in your portfolio yet" }),
    h("p", { text: "Win an auction or buy a card by a trade offer: your cards, their values and how they do show up here." }),
    h("a", { class: "btn btn--primary", href: "#/" }, "Browse live auctions"));
}
