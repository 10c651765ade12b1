// Sell a card: mint one (or pick one you own) and open an English auction on it.

import { api } from "../api.js";
import { h, setText, toast } from "../dom.js";
import { gradeLabel } from "../format.js";
import { parseDollars } from "../money.js";
import { CONFIG, signOut, state } from "../shell.js";

const DURATIONS = [
  ["1 minute", 60_000], ["5 minutes", 300_000], ["15 minutes", 900_000], ["1 hour", 3_600_000],
  ["6 hours", 21_600_000], ["1 day", 86_400_000], ["3 days", 259_200_000], ["7 days", 604_800_000],
];
const SOFT_CLOSES = [["Off", 0], ["30 seconds", 30_000], ["1 minute", 60_000], ["2 minutes", 120_000],
  ["5 minutes", 300_000]];

export class SellView {
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
      for (const asset of assets.filter((a) => !a.listed_in && !a.redeemed)) { // a redeemed token is burned
        this.source.append(h("option", { value: asset.asset_id }, `${asset.title}${gradeLabel(asset) ? ` (${gradeLabel(asset)})` : ""}`));
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
    // Signed in or out on this page: show it again for the new session.
    this.main.replaceChildren();
    this.mount(this.main);
  }
}
