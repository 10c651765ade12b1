// Minting a graded copy of a catalog card (gateway/static/mint.js): `node --test tests/js/`.

import assert from "node:assert/strict";
import { test } from "node:test";

import {
  GRADES, GRADERS, catalogQuery, cardLine, categoryLabel, gradedBody, mintRefusal, parseCert,
  parseGrade, sellable, slabLabel,
} from "../../gateway/static/mint.js";

test("the grades are the server's: 10 down to 1 in halves", () => {
  assert.equal(GRADES.length, 19);
  assert.deepEqual(GRADES.slice(0, 4), [10, 9.5, 9, 8.5]);
  assert.equal(GRADES.at(-1), 1);
  assert.deepEqual(GRADERS, ["PSA", "BGS", "CGC", "SGC", "RAW"]);
});

test("a grade is 1-10 in half steps; RAW has none", () => {
  assert.deepEqual(parseGrade("PSA", "9"), { ok: true, grade: 9 });
  assert.deepEqual(parseGrade("BGS", " 9.5 "), { ok: true, grade: 9.5 });
  assert.deepEqual(parseGrade("CGC", "10.0"), { ok: true, grade: 10 });
  assert.deepEqual(parseGrade("SGC", "1"), { ok: true, grade: 1 });
  assert.deepEqual(parseGrade("RAW", ""), { ok: true, grade: null });
  assert.deepEqual(parseGrade("RAW", "9"), { ok: true, grade: null }); // a hidden field is ignored
  for (const bad of ["9.25", "0", "0.5", "10.5", "11", "-1", "abc", "9e0", "1e1", "NaN", "Infinity", " "]) {
    assert.equal(parseGrade("PSA", bad).ok, false, bad);
  }
  assert.match(parseGrade("PSA", "").error, /Choose the PSA grade/);
  assert.match(parseGrade("PSA", undefined).error, /Choose/);
});

test("a cert is 1-32 letters and digits, upper-cased; required unless RAW", () => {
  assert.deepEqual(parseCert("PSA", " 81234567 "), { ok: true, cert: "81234567" });
  assert.deepEqual(parseCert("CGC", "ab12c"), { ok: true, cert: "AB12C" });
  assert.deepEqual(parseCert("PSA", "9".repeat(32)), { ok: true, cert: "9".repeat(32) });
  assert.equal(parseCert("PSA", "9".repeat(33)).ok, false);
  for (const bad of ["12 34", "12-34", "12_34", "1234é", "#1"]) assert.equal(parseCert("BGS", bad).ok, false, bad);
  assert.match(parseCert("SGC", "").error, /SGC certificate number/);
  assert.match(parseCert("SGC", "1 2").error, /letters and digits/);
  assert.deepEqual(parseCert("RAW", ""), { ok: true, cert: null });
  assert.deepEqual(parseCert("RAW", "  "), { ok: true, cert: null });
  assert.deepEqual(parseCert("RAW", "x1"), { ok: true, cert: "X1" });
  assert.equal(parseCert("RAW", "x-1").ok, false);
});

test("the POST /api/assets body of a graded copy", () => {
  assert.deepEqual(gradedBody({ cardId: "card_1", grader: "PSA", grade: "9", cert: "81234567" }),
    { ok: true, body: { card_id: "card_1", grader: "PSA", grade: 9, cert: "81234567" } });
  assert.deepEqual(gradedBody({ cardId: "card_1", grader: "BGS", grade: "9.5", cert: "ab1" }),
    { ok: true, body: { card_id: "card_1", grader: "BGS", grade: 9.5, cert: "AB1" } });
  // RAW: no grade (even one left in the hidden select), a cert only when given.
  assert.deepEqual(gradedBody({ cardId: "card_1", grader: "RAW", grade: "9", cert: "" }),
    { ok: true, body: { card_id: "card_1", grader: "RAW" } });
  assert.deepEqual(gradedBody({ cardId: "card_1", grader: "RAW", grade: "", cert: "z9" }),
    { ok: true, body: { card_id: "card_1", grader: "RAW", cert: "Z9" } });
});

test("what is wrong with a graded copy, and which input it is about", () => {
  const field = (input) => gradedBody(input).field;
  assert.equal(field({ cardId: "", grader: "PSA", grade: "9", cert: "1" }), "card");
  assert.equal(field({ cardId: null, grader: "PSA", grade: "9", cert: "1" }), "card");
  assert.equal(field({ cardId: "c", grader: "psa", grade: "9", cert: "1" }), "grader");
  assert.equal(field({ cardId: "c", grader: "", grade: "9", cert: "1" }), "grader");
  assert.equal(field({ cardId: "c", grader: "PSA", grade: "", cert: "1" }), "grade");
  assert.equal(field({ cardId: "c", grader: "PSA", grade: "9", cert: "" }), "cert");
  assert.equal(field({ cardId: "c", grader: "PSA", grade: "9", cert: "1 2" }), "cert");
  const refused = gradedBody({ cardId: "c", grader: "PSA", grade: "", cert: "" });
  assert.equal(refused.ok, false);
  assert.equal(refused.body, undefined);
  assert.equal(typeof refused.error, "string");
});

test("the catalog query: trimmed, spaces collapsed, within 8 words and 200 characters", () => {
  assert.equal(catalogQuery("  charizard   base\tset "), "charizard base set");
  assert.equal(catalogQuery(""), "");
  assert.equal(catalogQuery("   "), "");
  assert.equal(catalogQuery(undefined), "");
  assert.equal(catalogQuery("a b c d e f g h i j"), "a b c d e f g h");
  assert.equal(catalogQuery("x".repeat(300)).length, 200);
});

test("a card's line: set, year unless the set names it, number", () => {
  assert.equal(cardLine({ set: "Base Set", year: 1999, number: "4" }), "Base Set · 1999 · #4");
  assert.equal(cardLine({ set: "2018 Panini Prizm", year: 2018, number: "280" }), "2018 Panini Prizm · #280");
  assert.equal(cardLine({ set: "Alpha", year: 1993, number: "" }), "Alpha · 1993");
  assert.equal(cardLine(null), "");
  assert.equal(categoryLabel({ category: "pokemon" }), "Pokémon");
  assert.equal(categoryLabel({ category: "curling" }), "curling");
  assert.equal(slabLabel("PSA", 9), "PSA 9");
  assert.equal(slabLabel("BGS", 9.5), "BGS 9.5");
  assert.equal(slabLabel("RAW", undefined), "Raw");
});

test("the server's refusals, worded for the seller and pointed at an input", () => {
  assert.deepEqual(mintRefusal({ code: "CERT_EXISTS", message: "x" }).field, "cert");
  assert.match(mintRefusal({ code: "CERT_EXISTS" }).message, /certificate is already registered/);
  assert.equal(mintRefusal({ code: "CARD_NOT_FOUND" }).field, "card");
  assert.deepEqual(mintRefusal({ code: "FORBIDDEN", message: "minting is restricted to admins" }),
    { message: "Minting is restricted to administrators on this exchange", field: null });
  assert.deepEqual(mintRefusal({ code: "INVALID", message: "cert: must be 1-32 letters and digits" }),
    { message: "Certificate number: must be 1-32 letters and digits", field: "cert" });
  assert.deepEqual(mintRefusal({ code: "INVALID", message: "grade: is required for PSA" }),
    { message: "Grade: is required for PSA", field: "grade" });
  assert.equal(mintRefusal({ code: "INVALID", message: "card_id: unknown field" }).field, "card");
  assert.deepEqual(mintRefusal({ code: "INVALID", message: "title: 1-200 characters" }),
    { message: "Title: 1-200 characters", field: null });
  const limited = mintRefusal({ code: "RATE_LIMITED", message: "too many mints; retry in 12 s" });
  assert.equal(limited.field, null);
  assert.match(limited.message, /^Too many mints; retry in 12 s/);
  assert.deepEqual(mintRefusal({ code: "NETWORK", message: "Can't reach the server" }),
    { message: "Can't reach the server", field: null });
});

test("only unlisted, unredeemed assets can be sold", () => {
  const assets = [
    { asset_id: "a", listed_in: null, redeemed: false },
    { asset_id: "b", listed_in: "auc_1", redeemed: false },
    { asset_id: "c", listed_in: null, redeemed: true },
    { asset_id: "d" }, null,
  ];
  assert.deepEqual(sellable(assets).map((a) => a.asset_id), ["a", "d"]);
  assert.deepEqual(sellable(undefined), []);
});
