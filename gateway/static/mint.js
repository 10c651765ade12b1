// Minting a graded copy of a catalog card (the "Sell a card" page): the grades a grader gives,
// the checks on grade and certificate number the server makes (market/catalog.py), the body of
// POST /api/assets and what its refusals say. Pure: no DOM, no fetch.

import { CATEGORY_LABEL, GRADERS } from "./catalog.js";

export { GRADERS };
export const RAW = "RAW";
/** Every grade, highest first: 10, 9.5, ..., 1 (whole and half steps). */
export const GRADES = Array.from({ length: 19 }, (_, i) => 10 - i / 2);
export const MAX_CERT = 32;
const CERT = /^[A-Z0-9]{1,32}$/;
// GET /api/cards refuses a q over 200 characters or 8 words.
const MAX_QUERY_CHARS = 200;
const MAX_QUERY_WORDS = 8;

/** A grade from a select or input ("9", "9.5", " 10 ") for `grader`: {ok, grade} (grade null
 * for RAW, which has none) or {ok: false, error}. */
export function parseGrade(grader, text) {
  if (grader === RAW) return { ok: true, grade: null };
  const raw = String(text ?? "").trim();
  if (raw === "") return { ok: false, error: `Choose the ${grader} grade` };
  const grade = /^\d{1,2}(\.\d+)?$/.test(raw) ? Number(raw) : NaN;
  if (!(grade >= 1 && grade <= 10) || (grade * 2) % 1 !== 0) {
    return { ok: false, error: "A grade is 1 to 10 in half steps (1, 1.5, …, 10)" };
  }
  return { ok: true, grade };
}

/** A certificate number as typed: {ok, cert} (trimmed, upper-cased; null when a RAW copy has
 * none) or {ok: false, error}. */
export function parseCert(grader, text) {
  const cert = String(text ?? "").trim().toUpperCase();
  if (cert === "") {
    return grader === RAW ? { ok: true, cert: null }
      : { ok: false, error: `Enter the ${grader} certificate number from the slab's label` };
  }
  if (!CERT.test(cert)) {
    return { ok: false, error: `A certificate number is 1 to ${MAX_CERT} letters and digits, no spaces or dashes` };
  }
  return { ok: true, cert };
}

/**
 * The body of POST /api/assets for a graded copy: {ok, body: {card_id, grader, grade?, cert?}}
 * or {ok: false, field, error} with field one of "card", "grader", "grade", "cert" (the input to
 * point at). A RAW copy sends no grade, and a cert only when one was given.
 */
export function gradedBody({ cardId, grader, grade, cert }) {
  if (!cardId) return { ok: false, field: "card", error: "Pick a card from the catalog" };
  if (!GRADERS.includes(grader)) {
    return { ok: false, field: "grader", error: `Choose the grader: ${GRADERS.join(", ")}` };
  }
  const parsedGrade = parseGrade(grader, grade);
  if (!parsedGrade.ok) return { ok: false, field: "grade", error: parsedGrade.error };
  const parsedCert = parseCert(grader, cert);
  if (!parsedCert.ok) return { ok: false, field: "cert", error: parsedCert.error };
  const body = { card_id: cardId, grader };
  if (parsedGrade.grade !== null) body.grade = parsedGrade.grade;
  if (parsedCert.cert !== null) body.cert = parsedCert.cert;
  return { ok: true, body };
}

/** What the catalog search sends as `q` (spaces collapsed, within the server's limits), or ""
 * when there is nothing to search for. */
export function catalogQuery(text) {
  const words = String(text ?? "").trim().split(/\s+/).filter(Boolean).slice(0, MAX_QUERY_WORDS);
  return words.join(" ").slice(0, MAX_QUERY_CHARS).trim();
}

/** "Base Set · 1999 · #4": the set, the year (when the set's name lacks it) and the number. */
export function cardLine(card) {
  if (!card) return "";
  const year = card.year && !String(card.set || "").includes(String(card.year)) ? card.year : null;
  const number = card.number !== null && card.number !== undefined && card.number !== ""
    ? `#${card.number}` : null;
  return [card.set, year, number].filter((x) => x !== null && x !== undefined && x !== "").join(" · ");
}

export function categoryLabel(card) {
  return card ? CATEGORY_LABEL[card.category] || card.category || "" : "";
}

/** The label of a graded copy: "PSA 9.5", "Raw". */
export function slabLabel(grader, grade) {
  return grader === RAW ? "Raw" : `${grader} ${grade}`;
}

/**
 * What a refused mint says, and which input it is about: {message, field} (field as in
 * gradedBody, or null). `error` is an ApiError ({code, message}).
 */
export function mintRefusal(error) {
  const code = error?.code;
  const text = String(error?.message || "");
  if (code === "CERT_EXISTS") {
    return { message: "That certificate is already registered — check the number on the slab", field: "cert" };
  }
  if (code === "CARD_NOT_FOUND") {
    return { message: "That card is no longer in the catalog — search for it again", field: "card" };
  }
  if (code === "FORBIDDEN") {
    return { message: "Minting is restricted to administrators on this exchange", field: null };
  }
  if (code === "RATE_LIMITED") {
    return { message: `${capitalize(text || "too many mints")} — wait a moment, then try again`, field: null };
  }
  if (code === "INVALID") {
    // The server's message names the field first: "cert: must be 1-32 letters and digits".
    const match = /^([a-z_]+):\s*(.*)$/s.exec(text);
    const field = match ? { card_id: "card", grader: "grader", grade: "grade", cert: "cert" }[match[1]] ?? null : null;
    const labels = { card: "Card", grader: "Grader", grade: "Grade", cert: "Certificate number" };
    return { message: field ? `${labels[field]}: ${match[2]}` : capitalize(text || "Invalid request"), field };
  }
  return { message: text || "Couldn't mint the card", field: null };
}

function capitalize(text) {
  return text ? text.charAt(0).toUpperCase() + text.slice(1) : text;
}

/** The assets that can go up for auction: not listed already, not redeemed (a burned token). */
export function sellable(assets) {
  return (Array.isArray(assets) ? assets : []).filter((a) => a && !a.listed_in && !a.redeemed);
}
