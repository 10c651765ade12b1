// One auction in a list (the live list, a card's page): the card's name, set and year, its
// grading slab, the price, bids and time left. The whole tile opens the room; "Card details"
// opens the catalog card.

import { h, setText } from "../dom.js";
import { TYPE_LABEL, duration, gradeLabel, priceLine } from "../format.js";
import { formatCents } from "../money.js";
import { href } from "../router.js";
import { cardArt } from "./card_art.js";

/** "Base Set · 1999": the set, and the year when the set's name lacks it. */
export function setAndYear(card) {
  if (!card) return "";
  const year = card.year && !String(card.set || "").includes(String(card.year)) ? card.year : null;
  return [card.set, year].filter((x) => x !== null && x !== undefined && x !== "").join(" · ");
}

/** Build a tile: {el, view, refs}; updateTile() fills in what changes. */
export function buildTile(view) {
  const card = view.card || null;
  const grade = gradeLabel(card);
  const refs = {
    priceLabel: h("span", { class: "tile__label" }),
    price: h("span", { class: "tile__price", testid: "item-price" }),
    minBid: h("span", { testid: "item-min-bid" }),
    bids: h("span", { testid: "item-bid-count" }),
    countdown: h("span", { class: "tile__countdown", testid: "item-countdown" }),
  };
  const name = card?.name || view.title || "Untitled card";
  const detail = setAndYear(card);
  const el = h("article", { class: "tile tile--auction", testid: "auction-item",
    dataset: { auctionId: view.auction_id, cardId: card?.card_id || "" } },
  cardArt(view, card, "small"),
  h("div", { class: "tile__body" },
    h("h2", { class: "tile__title", title: view.title || name },
      h("a", { class: "tile__link", href: href("/auction/:id", { id: view.auction_id }),
        testid: "item-title" }, name)),
    detail || grade
      ? h("div", { class: "tile__row tile__row--card" },
        h("span", { class: "tile__set", testid: "item-set", text: detail }),
        grade ? h("span", { class: "slab", testid: "item-grade", dataset: { grader: card.grader || "" } }, grade) : null)
      : null,
    h("div", { class: "tile__row" },
      h("span", { class: `chip chip--${view.type}`, testid: "item-type", text: TYPE_LABEL[view.type] || view.type }),
      refs.countdown),
    h("div", { class: "tile__row tile__row--price" },
      h("div", null, refs.priceLabel, refs.price),
      h("div", { class: "tile__meta" }, refs.minBid, refs.bids)),
    card?.card_id
      ? h("a", { class: "tile__card-link", testid: "item-card-link",
        href: href("/card/:id", { id: card.card_id }) }, "Card details")
      : null));
  return { el, view, refs };
}

export function updateTile(item, now) {
  const { view, refs } = item;
  const [label, price] = priceLine(view);
  setText(refs.priceLabel, label);
  setText(refs.price, price);
  const minBid = view.min_bid;
  setText(refs.minBid, minBid === null || minBid === undefined ? "" : `Min ${formatCents(minBid)}`);
  setText(refs.bids, `${view.bid_count} bid${view.bid_count === 1 ? "" : "s"}`);
  const left = view.ends_at - now;
  setText(refs.countdown, view.status === "scheduled"
    ? `Starts in ${duration(view.starts_at - now)}`
    : left > 0 ? `${duration(left)} left` : "Closing…");
  refs.countdown.classList.toggle("is-urgent", left < 60_000);
}

/**
 * Keep `grid` showing `auctions` in order, reusing tiles by auction id (items: a Map kept by the
 * caller). Returns the earliest next_drop_at of a listed Dutch auction, or null.
 */
export function renderTiles(grid, items, auctions, now) {
  const seen = new Set();
  const drops = [];
  auctions.forEach((view, index) => {
    seen.add(view.auction_id);
    let item = items.get(view.auction_id);
    if (!item || (item.view.card?.card_id || "") !== (view.card?.card_id || "")) {
      item?.el.remove();
      item = buildTile(view);
      items.set(view.auction_id, item);
    }
    item.view = view;
    if (Number.isInteger(view.next_drop_at)) drops.push(view.next_drop_at);
    if (grid.children[index] !== item.el) grid.insertBefore(item.el, grid.children[index] || null);
    updateTile(item, now);
  });
  for (const [id, item] of items) {
    if (!seen.has(id)) {
      item.el.remove();
      items.delete(id);
    }
  }
  return drops.length ? Math.min(...drops) : null;
}
