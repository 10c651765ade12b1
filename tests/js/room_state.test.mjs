// The auction room's reducer (gateway/static/room_state.js): run with `node --test tests/js/`.

import assert from "node:assert/strict";
import { describe, test } from "node:test";

import {
  EXTENDED_SHOWN_MS, absorbLog, applyEvent, createRoomState, receive, receiveView, showsExtended,
  visibleHistory,
} from "../../gateway/static/room_state.js";

const NOW = 1_700_000_000_000;
const ALICE = "u-alice-000001";
const BOB = "u-bob-000002";

function english(overrides = {}) {
  return {
    auction_id: "a1", asset_id: "c1", title: "Charizard", seller_id: "u-seller", type: "english",
    status: "live", price: null, leader_id: null, bid_count: 0, reserve_met: null,
    starts_at: NOW - 60_000, ends_at: NOW + 60_000, winner_id: null, final_price: null, seq: 1,
    start_price: 1000, min_bid: 1000, buy_now_price: 5000, soft_close_ms: 10_000, ...overrides,
  };
}

function dutch(overrides = {}) {
  return english({
    type: "dutch", price: 9000, min_bid: 9000, buy_now_price: null, start_price: 10_000,
    floor_price: 5000, step: 500, step_ms: 2000, next_drop_at: NOW + 1500, ...overrides,
  });
}

function sealed(overrides = {}) {
  return english({ type: "sealed", buy_now_price: null, ...overrides });
}

const ev = (seq, type, fields = {}) => ({ op: "event", auction_id: "a1", seq, type, at: NOW, ...fields });

function bid(seq, fields = {}) {
  return ev(seq, "bid", { bidder_id: ALICE, amount: 1000, price: 1000, leader_id: ALICE,
    bid_count: 1, min_bid: 1050, ...fields });
}

/** Feed messages in order; returns the last result. */
function feed(state, ...messages) {
  let result = { state };
  for (const message of messages) result = receive(result.state, message, NOW);
  return result;
}

describe("snapshot then events", () => {
  test("a snapshot replaces the view and events after it apply in seq order", () => {
    const start = createRoomState(english({ seq: 1 }));
    const snap = receive(start, { op: "snapshot", auction_id: "a1", seq: 3,
      auction: english({ seq: 3, price: 1000, leader_id: ALICE, bid_count: 1, min_bid: 1050 }) }, NOW);
    assert.equal(snap.state.lastSeq, 3);
    assert.equal(snap.state.view.price, 1000);
    assert.equal(snap.fetchFrom, 1, "the history between our seq and the snapshot is fetched");
    assert.equal(snap.changed, true);

    const r1 = receive(snap.state, bid(4, { bidder_id: BOB, amount: 1050, price: 1050,
      leader_id: BOB, bid_count: 2, min_bid: 1100 }), NOW);
    const r2 = receive(r1.state, ev(5, "extended", { ends_at: NOW + 70_000 }), NOW);
    assert.equal(r2.state.lastSeq, 5);
    assert.equal(r2.state.view.seq, 5);
    assert.equal(r2.state.view.price, 1050);
    assert.equal(r2.state.view.leader_id, BOB);
    assert.equal(r2.state.view.ends_at, NOW + 70_000);
    assert.deepEqual(visibleHistory(r2.state).map((e) => e.seq), [5, 4]);
    assert.equal(r2.fetchFrom, null);
  });

  test("a snapshot older than what we applied is ignored", () => {
    const state = feed(createRoomState(english({ seq: 1 })), bid(2)).state;
    const old = receive(state, { op: "snapshot", seq: 1, auction: english({ seq: 1 }) }, NOW);
    assert.equal(old.state, state);
    assert.equal(old.changed, false);
    assert.equal(old.state.view.price, 1000);
  });

  test("a snapshot keeps the title when it has none", () => {
    const state = createRoomState(english());
    const { title: _title, ...untitled } = english({ seq: 2, status: "closed" });
    const next = receive(state, { op: "snapshot", seq: 2, auction: untitled }, NOW).state;
    assert.equal(next.view.title, "Charizard");
    assert.equal(next.view.status, "closed");
  });

  test("the input state is never modified", () => {
    const state = createRoomState(english());
    const frozenView = JSON.stringify(state.view);
    receive(state, bid(2), NOW);
    receive(state, { op: "snapshot", seq: 9, auction: english({ seq: 9, price: 7 }) }, NOW);
    assert.equal(JSON.stringify(state.view), frozenView);
    assert.equal(state.lastSeq, 1);
    assert.equal(state.history.size, 0);
  });
});

describe("duplicates, old events and gaps", () => {
  test("a duplicate or older seq changes nothing", () => {
    const state = feed(createRoomState(english()), bid(2)).state;
    for (const seq of [2, 1, 0]) {
      const again = receive(state, bid(seq, { price: 99_999, leader_id: BOB, bid_count: 9 }), NOW);
      assert.equal(again.state, state, `seq ${seq}`);
      assert.equal(again.changed, false);
    }
    assert.equal(state.view.price, 1000);
    assert.equal(state.view.bid_count, 1);
  });

  test("an event past lastSeq + 1 is held and asks for the log after lastSeq", () => {
    const state = createRoomState(english({ seq: 1 }));
    const third = bid(3, { bidder_id: BOB, amount: 1050, price: 1050, leader_id: BOB,
      bid_count: 2, min_bid: 1100 });
    const gap = receive(state, third, NOW);
    assert.equal(gap.fetchFrom, 1);
    assert.equal(gap.changed, false);
    assert.equal(gap.state.lastSeq, 1, "not applied over the hole");
    assert.equal(gap.state.view.price, null);
    assert.deepEqual(visibleHistory(gap.state), [], "a held event is not shown yet");

    // The same event again while waiting: nothing new to do.
    const dup = receive(gap.state, third, NOW);
    assert.equal(dup.fetchFrom, null);

    // The log fills the hole: both apply, in order.
    const filled = absorbLog(gap.state, [
      { seq: 2, type: "bid", at: NOW, bidder_id: ALICE, amount: 1000, price: 1000,
        leader_id: ALICE, bid_count: 1, min_bid: 1050 },
      { seq: 3, type: "bid", at: NOW, bidder_id: BOB, amount: 1050, price: 1050,
        leader_id: BOB, bid_count: 2, min_bid: 1100 },
    ]);
    assert.equal(filled.state.lastSeq, 3);
    assert.equal(filled.state.view.leader_id, BOB);
    assert.equal(filled.state.view.min_bid, 1100);
    assert.deepEqual(visibleHistory(filled.state).map((e) => e.seq), [3, 2]);
  });

  test("the next event in order also applies events held after it", () => {
    const held = receive(createRoomState(english({ seq: 1 })),
      ev(3, "extended", { ends_at: NOW + 90_000 }), NOW).state;
    const next = receive(held, bid(2), NOW);
    assert.equal(next.state.lastSeq, 3);
    assert.equal(next.state.view.ends_at, NOW + 90_000);
    assert.equal(next.state.view.price, 1000);
  });

  test("the REST log: events up to the view's seq are history only", () => {
    const state = createRoomState(english({ seq: 2, price: 1000, leader_id: ALICE, bid_count: 1,
      min_bid: 1050 }));
    const log = absorbLog(state, [
      { seq: 1, type: "started", at: NOW },
      { seq: 2, type: "bid", at: NOW, bidder_id: ALICE, amount: 1000, price: 1000,
        leader_id: ALICE, bid_count: 1, min_bid: 1050 },
    ]);
    assert.equal(log.state.lastSeq, 2);
    assert.equal(log.state.view.status, "live");
    assert.equal(log.refresh, false, "a replayed `started` below our seq does not apply");
    assert.deepEqual(visibleHistory(log.state).map((e) => e.type), ["bid", "started"]);
  });
});

describe("event types", () => {
  test("bid: price, leader, bid_count and the server's min_bid", () => {
    const { state, refresh } = feed(createRoomState(english()),
      bid(2, { bidder_id: BOB, amount: 1500, price: 1050, leader_id: BOB, bid_count: 2,
        min_bid: 1337 }));
    assert.equal(state.view.price, 1050);
    assert.equal(state.view.leader_id, BOB);
    assert.equal(state.view.bid_count, 2);
    assert.equal(state.view.min_bid, 1337, "taken as given, never recomputed");
    assert.equal(state.view.buy_now_price, null, "buy now goes away with the first bid");
    assert.equal(refresh, false);
  });

  test("bid without min_bid (an older log): keeps the previous one and asks for the view", () => {
    const { min_bid: _minBid, ...oldBid } = bid(2, { price: 1000 });
    const result = feed(createRoomState(english({ min_bid: 1000 })), oldBid);
    assert.equal(result.state.view.min_bid, 1000);
    assert.equal(result.state.view.price, 1000);
    assert.equal(result.refresh, true);
  });

  test("a buy-now bid: min_bid null, then closed", () => {
    const { state } = feed(createRoomState(english()),
      bid(2, { amount: 5000, price: 5000, min_bid: null }),
      ev(3, "closed", { reason: "buy_now", winner_id: ALICE, final_price: 5000, price: 5000,
        leader_id: ALICE, ends_at: NOW }));
    assert.equal(state.view.min_bid, null);
    assert.equal(state.view.status, "closed");
    assert.equal(state.view.winner_id, ALICE);
    assert.equal(state.view.final_price, 5000);
    assert.equal(state.view.ends_at, NOW);
  });

  test("bid with an unknown reserve state asks for the view", () => {
    const result = feed(createRoomState(english({ reserve_met: false })), bid(2));
    assert.equal(result.refresh, true);
  });

  test("raised changes nothing public but seq", () => {
    const before = feed(createRoomState(english()), bid(2)).state;
    const after = receive(before, ev(3, "raised"), NOW);
    const { seq: seqBefore, ...restBefore } = before.view;
    const { seq: seqAfter, ...restAfter } = after.state.view;
    assert.deepEqual(restAfter, restBefore);
    assert.equal(seqBefore, 2);
    assert.equal(seqAfter, 3);
    assert.equal(after.state.lastSeq, 3);
    assert.deepEqual(visibleHistory(after.state).map((e) => e.type), ["bid"], "not shown");
  });

  test("extended moves ends_at and is shown for a few seconds when live", () => {
    const view = english({ ends_at: NOW + 5_000 });
    const result = receive(createRoomState(view), ev(2, "extended", { ends_at: NOW + 15_000 }), NOW);
    assert.equal(result.state.view.ends_at, NOW + 15_000);
    assert.deepEqual(result.state.extended, { until: NOW + EXTENDED_SHOWN_MS, by: 10_000 });
    assert.equal(showsExtended(result.state, NOW + 1_000), true);
    assert.equal(showsExtended(result.state, NOW + EXTENDED_SHOWN_MS), false);
    // From the log (not live): moved, but not announced.
    const logged = absorbLog(createRoomState(view), [{ seq: 2, type: "extended", at: NOW,
      ends_at: NOW + 15_000 }]);
    assert.equal(logged.state.view.ends_at, NOW + 15_000);
    assert.equal(logged.state.extended, null);
  });

  test("closed sets the winner, final price and status", () => {
    const { state, refresh } = feed(createRoomState(english()), bid(2),
      ev(3, "closed", { reason: "time", winner_id: ALICE, final_price: 1000, price: 1000,
        leader_id: ALICE, ends_at: NOW + 60_000 }));
    assert.equal(refresh, true, "the final view (reserve_met) is fetched once");
    assert.equal(state.view.status, "closed");
    assert.equal(state.view.winner_id, ALICE);
    assert.equal(state.view.final_price, 1000);
    assert.equal(state.view.min_bid, null);
  });

  test("closed without a sale", () => {
    const { state } = feed(createRoomState(english()),
      ev(2, "closed", { reason: "time", winner_id: null, final_price: null, price: null,
        leader_id: null, ends_at: NOW }));
    assert.equal(state.view.status, "closed");
    assert.equal(state.view.winner_id, null);
    assert.equal(state.view.final_price, null);
  });

  test("cancelled", () => {
    const { state } = feed(createRoomState(english()), ev(2, "cancelled"));
    assert.equal(state.view.status, "cancelled");
    assert.equal(state.view.min_bid, null);
    assert.equal(state.lastSeq, 2);
  });

  test("started: live, and the server is asked for the opening view", () => {
    const result = feed(createRoomState(dutch({ status: "scheduled", next_drop_at: null })),
      ev(2, "started"));
    assert.equal(result.state.view.status, "live");
    assert.equal(result.refresh, true);
  });

  test("sealed bids: null fields keep price and leader hidden", () => {
    const sealedBid = ev(2, "bid", { bidder_id: null, amount: null, price: null, leader_id: null,
      bid_count: 1 });
    const { state, refresh } = feed(createRoomState(sealed()), sealedBid,
      ev(3, "raised"), ev(4, "bid", { bidder_id: null, amount: null, price: null,
        leader_id: null, bid_count: 2 }));
    assert.equal(state.view.bid_count, 2);
    assert.equal(state.view.price, null);
    assert.equal(state.view.leader_id, null);
    assert.equal(state.view.min_bid, 1000, "a sealed minimum stays the start price");
    assert.equal(refresh, false);
    const closed = receive(state, ev(5, "closed", { reason: "time", winner_id: BOB,
      final_price: 1200, price: 1200, leader_id: BOB, ends_at: NOW }), NOW).state;
    assert.equal(closed.view.price, 1200);
    assert.equal(closed.view.leader_id, BOB);
    assert.equal(closed.view.winner_id, BOB);
  });

  test("applyEvent falls back to counting when bid_count is missing", () => {
    const { view } = applyEvent(english({ bid_count: 4 }), { seq: 2, type: "bid", price: 1,
      leader_id: ALICE });
    assert.equal(view.bid_count, 5);
  });
});

describe("Dutch: the price is the server's", () => {
  test("a fresh view of the same seq brings the new price and next drop", () => {
    const state = createRoomState(dutch());
    const fresh = receiveView(state, dutch({ price: 8500, min_bid: 8500, next_drop_at: NOW + 3500 }));
    assert.equal(fresh.changed, true);
    assert.equal(fresh.state.view.price, 8500);
    assert.equal(fresh.state.view.min_bid, 8500);
    assert.equal(fresh.state.view.next_drop_at, NOW + 3500);
  });

  test("a view behind ours is ignored; one ahead asks for the log", () => {
    const state = feed(createRoomState(dutch({ seq: 2 })), ev(3, "raised")).state;
    const stale = receiveView(state, dutch({ seq: 2, price: 1 }));
    assert.equal(stale.state, state);
    assert.equal(stale.changed, false);
    const ahead = receiveView(state, dutch({ seq: 5, price: 1 }));
    assert.equal(ahead.behind, true);
    assert.equal(ahead.fetchFrom, 3);
    assert.equal(ahead.state.view.price, 9000);
  });

  test("the winning bid closes it and clears the next drop", () => {
    const { min_bid: _minBid, ...winning } = bid(2, { amount: 9000, price: 9000 });
    const { state } = feed(createRoomState(dutch()), winning,
      ev(3, "closed", { reason: "bid", winner_id: ALICE, final_price: 9000, price: 9000,
        leader_id: ALICE, ends_at: NOW }));
    assert.equal(state.view.status, "closed");
    assert.equal(state.view.price, 9000);
    assert.equal(state.view.next_drop_at, null);
    assert.equal(state.view.min_bid, null);
  });
});

describe("acks", () => {
  test("an ack past our seq says we are behind; it changes nothing itself", () => {
    const state = createRoomState(english({ seq: 1 }));
    const ahead = receive(state, { op: "ack", req_id: "bid-1", auction_id: "a1", seq: 3,
      price: 1050, leader_id: BOB, ends_at: NOW, bid_count: 2 }, NOW);
    assert.equal(ahead.behind, true);
    assert.equal(ahead.state, state);
    assert.equal(ahead.state.view.price, null);
    const caughtUp = receive(feed(state, bid(2)).state, { op: "ack", seq: 2 }, NOW);
    assert.equal(caughtUp.behind, false);
  });
});
