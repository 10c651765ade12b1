// The header's live account, beside the user's name: the wallet balance (GET /api/wallet at
// sign-in, then every `payment` notice) and the notifications bell, fed by the WebSocket channel
// "me" (notices.js words them). Pages follow both through onWallet() and onNotice(); the
// channel's live views (events without a seq: `portfolio`) through onMeLive().

import { api } from "./api.js";
import { h, setText, toast } from "./dom.js";
import { clockTime } from "./format.js";
import { feeRates, formatCents } from "./money.js";
import { createNotices, describeNotice, markRead, receiveNotice } from "./notices.js";
import { describeOfferNotice } from "./offers_model.js";
import { CONFIG, live, onSessionChange, state } from "./shell.js";

/** Does this server have wallets? (Its /config.js says how deposits work.) */
export const walletsEnabled = feeRates(CONFIG).enabled;

const WALLET_RETRY_MS = 15_000;
const RESUBSCRIBE_MS = 3_000;
const TRANSIENT = new Set(["UNAVAILABLE", "OVERLOADED", "RATE_LIMITED", "LIMIT_EXCEEDED"]);
const TOAST_BURST = 3; // more fresh notices at once (a replay after a reconnect): one summary

/** wallet: {balance, available} or null when unknown; channel: "off" | "on" | "unavailable". */
export const account = { wallet: null, notices: createNotices(), channel: "off" };
const walletListeners = new Set();
const noticeListeners = new Set();
const liveListeners = new Set();
let paymentsSeen = 0; // payment notices so far (a wallet fetch that overlapped one is stale)
let fetching = false;
let fetchAgain = false;
let retryTimer = null;
let resubscribeTimer = null;
let toastQueue = [];
const el = {};

/** fn(wallet) on every change of the known balance; returns an unsubscribe function. */
export function onWallet(fn) {
  walletListeners.add(fn);
  return () => walletListeners.delete(fn);
}

/** fn(event) for each new notice of the "me" channel; returns an unsubscribe function. */
export function onNotice(fn) {
  noticeListeners.add(fn);
  return () => noticeListeners.delete(fn);
}

/** fn(event) for each live view of the "me" channel (an event without a seq, not a stored notice:
 * `portfolio`); returns an unsubscribe function. */
export function onMeLive(fn) {
  liveListeners.add(fn);
  return () => liveListeners.delete(fn);
}

/** The balance as the server last said (a deposit's answer, a payment notice, a fetch). */
export function setWallet(wallet) {
  account.wallet = wallet;
  renderBalance();
  for (const fn of walletListeners) fn(wallet);
}

/** GET /api/wallet for the header (only when the server has wallets: no 404s otherwise). */
export async function refreshWallet() {
  const token = state.session?.token;
  if (!token || !walletsEnabled) return;
  if (fetching) {
    fetchAgain = true;
    return;
  }
  fetching = true;
  fetchAgain = false;
  clearTimeout(retryTimer);
  const mark = paymentsSeen;
  try {
    const answer = await api.wallet(token, null, 1);
    if (state.session?.token !== token) return;
    if (paymentsSeen === mark) setWallet({ balance: answer.balance, available: answer.available });
    else fetchAgain = true; // a payment landed meanwhile: this answer may predate it
  } catch (error) {
    if (state.session?.token !== token) return;
    if (error.status !== 404 && error.status !== 401 && error.status !== 403) {
      retryTimer = setTimeout(refreshWallet, WALLET_RETRY_MS);
    }
  } finally {
    fetching = false;
    if (fetchAgain && state.session?.token === token) setTimeout(refreshWallet, 300);
  }
}

// ---- the "me" channel -------------------------------------------------------------------------

function follow() {
  account.notices = createNotices();
  account.channel = "on";
  live.subscribeChannel("me", {
    since: () => account.notices.lastSeq,
    onMessage: received,
    onError(message) {
      if (message.code === "INVALID") {
        // A server without user channels: nothing to follow.
        account.channel = "unavailable";
        live.unsubscribeChannel("me", false);
        renderNotices();
      } else if (TRANSIENT.has(message.code)) {
        clearTimeout(resubscribeTimer);
        resubscribeTimer = setTimeout(() => live.sendChannelSubscribe("me"), RESUBSCRIBE_MS);
      } // UNAUTHORIZED: the session is over (the shell signs out)
    },
  });
}

function received(message) {
  if (message?.op === "event" && message.seq === undefined) {
    for (const fn of liveListeners) fn(message);
    return;
  }
  const result = receiveNotice(account.notices, message);
  account.notices = result.state;
  if (!result.fresh.length) return;
  for (const event of result.fresh) {
    if (event.type === "payment" && Number.isInteger(event.balance)) {
      paymentsSeen += 1;
      const before = account.wallet;
      const delta = before ? event.balance - before.balance : 0;
      setWallet({ balance: event.balance, available: before ? before.available + delta : null });
    }
    for (const fn of noticeListeners) fn(event);
    const quiet = (event.type === "payment" && state.view?.quietPayments) || describe(event).quiet;
    if (!quiet) toastQueue.push(event);
  }
  if (el.panel && !el.panel.hidden) account.notices = markRead(account.notices);
  renderNotices();
  setTimeout(flushToasts, 60); // a burst (replay) is gathered into one toast
}

function flushToasts() {
  const queue = toastQueue;
  toastQueue = [];
  if (queue.length > TOAST_BURST) {
    toast(h("span", null, `${queue.length} new notifications — `,
      h("button", { type: "button", class: "link-button", onClick: (event) => {
        event.stopPropagation(); // else the click, reaching the page, closes the list again
        openPanel(true);
      } }, "show")));
    return;
  }
  for (const event of queue) {
    const { tone } = describe(event);
    toast(sentence(event), tone === "bad" ? "warn" : tone === "good" ? "ok" : "info");
  }
}

// ---- rendering --------------------------------------------------------------------------------

/** A notice in words (notices.js; trade offers' own: offers_model.js, worded for who reads). */
function describe(event) {
  return describeOfferNotice(event, state.session?.user_id) || describeNotice(event);
}

/** A notice's sentence as nodes: its links are links. */
function sentence(event) {
  return h("span", { class: "notice__text" }, describe(event).parts.map((part) =>
    (typeof part === "string" ? part : h("a", { href: part.href, onClick: () => openPanel(false) }, part.text))));
}

function bellIcon() {
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("viewBox", "0 0 24 24");
  svg.setAttribute("aria-hidden", "true");
  svg.setAttribute("class", "bell__icon");
  const path = document.createElementNS(ns, "path");
  path.setAttribute("d", "M12 3a6 6 0 0 0-6 6v3.5L4.5 16h15L18 12.5V9a6 6 0 0 0-6-6Zm-2.2 15a2.3 2.3 0 0 0 4.4 0");
  path.setAttribute("fill", "none");
  path.setAttribute("stroke", "currentColor");
  path.setAttribute("stroke-width", "1.8");
  path.setAttribute("stroke-linejoin", "round");
  svg.append(path);
  return svg;
}

function build() {
  el.balance = h("a", { class: "balance", href: "#/wallet", testid: "header-balance", hidden: true });
  el.count = h("span", { class: "bell__count", testid: "notices-unread", hidden: true });
  el.bell = h("button", { type: "button", class: "bell", testid: "notices-bell", "aria-haspopup": "true",
    "aria-expanded": "false", "aria-controls": "notices-panel", "aria-label": "Notifications",
    onClick: () => openPanel(el.panel.hidden) }, bellIcon(), el.count);
  el.list = h("ol", { class: "notices__list", testid: "notices-list" });
  el.note = h("p", { class: "notices__note", testid: "notices-note" });
  el.panel = h("div", { class: "notices", id: "notices-panel", testid: "notices-panel", role: "region",
    "aria-labelledby": "notices-title", hidden: true },
  h("div", { class: "notices__head" },
    h("h2", { class: "notices__title", id: "notices-title", text: "Notifications" }),
    h("a", { href: "#/wallet", class: "notices__wallet", onClick: () => openPanel(false) }, "Wallet")),
  el.list, el.note);
  const host = document.getElementById("account-extras");
  host.replaceChildren(el.balance, h("div", { class: "bell-wrap" }, el.bell, el.panel));
  document.addEventListener("click", (event) => {
    if (!el.panel.hidden && !event.target.closest?.(".bell-wrap")) openPanel(false);
  });
  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && !el.panel.hidden) {
      openPanel(false);
      el.bell.focus();
    }
  });
}

function openPanel(open) {
  el.panel.hidden = !open;
  el.bell.setAttribute("aria-expanded", String(open));
  if (open) account.notices = markRead(account.notices);
  renderNotices();
}

function renderBalance() {
  const wallet = state.session ? account.wallet : null;
  el.balance.hidden = !wallet || !Number.isInteger(wallet.balance);
  if (el.balance.hidden) return;
  setText(el.balance, formatCents(wallet.balance));
  el.balance.setAttribute("aria-label", `Wallet balance ${formatCents(wallet.balance)}`);
  el.balance.title = Number.isInteger(wallet.available)
    ? `Balance ${formatCents(wallet.balance)} · available ${formatCents(wallet.available)}` : "Your wallet";
}

function renderNotices() {
  const { items, unread } = account.notices;
  el.count.hidden = unread === 0;
  setText(el.count, unread > 9 ? "9+" : String(unread));
  el.bell.setAttribute("aria-label", unread ? `Notifications, ${unread} unread` : "Notifications");
  el.bell.dataset.unread = String(unread);
  if (el.panel.hidden) return;
  el.list.replaceChildren(...items.map((event) => h("li", {
    class: "notice", testid: "notice", dataset: { type: event.type, seq: event.seq, tone: describe(event).tone },
  }, sentence(event), Number.isFinite(event.at)
    ? h("time", { class: "notice__time", datetime: new Date(event.at).toISOString(), text: clockTime(event.at) }) : null)));
  if (!items.length) el.list.append(h("li", { class: "notices__empty", text: "No notifications yet" }));
  setText(el.note, account.channel === "unavailable"
    ? "Live notifications are not available on this exchange yet."
    : items.length ? "Notices since you opened this page." : "Outbids, wins, sales, offers and payments show up here.");
}

/** Start with the page: follow the signed-in user (and every later sign-in). */
export function startHeader() {
  build();
  const begin = () => {
    account.wallet = null;
    account.notices = createNotices();
    clearTimeout(resubscribeTimer);
    toastQueue = [];
    live.unsubscribeChannel("me", false);
    account.channel = "off";
    if (state.session) {
      follow();
      refreshWallet();
    }
    openPanel(false);
    renderBalance();
  };
  onSessionChange(begin);
  begin();
}
