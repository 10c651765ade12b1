// Trade offers over the network: the REST calls, the cards they name (fetched once, kept), a
// request sent again with its req_id when no answer came, and the offers awaiting the
// signed-in user: counted in the header's "Offers" badge and kept current by the "me"
// channel's offer_received / offer_updated events (pure rules in offers_model.js).

import { clock, request } from "./api.js";
import { setText } from "./dom.js";
import { onNotice } from "./header.js";
import { countWaiting, isRetryable, mergeOffer, offerFromEvent } from "./offers_model.js";
import { onSessionChange, state } from "./shell.js";

const enc = encodeURIComponent;
const token = () => state.session?.token;

export const offersApi = {
  list: (box, { status = null, cursor = null, limit = 50 } = {}) => request("GET",
    `/api/offers?box=${box}&limit=${limit}${status ? `&status=${enc(status)}` : ""}`
    + `${cursor ? `&cursor=${enc(cursor)}` : ""}`, { token: token() }),
  get: (id) => request("GET", `/api/offers/${enc(id)}`, { token: token() }),
  create: (body) => request("POST", "/api/offers", { token: token(), body }),
  /** accept | decline | cancel ({req_id}) or counter ({req_id, give, want, ...}). */
  act: (id, action, body) => request("POST", `/api/offers/${enc(id)}/${action}`, { token: token(), body }),
};

// ---- the cards offers name ------------------------------------------------------------------

const assets = new Map(); // asset_id -> Promise of the asset (a failed fetch is forgotten)
const known = new Map(); // asset_id -> the asset, once fetched

/** GET /api/assets/{id}, once per page load (titles and grades do not change). */
export function assetInfo(assetId) {
  if (!assets.has(assetId)) {
    const pending = request("GET", `/api/assets/${enc(assetId)}`).then((asset) => {
      known.set(asset.asset_id, asset);
      return asset;
    }, (error) => {
      assets.delete(assetId);
      throw error;
    });
    assets.set(assetId, pending);
  }
  return assets.get(assetId);
}

/** A card's title if already known (for error messages), else null. */
export function knownTitle(assetId) {
  return known.get(assetId)?.title || null;
}

function remember(asset) {
  known.set(asset.asset_id, asset);
  assets.set(asset.asset_id, Promise.resolve(asset));
}

/** Every card `owner` ("me" or a user id) holds, not redeemed, newest first. */
export async function assetsOf(owner) {
  const all = [];
  let cursor = null;
  for (let page = 0; page < 20; page += 1) {
    const answer = await request("GET", `/api/assets?owner=${enc(owner)}${cursor ? `&cursor=${enc(cursor)}` : ""}`,
      { token: token() });
    all.push(...(answer.assets || []));
    cursor = answer.next_cursor;
    if (!cursor) break;
  }
  for (const asset of all) remember(asset);
  return all.filter((a) => !a.redeemed).sort((a, b) => (b.created_at || 0) - (a.created_at || 0));
}

// ---- sending ----------------------------------------------------------------------------------

const RETRY_DELAYS_MS = [400, 1_200, 3_000];
const wait = (ms) => new Promise((resolve) => { setTimeout(resolve, ms); });

/**
 * send() until it answers, again (the caller's send reuses its req_id, so the server acts at
 * most once) while the failure is a lost or overloaded request; the last error is thrown.
 */
export async function withRetries(send) {
  for (let attempt = 0; ; attempt += 1) {
    try {
      return await send();
    } catch (error) {
      if (!isRetryable(error) || attempt >= RETRY_DELAYS_MS.length) throw error;
      const after = Number(error.details?.retry_after);
      await wait(Number.isFinite(after) && after > 0 ? Math.min(after * 1000, 5_000) : RETRY_DELAYS_MS[attempt]);
    }
  }
}

// ---- offers awaiting the signed-in user (the header's badge) ------------------------------------

let incoming = []; // offers sent to the signed-in user, as last known (any status)
const listeners = new Set();

/** The offers sent to me that await my answer, now. */
export function waitingCount() {
  return countWaiting(incoming, state.session?.user_id, clock.now());
}

/** fn(count) when the count may have changed; returns an unsubscribe function. */
export function onWaiting(fn) {
  listeners.add(fn);
  return () => listeners.delete(fn);
}

/** Tell the tracker of an offer's new state (a page's own action's answer). */
export function noteOffer(offer) {
  if (offer && offer.to_id === state.session?.user_id) {
    incoming = mergeOffer(incoming, offer);
    renderBadge();
  }
}

let lastCount = null;
function renderBadge() {
  const count = state.session ? waitingCount() : 0;
  const badge = document.querySelector("[data-testid=offers-badge]");
  const link = document.querySelector("[data-testid=nav-offers]");
  if (badge) {
    badge.hidden = count === 0;
    setText(badge, count > 99 ? "99+" : String(count));
  }
  link?.setAttribute("aria-label", count ? `Offers, ${count} awaiting your answer` : "Offers");
  if (count !== lastCount) {
    lastCount = count;
    for (const fn of listeners) fn(count);
  }
}

async function loadWaiting() {
  const session = state.session;
  if (!session) return;
  try {
    const page = await offersApi.list("in", { status: "active", limit: 200 });
    if (state.session !== session) return;
    for (const offer of page.items || []) incoming = mergeOffer(incoming, offer);
    renderBadge();
  } catch {
    if (state.session === session) setTimeout(loadWaiting, 15_000);
  }
}

/** Start with the page: follow the signed-in user's offers (and every later sign-in). */
export function startOffersBadge() {
  const begin = () => {
    incoming = [];
    renderBadge();
    loadWaiting();
  };
  onSessionChange(begin);
  onNotice((event) => {
    const offer = offerFromEvent(event);
    if (offer) noteOffer(offer);
  });
  setInterval(renderBadge, 10_000); // offers expire on their own
  begin();
}
