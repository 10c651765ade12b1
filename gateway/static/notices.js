// The signed-in user's notices: the events of the WebSocket channel "me" (payments, outbids,
// wins, sales, transfers...). Pure: no DOM, no network, so it runs under `node --test`.
//
// State: {lastSeq, items, unread}
//   lastSeq  the seq of the last event taken (null before the first ack): resubscribe with it
//   items    the latest notices, newest first (at most MAX_NOTICES)
//   unread   how many arrived since the list was last opened
//
// describeNotice(event) words one as a sentence: a list of parts, each a string or a link
// {text, href}, so the page can render links and a toast can use the plain text.

import { formatCents } from "./money.js";
import { dateTime, shortId } from "./format.js";

export const MAX_NOTICES = 50;

export function createNotices() {
  return { lastSeq: null, items: [], unread: 0 };
}

/**
 * A message of the "me" channel: an `ack` (where the user's feed is) or an `event`.
 * Returns {state, fresh}: `fresh` the events new to us, oldest first (to toast and apply).
 */
export function receiveNotice(state, message) {
  if (!message || message.channel !== "me") return { state, fresh: [] };
  if (message.op === "ack") {
    // The first ack says where the feed starts; after a resume the replayed events follow it.
    // An ack below what we saw: the server's feed is not the one we followed (reset): its
    // numbering rules from now on.
    if (Number.isInteger(message.seq) && (state.lastSeq === null || message.seq < state.lastSeq)) {
      return { state: { ...state, lastSeq: message.seq }, fresh: [] };
    }
    return { state, fresh: [] };
  }
  if (message.op !== "event" || !Number.isInteger(message.seq) || typeof message.type !== "string") {
    return { state, fresh: [] };
  }
  if (state.lastSeq !== null && message.seq <= state.lastSeq) return { state, fresh: [] };
  const { op: _op, channel: _channel, req_id: _reqId, ...event } = message;
  const items = [event, ...state.items].slice(0, MAX_NOTICES);
  return {
    state: { lastSeq: message.seq, items, unread: Math.min(state.unread + 1, MAX_NOTICES) },
    fresh: [event],
  };
}

export function markRead(state) {
  return state.unread === 0 ? state : { ...state, unread: 0 };
}

// ---- wording --------------------------------------------------------------------------------

export const CAUSE_LABEL = {
  deposit: "Deposit", withdrawal: "Withdrawal", settlement: "Settlement", fee: "Fee", offer: "Offer",
};

const auctionHref = (id) => `#/auction/${encodeURIComponent(id)}`;
const tokenHref = (id) => `#/token/${encodeURIComponent(id)}`;
const WALLET = "#/wallet";

/** The auction's title as a link to its room (or plain words without an id). */
function auctionLink(event) {
  const text = event.title || (event.auction_id ? `auction ${shortId(event.auction_id, 10, 4)}` : "an auction");
  return event.auction_id ? { text, href: auctionHref(event.auction_id) } : text;
}

function money(cents) {
  return formatCents(cents);
}

function paymentParts(event) {
  const amount = Number.isInteger(event.amount) ? Math.abs(event.amount) : null;
  const credit = Number.isInteger(event.amount) && event.amount > 0;
  const balance = [" Balance: ", { text: money(event.balance), href: WALLET }, "."];
  const auction = typeof event.ref === "string" && event.ref.startsWith("a_")
    ? [" (", { text: `auction ${shortId(event.ref, 10, 4)}`, href: auctionHref(event.ref) }, ")"] : [];
  switch (event.cause) {
    case "deposit":
      return [`Deposit of ${money(amount)} received.`, ...balance];
    case "withdrawal":
      return [`Withdrawal of ${money(amount)} sent.`, ...balance];
    case "settlement":
      return [credit ? `You were paid ${money(amount)} for a sale` : `You paid ${money(amount)} for a win`,
        ...auction, ".", ...balance];
    case "fee":
      return [`A fee of ${money(amount)} was charged`, ...auction, ".", ...balance];
    case "offer":
      return [credit ? `You received ${money(amount)} from an offer.` : `You paid ${money(amount)} for an offer.`,
        ...balance];
    default:
      return [`${credit ? "Credit" : "Debit"} of ${money(amount)}.`, ...balance];
  }
}

function transferParts(event, incoming) {
  const token = event.token_id
    ? { text: `token ${shortId(event.token_id)}`, href: tokenHref(event.token_id) } : "a card";
  const how = event.reason === "auction" && event.ref
    ? [" at ", { text: `auction ${shortId(event.ref, 10, 4)}`, href: auctionHref(event.ref) }]
    : event.reason === "offer" ? [" by an offer"] : event.reason === "admin" ? [" by the exchange"] : [];
  return incoming
    ? ["A card joined your collection (", token, ")", ...how, "."]
    : ["A card left your collection (", token, ")", ...how, "."];
}

/**
 * {parts, tone, href}: the sentence (strings and {text, href} links), a tone for its colour
 * ("good", "bad", "info") and the notice's main link.
 */
export function describeNotice(event) {
  const e = event || {};
  const room = e.auction_id ? auctionHref(e.auction_id) : null;
  switch (e.type) {
    case "payment":
      return { parts: paymentParts(e), tone: e.amount > 0 ? "good" : "info", href: WALLET };
    case "outbid":
      return { parts: ["You were outbid on ", auctionLink(e), `: the price is now ${money(e.amount)}.`],
        tone: "bad", href: room };
    case "won": {
      const premium = Number.isInteger(e.premium) && e.premium > 0
        ? ` + ${money(e.premium)} buyer's premium = ${money(e.total)}` : "";
      return { parts: ["You won ", auctionLink(e), ` for ${money(e.price)}${premium}.`], tone: "good", href: room };
    }
    case "lost":
      return { parts: ["You didn't win ", auctionLink(e), `: it sold for ${money(e.price)}.`], tone: "info", href: room };
    case "sold": {
      const fee = Number.isInteger(e.seller_fee) && e.seller_fee > 0
        ? ` After the ${money(e.seller_fee)} seller fee you receive ${money(e.net)}.` : "";
      return { parts: ["You sold ", auctionLink(e), ` for ${money(e.price)}.${fee}`], tone: "good", href: room };
    }
    case "transfer_in":
      return { parts: transferParts(e, true), tone: "good", href: e.token_id ? tokenHref(e.token_id) : null };
    case "transfer_out":
      return { parts: transferParts(e, false), tone: "info", href: e.token_id ? tokenHref(e.token_id) : null };
    case "second_chance":
      return { parts: ["Second chance: the winner of ", auctionLink(e),
        ` could not pay. You may buy it at your last bid, ${money(e.price)}`,
        Number.isFinite(e.expires_at) ? ` (until ${dateTime(e.expires_at)}).` : "."],
      tone: "good", href: room };
    case "payment_failed":
      return { parts: ["Payment failed for ", auctionLink(e),
        `: the winner could not pay ${money(e.required)} (${money(e.price)} + premium). `
        + "The sale is off and the card stays with the seller."], tone: "bad", href: room };
    default:
      return { parts: [`Notice: ${e.type || "update"}.`], tone: "info", href: null };
  }
}

/** The sentence as plain text (for a toast or a label). */
export function noticeText(event) {
  return describeNotice(event).parts.map((part) => (typeof part === "string" ? part : part.text)).join("");
}
