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
