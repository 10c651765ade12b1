// The wording of grades: a catalog copy's grader and grade, or a titled card's own words.
import { test } from "node:test";
import assert from "node:assert/strict";

import { gradeLabel } from "../../gateway/static/format.js";

test("a graded copy reads as grader and grade", () => {
  assert.equal(gradeLabel({ grader: "PSA", grade: 10 }), "PSA 10");
  assert.equal(gradeLabel({ grader: "BGS", grade: 9.5 }), "BGS 9.5");
  assert.equal(gradeLabel({ grader: "RAW" }), "Raw");
});

test("a card outside the catalog shows the seller's words, and nothing else shows nothing", () => {
  assert.equal(gradeLabel({ grade: "PSA 9" }), "PSA 9");
  assert.equal(gradeLabel({ title: "x" }), "");
  assert.equal(gradeLabel(null), "");
  assert.equal(gradeLabel({ grade: 7 }), "");
});

test("long ids keep their head and tail; short ones stay whole", async () => {
  const { shortId } = await import("../../gateway/static/format.js");
  assert.equal(shortId("12794847424848361964945696604185028896348236956489696040163581130078403276731"),
    "12794847…76731");
  assert.equal(shortId("abc"), "abc");
  assert.equal(shortId("a_673d0a0bbd0e47a5", 10, 4), "a_673d0a0b…47a5");
  assert.equal(shortId(null), "");
});
