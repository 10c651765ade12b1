// The live connection: one WebSocket per page, reconnected with backoff. Subscriptions are
// kept here and re-sent after every reconnect with `since` = the room's last applied seq, so
// the server replays exactly what was missed. Bids in flight when the socket drops are sent
// again with the same req_id: the server answers a repeated req_id with the original result.
// Channels (the signed-in user's "me") are kept the same way, resumed with their own `since`.

const PING_EVERY_MS = 20_000;
const PONG_TIMEOUT_MS = 10_000;
const BID_TIMEOUT_MS = 15_000;
const RETRY_BASE_MS = 500;
const RETRY_MAX_MS = 10_000;

let counter = 0;
function nextId(prefix) {
  counter += 1;
  const random = Math.floor(Math.random() * 36 ** 4).toString(36);
  return `${prefix}-${Date.now().toString(36)}-${counter.toString(36)}-${random}`;
}

export class Live {
  /**
   * url(): the WebSocket URL to open (it carries the session token, if any).
   * onState(state): "connecting" | "live" | "reconnecting" | "offline".
   * onNotice(message): unsolicited errors (e.g. an expired token).
   */
  constructor({ url, onState = () => {}, onNotice = () => {} }) {
    this.url = url;
    this.onState = onState;
    this.onNotice = onNotice;
    this.state = "connecting";
    this.ws = null;
    this.attempt = 0;
    this.retryAt = null;
    this.retryTimer = null;
    this.pingTimer = null;
    this.pongTimer = null;
    this.everOpen = false;
    this.subs = new Map(); // auction_id -> {since(), onMessage(msg), onError(msg)}
    this.pending = new Map(); // req_id -> {message, resolve, timer, sent}
    this.channels = new Map(); // channel -> {since(), onMessage(msg), onError(msg)}
    this.channelReqs = new Map(); // req_id of a channel's subscribe -> channel
    window.addEventListener("offline", () => this.wentOffline());
    window.addEventListener("online", () => this.reconnectNow());
    document.addEventListener("visibilitychange", () => {
      if (document.visibilityState === "visible" && !this.ws) this.reconnectNow();
    });
  }

  get isOpen() {
    return this.ws !== null && this.ws.readyState === WebSocket.OPEN;
  }

  setState(state) {
    this.state = state;
    this.onState(state);
  }

  start() {
    this.connect();
  }

  /** Drop the socket and open a new one now (e.g. after signing in or out). */
  restart() {
    this.detach();
    this.everOpen = false;
    this.reconnectNow();
  }

  reconnectNow() {
    this.attempt = 0;
    if (this.ws) return;
    clearTimeout(this.retryTimer);
    this.connect();
  }

  connect() {
    clearTimeout(this.retryTimer);
    this.retryTimer = null;
    this.retryAt = null;
    if (navigator.onLine === false) {
      this.setState("offline");
      this.retryTimer = setTimeout(() => this.connect(), 5_000); // in case "online" never fires
      return;
    }
    this.setState(this.everOpen ? "reconnecting" : "connecting");
    let ws;
    try {
      ws = new WebSocket(this.url());
    } catch {
      this.scheduleRetry();
      return;
    }
    this.ws = ws;
    ws.onopen = () => {
      if (this.ws !== ws) return;
      this.attempt = 0;
      this.everOpen = true;
      this.setState("live");
      this.heartbeat();
      for (const auctionId of this.subs.keys()) this.sendSubscribe(auctionId);
      for (const channel of this.channels.keys()) this.sendChannelSubscribe(channel);
      for (const entry of this.pending.values()) this.send(entry.message);
    };
    ws.onmessage = (event) => {
      if (this.ws !== ws) return;
      this.heard();
      let message;
      try {
        message = JSON.parse(event.data);
      } catch {
        return;
      }
      this.route(message);
    };
    ws.onclose = () => {
      if (this.ws !== ws) return;
      this.ws = null;
      this.stopHeartbeat();
      this.scheduleRetry();
    };
    ws.onerror = () => {}; // a close always follows
  }

  /** Forget the current socket (no more callbacks from it) and close it. */
  detach() {
    const ws = this.ws;
    this.ws = null;
    this.stopHeartbeat();
    if (ws) {
      ws.onopen = ws.onmessage = ws.onclose = ws.onerror = null;
      try {
        ws.close(1000, "client reset");
      } catch {
        // already closing
      }
    }
  }

  wentOffline() {
    this.detach();
    clearTimeout(this.retryTimer);
    this.setState("offline");
    this.retryTimer = setTimeout(() => this.connect(), 5_000);
  }

  scheduleRetry() {
    clearTimeout(this.retryTimer);
    const base = Math.min(RETRY_MAX_MS, RETRY_BASE_MS * 2 ** this.attempt);
    const delay = Math.round(base * (0.75 + Math.random() * 0.5));
    this.attempt += 1;
    this.retryAt = Date.now() + delay;
    this.setState(navigator.onLine === false ? "offline" : "reconnecting");
    this.retryTimer = setTimeout(() => this.connect(), delay);
  }

  /** For the browser test and manual checks: drop the socket as a network failure would. */
  simulateDrop() {
    if (this.ws) this.ws.close(4000, "simulated drop");
  }

  // ---- heartbeat --------------------------------------------------------------------------

  heartbeat() {
    this.stopHeartbeat();
    this.pingTimer = setInterval(() => {
      if (!this.isOpen) return;
      this.send({ op: "ping" });
      if (!this.pongTimer) {
        this.pongTimer = setTimeout(() => {
          // Nothing heard for a while: the socket is dead even if it does not know it yet.
          this.detach();
          this.scheduleRetry();
        }, PONG_TIMEOUT_MS);
      }
    }, PING_EVERY_MS);
  }

  heard() {
    clearTimeout(this.pongTimer);
    this.pongTimer = null;
  }

  stopHeartbeat() {
    clearInterval(this.pingTimer);
    clearTimeout(this.pongTimer);
    this.pingTimer = null;
    this.pongTimer = null;
  }

  // ---- messages ---------------------------------------------------------------------------

  send(message) {
    if (!this.isOpen) return false;
    this.ws.send(JSON.stringify(message));
    return true;
  }

  route(message) {
    const reqId = message.req_id;
    if (reqId !== undefined && this.pending.has(reqId)) {
      const entry = this.pending.get(reqId);
      this.pending.delete(reqId);
      clearTimeout(entry.timer);
      entry.resolve(message);
      return;
    }
    if (this.routeChannel(message)) return;
    const sub = message.auction_id ? this.subs.get(message.auction_id) : undefined;
    if (message.op === "error") {
      if (sub && typeof reqId === "string" && reqId.startsWith("sub-")) {
        sub.onError(message);
      } else if (reqId === undefined) {
        this.onNotice(message);
      }
      return;
    }
    if (sub && (message.op === "event" || message.op === "snapshot" || message.op === "ack")) {
      sub.onMessage(message);
    }
  }

  subscribe(auctionId, { since, onMessage, onError = () => {} }) {
    this.subs.set(auctionId, { since, onMessage, onError });
    this.sendSubscribe(auctionId);
  }

  sendSubscribe(auctionId) {
    const sub = this.subs.get(auctionId);
    if (!sub) return;
    const message = { op: "subscribe", auction_id: auctionId, req_id: nextId("sub") };
    const since = sub.since();
    if (Number.isInteger(since) && since > 0) message.since = since;
    this.send(message);
  }

  unsubscribe(auctionId) {
    if (this.subs.delete(auctionId)) this.send({ op: "unsubscribe", auction_id: auctionId });
  }

  // ---- channels ("me": the signed-in user's notices) -------------------------------------

  /** A message of a channel (or the answer to its subscribe) goes to it; true if taken. */
  routeChannel(message) {
    const name = message.channel ?? this.channelReqs.get(message.req_id);
    if (name === undefined) return false;
    if (message.req_id !== undefined) this.channelReqs.delete(message.req_id);
    const channel = this.channels.get(name);
    if (channel) {
      if (message.op === "error") channel.onError(message);
      else if (message.op === "event" || message.op === "ack") channel.onMessage(message);
    }
    return true;
  }

  /** Follow a channel; since() is the last seq seen (null the first time). */
  subscribeChannel(channel, { since, onMessage, onError = () => {} }) {
    this.channels.set(channel, { since, onMessage, onError });
    this.sendChannelSubscribe(channel);
  }

  sendChannelSubscribe(channel) {
    const sub = this.channels.get(channel);
    if (!sub || !this.isOpen) return;
    const reqId = nextId("ch");
    const message = { op: "subscribe", channel, req_id: reqId };
    const since = sub.since();
    if (Number.isInteger(since) && since >= 0) message.since = since;
    if (this.channelReqs.size > 32) this.channelReqs.clear(); // answers that never came
    this.channelReqs.set(reqId, channel);
    this.send(message);
  }

  /** Stop following a channel (`tell`: say so to the server, else only forget it here). */
  unsubscribeChannel(channel, tell = true) {
    if (this.channels.delete(channel) && tell) this.send({ op: "unsubscribe", channel });
  }

  /** Resolves with the server's `ack` or `error` message (or a local TIMEOUT error). */
  bid(auctionId, amount, maxAmount = null) {
    const reqId = nextId("bid");
    const message = { op: "bid", req_id: reqId, auction_id: auctionId, amount };
    if (maxAmount !== null && maxAmount !== undefined) message.max_amount = maxAmount;
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.pending.delete(reqId);
        resolve({ op: "error", req_id: reqId, code: "TIMEOUT",
          message: "No answer from the server yet — check the bid history before retrying" });
      }, BID_TIMEOUT_MS);
      this.pending.set(reqId, { message, resolve, timer });
      this.send(message); // if the socket is down it goes out on reconnect, same req_id
    });
  }
}
