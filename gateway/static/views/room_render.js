// Filling in the auction room from its state (room.room, see room_state.js). Every number shown
// is the server's: the minimum bid, a Dutch auction's current price and its next drop.

import { flash, h, setText } from "../dom.js";
import { STATUS_LABEL, clockTime, duration, priceLine, secondsToDrop } from "../format.js";
import { centsToInput, formatCents } from "../money.js";
import { showsExtended } from "../room_state.js";
import { live, me, who } from "../shell.js";
import { renderHistory } from "./room_history.js";
import { renderYouPay, saleFacts } from "./room_money.js";

const BID_ERRORS = {
  SELF_BID: "You can't bid on your own auction",
  AUCTION_NOT_FOUND: "This auction no longer exists",
  UNAUTHORIZED: "Your session has expired — please sign in again",
  RATE_LIMITED: "Too many bids in a short time — wait a moment and try again",
  OVERLOADED: "The exchange is busy right now — please try again",
  UNAVAILABLE: "The exchange is busy right now — please try again",
};

/** A refused bid, in words. */
export function bidErrorText(reply) {
  if (reply.code === "BID_TOO_LOW") {
    const base = Number.isInteger(reply.min_bid)
      ? `Bid too low — minimum ${formatCents(reply.min_bid)}` : "Bid too low";
    if (/already lead/.test(reply.message || "")) {
      return `${base}. You already lead: to raise, enter a maximum above your current one`;
    }
    if (/replacement/.test(reply.message || "")) {
      return `${base}. A new sealed bid must be higher than your previous one`;
    }
    return base;
  }
  if (reply.code === "AUCTION_NOT_LIVE") {
    return reply.status ? `This auction is ${reply.status} — bids are closed` : "Bids are closed";
  }
  if (reply.code === "INVALID") return `Invalid bid: ${reply.message}`;
  if (reply.code === "INSUFFICIENT_FUNDS") {
    const need = Number.isInteger(reply.required) ? ` This bid needs ${formatCents(reply.required)} with the buyer's premium.` : "";
    const have = Number.isInteger(reply.available) ? ` You have ${formatCents(reply.available)} available.` : "";
    return `Insufficient funds.${need}${have} Add funds in your wallet.`;
  }
  return BID_ERRORS[reply.code] || reply.message || reply.code;
}

export function renderRoom(room, now) {
  const view = room.view;
  const r = room.refs;
  const mine = me();
  const isSeller = mine !== null && view.seller_id === mine;
  const isLive = view.status === "live";

  setText(r.title, view.title || "Untitled card");
  const cardId = view.card?.card_id || room.asset?.card_id;
  r.cardLink.hidden = !cardId;
  if (cardId) r.cardLink.href = `#/card/${encodeURIComponent(cardId)}`;
  setText(r.seller, who(view.seller_id, "member"));
  setText(r.status, STATUS_LABEL[view.status] || view.status);
  r.status.className = `chip chip--status chip--${view.status}`;
  r.status.dataset.status = view.status;

  const [label, price] = priceLine(view);
  setText(r.priceLabel, label);
  if (r.price.textContent !== price) {
    const first = r.price.textContent === "";
    setText(r.price, price);
    if (!first && view.type !== "dutch") flash(r.price);
  }
  setText(r.priceNote, priceNote(view, now));

  const sealedLive = view.type === "sealed" && view.status !== "closed";
  setText(r.leader, sealedLive ? "Sealed" : who(view.leader_id));
  r.leader.dataset.userId = sealedLive ? "" : view.leader_id || "";
  r.leader.classList.toggle("is-you", !sealedLive && !!mine && view.leader_id === mine);
  setText(r.bidCount, String(view.bid_count));
  setText(r.reserve, reserveText(view));
  renderCountdown(room, now);
  renderStanding(room, mine, isSeller);
  renderResult(room, mine);

  // Which panel: the bid form, "sign in to bid", or the seller's own view.
  r.bidPanel.hidden = !isLive || !mine || isSeller;
  r.signedOut.hidden = !isLive || !!mine;
  r.sellerPanel.hidden = !isLive || !isSeller;
  if (isSeller) {
    setText(r.sellerNote, view.bid_count === 0
      ? "This is your listing. You can cancel it until the first bid arrives."
      : "This is your listing. Bids are in, so it can no longer be cancelled.");
    r.cancel.hidden = view.bid_count > 0;
  }
  renderBidForm(room, mine);
  renderHistory(room);
  document.title = `${price} · ${view.title || "Auction"} — ECE`;
}

function priceNote(view, now) {
  if (view.status !== "live") return "";
  if (view.type === "dutch") {
    const seconds = secondsToDrop(view, now);
    return `Floor ${formatCents(view.floor_price)} · drops ${formatCents(view.step)}`
      + (seconds === null ? " · at the floor" : ` in ${seconds}s`);
  }
  if (view.type === "sealed") {
    return `Bids from ${formatCents(view.min_bid ?? view.start_price)} · the highest bid wins and pays the second-highest`;
  }
  return Number.isInteger(view.min_bid) ? `Next bid from ${formatCents(view.min_bid)}` : "";
}

function reserveText(view) {
  if (view.type === "dutch") return formatCents(view.floor_price);
  if (view.reserve_met === true) return "Met";
  if (view.reserve_met === false) return view.status === "closed" ? "Not met" : "Not met yet";
  if (view.type === "sealed" && view.status !== "closed") return "Revealed at close";
  return "No reserve";
}

export function renderCountdown(room, now) {
  const view = room.view;
  const r = room.refs;
  let label = "Ends in";
  let text;
  if (view.status === "scheduled") {
    label = "Starts in";
    text = duration(view.starts_at - now);
  } else if (view.status === "live") {
    const left = view.ends_at - now;
    text = left > 0 ? duration(left) : "Closing…";
    r.countdown.classList.toggle("is-urgent", left < Math.max(view.soft_close_ms || 0, 30_000));
  } else {
    label = view.status === "cancelled" ? "Cancelled" : "Ended";
    text = Number.isInteger(view.ends_at) ? clockTime(view.ends_at) : "—";
    r.countdown.classList.remove("is-urgent");
  }
  setText(r.countdownLabel, label);
  setText(r.countdown, text);
  setText(r.endsAt, view.status === "live" ? `at ${clockTime(view.ends_at)}` : "");
  const extended = showsExtended(room.room, Date.now());
  if (extended && r.extended.hidden) flash(r.countdown);
  r.extended.hidden = !extended;
  if (extended) {
    const by = Math.round(room.room.extended.by / 1000);
    setText(r.extended, by > 0 ? `Extended +${by}s` : "Extended");
  }
}

function hasBidden(room, mine) {
  if (!mine) return false;
  for (const event of room.room.history.values()) {
    if (event.type === "bid" && event.bidder_id === mine) return true;
  }
  return false;
}

function renderStanding(room, mine, isSeller) {
  const view = room.view;
  const r = room.refs;
  let text = "";
  let kind = "";
  if (mine && isSeller) {
    text = "Your listing";
  } else if (mine && view.status === "closed") {
    if (view.winner_id === mine) [text, kind] = ["You won this card", "good"];
    else if (hasBidden(room, mine) || localStorage.getItem(room.sealedKey())) [text, kind] = ["You didn't win this one", "bad"];
  } else if (mine && view.status === "live") {
    if (view.type === "sealed") {
      const sealed = Number(localStorage.getItem(room.sealedKey()) || 0);
      if (sealed) [text, kind] = [`Your sealed bid: ${formatCents(sealed)}`, "good"];
    } else if (view.leader_id === mine) {
      [text, kind] = ["You're the high bidder", "good"];
    } else if (hasBidden(room, mine)) {
      [text, kind] = ["You've been outbid", "bad"];
    }
  }
  setText(r.standing, text);
  r.standing.dataset.kind = kind;
}

function renderResult(room, mine) {
  const view = room.view;
  const r = room.refs;
  if (view.status !== "closed" && view.status !== "cancelled") {
    r.result.hidden = true;
    return;
  }
  r.result.hidden = false;
  r.result.dataset.outcome = view.status === "cancelled" ? "cancelled" : view.winner_id ? "sold" : "unsold";
  const key = `${view.status}|${view.winner_id}|${view.final_price}|${mine}|${view.reserve_met}|${view.seller_id}`;
  if (r.result.dataset.key === key) return;
  r.result.dataset.key = key;
  if (view.status === "cancelled") {
    r.result.replaceChildren(h("h2", { class: "result__title", text: "Cancelled" }),
      h("p", { text: "The seller withdrew this card before any bids." }),
      h("span", { testid: "winner", hidden: true, text: "No winner" }));
    return;
  }
  if (view.winner_id) {
    r.result.replaceChildren(
      h("h2", { class: "result__title", text: view.winner_id === mine ? "Sold — to you!" : "Sold" }),
      h("dl", { class: "result__facts" },
        h("div", null, h("dt", null, "Winner"),
          h("dd", { testid: "winner", dataset: { userId: view.winner_id }, text: who(view.winner_id) })),
        h("div", null, h("dt", null, "Final price"),
          h("dd", { testid: "final-price", text: formatCents(view.final_price) })),
        saleFacts(view, mine)),
      ...(view.winner_id === mine
        ? [h("p", { text: "Congratulations — the card is now in your collection." })] : []));
    return;
  }
  const reason = view.bid_count === 0 ? "No bids were placed."
    : view.reserve_met === false ? "Bids did not reach the seller's reserve price."
      : "No bid met the terms of the sale.";
  r.result.replaceChildren(
    h("h2", { class: "result__title", text: "Not sold" }),
    h("dl", { class: "result__facts" },
      h("div", null, h("dt", null, "Winner"), h("dd", { testid: "winner", text: "No winner" })),
      h("div", null, h("dt", null, "Final price"), h("dd", { testid: "final-price", text: "—" }))),
    h("p", { text: reason }));
}

function renderBidForm(room, mine) {
  const view = room.view;
  const r = room.refs;
  const minBid = view.min_bid; // a live Dutch auction's is its current price
  setText(r.minBid, formatCents(minBid));
  if (!room.amountDirty && document.activeElement !== r.amount && Number.isInteger(minBid)) {
    const value = centsToInput(minBid);
    if (r.amount.value !== value) r.amount.value = value;
  }
  const leading = view.type === "english" && mine && view.leader_id === mine;
  r.maxField.hidden = view.type !== "english";
  setText(r.bidHeading, view.type === "dutch" ? "Buy at the current price"
    : view.type === "sealed" ? "Submit a sealed bid"
      : leading ? "Raise your maximum" : "Place a bid");
  setText(r.amountLabel, view.type === "dutch" ? "Your offer" : "Your bid");
  setText(r.submit, room.busy ? "Sending…"
    : view.type === "dutch" ? `Buy now at ${formatCents(minBid)}`
      : view.type === "sealed" ? "Submit sealed bid" : "Place bid");
  const buyNow = view.type === "english" && view.bid_count === 0 && Number.isInteger(view.buy_now_price);
  r.buyNow.hidden = !buyNow;
  if (buyNow) setText(r.buyNow, `Buy it now for ${formatCents(view.buy_now_price)}`);
  const offline = live.state !== "live";
  r.submit.disabled = room.busy || offline;
  r.buyNow.disabled = room.busy || offline;
  r.submit.title = offline ? "Reconnecting — bids are paused" : "";
  renderYouPay(room);
}
