// ECE web UI: sign in, browse live auctions, bid in a room that updates over the WebSocket.
// Plain ES modules, no build step. Every piece of user-supplied text goes through
// textContent (never innerHTML).

import { ApiError, api, clock, session as sessionStore } from "./api.js";
import { Live } from "./live.js";
import { centsToInput, formatCents, incrementFor, parseDollars } from "./money.js";

const CONFIG = window.ECE_CONFIG || {};
const LIST_REFRESH_MS = 4_000;
const ROOM_RESYNC_MS = 15_000;
const HISTORY_LIMIT = 200;

// ---- small DOM helpers ----------------------------------------------------------------------

function h(tag, props, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(props || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") el.className = value;
    else if (key === "testid") el.dataset.testid = value;
    else if (key === "text") el.textContent = value;
    else if (key === "dataset") Object.assign(el.dataset, value);
    else if (key.startsWith("on") && typeof value === "function") {
      el.addEventListener(key.slice(2).toLowerCase(), value);
    } else if (value === true) el.setAttribute(key, "");
    else el.setAttribute(key, String(value));
  }
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : String(child));
  }
  return el;
}

function setText(el, text) {
  const value = String(text);
  if (el.textContent !== value) el.textContent = value;
}

function flash(el) {
  el.classList.remove("flash");
  void el.offsetWidth; // restart the animation
  el.classList.add("flash");
}

// ---- presentation helpers -------------------------------------------------------------------

const state = {
  session: sessionStore.load(),
  view: null, // the mounted page view
};

function me() {
  return state.session ? state.session.user_id : null;
}

/** "you" for the signed-in user, else a short, stable handle from the user id. */
function who(userId, noun = "bidder") {
  if (!userId) return "—";
  if (userId === me()) return "you";
  return `${noun} ${userId.slice(-6)}`;
}

const TYPE_LABEL = { english: "English", dutch: "Dutch", sealed: "Sealed bid" };
const STATUS_LABEL = { scheduled: "Scheduled", live: "Live", closed: "Closed", cancelled: "Cancelled" };

function duration(ms) {
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

function clockTime(ms) {
  return new Date(ms).toLocaleTimeString([], { hour: "numeric", minute: "2-digit", second: "2-digit" });
}

/** Dutch: the price falls by `step` every `step_ms` from `starts_at`, down to the floor. */
function dutchPrice(view, now) {
  const { start_price: start, floor_price: floor, step, step_ms: stepMs, starts_at: startsAt } = view;
  if (view.status !== "live" || ![start, floor, step, stepMs, startsAt].every(Number.isInteger)) {
    return view.price;
  }
  const steps = Math.max(0, Math.floor((now - startsAt) / stepMs));
  return Math.max(floor, start - steps * step);
}

function nextDutchDrop(view, now) {
  if (view.status !== "live" || !Number.isInteger(view.step_ms)) return null;
  if (dutchPrice(view, now) <= view.floor_price) return null;
  const elapsed = Math.max(0, now - view.starts_at);
  return view.step_ms - (elapsed % view.step_ms);
}

/** What the price line of an auction says: [label, amount text]. */
function priceLine(view, now) {
  if (view.type === "sealed" && view.status !== "closed") return ["Sealed bids", "Sealed"];
  if (view.type === "dutch") {
    return [view.status === "live" ? "Price now" : "Price", formatCents(dutchPrice(view, now))];
  }
  if (view.status === "closed") {
    return [view.winner_id ? "Sold for" : "Last bid", formatCents(view.final_price ?? view.price)];
  }
  if (view.price === null || view.price === undefined || view.bid_count === 0) {
    return ["Starting bid", formatCents(view.start_price)];
  }
  return ["Current bid", formatCents(view.price)];
}

function hueOf(text) {
  let hash = 0;
  for (const ch of String(text)) hash = (hash * 31 + ch.codePointAt(0)) >>> 0;
  return hash % 360;
}

function cardArt(view, asset, size = "large") {
  const hue = hueOf(view.asset_id || view.auction_id);
  const title = view.title || asset?.title || "Untitled card";
  const meta = [asset?.set, asset?.grade].filter((x) => typeof x === "string" && x).join(" · ");
  return h("div", { class: `card-art card-art--${size}`, style: `--hue:${hue}`, "aria-hidden": "true" },
    h("div", { class: "card-art__frame" },
      h("div", { class: "card-art__badge", text: TYPE_LABEL[view.type] || view.type }),
      h("div", { class: "card-art__glyph", text: title.trim().charAt(0).toUpperCase() || "?" }),
      h("div", { class: "card-art__title", text: title }),
      meta ? h("div", { class: "card-art__meta", text: meta }) : null));
}

// ---- toasts ---------------------------------------------------------------------------------

function toast(message, kind = "info") {
  const host = document.getElementById("toasts");
  const el = h("div", { class: `toast toast--${kind}`, role: kind === "error" ? "alert" : "status" },
    message);
  host.append(el);
  setTimeout(() => el.classList.add("toast--out"), 4_500);
  setTimeout(() => el.remove(), 5_000);
}

// ---- the live connection and the header ----------------------------------------------------

const CONNECTION_TEXT = {
  connecting: "Connecting…",
  live: "Live",
  reconnecting: "Reconnecting…",
  offline: "Offline",
};

const live = new Live({
  url() {
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const token = state.session ? `?token=${encodeURIComponent(state.session.token)}` : "";
    return `${scheme}://${location.host}/ws${token}`;
  },
  onState() {
    renderConnection();
    state.view?.onConnection?.();
  },
  onNotice(message) {
    if (message.code === "UNAUTHORIZED" && state.session) {
      signOut("Your session has expired — please sign in again");
    }
  },
});

function renderConnection() {
  const el = document.querySelector("[data-testid=connection-state]");
  if (!el) return;
  el.dataset.state = live.state;
  let text = CONNECTION_TEXT[live.state] || live.state;
  if (live.state === "reconnecting" && live.retryAt && !live.ws) {
    const seconds = Math.ceil((live.retryAt - Date.now()) / 1000);
    if (seconds > 0) text = `Reconnecting in ${seconds}s`;
  }
  setText(el.querySelector(".conn__label"), text);
  el.title = live.state === "live"
    ? "Connected: prices update live"
    : "Not connected: prices may be out of date until the connection is back";
}

function renderAccount() {
  const host = document.getElementById("account");
  host.replaceChildren();
  if (state.session) {
    const { username, user_id: userId } = state.session;
    host.append(
      h("span", { class: "account__user", testid: "session-user", dataset: { userId } },
        h("span", { class: "avatar", "aria-hidden": "true", text: username.charAt(0).toUpperCase() }),
        h("span", { class: "account__name", text: username })),
      h("button", { type: "button", class: "btn btn--ghost btn--small", testid: "signout",
        onClick: () => signOut() }, "Sign out"));
  } else {
    const current = parseRoute();
    const next = encodeURIComponent(current.name === "auth" ? current.next : location.hash || "#/");
    host.append(
      h("a", { class: "btn btn--ghost btn--small", href: `#/signin?next=${next}`, testid: "nav-signin" },
        "Sign in"),
      h("a", { class: "btn btn--primary btn--small", href: `#/signup?next=${next}`,
        testid: "nav-signup" }, "Create account"));
  }
}

function setSession(value) {
  state.session = value;
  if (value) sessionStore.save(value);
  else sessionStore.clear();
  renderAccount();
  live.restart(); // the socket authenticates with the token it was opened with
  state.view?.onSession?.();
}

function signOut(message) {
  setSession(null);
  if (message) toast(message, "error");
}

function requireSignIn(message = "Sign in to continue") {
  toast(message);
  location.hash = `#/signin?next=${encodeURIComponent(location.hash || "#/")}`;
}

// ---- routing --------------------------------------------------------------------------------

function parseRoute() {
  const hash = location.hash.replace(/^#/, "") || "/";
  const [path, query = ""] = hash.split("?");
  const params = new URLSearchParams(query);
  const parts = path.split("/").filter(Boolean);
  if (parts[0] === "auction" && parts[1]) return { name: "room", id: decodeURIComponent(parts[1]) };
  if (parts[0] === "sell") return { name: "sell" };
  if (parts[0] === "signin" || parts[0] === "signup") {
    return { name: "auth", mode: parts[0], next: params.get("next") || "#/" };
  }
  return { name: "list" };
}

function route() {
  const target = parseRoute();
  state.view?.unmount?.();
  const main = document.getElementById("main");
  main.replaceChildren();
  let view;
  if (target.name === "room") view = new RoomView(target.id);
  else if (target.name === "sell") view = new SellView();
  else if (target.name === "auth") view = new AuthView(target.mode, target.next);
  else view = new ListView();
  state.view = view;
  for (const link of document.querySelectorAll("[data-nav]")) {
    const current = link.dataset.nav === target.name;
    if (current) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  renderAccount();
  view.mount(main);
  document.title = view.title ? `${view.title} — ECE` : "ECE — Elite Card Exchange";
}

// ---- the list of live auctions --------------------------------------------------------------

class ListView {
  title = "Live auctions";

  mount(main) {
    this.items = new Map(); // auction_id -> {el, view, refs}
    this.grid = h("div", { class: "auction-grid", testid: "auction-list", "aria-live": "off" });
    this.empty = h("div", { class: "empty", hidden: true },
      h("p", { class: "empty__title", text: "No live auctions right now" }),
      h("p", null, "New listings appear here as soon as they open. "),
      h("a", { class: "btn btn--primary", href: "#/sell" }, "Sell a card"));
    this.status = h("p", { class: "list-status", role: "status", testid: "list-status" }, "Loading…");
    main.append(h("section", { class: "page" },
      h("div", { class: "page__head" },
        h("div", null,
          h("h1", { class: "page__title", text: "Live auctions" }),
          h("p", { class: "page__sub", text: "Graded and rare cards, bid in real time." })),
        h("div", { class: "page__tools" }, this.status,
          h("button", { type: "button", class: "btn btn--ghost btn--small", testid: "list-refresh",
            onClick: () => this.refresh() }, "Refresh"))),
      this.grid, this.empty));
    this.refresh();
    this.timer = setInterval(() => {
      if (document.visibilityState === "visible") this.refresh();
    }, LIST_REFRESH_MS);
  }

  unmount() {
    clearInterval(this.timer);
    this.gone = true;
  }

  async refresh() {
    try {
      const { auctions } = await api.liveAuctions();
      if (this.gone) return;
      this.render(auctions);
      setText(this.status, `Updated ${clockTime(Date.now())}`);
      this.status.classList.remove("list-status--error");
    } catch (error) {
      if (this.gone) return;
      setText(this.status, error instanceof ApiError && error.code === "NETWORK"
        ? "Offline — retrying" : "Couldn't refresh — retrying");
      this.status.classList.add("list-status--error");
    }
  }

  render(auctions) {
    const seen = new Set();
    auctions.forEach((view, index) => {
      seen.add(view.auction_id);
      let item = this.items.get(view.auction_id);
      if (!item) {
        item = this.build(view);
        this.items.set(view.auction_id, item);
      }
      item.view = view;
      if (this.grid.children[index] !== item.el) this.grid.insertBefore(item.el, this.grid.children[index] || null);
      this.update(item, clock.now());
    });
    for (const [id, item] of this.items) {
      if (!seen.has(id)) {
        item.el.remove();
        this.items.delete(id);
      }
    }
    this.empty.hidden = auctions.length > 0;
  }

  build(view) {
    const refs = {
      priceLabel: h("span", { class: "tile__label" }),
      price: h("span", { class: "tile__price", testid: "item-price" }),
      minBid: h("span", { testid: "item-min-bid" }),
      bids: h("span", { testid: "item-bid-count" }),
      countdown: h("span", { class: "tile__countdown", testid: "item-countdown" }),
    };
    const el = h("a", {
      class: "tile", href: `#/auction/${encodeURIComponent(view.auction_id)}`,
      testid: "auction-item", dataset: { auctionId: view.auction_id },
    },
    cardArt(view, null, "small"),
    h("div", { class: "tile__body" },
      h("h2", { class: "tile__title", testid: "item-title", text: view.title || "Untitled card" }),
      h("div", { class: "tile__row" },
        h("span", { class: `chip chip--${view.type}`, testid: "item-type",
          text: TYPE_LABEL[view.type] || view.type }),
        refs.countdown),
      h("div", { class: "tile__row tile__row--price" },
        h("div", null, refs.priceLabel, refs.price),
        h("div", { class: "tile__meta" }, refs.minBid, refs.bids))));
    return { el, view, refs };
  }

  update(item, now) {
    const { view, refs } = item;
    const [label, price] = priceLine(view, now);
    setText(refs.priceLabel, label);
    setText(refs.price, price);
    const minBid = view.type === "dutch" ? dutchPrice(view, now) : view.min_bid;
    setText(refs.minBid, minBid === null || minBid === undefined ? "" : `Min ${formatCents(minBid)}`);
    setText(refs.bids, `${view.bid_count} bid${view.bid_count === 1 ? "" : "s"}`);
    const left = view.ends_at - now;
    setText(refs.countdown, view.status === "scheduled"
      ? `Starts in ${duration(view.starts_at - now)}`
      : left > 0 ? `${duration(left)} left` : "Closing…");
    refs.countdown.classList.toggle("is-urgent", left < 60_000);
  }

  tick(now) {
    for (const item of this.items.values()) this.update(item, now);
  }
}

// ---- the auction room -----------------------------------------------------------------------

const BID_ERRORS = {
  SELF_BID: "You can't bid on your own auction",
  AUCTION_NOT_FOUND: "This auction no longer exists",
  UNAUTHORIZED: "Your session has expired — please sign in again",
  RATE_LIMITED: "Too many bids in a short time — wait a moment and try again",
  OVERLOADED: "The exchange is busy right now — please try again",
  UNAVAILABLE: "The exchange is busy right now — please try again",
};

function bidErrorText(reply) {
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
  return BID_ERRORS[reply.code] || reply.message || reply.code;
}

class RoomView {
  constructor(id) {
    this.id = id;
    this.view = null;
    this.asset = null;
    this.lastSeq = 0;
    this.events = new Map(); // seq -> public event, for the history
    this.renderedHistory = "";
    this.amountDirty = false;
    this.busy = false;
    this.extended = null; // {until, by}
    this.gone = false;
  }

  get title() {
    return this.view?.title || "Auction";
  }

  mount(main) {
    this.root = h("section", { class: "page room", testid: "room", "aria-busy": "true" },
      h("nav", { class: "crumbs", "aria-label": "Breadcrumb" },
        h("a", { href: "#/" }, "← Live auctions")),
      h("p", { class: "loading", text: "Loading auction…" }));
    main.append(this.root);
    this.load();
  }

  unmount() {
    this.gone = true;
    clearInterval(this.resyncTimer);
    clearTimeout(this.refreshTimer);
    live.unsubscribe(this.id);
  }

  // ---- data -------------------------------------------------------------------------------

  async load() {
    let view;
    try {
      view = await api.auction(this.id);
    } catch (error) {
      if (this.gone) return;
      this.showLoadError(error);
      return;
    }
    if (this.gone) return;
    this.view = { ...view };
    this.lastSeq = view.seq;
    this.build();
    try {
      this.absorb(await api.events(this.id, 0));
    } catch {
      // History is optional for the room to work; the resync tries again.
    }
    if (this.gone) return;
    this.render();
    live.subscribe(this.id, {
      since: () => this.lastSeq,
      onMessage: (message) => this.onLive(message),
      onError: (message) => {
        if (message.code === "AUCTION_NOT_FOUND") this.showLoadError(new ApiError(404, message.code, ""));
      },
    });
    this.resyncTimer = setInterval(() => this.resync(), ROOM_RESYNC_MS);
    api.asset(view.asset_id).then((asset) => {
      if (this.gone) return;
      this.asset = asset;
      this.refs.art.replaceWith(this.refs.art = cardArt(this.view, asset));
    }).catch(() => {});
    document.title = `${this.title} — ECE`;
  }

  showLoadError(error) {
    const notFound = error instanceof ApiError && error.status === 404;
    this.root.setAttribute("aria-busy", "false");
    this.root.replaceChildren(
      h("nav", { class: "crumbs", "aria-label": "Breadcrumb" }, h("a", { href: "#/" }, "← Live auctions")),
      h("div", { class: "empty", testid: "room-error" },
        h("p", { class: "empty__title", text: notFound ? "Auction not found" : "Couldn't load this auction" }),
        h("p", { text: notFound ? "It may have been removed, or the link is wrong." : error.message }),
        notFound ? null : h("button", { type: "button", class: "btn btn--primary",
          onClick: () => { this.root.replaceChildren(h("p", { class: "loading", text: "Loading auction…" })); this.load(); } },
        "Try again")));
  }

  /** Events from the REST log: all go into the history; the next ones in order also apply. */
  absorb(events) {
    for (const event of events) {
      if (event.seq === this.lastSeq + 1) this.apply(event, false);
      else if (!this.events.has(event.seq)) this.events.set(event.seq, event);
    }
  }

  onLive(message) {
    if (this.gone || !this.view) return;
    if (message.op === "snapshot") {
      if (message.seq < this.lastSeq) return;
      const missedAfter = this.lastSeq;
      this.view = { ...this.view, ...message.auction, title: this.view.title };
      this.lastSeq = message.seq;
      if (message.seq > missedAfter) this.backfill(missedAfter);
      this.afterChange();
      return;
    }
    if (message.op !== "event" || message.seq <= this.lastSeq) return;
    const gap = message.seq > this.lastSeq + 1 ? this.lastSeq : null;
    const { op: _op, ...event } = message;
    this.apply(event, true);
    if (gap !== null) this.backfill(gap);
    this.afterChange();
  }

  /** Evolve the view by one event (events carry absolute values, never deltas). */
  apply(event, isLive) {
    const view = this.view;
    switch (event.type) {
      case "started":
        view.status = "live";
        break;
      case "bid":
        view.bid_count = Number.isInteger(event.bid_count) ? event.bid_count : view.bid_count + 1;
        if (view.type !== "sealed") {
          view.price = event.price;
          view.leader_id = event.leader_id;
        }
        if (view.type === "english") {
          view.buy_now_price = null;
          // An estimate until the next refresh (the auction may use a custom increment).
          if (Number.isInteger(event.price)) view.min_bid = event.price + incrementFor(event.price);
        }
        break;
      case "extended":
        if (isLive && Number.isInteger(view.ends_at)) {
          this.extended = { until: Date.now() + 5_000, by: event.ends_at - view.ends_at };
        }
        view.ends_at = event.ends_at;
        break;
      case "closed":
        Object.assign(view, {
          status: "closed", winner_id: event.winner_id ?? null,
          final_price: event.final_price ?? null, min_bid: null,
        });
        if ("price" in event) view.price = event.price;
        if ("leader_id" in event) view.leader_id = event.leader_id;
        if (Number.isInteger(event.ends_at)) view.ends_at = event.ends_at;
        break;
      case "cancelled":
        view.status = "cancelled";
        view.min_bid = null;
        break;
      default:
        break;
    }
    view.seq = event.seq;
    this.lastSeq = event.seq;
    this.events.set(event.seq, event);
  }

  afterChange() {
    this.render();
    // Fields no event carries (min_bid with a custom increment, reserve_met) come from REST.
    clearTimeout(this.refreshTimer);
    this.refreshTimer = setTimeout(() => this.refreshView(), 400);
  }

  async refreshView() {
    try {
      const fresh = await api.auction(this.id);
      if (this.gone || fresh.seq !== this.lastSeq) return; // only a view of the same state
      this.view = { ...this.view, ...fresh, title: fresh.title || this.view.title };
      this.render();
    } catch {
      // next event or resync will try again
    }
  }

  async backfill(after) {
    try {
      const events = await api.events(this.id, after);
      if (this.gone) return;
      for (const event of events) if (!this.events.has(event.seq)) this.events.set(event.seq, event);
      this.render();
    } catch {
      // the periodic resync fills it later
    }
  }

  /** Safety net: catch up from the log (e.g. while the socket is down) and refresh the view. */
  async resync() {
    try {
      const events = await api.events(this.id, this.lastSeq);
      if (this.gone) return;
      const before = this.lastSeq;
      this.absorb(events);
      if (this.lastSeq !== before) this.render();
      await this.refreshView();
    } catch {
      // offline: the live connection's reconnect or the next resync will catch up
    }
  }

  // ---- layout -----------------------------------------------------------------------------

  build() {
    const view = this.view;
    const r = (this.refs = {});
    r.art = cardArt(view, null);
    r.title = h("h1", { class: "room__title", testid: "room-title", text: view.title || "Untitled card" });
    r.status = h("span", { class: "chip", testid: "status" });
    r.type = h("span", { class: `chip chip--${view.type}`, testid: "type", text: TYPE_LABEL[view.type] || view.type });
    r.priceLabel = h("div", { class: "price-block__label", id: "price-label" });
    // A Dutch price ticks down every few seconds: not announced on each step.
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

    r.result = h("div", { class: "result", testid: "result", hidden: true, role: "status" });
    r.bidPanel = this.buildBidForm();
    r.signedOut = h("div", { class: "panel panel--cta", hidden: true },
      h("p", null, "Sign in to place a bid."),
      h("a", { class: "btn btn--primary", testid: "signin-to-bid",
        href: `#/signin?next=${encodeURIComponent(`#/auction/${this.id}`)}` }, "Sign in to bid"));
    r.cancel = h("button", { type: "button", class: "btn btn--danger btn--small", testid: "cancel-auction",
      onClick: () => this.cancelAuction() }, "Cancel listing");
    r.sellerNote = h("p", { testid: "seller-note" });
    r.sellerPanel = h("div", { class: "panel panel--cta", hidden: true }, r.sellerNote, r.cancel);

    r.history = h("ol", { class: "history", testid: "history", "aria-live": "polite", "aria-relevant": "additions" });
    r.historyNote = h("p", { class: "history__note" });

    this.root.setAttribute("aria-busy", "false");
    this.root.replaceChildren(
      h("nav", { class: "crumbs", "aria-label": "Breadcrumb" }, h("a", { href: "#/" }, "← Live auctions")),
      h("div", { class: "room__grid" },
        h("div", { class: "room__art" }, r.art,
          h("p", { class: "room__ids" },
            h("span", null, "Auction ", h("code", { text: this.id })),
            h("span", null, "Seller ", h("span", { testid: "seller", text: who(view.seller_id, "member") })))),
        h("div", { class: "room__main" },
          h("header", { class: "room__head" }, r.title, h("div", { class: "room__chips" }, r.status, r.type)),
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
  }

  buildBidForm() {
    const r = this.refs;
    r.amount = h("input", {
      id: "bid-amount", testid: "bid-amount", name: "amount", inputmode: "decimal", autocomplete: "off",
      "aria-describedby": "bid-min-note", spellcheck: "false",
      onInput: () => { this.amountDirty = true; },
    });
    r.max = h("input", {
      id: "bid-max", testid: "bid-max", name: "max_amount", inputmode: "decimal", autocomplete: "off",
      placeholder: "optional", "aria-describedby": "bid-max-note", spellcheck: "false",
    });
    r.minBid = h("span", { testid: "min-bid" });
    r.amountLabel = h("label", { for: "bid-amount" }, "Your bid");
    r.maxField = h("div", { class: "field" },
      h("label", { for: "bid-max" }, "Maximum ", h("span", { class: "optional", text: "(auto-bid)" })),
      h("div", { class: "money-input" }, h("span", { "aria-hidden": "true" }, "$"), r.max),
      h("p", { class: "hint", id: "bid-max-note" },
        "We raise your bid for you, one increment at a time, up to this amount. Others never see it."));
    r.submit = h("button", { type: "submit", class: "btn btn--primary btn--block", testid: "bid-submit" }, "Place bid");
    r.buyNow = h("button", { type: "button", class: "btn btn--gold btn--block", testid: "buy-now", hidden: true,
      onClick: () => this.submitBid(this.view.buy_now_price, null) });
    r.feedback = h("p", { class: "feedback", testid: "bid-feedback", role: "status", "aria-live": "polite" });
    r.bidHeading = h("h2", { class: "section-title", id: "bid-heading", text: "Place a bid" });
    return h("form", {
      class: "panel bid-form", testid: "bid-form", novalidate: true, "aria-labelledby": "bid-heading",
      onSubmit: (event) => { event.preventDefault(); this.submitFromForm(); },
    },
    r.bidHeading,
    h("div", { class: "bid-form__fields" },
      h("div", { class: "field" }, r.amountLabel,
        h("div", { class: "money-input" }, h("span", { "aria-hidden": "true" }, "$"), r.amount),
        h("p", { class: "hint", id: "bid-min-note" }, "Minimum ", r.minBid)),
      r.maxField),
    h("div", { class: "bid-form__actions" }, r.submit, r.buyNow),
    r.feedback);
  }

  // ---- rendering --------------------------------------------------------------------------

  render() {
    if (!this.refs || !this.view) return;
    const view = this.view;
    const r = this.refs;
    const now = clock.now();
    const mine = me();
    const isSeller = mine !== null && view.seller_id === mine;
    const isLive = view.status === "live";

    setText(r.title, view.title || "Untitled card");
    setText(r.status, STATUS_LABEL[view.status] || view.status);
    r.status.className = `chip chip--status chip--${view.status}`;
    r.status.dataset.status = view.status;

    const [label, price] = priceLine(view, now);
    setText(r.priceLabel, label);
    if (r.price.textContent !== price) {
      const first = r.price.textContent === "";
      setText(r.price, price);
      if (!first && view.type !== "dutch") flash(r.price);
    }
    setText(r.priceNote, this.priceNote(now));

    const sealedLive = view.type === "sealed" && view.status !== "closed";
    setText(r.leader, sealedLive ? "Sealed" : who(view.leader_id));
    r.leader.dataset.userId = sealedLive ? "" : view.leader_id || "";
    r.leader.classList.toggle("is-you", !sealedLive && !!mine && view.leader_id === mine);
    setText(r.bidCount, String(view.bid_count));
    setText(r.reserve, this.reserveText());
    this.renderCountdown(now);
    this.renderStanding(mine, isSeller);
    this.renderResult(mine);

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
    this.renderBidForm(now, mine);
    this.renderHistory();
    document.title = `${price} · ${view.title || "Auction"} — ECE`;
  }

  priceNote(now) {
    const view = this.view;
    if (view.status !== "live") return "";
    if (view.type === "dutch") {
      const drop = nextDutchDrop(view, now);
      return `Floor ${formatCents(view.floor_price)} · drops ${formatCents(view.step)}`
        + (drop === null ? " · at the floor" : ` in ${Math.ceil(drop / 1000)}s`);
    }
    if (view.type === "sealed") {
      return `Bids from ${formatCents(view.min_bid ?? view.start_price)} · the highest bid wins and pays the second-highest`;
    }
    return Number.isInteger(view.min_bid) ? `Next bid from ${formatCents(view.min_bid)}` : "";
  }

  reserveText() {
    const view = this.view;
    if (view.type === "dutch") return formatCents(view.floor_price);
    if (view.reserve_met === true) return "Met";
    if (view.reserve_met === false) return view.status === "closed" ? "Not met" : "Not met yet";
    if (view.type === "sealed" && view.status !== "closed") return "Revealed at close";
    return "No reserve";
  }

  renderCountdown(now) {
    const view = this.view;
    const r = this.refs;
    if (!r) return;
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
    const extended = this.extended && this.extended.until > Date.now() && view.status === "live";
    if (extended && r.extended.hidden) flash(r.countdown);
    r.extended.hidden = !extended;
    if (extended) {
      const by = Math.round(this.extended.by / 1000);
      setText(r.extended, by > 0 ? `Extended +${by}s` : "Extended");
    }
  }

  myBids() {
    const mine = me();
    return [...this.events.values()].filter((e) => e.type === "bid" && mine && e.bidder_id === mine);
  }

  sealedKey() {
    return `ece.sealed.${this.id}.${me()}`;
  }

  renderStanding(mine, isSeller) {
    const view = this.view;
    const r = this.refs;
    let text = "";
    let kind = "";
    if (mine && isSeller) {
      text = "Your listing";
    } else if (mine && view.status === "closed") {
      if (view.winner_id === mine) [text, kind] = ["You won this card", "good"];
      else if (this.myBids().length || localStorage.getItem(this.sealedKey())) [text, kind] = ["You didn't win this one", "bad"];
    } else if (mine && view.status === "live") {
      if (view.type === "sealed") {
        const sealed = Number(localStorage.getItem(this.sealedKey()) || 0);
        if (sealed) [text, kind] = [`Your sealed bid: ${formatCents(sealed)}`, "good"];
      } else if (view.leader_id === mine) {
        [text, kind] = ["You're the high bidder", "good"];
      } else if (this.myBids().length) {
        [text, kind] = ["You've been outbid", "bad"];
      }
    }
    setText(r.standing, text);
    r.standing.dataset.kind = kind;
  }

  renderResult(mine) {
    const view = this.view;
    const r = this.refs;
    if (view.status !== "closed" && view.status !== "cancelled") {
      r.result.hidden = true;
      return;
    }
    r.result.hidden = false;
    r.result.dataset.outcome = view.status === "cancelled" ? "cancelled" : view.winner_id ? "sold" : "unsold";
    const key = `${view.status}|${view.winner_id}|${view.final_price}|${mine}|${view.reserve_met}`;
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
            h("dd", { testid: "final-price", text: formatCents(view.final_price) }))),
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

  renderBidForm(now, mine) {
    const view = this.view;
    const r = this.refs;
    const minBid = view.type === "dutch" ? dutchPrice(view, now) : view.min_bid;
    setText(r.minBid, formatCents(minBid));
    if (!this.amountDirty && document.activeElement !== r.amount && Number.isInteger(minBid)) {
      const value = centsToInput(minBid);
      if (r.amount.value !== value) r.amount.value = value;
    }
    const leading = view.type === "english" && mine && view.leader_id === mine;
    r.maxField.hidden = view.type !== "english";
    setText(r.bidHeading, view.type === "dutch" ? "Buy at the current price"
      : view.type === "sealed" ? "Submit a sealed bid"
        : leading ? "Raise your maximum" : "Place a bid");
    setText(r.amountLabel, view.type === "dutch" ? "Your offer" : "Your bid");
    setText(r.submit, this.busy ? "Sending…"
      : view.type === "dutch" ? `Buy now at ${formatCents(minBid)}`
        : view.type === "sealed" ? "Submit sealed bid" : "Place bid");
    const buyNow = view.type === "english" && view.bid_count === 0 && Number.isInteger(view.buy_now_price);
    r.buyNow.hidden = !buyNow;
    if (buyNow) setText(r.buyNow, `Buy it now for ${formatCents(view.buy_now_price)}`);
    const offline = live.state !== "live";
    r.submit.disabled = this.busy || offline;
    r.buyNow.disabled = this.busy || offline;
    r.submit.title = offline ? "Reconnecting — bids are paused" : "";
  }

  /** Newest first; rows are kept by seq so a new event adds one row (and animates only it). */
  renderHistory() {
    const r = this.refs;
    // A leader raising their own hidden maximum ("raised") changes nothing public: not shown.
    const events = [...this.events.values()].filter((e) => e.type !== "raised")
      .sort((a, b) => b.seq - a.seq);
    const key = `${events.length}:${events[0]?.seq}:${me()}`;
    if (key === this.renderedHistory) return;
    const rebuild = !this.historyRows || this.historyOwner !== me();
    this.renderedHistory = key;
    if (rebuild) {
      this.historyRows = new Map();
      this.historyOwner = me();
      r.history.replaceChildren();
    }
    const shown = events.slice(0, HISTORY_LIMIT);
    const keep = new Set(shown.map((event) => event.seq));
    for (const [seq, row] of this.historyRows) {
      if (!keep.has(seq)) {
        row.remove();
        this.historyRows.delete(seq);
      }
    }
    shown.forEach((event, index) => {
      let row = this.historyRows.get(event.seq);
      if (!row) {
        row = this.historyRow(event);
        if (!rebuild) row.classList.add("history__row--new"); // only later rows animate in
        this.historyRows.set(event.seq, row);
      }
      if (r.history.children[index] !== row) r.history.insertBefore(row, r.history.children[index] || null);
    });
    r.empty ??= h("li", { class: "history__empty", text: "No activity yet" });
    if (shown.length === 0) r.history.append(r.empty);
    else r.empty.remove();
    setText(r.historyNote, events.length > shown.length
      ? `Showing the latest ${shown.length} of ${events.length} events` : "");
  }

  historyRow(event) {
    const view = this.view;
    let text;
    let detail = "";
    let kind = event.type;
    switch (event.type) {
      case "started":
        text = "Auction opened";
        detail = view.type === "dutch" ? `from ${formatCents(view.start_price)}` : `starting at ${formatCents(view.start_price)}`;
        break;
      case "bid":
        if (view.type === "sealed" || event.bidder_id === null) {
          text = "Sealed bid received";
          detail = `bid #${event.bid_count}`;
        } else if (view.type === "dutch") {
          text = `${who(event.bidder_id)} bought at ${formatCents(event.price)}`;
          if (event.bidder_id === me()) kind = "bid mine";
        } else {
          // The leader's bid shows at the price it set (their maximum stays private).
          text = `${who(event.bidder_id)} bid ${formatCents(event.amount ?? event.price)}`;
          detail = event.leader_id === event.bidder_id
            ? `leads at ${formatCents(event.price)}`
            : `${who(event.leader_id)} ${event.leader_id === me() ? "still lead" : "still leads"} (auto-bid) at ${formatCents(event.price)}`;
          if (event.bidder_id === me()) kind = "bid mine";
        }
        break;
      case "extended":
        text = "Soft close: time extended";
        detail = `now ends ${clockTime(event.ends_at)}`;
        break;
      case "closed":
        if (event.winner_id) {
          text = `Sold to ${who(event.winner_id)} for ${formatCents(event.final_price)}`;
          detail = event.reason === "buy_now" ? "bought now" : "";
        } else {
          text = "Ended without a sale";
        }
        break;
      case "cancelled":
        text = "Cancelled by the seller";
        break;
      default:
        text = event.type;
    }
    return h("li", {
      class: `history__row history__row--${kind.replace(" ", " history__row--")}`,
      testid: "history-row", dataset: { seq: event.seq, type: event.type },
    },
    h("time", { class: "history__time", datetime: new Date(event.at).toISOString(), text: clockTime(event.at) }),
    h("span", { class: "history__text", text }),
    detail ? h("span", { class: "history__detail", text: detail }) : null);
  }

  // ---- actions ----------------------------------------------------------------------------

  feedback(text, kind) {
    setText(this.refs.feedback, text);
    this.refs.feedback.dataset.kind = kind;
  }

  submitFromForm() {
    const amount = parseDollars(this.refs.amount.value);
    if (!amount.ok) {
      this.feedback(amount.error, "error");
      this.refs.amount.focus();
      return;
    }
    let max = null;
    if (this.view.type === "english" && this.refs.max.value.trim() !== "") {
      const parsed = parseDollars(this.refs.max.value);
      if (!parsed.ok) {
        this.feedback(`Maximum: ${parsed.error}`, "error");
        this.refs.max.focus();
        return;
      }
      if (parsed.cents < amount.cents) {
        this.feedback("Your maximum must be at least your bid", "error");
        this.refs.max.focus();
        return;
      }
      max = parsed.cents;
    }
    this.submitBid(amount.cents, max);
  }

  async submitBid(amount, max) {
    if (!state.session) {
      requireSignIn("Sign in to bid");
      return;
    }
    if (live.state !== "live") {
      this.feedback("Not connected — your bid was not sent. Reconnecting…", "error");
      return;
    }
    this.busy = true;
    this.feedback(`Sending your bid of ${formatCents(amount)}…`, "pending");
    this.render();
    const reply = await live.bid(this.id, amount, max);
    this.busy = false;
    if (this.gone) return;
    if (reply.op === "ack") {
      this.amountDirty = false;
      this.refs.max.value = "";
      if (this.view.type === "sealed") {
        localStorage.setItem(this.sealedKey(), String(amount));
        this.feedback(`Sealed bid of ${formatCents(amount)} submitted`, "ok");
      } else if (this.view.type === "dutch") {
        this.feedback(`You bought it for ${formatCents(reply.price)}`, "ok");
      } else if (reply.leader_id === me()) {
        this.feedback(`Bid accepted — you're the high bidder at ${formatCents(reply.price)}`, "ok");
      } else {
        this.feedback(`Bid accepted, but another bidder's maximum is higher — price now ${formatCents(reply.price)}`, "warn");
      }
    } else {
      this.feedback(bidErrorText(reply), "error");
      if (reply.code === "BID_TOO_LOW" && Number.isInteger(reply.min_bid)) {
        this.refs.amount.value = centsToInput(reply.min_bid);
        // Follow the live minimum from now on, unless this one is personal (a leader's raise).
        this.amountDirty = reply.min_bid !== this.view.min_bid;
      }
      if (reply.code === "UNAUTHORIZED") signOut();
    }
    this.render();
  }

  async cancelAuction() {
    const button = this.refs.cancel;
    if (button.dataset.confirm !== "1") {
      button.dataset.confirm = "1";
      setText(button, "Click again to cancel the listing");
      setTimeout(() => {
        button.dataset.confirm = "";
        setText(button, "Cancel listing");
      }, 4_000);
      return;
    }
    button.disabled = true;
    try {
      await api.cancel(state.session.token, this.id);
      toast("Listing cancelled");
    } catch (error) {
      toast(error.message, "error");
    } finally {
      button.disabled = false;
    }
  }

  // ---- hooks ------------------------------------------------------------------------------

  tick(now) {
    if (!this.refs || !this.view) return;
    this.renderCountdown(now);
    if (this.view.type === "dutch" && this.view.status === "live") this.render();
  }

  onConnection() {
    if (this.refs && this.view) this.render();
  }

  onSession() {
    if (!this.refs) return;
    this.amountDirty = false;
    this.renderedHistory = "";
    setText(this.root.querySelector("[data-testid=seller]"), who(this.view.seller_id, "member"));
    this.render();
  }
}

// ---- sign in / create account ---------------------------------------------------------------

const USERNAME = /^[A-Za-z0-9_.-]{3,32}$/;

class AuthView {
  constructor(mode, next) {
    this.mode = mode === "signup" ? "signup" : "signin";
    this.next = next.startsWith("#/signin") || next.startsWith("#/signup") ? "#/" : next;
    this.title = this.mode === "signup" ? "Create account" : "Sign in";
  }

  mount(main) {
    if (state.session) {
      location.hash = this.next;
      return;
    }
    const tab = (mode, label) => h("button", {
      type: "button", role: "tab", class: "tabs__tab", id: `tab-${mode}`, testid: `auth-tab-${mode}`,
      "aria-selected": String(this.mode === mode), "aria-controls": "auth-form",
      onClick: () => { location.hash = `#/${mode}?next=${encodeURIComponent(this.next)}`; },
    }, label);
    const signup = this.mode === "signup";
    this.username = h("input", { id: "auth-username", testid: "auth-username", name: "username",
      autocomplete: "username", required: true, minlength: 3, maxlength: 32, spellcheck: "false",
      autocapitalize: "none", "aria-describedby": signup ? "auth-username-hint" : null });
    this.password = h("input", { id: "auth-password", testid: "auth-password", name: "password",
      type: "password", required: true, minlength: signup ? 10 : null, maxlength: 256,
      autocomplete: signup ? "new-password" : "current-password",
      "aria-describedby": signup ? "auth-password-hint" : null });
    this.error = h("p", { class: "feedback", testid: "auth-error", role: "alert", dataset: { kind: "error" } });
    this.submit = h("button", { type: "submit", class: "btn btn--primary btn--block", testid: "auth-submit" },
      signup ? "Create account" : "Sign in");
    main.append(h("section", { class: "page auth" },
      h("div", { class: "auth__card panel" },
        h("h1", { class: "auth__title", text: signup ? "Join the exchange" : "Welcome back" }),
        h("p", { class: "page__sub", text: signup
          ? "Create an account to bid on and sell graded cards."
          : "Sign in to bid and follow your auctions." }),
        h("div", { class: "tabs", role: "tablist", "aria-label": "Account" },
          tab("signin", "Sign in"), tab("signup", "Create account")),
        h("form", { id: "auth-form", class: "form", testid: "auth-form", novalidate: true,
          role: "tabpanel", "aria-labelledby": `tab-${this.mode}`,
          onSubmit: (event) => { event.preventDefault(); this.send(); } },
        h("div", { class: "field" }, h("label", { for: "auth-username" }, "Username"), this.username,
          signup ? h("p", { class: "hint", id: "auth-username-hint" }, "3–32 letters, digits, “_”, “.” or “-”") : null),
        h("div", { class: "field" }, h("label", { for: "auth-password" }, "Password"), this.password,
          signup ? h("p", { class: "hint", id: "auth-password-hint" }, "At least 10 characters, not a common password") : null),
        this.submit, this.error))));
    this.username.focus();
  }

  async send() {
    const username = this.username.value.trim();
    const password = this.password.value;
    setText(this.error, "");
    if (this.mode === "signup") {
      if (!USERNAME.test(username)) return this.fail("Usernames are 3–32 letters, digits, “_”, “.” or “-”", this.username);
      if (password.length < 10) return this.fail("Passwords need at least 10 characters", this.password);
      if (password.length > 256) return this.fail("Passwords are at most 256 characters", this.password);
    } else if (!username || !password) {
      return this.fail("Enter your username and password", username ? this.password : this.username);
    }
    this.submit.disabled = true;
    setText(this.submit, this.mode === "signup" ? "Creating account…" : "Signing in…");
    try {
      const result = this.mode === "signup"
        ? await api.signUp(username, password) : await api.signIn(username, password);
      setSession(result);
      toast(this.mode === "signup" ? `Welcome to ECE, ${result.username}!` : `Signed in as ${result.username}`, "ok");
      location.hash = this.next;
    } catch (error) {
      const message = error.code === "USERNAME_TAKEN" ? "That username is taken — try another"
        : error.code === "UNAUTHORIZED" ? "Wrong username or password"
          : error.message;
      this.fail(message, error.code === "USERNAME_TAKEN" ? this.username : this.password);
    } finally {
      this.submit.disabled = false;
      setText(this.submit, this.mode === "signup" ? "Create account" : "Sign in");
    }
  }

  fail(message, field) {
    setText(this.error, message);
    field?.focus();
  }

  onSession() {
    if (state.session) location.hash = this.next;
  }
}

// ---- sell a card ----------------------------------------------------------------------------

const DURATIONS = [
  ["1 minute", 60_000], ["5 minutes", 300_000], ["15 minutes", 900_000], ["1 hour", 3_600_000],
  ["6 hours", 21_600_000], ["1 day", 86_400_000], ["3 days", 259_200_000], ["7 days", 604_800_000],
];
const SOFT_CLOSES = [["Off", 0], ["30 seconds", 30_000], ["1 minute", 60_000], ["2 minutes", 120_000],
  ["5 minutes", 300_000]];

class SellView {
  title = "Sell a card";

  mount(main) {
    this.main = main;
    if (!state.session) {
      main.append(h("section", { class: "page" }, h("div", { class: "empty" },
        h("p", { class: "empty__title", text: "Sign in to sell" }),
        h("p", { text: "Mint a card and open an English auction in a few seconds." }),
        h("a", { class: "btn btn--primary", href: `#/signin?next=${encodeURIComponent("#/sell")}` }, "Sign in"))));
      return;
    }
    const money = (id, testid, extra = {}) => h("div", { class: "money-input" },
      h("span", { "aria-hidden": "true" }, "$"),
      h("input", { id, testid, inputmode: "decimal", autocomplete: "off", ...extra }));
    const select = (id, testid, options, selected) => h("select", { id, testid },
      options.map(([label, value]) => h("option", { value, selected: value === selected }, label)));
    this.source = h("select", { id: "sell-source", testid: "sell-source",
      onChange: () => this.toggleMint() }, h("option", { value: "" }, "Mint a new card"));
    this.mintFields = h("div", { class: "form__group" },
      h("div", { class: "field" }, h("label", { for: "sell-title" }, "Card title"),
        h("input", { id: "sell-title", testid: "sell-title", maxlength: 200, required: true,
          placeholder: "e.g. Charizard Holo 1st Edition" })),
      h("div", { class: "form__row" },
        h("div", { class: "field" }, h("label", { for: "sell-set" }, "Set ", h("span", { class: "optional", text: "(optional)" })),
          h("input", { id: "sell-set", testid: "sell-set", maxlength: 100, placeholder: "e.g. Base Set" })),
        h("div", { class: "field" }, h("label", { for: "sell-grade" }, "Grade ", h("span", { class: "optional", text: "(optional)" })),
          h("input", { id: "sell-grade", testid: "sell-grade", maxlength: 40, placeholder: "e.g. PSA 9" }))));
    this.feedbackEl = h("p", { class: "feedback", testid: "sell-feedback", role: "status", "aria-live": "polite" });
    this.submit = h("button", { type: "submit", class: "btn btn--primary", testid: "sell-submit" }, "List card");
    main.append(h("section", { class: "page sell" },
      h("div", { class: "page__head" }, h("div", null,
        h("h1", { class: "page__title", text: "Sell a card" }),
        h("p", { class: "page__sub", text: "Open an English auction: bidders raise the price until time runs out." }))),
      h("form", { class: "panel form", testid: "sell-form", novalidate: true,
        onSubmit: (event) => { event.preventDefault(); this.send(); } },
      CONFIG.mint === "admin" ? h("p", { class: "hint", text: "Minting new cards is limited to administrators on this exchange." }) : null,
      h("fieldset", null, h("legend", null, "The card"),
        h("div", { class: "field" }, h("label", { for: "sell-source" }, "Card"), this.source),
        this.mintFields),
      h("fieldset", null, h("legend", null, "Auction terms"),
        h("div", { class: "form__row" },
          h("div", { class: "field" }, h("label", { for: "sell-start" }, "Starting bid"),
            money("sell-start", "sell-start", { required: true, value: "10.00" })),
          h("div", { class: "field" }, h("label", { for: "sell-reserve" }, "Reserve ", h("span", { class: "optional", text: "(optional)" })),
            money("sell-reserve", "sell-reserve", { placeholder: "hidden minimum" })),
          h("div", { class: "field" }, h("label", { for: "sell-buy-now" }, "Buy-it-now ", h("span", { class: "optional", text: "(optional)" })),
            money("sell-buy-now", "sell-buy-now"))),
        h("div", { class: "form__row" },
          h("div", { class: "field" }, h("label", { for: "sell-duration" }, "Duration"),
            select("sell-duration", "sell-duration", DURATIONS, 3_600_000)),
          h("div", { class: "field" }, h("label", { for: "sell-soft-close" }, "Soft close"),
            select("sell-soft-close", "sell-soft-close", SOFT_CLOSES, 60_000),
            h("p", { class: "hint", text: "A late bid extends the auction by this much." })))),
      h("div", { class: "form__actions" }, this.submit), this.feedbackEl)));
    this.loadCards();
  }

  async loadCards() {
    try {
      const { assets } = await api.myAssets(state.session.token);
      for (const asset of assets.filter((a) => !a.listed_in)) {
        this.source.append(h("option", { value: asset.asset_id }, `${asset.title}${asset.grade ? ` (${asset.grade})` : ""}`));
      }
    } catch {
      // minting still works
    }
  }

  toggleMint() {
    this.mintFields.hidden = this.source.value !== "";
  }

  value(id) {
    return this.main.querySelector(`#${id}`).value;
  }

  feedback(text, kind) {
    setText(this.feedbackEl, text);
    this.feedbackEl.dataset.kind = kind;
  }

  optionalCents(id, label) {
    const raw = this.value(id).trim();
    if (raw === "") return { ok: true, cents: null };
    const parsed = parseDollars(raw);
    return parsed.ok ? parsed : { ok: false, error: `${label}: ${parsed.error}` };
  }

  async send() {
    const start = parseDollars(this.value("sell-start"));
    if (!start.ok) return this.feedback(`Starting bid: ${start.error}`, "error");
    const reserve = this.optionalCents("sell-reserve", "Reserve");
    if (!reserve.ok) return this.feedback(reserve.error, "error");
    const buyNow = this.optionalCents("sell-buy-now", "Buy-it-now");
    if (!buyNow.ok) return this.feedback(buyNow.error, "error");
    if (reserve.cents !== null && reserve.cents < start.cents) {
      return this.feedback("The reserve can't be below the starting bid", "error");
    }
    if (buyNow.cents !== null && (buyNow.cents <= start.cents || (reserve.cents !== null && buyNow.cents < reserve.cents))) {
      return this.feedback("Buy-it-now must be above the starting bid and at least the reserve", "error");
    }
    const minting = this.source.value === "";
    const title = this.value("sell-title").trim();
    if (minting && !title) return this.feedback("Give the card a title", "error");
    this.submit.disabled = true;
    const token = state.session.token;
    try {
      let assetId = this.source.value;
      if (minting) {
        this.feedback("Minting your card…", "pending");
        const card = { title };
        const set = this.value("sell-set").trim();
        const grade = this.value("sell-grade").trim();
        if (set) card.set = set;
        if (grade) card.grade = grade;
        assetId = (await api.mint(token, card)).asset_id;
      }
      this.feedback("Opening the auction…", "pending");
      const terms = {
        asset_id: assetId, type: "english", start_price: start.cents,
        duration_ms: Number(this.value("sell-duration")),
        soft_close_ms: Number(this.value("sell-soft-close")),
      };
      if (reserve.cents !== null) terms.reserve_price = reserve.cents;
      if (buyNow.cents !== null) terms.buy_now_price = buyNow.cents;
      const auction = await api.createAuction(token, terms);
      toast("Your auction is live", "ok");
      location.hash = `#/auction/${encodeURIComponent(auction.auction_id)}`;
    } catch (error) {
      if (error.code === "UNAUTHORIZED") signOut("Your session has expired — please sign in again");
      else this.feedback(error.code === "FORBIDDEN" ? "Minting is restricted to administrators" : error.message, "error");
    } finally {
      this.submit.disabled = false;
    }
  }

  onSession() {
    route();
  }
}

// ---- boot -----------------------------------------------------------------------------------

function tick() {
  const now = clock.now();
  state.view?.tick?.(now);
  if (live.state === "reconnecting") renderConnection();
}

async function verifySession() {
  if (!state.session) return;
  try {
    await api.me(state.session.token);
  } catch (error) {
    if (error.code === "UNAUTHORIZED") signOut("Your session has expired — please sign in again");
  }
}

function boot() {
  renderAccount();
  renderConnection();
  window.addEventListener("hashchange", route);
  window.addEventListener("storage", (event) => {
    // Signed in or out in another tab.
    if (event.key === "ece.session") {
      state.session = sessionStore.load();
      renderAccount();
      live.restart();
      state.view?.onSession?.();
    }
  });
  route();
  live.start();
  verifySession();
  setInterval(tick, 250);
  // A handle for manual checks and the browser test (simulating a dropped connection).
  window.ECE = { live, state };
}

boot();
