// Price history, indexes and behaviour analytics' pure model (gateway/static/analytics_model.js):
// `node --test tests/js/`.

import assert from "node:assert/strict";
import { test } from "node:test";

import {
  axisCents, busiestRows, candleBars, candleIsFor, cleanCandles, comparable, compactCents,
  defaultSegment, formatChange, formatNumber, formatShare, historyQuery, indexLine, lastSale,
  mergeCandle, mergePoint, mergeSales, methodLabel, parseSegmentKey, reasonText, sameSegment, saleKey,
  segmentKey, segmentLabel, segmentName, sortValues, tickerAdd, tickerKey, toTime, volumeBars,
  formatMean, lagText, maLine, MA_COLORS, MA_LINES, trendFacts,
} from "../../gateway/static/analytics_model.js";

const DAY = 86_400_000;
const T0 = 1_767_225_600_000; // 2026-01-01T00:00:00Z
const candle = (i, fields = {}) => ({
  t: T0 + i * DAY, open: 1000, high: 1200, low: 900, close: 1100, volume: 2100, count: 2, ...fields,
});
const sale = (at, fields = {}) => ({
  card_id: "card_1", grader: "PSA", grade: 10, price: 5000, at, source: "auction", ref: `a_${at}`,
  suspect: false, reason: null, ...fields,
});

test("segments: keys, labels, RAW without a grade; 10 and '10' are one grade", () => {
  assert.equal(segmentKey({ grader: "PSA", grade: 10 }), "PSA|10");
  assert.equal(segmentKey({ grader: "BGS", grade: "9.5" }), "BGS|9.5");
  assert.equal(segmentKey({ grader: "RAW", grade: null }), "RAW");
  assert.equal(segmentKey(null), "");
  assert.deepEqual(parseSegmentKey("BGS|9.5"), { grader: "BGS", grade: 9.5 });
  assert.deepEqual(parseSegmentKey("RAW"), { grader: "RAW", grade: null });
  assert.equal(parseSegmentKey("PSA|"), null);
  assert.equal(parseSegmentKey(""), null);
  assert.ok(sameSegment({ grader: "PSA", grade: 10 }, { grader: "PSA", grade: "10" }));
  assert.ok(!sameSegment({ grader: "PSA", grade: 10 }, { grader: "PSA", grade: 9 }));
  assert.ok(!sameSegment({}, {}));
  assert.equal(segmentLabel({ grader: "PSA", grade: 10 }), "PSA 10");
  assert.equal(segmentLabel({ grader: "RAW", grade: null }), "Raw");
});

test("the default segment is the one with the most sales; values in the catalog's order", () => {
  const values = [
    { grader: "RAW", grade: null, count: 3 }, { grader: "BGS", grade: 9.5, count: 7 },
    { grader: "PSA", grade: 9, count: 7 }, { grader: "PSA", grade: 10, count: 2 }, { grader: "XYZ", count: 50 },
  ];
  assert.deepEqual(sortValues(values).map(segmentKey), ["PSA|10", "PSA|9", "BGS|9.5", "RAW"]);
  assert.deepEqual(defaultSegment(values), { grader: "PSA", grade: 9 }); // a tie: PSA first
  assert.deepEqual(defaultSegment([{ grader: "RAW", grade: null, count: 1 }]), { grader: "RAW", grade: null });
  assert.equal(defaultSegment([{ grader: "PSA", grade: 10, count: 0 }]), null);
  assert.equal(defaultSegment(null), null);
});

test("a long value table shows its busiest grades first, always the one shown, in order", () => {
  const rows = [10, 9, 8, 7, 6].map((grade, i) => ({ grader: "PSA", grade, count: [1, 9, 5, 7, 0][i] }));
  assert.deepEqual(busiestRows(rows, 3).map((r) => r.grade), [9, 8, 7]);
  assert.deepEqual(busiestRows(rows, 3, "PSA|6").map((r) => r.grade), [9, 7, 6]);
  assert.deepEqual(busiestRows(rows, 3, "PSA|9").map((r) => r.grade), [9, 8, 7]);
  assert.equal(busiestRows(rows, 5), rows);
});

test("the history query: a RAW copy has no grade; cursor and limit only when given", () => {
  assert.equal(historyQuery({ grader: "PSA", grade: 10, interval: "1d" }), "grader=PSA&grade=10&interval=1d");
  assert.equal(historyQuery({ grader: "RAW", grade: null, interval: "1w", cursor: "x y", limit: 20 }),
    "grader=RAW&interval=1w&limit=20&cursor=x+y");
});

test("candles: ascending, one per period, malformed ones out; bars in seconds; volume coloured", () => {
  const candles = [candle(2), candle(0), { t: T0, open: null }, candle(1, { close: 800 }), candle(2, { close: 1500 })];
  assert.deepEqual(cleanCandles(candles).map((c) => c.t), [T0, T0 + DAY, T0 + 2 * DAY]);
  const bars0 = candleBars(candles);
  assert.deepEqual(bars0[0], { time: T0 / 1000, open: 1000, high: 1200, low: 900, close: 1100 });
  assert.equal(bars0[2].close, 1500); // the later candle of a period wins
  assert.equal(toTime(1_500), 1);
  const volume = volumeBars(candles);
  assert.deepEqual(volume.map((v) => v.value), [2100, 2100, 2100]);
  assert.match(volume[0].color, /61, 220, 151/); // up
  assert.match(volume[1].color, /255, 107, 107/); // down
  assert.equal(volumeBars([candle(0, { volume: undefined })])[0].value, 0);
});

test("a live candle replaces its period or is added in order", () => {
  const shown = [candle(0), candle(1)];
  const updated = mergeCandle(shown, candle(1, { close: 1300, count: 3 }));
  assert.deepEqual(updated.map((c) => [c.t, c.close, c.count]), [[T0, 1100, 2], [T0 + DAY, 1300, 3]]);
  assert.equal(shown[1].close, 1100); // not changed in place
  assert.equal(mergeCandle(shown, candle(5)).length, 3);
  assert.equal(mergeCandle(shown, { t: "x" }), shown);
});

test("a candle event is for the chart only at the same grader, grade and interval", () => {
  const shown = { grader: "PSA", grade: 10, interval: "1d" };
  assert.ok(candleIsFor({ grader: "PSA", grade: 10, interval: "1d" }, shown));
  assert.ok(!candleIsFor({ grader: "PSA", grade: 10, interval: "1w" }, shown));
  assert.ok(!candleIsFor({ grader: "PSA", grade: 9, interval: "1d" }, shown));
  assert.ok(candleIsFor({ grader: "RAW", interval: "1w" }, { grader: "RAW", grade: null, interval: "1w" }));
  assert.ok(!candleIsFor(null, shown));
});

test("sales: newest first, each once; a live sale prepends; the ticker keeps the newest", () => {
  const page = [sale(T0 + 3), sale(T0 + 1)];
  const live = sale(T0 + 5);
  assert.deepEqual(mergeSales([[live], page]).map((s) => s.at), [T0 + 5, T0 + 3, T0 + 1]);
  assert.deepEqual(mergeSales([page, [sale(T0 + 3), sale(T0)]]).map((s) => s.at), [T0 + 3, T0 + 1, T0]);
  assert.equal(mergeSales([[{ price: "1", at: 1 }]]).length, 0);
  // A history page's sale (no card, no grade) and the same sale pushed live are one sale.
  const external = { price: 700, at: T0, source: "external", suspect: false, reason: null, ref: null };
  const pushed = { ...external, card_id: "card_1", grader: "PSA", grade: 10, pos: 9 };
  assert.equal(saleKey(external), saleKey(pushed));
  assert.equal(mergeSales([[pushed], [external]]).length, 1);
  assert.equal(saleKey(sale(T0)), `auction:a_${T0}`);
  // The ticker tells cards apart.
  assert.notEqual(tickerKey(pushed), tickerKey({ ...pushed, card_id: "card_2" }));
  let ticker = [];
  for (let i = 0; i < 5; i += 1) ticker = tickerAdd(ticker, sale(T0 + i), 3);
  assert.deepEqual(ticker.map((s) => s.at), [T0 + 4, T0 + 3, T0 + 2]);
  assert.equal(tickerAdd(ticker, sale(T0 + 4), 3).length, 3); // a repeat is not added twice
});

test("flagged sales say why", () => {
  assert.match(reasonText("outlier"), /^Outlier/);
  assert.match(reasonText("linked"), /linked accounts/);
  assert.equal(reasonText("odd"), "Flagged (odd)");
  assert.equal(reasonText(null), "Flagged");
});

test("the index: its line in seconds, a live point merged, its method said honestly", () => {
  const points = [{ t: T0 + DAY, value: 104.2, pairs: 9 }, { t: T0, value: 100, pairs: 0 }, { t: 5, value: null }];
  assert.deepEqual(indexLine(points), [{ time: T0 / 1000, value: 100 }, { time: (T0 + DAY) / 1000, value: 104.2 }]);
  const merged = mergePoint(points.slice(0, 2), { t: T0 + DAY, value: 105, pairs: 10 });
  assert.deepEqual(merged.map((p) => p.value), [100, 105]);
  assert.equal(mergePoint(merged, { t: 1 }), merged);
  assert.match(methodLabel({ method: "repeat_sales", base: T0 }),
    /^Repeat-sales index \(Case–Shiller weighted\), 100 = .*2026/);
  assert.equal(methodLabel({ method: "median", base: null }), "Median index (too few repeat sales)");
  assert.equal(methodLabel({ method: "median", base: "2026-01" }), "Median index (too few repeat sales), 100 = 2026-01");
  assert.equal(methodLabel(null), "");
});

test("segments of the market in words; the comparable ones listed categories first", () => {
  const segments = [
    { segment: "set:Base Set", label: "Base Set", kind: "set" },
    { segment: "market", label: "All cards", kind: "market" },
    { segment: "category:pokemon", label: "Pokémon", kind: "category" },
    { segment: "category:baseball", label: "Baseball", kind: "category" },
  ];
  assert.equal(segmentName("market", segments), "All cards");
  assert.equal(segmentName("market"), "Whole market");
  assert.equal(segmentName("category:magic"), "Magic: The Gathering");
  assert.equal(segmentName("category:pokemon", [{ segment: "category:pokemon", label: "pokemon" }]), "Pokémon");
  assert.equal(segmentName("category:lego"), "lego");
  assert.equal(segmentName("set:Jungle"), "Jungle");
  assert.deepEqual(comparable(segments).map((s) => s.segment), ["category:baseball", "category:pokemon", "set:Base Set"]);
  assert.deepEqual(comparable(null), []);
});

test("changes, shares, numbers and money in words", () => {
  assert.deepEqual(formatChange(0.123), { text: "+12.3%", tone: "up" });
  assert.deepEqual(formatChange(-0.045), { text: "-4.5%", tone: "down" });
  assert.deepEqual(formatChange(0.0001), { text: "0.0%", tone: "flat" });
  assert.deepEqual(formatChange(null), { text: "—", tone: "none" });
  assert.deepEqual(formatChange(12.5), { text: "+1,250%", tone: "up" });
  assert.equal(formatShare(0.423), "42%");
  assert.equal(formatShare(0.001), "<1%");
  assert.equal(formatShare(0), "0%");
  assert.equal(formatShare(undefined), "—");
  assert.equal(formatNumber(2.345), "2.3");
  assert.equal(formatNumber(null), "—");
  assert.equal(formatMean({ mean: 2.345, median: 2 }), "2.3");
  assert.equal(formatMean(1.25, 2), "1.25");
  assert.equal(formatMean({ mean: null }), "—");
  assert.equal(lagText({ "prices.0": { seconds_behind: 1 } }), "");
  assert.match(lagText({ market: { seconds_behind: 42.4 }, behaviour: { seconds_behind: 3 } }), /42 s behind/);
  assert.equal(lagText(null), "");
  assert.equal(compactCents(123_456), "$1.2K");
  assert.equal(compactCents(12_345_600), "$123K");
  assert.equal(compactCents(250_000_000), "$2.5M");
  assert.equal(compactCents(5_050), "$50.50");
  assert.equal(compactCents(null), "—");
  assert.equal(axisCents(5049.6), "$50.50");
  assert.equal(axisCents(NaN), "");
  assert.equal(lastSale({ last_price: 5000, last_at: T0 }).price, "$50.00");
  assert.match(lastSale({ last_price: 5000, last_at: T0 }).date, /2026|2025/);
  assert.equal(lastSale({ last_price: 5000 }).date, "");
  assert.equal(lastSale({ last_price: null }), null);
});

test("maLine draws the candles that carry the average, in time order, in seconds", () => {
  const candles = [
    { t: 172800000, open: 1, high: 1, low: 1, close: 1, ma_7d: 150 },
    { t: 86400000, open: 1, high: 1, low: 1, close: 1, ma_7d: 100, ma_30d: 90 },
    { t: 259200000, open: 1, high: 1, low: 1, close: 1, ma_7d: null },
  ];
  assert.deepEqual(maLine(candles, "ma_7d"), [{ time: 86400, value: 100 }, { time: 172800, value: 150 }]);
  assert.deepEqual(maLine(candles, "ma_30d"), [{ time: 86400, value: 90 }]);
  assert.deepEqual(maLine(candles, "ma_90d"), []);
  for (const interval of ["1d", "1w"]) assert.equal(MA_LINES[interval].length, MA_COLORS.length);
});

test("trendFacts lists the value's changes and 30 days' trading with their change", () => {
  const facts = trendFacts({ change_7d: 0.1, change_30d: null, change_90d: -0.2, count_30d: 12,
    count_change_30d: 0.5, volume_30d: 1_234_500, volume_change_30d: -0.25 });
  assert.deepEqual(facts.map((f) => f.key), ["change_7d", "change_30d", "change_90d", "count_30d", "volume_30d"]);
  assert.equal(facts[0].change, 0.1);
  assert.equal(facts[1].change, null);
  assert.equal(facts[3].text, "12");
  assert.equal(facts[4].text, "$12K");
  assert.equal(facts[4].change, -0.25);
  assert.deepEqual(trendFacts(null), []);
  assert.equal(trendFacts({}).find((f) => f.key === "count_30d").text, "—");
});
