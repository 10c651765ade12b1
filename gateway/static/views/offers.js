// Trade offers (#/offers?box=in|out): the offers sent to you and those you sent, newest first,
// updated in place by the "me" channel's offer events (no reload); and one offer with its
// thread (#/offers/<id>). Making an offer: views/offer_composer.js.

import { h, setText } from "../dom.js";
import { onNotice } from "../header.js";
import { offersApi, onWaiting, waitingCount } from "../offers_live.js";
import {
  STATUS_LABEL, applyOffer, mergeOffer, offerErrorText, offerFromEvent, perspective, statusLabel,
} from "../offers_model.js";
import { live, me, signOut, state, who } from "../shell.js";
import { OfferItem } from "./offer_item.js";

const PAGE = 25;
const TABS = [
  { box: "in", label: "Received", empty: "No offers received yet",
    hint: "When a collector offers a trade for one of your cards, it shows here at once." },
  { box: "out", label: "Sent", empty: "You haven't sent any offers",
    hint: "Open a card's token page and choose “Make an offer” to propose a trade." },
];

function signInPrompt(next) {
  return h("section", { class: "page" }, h("div", { class: "empty", testid: "offers-signin" },
    h("p", { class: "empty__title", text: "Sign in to see your trade offers" }),
    h("p", { text: "Trade cards and cash directly with other collectors." }),
    h("a", { class: "btn btn--primary", href: `#/signin?next=${encodeURIComponent(next)}` }, "Sign in")));
}

/** Offers shown in order, each element moved only when its place changed (focus stays). */
function place(container, els) {
  els.forEach((el, i) => {
    if (container.children[i] !== el) container.insertBefore(el, container.children[i] || null);
  });
  while (container.children.length > els.length) container.lastElementChild.remove();
}

/** What a screen reader hears of an offer's news on this page. */
function announcement(offer, event) {
  const { role, other, otherName } = perspective(offer, me());
  const party = otherName || who(other, "user");
  if (event.type === "offer_received") {
    return offer.parent_id ? `${party} sent you a counter-offer.` : `New offer from ${party}.`;
  }
  return `Offer ${role === "recipient" ? "from" : "to"} ${party}: ${statusLabel(offer.status)}.`;
}

export class OffersView {
  title = "Trade offers";

  constructor(query) {
    this.box = query.get("box") === "out" ? "out" : "in";
    this.filter = STATUS_LABEL[query.get("status")] ? query.get("status") : null;
  }

  mount(main) {
    this.main = main;
    this.gone = false;
    this.offers = [];
    this.items = new Map(); // offer_id -> OfferItem
    if (!state.session) {
      main.append(signInPrompt("#/offers"));
      return;
    }
    this.tabs = TABS.map((tab) => {
      const count = tab.box === "in"
        ? h("span", { class: "tab__count", testid: "offers-tab-count", hidden: true }) : null;
      const el = h("button", { type: "button", role: "tab", class: "tabs__tab", id: `offers-tab-${tab.box}`,
        testid: `offers-tab-${tab.box}`, "aria-controls": "offers-panel",
        onClick: () => this.show(tab.box), onKeydown: (event) => this.arrow(event) }, tab.label, count);
      return { ...tab, el, count };
    });
    this.filterEl = h("select", { id: "offers-filter", testid: "offers-filter",
      onChange: () => this.show(this.box, this.filterEl.value || null) },
    h("option", { value: "" }, "All"),
    Object.entries(STATUS_LABEL).map(([value, label]) => h("option", { value }, label)));
    this.status = h("p", { class: "list-status", role: "status", testid: "offers-status" });
    this.list = h("div", { class: "offers__list", testid: "offers-list" });
    this.emptyTitle = h("p", { class: "empty__title" });
    this.emptyHint = h("p");
    this.empty = h("div", { class: "empty", testid: "offers-empty", hidden: true }, this.emptyTitle, this.emptyHint);
    this.more = h("button", { type: "button", class: "btn btn--ghost btn--small", testid: "offers-more", hidden: true,
      onClick: () => this.load(true) }, "Load more");
    this.announcer = h("p", { class: "visually-hidden", "aria-live": "polite", testid: "offers-announce" });
    this.toInput = h("input", { id: "offers-to", testid: "offers-to", autocomplete: "off", spellcheck: "false",
      placeholder: "u_…" });
    main.append(h("section", { class: "page offers" },
      h("div", { class: "page__head" },
        h("div", null,
          h("h1", { class: "page__title", text: "Trade offers" }),
          h("p", { class: "page__sub",
            text: "Cards for cards, with cash on one side if you like. Accepted trades swap at once." })),
        h("div", { class: "page__tools" }, this.status)),
      h("form", { class: "offers__start", testid: "offers-start", onSubmit: (event) => this.start(event) },
        h("label", { for: "offers-to", text: "Make an offer to a collector (user id)" }),
        h("div", { class: "offers__start-row" }, this.toInput,
          h("button", { type: "submit", class: "btn btn--ghost btn--small" }, "Choose cards"))),
      h("div", { class: "offers__bar" },
        h("div", { class: "tabs offers__tabs", role: "tablist", "aria-label": "Offers" }, this.tabs.map((t) => t.el)),
        h("div", { class: "offers__filter" }, h("label", { for: "offers-filter", text: "Show" }), this.filterEl)),
      h("div", { role: "tabpanel", id: "offers-panel", class: "offers__panel" }, this.list, this.empty,
        h("div", { class: "wallet__more" }, this.more)),
      this.announcer));
    this.unlisten = [
      onNotice((event) => this.heard(event)),
      onWaiting((count) => this.renderCount(count)),
    ];
    this.renderCount(waitingCount());
    this.show(this.box, this.filter, true);
  }

  unmount() {
    this.gone = true;
    for (const stop of this.unlisten || []) stop();
  }

  start(event) {
    event.preventDefault();
    const to = this.toInput.value.trim();
    if (to) location.hash = `#/offers/new?to=${encodeURIComponent(to)}`;
  }

  /** The inbox or the outbox (and a status filter): kept in the URL without a new page. */
  show(box, filter = this.filter, first = false) {
    if (!first && box === this.box && filter === this.filter) return;
    this.box = box;
    this.filter = filter;
    this.filterEl.value = filter || "";
    for (const tab of this.tabs) {
      const selected = tab.box === box;
      tab.el.setAttribute("aria-selected", String(selected));
      tab.el.tabIndex = selected ? 0 : -1;
    }
    this.main.querySelector("#offers-panel").setAttribute("aria-labelledby", `offers-tab-${box}`);
    const hash = `#/offers?box=${box}${filter ? `&status=${filter}` : ""}`;
    if (location.hash !== hash) history.replaceState(history.state, "", hash);
    this.offers = [];
    this.items.clear();
    this.list.replaceChildren();
    this.cursor = null;
    this.load(false);
  }

  arrow(event) {
    if (event.key !== "ArrowLeft" && event.key !== "ArrowRight") return;
    const next = this.tabs.find((t) => t.box !== this.box);
    this.show(next.box);
    next.el.focus();
  }

  async load(more) {
    const box = this.box;
    const filter = this.filter;
    this.loadToken = {};
    const mine = this.loadToken;
    setText(this.status, "Loading…");
    this.status.classList.remove("list-status--error");
    try {
      const page = await offersApi.list(box, { status: filter, cursor: more ? this.cursor : null, limit: PAGE });
      if (this.gone || mine !== this.loadToken) return;
      for (const offer of page.items || []) this.offers = mergeOffer(this.offers, offer);
      this.cursor = page.next_cursor || null;
      setText(this.status, "");
      this.render();
    } catch (error) {
      if (this.gone || mine !== this.loadToken) return;
      if (error.code === "UNAUTHORIZED") {
        signOut("Your session has expired — please sign in again");
        return;
      }
      setText(this.status, error.code === "NETWORK"
        ? "Offline — try again" : `Couldn't load offers: ${offerErrorText(error)}`);
      this.status.classList.add("list-status--error");
    }
  }

  /** An offer event of the "me" channel: the list updates in place. */
  heard(event) {
    const offer = offerFromEvent(event);
    if (!offer || this.gone) return;
    const before = this.offers;
    this.offers = applyOffer(this.offers, offer, { box: this.box, me: me(), status: this.filter });
    if (this.offers === before) return;
    this.render();
    setText(this.announcer, announcement(offer, event));
  }

  merge(offer) {
    this.offers = applyOffer(this.offers, offer, { box: this.box, me: me(), status: this.filter });
    this.render();
  }

  render() {
    const els = this.offers.map((offer) => {
      let item = this.items.get(offer.offer_id);
      if (item) item.update(offer);
      else {
        item = new OfferItem(offer, { onChange: (o) => this.merge(o) });
        this.items.set(offer.offer_id, item);
      }
      return item.el;
    });
    place(this.list, els);
    const tab = this.tabs.find((t) => t.box === this.box);
    this.empty.hidden = this.offers.length > 0;
    setText(this.emptyTitle, this.filter ? `No ${statusLabel(this.filter).toLowerCase()} offers here` : tab.empty);
    setText(this.emptyHint, this.filter ? "Choose “All” to see every offer." : tab.hint);
    this.more.hidden = !this.cursor;
  }

  renderCount(count) {
    const tab = this.tabs?.[0];
    if (!tab) return;
    tab.count.hidden = count === 0;
    setText(tab.count, String(count));
    tab.el.setAttribute("aria-label", count ? `Received, ${count} awaiting your answer` : "Received");
  }

  tick(now) {
    for (const item of this.items.values()) item.tick(now);
  }

  onConnection() {
    // Back online: the first page again, merged (events replayed by the channel do the same).
    if (live.state === "live" && this.tabs && state.session && !this.gone) this.refreshFirstPage();
  }

  async refreshFirstPage() {
    try {
      const page = await offersApi.list(this.box, { status: this.filter, limit: PAGE });
      if (this.gone) return;
      for (const offer of page.items || []) this.merge(offer);
    } catch {
      // the next event or a reload shows it
    }
  }

  onSession() {
    this.unmount();
    this.main.replaceChildren();
    this.mount(this.main);
  }
}

/** One offer (#/offers/<id>): a notice's link, a thread's step, a wallet or provenance ref. */
export class OfferView {
  title = "Trade offer";

  constructor(offerId) {
    this.offerId = offerId;
  }

  mount(main) {
    this.main = main;
    this.gone = false;
    if (!state.session) {
      main.append(signInPrompt(`#/offers/${encodeURIComponent(this.offerId)}`));
      return;
    }
    this.slot = h("div", { class: "offers__list", testid: "offer-page" },
      h("p", { class: "loading", text: "Loading…" }));
    main.append(h("section", { class: "page offers" },
      h("nav", { class: "crumbs" }, h("a", { href: "#/offers" }, "← Trade offers")), this.slot));
    this.unlisten = [onNotice((event) => {
      const offer = offerFromEvent(event);
      if (offer && this.item && offer.offer_id === this.offerId) this.item.update(offer);
    })];
    this.load();
  }

  async load() {
    try {
      const offer = await offersApi.get(this.offerId);
      if (this.gone) return;
      this.item = new OfferItem(offer);
      this.slot.replaceChildren(this.item.el);
    } catch (error) {
      if (this.gone) return;
      if (error.code === "UNAUTHORIZED") {
        signOut("Your session has expired — please sign in again");
        return;
      }
      this.slot.replaceChildren(h("div", { class: "empty", testid: "offer-missing" },
        h("p", { class: "empty__title",
          text: error.code === "OFFER_NOT_FOUND" ? "No such offer" : "Couldn't load the offer" }),
        h("p", { text: offerErrorText(error) }),
        h("a", { class: "btn btn--primary", href: "#/offers" }, "Your offers")));
    }
  }

  unmount() {
    this.gone = true;
    for (const stop of this.unlisten || []) stop();
  }

  tick(now) {
    this.item?.tick(now);
  }

  onSession() {
    this.unmount();
    this.main.replaceChildren();
    this.mount(this.main);
  }
}
