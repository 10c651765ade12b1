// Price history, indexes, movers and behaviour analytics: the pure part. No DOM, no network, so it
// runs under `node --test`. Money is integer cents and times epoch ms, as the server sends them;
// the charts want seconds (toTime).
//
//   segments     a card's grader x grade ("PSA 10", "Raw"): keys, labels, order, the default
//   candles      REST candles -> chart bars and volume; a live candle merged in
//   sales        newest first, deduplicated; a live sale or a next page merged in
//   index        the market index's points, method and segment in words
//   words        change (+12.3%), shares, ratios, compact money
// A user's behaviour (bid timing, active hours) is activity_model.js's.

import { CATEGORY_LABEL, GRADERS } from "./catalog.js";
import { gradeLabel } from "./format.js";
import { formatCents } from "./money.js";

export const CARD_INTERVALS = ["1d", "1w"];
export const INDEX_INTERVALS = ["1w", "1mo"];
export const MOVER_WINDOWS = ["7d", "30d"];
export const INTERVAL_LABEL = { "1d": "Daily", "1w": "Weekly", "1mo": "Monthly" };
export const CHANGE_WINDOWS = ["7d", "30d", "90d"];
export const TICKER_MAX = 30;

const isNum = (x) => typeof x === "number" && Number.isFinite(x);

/** Epoch ms -> whole seconds (the charts' UTCTimestamp). */
export function toTime(ms) {
  return Math.floor(ms / 1000);
}

// ---- segments -------------------------------------------------------------------------------

/** A copy's segment as a key: "PSA|10", "BGS|9.5", "RAW". */
export function segmentKey(seg) {
  if (!seg || typeof seg.grader !== "string") return "";
  return seg.grader === "RAW" ? "RAW" : `${seg.grader}|${Number(seg.grade)}`;
}

/** "PSA|10" -> {grader: "PSA", grade: 10}; "RAW" -> {grader: "RAW", grade: null}. */
export function parseSegmentKey(key) {
  const [grader, grade] = String(key || "").split("|");
  if (!grader) return null;
  if (grader === "RAW") return { grader, grade: null };
  return Number.isFinite(Number(grade)) && grade !== "" ? { grader, grade: Number(grade) } : null;
}

/** Same grader and grade (a RAW copy has no grade; 10 and "10" are the same grade). */
export function sameSegment(a, b) {
  return segmentKey(a) !== "" && segmentKey(a) === segmentKey(b);
}

export const segmentLabel = (seg) => gradeLabel(seg);

/** /values rows in the catalog's grader order, highest grade first, Raw last (no malformed row). */
export function sortValues(values) {
  const rank = (g) => (GRADERS.includes(g) ? GRADERS.indexOf(g) : GRADERS.length);
  return (Array.isArray(values) ? values : []).filter((v) => parseSegmentKey(segmentKey(v)) !== null)
    .sort((a, b) => rank(a.grader) - rank(b.grader) || Number(b.grade ?? -1) - Number(a.grade ?? -1));
}

/** The segment to show first: the one with the most sales (ties: the catalog's order); null if none sold. */
export function defaultSegment(values) {
  let best = null;
  for (const v of sortValues(values)) {
    if (Number.isInteger(v.count) && v.count > 0 && (!best || v.count > best.count)) best = v;
  }
  return best ? { grader: best.grader, grade: best.grader === "RAW" ? null : Number(best.grade) } : null;
}

/** At most `limit` rows, the ones with the most sales (and always the one keyed `keep`), in their
 * order: a card sold at forty grades shows its busiest first; the rest on demand. */
export function busiestRows(rows, limit, keep = "") {
  if (rows.length <= limit) return rows;
  const count = (r) => (Number.isInteger(r.count) ? r.count : 0);
  const ranked = [...rows].sort((a, b) => count(b) - count(a));
  const chosen = new Set(ranked.slice(0, limit).map(segmentKey));
  if (keep && !chosen.has(keep)) {
    chosen.delete(segmentKey(ranked[limit - 1]));
    chosen.add(keep);
  }
  return rows.filter((r) => chosen.has(segmentKey(r)));
}

/** The query of GET /api/cards/{id}/history for a segment: a RAW copy has no grade. */
export function historyQuery({ grader, grade, interval, cursor = null, limit = null }) {
  const q = new URLSearchParams({ grader });
  if (grader !== "RAW") q.set("grade", String(grade));
  q.set("interval", interval);
  if (limit) q.set("limit", String(limit));
  if (cursor) q.set("cursor", cursor);
  return q.toString();
}

// ---- candles --------------------------------------------------------------------------------

function validCandle(c) {
  return c && Number.isInteger(c.t) && [c.open, c.high, c.low, c.close].every(isNum);
}

/** Candles ascending by t, one per t (the later wins), the malformed left out. */
export function cleanCandles(candles) {
  const byT = new Map();
  for (const c of Array.isArray(candles) ? candles : []) if (validCandle(c)) byT.set(c.t, c);
  return [...byT.values()].sort((a, b) => a.t - b.t);
}

/** A live candle merged into the ones shown (replacing its period, or added in order). */
export function mergeCandle(candles, candle) {
  return validCandle(candle) ? cleanCandles([...candles, candle]) : candles;
}

/** The chart's bars (cents, seconds). */
export function candleBars(candles) {
  return cleanCandles(candles).map((c) => ({ time: toTime(c.t), open: c.open, high: c.high, low: c.low, close: c.close }));
}

export const UP_COLOR = "#3ddc97";
export const DOWN_COLOR = "#ff6b6b";

/** The volume histogram's bars (money traded in the period, cents), coloured as their candle. */
export function volumeBars(candles) {
  return cleanCandles(candles).map((c) => ({
    time: toTime(c.t),
    value: isNum(c.volume) ? c.volume : 0,
    color: c.close >= c.open ? "rgba(61, 220, 151, 0.45)" : "rgba(255, 107, 107, 0.45)",
  }));
}

/** The moving averages drawn over each interval's candles: [field, label] (the server's ma_*). */
export const MA_LINES = {
  "1d": [["ma_7d", "7-day average"], ["ma_30d", "30-day average"]],
  "1w": [["ma_30d", "30-day average"], ["ma_90d", "90-day average"]],
};
export const MA_COLORS = ["#f5c451", "#6ea8ff"];

/** One moving average's line (cents, seconds): the candles that carry it. */
export function maLine(candles, field) {
  return cleanCandles(candles).filter((c) => isNum(c[field])).map((c) => ({ time: toTime(c.t), value: c[field] }));
}

/** Does a `candle` event of the card channel belong to what is shown? */
export function candleIsFor(event, shown) {
  return Boolean(event && shown && event.interval === shown.interval && sameSegment(event, shown));
}

// ---- sales ----------------------------------------------------------------------------------

/** A sale's identity within one card and grade: its source and reference when it has one, else
 * its price and time (a history page's sales carry no card or grade; a live one does). */
export function saleKey(s) {
  if (s.ref) return `${s.source}:${s.ref}`;
  return `${s.source}|${s.price}|${s.at}`;
}

/** A sale's identity across the market (the ticker: every sale names its card and grade). */
export function tickerKey(s) {
  return `${s.card_id ?? ""}|${segmentKey(s)}|${saleKey(s)}`;
}

/** Sales newest first, each once (the first copy wins: the incoming when given first). */
export function mergeSales(lists, key = saleKey) {
  const seen = new Set();
  const out = [];
  for (const s of lists.flat()) {
    if (!s || !Number.isInteger(s.price) || !Number.isInteger(s.at)) continue;
    const k = key(s);
    if (seen.has(k)) continue;
    seen.add(k);
    out.push(s);
  }
  return out.sort((a, b) => b.at - a.at);
}

/** The live ticker: a sale added, newest first, at most TICKER_MAX. */
export function tickerAdd(sales, sale, max = TICKER_MAX) {
  return mergeSales([[sale], sales], tickerKey).slice(0, max);
}

export const SOURCE_LABEL = { auction: "Auction", offer: "Trade offer", external: "Outside sale" };

/** Why a sale is flagged (it is left out of the candles and values). */
export function reasonText(reason) {
  if (reason === "outlier") return "Outlier: far from this grade's recent prices";
  if (reason === "linked") return "Between linked accounts";
  return reason ? `Flagged (${reason})` : "Flagged";
}

// ---- the market index -----------------------------------------------------------------------

/** The index's points as a line (seconds), ascending, one per t. */
export function indexLine(points) {
  const byT = new Map();
  for (const p of Array.isArray(points) ? points : []) {
    if (p && Number.isInteger(p.t) && isNum(p.value)) byT.set(p.t, p);
  }
  return [...byT.values()].sort((a, b) => a.t - b.t).map((p) => ({ time: toTime(p.t), value: p.value }));
}

/** A live point merged into an index's points. */
export function mergePoint(points, point) {
  if (!point || !Number.isInteger(point.t) || !isNum(point.value)) return points;
  return [...points.filter((p) => p.t !== point.t), point].sort((a, b) => a.t - b.t);
}

/** How the index was computed, honestly: the method and what 100 stands for. */
export function methodLabel(index) {
  if (!index) return "";
  const base = Number.isInteger(index.base) ? new Date(index.base).toLocaleDateString([], { dateStyle: "medium" })
    : typeof index.base === "string" && index.base ? index.base : null;
  const words = index.method === "repeat_sales" ? "Repeat-sales index (Case–Shiller weighted)"
    : index.method === "median" ? "Median index (too few repeat sales)" : `Index (${index.method || "unknown method"})`;
  return base ? `${words}, 100 = ${base}` : words;
}

/** "market" -> "Whole market", "category:pokemon" -> "Pokémon" (the catalog's words for a
 * category), "set:Base Set" -> "Base Set"; otherwise a label from GET /api/market/segments. */
export function segmentName(segment, segments = []) {
  const text = String(segment || "");
  if (text.startsWith("category:") && CATEGORY_LABEL[text.slice(9)]) return CATEGORY_LABEL[text.slice(9)];
  const known = (Array.isArray(segments) ? segments : []).find((s) => s && s.segment === segment);
  if (known && known.label) return known.label;
  if (text === "market") return "Whole market";
  if (text.startsWith("category:")) return text.slice(9);
  if (text.startsWith("set:")) return text.slice(4);
  return text;
}

/** The segments one can compare with the market: categories first, then sets, by label. */
export function comparable(segments) {
  const order = { category: 0, set: 1 };
  return (Array.isArray(segments) ? segments : [])
    .filter((s) => s && s.segment !== "market" && (s.kind === "category" || s.kind === "set"))
    .sort((a, b) => order[a.kind] - order[b.kind] || String(a.label).localeCompare(String(b.label)));
}

// ---- words ----------------------------------------------------------------------------------

/** A change as a fraction in words: 0.123 -> {text: "+12.3%", tone: "up"}; null -> "—". */
export function formatChange(fraction) {
  if (!isNum(fraction)) return { text: "—", tone: "none" };
  const pct = fraction * 100;
  const text = Math.abs(pct) >= 1000 ? Math.round(pct).toLocaleString("en-US") : pct.toFixed(1);
  if (Number(text.replace(/,/g, "")) === 0) return { text: "0.0%", tone: "flat" };
  return fraction > 0 ? { text: `+${text}%`, tone: "up" } : { text: `${text}%`, tone: "down" };
}

/** A share as a whole percent: 0.423 -> "42%", a small non-zero one "<1%"; null -> "—". */
export function formatShare(fraction) {
  if (!isNum(fraction)) return "—";
  if (fraction > 0 && fraction < 0.005) return "<1%";
  return `${Math.round(fraction * 100)}%`;
}

/** A mean or an index value: 2.345 -> "2.3" (digits after the point); null -> "—". */
export function formatNumber(value, digits = 1) {
  return isNum(value) ? value.toFixed(digits) : "—";
}

/** A mean that may come as {mean, median}: 2.345 or {mean: 2.345} -> "2.3". */
export function formatMean(value, digits = 1) {
  return formatNumber(value && typeof value === "object" ? value.mean : value, digits);
}

/** How far behind the projections are, in words ("" when up to date, under `slack` seconds). */
export function lagText(lag, slack = 10) {
  const behind = Object.values(lag && typeof lag === "object" ? lag : {})
    .map((l) => (l && isNum(l.seconds_behind) ? l.seconds_behind : 0));
  const worst = Math.max(0, ...behind);
  return worst > slack ? `Figures are catching up with the latest sales (${Math.round(worst)} s behind).` : "";
}

/** Short money for an axis or a tight table: 123456 -> "$1.2K", 250000000 -> "$2.5M". */
export function compactCents(cents) {
  if (!isNum(cents)) return "—";
  const dollars = Math.abs(cents) / 100;
  const sign = cents < 0 ? "-" : "";
  if (dollars >= 1e6) return `${sign}$${(dollars / 1e6).toFixed(1)}M`;
  if (dollars >= 1e4) return `${sign}$${Math.round(dollars / 1e3)}K`;
  if (dollars >= 1e3) return `${sign}$${(dollars / 1e3).toFixed(1)}K`;
  return Number.isInteger(cents) ? formatCents(cents) : `${sign}$${dollars.toFixed(2)}`;
}

/** A price on a chart's axis (cents, possibly fractional there): whole cents as money. */
export function axisCents(value) {
  return isNum(value) ? formatCents(Math.round(value)) : "";
}

/**
 * A grade's trend in figures (its /values row): [{key, label, change}] - the value's change over
 * 7, 30 and 90 days, then the last 30 days' sales and money traded with their change against the
 * 30 days before (`text` the count or amount). Empty for no row.
 */
export function trendFacts(row) {
  if (!row || typeof row !== "object") return [];
  const count = Number.isInteger(row.count_30d) ? String(row.count_30d) : "—";
  return [
    { key: "change_7d", label: "7 days", change: row.change_7d },
    { key: "change_30d", label: "30 days", change: row.change_30d },
    { key: "change_90d", label: "90 days", change: row.change_90d },
    { key: "count_30d", label: "Sales, 30 days", text: count, change: row.count_change_30d },
    { key: "volume_30d", label: "Traded, 30 days", text: compactCents(row.volume_30d), change: row.volume_change_30d },
  ];
}

/** "Last sale" cell: {price: "$50.00", date: "Nov 5, 2026"} (date "" when unknown), or null. */
export function lastSale(row) {
  if (!row || !Number.isInteger(row.last_price)) return null;
  const date = Number.isInteger(row.last_at) ? new Date(row.last_at).toLocaleDateString([], { dateStyle: "medium" }) : "";
  return { price: formatCents(row.last_price), date };
}
