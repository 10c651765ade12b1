// One trade offer as its party sees it: what you give and what you get (cards by title, cash),
// its status, expiry, message and why it ended, the thread around it (the offer it answers,
// the counter that answered it), and what you may do: Accept, Decline, Counter (sent to you)
// or Cancel (sent by you). An offer's terms never change (a counter is a new offer): only its
// state is updated in place.

import { clock, newReqId } from "../api.js";
import { flash, h, setText } from "../dom.js";
import { dateTime, gradeLabel, shortId } from "../format.js";
import { feeCents, formatCents, percentOfBps } from "../money.js";
import { assetInfo, knownTitle, noteOffer, offersApi, withRetries } from "../offers_live.js";
import {
  actionsFor, expiryText, isRetryable, offerErrorText, perspective, reasonText, statusLabel, statusOf, statusTone,
} from "../offers_model.js";
import { href } from "../router.js";
import { CONFIG, me, signOut, who } from "../shell.js";

const offerHref = (id) => href("/offers/:id", { id });

const DOING = { accept: "Accepting: the cards and cash swap…", decline: "Declining…", cancel: "Cancelling…" };

/** A card of an offer: its title (fetched once) linking to its token, and its grade. */
function assetLine(assetId) {
  const title = h("span", { class: "offer-asset__title", text: `Card ${shortId(assetId, 8, 4)}` });
  const link = h("a", { class: "offer-asset__link", href: null }, title);
  const grade = h("span", { class: "slab slab--none", hidden: true });
  const el = h("li", { class: "offer-asset", testid: "offer-asset", dataset: { assetId } }, link, grade);
  assetInfo(assetId).then((asset) => {
    setText(title, asset.title || "Untitled card");
    if (asset.token_id) link.setAttribute("href", href("/token/:id", { id: asset.token_id }));
    const label = gradeLabel(asset);
    if (label) {
      grade.hidden = false;
      grade.className = "slab";
      grade.dataset.grader = asset.grader || "";
      setText(grade, label);
    }
  }, () => {
    setText(title, `Card ${shortId(assetId, 8, 4)} (not found)`);
  });
  return el;
}

/** What the fee (ECE_OFFER_FEE_BPS, kept from whoever receives the cash) leaves you. */
function feeNote(cash) {
  const bps = CONFIG.offer_fee_bps;
  if (!Number.isInteger(bps) || bps <= 0) return null;
  const fee = feeCents(cash, bps);
  return h("span", { class: "offer__fee", testid: "offer-fee",
    text: ` (less the ${percentOfBps(bps)} fee: you receive ${formatCents(cash - fee)})` });
}

function sideBlock(label, side, testid, receiving = false) {
  const assets = side.assets || [];
  const cash = Number.isInteger(side.cash) && side.cash > 0;
  return h("section", { class: "offer__side", testid, "aria-label": label },
    h("h3", { class: "offer__side-title", text: label }),
    assets.length ? h("ul", { class: "offer__assets" }, assets.map(assetLine)) : null,
    cash ? h("p", { class: "offer__cash", testid: "offer-cash" }, assets.length ? "+ " : "", formatCents(side.cash),
      receiving ? feeNote(side.cash) : null)
      : null,
    !assets.length && !cash ? h("p", { class: "offer__nothing", text: "Nothing" }) : null);
}

export class OfferItem {
  /** onChange(offer): an action's answer (the page merges it into its list). */
  constructor(offer, { onChange = () => {} } = {}) {
    this.offer = offer;
    this.onChange = onChange;
    this.pending = null; // {action, reqId}: an action without a final answer (a retry reuses reqId)
    this.busy = false; // an action in flight: no buttons meanwhile
    this.build();
    this.refresh(clock.now());
  }

  build() {
    const offer = this.offer;
    const view = perspective(offer, me());
    this.view = view;
    const incoming = view.role === "recipient";
    this.statusEl = h("span", { class: "chip chip--offer", testid: "offer-status" });
    this.expiryEl = h("span", { class: "offer__expiry", testid: "offer-expiry" });
    this.reasonEl = h("p", { class: "offer__reason", testid: "offer-reason", hidden: true });
    this.threadEl = h("p", { class: "offer__thread", testid: "offer-thread" });
    this.feedback = h("p", { class: "feedback", testid: "offer-feedback", role: "status", "aria-live": "polite" });
    this.buttons = {
      accept: h("button", { type: "button", class: "btn btn--primary btn--small", testid: "offer-accept",
        onClick: () => this.act("accept") }, "Accept"),
      decline: h("button", { type: "button", class: "btn btn--ghost btn--small", testid: "offer-decline",
        onClick: () => this.act("decline") }, "Decline"),
      counter: h("a", { class: "btn btn--gold btn--small", testid: "offer-counter",
        href: `${offerHref(offer.offer_id)}/counter` }, "Counter"),
      cancel: h("button", { type: "button", class: "btn btn--danger btn--small", testid: "offer-cancel",
        onClick: () => this.act("cancel") }, "Cancel offer"),
    };
    this.actionsEl = h("div", { class: "offer__actions", role: "group", "aria-label": "Answer this offer" },
      Object.values(this.buttons));
    const party = h("span", { class: "offer__party", title: view.other || "" },
      view.otherName || who(view.other, "user"));
    const titleId = `offer-title-${offer.offer_id}`;
    this.el = h("article", { class: "offer panel", testid: "offer", "aria-labelledby": titleId,
      dataset: { offerId: offer.offer_id, role: view.role || "" } },
    h("header", { class: "offer__head" },
      h("h2", { class: "offer__title", id: titleId },
        offer.parent_id ? "Counter-offer " : "Offer ", incoming ? "from " : "to ", party),
      this.statusEl,
      h("a", { class: "offer__when", href: offerHref(offer.offer_id), testid: "offer-link",
        title: `Offer ${offer.offer_id}` }, dateTime(offer.created_at))),
    h("div", { class: "offer__sides" },
      sideBlock("You give", view.youGive, "offer-you-give"),
      h("span", { class: "offer__swap", "aria-hidden": "true", text: "⇄" }),
      sideBlock("You get", view.youGet, "offer-you-get", true)),
    offer.message ? h("blockquote", { class: "offer__message", testid: "offer-message" },
      h("span", { class: "visually-hidden", text: "Message: " }), offer.message) : null,
    this.reasonEl, this.threadEl,
    h("div", { class: "offer__foot" }, this.expiryEl, this.actionsEl),
    this.feedback);
  }

  /** A newer state of the same offer (events, an action's answer); a stale one is ignored. */
  update(offer) {
    if (offer.offer_id !== this.offer.offer_id || !(offer.seq > this.offer.seq)) return;
    const before = this.offer.status;
    this.offer = offer;
    this.refresh(clock.now());
    if (offer.status === before) return;
    flash(this.statusEl);
    if (this.feedback.dataset.kind === "pending" && !this.busy) { // "the swap is under way": its end came
      if (offer.status === "settled") this.say("Trade done: the cards and cash have moved.", "ok");
      else if (offer.status === "failed") this.say(reasonText(offer), "error");
    }
  }

  refresh(now) {
    const offer = this.offer;
    const status = statusOf(offer, now);
    this.status = status;
    this.el.dataset.status = status;
    this.statusEl.dataset.status = status;
    this.statusEl.dataset.tone = statusTone(status);
    setText(this.statusEl, statusLabel(status));
    const reason = reasonText(offer);
    this.reasonEl.hidden = !reason;
    setText(this.reasonEl, reason || "");
    this.renderThread();
    const allowed = new Set(this.busy ? [] : actionsFor(offer, me(), now));
    for (const [action, button] of Object.entries(this.buttons)) button.hidden = !allowed.has(action);
    this.actionsEl.hidden = allowed.size === 0;
    this.tick(now);
  }

  renderThread() {
    const { parent_id: parent, child_id: child } = this.offer;
    const parts = [];
    if (parent) {
      parts.push("In reply to ", h("a", { href: offerHref(parent), testid: "offer-parent" },
        this.view.role === "recipient" ? "your offer" : "their offer"), ".");
    }
    if (child) {
      parts.push(parts.length ? " " : "", "Answered by ", h("a", { href: offerHref(child), testid: "offer-child" },
        this.view.role === "recipient" ? "your counter-offer" : "their counter-offer"), ".");
    }
    const key = `${parent}|${child}`;
    if (this.threadEl.dataset.key === key) return;
    this.threadEl.dataset.key = key;
    this.threadEl.replaceChildren(...parts);
    this.threadEl.hidden = parts.length === 0;
  }

  tick(now) {
    if (statusOf(this.offer, now) !== this.status) {
      this.refresh(now); // it just expired here
      return;
    }
    const { text, urgent } = expiryText(this.offer, now);
    setText(this.expiryEl, text);
    this.expiryEl.classList.toggle("is-urgent", urgent);
  }

  async act(action) {
    const offer = this.offer;
    const reqId = this.pending?.action === action ? this.pending.reqId : newReqId();
    this.pending = { action, reqId };
    this.busy = true;
    this.refresh(clock.now());
    this.say(DOING[action] || "…", "pending");
    try {
      const answer = await withRetries(() => offersApi.act(offer.offer_id, action, { req_id: reqId }));
      this.pending = null;
      this.changed(answer);
      if (answer.status === "failed") this.say(reasonText(answer), "error");
      else if (answer.status === "settled") this.say("Trade done: the cards and cash have moved.", "ok");
      else if (answer.status === "accepted") this.say("Accepted: the swap is under way.", "pending");
      else this.say(`${statusLabel(answer.status)}.`, "ok");
    } catch (error) {
      if (!isRetryable(error)) this.pending = null;
      if (error.code === "UNAUTHORIZED") {
        signOut("Your session has expired — please sign in again");
        return;
      }
      this.say(offerErrorText(error, { me: me(), name: knownTitle }), "error");
      if (error.code === "OFFER_NOT_ACTIVE" || error.code === "FORBIDDEN") this.reload();
    } finally {
      this.busy = false;
      this.refresh(clock.now());
    }
  }

  /** The offer as the server has it now (after a refusal that says ours is out of date). */
  async reload() {
    try {
      this.changed(await offersApi.get(this.offer.offer_id));
    } catch {
      this.refresh(clock.now());
    }
  }

  changed(offer) {
    noteOffer(offer);
    this.update(offer);
    this.refresh(clock.now());
    this.onChange(offer);
  }

  say(text, kind) {
    setText(this.feedback, text);
    this.feedback.dataset.kind = kind;
  }
}
