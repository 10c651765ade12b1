// REST client, the signed-in session and an estimate of the server's clock.

const SESSION_KEY = "ece.session";

export class ApiError extends Error {
  constructor(status, code, message, details = {}) {
    super(message);
    this.status = status;
    this.code = code;
    this.details = details;
  }
}

export const session = {
  key: SESSION_KEY,
  load() {
    try {
      const value = JSON.parse(localStorage.getItem(SESSION_KEY) || "null");
      if (value && typeof value.token === "string" && typeof value.user_id === "string") {
        return value;
      }
    } catch {
      // a corrupt entry is treated as signed out
    }
    return null;
  },
  save(value) {
    const { token, user_id, username } = value;
    localStorage.setItem(SESSION_KEY, JSON.stringify({ token, user_id, username }));
  },
  clear() {
    localStorage.removeItem(SESSION_KEY);
  },
};

/**
 * Server time = local time + offset. Estimated from the HTTP Date header (1 s resolution), so
 * only a clearly wrong local clock (over ~1.5 s off) is corrected.
 */
export const clock = {
  offset: 0,
  samples: [],
  now() {
    return Date.now() + this.offset;
  },
  observe(dateHeader, sentAt, receivedAt) {
    const server = Date.parse(dateHeader || "");
    if (Number.isNaN(server)) return;
    // The header is truncated to the second: its true value is on average 500 ms later.
    this.samples.push(server + 500 - (sentAt + receivedAt) / 2);
    if (this.samples.length > 7) this.samples.shift();
    const sorted = [...this.samples].sort((a, b) => a - b);
    const median = sorted[Math.floor(sorted.length / 2)];
    this.offset = Math.abs(median) > 1500 ? Math.round(median) : 0;
  },
};

const NETWORK_MESSAGE = "Can't reach the server — check your connection";

export async function request(method, path, { body, token } = {}) {
  const headers = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (token) headers.Authorization = `Bearer ${token}`;
  const sentAt = Date.now();
  let response;
  try {
    response = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: "no-store",
    });
  } catch {
    throw new ApiError(0, "NETWORK", NETWORK_MESSAGE);
  }
  clock.observe(response.headers.get("Date"), sentAt, Date.now());
  let data = null;
  try {
    data = await response.json();
  } catch {
    data = null;
  }
  if (!response.ok) {
    const error = data && data.error ? data.error : {};
    const { code, message, ...details } = error;
    throw new ApiError(response.status, code || `HTTP_${response.status}`,
      message || response.statusText || "Request failed", details);
  }
  return data;
}

/** A fresh random id for one user action (a retry of the same action reuses it). */
export function newReqId() {
  const bytes = new Uint8Array(12);
  crypto.getRandomValues(bytes); // unlike randomUUID, also outside secure contexts
  return `r_${Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("")}`;
}

const enc = encodeURIComponent;

export const api = {
  signUp: (username, password) => request("POST", "/api/users", { body: { username, password } }),
  signIn: (username, password) =>
    request("POST", "/api/sessions", { body: { username, password } }),
  me: (token) => request("GET", "/api/me", { token }),
  liveAuctions: () => request("GET", "/api/auctions?status=live"),
  auction: (id) => request("GET", `/api/auctions/${encodeURIComponent(id)}`),
  asset: (id) => request("GET", `/api/assets/${encodeURIComponent(id)}`),
  myAssets: (token, cursor) => request("GET",
    `/api/assets?owner=me${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`, { token }),
  mint: (token, card) => request("POST", "/api/assets", { token, body: card }),
  createAuction: (token, terms) => request("POST", "/api/auctions", { token, body: terms }),
  token: (id) => request("GET", `/api/tokens/${encodeURIComponent(id)}`),
  provenance: (id) => request("GET", `/api/tokens/${encodeURIComponent(id)}/provenance`),
  tokenKey: () => request("GET", "/api/tokens/key"),
  verifyOnServer: (id) => request("GET", `/api/tokens/${encodeURIComponent(id)}/verify`),
  /** Live auctions matching a query of list_query.js's apiQuery ("status=live&q=..."). */
  auctions: (query) => request("GET", `/api/auctions?${query}`),
  card: (id) => request("GET", `/api/cards/${enc(id)}`),
  redeem: (token, assetId) => request("POST", `/api/assets/${enc(assetId)}/redeem`, { token }),
  wallet: (token, cursor = null, limit = 50) => request("GET",
    `/api/wallet?limit=${limit}${cursor ? `&cursor=${enc(cursor)}` : ""}`, { token }),
  deposit: (token, amount, reqId) =>
    request("POST", "/api/wallet/deposits", { token, body: { amount, req_id: reqId } }),
  withdraw: (token, amount, reqId) =>
    request("POST", "/api/wallet/withdrawals", { token, body: { amount, req_id: reqId } }),
  cancel: (token, id) =>
    request("POST", `/api/auctions/${encodeURIComponent(id)}/cancel`, { token }),

  // Analytics (gateway/analytics.py): price history, values, the market index, movers, behaviour.
  /** `query` from analytics_model.js's historyQuery (grader, grade, interval, cursor). */
  cardHistory: (id, query) => request("GET", `/api/cards/${enc(id)}/history?${query}`),
  cardValues: (id) => request("GET", `/api/cards/${enc(id)}/values`),
  marketIndex: (segment, interval) =>
    request("GET", `/api/market/index?segment=${enc(segment)}&interval=${enc(interval)}`),
  marketSegments: () => request("GET", "/api/market/segments"),
  movers: (window, limit = 10) => request("GET", `/api/market/movers?window=${enc(window)}&limit=${limit}`),
  marketSales: (limit = 30) => request("GET", `/api/market/sales?limit=${limit}`),
  myAnalytics: (token) => request("GET", "/api/analytics/me", { token }),
  marketAnalytics: () => request("GET", "/api/analytics/market"),
  // The portfolio (gateway/portfolio.py) and a value with the sales behind it (gateway/valuations.py).
  portfolio: (token) => request("GET", "/api/portfolio", { token }),
  portfolioHistory: (token, range = "1y") => request("GET", `/api/portfolio/history?range=${enc(range)}`, { token }),
  // Public portfolios (gateway/public_portfolio.py): opting in, and anyone's public one.
  portfolioVisibility: (token) => request("GET", "/api/portfolio/visibility", { token }),
  setPortfolioVisibility: (token, isPublic) =>
    request("PUT", "/api/portfolio/visibility", { token, body: { public: isPublic } }),
  publicPortfolio: (userId) => request("GET", `/api/users/${enc(userId)}/portfolio`),
  cardValue: (id, grader, grade) => request("GET",
    `/api/cards/${enc(id)}/value?grader=${enc(grader)}${grader === "RAW" || grade === null || grade === undefined ? "" : `&grade=${enc(grade)}`}`),

  /** Every event after `since`, following pages of up to 500. */
  async events(id, since = 0) {
    const all = [];
    let after = since;
    for (let page = 0; page < 50; page += 1) {
      const path = `/api/auctions/${encodeURIComponent(id)}/events?since=${after}&limit=500`;
      const { events } = await request("GET", path);
      all.push(...events);
      if (events.length < 500) break;
      after = events[events.length - 1].seq;
    }
    return all;
  },
};
