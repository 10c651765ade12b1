// Trade offers' pure rules and words (gateway/static/offers_model.js): `node --test tests/js/`.

import assert from "node:assert/strict";
import { test } from "node:test";

import {
  DEFAULT_EXPIRES_IN, actionsFor, applyOffer, buildTerms, countWaiting, counterDraft, describeOfferNotice,
  draftFromQuery, emptyDraft, expiryText, isRetryable, mergeOffer, offerErrorText, offerFromEvent, perspective,
  reasonText, sideWords, statusLabel, statusOf, statusTone,
} from "../../gateway/static/offers_model.js";

const NOW = 1_700_000_000_000;
const HOUR = 3_600_000;
const ANN = "u_ann";
const BEN = "u_ben";

function offer(fields = {}) {
  return {
    offer_id: "of_1", thread_id: "of_1", from_id: ANN, to_id: BEN,
    give: { assets: ["c_ann"], cash: 200 }, want: { assets: ["c_ben"], cash: 0 },
    message: "my card and $2 for yours", expires_at: NOW + 7 * 24 * HOUR, parent_id: null, child_id: null,
    status: "active", reason: null, created_at: NOW, updated_at: NOW, seq: 1, ...fields,
  };
}

const event = (type, o, seq = 10) => ({ seq, type, at: NOW, offer_id: o.offer_id, status: o.status, offer: o });

test("status: an active offer past its expiry reads expired; labels and tones", () => {
  const o = offer();
  assert.equal(statusOf(o, NOW), "active");
  assert.equal(statusOf(o, o.expires_at), "expired");
  assert.equal(statusOf(offer({ status: "settled" }), o.expires_at + 1), "settled");
  assert.equal(statusLabel("invalidated"), "No longer valid");
  assert.equal(statusLabel("settled"), "Settled");
  assert.equal(statusLabel("weird"), "weird");
  assert.deepEqual(["active", "accepted", "settled", "failed", "invalidated", "declined"].map(statusTone),
    ["live", "live", "good", "bad", "bad", "over"]);
});

test("reasons: failures and invalidations in words, nothing for other statuses", () => {
  assert.match(reasonText(offer({ status: "failed", reason: "INSUFFICIENT_FUNDS" })), /did not have enough funds.*Nothing changed hands/);
  assert.match(reasonText(offer({ status: "failed", reason: "ASSET_MOVED" })), /changed hands/);
  assert.match(reasonText(offer({ status: "failed", reason: "SOMETHING_NEW" })), /SOMETHING_NEW/);
  assert.match(reasonText(offer({ status: "invalidated", reason: "asset_sold" })), /can no longer be accepted: a card in it was sold at auction/);
  assert.match(reasonText(offer({ status: "invalidated", reason: "asset_redeemed" })), /redeemed/);
  assert.match(reasonText(offer({ status: "invalidated", reason: "asset_traded" })), /traded in another offer/);
  assert.match(reasonText(offer({ status: "invalidated", reason: null })), /no longer available/);
  assert.equal(reasonText(offer({ status: "declined" })), null);
});

test("expiry: a countdown while active (urgent in the last hour), the date once expired", () => {
  const o = offer({ expires_at: NOW + 2 * HOUR + 5 * 60_000 });
  assert.deepEqual(expiryText(o, NOW), { text: "Expires in 2h 05m", urgent: false });
  assert.deepEqual(expiryText(o, o.expires_at - 65_000), { text: "Expires in 1:05", urgent: true });
  assert.match(expiryText(o, o.expires_at).text, /^Expired /);
  assert.equal(expiryText(offer({ status: "settled" }), NOW).text, "");
});

test("perspective: each party sees what they give and what they get", () => {
  const o = offer();
  const sender = perspective(o, ANN);
  assert.equal(sender.role, "sender");
  assert.equal(sender.other, BEN);
  assert.deepEqual(sender.youGive, { assets: ["c_ann"], cash: 200 });
  assert.deepEqual(sender.youGet, { assets: ["c_ben"], cash: 0 });
  const recipient = perspective(o, BEN);
  assert.equal(recipient.role, "recipient");
  assert.equal(recipient.other, ANN);
  assert.deepEqual(recipient.youGive, { assets: ["c_ben"], cash: 0 });
  assert.deepEqual(recipient.youGet, { assets: ["c_ann"], cash: 200 });
  assert.equal(perspective(o, "u_eve").role, null);
  assert.equal(sideWords(o.give), "1 card + $2.00");
  assert.equal(sideWords({ assets: ["a", "b"], cash: 0 }), "2 cards");
  assert.equal(sideWords({ assets: [], cash: 0 }), "nothing");
});

test("actions: the recipient accepts, declines or counters; the sender cancels; only while active", () => {
  const o = offer();
  assert.deepEqual(actionsFor(o, BEN, NOW), ["accept", "decline", "counter"]);
  assert.deepEqual(actionsFor(o, ANN, NOW), ["cancel"]);
  assert.deepEqual(actionsFor(o, "u_eve", NOW), []);
  assert.deepEqual(actionsFor(o, BEN, o.expires_at), [], "expired here already");
  for (const status of ["accepted", "settled", "countered", "declined", "invalidated"]) {
    assert.deepEqual(actionsFor(offer({ status }), BEN, NOW), [], status);
  }
});

test("lists: newest first, a newer version replaces, a stale one changes nothing", () => {
  const a = offer({ offer_id: "of_a", created_at: NOW });
  const b = offer({ offer_id: "of_b", created_at: NOW + 5 });
  let list = mergeOffer(mergeOffer([], a), b);
  assert.deepEqual(list.map((o) => o.offer_id), ["of_b", "of_a"]);
  const settled = { ...a, status: "settled", seq: 3 };
  list = mergeOffer(list, settled);
  assert.equal(list[1].status, "settled");
  const same = mergeOffer(list, { ...a, status: "accepted", seq: 2 });
  assert.equal(same, list, "stale: the same array");
  assert.equal(mergeOffer(list, settled), list, "a replay: the same array");
});

test("lists from events: a new offer joins its box; a listed one updates even past the filter", () => {
  const inbox = { box: "in", me: BEN, status: null };
  const o = offer();
  let list = applyOffer([], o, inbox);
  assert.equal(list.length, 1);
  assert.deepEqual(applyOffer([], o, { box: "out", me: BEN, status: null }), [], "not sent by me");
  assert.deepEqual(applyOffer([], o, { ...inbox, status: "settled" }), [], "filtered out");
  list = applyOffer(list, { ...o, status: "settled", seq: 3 }, { ...inbox, status: "active" });
  assert.equal(list[0].status, "settled", "stays, updated");
  const counter = offer({ offer_id: "of_2", from_id: BEN, to_id: ANN, parent_id: "of_1", created_at: NOW + 9 });
  assert.deepEqual(applyOffer(list, counter, inbox), list, "Ben's counter is not in Ben's inbox");
  assert.equal(applyOffer([], counter, { box: "in", me: ANN, status: null }).length, 1);
});

test("events: offers come from offer_received / offer_updated only", () => {
  const o = offer();
  assert.equal(offerFromEvent(event("offer_received", o)), o);
  assert.equal(offerFromEvent(event("offer_updated", o)), o);
  assert.equal(offerFromEvent({ type: "payment", amount: 5 }), null);
  assert.equal(offerFromEvent({ type: "offer_updated", offer: { offer_id: "x" } }), null, "no seq");
  assert.equal(offerFromEvent(null), null);
});

test("waiting: offers sent to me, active and not expired", () => {
  const list = [offer(), offer({ offer_id: "of_2", status: "settled" }), offer({ offer_id: "of_3", from_id: BEN, to_id: ANN }),
    offer({ offer_id: "of_4", expires_at: NOW - 1 })];
  assert.equal(countWaiting(list, BEN, NOW), 1);
  assert.equal(countWaiting(list, ANN, NOW), 1);
  assert.equal(countWaiting([], BEN, NOW), 0);
});

test("composer: a draft from the URL", () => {
  const { draft, wantTokens } = draftFromQuery(new URLSearchParams("to=%20u_ben%20&want=c_1,c_2,c_1&want_token=123"));
  assert.equal(draft.to, "u_ben");
  assert.deepEqual(draft.want, ["c_1", "c_2"]);
  assert.deepEqual(draft.give, []);
  assert.deepEqual(wantTokens, ["123"]);
  assert.equal(draft.expiresIn, DEFAULT_EXPIRES_IN);
  assert.equal(draft.cashSide, "none");
});

test("counter: the offer turned to my side, the cash keeping its direction", () => {
  const draft = counterDraft(offer());
  assert.equal(draft.to, ANN);
  assert.deepEqual(draft.give, ["c_ben"]);
  assert.deepEqual(draft.want, ["c_ann"]);
  assert.equal(draft.cashSide, "want", "Ann added $2: Ben's counter asks for it");
  assert.equal(draft.cash, "2.00");
  assert.equal(draft.parentId, "of_1");
  const asked = counterDraft(offer({ give: { assets: ["c_ann"], cash: 0 }, want: { assets: ["c_ben"], cash: 1050 } }));
  assert.equal(asked.cashSide, "give");
  assert.equal(asked.cash, "10.50");
  assert.equal(counterDraft(offer({ give: { assets: ["c_ann"], cash: 0 } })).cashSide, "none");
  const body = buildTerms({ ...draft, cash: "5" }, BEN, { counter: true });
  assert.deepEqual(body, { ok: true, body: {
    give: { assets: ["c_ben"], cash: 0 }, want: { assets: ["c_ann"], cash: 500 }, expires_in: DEFAULT_EXPIRES_IN } });
});

test("composer: the form into a request body", () => {
  const draft = { ...emptyDraft(BEN), give: ["c_ann"], want: ["c_ben"], cashSide: "give", cash: "$2.00",
    message: "  hello  ", expiresIn: 3600 };
  assert.deepEqual(buildTerms(draft, ANN), { ok: true, body: {
    to_id: BEN, give: { assets: ["c_ann"], cash: 200 }, want: { assets: ["c_ben"], cash: 0 },
    expires_in: 3600, message: "hello" } });
  const noCash = buildTerms({ ...draft, cashSide: "none", cash: "abc", message: "" }, ANN);
  assert.equal(noCash.body.give.cash, 0, "the amount is ignored without a side");
  assert.equal(noCash.body.message, undefined);
});

test("composer: what the exchange would refuse is caught first", () => {
  const base = { ...emptyDraft(BEN), give: ["c_ann"] };
  const errors = (draft, me = ANN, options) => buildTerms(draft, me, options).errors || {};
  assert.match(errors({ ...base, to: "" }).to, /Choose who/);
  assert.match(errors({ ...base, to: ANN }).to, /That's you/);
  assert.equal(errors({ ...base, to: "" }, ANN, { counter: true }).to, undefined, "a counter has its addressee");
  assert.match(errors({ ...base, give: [] }).assets, /at least one card/);
  assert.match(errors({ ...base, want: ["c_ann"] }).assets, /both sides/);
  assert.match(errors({ ...base, give: Array.from({ length: 11 }, (_, i) => `c_${i}`) }).give, /At most 10/);
  assert.match(errors({ ...base, cashSide: "want", cash: "" }).cash, /Enter an amount/);
  assert.match(errors({ ...base, cashSide: "want", cash: "0" }).cash, /above zero/);
  assert.match(errors({ ...base, cashSide: "give", cash: "1.234" }).cash, /two decimals/);
  assert.match(errors({ ...base, message: "x".repeat(501) }).message, /At most 500/);
  assert.match(errors({ ...base, expiresIn: 60 }).expiresIn, /1 hour to 30 days/);
  assert.match(errors({ ...base, expiresIn: 31 * 24 * 3600 }).expiresIn, /1 hour to 30 days/);
  assert.equal(buildTerms({ ...base, expiresIn: 30 * 24 * 3600 }, ANN).ok, true);
  assert.equal(buildTerms({ ...base, give: ["c_a", "c_a"] }, ANN).body.give.assets.length, 1, "duplicates dropped");
});

test("errors: each code in words", () => {
  const err = (code, details = {}, status = 400, message = "m") => ({ code, status, message, details });
  const name = (id) => (id === "c_1" ? "Charizard" : null);
  assert.match(offerErrorText(err("NOT_OWNER", { asset_id: "c_1" }, 403), { name }), /“Charizard” is no longer owned/);
  assert.match(offerErrorText(err("ASSET_LISTED", { asset_id: "c_2" }, 409), { name }), /card c_2.*listed in a live auction/);
  assert.match(offerErrorText(err("INSUFFICIENT_FUNDS", { available: 100, required: 500, user_id: ANN }), { me: ANN }),
    /needs \$5\.00 and you have \$1\.00/);
  assert.match(offerErrorText(err("INSUFFICIENT_FUNDS", { available: 100, required: 500, user_id: ANN }), { me: BEN }),
    /other collector can't pay \$5\.00/);
  assert.match(offerErrorText(err("OFFER_NOT_ACTIVE", { status: "cancelled" }, 409)), /no longer open: it is cancelled/);
  assert.match(offerErrorText(err("LIMIT_EXCEEDED", { limit: 50 }, 409)), /50 open offers/);
  assert.match(offerErrorText(err("LIMIT_EXCEEDED", {}, 409)), /open counter-offer/);
  assert.match(offerErrorText(err("FORBIDDEN", {}, 403)), /Only an offer's recipient/);
  assert.match(offerErrorText(err("OFFER_NOT_FOUND", {}, 404)), /doesn't exist/);
  assert.match(offerErrorText(err("INVALID", { field: "to_id" })), /no such collector/);
  assert.match(offerErrorText(err("INVALID", { field: "give" }, 400, "give: an offer needs at least one asset")),
    /refused these terms: give: an offer needs/);
  assert.match(offerErrorText(err("NETWORK", {}, 0)), /never twice/);
  assert.equal(offerErrorText(err("WHATEVER", {}, 400, "odd")), "odd");
});

test("retries: only lost or overloaded requests", () => {
  assert.equal(isRetryable({ code: "NETWORK", status: 0 }), true);
  assert.equal(isRetryable({ code: "UNAVAILABLE", status: 503 }), true);
  assert.equal(isRetryable({ code: "RATE_LIMITED", status: 429 }), true);
  assert.equal(isRetryable({ code: "HTTP_502", status: 502 }), true);
  assert.equal(isRetryable({ code: "INVALID", status: 400 }), false);
  assert.equal(isRetryable({ code: "OFFER_NOT_ACTIVE", status: 409 }), false);
  assert.equal(isRetryable(null), false);
});

test("notices: worded for whoever reads them; one's own doings are quiet", () => {
  const text = (n) => n.parts.map((p) => (typeof p === "string" ? p : p.text)).join("");
  const o = offer();
  const received = describeOfferNotice(event("offer_received", o), BEN);
  assert.match(text(received), /^New trade offer from user u_ann: you get 1 card \+ \$2\.00, you give 1 card\.$/);
  assert.equal(received.href, "#/offers/of_1");
  assert.equal(received.quiet, false);
  assert.equal(describeOfferNotice(event("offer_updated", o), ANN).quiet, true, "Ann sent it");
  const counter = offer({ offer_id: "of_2", from_id: BEN, to_id: ANN, parent_id: "of_1" });
  assert.equal(text(describeOfferNotice(event("offer_received", counter), ANN)),
    "You received a counter-offer from user u_ben: you get 1 card + $2.00, you give 1 card.");
  assert.equal(text(describeOfferNotice(event("offer_updated", { ...o, status: "cancelled" }), BEN)),
    "The offer from user u_ann was withdrawn.");
  const settled = describeOfferNotice(event("offer_updated", { ...o, status: "settled", seq: 3 }), ANN);
  assert.equal(settled.tone, "good");
  assert.match(text(settled), /settled/);
  const failed = describeOfferNotice(event("offer_updated", { ...o, status: "failed", reason: "INSUFFICIENT_FUNDS" }), BEN);
  assert.equal(failed.tone, "bad");
  assert.match(text(failed), /enough funds/);
  assert.equal(describeOfferNotice(event("offer_updated", { ...o, status: "accepted" }), BEN).quiet, true);
  assert.equal(describeOfferNotice(event("offer_updated", { ...o, status: "declined" }), ANN).quiet, false);
  assert.equal(describeOfferNotice(event("offer_updated", { ...o, status: "cancelled" }), ANN).quiet, true);
  assert.match(text(describeOfferNotice(event("offer_updated", { ...o, status: "invalidated", reason: "asset_sold" }), BEN)),
    /sold at auction/);
  assert.equal(describeOfferNotice({ type: "payment", amount: 5 }, BEN), null);
});
