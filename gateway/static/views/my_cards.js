// My cards: the signed-in user's assets, each a token, with its grade slab, where it is listed,
// a link to its provenance and to its catalog card, and "Redeem" (take it out of the vault).
// A card that joins or leaves (a won auction, a sale, a trade offer's swap: the "me" channel's
// transfer notices) shows at once.

import { api } from "../api.js";
import { h, setText } from "../dom.js";
import { gradeLabel, shortId } from "../format.js";
import { onNotice } from "../header.js";
import { href } from "../router.js";
import { signOut, state } from "../shell.js";
import { cardArt } from "./card_art.js";
import { redeemControl } from "./redeem.js";

const MAX_PAGES = 40; // following next_cursor (when the server pages the list)

/** Every asset the signed-in user owns, newest first. */
async function loadAll(token) {
  const all = [];
  let cursor = null;
  for (let page = 0; page < MAX_PAGES; page += 1) {
    const answer = await api.myAssets(token, cursor);
    all.push(...(answer.assets || []));
    cursor = answer.next_cursor;
    if (!cursor) break;
  }
  return all.sort((a, b) => (b.created_at || 0) - (a.created_at || 0));
}

export class MyCardsView {
  title = "My cards";

  mount(main) {
    this.main = main;
    if (!state.session) {
      const next = encodeURIComponent("#/me/cards");
      main.append(h("section", { class: "page" }, h("div", { class: "empty", testid: "my-cards-signin" },
        h("p", { class: "empty__title", text: "Sign in to see your cards" }),
        h("p", { text: "Every card you own is a token with a signed provenance you can check." }),
        h("a", { class: "btn btn--primary", href: `#/signin?next=${next}` }, "Sign in"))));
      return;
    }
    this.status = h("p", { class: "list-status", role: "status", testid: "my-cards-status" }, "Loading…");
    this.count = h("span", { class: "page__count", testid: "my-cards-count" });
    this.grid = h("div", { class: "auction-grid owned-grid", testid: "my-cards" });
    this.empty = h("div", { class: "empty", testid: "my-cards-empty", hidden: true },
      h("p", { class: "empty__title", text: "You don't own any cards yet" }),
      h("p", null, "Win an auction, or mint a card to sell. "),
      h("div", { class: "empty__actions" },
        h("a", { class: "btn btn--primary", href: "#/" }, "Browse live auctions"),
        h("a", { class: "btn btn--ghost", href: "#/sell" }, "Sell a card")));
    main.append(h("section", { class: "page my-cards" },
      h("div", { class: "page__head" },
        h("div", null,
          h("h1", { class: "page__title" }, "My cards ", this.count),
          h("p", { class: "page__sub", text: "Each card is a token: its provenance is signed by the exchange." })),
        h("div", { class: "page__tools" }, this.status,
          h("button", { type: "button", class: "btn btn--ghost btn--small", testid: "my-cards-refresh",
            onClick: () => this.load() }, "Refresh"))),
      this.grid, this.empty));
    this.unlisten = onNotice((event) => {
      if (event.type === "transfer_in" || event.type === "transfer_out") this.load();
    });
    this.load();
  }

  unmount() {
    this.gone = true;
    this.unlisten?.();
  }

  async load() {
    if (!state.session) return;
    if (this.loading) {
      this.loadAgain = true; // the answer in flight may predate what we now know
      return;
    }
    this.loading = true;
    this.loadAgain = false;
    try {
      const assets = await loadAll(state.session.token);
      if (this.gone) return;
      this.render(assets);
      setText(this.status, "");
      this.status.classList.remove("list-status--error");
    } catch (error) {
      if (this.gone) return;
      if (error.code === "UNAUTHORIZED") {
        signOut("Your session has expired — please sign in again");
        return;
      }
      setText(this.status, error.code === "NETWORK" ? "Offline — try again" : `Couldn't load your cards: ${error.message}`);
      this.status.classList.add("list-status--error");
    } finally {
      this.loading = false;
      if (this.loadAgain && !this.gone) this.load();
    }
  }

  render(assets) {
    this.grid.replaceChildren(...assets.map((asset) => this.item(asset)));
    this.empty.hidden = assets.length > 0;
    setText(this.count, assets.length ? `(${assets.length})` : "");
  }

  item(asset) {
    const grade = gradeLabel(asset);
    // "2018 Panini Prizm · 2018" says the year twice: only when the set's name lacks it.
    const year = asset.year && !String(asset.set || "").includes(String(asset.year)) ? asset.year : null;
    const detail = [asset.set, year].filter((x) => x !== null && x !== undefined && x !== "").join(" · ");
    const token = asset.token_id;
    const redeemed = asset.redeemed === true;
    const el = h("article", { class: `tile owned${redeemed ? " owned--redeemed" : ""}`, testid: "owned-card",
      dataset: { assetId: asset.asset_id, tokenId: token || "", redeemed: String(redeemed) } },
    cardArt({ asset_id: asset.asset_id, title: asset.title, badge: "" }, asset, "small"),
    h("div", { class: "tile__body" },
      h("h2", { class: "tile__title", testid: "owned-title", title: asset.title, text: asset.title || "Untitled card" }),
      h("div", { class: "tile__row" },
        h("span", { class: `slab${grade ? "" : " slab--none"}`, testid: "owned-grade",
          dataset: { grader: asset.grader || "" },
          title: asset.cert ? `${asset.grader} certificate ${asset.cert}` : null }, grade || "Ungraded"),
        asset.listed_in
          ? h("a", { class: "chip chip--listed", testid: "owned-listed", href: href("/auction/:id", { id: asset.listed_in }),
            title: "Listed in a live auction: open the room" }, "Listed")
          : redeemed ? h("span", { class: "chip chip--redeemed", testid: "owned-redeemed",
            title: "Taken out of the vault: the token is burned and the card can't be sold here" }, "Redeemed")
            : null),
      detail ? h("p", { class: "owned__detail", testid: "owned-set", text: detail }) : null,
      asset.card_id ? h("a", { class: "owned__card", testid: "owned-card-link", href: href("/card/:id", { id: asset.card_id }) },
        "Card details & population") : null,
      h("div", { class: "tile__row owned__token" },
        token
          ? h("span", { class: "owned__id", testid: "owned-token", title: `Token ${token}` },
            "Token ", h("code", { text: shortId(token) }))
          : h("span", { class: "owned__id", text: "No token" }),
        token
          ? h("a", { class: "btn btn--ghost btn--small", testid: "owned-provenance",
            href: href("/token/:id", { id: token }) }, "Provenance")
          : null),
      redeemed || asset.listed_in ? null
        : redeemControl(asset, (updated) => el.replaceWith(this.item(updated)))));
    return el;
  }

  onSession() {
    this.unmount();
    this.main.replaceChildren();
    this.gone = false;
    this.mount(this.main);
  }
}
