// Trade offers, the pure part: no DOM, no network, no clock (the caller passes `now`), so it
// runs under `node --test`. An offer's state in words, an offer seen by one of its parties, a
// list kept current by the "me" channel's events, the header's count of offers awaiting you,
// the composer's form checked into a request body, refusals and notices in words.
//
// An offer is the server's: {offer_id, thread_id, from_id, to_id, give: {assets, cash},
// want: {assets, cash}, message, expires_at, parent_id, child_id, status, reason, created_at,
// updated_at, seq}; `give` is what the sender (from_id) gives. Cash is integer cents.

import { dateTime, duration, shortId } from "./format.js";
import { centsToInput, formatCents, parseDollars } from "./money.js";

export const MAX_ASSETS_PER_SIDE = 10;
export const MAX_MESSAGE = 500;
const HOUR_S = 3600;
const DAY_S = 24 * HOUR_S;
export const MIN_EXPIRES_IN = HOUR_S;
export const MAX_EXPIRES_IN = 30 * DAY_S;
export const DEFAULT_EXPIRES_IN = 7 * DAY_S;
export const EXPIRY_CHOICES = [
  { seconds: HOUR_S, label: "1 hour" }, { seconds: DAY_S, label: "1 day" },
  { seconds: 3 * DAY_S, label: "3 days" }, { seconds: 7 * DAY_S, label: "7 days" },
  { seconds: 14 * DAY_S, label: "14 days" }, { seconds: 30 * DAY_S, label: "30 days" },
];

// ---- an offer's state in words ------------------------------------------------------------

export const STATUS_LABEL = {
  active: "Active", accepted: "Accepted — swapping", settled: "Settled", failed: "Failed",
  declined: "Declined", cancelled: "Cancelled", expired: "Expired", countered: "Countered",
  invalidated: "No longer valid",
};

/** The status as it stands at `now`: an active offer past its expiry is expired (the server
 * stores that at `expires_at`; its event may come a moment later). */
export function statusOf(offer, now) {
  if (offer.status === "active" && Number.isFinite(now) && now >= offer.expires_at) return "expired";
  return offer.status;
}

export function statusLabel(status) {
  return STATUS_LABEL[status] || String(status || "—");
}

/** "live" (active, accepted), "good" (settled), "bad" (failed, invalidated) or "over". */
export function statusTone(status) {
  if (status === "active" || status === "accepted") return "live";
  if (status === "settled") return "good";
  if (status === "failed" || status === "invalidated") return "bad";
  return "over";
}

const INVALIDATED_WHY = {
  asset_moved: "a card in it changed hands", asset_traded: "a card in it was traded in another offer",
  asset_sold: "a card in it was sold at auction", asset_redeemed: "a card in it was redeemed out of the vault",
};

const FAILED_WHY = {
  INSUFFICIENT_FUNDS: "the party paying the cash did not have enough funds",
  ASSET_MOVED: "a card had changed hands", NOT_OWNER: "a card had changed hands",
  ASSET_LISTED: "a card was listed in an auction", ASSET_REDEEMED: "a card was redeemed out of the vault",
  ASSET_NOT_FOUND: "a card no longer exists", PROVENANCE_CONFLICT: "a card's provenance could not be extended",
};

const failedWhy = (code) => FAILED_WHY[code] || `the exchange ${code ? `reported ${code}` : "could not complete it"}`;
const invalidWhy = (code) => INVALIDATED_WHY[code] || "a card in it is no longer available";

/** Why a failed or invalidated offer ended, in a sentence (null for other statuses). */
export function reasonText(offer) {
  if (offer.status === "failed") return `The swap failed: ${failedWhy(offer.reason)}. Nothing changed hands.`;
  if (offer.status === "invalidated") return `This offer can no longer be accepted: ${invalidWhy(offer.reason)}.`;
  return null;
}

/** {text, urgent}: "Expires in 6d 23h" while active, when it expired, or "" once settled etc. */
export function expiryText(offer, now) {
  const status = statusOf(offer, now);
  const left = offer.expires_at - now;
  if (!Number.isFinite(left)) return { text: "", urgent: false };
  if (status === "active") return { text: `Expires in ${duration(left)}`, urgent: left < HOUR_S * 1000 };
  return { text: status === "expired" ? `Expired ${dateTime(offer.expires_at)}` : "", urgent: false };
}

// ---- an offer seen by one of its parties --------------------------------------------------

const NO_SIDE = { assets: [], cash: 0 };

/**
 * {role, other, youGive, youGet}: role "sender" or "recipient" (null for neither), the other
 * party's id, and the two sides from `me`'s point of view.
 */
export function perspective(offer, me) {
  const give = offer.give || NO_SIDE;
  const want = offer.want || NO_SIDE;
  if (offer.to_id === me) {
    return { role: "recipient", other: offer.from_id, otherName: offer.from_name || null, youGive: want, youGet: give };
  }
  if (offer.from_id === me) {
    return { role: "sender", other: offer.to_id, otherName: offer.to_name || null, youGive: give, youGet: want };
  }
  return { role: null, other: null, otherName: null, youGive: give, youGet: want };
}

/** What `me` may do now: accept/decline/counter (its recipient), cancel (its sender). */
export function actionsFor(offer, me, now) {
  if (statusOf(offer, now) !== "active") return [];
  if (offer.to_id === me) return ["accept", "decline", "counter"];
  if (offer.from_id === me) return ["cancel"];
  return [];
}

/** "2 cards + $2.00", "1 card", "$5.00", "nothing". */
export function sideWords(side) {
  const s = side || NO_SIDE;
  const n = (s.assets || []).length;
  const parts = [];
  if (n) parts.push(`${n} card${n === 1 ? "" : "s"}`);
  if (Number.isInteger(s.cash) && s.cash > 0) parts.push(formatCents(s.cash));
  return parts.length ? parts.join(" + ") : "nothing";
}

// ---- lists kept current by events ---------------------------------------------------------

function newestFirst(a, b) {
  return (b.created_at - a.created_at) || (a.offer_id < b.offer_id ? 1 : a.offer_id > b.offer_id ? -1 : 0);
}

/** The list with `offer` in it (replacing an older version; a stale one changes nothing),
 * newest first. Returns the same array when nothing changed. */
export function mergeOffer(list, offer) {
  const at = list.findIndex((o) => o.offer_id === offer.offer_id);
  if (at >= 0) {
    if (!(offer.seq > list[at].seq)) return list;
    const next = list.slice();
    next[at] = offer;
    return next;
  }
  return [...list, offer].sort(newestFirst);
}

/** Does `offer` belong to a list of `box` ("in": sent to me, "out": sent by me), filtered
 * by `status` (null: any)? */
export function inBox(offer, { box, me, status = null }) {
  const mine = box === "in" ? offer.to_id === me : offer.from_id === me;
  return mine && (!status || offer.status === status);
}

/** A list after an offer's news: a listed offer is updated (even if it no longer matches the
 * status filter: it does not vanish under the reader's eyes); a new one joins if it belongs. */
export function applyOffer(list, offer, where) {
  if (list.some((o) => o.offer_id === offer.offer_id)) return mergeOffer(list, offer);
  return inBox(offer, where) ? mergeOffer(list, offer) : list;
}

/** The offer carried by an `offer_received` / `offer_updated` event, or null. */
export function offerFromEvent(event) {
  if (!event || (event.type !== "offer_received" && event.type !== "offer_updated")) return null;
  const offer = event.offer;
  if (!offer || typeof offer.offer_id !== "string" || !Number.isInteger(offer.seq)) return null;
  return offer;
}

/** How many offers await `me`'s answer (sent to me, active, not yet expired). */
export function countWaiting(offers, me, now) {
  let n = 0;
  for (const offer of offers) if (offer.to_id === me && statusOf(offer, now) === "active") n += 1;
  return n;
}

// ---- the composer -----------------------------------------------------------------------
// A draft: {to, give: [asset_id], want: [asset_id], cashSide: "none" | "give" | "want",
// cash: "2.00" (as typed), message, expiresIn (seconds), parentId (a counter's offer)}.

export function emptyDraft(to = "") {
  return { to, give: [], want: [], cashSide: "none", cash: "", message: "", expiresIn: DEFAULT_EXPIRES_IN,
    parentId: null };
}

/** "#/offers/new?to=u_1&want=c_1,c_2&give=c_9&want_token=123": a draft and the tokens wanted
 * (a token page knows its token, not its asset id). */
export function draftFromQuery(query) {
  const list = (name) => (query.get(name) || "").split(",").map((s) => s.trim()).filter(Boolean);
  const draft = emptyDraft((query.get("to") || "").trim());
  draft.give = [...new Set(list("give"))];
  draft.want = [...new Set(list("want"))];
  return { draft, wantTokens: list("want_token") };
}

/** A counter's draft from an offer sent to me: my side is its other side (I give what it
 * wanted, I want what it gave, the cash keeps its direction), addressed back to its sender. */
export function counterDraft(offer) {
  const give = offer.give || NO_SIDE;
  const want = offer.want || NO_SIDE;
  const cashSide = want.cash > 0 ? "give" : give.cash > 0 ? "want" : "none";
  return {
    ...emptyDraft(offer.from_id),
    give: [...(want.assets || [])],
    want: [...(give.assets || [])],
    cashSide,
    cash: cashSide === "give" ? centsToInput(want.cash) : cashSide === "want" ? centsToInput(give.cash) : "",
    parentId: offer.offer_id,
  };
}

/**
 * The draft checked into a request body: {ok: true, body} or {ok: false, errors} with
 * errors {field: message} (fields: to, give, want, assets, cash, message, expiresIn). A
 * counter's body has no to_id (it goes back to the offer's sender).
 */
export function buildTerms(draft, me, { counter = false } = {}) {
  const errors = {};
  const to = String(draft.to || "").trim();
  if (!counter) {
    if (!to) errors.to = "Choose who the offer is for";
    else if (to === me) errors.to = "That's you: an offer goes to another collector";
  }
  const give = [...new Set(draft.give || [])];
  const want = [...new Set(draft.want || [])];
  if (give.length > MAX_ASSETS_PER_SIDE) errors.give = `At most ${MAX_ASSETS_PER_SIDE} cards on your side`;
  if (want.length > MAX_ASSETS_PER_SIDE) errors.want = `At most ${MAX_ASSETS_PER_SIDE} cards on their side`;
  if (!give.length && !want.length) errors.assets = "Pick at least one card, yours or theirs";
  else if (give.some((id) => want.includes(id))) errors.assets = "A card can't be on both sides";
  let cash = 0;
  if (draft.cashSide === "give" || draft.cashSide === "want") {
    const parsed = parseDollars(draft.cash);
    if (!parsed.ok) errors.cash = parsed.error;
    else if (parsed.cents === 0) errors.cash = "Enter an amount above zero, or choose no cash";
    else cash = parsed.cents;
  }
  const message = String(draft.message || "").trim();
  if (message.length > MAX_MESSAGE) errors.message = `At most ${MAX_MESSAGE} characters (${message.length} now)`;
  const expiresIn = Number(draft.expiresIn);
  if (!Number.isInteger(expiresIn) || expiresIn < MIN_EXPIRES_IN || expiresIn > MAX_EXPIRES_IN) {
    errors.expiresIn = "An offer lasts from 1 hour to 30 days";
  }
  if (Object.keys(errors).length) return { ok: false, errors };
  const body = {
    give: { assets: give, cash: draft.cashSide === "give" ? cash : 0 },
    want: { assets: want, cash: draft.cashSide === "want" ? cash : 0 },
    expires_in: expiresIn,
  };
  if (!counter) body.to_id = to;
  if (message) body.message = message;
  return { ok: true, body };
}

// ---- refusals in words ------------------------------------------------------------------

/** Worth sending again with the same req_id: no answer, or a passing overload. */
export function isRetryable(error) {
  if (!error) return false;
  return error.code === "NETWORK" || error.status >= 500 || error.status === 429
    || error.code === "UNAVAILABLE" || error.code === "OVERLOADED" || error.code === "RATE_LIMITED";
}

/**
 * A refused offer request as a sentence. `me`: the signed-in user; `name(assetId)`: a card's
 * title when known (else its id is shortened).
 */
export function offerErrorText(error, { me = null, name = () => null } = {}) {
  const d = error?.details || {};
  const card = d.asset_id ? `“${name(d.asset_id) || `card ${shortId(d.asset_id, 8, 4)}`}”` : "A card";
  switch (error?.code) {
    case "INVALID":
      if (d.field === "to_id") return "There's no such collector: check the user id.";
      return `The exchange refused these terms: ${error.message}.`;
    case "NOT_OWNER":
      return `${card} is no longer owned by the side that puts it in. Reload the cards and pick again.`;
    case "ASSET_LISTED":
      return `${card} is listed in a live auction: it can be traded once that auction is over or cancelled.`;
    case "ASSET_REDEEMED":
      return `${card} was redeemed out of the vault and can't be traded.`;
    case "ASSET_NOT_FOUND":
      return `${card} no longer exists.`;
    case "INSUFFICIENT_FUNDS": {
      const need = Number.isInteger(d.required) ? formatCents(d.required) : "the cash";
      if (d.user_id && me && d.user_id !== me) {
        return `The other collector can't pay ${need} right now, so the trade can't go through yet.`;
      }
      return Number.isInteger(d.available)
        ? `Not enough funds: this trade needs ${need} and you have ${formatCents(d.available)}. `
          + "Deposit in your wallet first."
        : `Not enough funds to pay ${need}. Deposit in your wallet first.`;
    }
    case "OFFER_NOT_ACTIVE":
      return d.status
        ? `This offer is no longer open: it is ${statusLabel(d.status).toLowerCase()}.`
        : "This offer is no longer open.";
    case "LIMIT_EXCEEDED":
      return Number.isInteger(d.limit)
        ? `You already have ${d.limit} open offers: cancel some before making more.`
        : "This offer already has an open counter-offer.";
    case "FORBIDDEN":
      return "Only an offer's recipient can accept, decline or counter it, and only its sender can cancel it.";
    case "OFFER_NOT_FOUND":
      return "This offer doesn't exist, or it isn't between you and another collector.";
    case "RATE_LIMITED":
      return "Too many offers at once: wait a moment and try again.";
    case "UNAVAILABLE":
    case "OVERLOADED":
      return "The exchange is busy: try again in a moment (the same request is sent, never twice).";
    case "NETWORK":
      return "Can't reach the exchange: try again (the same request is sent, never twice).";
    default:
      return error?.message || "Something went wrong.";
  }
}

// ---- notifications ------------------------------------------------------------------------

const offerHref = (id) => `#/offers/${encodeURIComponent(id)}`;
const who = (userId) => `user ${String(userId || "").slice(-6)}`;

/**
 * An offer event of the "me" channel as a notification ({parts, tone, href, quiet}; null for
 * other events). `quiet`: the reader's own doing (sending, accepting...): listed, not toasted.
 */
export function describeOfferNotice(event, me) {
  const offer = offerFromEvent(event);
  if (!offer) return null;
  const incoming = offer.to_id === me;
  const other = (incoming ? offer.from_name : offer.to_name) || who(incoming ? offer.from_id : offer.to_id);
  const link = { text: `offer ${incoming ? "from" : "to"} ${other}`, href: offerHref(offer.offer_id) };
  const say = (parts, tone, quiet = false) => ({ parts, tone, href: link.href, quiet });
  const yours = incoming ? "the " : "your ";
  switch (offer.status) {
    case "active":
      if (!incoming) return say(["Your ", link, " was sent."], "info", true);
      return say([offer.parent_id ? "You received a counter-" : "New trade ", link,
        `: you get ${sideWords(offer.give)}, you give ${sideWords(offer.want)}.`], "good");
    case "accepted":
      return say(incoming ? ["You accepted the ", link, ": the swap is under way."]
        : ["Your ", link, " was accepted: the swap is under way."], "info", incoming);
    case "settled":
      return say(["Trade done: ", yours, link, " settled. The cards and cash have moved."], "good");
    case "failed":
      return say(["The swap of ", yours, link, ` failed: ${failedWhy(offer.reason)}. Nothing changed hands.`], "bad");
    case "declined":
      return say(incoming ? ["You declined the ", link, "."] : ["Your ", link, " was declined."], "bad", incoming);
    case "cancelled":
      return say(incoming ? ["The ", link, " was withdrawn."] : ["You cancelled your ", link, "."], "info", !incoming);
    case "countered": // the counter is a notice of its own
      return say(incoming ? ["You countered the ", link, "."] : ["Your ", link, " was countered."], "info", true);
    case "expired":
      return say([incoming ? "The " : "Your ", link, " expired."], "info");
    case "invalidated":
      return say([incoming ? "The " : "Your ", link, ` can't be accepted any more: ${invalidWhy(offer.reason)}.`], "bad");
    default:
      return say(["The ", link, ` is ${statusLabel(offer.status).toLowerCase()}.`], "info");
  }
}
