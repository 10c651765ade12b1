// My activity (#/me/activity): how the signed-in user bids — how many bids and auctions, the win
// rate, when in an auction the bids come (a histogram of the timing), the hours of the day they
// bid at, how often they snipe or let a proxy bid for them, how far over (or under) the card's
// market value their wins were, and the auctions they watched against those they bid on. Bars are
// plain HTML, not the chart library: the categories ("last minute", hours of the day) are not a
// time axis, and a table of bars reads out loud.

import { api } from "../api.js";
import { h, setText } from "../dom.js";
import { TIMING_LABEL, activityIsEmpty, bars, hourBars, watchedText } from "../activity_model.js";
import { formatChange, formatShare } from "../analytics_model.js";
import { signOut, state } from "../shell.js";
import { barTable } from "./analytics_ui.js";

const NEXT = "#/me/activity";
const count = (n) => (Number.isInteger(n) ? String(n) : "—");

function signInPrompt() {
  return h("div", { class: "empty", testid: "activity-signin" },
    h("p", { class: "empty__title", text: "Sign in to see your activity" }),
    h("p", { text: "How and when you bid, your win rate and the auctions you watched." }),
    h("a", { class: "btn btn--primary", href: `#/signin?next=${encodeURIComponent(NEXT)}` }, "Sign in"));
}

export class ActivityView {
  title = "My activity";

  mount(main) {
    this.main = main;
    this.gone = false;
    this.root = h("section", { class: "page activity", testid: "activity-page", "aria-busy": "true" },
      h("div", { class: "page__head" }, h("div", null,
        h("h1", { class: "page__title", text: "My activity" }),
        h("p", { class: "page__sub", text: "Your bidding, measured from your own bids and the auctions they were in." }))));
    main.append(this.root);
    if (!state.session) {
      this.root.setAttribute("aria-busy", "false");
      this.root.append(signInPrompt());
      return;
    }
    this.status = h("p", { class: "list-status", role: "status", testid: "activity-status" }, "Loading…");
    this.root.append(this.status);
    this.load();
  }

  unmount() {
    this.gone = true;
  }

  onSession() {
    this.unmount();
    this.main.replaceChildren();
    this.mount(this.main);
  }

  async load() {
    let me;
    try {
      me = await api.myAnalytics(state.session.token);
    } catch (error) {
      if (this.gone) return;
      if (error.code === "UNAUTHORIZED" || error.status === 401) {
        signOut("Your session has expired — please sign in again");
        return;
      }
      setText(this.status, error.code === "NETWORK" ? "Offline — reload when you're back" : `Couldn't load your activity: ${error.message}`);
      this.status.classList.add("list-status--error");
      return;
    }
    if (this.gone) return;
    this.root.setAttribute("aria-busy", "false");
    this.status.remove();
    this.root.append(activityIsEmpty(me) ? empty() : this.render(me));
  }

  render(me) {
    const stat = (label, value, key, sub = null) => h("div", { class: "stat" }, h("dt", null, label),
      h("dd", { testid: `activity-${key}`, text: value }), sub ? h("span", { class: "stat-sub", text: sub }) : null);
    const overpay = formatChange(me.avg_overpay).text;
    const timing = bars(me.timing_histogram, TIMING_LABEL);
    const hours = hourBars(me.active_hours);
    const anyTiming = timing.some((b) => b.count > 0);
    const anyHours = hours.some((b) => b.count > 0);
    return h("div", { class: "activity__body" },
      h("dl", { class: "stats activity__stats", testid: "activity-stats" },
        stat("Bids", count(me.bids), "bids"),
        stat("Auctions bid on", count(me.auctions_bid), "auctions-bid"),
        stat("Won", count(me.auctions_won), "won"),
        stat("Win rate", formatShare(me.win_rate), "win-rate", "of the auctions you bid on"),
        stat("Snipes", formatShare(me.snipe_share), "snipe-share", "bids in an auction's closing window (its soft close, or last minute)"),
        stat("Proxy bids", formatShare(me.proxy_share), "proxy-share", "bids placed for you up to your maximum"),
        stat("Average overpay", overpay, "overpay", "what you paid against the card's market value, when you won"),
        stat("Watched", count(me.auctions_watched), "watched", watchedText(me))),
      h("div", { class: "activity__charts" },
        h("section", { class: "panel", "aria-labelledby": "timing-heading" },
          h("h2", { class: "section-title", id: "timing-heading", text: "When in an auction you bid" }),
          anyTiming ? barTable({ caption: "Your bids by time before the auction's close", rows: timing, testid: "timing-histogram" })
            : h("p", { class: "hint", text: "No timed bids yet." })),
        h("section", { class: "panel", "aria-labelledby": "hours-heading" },
          h("h2", { class: "section-title", id: "hours-heading", text: "Hours you bid at (UTC)" }),
          anyHours ? barTable({ caption: "Your bids by hour of the day, UTC", rows: hours, testid: "active-hours", compact: true })
            : h("p", { class: "hint", text: "No bids yet." }))));
  }
}

function empty() {
  return h("div", { class: "empty", testid: "activity-empty" },
    h("p", { class: "empty__title", text: "No activity yet" }),
    h("p", { text: "Once you watch or bid in auctions, your bidding pattern shows here: when you bid, how often you win, and how your winning prices compare with the market. It counts auctions once they have closed." }),
    h("a", { class: "btn btn--primary", href: "#/" }, "Browse live auctions"));
}
