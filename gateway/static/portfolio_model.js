// The portfolio (GET /api/portfolio, /api/portfolio/history, the "me" channel's `portfolio`
// events): the pure part. Values, ranges and confidence in words, today's change, the P/L line,
// sorting the holdings, a live event folded in, risk and diversification in plain words. No DOM,
// no network (`node --test`). Money in cents, times in epoch ms, fractions 0.12 = 12%.

import { formatCents, signedCents } from "./money.js";
import { formatShare } from "./analytics_model.js";

const isNum = (x) => typeof x === "number" && Number.isFinite(x);
const DAY_MS = 86_400_000;

export const RANGES = ["1m", "1y", "all"];
export const RANGE_LABEL = { "1m": "1 month", "1y": "1 year", all: "All" };
export const CONFIDENCES = ["high", "medium", "low"];
export const CONFIDENCE_LABEL = { high: "High", medium: "Medium", low: "Low" };
const CONFIDENCE_RANK = { high: 3, medium: 2, low: 1 };
export const NO_VALUE = "no value yet"; // a holding without a value (never $0.00)
export const DEFAULT_WARN_SHARE = 0.25; // the server's default (ECE_CONCENTRATION_SHARE; not in /config.js)

// ---- a value ---------------------------------------------------------------------------------

/** A value's point as money, or "no value yet" (null: no sale to value it by). */
export function valueText(value) {
  return value && Number.isInteger(value.point) ? formatCents(value.point) : NO_VALUE;
}

/** A range as money, "$40.00–$60.00" ("" without both ends). */
export function rangeText(low, high) {
  return Number.isInteger(low) && Number.isInteger(high) ? `${formatCents(low)}–${formatCents(high)}` : "";
}

/** How a value was made and how sure it is, in words: "High confidence · 7 sales". */
export function confidenceText(value) {
  if (!value) return "";
  const how = value.method === "derived" ? "derived from other grades"
    : Number.isInteger(value.n) ? `${value.n} sale${value.n === 1 ? "" : "s"}` : "";
  const sure = CONFIDENCE_LABEL[value.confidence] ? `${CONFIDENCE_LABEL[value.confidence]} confidence` : "";
  return [sure, how].filter(Boolean).join(" · ");
}

/** The share of the valued total at each confidence: [{confidence, share}] (high first, only
 * those present) — from the holdings' points. */
export function confidenceMix(holdings) {
  const sums = { high: 0, medium: 0, low: 0 };
  let total = 0;
  for (const holding of Array.isArray(holdings) ? holdings : []) {
    const v = holding?.value;
    if (!v || !Number.isInteger(v.point) || !(v.confidence in sums)) continue;
    sums[v.confidence] += v.point;
    total += v.point;
  }
  if (total <= 0) return [];
  return CONFIDENCES.filter((c) => sums[c] > 0).map((confidence) => ({ confidence, share: sums[confidence] / total }));
}

/** The mix as one line: "80% high · 20% low confidence" ("" when nothing is valued). */
export function mixText(mix) {
  if (!mix.length) return "";
  return `${mix.map((m) => `${formatShare(m.share)} ${m.confidence}`).join(" · ")} confidence`;
}

// ---- performance -----------------------------------------------------------------------------

/** Clean history points: objects with a whole `t` and `value`, oldest first, one per day. */
export function cleanPoints(points) {
  const byDay = new Map();
  for (const p of Array.isArray(points) ? points : []) {
    if (p && Number.isInteger(p.t) && Number.isInteger(p.value)) byDay.set(p.t, p);
  }
  return [...byDay.values()].sort((a, b) => a.t - b.t);
}

const flowOf = (p) => (Number.isInteger(p?.inflow) ? p.inflow : 0) - (Number.isInteger(p?.outflow) ? p.outflow : 0);

/**
 * Today's change, flows taken out (a purchase is not a gain): the value now (`total`, else the
 * last point's) against the end of the day before, less what came in today plus what went out.
 * {cents, fraction} (fraction null when nothing was invested), or null without a day before.
 * `today` is the start of today (UTC day, ms).
 */
export function todayChange(points, total, today) {
  const clean = cleanPoints(points);
  const current = clean.length && clean[clean.length - 1].t >= today ? clean[clean.length - 1] : null;
  const before = clean.filter((p) => p.t < today).pop();
  if (!before) return null;
  const now = Number.isInteger(total) ? total : current ? current.value : before.value;
  const inflow = current && Number.isInteger(current.inflow) ? current.inflow : 0;
  const outflow = current && Number.isInteger(current.outflow) ? current.outflow : 0;
  const base = before.value + inflow;
  return { cents: now + outflow - base, fraction: base > 0 ? (now + outflow) / base - 1 : null };
}

/** The start of the UTC day of `ms`. */
export function dayStart(ms) {
  return ms - (((ms % DAY_MS) + DAY_MS) % DAY_MS);
}

/**
 * The chart's lines: value, low and high per day, and the P/L since the range's first day
 * (each day's change of value less its net inflow, summed: purchases and sales are not gains).
 * Times in seconds (the chart's). {value, low, high, pnl: [{time, value}]}.
 */
export function historyLines(points) {
  const clean = cleanPoints(points);
  const out = { value: [], low: [], high: [], pnl: [] };
  let gain = 0;
  clean.forEach((p, i) => {
    const time = Math.floor(p.t / 1000);
    if (i > 0) gain += p.value - clean[i - 1].value - flowOf(p);
    out.value.push({ time, value: p.value });
    if (Number.isInteger(p.low) && Number.isInteger(p.high)) {
      out.low.push({ time, value: p.low });
      out.high.push({ time, value: p.high });
    }
    out.pnl.push({ time, value: gain });
  });
  return out;
}

/** Money with its sign, for P/L: "+$12.00", "-$3.00", "$0.00"; "—" when unknown. */
export function pnlText(cents) {
  return Number.isInteger(cents) ? signedCents(cents) : "—";
}

/** A P/L's tone: "up", "down", "flat" or "none". */
export function pnlTone(cents) {
  if (!Number.isInteger(cents)) return "none";
  return cents > 0 ? "up" : cents < 0 ? "down" : "flat";
}

// ---- holdings --------------------------------------------------------------------------------

export const SORTS = {
  value: { label: "Value", of: (h) => (Number.isInteger(h.value?.point) ? h.value.point : null) },
  pnl: { label: "P/L", of: (h) => (Number.isInteger(h.pnl) ? h.pnl : null) },
  confidence: { label: "Confidence", of: (h) => CONFIDENCE_RANK[h.value?.confidence] ?? null },
  days: { label: "Days to sell", of: (h) => (isNum(h.days_to_sell) ? h.days_to_sell : null) },
};

/** The holdings sorted by `key` (SORTS), "desc" or "asc"; the unknown (no value, no P/L) last
 * either way; ties by position then asset id (a stable order across refreshes). */
export function sortHoldings(holdings, key = "value", dir = "desc") {
  const of = (SORTS[key] ?? SORTS.value).of;
  const sign = dir === "asc" ? 1 : -1;
  return [...(Array.isArray(holdings) ? holdings : [])].sort((a, b) => {
    const x = of(a);
    const y = of(b);
    if (x === null || y === null) {
      if (x !== y) return x === null ? 1 : -1;
    } else if (x !== y) return sign * (x - y);
    return String(a.position).localeCompare(String(b.position)) || String(a.asset_id).localeCompare(String(b.asset_id));
  });
}

/** Days to sell in words: "about 12 days", "2 years or more" (the cap). */
export function daysText(days, cap = 730) {
  if (!isNum(days)) return "—";
  if (days >= cap) return "2 years or more";
  if (days < 1) return "under a day";
  const whole = Math.round(days);
  return `about ${whole} day${whole === 1 ? "" : "s"}`;
}

/**
 * A `portfolio` event of the "me" channel folded into a GET /api/portfolio answer: the new
 * totals and the changed holdings' values (their P/L recomputed from the basis). Returns
 * {portfolio, changed: [asset_id]}. The rest (allocation, risk...) waits for the next fetch.
 */
export function applyLive(portfolio, event) {
  if (!portfolio || !event || event.type !== "portfolio") return { portfolio, changed: [] };
  const values = new Map();
  for (const c of Array.isArray(event.changed) ? event.changed : []) {
    if (c && typeof c.asset_id === "string") values.set(c.asset_id, c.value ?? null);
  }
  const changed = [];
  const holdings = (portfolio.holdings || []).map((h) => {
    if (!values.has(h.asset_id)) return h;
    const value = values.get(h.asset_id);
    changed.push(h.asset_id);
    const pnl = value && Number.isInteger(value.point) && Number.isInteger(h.cost_basis) ? value.point - h.cost_basis : null;
    return { ...h, value, pnl };
  });
  const totals = event.total && typeof event.total === "object" ? { ...portfolio.totals, ...event.total } : portfolio.totals;
  return { portfolio: { ...portfolio, holdings, totals }, changed };
}

// ---- allocation, diversification, liquidity, risk --------------------------------------------

/** {label: share} as rows [{label, share, fraction of the largest}], largest first; `name(label)`
 * words a label. */
export function shareRows(weights, name = (label) => label) {
  const rows = Object.entries(weights && typeof weights === "object" ? weights : {})
    .filter(([, share]) => isNum(share) && share > 0)
    .map(([label, share]) => ({ key: label, label: label === "unknown" ? "Not known" : name(label), share }))
    .sort((a, b) => b.share - a.share || a.label.localeCompare(b.label));
  const max = rows.length ? rows[0].share : 0;
  return rows.map((r) => ({ ...r, fraction: max ? r.share / max : 0 }));
}

const WARN_BY = { card: "", player: " (player or character)", set: " (set)" };

/** A concentration warning in plain words: "Charizard is 62% of your collection's value — more
 * than 25%". `name(label)` words a card id. */
export function warningText(warning, name = (label) => label, threshold = DEFAULT_WARN_SHARE,
  whose = "your collection's") {
  const label = warning.by === "card" ? name(warning.label) : warning.label;
  const which = WARN_BY[warning.by] ?? ` (${warning.by})`;
  return `${label}${which} is ${formatShare(warning.share)} of ${whose} value — more than ${formatShare(threshold)}`;
}

/** A fraction as a percent with one decimal ("4.2%"); "—" when unknown. */
export function percent(fraction, digits = 1) {
  return isNum(fraction) ? `${(fraction * 100).toFixed(digits)}%` : "—";
}

/** A day (epoch ms) as "Nov 5, 2026" (UTC: the snapshots are UTC days). */
export function dayText(ms) {
  if (!Number.isInteger(ms)) return "";
  return new Date(ms).toLocaleDateString("en-US", { dateStyle: "medium", timeZone: "UTC" });
}

/** Why risk is not shown, in plain words. */
export function riskReasonText(reason) {
  const why = typeof reason === "string" && reason ? reason : "not enough history yet";
  return `Risk figures are not shown yet: ${why}. Until then they would mislead more than inform.`;
}

/** The risk panel's rows: [{key, label, text, note}] ([] when not shown). */
export function riskRows(risk) {
  if (!risk || !risk.shown) return [];
  const loss = (x) => (isNum(x) ? `${percent(x)} loss` : "—");
  const drawdown = isNum(risk.max_drawdown) && risk.max_drawdown < 0
    ? `${percent(-risk.max_drawdown)} fall` : "none";
  const when = isNum(risk.max_drawdown) && risk.max_drawdown < 0 && Number.isInteger(risk.drawdown_peak)
    ? `from ${dayText(risk.drawdown_peak)} to ${dayText(risk.drawdown_trough)}; ${Number.isInteger(risk.drawdown_recovered)
      ? `back by ${dayText(risk.drawdown_recovered)}` : "not yet recovered"}` : "no fall from a peak";
  const two = (x) => (isNum(x) ? x.toFixed(2) : "—");
  return [
    { key: "volatility", label: "Volatility", text: percent(risk.volatility), note: "a year's typical swing (annualised)" },
    { key: "var-1d", label: "Value at risk, 1 day", text: loss(risk.var_95_1d), note: "1 day in 20 may lose at least this" },
    { key: "cvar-1d", label: "Expected shortfall, 1 day", text: loss(risk.cvar_95_1d), note: "the average of those bad days" },
    { key: "var-10d", label: "Value at risk, 10 days", text: loss(risk.var_95_10d), note: "1 ten-day stretch in 20 may lose at least this" },
    { key: "cvar-10d", label: "Expected shortfall, 10 days", text: loss(risk.cvar_95_10d), note: "the average of those bad stretches" },
    { key: "drawdown", label: "Largest fall", text: drawdown, note: when },
    { key: "beta", label: "Beta", text: two(risk.beta), note: "moves with the ECE market: 1 = as much, 0 = not at all" },
    { key: "sharpe", label: "Sharpe ratio", text: two(risk.sharpe), note: "return per unit of risk, above the risk-free rate" },
  ];
}

/** Liquidity in words: the share over the days and the mean days to sell. */
export function liquidityFacts(liquidity) {
  const l = liquidity || {};
  const days = Number.isInteger(l.share_over_days) ? l.share_over_days : 90;
  return {
    over: formatShare(l.share_over),
    overLabel: `Would take over ${days} days to sell`,
    mean: isNum(l.mean_days) ? daysText(l.mean_days) : "—",
  };
}

/** The time-weighted return: "+4.2%" or "—" (not before two days of history). */
export function twrText(twr) {
  if (!isNum(twr)) return "—";
  return `${twr > 0 ? "+" : ""}${percent(twr)}`;
}
