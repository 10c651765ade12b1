// A token's provenance, checked in the browser with the exchange's public key only: the same
// rules as the server's verifier (market/provenance.py `verify_chain`, `ece verify-provenance`).
// Pure: no DOM, no fetch; the WebCrypto implementation is a parameter (tests pass Node's).
//
// Hash: lowercase hex SHA-256 of the canonical JSON of the record without `hash` and
// `signature` and with "token_id" added: keys sorted by code point, no whitespace, non-ASCII
// as itself, UTF-8 (Python's `json.dumps(obj, sort_keys=True, separators=(",", ":"),
// ensure_ascii=False)`). Signature: base64 Ed25519 over the 32 raw bytes of the hash.

export const GENESIS = "0".repeat(64);
export const FIELDS = ["seq", "kind", "from", "to", "reason", "ref", "price", "at", "prev_hash",
  "hash", "signature"];
const KINDS = ["mint", "transfer", "redeem"];
const REASONS = ["auction", "offer", "admin"];
const MAX_INT = 2 ** 53; // the largest integer both sides encode exactly (MAX_AMOUNT)
const HEX64 = /^[0-9a-f]{64}$/;
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/** Order strings by Unicode code point (Python's), not by UTF-16 unit (JS's default). */
function byCodePoint(a, b) {
  const x = Array.from(a);
  const y = Array.from(b);
  for (let i = 0; i < Math.min(x.length, y.length); i += 1) {
    const d = x[i].codePointAt(0) - y[i].codePointAt(0);
    if (d !== 0) return d;
  }
  return x.length - y.length;
}

/** Canonical JSON text of a value; throws TypeError on what the server never writes. */
export function encode(value) {
  if (value === null) return "null";
  if (typeof value === "string" || typeof value === "boolean") return JSON.stringify(value);
  if (typeof value === "number") {
    if (!Number.isInteger(value) || Math.abs(value) > MAX_INT) {
      throw new TypeError(`${value} is not an integer within ±2**53`);
    }
    return String(value);
  }
  if (Array.isArray(value)) return `[${value.map(encode).join(",")}]`;
  if (typeof value === "object") {
    const keys = Object.keys(value).sort(byCodePoint);
    return `{${keys.map((k) => `${JSON.stringify(k)}:${encode(value[k])}`).join(",")}}`;
  }
  throw new TypeError(`a ${typeof value} has no JSON form`);
}

/** The text whose UTF-8 bytes are hashed: the record less hash and signature, plus token_id. */
export function canonical(record, tokenId) {
  const body = {};
  for (const [key, value] of Object.entries(record)) {
    if (key !== "hash" && key !== "signature") body[key] = value;
  }
  body.token_id = tokenId;
  return encode(body);
}

export function canonicalBytes(record, tokenId) {
  return new TextEncoder().encode(canonical(record, tokenId));
}

export function toHex(bytes) {
  return Array.from(new Uint8Array(bytes), (b) => b.toString(16).padStart(2, "0")).join("");
}

function fromHex(text) {
  if (typeof text !== "string" || !/^(?:[0-9a-fA-F]{2})*$/.test(text)) return null;
  return Uint8Array.from(text.match(/../g) || [], (pair) => parseInt(pair, 16));
}

/** Strict (padded, standard alphabet) base64 to bytes; null when malformed. */
export function fromBase64(text) {
  if (typeof text !== "string" || !BASE64.test(text)) return null;
  return Uint8Array.from(atob(text), (ch) => ch.charCodeAt(0));
}

/** The hex SHA-256 of a record, as the server computes it. */
export async function recordHash(record, tokenId, subtle = globalThis.crypto?.subtle) {
  return toHex(await subtle.digest("SHA-256", canonicalBytes(record, tokenId)));
}

// ---- the rules (market/provenance.py `_shape_problems` and `_step_problems`) ----------------

const isObject = (x) => x !== null && typeof x === "object" && !Array.isArray(x);
const get = (obj, key) => (isObject(obj) && Object.hasOwn(obj, key) ? obj[key] : null);
const isInt = (x) => typeof x === "number" && Number.isInteger(x);
const isAmount = (x) => isInt(x) && x >= 0 && x <= MAX_INT;
// Printable: no control, format, separator (other than space), surrogate or unassigned chars.
const NOT_PRINTABLE = /[\p{C}\p{Zl}\p{Zp}]|(?! )\p{Zs}/u;
const isId = (x) => typeof x === "string" && x !== "" && !NOT_PRINTABLE.test(x);
const show = (x) => (x === undefined ? "missing" : JSON.stringify(x));

/** What is malformed in one record on its own: [message]. */
export function shapeProblems(rec) {
  const keys = Object.keys(rec);
  if (keys.length !== FIELDS.length || !FIELDS.every((f) => Object.hasOwn(rec, f))) {
    return [`fields are ${keys.sort().join(", ")}, expected ${[...FIELDS].sort().join(", ")}`];
  }
  const { kind, reason, ref, price } = rec;
  const out = [];
  if (!(isInt(rec.seq) && rec.seq > 0)) out.push(`seq ${show(rec.seq)} is not a positive integer`);
  if (!KINDS.includes(kind)) out.push(`kind ${show(kind)} is not one of ${KINDS.join(", ")}`);
  if (!isAmount(rec.at)) out.push(`at ${show(rec.at)} is not a time in ms`);
  for (const key of ["from", "to"]) {
    if (rec[key] !== null && !isId(rec[key])) out.push(`${key} ${show(rec[key])} is not a user id`);
  }
  if (ref !== null && !isId(ref)) out.push(`ref ${show(ref)} is not an id`);
  if (price !== null && !(isAmount(price) && kind === "transfer")) {
    out.push(`price ${show(price)} is not an amount on a transfer`);
  }
  if (kind === "transfer") {
    if (!REASONS.includes(reason)) out.push(`reason ${show(reason)} is not one of ${REASONS.join(", ")}`);
    else if (reason !== "admin" && ref === null) out.push(`a transfer by ${reason} needs its ref`);
    if (rec.to === null) out.push("a transfer needs a to");
  } else if (reason !== null) {
    out.push(`a ${kind} has no reason`);
  }
  if (kind === "mint" && (rec.from !== null || rec.to === null)) {
    out.push("a mint is from null to its first owner");
  }
  if (kind === "redeem" && rec.to !== null) out.push("a redeem is to null");
  for (const key of ["prev_hash", "hash"]) {
    if (!(typeof rec[key] === "string" && HEX64.test(rec[key]))) {
      out.push(`${key} is not 64 lowercase hex digits`);
    }
  }
  return out;
}

/** How `rec` fails to follow `prev` (null: it should be the mint): [[kind, message]]. */
export function stepProblems(prev, rec, burned) {
  if (prev === null) {
    const out = get(rec, "seq") === 1 ? [] : [["seq", `seq ${show(get(rec, "seq"))}, expected 1`]];
    if (get(rec, "kind") !== "mint") out.push(["owner", "the first record is not a mint"]);
    if (get(rec, "prev_hash") !== GENESIS) out.push(["prev_hash", "the mint's prev_hash is not 64 zeros"]);
    return out;
  }
  const out = [];
  if (burned) out.push(["after_redeem", "a record after the redeem (the token is burned)"]);
  const prevSeq = get(prev, "seq");
  if (isInt(prevSeq) && get(rec, "seq") !== prevSeq + 1) {
    out.push(["seq", `seq ${show(get(rec, "seq"))}, expected ${prevSeq + 1}`]);
  }
  if (get(rec, "prev_hash") !== get(prev, "hash")) {
    out.push(["prev_hash", "prev_hash is not the previous record's hash"]);
  }
  if (get(rec, "kind") === "mint") out.push(["owner", "a second mint"]);
  else if (get(rec, "from") !== get(prev, "to")) {
    out.push(["owner", `from ${show(get(rec, "from"))} is not the owner ${show(get(prev, "to"))}`]);
  } else if (get(rec, "kind") === "transfer" && get(rec, "to") === get(rec, "from")) {
    out.push(["owner", "a transfer to the owner"]);
  }
  return out;
}

// ---- the check ---------------------------------------------------------------------------

/** The Ed25519 key, or {unsupported} when this runtime has no Ed25519 in WebCrypto, or
 * {problem} when the published key is malformed. */
async function importKey(subtle, publicKeyB64) {
  const raw = fromBase64(publicKeyB64);
  if (!raw || raw.length !== 32) return { problem: "the public key is not base64 of 32 bytes" };
  try {
    return { key: await subtle.importKey("raw", raw, { name: "Ed25519" }, false, ["verify"]) };
  } catch (error) {
    if (error?.name === "NotSupportedError" || error instanceof TypeError) return { unsupported: true };
    return { problem: `the public key was refused: ${error?.message || error}` };
  }
}

async function signatureOk(subtle, key, digest, signature) {
  const message = fromHex(digest);
  const sig = fromBase64(signature);
  if (!message || !sig) return false;
  try {
    return await subtle.verify({ name: "Ed25519" }, key, sig, message);
  } catch {
    return false;
  }
}

/**
 * Every break in a token's chain, checked as an outsider would: shape, seq from 1 without
 * gaps, prev_hash links (64 zeros for the mint), each hash recomputed, each Ed25519 signature,
 * and owner continuity (a transfer or redeem is from the previous `to`; nothing after a
 * redeem). Returns {ok, problems: [{index, seq, kind, message}], reason?}:
 *   ok true    everything checked and holds;
 *   ok false   at least one problem (whatever could not be checked);
 *   ok null    no problem found, but not everything could be checked: `reason` "unsupported"
 *              (no Ed25519 in this runtime's WebCrypto: hashes and links checked, signatures
 *              not) or "no-webcrypto" (no WebCrypto at all, e.g. a page over plain http
 *              from another host: only seq, links and owners checked).
 * A chain cut short after a record still verifies: compare its length elsewhere.
 */
export async function verifyChain(tokenId, records, publicKeyB64, subtle = globalThis.crypto?.subtle) {
  const problems = [];
  const add = (index, seq, kind, message) => problems.push({ index, seq, kind, message });
  let reason;
  let key = null;
  if (!subtle) reason = "no-webcrypto";
  else {
    const imported = await importKey(subtle, publicKeyB64);
    if (imported.unsupported) reason = "unsupported";
    else if (imported.problem) add(null, null, "key", imported.problem);
    else key = imported.key;
  }
  if (!Array.isArray(records) || records.length === 0) {
    add(0, null, "empty", "no records: a token starts with its mint");
    return { ok: false, problems, ...(reason ? { reason } : {}) };
  }
  let prev = null;
  let burned = false;
  for (const [index, rec] of records.entries()) {
    if (!isObject(rec)) {
      add(index, null, "shape", "not an object");
      prev = {};
      continue;
    }
    const seq = isInt(rec.seq) ? rec.seq : null;
    for (const message of shapeProblems(rec)) add(index, seq, "shape", message);
    for (const [kind, message] of stepProblems(prev, rec, burned)) add(index, seq, kind, message);
    if (subtle) {
      let expected = null;
      try {
        expected = await recordHash(rec, tokenId, subtle);
      } catch (error) {
        add(index, seq, "hash", `cannot be encoded: ${error.message}`);
      }
      if (expected !== null && rec.hash !== expected) add(index, seq, "hash", "hash does not match the record");
    }
    if (key && !(await signatureOk(subtle, key, rec.hash, rec.signature))) {
      add(index, seq, "signature", "bad signature");
    }
    prev = rec;
    burned = burned || rec.kind === "redeem";
  }
  if (problems.length) return { ok: false, problems, ...(reason ? { reason } : {}) };
  return reason ? { ok: null, problems, reason } : { ok: true, problems };
}

/** The current owner: the last record's `to` (null once redeemed). Trusts the records. */
export function ownerOf(records) {
  return records.length ? records[records.length - 1].to : null;
}

/**
 * What the page says about a verifyChain result: {state, title, detail}. `state` is one of
 * verified, broken, partial (no Ed25519 here), unverifiable (no WebCrypto here), empty.
 */
export function verdict(result, count) {
  const { ok, problems, reason } = result;
  const records = `${count} record${count === 1 ? "" : "s"}`;
  if (problems.length === 1 && problems[0].kind === "empty") {
    return { state: "empty", title: "No provenance recorded",
      detail: "This card was minted before tokens existed: there is no chain to check." };
  }
  if (ok === true) {
    return { state: "verified", title: "Verified in your browser",
      detail: `${records}: every hash, link, owner and Ed25519 signature checks out against the exchange's public key.` };
  }
  if (ok === false) {
    const what = problems.length === 1 ? problems[0].message : `${problems.length} problems`;
    const unchecked = reason ? " (signatures could not be checked in this browser)" : "";
    return { state: "broken", title: `Broken: ${what}`,
      detail: `This chain does not verify${unchecked}. Don't rely on this card's history.` };
  }
  if (reason === "unsupported") {
    return { state: "partial", title: "Hashes verified; signatures not checkable in this browser",
      detail: `${records}: every hash, link and owner checks out; this browser's WebCrypto has no Ed25519, so check the signatures with the command below.` };
  }
  return { state: "unverifiable", title: "Not verifiable in this browser",
    detail: `${records}: links and owners check out, but WebCrypto is only available on https or localhost pages: check the hashes and signatures with the command below.` };
}

/**
 * What the page says when the exchange's server checked the chain (GET
 * /api/tokens/{id}/verify) because this browser could not check every signature.
 */
export function serverVerdict(answer, count) {
  const records = `${count} record${count === 1 ? "" : "s"}`;
  if (answer.ok) {
    return { state: "server-verified", title: "Verified by the exchange's server",
      detail: `${records}: this browser cannot check Ed25519 signatures, so the server checked every hash, link, owner and signature. Check it yourself with the command below.` };
  }
  const what = answer.problems.length === 1 ? answer.problems[0].message
    : `${answer.problems.length} problems`;
  return { state: "broken", title: `Broken: ${what}`,
    detail: "The exchange's own check finds this chain broken. Don't rely on this card's history." };
}
