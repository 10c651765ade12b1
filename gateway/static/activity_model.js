// A user's bidding behaviour (GET /api/analytics/me) as bars: the timing of their bids against
// the close, the hours of the day they bid at. Pure: no DOM (`node --test`).

// The server's timing buckets (time left before the close when a bid was placed), in words.
export const TIMING_LABEL = {
  ">24h": "More than a day before the close", "24h-1h": "1–24 hours before",
  "1h-10m": "10–60 minutes before", "10m-1m": "1–10 minutes before", "<1m": "Last minute",
};

/** A histogram as rows: [{label, count}] as given, or {label: count} in its own order. */
export function histogramRows(histogram) {
  if (Array.isArray(histogram)) return histogram;
  if (!histogram || typeof histogram !== "object") return [];
  return Object.entries(histogram).map(([label, count]) => ({ label, count }));
}

/** Counts as bars: [{label, count, fraction of the largest}] (malformed counts read 0); a label
 * in `words` is said in words. */
export function bars(histogram, words = {}) {
  const clean = histogramRows(histogram).map((r) => ({
    label: words[r?.label] ?? String(r?.label ?? ""), count: Number.isInteger(r?.count) && r.count > 0 ? r.count : 0,
  }));
  const max = Math.max(0, ...clean.map((r) => r.count));
  return clean.map((r) => ({ ...r, fraction: max ? r.count / max : 0 }));
}

/** 24 counts (the user's bids by hour of day, UTC) as bars labelled "00"–"23". */
export function hourBars(hours) {
  const list = Array.isArray(hours) && hours.length === 24 ? hours : new Array(24).fill(0);
  return bars(list.map((count, hour) => ({ label: String(hour).padStart(2, "0"), count })));
}

/** Nothing to show yet: no bids and nothing watched. */
export function activityIsEmpty(me) {
  if (!me) return true;
  const none = (x) => !Number.isInteger(x) || x === 0;
  return none(me.bids) && none(me.auctions_bid) && none(me.auctions_watched);
}

/** The "Watched" stat's words: of the closed auctions watched, how many were bid on. */
export function watchedText(me) {
  const watched = me && Number.isInteger(me.auctions_watched) ? me.auctions_watched : 0;
  if (!watched) return "auctions you followed live, signed in, before they closed";
  const bid = Number.isInteger(me.watched_and_bid) ? me.watched_and_bid : 0;
  const share = typeof me.watched_bid_share === "number" ? ` (${Math.round(me.watched_bid_share * 100)}%)` : "";
  return `auctions watched; you bid on ${bid} of them${share}`;
}
