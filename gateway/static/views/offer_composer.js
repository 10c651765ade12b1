// Making an offer (#/offers/new?to=USER_ID&want=ASSET_ID|want_token=TOKEN_ID) or a counter
// (#/offers/<id>/counter, pre-filled from the offer turned to your side): your cards to give,
// theirs to get, cash on one side if any, a message and how long it stands. The form is checked
// by offers_model.buildTerms; a request that got no answer is sent again with the same req_id,
// so the exchange never makes the offer twice.

import { clock, newReqId } from "../api.js";
import { h, setText, toast } from "../dom.js";
import { gradeLabel, shortId } from "../format.js";
import { onNotice } from "../header.js";
import { formatCents, parseDollars } from "../money.js";
import { assetsOf, knownTitle, noteOffer, offersApi, withRetries } from "../offers_live.js";
import {
  EXPIRY_CHOICES, MAX_ASSETS_PER_SIDE, MAX_MESSAGE, buildTerms, counterDraft, draftFromQuery, isRetryable,
  offerErrorText, offerFromEvent, statusLabel, statusOf,
} from "../offers_model.js";
import { href } from "../router.js";
import { me, signOut, state, who } from "../shell.js";

const FIELDS = ["to", "give", "want", "assets", "cash", "message", "expiresIn"];
const NO_RECIPIENT = "Enter their user id to see their cards.";
const CASH_CHOICES = [["none", "No cash"], ["give", "I add cash"], ["want", "I ask for cash"]];

function fieldError(name) {
  return h("p", { class: "feedback", id: `composer-${name}-error`, testid: `composer-${name}-error`,
    dataset: { kind: "error" } });
}

export class OfferComposerView {
  /** query: the route's URLSearchParams; counterOf: the id of the offer to counter, if any. */
  constructor({ query = new URLSearchParams(), counterOf = null } = {}) {
    this.query = query;
    this.counterOf = counterOf;
    this.title = counterOf ? "Counter-offer" : "Make an offer";
  }

  mount(main) {
    this.main = main;
    this.gone = false;
    this.pending = null; // {key, reqId}: a request without a final answer (sending it again reuses reqId)
    if (!state.session) {
      main.append(h("section", { class: "page" }, h("div", { class: "empty", testid: "composer-signin" },
        h("p", { class: "empty__title", text: "Sign in to make an offer" }),
        h("a", { class: "btn btn--primary", href: `#/signin?next=${encodeURIComponent(location.hash)}` }, "Sign in"))));
      return;
    }
    this.body = h("div", { class: "composer__body" }, h("p", { class: "loading", text: "Loading…" }));
    main.append(h("section", { class: "page composer" },
      h("nav", { class: "crumbs" }, h("a", { href: "#/offers" }, "← Trade offers")),
      h("div", { class: "page__head" }, h("div", null,
        h("h1", { class: "page__title", text: this.title }),
        h("p", { class: "page__sub", text: this.counterOf
          ? "Answer with your own terms: the offer was turned to your side. Change what you like and send it."
          : "Pick your cards and theirs, and cash on one side if you like. They can accept, decline or counter." }))),
      this.body));
    this.unlisten = [onNotice((event) => this.heard(event))];
    this.start();
  }

  unmount() {
    this.gone = true;
    for (const stop of this.unlisten || []) stop();
  }

  async start() {
    let wantTokens = [];
    if (this.counterOf) {
      try {
        this.parent = await offersApi.get(this.counterOf);
      } catch (error) {
        if (!this.gone) this.stop(offerErrorText(error));
        return;
      }
      if (this.gone) return;
      if (this.parent.to_id !== me()) return this.stop("Only the offer's recipient can counter it.");
      const status = statusOf(this.parent, clock.now());
      if (status !== "active") {
        return this.stop(`This offer is ${statusLabel(status).toLowerCase()}: it can't be countered.`);
      }
      this.draft = counterDraft(this.parent);
    } else {
      ({ draft: this.draft, wantTokens } = draftFromQuery(this.query));
    }
    this.build();
    await this.loadCards(wantTokens);
  }

  stop(text) {
    this.body.replaceChildren(h("div", { class: "empty", testid: "composer-unavailable" },
      h("p", { class: "empty__title", text: "Can't counter this offer" }), h("p", { text }),
      h("a", { class: "btn btn--primary", href: "#/offers" }, "Your offers")));
  }

  build() {
    const draft = this.draft;
    const counter = Boolean(this.counterOf);
    this.errors = Object.fromEntries(FIELDS.map((name) => [name, fieldError(name)]));
    this.toInput = counter ? null : h("input", { id: "composer-to", testid: "composer-to", value: draft.to,
      autocomplete: "off", spellcheck: "false", placeholder: "u_…", "aria-describedby": "composer-to-error",
      onKeydown: (event) => {
        if (event.key !== "Enter") return;
        event.preventDefault(); // not the whole offer: their cards first
        this.changeRecipient();
      } });
    const toField = counter
      ? h("p", { class: "composer__to", testid: "composer-to-fixed" }, "To ",
        h("strong", { title: draft.to, text: who(draft.to, "user") }), ", who sent you the offer.")
      : h("div", { class: "field" }, h("label", { for: "composer-to", text: "To (the collector's user id)" }),
        h("div", { class: "offers__start-row" }, this.toInput,
          h("button", { type: "button", class: "btn btn--ghost btn--small", testid: "composer-load",
            onClick: () => this.changeRecipient() }, "Show their cards")),
        this.errors.to);
    this.giveSlot = h("div", { class: "picker", testid: "composer-give" });
    this.wantSlot = h("div", { class: "picker", testid: "composer-want" });
    this.cashInput = h("input", { id: "composer-cash", testid: "composer-cash", inputmode: "decimal",
      autocomplete: "off", placeholder: "0.00", value: draft.cash, "aria-describedby": "composer-cash-error",
      onInput: () => this.summarize() });
    this.cashRadios = CASH_CHOICES.map(([value, label]) => h("label", { class: "choice" },
      h("input", { type: "radio", name: "cash-side", value, testid: `composer-cash-${value}`,
        checked: draft.cashSide === value, onChange: () => this.summarize() }), label));
    this.message = h("textarea", { id: "composer-message", testid: "composer-message", rows: 3,
      maxlength: MAX_MESSAGE, "aria-describedby": "composer-message-count composer-message-error",
      onInput: () => this.summarize() });
    this.message.value = draft.message;
    this.messageCount = h("span", { class: "hint", id: "composer-message-count" });
    this.expiry = h("select", { id: "composer-expiry", testid: "composer-expiry" },
      EXPIRY_CHOICES.map(({ seconds, label }) => h("option", { value: seconds, selected: seconds === draft.expiresIn },
        label)));
    this.summary = h("p", { class: "composer__summary", testid: "composer-summary", "aria-live": "polite" });
    this.feedback = h("p", { class: "feedback", testid: "composer-feedback", role: "alert" });
    this.submitButton = h("button", { type: "submit", class: "btn btn--primary", testid: "composer-submit" },
      counter ? "Send counter-offer" : "Send offer");
    this.form = h("form", { class: "panel form composer__form", testid: "composer", novalidate: true,
      onSubmit: (event) => { event.preventDefault(); this.submit(); } },
    toField,
    h("div", { class: "composer__sides" },
      h("fieldset", { "aria-describedby": "composer-give-error" }, h("legend", null, "You give"),
        h("p", { class: "hint", text: `Up to ${MAX_ASSETS_PER_SIDE} of your cards.` }),
        this.giveSlot, this.errors.give),
      h("fieldset", { "aria-describedby": "composer-want-error" }, h("legend", null, "You get"),
        h("p", { class: "hint", text: `Up to ${MAX_ASSETS_PER_SIDE} of their cards.` }),
        this.wantSlot, this.errors.want)),
    this.errors.assets,
    h("fieldset", { class: "composer__cash" }, h("legend", null, "Cash (optional, one side only)"),
      h("div", { class: "choices", role: "radiogroup", "aria-label": "Cash" }, this.cashRadios),
      h("div", { class: "field" }, h("label", { for: "composer-cash", text: "Amount" }),
        h("div", { class: "money-input" }, h("span", { "aria-hidden": "true" }, "$"), this.cashInput)),
      this.errors.cash),
    h("div", { class: "form__row" },
      h("div", { class: "field" },
        h("label", { for: "composer-message" }, "Message ", h("span", { class: "optional" }, "(optional)")),
        this.message, this.messageCount, this.errors.message),
      h("div", { class: "field" }, h("label", { for: "composer-expiry", text: "Expires after" }), this.expiry,
        this.errors.expiresIn)),
    this.summary,
    h("div", { class: "form__actions" }, this.submitButton,
      h("a", { class: "btn btn--ghost", href: "#/offers" }, "Cancel")),
    this.feedback);
    this.body.replaceChildren(this.form);
    this.mine = [];
    this.theirs = [];
    this.shown = { give: false, want: false };
    this.summarize();
  }

  async changeRecipient() {
    const to = this.toInput.value.trim();
    if (to === this.draft.to && this.shown.want) return;
    this.readForm();
    this.draft.to = to;
    this.draft.want = [];
    await this.loadCards([]);
  }

  /** My cards and the other collector's; the wanted tokens (from a token page) picked. */
  async loadCards(wantTokens) {
    const to = this.draft.to;
    this.renderPickers({ give: "Loading your cards…", want: to ? "Loading their cards…" : NO_RECIPIENT });
    const [mine, theirs] = await Promise.allSettled([assetsOf("me"), to ? assetsOf(to) : Promise.resolve(null)]);
    if (this.gone || to !== this.draft.to) return;
    const failed = [mine, theirs].find((r) => r.status === "rejected")?.reason;
    if (failed?.code === "UNAUTHORIZED") {
      signOut("Your session has expired — please sign in again");
      return;
    }
    const problem = (r) => (r.reason.code === "INVALID"
      ? "That isn't a user id." : `Couldn't load the cards: ${r.reason.message}`);
    this.mine = mine.status === "fulfilled" ? mine.value : [];
    this.theirs = theirs.status === "fulfilled" ? theirs.value || [] : [];
    for (const token of wantTokens) {
      const asset = this.theirs.find((a) => a.token_id === token);
      if (asset && !this.draft.want.includes(asset.asset_id)) this.draft.want.push(asset.asset_id);
    }
    const lost = [];
    for (const [side, assets, result] of [["give", this.mine, mine], ["want", this.theirs, theirs]]) {
      if (result.status !== "fulfilled" || (side === "want" && !to)) continue;
      lost.push(...this.draft[side].filter((id) => !assets.some((a) => a.asset_id === id)));
      this.draft[side] = this.draft[side].filter((id) => assets.some((a) => a.asset_id === id));
    }
    this.renderPickers({
      give: mine.status === "rejected" ? problem(mine) : null,
      want: theirs.status === "rejected" ? problem(theirs) : to ? null : NO_RECIPIENT,
    });
    if (lost.length) {
      this.say(`${lost.length} card${lost.length === 1 ? " is" : "s are"} no longer held by the side that offered `
        + `${lost.length === 1 ? "it" : "them"}, and left out.`, "warn");
    }
  }

  /** The two lists of cards to pick from (or, per side, a message: loading, a problem). */
  renderPickers(messages = {}) {
    const picker = (slot, side, assets, empty) => {
      this.shown[side] = !messages[side];
      if (messages[side]) {
        slot.replaceChildren(h("p", { class: "hint", text: messages[side] }));
        return;
      }
      const chosen = new Set(this.draft[side]);
      slot.replaceChildren(assets.length ? h("ul", { class: "picker__list" }, assets.map((asset) => {
        const listed = Boolean(asset.listed_in);
        const grade = gradeLabel(asset);
        return h("li", { class: "pick", testid: "pick", dataset: { assetId: asset.asset_id, side } },
          h("label", { class: "pick__label" },
            h("input", { type: "checkbox", name: side, value: asset.asset_id, checked: chosen.has(asset.asset_id),
              disabled: listed && !chosen.has(asset.asset_id), testid: "pick-input",
              onChange: () => this.summarize() }),
            h("span", { class: "pick__title", text: asset.title || "Untitled card" }),
            grade ? h("span", { class: "slab", dataset: { grader: asset.grader || "" }, text: grade }) : null,
            listed ? h("span", { class: "chip chip--listed", text: "In an auction" }) : null),
          asset.token_id ? h("a", { class: "pick__token", href: href("/token/:id", { id: asset.token_id }),
            title: `Token ${asset.token_id}` }, shortId(asset.token_id)) : null);
      })) : h("p", { class: "hint", text: empty }));
    };
    picker(this.giveSlot, "give", this.mine, "You have no cards to trade.");
    picker(this.wantSlot, "want", this.theirs, "They have no cards to trade.");
    this.summarize();
  }

  /** The form's state into the draft. */
  readForm() {
    const checked = (slot) => [...slot.querySelectorAll("input[type=checkbox]:checked")].map((i) => i.value);
    const d = this.draft;
    if (this.shown.give) d.give = checked(this.giveSlot); // else (loading) the draft's picks stand
    if (this.shown.want) d.want = checked(this.wantSlot);
    d.cashSide = this.cashRadios.map((l) => l.querySelector("input")).find((i) => i.checked)?.value || "none";
    d.cash = this.cashInput.value;
    d.message = this.message.value;
    d.expiresIn = Number(this.expiry.value);
    return d; // `to` changes by changeRecipient() only: the cards shown are that collector's
  }

  summarize() {
    const d = this.readForm();
    this.cashInput.disabled = d.cashSide === "none";
    setText(this.messageCount, `${d.message.length}/${MAX_MESSAGE}`);
    const name = (id) => knownTitle(id) || `card ${shortId(id, 8, 4)}`;
    const parsed = d.cashSide === "none" ? null : parseDollars(d.cash);
    const cash = parsed?.ok ? parsed.cents : 0;
    const side = (ids, cents) => {
      const parts = ids.map(name);
      if (cents > 0) parts.push(formatCents(cents));
      return parts.length ? parts.join(" + ") : "nothing";
    };
    setText(this.summary, `You give: ${side(d.give, d.cashSide === "give" ? cash : 0)}`
      + ` · You get: ${side(d.want, d.cashSide === "want" ? cash : 0)}`);
  }

  async submit() {
    const counter = Boolean(this.counterOf);
    if (this.toInput && this.toInput.value.trim() !== this.draft.to && this.toInput.value.trim()) {
      this.say("Their cards are shown now: pick what you want and send.", "warn");
      await this.changeRecipient();
      return;
    }
    const result = buildTerms(this.readForm(), me(), { counter });
    for (const name of FIELDS) setText(this.errors[name], result.ok ? "" : result.errors[name] || "");
    const invalid = (el, name) => {
      if (!el) return;
      if (!result.ok && result.errors[name]) el.setAttribute("aria-invalid", "true");
      else el.removeAttribute("aria-invalid");
    };
    invalid(this.cashInput, "cash");
    invalid(this.message, "message");
    invalid(this.toInput, "to");
    if (!result.ok) {
      this.say("Check the offer: some fields need attention.", "error");
      return;
    }
    const key = JSON.stringify(result.body);
    const reqId = this.pending?.key === key ? this.pending.reqId : newReqId();
    this.pending = { key, reqId };
    const body = { ...result.body, req_id: reqId };
    this.submitButton.disabled = true;
    this.say(counter ? "Sending your counter-offer…" : "Sending your offer…", "pending");
    try {
      const offer = await withRetries(() => (counter
        ? offersApi.act(this.counterOf, "counter", body) : offersApi.create(body)));
      this.pending = null;
      noteOffer(offer);
      toast(counter ? "Counter-offer sent" : "Offer sent", "ok");
      if (!this.gone) location.hash = "#/offers?box=out";
    } catch (error) {
      if (!isRetryable(error)) this.pending = null;
      if (this.gone) return;
      if (error.code === "UNAUTHORIZED") signOut("Your session has expired — please sign in again");
      else this.say(offerErrorText(error, { me: me(), name: knownTitle }), "error");
    } finally {
      this.submitButton.disabled = false;
    }
  }

  /** The offer being countered changed meanwhile (cancelled, expired...): say so. */
  heard(event) {
    const offer = offerFromEvent(event);
    if (!offer || !this.counterOf || offer.offer_id !== this.counterOf || offer.status === "active") return;
    const now = statusLabel(offer.status).toLowerCase();
    this.say(`This offer is now ${now}: a counter-offer can no longer be sent.`, "warn");
    if (this.submitButton) this.submitButton.disabled = true;
  }

  say(text, kind) {
    setText(this.feedback, text);
    this.feedback.dataset.kind = kind;
  }

  onSession() {
    this.unmount();
    this.main.replaceChildren();
    this.mount(this.main);
  }
}
