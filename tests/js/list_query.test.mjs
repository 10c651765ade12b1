// The live list's search <-> URL query (gateway/static/list_query.js): `node --test tests/js/`.

import assert from "node:assert/strict";
import { test } from "node:test";

import {
  DEFAULT_FILTERS, apiQuery, isFiltered, listHash, listQueryString, normalize, parseListQuery,
  sameFilters,
} from "../../gateway/static/list_query.js";
import { matchRoute } from "../../gateway/static/router.js";

const FULL = {
  q: "charizard base set", category: "pokemon", grader: "PSA", grade_min: 8.5, grade_max: 10,
  type: "english", price_min: 1000, price_max: 250000, ending_within: 3600, sort: "price_desc",
};

test("defaults: an empty query is every live auction, ending soonest", () => {
  assert.deepEqual(parseListQuery(""), DEFAULT_FILTERS);
  assert.deepEqual(parseListQuery(new URLSearchParams()), DEFAULT_FILTERS);
  assert.equal(listQueryString(DEFAULT_FILTERS), "");
  assert.equal(listHash(DEFAULT_FILTERS), "#/");
  assert.equal(listHash({}), "#/");
  assert.equal(apiQuery(DEFAULT_FILTERS), "status=live");
  assert.equal(isFiltered(DEFAULT_FILTERS), false);
  assert.equal(isFiltered({ sort: "bids" }), false, "a sort alone filters nothing");
  assert.equal(listHash({ sort: "ending" }), "#/", "the default sort is left out");
});

test("round trip: filters -> query -> filters, and query -> filters -> the same query", () => {
  const query = listQueryString(FULL);
  assert.equal(query, "q=charizard+base+set&category=pokemon&grader=PSA&grade_min=8.5&grade_max=10"
    + "&type=english&price_min=1000&price_max=250000&ending_within=3600&sort=price_desc");
  assert.deepEqual(parseListQuery(query), FULL);
  assert.deepEqual(parseListQuery(`?${query}`), FULL);
  assert.equal(listQueryString(parseListQuery(query)), query);
  assert.equal(isFiltered(FULL), true);
  for (const one of [{ q: "pikachu" }, { grader: "RAW" }, { price_max: 0 }, { grade_min: 1 }]) {
    const filters = normalize(one);
    assert.deepEqual(parseListQuery(listQueryString(filters)), filters, JSON.stringify(one));
  }
});

test("the hash is the list's route and carries the query", () => {
  const hash = listHash({ q: "charizard", grader: "PSA", sort: "price_desc" });
  assert.equal(hash, "#/?q=charizard&grader=PSA&sort=price_desc");
  const match = matchRoute([{ name: "room", path: "/auction/:id" }, { name: "list", path: "*" }], hash);
  assert.equal(match.route.name, "list");
  assert.deepEqual(parseListQuery(match.query), { ...DEFAULT_FILTERS, q: "charizard", grader: "PSA", sort: "price_desc" });
  assert.equal(listHash({ q: "mew & friends #1" }), "#/?q=mew+%26+friends+%231");
  assert.equal(parseListQuery("q=mew+%26+friends+%231").q, "mew & friends #1");
});

test("the API query starts with status=live and uses the same names", () => {
  assert.equal(apiQuery({ q: "jordan", category: "basketball", sort: "newest" }),
    "status=live&q=jordan&category=basketball&sort=newest");
});

test("empty and invalid values are dropped", () => {
  const bad = parseListQuery("q=%20%20&category=pokemons&grader=XYZ&grade_min=0&grade_max=11"
    + "&type=swiss&price_min=-5&price_max=12.50&ending_within=0&sort=cheapest&extra=1");
  assert.deepEqual(bad, DEFAULT_FILTERS);
  assert.equal(listQueryString(bad), "");
  for (const grade of ["abc", "9.3", "1e1", "", " ", "NaN", "Infinity", "0.5", "10.5"]) {
    assert.equal(parseListQuery(`grade_min=${encodeURIComponent(grade)}`).grade_min, null, grade);
  }
  for (const price of ["1.5", "1e3", "-1", "0x10", "", "9".repeat(17), String(2 ** 53 + 2)]) {
    assert.equal(parseListQuery(`price_min=${price}`).price_min, null, price);
  }
  assert.equal(parseListQuery("ending_within=1e3").ending_within, null);
});

test("values are normalised: case, spaces, halves, order", () => {
  const f = parseListQuery("q=%20%20Charizard%20%20%20Holo%20&category=Pokemon&grader=psa&type=DUTCH"
    + "&grade_min=9.50&grade_max=07&price_min=5000&price_max=100");
  assert.equal(f.q, "Charizard Holo");
  assert.equal(f.category, "pokemon");
  assert.equal(f.grader, "PSA");
  assert.equal(f.type, "dutch");
  assert.deepEqual([f.grade_min, f.grade_max], [7, 9.5], "a reversed range is put in order");
  assert.deepEqual([f.price_min, f.price_max], [100, 5000]);
  assert.equal(listQueryString(f), "q=Charizard+Holo&category=pokemon&grader=PSA&grade_min=7"
    + "&grade_max=9.5&type=dutch&price_min=100&price_max=5000");
});

test("search words: at most 8 words and 200 characters", () => {
  assert.equal(parseListQuery(`q=${"a ".repeat(12)}`).q, "a a a a a a a a");
  assert.equal(normalize({ q: "x".repeat(250) }).q.length, 200);
});

test("normalize is idempotent and equal searches compare equal", () => {
  const once = normalize({ ...FULL, q: "  charizard   base set " });
  assert.deepEqual(normalize(once), once);
  assert.ok(sameFilters(once, FULL));
  assert.ok(!sameFilters(FULL, { ...FULL, sort: "bids" }));
  assert.deepEqual(normalize(null), DEFAULT_FILTERS);
});
