// A user's bidding behaviour as bars (gateway/static/activity_model.js): `node --test tests/js/`.

import assert from "node:assert/strict";
import { test } from "node:test";

import { TIMING_LABEL, activityIsEmpty, bars, hourBars, watchedText } from "../../gateway/static/activity_model.js";

test("behaviour: bars relative to the largest; 24 hours; an empty history", () => {
  assert.deepEqual(bars([{ label: "last 10 s", count: 4 }, { label: "earlier", count: 2 }, { label: "x", count: -1 }]),
    [{ label: "last 10 s", count: 4, fraction: 1 }, { label: "earlier", count: 2, fraction: 0.5 },
      { label: "x", count: 0, fraction: 0 }]);
  assert.deepEqual(bars([{ label: "a", count: 0 }]), [{ label: "a", count: 0, fraction: 0 }]);
  // The server's histogram is a map of its buckets, in order; its labels said in words.
  const timing = bars({ ">24h": 1, "24h-1h": 0, "1h-10m": 0, "10m-1m": 2, "<1m": 4 }, TIMING_LABEL);
  assert.deepEqual(timing.map((b) => b.count), [1, 0, 0, 2, 4]);
  assert.equal(timing[4].label, "Last minute");
  assert.equal(timing[4].fraction, 1);
  assert.deepEqual(bars(null), []);
  const hours = hourBars(Array.from({ length: 24 }, (_, i) => (i === 21 ? 8 : i === 9 ? 2 : 0)));
  assert.equal(hours.length, 24);
  assert.equal(hours[9].label, "09");
  assert.equal(hours[21].fraction, 1);
  assert.equal(hours[9].fraction, 0.25);
  assert.equal(hourBars(null).every((b) => b.count === 0), true);
  assert.ok(activityIsEmpty({ bids: 0, auctions_bid: 0, auctions_watched: 0 }));
  assert.ok(activityIsEmpty(null));
  assert.ok(!activityIsEmpty({ bids: 0, auctions_watched: 2 }));
  assert.ok(!activityIsEmpty({ bids: 3 }));
});

test("watchedText says how many watched auctions were bid on", () => {
  assert.equal(watchedText({ auctions_watched: 4, watched_and_bid: 1, watched_bid_share: 0.25 }),
    "auctions watched; you bid on 1 of them (25%)");
  assert.match(watchedText({ auctions_watched: 0 }), /followed live/);
  assert.match(watchedText(null), /followed live/);
});
