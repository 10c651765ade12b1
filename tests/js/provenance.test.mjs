// Provenance checked in JS exactly as the server checks it: the canonical encoding agrees with
// Python's byte for byte (known answers below were computed by market/provenance.py), real
// Ed25519 chains verify, and every kind of tampering is caught.
import { test } from "node:test";
import assert from "node:assert/strict";
import { createHash, generateKeyPairSync, sign } from "node:crypto";

import {
  GENESIS, canonical, recordHash, verifyChain,
} from "../../gateway/static/provenance.js";

// ---- known answers from the server's encoding ----------------------------------------------
// Made with `.venv/bin/python`: Ed25519Signer.from_private_bytes(bytes(range(32))),
// token_id_for("asset-1"), mint_record(...) then next_record(... "transfer" ...) and
// next_record(... "redeem" ...). Ed25519 signatures are deterministic, so these are fixed.
const PY = {
  token_id: "12794847424848361964945696604185028896348236956489696040163581130078403276731",
  public_key: "A6EHv/POEL4dcN0Y50vAmWfk1jCbpQ1fHdyGZBJVMbg=",
  records: [
    { seq: 1, kind: "mint", from: null, to: "u_alice", reason: null, ref: null, price: null,
      at: 1700000000000, prev_hash: GENESIS,
      hash: "ea1111ddf68d0d61d7718fdc82001c20b64f143efb94c15a54d0c4191bd70fff",
      signature: "NYE8P5naEPdrpCT5ddFoD9L+Tfme0yiEp9xUKa7DAXAwFQLPhHNgBx3rqXuLUbOtWIiZJaJ18nXOrIP8/raIAA==" },
    { seq: 2, kind: "transfer", from: "u_alice", to: "u_bøb", reason: "auction",
      ref: "auc \"✓\" \\ 𝄞", price: 123456, at: 1700000100000,
      prev_hash: "ea1111ddf68d0d61d7718fdc82001c20b64f143efb94c15a54d0c4191bd70fff",
      hash: "f2adc5b343cb271bcbaf5fd559923f3afe2ce70e6ac6c173350ff8c2aae8f36f",
      signature: "MPm+Lwc2fT+mKOROMG2/sCVmSTW/Y3XQAOffJPtwJiOAANZLgpkaCEZFRAoGTVmCfZlkogRYNm7VgtuhZkESBw==" },
    { seq: 3, kind: "redeem", from: "u_bøb", to: null, reason: null, ref: null, price: null,
      at: 1700000200000,
      prev_hash: "f2adc5b343cb271bcbaf5fd559923f3afe2ce70e6ac6c173350ff8c2aae8f36f",
      hash: "f6415838862d293dc108b67f1f927daa3ceec4f13cba6c77ad5526256723f523",
      signature: "BpxIwRemyDrpG7z9oxHYnFZP3T5SrH65GdFGWXlX7am6pwf9vVfvV+0jP17HlwleCo+4OyIN+w5UXMnLewhkBw==" },
  ],
};
// market.provenance.canonical() of the transfer (less hash and signature, plus token_id).
const PY_TRANSFER_CANONICAL = "{\"at\":1700000100000,\"from\":\"u_alice\",\"kind\":\"transfer\","
  + "\"prev_hash\":\"ea1111ddf68d0d61d7718fdc82001c20b64f143efb94c15a54d0c4191bd70fff\","
  + "\"price\":123456,\"reason\":\"auction\",\"ref\":\"auc \\\"✓\\\" \\\\ 𝄞\",\"seq\":2,"
  + "\"to\":\"u_bøb\",\"token_id\":"
  + "\"12794847424848361964945696604185028896348236956489696040163581130078403276731\"}";

const clone = (x) => structuredClone(x);
const kinds = (result) => result.problems.map((p) => `${p.index}:${p.kind}`);

test("the canonical encoding is the server's, byte for byte", async () => {
  const [, transfer] = PY.records;
  assert.equal(canonical(transfer, PY.token_id), PY_TRANSFER_CANONICAL);
  for (const rec of PY.records) assert.equal(await recordHash(rec, PY.token_id), rec.hash);
  // Key order in the object does not matter; code-point order does (UTF-16 order would put
  // U+1F600, stored as the surrogates D83D DE00, before U+FF21).
  const shuffled = Object.fromEntries(Object.entries(transfer).reverse());
  assert.equal(canonical(shuffled, PY.token_id), PY_TRANSFER_CANONICAL);
  assert.equal(canonical({ "\u{1F600}": 1, "\uFF21": 2 }, "1"), "{\"token_id\":\"1\",\"Ａ\":2,\"😀\":1}");
  assert.throws(() => canonical({ ...transfer, price: 1.5 }, PY.token_id), TypeError);
});

test("a chain signed by the server (Python) verifies in JS", async () => {
  const result = await verifyChain(PY.token_id, PY.records, PY.public_key);
  assert.deepEqual(result, { ok: true, problems: [] });
});

// ---- chains made here with Node's own crypto ------------------------------------------------

function makeKey() {
  const { publicKey, privateKey } = generateKeyPairSync("ed25519");
  const raw = publicKey.export({ format: "der", type: "spki" }).subarray(-32);
  return { privateKey, publicKey: Buffer.from(raw).toString("base64") };
}

function seal(tokenId, rec, privateKey) {
  const hash = createHash("sha256").update(canonical(rec, tokenId), "utf8").digest("hex");
  const signature = sign(null, Buffer.from(hash, "hex"), privateKey).toString("base64");
  return { ...rec, hash, signature };
}

/** mint to u1, sold at auction to u2, sold on to u3. */
function makeChain(tokenId, privateKey) {
  const steps = [
    { kind: "mint", from: null, to: "u1", reason: null, ref: null, price: null },
    { kind: "transfer", from: "u1", to: "u2", reason: "auction", ref: "a1", price: 2500 },
    { kind: "transfer", from: "u2", to: "u3", reason: "offer", ref: "o1", price: 99_00 },
  ];
  const chain = [];
  for (const [i, step] of steps.entries()) {
    const prev = chain[i - 1];
    chain.push(seal(tokenId, { seq: i + 1, ...step, at: 1_700_000_000_000 + i,
      prev_hash: prev ? prev.hash : GENESIS }, privateKey));
  }
  return chain;
}

const TOKEN = "42";
const { privateKey, publicKey } = makeKey();
const GOOD = makeChain(TOKEN, privateKey);

test("a good chain verifies", async () => {
  assert.deepEqual(await verifyChain(TOKEN, GOOD, publicKey), { ok: true, problems: [] });
});

test("an edited field breaks its hash (and so its signature no longer matches)", async () => {
  const chain = clone(GOOD);
  chain[1].price = 1;
  const result = await verifyChain(TOKEN, chain, publicKey);
  assert.equal(result.ok, false);
  assert.deepEqual(kinds(result), ["1:hash"]);
});

test("a record re-hashed after an edit breaks the signature and the next link", async () => {
  const chain = clone(GOOD);
  chain[1].price = 1;
  chain[1].hash = createHash("sha256").update(canonical(chain[1], TOKEN)).digest("hex");
  assert.deepEqual(kinds(await verifyChain(TOKEN, chain, publicKey)), ["1:signature", "2:prev_hash"]);
});

test("swapped records break seq, links and owners", async () => {
  const chain = clone(GOOD);
  [chain[1], chain[2]] = [chain[2], chain[1]];
  const result = await verifyChain(TOKEN, chain, publicKey);
  assert.equal(result.ok, false);
  for (const kind of ["1:seq", "1:prev_hash", "1:owner", "2:seq", "2:prev_hash", "2:owner"]) {
    assert.ok(kinds(result).includes(kind), `${kind} in ${kinds(result)}`);
  }
});

test("a bad signature is caught", async () => {
  const chain = clone(GOOD);
  const sig = Buffer.from(chain[2].signature, "base64");
  sig[10] ^= 1;
  chain[2].signature = sig.toString("base64");
  assert.deepEqual(kinds(await verifyChain(TOKEN, chain, publicKey)), ["2:signature"]);
  chain[2].signature = "not base64!";
  assert.deepEqual(kinds(await verifyChain(TOKEN, chain, publicKey)), ["2:signature"]);
});

test("a chain signed by another key fails every signature", async () => {
  const other = makeKey();
  assert.deepEqual(kinds(await verifyChain(TOKEN, GOOD, other.publicKey)),
    ["0:signature", "1:signature", "2:signature"]);
  const result = await verifyChain(TOKEN, GOOD, "AAAA");
  assert.equal(result.ok, false);
  assert.deepEqual(kinds(result), ["null:key"]);
});

test("a chain replayed onto another token fails every hash", async () => {
  assert.deepEqual(kinds(await verifyChain("43", GOOD, publicKey)), ["0:hash", "1:hash", "2:hash"]);
});

test("broken owner continuity is caught even when correctly signed", async () => {
  const chain = GOOD.slice(0, 2);
  chain.push(seal(TOKEN, { seq: 3, kind: "transfer", from: "u9", to: "u3", reason: "offer",
    ref: "o1", price: 1, at: 1, prev_hash: chain[1].hash }, privateKey));
  const result = await verifyChain(TOKEN, chain, publicKey);
  assert.deepEqual(kinds(result), ["2:owner"]);
  assert.match(result.problems[0].message, /"u9" is not the owner "u2"/);
});

test("nothing may follow a redeem", async () => {
  const chain = GOOD.slice(0, 2);
  chain.push(seal(TOKEN, { seq: 3, kind: "redeem", from: "u2", to: null, reason: null, ref: null,
    price: null, at: 1, prev_hash: chain[1].hash }, privateKey));
  assert.deepEqual(await verifyChain(TOKEN, chain, publicKey), { ok: true, problems: [] });
  chain.push(seal(TOKEN, { seq: 4, kind: "transfer", from: null, to: "u4", reason: "admin",
    ref: null, price: null, at: 2, prev_hash: chain[2].hash }, privateKey));
  assert.deepEqual(kinds(await verifyChain(TOKEN, chain, publicKey)), ["3:after_redeem"]);
});

test("a malformed record, a missing mint and an empty chain are problems", async () => {
  const chain = clone(GOOD);
  delete chain[0].price;
  const result = await verifyChain(TOKEN, chain, publicKey);
  assert.deepEqual(kinds(result), ["0:shape", "0:hash"]); // the signature is over the stated hash
  assert.deepEqual(kinds(await verifyChain(TOKEN, GOOD.slice(1), publicKey)),
    ["0:seq", "0:owner", "0:prev_hash"]);
  assert.deepEqual(await verifyChain(TOKEN, [], publicKey), {
    ok: false, problems: [{ index: 0, seq: null, kind: "empty",
      message: "no records: a token starts with its mint" }] });
});

// ---- runtimes without Ed25519 (or without WebCrypto) ----------------------------------------

/** Node's WebCrypto, less Ed25519: what an older browser offers. */
const noEd25519 = {
  digest: (alg, data) => crypto.subtle.digest(alg, data),
  importKey: async () => { throw new DOMException("Unrecognized algorithm name", "NotSupportedError"); },
  verify: async () => { throw new Error("unreachable"); },
};

test("without Ed25519 the signatures are reported unchecked, not passed", async () => {
  assert.deepEqual(await verifyChain(TOKEN, GOOD, publicKey, noEd25519),
    { ok: null, problems: [], reason: "unsupported" });
  const chain = clone(GOOD);
  chain[1].to = "u7";
  const result = await verifyChain(TOKEN, chain, publicKey, noEd25519);
  assert.equal(result.ok, false);
  assert.equal(result.reason, "unsupported");
  assert.deepEqual(kinds(result), ["1:hash", "2:owner"]);
});

test("without WebCrypto only links, seq and owners are checked", async () => {
  assert.deepEqual(await verifyChain(TOKEN, GOOD, publicKey, null),
    { ok: null, problems: [], reason: "no-webcrypto" });
  const chain = clone(GOOD);
  chain[2].seq = 7;
  assert.deepEqual(kinds(await verifyChain(TOKEN, chain, publicKey, null)), ["2:seq"]);
});

test("what the page says about each outcome", async () => {
  const { verdict } = await import("../../gateway/static/provenance.js");
  assert.deepEqual(
    [verdict({ ok: true, problems: [] }, 1).state, verdict({ ok: true, problems: [] }, 1).title],
    ["verified", "Verified in your browser"]);
  const broken = verdict(await verifyChain("43", GOOD.slice(0, 1), publicKey), 1);
  assert.deepEqual([broken.state, broken.title], ["broken", "Broken: hash does not match the record"]);
  assert.equal(verdict({ ok: false, problems: [{}, {}] }, 2).title, "Broken: 2 problems");
  const partial = verdict({ ok: null, problems: [], reason: "unsupported" }, 3);
  assert.deepEqual([partial.state, partial.title],
    ["partial", "Hashes verified; signatures not checkable in this browser"]);
  assert.equal(verdict({ ok: null, problems: [], reason: "no-webcrypto" }, 3).state, "unverifiable");
  assert.equal(verdict(await verifyChain(TOKEN, [], publicKey), 0).state, "empty");
});
