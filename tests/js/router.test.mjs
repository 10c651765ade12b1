// Hash routing (gateway/static/router.js) and wording (format.js): `node --test tests/js/`.

import assert from "node:assert/strict";
import { test } from "node:test";

import { TYPE_LABEL, duration, priceLine, secondsToDrop } from "../../gateway/static/format.js";
import { href, matchRoute, parseHash } from "../../gateway/static/router.js";

const TABLE = [
  { name: "room", path: "/auction/:id" },
  { name: "sell", path: "/sell" },
  { name: "auth", path: "/signin" },
  { name: "list", path: "*" },
];

test("routes: the room, a static page, the fallback", () => {
  const room = matchRoute(TABLE, "#/auction/a%2Fb%20c");
  assert.equal(room.route.name, "room");
  assert.deepEqual(room.params, { id: "a/b c" });
  assert.equal(matchRoute(TABLE, "#/sell").route.name, "sell");
  for (const hash of ["", "#", "#/", "#/nowhere", "#/auction", "#/auction/x/y", "#/auction/%E0%A4%A"]) {
    assert.equal(matchRoute(TABLE, hash).route.name, "list", hash);
  }
});

test("routes: query parameters", () => {
  const match = matchRoute(TABLE, "#/signin?next=%23%2Fauction%2Fa1");
  assert.equal(match.route.name, "auth");
  assert.equal(match.query.get("next"), "#/auction/a1");
  assert.deepEqual(parseHash("#/auction/a1?x=1").parts, ["auction", "a1"]);
  assert.equal(parseHash("#/%E0%A4%A"), null);
});

test("links round-trip through the router", () => {
  const link = href("/auction/:id", { id: "a/1 ?" });
  assert.equal(link, "#/auction/a%2F1%20%3F");
  assert.deepEqual(matchRoute(TABLE, link).params, { id: "a/1 ?" });
});

test("no match without a fallback", () => {
  assert.equal(matchRoute(TABLE.slice(0, 2), "#/wallet"), null);
});

test("durations", () => {
  assert.equal(duration(65_000), "1:05");
  assert.equal(duration(7_200_000), "2h 00m");
  assert.equal(duration(200_000_000), "2d 07h");
  assert.equal(duration(-5), "0:00");
  assert.equal(TYPE_LABEL.sealed, "Sealed bid");
});

test("price lines use the server's numbers", () => {
  const dutch = { type: "dutch", status: "live", price: 8500, start_price: 10_000, next_drop_at: 10_500 };
  assert.deepEqual(priceLine(dutch), ["Price now", "$85.00"]);
  assert.equal(secondsToDrop(dutch, 9_000), 2);
  assert.equal(secondsToDrop(dutch, 11_000), 0, "due: the refresh is on its way");
  assert.equal(secondsToDrop({ ...dutch, next_drop_at: null }, 9_000), null, "at the floor");
  assert.deepEqual(priceLine({ type: "english", status: "live", price: null, bid_count: 0,
    start_price: 1000 }), ["Starting bid", "$10.00"]);
  assert.deepEqual(priceLine({ type: "english", status: "closed", winner_id: "u", final_price: 1050,
    price: 1050 }), ["Sold for", "$10.50"]);
  assert.deepEqual(priceLine({ type: "sealed", status: "live" }), ["Sealed bids", "Sealed"]);
});
