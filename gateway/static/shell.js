// What every page shares: the signed-in session, the one live connection, and the header
// (connection state, account). Views import from here; this module imports no view.

import { api, session as sessionStore } from "./api.js";
import { h, setText, toast } from "./dom.js";
import { Live } from "./live.js";
import { parseHash } from "./router.js";

export const CONFIG = window.ECE_CONFIG || {};

export const state = {
  session: sessionStore.load(),
  view: null, // the mounted page view
};

export function me() {
  return state.session ? state.session.user_id : null;
}

/** "you" for the signed-in user, else a short, stable handle from the user id. */
export function who(userId, noun = "bidder") {
  if (!userId) return "—";
  if (userId === me()) return "you";
  return `${noun} ${userId.slice(-6)}`;
}

// ---- the live connection --------------------------------------------------------------------

const CONNECTION_TEXT = {
  connecting: "Connecting…",
  live: "Live",
  reconnecting: "Reconnecting…",
  offline: "Offline",
};

export const live = new Live({
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

export function renderConnection() {
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

// ---- the account ----------------------------------------------------------------------------

/** Where signing in should return to: the page we are on (or its own `next`). */
function returnTo() {
  const parsed = parseHash(location.hash);
  const onAuth = parsed && (parsed.parts[0] === "signin" || parsed.parts[0] === "signup");
  return onAuth ? parsed.query.get("next") || "#/" : location.hash || "#/";
}

export function renderAccount() {
  // Links only for the signed in (e.g. "My cards").
  for (const el of document.querySelectorAll("[data-signed-in]")) el.hidden = !state.session;
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
    const next = encodeURIComponent(returnTo());
    host.append(
      h("a", { class: "btn btn--ghost btn--small", href: `#/signin?next=${next}`, testid: "nav-signin" },
        "Sign in"),
      h("a", { class: "btn btn--primary btn--small", href: `#/signup?next=${next}`,
        testid: "nav-signup" }, "Create account"));
  }
}

const sessionListeners = new Set();

/** Call `fn()` after every sign-in or sign-out (here or in another tab). */
export function onSessionChange(fn) {
  sessionListeners.add(fn);
}

/** Signed in or out, here or (sessionChanged) in another tab. */
function sessionChanged() {
  renderAccount();
  live.restart(); // the socket authenticates with the token it was opened with
  for (const fn of sessionListeners) fn();
  state.view?.onSession?.();
}

export function setSession(value) {
  state.session = value;
  if (value) sessionStore.save(value);
  else sessionStore.clear();
  sessionChanged();
}

export function signOut(message) {
  setSession(null);
  if (message) toast(message, "error");
}

export function requireSignIn(message = "Sign in to continue") {
  toast(message);
  location.hash = `#/signin?next=${encodeURIComponent(location.hash || "#/")}`;
}

/** Follow sign-ins and sign-outs made in other tabs. */
export function watchOtherTabs() {
  window.addEventListener("storage", (event) => {
    if (event.key === sessionStore.key) {
      state.session = sessionStore.load();
      sessionChanged();
    }
  });
}

/** A stored session may have expired while the page was closed. */
export async function verifySession() {
  if (!state.session) return;
  try {
    await api.me(state.session.token);
  } catch (error) {
    if (error.code === "UNAUTHORIZED") signOut("Your session has expired — please sign in again");
  }
}
