// The portfolio page's panels beside the holdings: allocation (by category, set, grader: bars in
// plain HTML, a categorical axis read out loud as a table), diversification with its warnings in
// plain words, liquidity, and risk (or, when risk is not shown, why).

import { h } from "../dom.js";
import { formatShare } from "../analytics_model.js";
import { CATEGORY_LABEL } from "../catalog.js";
import {
  DEFAULT_WARN_SHARE, liquidityFacts, riskReasonText, riskRows, shareRows, warningText,
} from "../portfolio_model.js";
import { toggle } from "./analytics_ui.js";

const ALLOCATION_BY = [["category", "Category"], ["set", "Set"], ["grader", "Grader"]];
const WORDS = { category: (label) => CATEGORY_LABEL[label] ?? label, set: (label) => label, grader: (label) => (label === "RAW" ? "Raw" : label) };

/** Shares as horizontal bars: a table of label, bar and percent. */
export function shareTable({ caption, rows, testid }) {
  return h("table", { class: "bars bars--shares", testid },
    h("caption", { class: "visually-hidden" }, caption),
    h("thead", { class: "visually-hidden" }, h("tr", null,
      h("th", { scope: "col" }, "Label"), h("th", { scope: "col" }, "Bar"), h("th", { scope: "col" }, "Share of value"))),
    h("tbody", null, rows.map((r) => h("tr", { testid: `${testid}-row`, dataset: { label: r.key, share: r.share.toFixed(4) } },
      h("th", { scope: "row", class: "bars__label", title: r.label }, r.label),
      h("td", { class: "bars__track", "aria-hidden": "true" },
        h("span", { class: "bars__fill", style: `width: ${Math.max(1, Math.round(r.fraction * 100))}%` })),
      h("td", { class: "bars__count" }, formatShare(r.share))))));
}

/** The allocation panel; its show(allocation) fills it. */
export function allocationPanel() {
  let by = "category";
  let last = {};
  const host = h("div", { class: "allocation__bars" });
  const pick = toggle({ label: "Allocation by", testid: "allocation-by", value: by, options: ALLOCATION_BY,
    onChange: (value) => { by = value; el.show(last); } });
  const el = h("section", { class: "panel", "aria-labelledby": "allocation-heading", testid: "allocation" },
    h("div", { class: "panel__head" }, h("h2", { class: "section-title", id: "allocation-heading", text: "Allocation" }), pick),
    host);
  el.show = (allocation) => {
    last = allocation || {};
    const rows = shareRows(last[by], WORDS[by]);
    host.replaceChildren(rows.length
      ? shareTable({ caption: `Share of your collection's value by ${by}`, rows, testid: `allocation-${by}` })
      : h("p", { class: "hint" }, "Nothing valued yet: shares come once your cards have values."));
  };
  return el;
}

const fact = (label, testid, text, note = null) => h("div", { class: "stat" }, h("dt", null, label),
  h("dd", { testid, text }), note ? h("span", { class: "stat-sub", text: note }) : null);

/** The diversification and liquidity panel; show(portfolio, name) fills it. */
export function diversificationPanel(whose = "your collection's") {
  const body = h("div");
  const el = h("section", { class: "panel", "aria-labelledby": "diversification-heading", testid: "diversification" },
    h("h2", { class: "section-title", id: "diversification-heading", text: "Diversification and liquidity" }), body);
  el.show = (portfolio, name) => {
    const d = portfolio.diversification || {};
    const warnings = Array.isArray(d.warnings) ? d.warnings : [];
    const threshold = typeof d.threshold === "number" ? d.threshold : DEFAULT_WARN_SHARE;
    const liquidity = liquidityFacts(portfolio.liquidity);
    const n = typeof d.effective_n === "number" ? d.effective_n.toFixed(1) : "—";
    const hhi = typeof d.hhi === "number" ? d.hhi.toFixed(3) : "—";
    body.replaceChildren(...[ // (replaceChildren would write a null as the text "null")
      h("dl", { class: "stats portfolio__facts" },
        fact("Effective positions", "diversification-effective-n", n, "as spread as this many equal holdings"),
        fact("Concentration (HHI)", "diversification-hhi", hhi, "0 = spread thin, 1 = all in one"),
        fact(liquidity.overLabel, "liquidity-over", liquidity.over, "share of the value"),
        fact("Time to sell", "liquidity-mean", liquidity.mean, "value-weighted, at the pace of the last year's sales")),
      warnings.length
        ? h("ul", { class: "warnings", testid: "diversification-warnings", "aria-label": "Concentration warnings" },
          warnings.map((w) => h("li", { class: "warning", testid: "diversification-warning", dataset: { by: w.by } },
            warningText(w, name, threshold, whose))))
        : h("p", { class: "hint", testid: "diversification-ok" }, Object.keys(d.weights || {}).length
          ? `No card, player or set holds more than ${formatShare(threshold)} of the value.`
          : "Nothing valued yet."),
      Number.isInteger(d.unvalued) && d.unvalued > 0
        ? h("p", { class: "hint" }, `${d.unvalued} holding${d.unvalued === 1 ? " has" : "s have"} no value yet and ${d.unvalued === 1 ? "is" : "are"} left out of these shares.`)
        : null].filter(Boolean));
  };
  return el;
}

/** The risk panel; show(risk) fills it (the reason, in words, when not shown). */
export function riskPanel() {
  const body = h("div");
  const el = h("section", { class: "panel", "aria-labelledby": "risk-heading", testid: "risk" },
    h("h2", { class: "section-title", id: "risk-heading", text: "Risk" }), body);
  el.show = (risk) => {
    const rows = riskRows(risk);
    if (!rows.length) {
      body.replaceChildren(h("p", { class: "risk__reason", testid: "risk-reason" }, riskReasonText(risk?.reason)));
      return;
    }
    body.replaceChildren(
      h("dl", { class: "stats portfolio__facts" }, rows.map((r) => fact(r.label, `risk-${r.key}`, r.text, r.note))),
      h("p", { class: "hint" }, "From your current cards priced back a year by their market indexes; 95% confidence. Appraised prices lag, so day-to-day figures are unsmoothed first."));
  };
  return el;
}
