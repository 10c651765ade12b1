// How times, durations, auction types and prices are worded. Pure: no DOM, no clock (the
// caller passes `now`). Money formatting is in money.js.

import { formatCents } from "./money.js";

export const TYPE_LABEL = { english: "English", dutch: "Dutch", sealed: "Sealed bid" };
export const STATUS_LABEL = {
  scheduled: "Scheduled", live: "Live", closed: "Closed", cancelled: "Cancelled",
};

/** 65_000 -> "1:05"; 7_200_000 -> "2h 00m"; 200_000_000 -> "2d 07h". */
export function duration(ms) {
  const total = Math.max(0, Math.ceil(ms / 1000));
  const days = Math.floor(total / 86_400);
  const hours = Math.floor((total % 86_400) / 3_600);
  const minutes = Math.floor((total % 3_600) / 60);
  const seconds = total % 60;
  const pad = (n) => String(n).padStart(2, "0");
  if (days > 0) return `${days}d ${pad(hours)}h`;
  if (hours > 0) return `${hours}h ${pad(minutes)}m`;
  return `${minutes}:${pad(seconds)}`;
}

/** A time of day in the reader's locale, to the second. */
export function clockTime(ms) {
  return new Date(ms).toLocaleTimeString([], { hour: "numeric", minute: "2-digit", second: "2-digit" });
}

/**
 * What the price line of an auction says: [label, amount text]. A live Dutch auction's
 * price is the server's (its view's `price`, refreshed at each `next_drop_at`).
 */
export function priceLine(view) {
  if (view.type === "sealed" && view.status !== "closed") return ["Sealed bids", "Sealed"];
  if (view.type === "dutch") {
    return [view.status === "live" ? "Price now" : "Price", formatCents(view.price)];
  }
  if (view.status === "closed") {
    return [view.winner_id ? "Sold for" : "Last bid", formatCents(view.final_price ?? view.price)];
  }
  if (view.price === null || view.price === undefined || view.bid_count === 0) {
    return ["Starting bid", formatCents(view.start_price)];
  }
  return ["Current bid", formatCents(view.price)];
}

/** Seconds until a Dutch auction's next price drop (0 once due), or null at the floor. */
export function secondsToDrop(view, now) {
  if (view.status !== "live" || !Number.isInteger(view.next_drop_at)) return null;
  return Math.max(0, Math.ceil((view.next_drop_at - now) / 1000));
}

/** An asset's grade as collectors write it: "PSA 10", "BGS 9.5", "Raw"; a card outside the
 * catalog shows the seller's own words. */
export function gradeLabel(asset) {
  if (!asset) return "";
  if (asset.grader === "RAW") return "Raw";
  if (asset.grader) return `${asset.grader} ${asset.grade}`;
  return typeof asset.grade === "string" ? asset.grade : "";
}

/** A long id kept recognisable: "50730646…22525" (head and tail), the whole id when short. */
export function shortId(id, head = 8, tail = 5) {
  const text = String(id ?? "");
  return text.length > head + tail + 1 ? `${text.slice(0, head)}…${text.slice(-tail)}` : text;
}

/** A date and time in the reader's locale: "Nov 5, 2026, 3:04 PM". */
export function dateTime(ms) {
  if (!Number.isFinite(ms)) return "—";
  return new Date(ms).toLocaleString([], { dateStyle: "medium", timeStyle: "short" });
}
