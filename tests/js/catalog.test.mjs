// The catalog's population report as a table (gateway/static/catalog.js): `node --test tests/js/`.

import assert from "node:assert/strict";
import { test } from "node:test";

import { CATEGORIES, GRADERS, populationTable } from "../../gateway/static/catalog.js";

test("the vocabulary is the server's (market/catalog.py)", () => {
  assert.deepEqual(CATEGORIES, ["pokemon", "baseball", "basketball", "football", "hockey", "soccer", "magic", "yugioh"]);
  assert.deepEqual(GRADERS, ["PSA", "BGS", "CGC", "SGC", "RAW"]);
});

test("grader x grade counts, graders in the catalog's order, grades highest first", () => {
  const table = populationTable([
    { grader: "RAW", grade: null, count: 4 }, { grader: "PSA", grade: 9, count: 3 },
    { grader: "BGS", grade: 9.5, count: 1 }, { grader: "PSA", grade: 10, count: 2 },
    { grader: "XYZ", grade: 10, count: 9 }, { grader: "PSA", grade: 8, count: 1.5 }, null,
  ]);
  assert.deepEqual(table.graders, ["PSA", "BGS", "RAW"]);
  assert.deepEqual(table.grades, [10, 9.5, 9]);
  assert.equal(table.hasRaw, true);
  assert.equal(table.count("PSA", 10), 2);
  assert.equal(table.count("PSA", 9.5), 0);
  assert.equal(table.count("RAW", null), 4);
  assert.equal(table.total("PSA"), 5);
  assert.equal(table.copies, 10);
});

test("no population: an empty table", () => {
  for (const rows of [[], null, undefined, "x"]) {
    const table = populationTable(rows);
    assert.deepEqual(table.graders, []);
    assert.equal(table.copies, 0);
  }
});
