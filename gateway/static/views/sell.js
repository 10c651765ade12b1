// Sell a card: send a graded copy of a catalog card to the vault (mint it: search the catalog,
// pick the card, give the grader, grade and certificate number), or pick a card you own, or
// describe one outside the catalog; then open an English auction on it.

import { api, request } from "../api.js";
import { h, setText, toast } from "../dom.js";
import { gradeLabel } from "../format.js";
import {
  GRADERS, GRADES, RAW, cardLine, catalogQuery, categoryLabel, gradedBody, mintRefusal, sellable,
  slabLabel,
} from "../mint.js";
import { parseDollars } from "../money.js";
import { CONFIG, signOut, state } from "../shell.js";

const DURATIONS = [
  ["1 minute", 60_000], ["5 minutes", 300_000], ["15 minutes", 900_000], ["1 hour", 3_600_000],
  ["6 hours", 21_600_000], ["1 day", 86_400_000], ["3 days", 259_200_000], ["7 days", 604_800_000],
];
const SOFT_CLOSES = [["Off", 0], ["30 seconds", 30_000], ["1 minute", 60_000], ["2 minutes", 120_000],
  ["5 minutes", 300_000]];
const SEARCH_DELAY_MS = 250;
const SEARCH_LIMIT = 8;
const MAX_ASSET_PAGES = 40; // following next_cursor of the owned cards
const SEARCH_HINT = "Type a card's name, set, player or number.";

const searchCards = (q) => request("GET",
  `/api/cards?${new URLSearchParams({ q, limit: String(SEARCH_LIMIT) })}`);

export class SellView {
  title = "Sell a card";

  mount(main) {
    this.main = main;
    this.gone = false;
    this.card = null; // the catalog card picked
    this.searchSeq = 0;
    if (!state.session) {
      main.append(h("section", { class: "page" }, h("div", { class: "empty" },
        h("p", { class: "empty__title", text: "Sign in to sell" }),
        h("p", { text: "Mint a graded card and open an English auction in a few seconds." }),
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
    this.mintSection = h("div", { class: "form__group" },
      this.catalogFields(), this.titledFields());
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
        h("div", { class: "field" }, h("label", { for: "sell-source" }, "Card"), this.source,
          h("p", { class: "hint", text: "Mint a copy you're sending to the vault, or sell one you already own." })),
        this.mintSection),
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
    this.setMode("catalog", false);
    this.loadCards();
  }

  /** The primary way to mint: a graded copy of a catalog card. */
  catalogFields() {
    this.search = h("input", { id: "sell-search", type: "search", testid: "catalog-search",
      autocomplete: "off", spellcheck: "false", maxlength: 200,
      placeholder: "e.g. Charizard Base Set, Jordan Fleer 57",
      "aria-controls": "sell-results", "aria-describedby": "sell-search-status",
      onInput: () => { this.fixed(this.search); this.searchSoon(); },
      onKeydown: (event) => this.searchKey(event) });
    this.searchStatus = h("p", { class: "hint catalog-status", id: "sell-search-status", testid: "catalog-status",
      role: "status", text: SEARCH_HINT });
    this.results = h("ul", { class: "catalog-results", id: "sell-results", testid: "catalog-results",
      "aria-label": "Catalog cards", hidden: true, onKeydown: (event) => this.resultsKey(event) });
    this.finder = h("div", { class: "field" },
      h("label", { for: "sell-search" }, "Search the catalog"), this.search, this.searchStatus, this.results);
    this.chosen = h("div", { class: "chosen-card", testid: "chosen-card", hidden: true });

    this.grader = h("select", { id: "sell-grader", testid: "sell-grader",
      onChange: () => { this.fixed(this.grader); this.toggleGrader(); } },
    GRADERS.map((g) => h("option", { value: g, selected: g === "PSA" }, g === RAW ? "Raw (ungraded)" : g)));
    this.grade = h("select", { id: "sell-card-grade", testid: "sell-card-grade", required: true,
      onChange: () => this.fixed(this.grade) },
    h("option", { value: "" }, "Choose…"), GRADES.map((g) => h("option", { value: String(g) }, String(g))));
    this.cert = h("input", { id: "sell-cert", testid: "sell-cert", maxlength: 32, autocomplete: "off",
      spellcheck: "false", autocapitalize: "characters", placeholder: "e.g. 81234567",
      "aria-describedby": "sell-cert-hint", onInput: () => this.fixed(this.cert) });
    this.gradeField = h("div", { class: "field" }, h("label", { for: "sell-card-grade" }, "Grade"), this.grade);
    this.certOptional = h("span", { class: "optional", text: "(optional)", hidden: true });
    this.certHint = h("p", { class: "hint", id: "sell-cert-hint" });
    this.catalogSection = h("div", { class: "form__group", testid: "sell-catalog" },
      this.finder, this.chosen,
      h("div", { class: "form__row" },
        h("div", { class: "field" }, h("label", { for: "sell-grader" }, "Grader"), this.grader),
        this.gradeField,
        h("div", { class: "field" }, h("label", { for: "sell-cert" }, "Certificate number ", this.certOptional),
          this.cert, this.certHint)),
      h("p", { class: "hint" }, h("button", { type: "button", class: "link-button", testid: "sell-describe",
        onClick: () => this.setMode("titled") }, "Not in the catalog? Describe it")));
    this.toggleGrader();
    return this.catalogSection;
  }

  /** The secondary way: a card outside the catalog, described in the seller's own words. */
  titledFields() {
    this.titledSection = h("div", { class: "form__group", testid: "sell-titled" },
      h("p", { class: "hint" }, "A card outside the catalog carries no grader's certificate and counts in no population. ",
        h("button", { type: "button", class: "link-button", testid: "sell-use-catalog",
          onClick: () => this.setMode("catalog") }, "Search the catalog instead")),
      h("div", { class: "field" }, h("label", { for: "sell-title" }, "Card title"),
        h("input", { id: "sell-title", testid: "sell-title", maxlength: 200, required: true,
          placeholder: "e.g. Charizard Holo 1st Edition" })),
      h("div", { class: "form__row" },
        h("div", { class: "field" }, h("label", { for: "sell-set" }, "Set ", h("span", { class: "optional", text: "(optional)" })),
          h("input", { id: "sell-set", testid: "sell-set", maxlength: 100, placeholder: "e.g. Base Set" })),
        h("div", { class: "field" }, h("label", { for: "sell-grade" }, "Grade ", h("span", { class: "optional", text: "(optional)" })),
          h("input", { id: "sell-grade", testid: "sell-grade", maxlength: 40, placeholder: "e.g. PSA 9" }))));
    return this.titledSection;
  }

  unmount() {
    this.gone = true;
    clearTimeout(this.timer);
  }

  async loadCards() {
    const token = state.session.token;
    try {
      let cursor = null;
      for (let page = 0; page < MAX_ASSET_PAGES; page += 1) {
        const { assets, next_cursor: next } = await api.myAssets(token, cursor);
        if (this.gone || state.session?.token !== token) return;
        for (const asset of sellable(assets)) this.addOwned(asset); // a redeemed token is burned
        cursor = next;
        if (!cursor) break;
      }
    } catch {
      // minting still works
    }
  }

  addOwned(asset, select = false) {
    if (![...this.source.options].some((o) => o.value === asset.asset_id)) {
      const grade = gradeLabel(asset);
      this.source.append(h("option", { value: asset.asset_id }, `${asset.title}${grade ? ` (${grade})` : ""}`));
    }
    if (select) {
      this.source.value = asset.asset_id;
      this.toggleMint();
    }
  }

  toggleMint() {
    this.mintSection.hidden = this.source.value !== "";
  }

  /** "catalog" (the primary way) or "titled" (a card outside the catalog). */
  setMode(mode, focus = true) {
    this.mode = mode;
    this.catalogSection.hidden = mode !== "catalog";
    this.titledSection.hidden = mode !== "titled";
    if (focus) (mode === "catalog" ? (this.card ? this.grader : this.search) : this.main.querySelector("#sell-title")).focus();
  }

  toggleGrader() {
    const raw = this.grader.value === RAW;
    this.gradeField.hidden = raw;
    this.certOptional.hidden = !raw;
    setText(this.certHint, raw ? "Only if the card has one." : "Letters and digits, as printed on the slab's label.");
  }

  // ---- the catalog search ----------------------------------------------------------------

  searchSoon() {
    this.results.setAttribute("aria-busy", "true"); // what it shows is for an older query
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.runSearch(), SEARCH_DELAY_MS);
  }

  async runSearch() {
    clearTimeout(this.timer);
    const q = catalogQuery(this.search.value);
    const seq = ++this.searchSeq;
    if (!q) {
      this.showResults([]);
      setText(this.searchStatus, SEARCH_HINT);
      return;
    }
    setText(this.searchStatus, "Searching…");
    try {
      const { items, next_cursor: more } = await searchCards(q);
      if (this.gone || seq !== this.searchSeq) return; // a later search took over
      this.showResults(items || []);
      const n = (items || []).length;
      setText(this.searchStatus, n === 0 ? `No card in the catalog matches “${q}”.`
        : more ? `First ${n} cards — keep typing to narrow it down.` : `${n} card${n === 1 ? "" : "s"}: pick yours.`);
    } catch (error) {
      if (this.gone || seq !== this.searchSeq) return;
      this.showResults([]);
      setText(this.searchStatus, error.code === "NETWORK" ? error.message
        : `Couldn't search the catalog: ${error.message}`);
    }
  }

  showResults(cards) {
    this.results.removeAttribute("aria-busy");
    this.results.replaceChildren(...cards.map((card) => h("li", null,
      h("button", { type: "button", class: "catalog-result", testid: "catalog-result",
        dataset: { cardId: card.card_id }, onClick: () => this.choose(card) },
      h("span", { class: "catalog-result__name" }, card.name,
        card.variant ? h("span", { class: "catalog-result__variant", text: ` · ${card.variant}` }) : null),
      h("span", { class: "catalog-result__line", text: cardLine(card) }),
      h("span", { class: "catalog-result__category", text: categoryLabel(card) })))));
    this.results.hidden = cards.length === 0;
  }

  searchKey(event) {
    if (event.key === "Enter") { // search now rather than submit the form
      event.preventDefault();
      this.runSearch();
    } else if (event.key === "ArrowDown" && !this.results.hidden) {
      event.preventDefault();
      this.results.querySelector("button")?.focus();
    }
  }

  resultsKey(event) {
    const buttons = [...this.results.querySelectorAll("button")];
    const at = buttons.indexOf(document.activeElement);
    if (at < 0) return;
    if (event.key === "ArrowDown" || event.key === "ArrowUp") {
      event.preventDefault();
      const next = at + (event.key === "ArrowDown" ? 1 : -1);
      (next < 0 ? this.search : buttons[Math.min(next, buttons.length - 1)]).focus();
    } else if (event.key === "Escape") {
      event.preventDefault();
      this.search.focus();
    }
  }

  /** Pick a catalog card (null: search again). */
  choose(card, focus = true) {
    this.card = card;
    this.finder.hidden = Boolean(card);
    this.chosen.hidden = !card;
    this.search.removeAttribute("aria-invalid");
    if (!card) {
      this.chosen.replaceChildren();
      delete this.chosen.dataset.cardId;
      if (catalogQuery(this.search.value)) this.runSearch(); // fresh results (the card may be gone)
      if (focus) this.search.focus();
      return;
    }
    this.chosen.dataset.cardId = card.card_id;
    this.chosen.replaceChildren(
      h("div", { class: "chosen-card__text" },
        h("span", { class: "chosen-card__label", text: "Catalog card" }),
        h("span", { class: "chosen-card__name", testid: "chosen-card-name" }, card.name,
          card.variant ? h("span", { class: "catalog-result__variant", text: ` · ${card.variant}` }) : null),
        h("span", { class: "chosen-card__line", text: [cardLine(card), categoryLabel(card)].filter(Boolean).join(" · ") })),
      h("button", { type: "button", class: "btn btn--ghost btn--small", testid: "chosen-card-change",
        "aria-label": `Change card (${card.name})`, onClick: () => this.choose(null) }, "Change"));
    if (focus) this.grader.focus();
  }

  // ---- sending -----------------------------------------------------------------------------

  value(id) {
    return this.main.querySelector(`#${id}`).value;
  }

  feedback(text, kind) {
    setText(this.feedbackEl, text);
    this.feedbackEl.dataset.kind = kind;
  }

  /** Point at the input a problem is about (field as mint.js's gradedBody) and say what it is. */
  invalid(field, message) {
    this.feedback(message, "error");
    if (field === "card") {
      if (this.card) this.choose(null, false);
      this.search.setAttribute("aria-invalid", "true");
      this.search.focus();
      return;
    }
    const el = { grader: this.grader, grade: this.grade, cert: this.cert }[field];
    if (!el) return;
    el.setAttribute("aria-invalid", "true");
    el.focus();
  }

  /** The person changed an input flagged by invalid(): the flag and the complaint go. */
  fixed(el) {
    if (!el.hasAttribute("aria-invalid")) return;
    el.removeAttribute("aria-invalid");
    if (this.feedbackEl.dataset.kind === "error") this.feedback("", "");
  }

  optionalCents(id, label) {
    const raw = this.value(id).trim();
    if (raw === "") return { ok: true, cents: null };
    const parsed = parseDollars(raw);
    return parsed.ok ? parsed : { ok: false, error: `${label}: ${parsed.error}` };
  }

  /** What to mint, checked: {ok, body} or {ok: false} after saying what is wrong. */
  mintRequest() {
    if (this.mode === "titled") {
      const title = this.value("sell-title").trim();
      if (!title) {
        this.feedback("Give the card a title", "error");
        this.main.querySelector("#sell-title").focus();
        return { ok: false };
      }
      const body = { title };
      const set = this.value("sell-set").trim();
      const grade = this.value("sell-grade").trim();
      if (set) body.set = set;
      if (grade) body.grade = grade;
      return { ok: true, body };
    }
    const graded = gradedBody({ cardId: this.card?.card_id, grader: this.grader.value,
      grade: this.grade.value, cert: this.cert.value });
    if (!graded.ok) {
      this.invalid(graded.field, graded.field === "card"
        ? "Pick your card from the catalog (or describe one that isn't in it)" : graded.error);
    }
    return graded;
  }

  async send() {
    const minting = this.source.value === "";
    const mint = minting ? this.mintRequest() : null;
    if (mint && !mint.ok) return;
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
    this.submit.disabled = true;
    const token = state.session.token;
    let minted = null;
    try {
      let assetId = this.source.value;
      if (minting) {
        const body = mint.body;
        this.feedback(body.card_id ? `Minting your ${slabLabel(body.grader, body.grade)} ${this.card.name}…`
          : "Minting your card…", "pending");
        try {
          minted = await api.mint(token, body);
        } catch (error) {
          if (error.code === "UNAUTHORIZED") throw error;
          const refusal = mintRefusal(error);
          this.invalid(this.mode === "catalog" ? refusal.field : null, refusal.message);
          return;
        }
        assetId = minted.asset_id;
        // It is yours now whatever happens next: a retry lists it rather than minting again.
        this.addOwned(minted, true);
        this.cert.value = "";
        if (this.card) this.choose(null, false);
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
      else if (minted) {
        this.feedback(`Your card was minted, but the auction didn't open: ${error.message}. `
          + "It's selected under “Card”: list it again when ready.", "error");
      } else this.feedback(error.message, "error");
    } finally {
      this.submit.disabled = false;
    }
  }

  onSession() {
    // Signed in or out on this page: show it again for the new session.
    this.unmount();
    this.main.replaceChildren();
    this.mount(this.main);
  }
}
