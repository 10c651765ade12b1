// The live list's search and filters <-> the query of its URL ("#/?q=charizard&grader=PSA").
// Pure: no DOM. A filter object always has every key; a value that is empty, malformed or out of
// range is dropped (back to its default), so any URL gives a valid search and the same search
// always gives the same URL (defaults left out, keys in a fixed order).
//
// The URL uses the API's names and units (prices in cents, ending_within in seconds), so the
// query of the page and of GET /api/auctions are the same words.

import { CATEGORIES, GRADERS } from "./catalog.js";
import { MAX_CENTS } from "./money.js";

export { CATEGORIES, CATEGORY_LABEL, GRADERS } from "./catalog.js";

export const TYPES = ["english", "dutch", "sealed"];
export const SORTS = [
  ["ending", "Ending soonest"], ["newest", "Newly listed"], ["price_asc", "Price: low to high"],
  ["price_desc", "Price: high to low"], ["bids", "Most bids"],
];
/** [seconds, label] offered for "Ending within". */
export const ENDING_WITHIN = [
  [300, "5 minutes"], [3_600, "1 hour"], [21_600, "6 hours"], [86_400, "24 hours"],
  [604_800, "7 days"],
];

export const MIN_GRADE = 1;
export const MAX_GRADE = 10;
export const MAX_QUERY_CHARS = 200;
export const MAX_QUERY_WORDS = 8;
const MAX_ENDING_WITHIN = 366 * 86_400;

export const DEFAULT_FILTERS = Object.freeze({
  q: "", category: "", grader: "", grade_min: null, grade_max: null, type: "",
  price_min: null, price_max: null, ending_within: null, sort: "ending",
});
const KEYS = Object.keys(DEFAULT_FILTERS);

/** Search words: trimmed, spaces collapsed, at most 8 words and 200 characters. */
export function cleanQuery(text) {
  const words = String(text ?? "").trim().split(/\s+/).filter(Boolean).slice(0, MAX_QUERY_WORDS);
  return words.join(" ").slice(0, MAX_QUERY_CHARS).trim();
}

function oneOf(list, value) {
  return list.includes(value) ? value : "";
}

/** A grade 1–10 in halves ("9.5"), else null. */
function grade(raw) {
  const text = String(raw ?? "").trim();
  if (!/^\d{1,2}(?:\.\d+)?$/.test(text)) return null;
  const value = Number(text);
  if (value < MIN_GRADE || value > MAX_GRADE || !Number.isInteger(value * 2)) return null;
  return value;
}

/** Plain decimal digits within [min, max], else null (never clamped, as the server). */
function integer(raw, min, max) {
  const text = String(raw ?? "").trim();
  if (!/^\d{1,16}$/.test(text)) return null;
  const value = Number(text);
  return value >= min && value <= max ? value : null;
}

function ordered(filters, low, high) {
  if (filters[low] !== null && filters[high] !== null && filters[low] > filters[high]) {
    [filters[low], filters[high]] = [filters[high], filters[low]];
  }
}

/** A valid filter object from any partial, possibly malformed one (strings or numbers). */
export function normalize(input = {}) {
  const src = input || {};
  const f = {
    q: cleanQuery(src.q),
    category: oneOf(CATEGORIES, String(src.category ?? "").trim().toLowerCase()),
    grader: oneOf(GRADERS, String(src.grader ?? "").trim().toUpperCase()),
    grade_min: grade(src.grade_min),
    grade_max: grade(src.grade_max),
    type: oneOf(TYPES, String(src.type ?? "").trim().toLowerCase()),
    price_min: integer(src.price_min, 0, MAX_CENTS),
    price_max: integer(src.price_max, 0, MAX_CENTS),
    ending_within: integer(src.ending_within, 1, MAX_ENDING_WITHIN),
    sort: SORTS.some(([key]) => key === src.sort) ? src.sort : DEFAULT_FILTERS.sort,
  };
  ordered(f, "grade_min", "grade_max");
  ordered(f, "price_min", "price_max");
  return f;
}

/** The filters of a URL query (URLSearchParams, "q=x&..." or "?q=x&..."). */
export function parseListQuery(query) {
  const params = query instanceof URLSearchParams ? query : new URLSearchParams(String(query ?? ""));
  const raw = {};
  for (const key of KEYS) {
    if (params.has(key)) raw[key] = params.get(key);
  }
  return normalize(raw);
}

function entries(filters) {
  const f = normalize(filters);
  return KEYS.filter((key) => f[key] !== null && f[key] !== "" && f[key] !== DEFAULT_FILTERS[key])
    .map((key) => [key, String(f[key])]);
}

/** "q=charizard&grader=PSA&sort=price_desc": the non-default filters, in a fixed order. */
export function listQueryString(filters) {
  return new URLSearchParams(entries(filters)).toString();
}

/** The list page's hash for these filters: "#/" or "#/?q=...". */
export function listHash(filters) {
  const query = listQueryString(filters);
  return query ? `#/?${query}` : "#/";
}

/** The query of GET /api/auctions for these filters (live auctions only). */
export function apiQuery(filters) {
  return new URLSearchParams([["status", "live"], ...entries(filters)]).toString();
}

/** Does any filter other than the sort narrow the list? */
export function isFiltered(filters) {
  return entries(filters).some(([key]) => key !== "sort");
}

/** Same search? */
export function sameFilters(a, b) {
  return listQueryString(a) === listQueryString(b);
}
