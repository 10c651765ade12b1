// The auction room (#/auction/<id>): loads the auction over REST, follows it over the live
// connection, and places bids. How messages change the room's state is room_state.js (pure);
// this file does the I/O and timers around it, the layout and rendering live beside it.

import { ApiError, api, clock } from "../api.js";
import { h, setText, toast } from "../dom.js";
import { centsToInput, formatCents, parseDollars } from "../money.js";
import {
  absorbLog, createRoomState, receive, receiveView,
} from "../room_state.js";
import { live, me, requireSignIn, signOut, state } from "../shell.js";
import { cardArt } from "./card_art.js";
import { buildRoom, crumbs } from "./room_layout.js";
import { bidErrorText, renderCountdown, renderRoom } from "./room_render.js";

const ROOM_RESYNC_MS = 15_000;
const REFRESH_DELAY_MS = 400; // let a burst of events settle before asking for the view
const BEHIND_GRACE_MS = 1_500; // an ack's events normally arrive by then over the socket
const DROP_RETRY_MS = 1_000; // a Dutch price refresh that failed or came too early

export class RoomView {
  constructor(id) {
    this.id = id;
    this.room = null; // room_state.js state: {view, lastSeq, history, extended}
    this.asset = null;
    this.renderedHistory = "";
    this.amountDirty = false;
    this.busy = false;
    this.gone = false;
    this.fetchingView = false; // a GET /api/auctions/{id} is in flight
    this.refreshAgain = false; // another was asked for meanwhile
    this.dropRetryAt = 0; // no Dutch price refresh before this (local time)
    this.feedbackLeadsAt = null; // the seq of our bid when the feedback says we lead
  }

  get view() {
    return this.room?.view ?? null;
  }

  get title() {
    return this.view?.title || "Auction";
  }

  mount(main) {
    this.root = h("section", { class: "page room", testid: "room", "aria-busy": "true" },
      crumbs(), h("p", { class: "loading", text: "Loading auction…" }));
    main.append(this.root);
    this.load();
  }

  unmount() {
    this.gone = true;
    clearInterval(this.resyncTimer);
    clearTimeout(this.refreshTimer);
    clearTimeout(this.behindTimer);
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
    this.room = createRoomState(view);
    this.refs = buildRoom(this);
    try {
      this.update(absorbLog(this.room, await api.events(this.id, 0)));
    } catch {
      // History is optional for the room to work; the resync tries again.
    }
    if (this.gone) return;
    this.render();
    live.subscribe(this.id, {
      since: () => this.room.lastSeq,
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
      this.render(); // e.g. the link to its catalog card
    }).catch(() => {});
    document.title = `${this.title} — ECE`;
  }

  showLoadError(error) {
    const notFound = error instanceof ApiError && error.status === 404;
    this.root.setAttribute("aria-busy", "false");
    this.root.replaceChildren(crumbs(),
      h("div", { class: "empty", testid: "room-error" },
        h("p", { class: "empty__title", text: notFound ? "Auction not found" : "Couldn't load this auction" }),
        h("p", { text: notFound ? "It may have been removed, or the link is wrong." : error.message }),
        notFound ? null : h("button", { type: "button", class: "btn btn--primary",
          onClick: () => { this.root.replaceChildren(h("p", { class: "loading", text: "Loading auction…" })); this.load(); } },
        "Try again")));
  }

  /** Take a reducer result: keep its state and carry out its effects. */
  update(result) {
    this.room = result.state;
    if (result.fetchFrom !== null) this.backfill(result.fetchFrom);
    if (result.refresh) this.scheduleRefresh();
    return result;
  }

  onLive(message) {
    if (this.gone || !this.room) return;
    const result = this.update(receive(this.room, message, Date.now()));
    if (result.behind) this.catchUpSoon(message.seq);
    if (result.changed) this.render();
  }

  /** The server is past our seq: the events normally follow; if not, fetch them. */
  catchUpSoon(seq) {
    clearTimeout(this.behindTimer);
    this.behindTimer = setTimeout(() => {
      if (!this.gone && this.room.lastSeq < seq) this.backfill(this.room.lastSeq);
    }, BEHIND_GRACE_MS);
  }

  scheduleRefresh() {
    clearTimeout(this.refreshTimer);
    this.refreshTimer = setTimeout(() => this.refreshView(), REFRESH_DELAY_MS);
  }

  /** GET the view; the reducer keeps it only if it is of the state we have (same seq). */
  async refreshView() {
    if (this.fetchingView) {
      this.refreshAgain = true; // the one in flight may predate what we now know
      return false;
    }
    this.fetchingView = true;
    this.refreshAgain = false;
    try {
      const fresh = await api.auction(this.id);
      if (this.gone) return true;
      const result = this.update(receiveView(this.room, fresh));
      if (result.changed) this.render();
      return true;
    } catch {
      return false; // the next event, drop or resync tries again
    } finally {
      this.fetchingView = false;
      if (this.refreshAgain && !this.gone) this.scheduleRefresh();
    }
  }

  /** Fetch the log after `after`: fills the history and applies what comes next in order. */
  async backfill(after) {
    try {
      const events = await api.events(this.id, after);
      if (this.gone) return;
      const result = this.update(absorbLog(this.room, events));
      if (result.changed) this.render();
    } catch {
      // the periodic resync fills it later
    }
  }

  /** Safety net: catch up from the log (e.g. while the socket is down) and refresh the view. */
  async resync() {
    try {
      const events = await api.events(this.id, this.room.lastSeq);
      if (this.gone) return;
      const result = this.update(absorbLog(this.room, events));
      if (result.changed) this.render();
      await this.refreshView();
    } catch {
      // offline: the live connection's reconnect or the next resync will catch up
    }
  }

  /** A live Dutch price falls at the server's next_drop_at: then ask the server for it. */
  async followDutchPrice() {
    const view = this.view;
    if (view.type !== "dutch" || view.status !== "live" || !Number.isInteger(view.next_drop_at)) return;
    if (clock.now() < view.next_drop_at || this.fetchingView || Date.now() < this.dropRetryAt) return;
    const due = view.next_drop_at;
    const ok = await this.refreshView();
    // Failed, or the server had not reached the drop yet (our clock runs early): retry soon.
    if (!ok || this.view.next_drop_at === due) this.dropRetryAt = Date.now() + DROP_RETRY_MS;
  }

  // ---- rendering --------------------------------------------------------------------------

  render() {
    if (!this.refs || !this.view) return;
    // "You're the high bidder" goes once a later event shows someone else leading (the
    // standing line says so); before our bid's own event arrives the view is older than it.
    const leadsAt = this.feedbackLeadsAt;
    if (leadsAt !== null && this.room.lastSeq >= leadsAt && this.view.leader_id !== me()) {
      this.feedback("", "");
    }
    renderRoom(this, clock.now());
  }

  // ---- actions ----------------------------------------------------------------------------

  /** `leadsAt`: the text says we lead as of that seq; it is taken back once we do not. */
  feedback(text, kind, leadsAt = null) {
    setText(this.refs.feedback, text);
    this.refs.feedback.dataset.kind = kind;
    this.feedbackLeadsAt = leadsAt;
  }

  sealedKey() {
    return `ece.sealed.${this.id}.${me()}`;
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
      const result = this.update(receive(this.room, reply, Date.now()));
      if (result.behind) this.catchUpSoon(reply.seq);
      this.amountDirty = false;
      this.refs.max.value = "";
      if (this.view.type === "sealed") {
        localStorage.setItem(this.sealedKey(), String(amount));
        this.feedback(`Sealed bid of ${formatCents(amount)} submitted`, "ok");
      } else if (this.view.type === "dutch") {
        this.feedback(`You bought it for ${formatCents(reply.price)}`, "ok");
      } else if (reply.leader_id === me()) {
        this.feedback(`Bid accepted — you're the high bidder at ${formatCents(reply.price)}`, "ok",
          Number.isInteger(reply.seq) ? reply.seq : null);
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
    renderCountdown(this, now);
    if (this.view.type === "dutch" && this.view.status === "live") {
      this.render(); // the countdown to the next drop
      this.followDutchPrice();
    }
  }

  onConnection() {
    if (this.refs && this.view) this.render();
  }

  onSession() {
    if (!this.refs) return;
    this.amountDirty = false;
    this.renderedHistory = "";
    this.render();
  }
}
