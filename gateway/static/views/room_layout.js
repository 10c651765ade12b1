// The auction room's elements, built once per room; room_render.js fills them in.

import { h } from "../dom.js";
import { TYPE_LABEL } from "../format.js";
import { who } from "../shell.js";
import { cardArt } from "./card_art.js";
import { renderYouPay } from "./room_money.js";

export function crumbs() {
  return h("nav", { class: "crumbs", "aria-label": "Breadcrumb" }, h("a", { href: "#/" }, "← Live auctions"));
}

/** Build the room into room.root; returns the refs to the elements that change. */
export function buildRoom(room) {
  const view = room.view;
  const r = {};
  r.art = cardArt(view, null);
  r.title = h("h1", { class: "room__title", testid: "room-title", text: view.title || "Untitled card" });
  r.status = h("span", { class: "chip", testid: "status" });
  r.type = h("span", { class: `chip chip--${view.type}`, testid: "type", text: TYPE_LABEL[view.type] || view.type });
  r.priceLabel = h("div", { class: "price-block__label", id: "price-label" });
  // A Dutch price falls every few seconds: not announced on each step.
  r.price = h("div", { class: "price-block__price", testid: "price", "aria-labelledby": "price-label",
    "aria-live": view.type === "dutch" ? "off" : "polite" });
  r.standing = h("div", { class: "standing", testid: "standing", "aria-live": "polite" });
  r.priceNote = h("div", { class: "price-block__note", testid: "price-note" });
  r.leader = h("dd", { testid: "leader" });
  r.bidCount = h("dd", { testid: "bid-count" });
  r.reserve = h("dd", { testid: "reserve" });
  r.reserveLabel = h("dt", null, view.type === "dutch" ? "Floor" : "Reserve");
  r.countdownLabel = h("dt", null, "Ends in");
  r.countdown = h("span", { class: "countdown", testid: "countdown" });
  r.extended = h("span", { class: "extended", testid: "extended", hidden: true });
  r.endsAt = h("span", { class: "stat-sub", testid: "ends-at" });
  r.seller = h("span", { testid: "seller", text: who(view.seller_id, "member") });
  r.cardLink = h("a", { class: "room__card-link", testid: "room-card-link", hidden: true }, "Card details →");

  r.result = h("div", { class: "result", testid: "result", hidden: true, role: "status" });
  r.bidPanel = buildBidForm(room, r);
  r.signedOut = h("div", { class: "panel panel--cta", hidden: true },
    h("p", null, "Sign in to place a bid."),
    h("a", { class: "btn btn--primary", testid: "signin-to-bid",
      href: `#/signin?next=${encodeURIComponent(`#/auction/${room.id}`)}` }, "Sign in to bid"));
  r.cancel = h("button", { type: "button", class: "btn btn--danger btn--small", testid: "cancel-auction",
    onClick: () => room.cancelAuction() }, "Cancel listing");
  r.sellerNote = h("p", { testid: "seller-note" });
  r.sellerPanel = h("div", { class: "panel panel--cta", hidden: true }, r.sellerNote, r.cancel);

  r.history = h("ol", { class: "history", testid: "history", "aria-live": "polite", "aria-relevant": "additions" });
  r.historyNote = h("p", { class: "history__note" });

  room.root.setAttribute("aria-busy", "false");
  room.root.replaceChildren(crumbs(),
    h("div", { class: "room__grid" },
      h("div", { class: "room__art" }, r.art,
        h("p", { class: "room__ids" },
          h("span", null, "Auction ", h("code", { text: room.id })),
          h("span", null, "Seller ", r.seller))),
      h("div", { class: "room__main" },
        h("header", { class: "room__head" }, r.title,
          h("div", { class: "room__chips" }, r.status, r.type, r.cardLink)),
        h("div", { class: "price-block" }, r.priceLabel, r.price, r.priceNote, r.standing),
        h("dl", { class: "stats" },
          h("div", { class: "stat" }, h("dt", null, "Leader"), r.leader),
          h("div", { class: "stat" }, h("dt", null, "Bids"), r.bidCount),
          h("div", { class: "stat" }, r.reserveLabel, r.reserve),
          h("div", { class: "stat" }, r.countdownLabel, h("dd", null, r.countdown, r.extended, r.endsAt))),
        r.result, r.bidPanel, r.signedOut, r.sellerPanel),
      h("aside", { class: "room__history", "aria-labelledby": "history-heading" },
        h("h2", { id: "history-heading", class: "section-title", text: "Bid history" }),
        r.history, r.historyNote)));
  return r;
}

function buildBidForm(room, r) {
  r.amount = h("input", {
    id: "bid-amount", testid: "bid-amount", name: "amount", inputmode: "decimal", autocomplete: "off",
    "aria-describedby": "bid-min-note bid-you-pay", spellcheck: "false",
    onInput: () => { room.amountDirty = true; renderYouPay(room); },
  });
  r.max = h("input", {
    id: "bid-max", testid: "bid-max", name: "max_amount", inputmode: "decimal", autocomplete: "off",
    placeholder: "optional", "aria-describedby": "bid-max-note", spellcheck: "false",
    onInput: () => renderYouPay(room),
  });
  r.youPay = h("p", { class: "hint you-pay", id: "bid-you-pay", testid: "bid-you-pay" });
  r.minBid = h("span", { testid: "min-bid" });
  r.amountLabel = h("label", { for: "bid-amount" }, "Your bid");
  r.maxField = h("div", { class: "field" },
    h("label", { for: "bid-max" }, "Maximum ", h("span", { class: "optional", text: "(auto-bid)" })),
    h("div", { class: "money-input" }, h("span", { "aria-hidden": "true" }, "$"), r.max),
    h("p", { class: "hint", id: "bid-max-note" },
      "We raise your bid for you, one increment at a time, up to this amount. Others never see it."));
  r.submit = h("button", { type: "submit", class: "btn btn--primary btn--block", testid: "bid-submit" }, "Place bid");
  r.buyNow = h("button", { type: "button", class: "btn btn--gold btn--block", testid: "buy-now", hidden: true,
    onClick: () => room.submitBid(room.view.buy_now_price, null) });
  r.feedback = h("p", { class: "feedback", testid: "bid-feedback", role: "status", "aria-live": "polite" });
  r.bidHeading = h("h2", { class: "section-title", id: "bid-heading", text: "Place a bid" });
  return h("form", {
    class: "panel bid-form", testid: "bid-form", novalidate: true, "aria-labelledby": "bid-heading",
    onSubmit: (event) => { event.preventDefault(); room.submitFromForm(); },
  },
  r.bidHeading,
  h("div", { class: "bid-form__fields" },
    h("div", { class: "field" }, r.amountLabel,
      h("div", { class: "money-input" }, h("span", { "aria-hidden": "true" }, "$"), r.amount),
      h("p", { class: "hint", id: "bid-min-note" }, "Minimum ", r.minBid), r.youPay),
    r.maxField),
  h("div", { class: "bid-form__actions" }, r.submit, r.buyNow),
  r.feedback);
}
