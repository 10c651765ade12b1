// The "me" channel's notices (gateway/static/notices.js): `node --test tests/js/`.

import assert from "node:assert/strict";
import { test } from "node:test";

import {
  MAX_NOTICES, createNotices, describeNotice, markRead, noticeText, receiveNotice,
} from "../../gateway/static/notices.js";

const AT = 1_700_000_000_000;
const ev = (seq, type, fields = {}) => ({ op: "event", channel: "me", seq, type, at: AT, ...fields });

function feed(state, ...messages) {
  let result = { state, fresh: [] };
  const fresh = [];
  for (const message of messages) {
    result = receiveNotice(result.state, message);
    fresh.push(...result.fresh);
  }
  return { state: result.state, fresh };
}

test("the first ack says where the feed starts; later events are new, in order", () => {
  const { state, fresh } = feed(createNotices(), { op: "ack", channel: "me", seq: 7 },
    ev(8, "outbid", { auction_id: "a_1", title: "Charizard", amount: 1050 }),
    ev(9, "payment", { entry_id: "e1", cause: "deposit", ref: null, amount: 100_000, balance: 100_000 }));
  assert.equal(state.lastSeq, 9);
  assert.deepEqual(fresh.map((e) => e.seq), [8, 9]);
  assert.deepEqual(state.items.map((e) => e.seq), [9, 8], "newest first");
  assert.equal(state.unread, 2);
  assert.equal(state.items[0].op, undefined, "stored as events, without the envelope");
  assert.equal(state.items[0].channel, undefined);
});

test("a resumed subscription: replays are taken once; the ack does not move lastSeq", () => {
  let { state } = feed(createNotices(), { op: "ack", channel: "me", seq: 3 }, ev(4, "lost", { title: "x" }));
  const resumed = feed(state, ev(4, "lost", { title: "x" }), ev(5, "won", { title: "y" }),
    { op: "ack", channel: "me", seq: 9 }, ev(5, "won"), ev(3, "won"));
  state = resumed.state;
  assert.deepEqual(resumed.fresh.map((e) => e.seq), [5]);
  assert.equal(state.lastSeq, 5);
  assert.equal(state.items.length, 2);
});

test("other messages are ignored", () => {
  const start = createNotices();
  for (const message of [null, { op: "event", seq: 1, type: "won" }, { op: "event", channel: "me", type: "won" },
    { op: "event", channel: "me", seq: 1 }, { op: "snapshot", channel: "me", seq: 1 }, { op: "error", channel: "me" }]) {
    const result = receiveNotice(start, message);
    assert.equal(result.state, start);
    assert.deepEqual(result.fresh, []);
  }
});

test("only the latest notices are kept; reading clears the count", () => {
  const messages = Array.from({ length: MAX_NOTICES + 15 }, (_, i) => ev(i + 1, "outbid", { amount: i }));
  let { state } = feed(createNotices(), ...messages);
  assert.equal(state.items.length, MAX_NOTICES);
  assert.equal(state.items[0].seq, MAX_NOTICES + 15);
  assert.equal(state.unread, MAX_NOTICES);
  state = markRead(state);
  assert.equal(state.unread, 0);
  assert.equal(markRead(state), state);
});

test("notices read as sentences with links", () => {
  const outbid = describeNotice({ type: "outbid", auction_id: "a_1", title: "Charizard", amount: 1050 });
  assert.equal(outbid.href, "#/auction/a_1");
  assert.equal(outbid.tone, "bad");
  assert.deepEqual(outbid.parts[1], { text: "Charizard", href: "#/auction/a_1" });
  assert.equal(noticeText({ type: "outbid", auction_id: "a_1", title: "Charizard", amount: 1050 }),
    "You were outbid on Charizard: the price is now $10.50.");
  assert.equal(noticeText({ type: "won", auction_id: "a_1", title: "Mew", price: 10_000, premium: 500, total: 10_500 }),
    "You won Mew for $100.00 + $5.00 buyer's premium = $105.00.");
  assert.equal(noticeText({ type: "won", auction_id: "a_1", title: "Mew", price: 10_000, premium: 0, total: 10_000 }),
    "You won Mew for $100.00.");
  assert.equal(noticeText({ type: "lost", auction_id: "a_1", title: "Mew", price: 10_000 }),
    "You didn't win Mew: it sold for $100.00.");
  assert.equal(noticeText({ type: "sold", auction_id: "a_1", title: "Mew", price: 10_000, seller_fee: 500, net: 9_500 }),
    "You sold Mew for $100.00. After the $5.00 seller fee you receive $95.00.");
  assert.equal(noticeText({ type: "payment", cause: "deposit", amount: 100_000, balance: 150_000 }),
    "Deposit of $1,000.00 received. Balance: $1,500.00.");
  assert.equal(noticeText({ type: "payment", cause: "withdrawal", amount: -2_500, balance: 0 }),
    "Withdrawal of $25.00 sent. Balance: $0.00.");
  const paid = describeNotice({ type: "payment", cause: "settlement", ref: "a_9f", amount: -10_500, balance: 0 });
  assert.equal(paid.href, "#/wallet");
  assert.ok(paid.parts.some((p) => p.href === "#/auction/a_9f"), "a settlement links its auction");
  assert.match(noticeText({ type: "payment", cause: "settlement", ref: "a_9f", amount: 9_500, balance: 9_500 }),
    /^You were paid \$95\.00 for a sale/);
  assert.match(noticeText({ type: "payment_failed", auction_id: "a_1", title: "Mew", price: 10_000,
    required: 10_500, buyer_id: "u_1" }),
    /Payment failed for Mew: the winner could not pay \$105\.00 \(\$100\.00 \+ premium\)/);
  const chance = describeNotice({ type: "second_chance", auction_id: "a_1", title: "Mew", price: 9_000 });
  assert.equal(chance.href, "#/auction/a_1");
  assert.match(noticeText({ type: "second_chance", auction_id: "a_1", title: "Mew", price: 9_000 }),
    /your last bid, \$90\.00\.$/);
});

test("transfers link the token (and the auction); unknown types still read", () => {
  const incoming = describeNotice({ type: "transfer_in", asset_id: "c_1", token_id: "1234567890123456789",
    reason: "auction", ref: "a_77" });
  assert.equal(incoming.href, "#/token/1234567890123456789");
  assert.ok(incoming.parts.some((p) => p.href === "#/auction/a_77"));
  assert.match(noticeText({ type: "transfer_out", token_id: "42", reason: "offer" }), /left your collection .* by an offer\.$/);
  assert.equal(noticeText({ type: "future_thing" }), "Notice: future_thing.");
  assert.equal(noticeText({ type: "outbid", amount: 5 }), "You were outbid on an auction: the price is now $0.05.");
});

test("an ack below what we saw (the server's feed was reset) restarts the numbering", () => {
  let { state } = feed(createNotices(), { op: "ack", channel: "me", seq: 10 }, ev(11, "won"));
  ({ state } = feed(state, { op: "ack", channel: "me", seq: 2 }));
  assert.equal(state.lastSeq, 2);
  const next = feed(state, ev(3, "lost"));
  assert.deepEqual(next.fresh.map((e) => e.seq), [3]);
  assert.equal(next.state.items.length, 2);
});
