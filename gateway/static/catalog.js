// The card catalog's vocabulary (as market/catalog.py) and its population report in table form.
// Pure: no DOM.

export const CATEGORIES = [
  "pokemon", "baseball", "basketball", "football", "hockey", "soccer", "magic", "yugioh",
];
export const CATEGORY_LABEL = {
  pokemon: "Pokémon", baseball: "Baseball", basketball: "Basketball", football: "Football",
  hockey: "Hockey", soccer: "Soccer", magic: "Magic: The Gathering", yugioh: "Yu-Gi-Oh!",
};
export const GRADERS = ["PSA", "BGS", "CGC", "SGC", "RAW"];

/**
 * GET /api/cards/{id}'s `population` rows [{grader, grade, count}] (grade null for RAW) as a
 * table: graders in the catalog's order, grades highest first, `count(grader, grade)` (0 when
 * none), `total(grader)`. Rows of an unknown grader or without a whole count are left out.
 */
export function populationTable(rows) {
  const valid = (Array.isArray(rows) ? rows : []).filter((r) => r && GRADERS.includes(r.grader)
    && Number.isInteger(r.count) && r.count >= 0);
  const graded = (r) => r.grader !== "RAW" && Number.isFinite(Number(r.grade)) && r.grade !== null;
  const graders = GRADERS.filter((g) => valid.some((r) => r.grader === g));
  const grades = [...new Set(valid.filter(graded).map((r) => Number(r.grade)))].sort((a, b) => b - a);
  const key = (grader, grade) => `${grader}|${grade === null || grade === undefined ? "-" : Number(grade)}`;
  const counts = new Map();
  for (const r of valid) {
    const k = key(r.grader, graded(r) ? r.grade : null);
    counts.set(k, (counts.get(k) ?? 0) + r.count);
  }
  return {
    graders,
    grades,
    hasRaw: graders.includes("RAW"),
    count: (grader, grade) => counts.get(key(grader, grade)) ?? 0,
    total: (grader) => valid.filter((r) => r.grader === grader).reduce((sum, r) => sum + r.count, 0),
    copies: valid.reduce((sum, r) => sum + r.count, 0),
  };
}
