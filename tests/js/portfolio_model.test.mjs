// The portfolio's pure part (gateway/static/portfolio_model.js): `node --test tests/js/`.

import assert from "node:assert/strict";
import { test } from "node:test";

import {
  NO_VALUE, applyLive, confidenceMix, confidenceText, daysText, historyLines, liquidityFacts, mixText,
  pnlText, pnlTone, rangeText, riskReasonText, riskRows, shareRows, sortHoldings, todayChange, twrText,
  valueText, warningText,
} from "../../gateway/static/portfolio_model.js";

const DAY = 86_400_000;
const value = (point, confidence = "high", extra = {}) =>
  ({ point, low: point - 500, high: point + 500, confidence, method: "comps", n: 3, last_sale_at: 0, ...extra });
const holding = (id, v, basis = 1000, days = 30) =>
  ({ asset_id: id, card_id: `card_${id}`, grader: "PSA", grade: 10, position: `card_${id}|PSA|10`, value: v,
    cost_basis: basis, basis_how: "purchase", pnl: v && Number.isInteger(basis) ? v.point - basis : null, days_to_sell: days });

test("a value: money, or 'no value yet' (never $0.00); its range and confidence in words", () => {
  assert.equal(valueText(value(5000)), "$50.00");
  assert.equal(valueText(null), NO_VALUE);
  assert.equal(valueText({ point: null }), NO_VALUE);
  assert.notEqual(valueText(null), "$0.00");
  assert.equal(rangeText(4500, 5500), "$45.00–$55.00");
  assert.equal(rangeText(null, 5500), "");
  assert.equal(confidenceText(value(5000)), "High confidence · 3 sales");
  assert.equal(confidenceText(value(5000, "low", { n: 1 })), "Low confidence · 1 sale");
  assert.equal(confidenceText(value(5000, "medium", { method: "derived" })), "Medium confidence · derived from other grades");
  assert.equal(confidenceText(null), "");
});

test("confidence mix: shares of the valued total, high first; the unvalued left out", () => {
  const mix = confidenceMix([holding("a", value(6000, "high")), holding("b", value(2000, "low")),
    holding("c", value(2000, "high")), holding("d", null)]);
  assert.deepEqual(mix, [{ confidence: "high", share: 0.8 }, { confidence: "low", share: 0.2 }]);
  assert.equal(mixText(mix), "80% high · 20% low confidence");
  assert.deepEqual(confidenceMix([holding("d", null)]), []);
  assert.equal(mixText([]), "");
});

test("today's change takes today's flows out: a purchase is not a gain", () => {
  const today = 10 * DAY;
  const points = [{ t: 9 * DAY, value: 10_000 }, { t: 10 * DAY, value: 15_000, inflow: 5_000, outflow: 0 }];
  // Bought a $50 card today and nothing moved: no change.
  assert.deepEqual(todayChange(points, 15_000, today), { cents: 0, fraction: 0 });
  // A comparable sold higher: the live total is $56 more than bought.
  const up = todayChange(points, 15_600, today);
  assert.equal(up.cents, 600);
  assert.ok(Math.abs(up.fraction - 600 / 15_000) < 1e-12);
  // A sale today: its proceeds went out (outflow), the change is what the cards did.
  const sold = todayChange([{ t: 9 * DAY, value: 10_000 }, { t: 10 * DAY, value: 4_000, outflow: 6_500 }], 4_000, today);
  assert.equal(sold.cents, 500);
  // No snapshot today yet: against the last day's value.
  assert.equal(todayChange([{ t: 9 * DAY, value: 10_000 }], 10_300, today).cents, 300);
  // Nothing before today (the first day), or nothing invested before: no fraction.
  assert.equal(todayChange([{ t: 10 * DAY, value: 5_000, inflow: 5_000 }], 5_000, today), null);
  assert.deepEqual(todayChange([{ t: 9 * DAY, value: 0 }, { t: 10 * DAY, value: 0 }], 0, today), { cents: 0, fraction: null });
  assert.equal(todayChange([], 100, today), null);
});

test("history lines: seconds, the band, and the P/L since the first day with flows taken out", () => {
  const lines = historyLines([
    { t: 2 * DAY, value: 6_000, low: 5_000, high: 7_000, inflow: 0, outflow: 0 },
    { t: DAY, value: 0, low: 0, high: 0, inflow: 0, outflow: 0 },
    { t: 3 * DAY, value: 12_500, low: 11_000, high: 14_000, inflow: 6_000, outflow: 0 },
    { t: 4 * DAY, value: 5_000, inflow: 0, outflow: 8_000 },
    { bad: true },
  ]);
  assert.deepEqual(lines.value.map((p) => p.time), [DAY / 1000, 2 * DAY / 1000, 3 * DAY / 1000, 4 * DAY / 1000]);
  assert.deepEqual(lines.low.map((p) => p.value), [0, 5_000, 11_000]); // the last day has no range
  // Day 2: +6000 with no flow (a card minted or valued); day 3: +6500 of which 6000 paid in;
  // day 4: -7500 with 8000 taken out (a sale above value).
  assert.deepEqual(lines.pnl.map((p) => p.value), [0, 6_000, 6_500, 7_000]);
  assert.deepEqual(historyLines(null), { value: [], low: [], high: [], pnl: [] });
});

test("sorting holdings: by value, P/L, confidence, days; the unknown last both ways", () => {
  const list = [holding("a", value(5000, "low"), 1000, 400), holding("b", null, 1000, 730),
    holding("c", value(9000, "medium"), null, 10), holding("d", value(7000, "high"), 8000, 60)];
  const ids = (key, dir) => sortHoldings(list, key, dir).map((x) => x.asset_id);
  assert.deepEqual(ids("value", "desc"), ["c", "d", "a", "b"]);
  assert.deepEqual(ids("value", "asc"), ["a", "d", "c", "b"]);
  assert.deepEqual(ids("pnl", "desc"), ["a", "d", "b", "c"]);
  assert.deepEqual(ids("pnl", "asc"), ["d", "a", "b", "c"]);
  assert.deepEqual(ids("confidence", "desc"), ["d", "c", "a", "b"]);
  assert.deepEqual(ids("days", "asc"), ["c", "d", "a", "b"]);
  assert.deepEqual(ids("nonsense"), ids("value", "desc"));
  assert.deepEqual(list.map((x) => x.asset_id), ["a", "b", "c", "d"]); // not sorted in place
  assert.deepEqual(sortHoldings(null), []);
});

test("a live event: new totals, the changed holdings' values and P/L; the rest kept", () => {
  const before = { holdings: [holding("a", value(5000)), holding("b", null, 2000)],
    totals: { value: 5000, low: 4500, high: 5500, unrealised_pnl: 4000, realised_pnl: 0 }, risk: { shown: false } };
  const event = { op: "event", channel: "me", type: "portfolio",
    total: { value: 12_600, low: 11_000, high: 14_000, unrealised_pnl: 9_600 },
    changed: [{ asset_id: "b", value: value(7_600, "low") }, { asset_id: "zzz", value: null }] };
  const { portfolio, changed } = applyLive(before, event);
  assert.deepEqual(changed, ["b"]);
  assert.equal(portfolio.totals.value, 12_600);
  assert.equal(portfolio.totals.realised_pnl, 0);
  assert.equal(portfolio.holdings[1].value.point, 7_600);
  assert.equal(portfolio.holdings[1].pnl, 5_600);
  assert.equal(portfolio.holdings[0], before.holdings[0]);
  assert.equal(portfolio.risk, before.risk);
  assert.equal(before.holdings[1].value, null); // not changed in place
  // A value gone: no P/L (never a made-up one).
  const gone = applyLive(before, { type: "portfolio", changed: [{ asset_id: "a", value: null }] });
  assert.equal(gone.portfolio.holdings[0].pnl, null);
  assert.equal(gone.portfolio.totals, before.totals);
  assert.equal(applyLive(before, { type: "payment" }).portfolio, before);
  assert.equal(applyLive(null, event).portfolio, null);
});

test("shares, warnings, liquidity, risk in plain words", () => {
  const rows = shareRows({ pokemon: 0.25, unknown: 0.1, baseball: 0.65 }, (l) => l.toUpperCase());
  assert.deepEqual(rows.map((r) => [r.key, r.label]), [["baseball", "BASEBALL"], ["pokemon", "POKEMON"], ["unknown", "Not known"]]);
  assert.equal(rows[0].fraction, 1);
  assert.deepEqual(shareRows(null), []);
  const names = { card_1: "Charizard" };
  assert.equal(warningText({ by: "card", label: "card_1", share: 0.62 }, (id) => names[id]),
    "Charizard is 62% of your collection's value — more than 25%");
  assert.equal(warningText({ by: "set", label: "Base Set", share: 0.4 }), "Base Set (set) is 40% of your collection's value — more than 25%");
  assert.equal(warningText({ by: "set", label: "Base Set", share: 0.4 }, undefined, 0.3, "the collection's"),
    "Base Set (set) is 40% of the collection's value — more than 30%");
  assert.deepEqual(liquidityFacts({ share_over_days: 90, share_over: 0.3, mean_days: 45.4 }),
    { over: "30%", overLabel: "Would take over 90 days to sell", mean: "about 45 days" });
  assert.equal(liquidityFacts(null).mean, "—");
  assert.equal(daysText(730), "2 years or more");
  assert.equal(daysText(0.5), "under a day");
  assert.equal(daysText(1), "about 1 day");
  assert.deepEqual(riskRows({ shown: false, reason: "fewer than 30 days of history" }), []);
  assert.equal(riskReasonText("fewer than 30 days of history"),
    "Risk figures are not shown yet: fewer than 30 days of history. Until then they would mislead more than inform.");
  assert.match(riskReasonText(undefined), /not enough history yet/);
  const risk = riskRows({ shown: true, volatility: 0.314, var_95_1d: 0.021, cvar_95_1d: 0.03, var_95_10d: 0.07,
    cvar_95_10d: 0.09, max_drawdown: -0.125, drawdown_peak: Date.UTC(2026, 0, 5), drawdown_trough: Date.UTC(2026, 1, 1),
    drawdown_recovered: null, beta: 0.8, sharpe: null });
  const by = Object.fromEntries(risk.map((r) => [r.key, r]));
  assert.equal(by.volatility.text, "31.4%");
  assert.equal(by["var-1d"].text, "2.1% loss");
  assert.equal(by.drawdown.text, "12.5% fall");
  assert.equal(by.drawdown.note, "from Jan 5, 2026 to Feb 1, 2026; not yet recovered");
  assert.equal(by.beta.text, "0.80");
  assert.equal(by.sharpe.text, "—");
  assert.equal(pnlText(1200), "+$12.00");
  assert.equal(pnlText(-300), "-$3.00");
  assert.equal(pnlText(null), "—");
  assert.deepEqual([pnlTone(1), pnlTone(-1), pnlTone(0), pnlTone(null)], ["up", "down", "flat", "none"]);
  assert.equal(twrText(0.042), "+4.2%");
  assert.equal(twrText(-0.1), "-10.0%");
  assert.equal(twrText(null), "—");
});
