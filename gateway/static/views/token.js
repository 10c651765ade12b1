// A token: its image and ERC-721 metadata, and its provenance chain, verified here in the
// browser with the exchange's public key (provenance.js) rather than taken on trust.

import { api } from "../api.js";
import { h, setText } from "../dom.js";
import { dateTime, shortId } from "../format.js";
import { formatCents } from "../money.js";
import { ownerOf, serverVerdict, verdict, verifyChain } from "../provenance.js";
import { href } from "../router.js";
import { me, state, who } from "../shell.js";
import { redeemControl } from "./redeem.js";

const KIND_LABEL = { mint: "Minted", transfer: "Transferred", redeem: "Redeemed" };

/** The user an id stands for: "you", or "user 3f2a1b" (the whole id in the title). */
function person(userId, fallback) {
  if (userId === null || userId === undefined) return h("span", { class: "timeline__nobody", text: fallback });
  return h("span", { class: "timeline__user", title: userId, text: who(userId, "user") });
}

/** Why a record happened: "at auction" linking to the room, an offer, an admin move. */
function because(rec) {
  if (rec.kind === "transfer" && rec.reason === "auction" && rec.ref) {
    return h("span", null, "at auction ",
      h("a", { href: href("/auction/:id", { id: rec.ref }), testid: "record-auction", title: rec.ref },
        shortId(rec.ref, 10, 4)));
  }
  if (rec.kind === "transfer" && rec.reason === "offer") {
    // The offer's page is open to its two parties only.
    const party = me() !== null && (rec.from === me() || rec.to === me());
    return rec.ref && party
      ? h("span", null, "by trade offer ", h("a", { href: href("/offers/:id", { id: rec.ref }), testid: "record-offer",
        title: rec.ref }, shortId(rec.ref, 10, 4)))
      : h("span", { title: rec.ref || "" }, `by trade offer ${rec.ref ? shortId(rec.ref, 10, 4) : ""}`);
  }
  if (rec.kind === "transfer" && rec.reason === "admin") return h("span", null, "by the exchange (admin)");
  if (rec.kind === "redeem") return h("span", null, "the card left the vault; the token is burned");
  return rec.ref ? h("span", { title: rec.ref }, `ref ${shortId(rec.ref, 10, 4)}`) : null;
}

/** Where a problem is: "Record 2", or "Record 2 (seq 5)" when the record says otherwise. */
function place({ index, seq }) {
  return seq === null || seq === index + 1 ? `Record ${index + 1}` : `Record ${index + 1} (seq ${seq})`;
}

export class TokenView {
  constructor(tokenId) {
    this.tokenId = tokenId;
    this.title = "Token";
  }

  mount(main) {
    this.main = main;
    this.nameEl = h("h1", { class: "room__title", testid: "token-name" }, "Token");
    this.ownerEl = h("p", { class: "token__owner", testid: "token-owner" });
    this.image = h("img", { class: "token__image", testid: "token-image", width: 300, height: 420, alt: "" });
    this.attrs = h("dl", { class: "token__attrs", testid: "token-attributes" });
    this.badgeTitle = h("strong", { class: "verify__title", testid: "verify-title" }, "Verifying…");
    this.badgeDetail = h("p", { class: "verify__detail", testid: "verify-detail" },
      "Checking every hash and signature in your browser.");
    this.problemsEl = h("ul", { class: "verify__problems", testid: "verify-problems", hidden: true });
    this.badge = h("div", { class: "verify", testid: "verify-badge", dataset: { state: "verifying" },
      role: "status" }, this.badgeTitle, this.badgeDetail, this.problemsEl);
    this.timeline = h("ol", { class: "timeline", testid: "provenance" });
    this.keyEl = h("code", { testid: "token-key" }, "…");
    this.redeemSlot = h("div", { class: "panel token__redeem", testid: "token-redeem", hidden: true });
    this.offerSlot = h("div", { class: "panel token__redeem", testid: "token-offer", hidden: true });
    const command = `ece verify-provenance ${this.tokenId} --url ${location.origin}`;
    const back = state.session
      ? h("a", { href: "#/me/cards" }, "← My cards") : h("a", { href: "#/" }, "← Live auctions");
    this.body = h("div", { class: "token__grid" },
      h("div", { class: "token__art" }, this.image, this.attrs),
      h("div", { class: "token__main" },
        h("div", { class: "room__head" }, this.nameEl, this.ownerEl,
          h("p", { class: "token__id" }, "Token ", h("code", { testid: "token-id", title: this.tokenId },
            shortId(this.tokenId, 12, 8)))),
        this.badge, this.redeemSlot, this.offerSlot,
        h("section", null, h("h2", { class: "section-title", text: "Provenance" }), this.timeline),
        h("div", { class: "panel token__key" },
          h("p", null, "Signed by the exchange's Ed25519 key ", this.keyEl),
          h("p", { class: "hint", testid: "verify-hint" }, "Check it yourself: ",
            h("code", { class: "token__command", testid: "verify-command", text: command })))));
    this.missing = h("div", { class: "empty", testid: "token-missing", hidden: true },
      h("p", { class: "empty__title", text: "No such token" }),
      h("p", { text: "This token id is not in the exchange's registry." }),
      h("a", { class: "btn btn--primary", href: "#/" }, "Live auctions"));
    this.errorEl = h("p", { class: "feedback", dataset: { kind: "error" }, testid: "token-error", role: "alert" });
    main.append(h("section", { class: "page token" }, h("nav", { class: "crumbs" }, back),
      this.errorEl, this.body, this.missing));
    this.load();
  }

  unmount() {
    this.gone = true;
  }

  async load() {
    const id = this.tokenId;
    const [meta, chain, key] = await Promise.allSettled([api.token(id), api.provenance(id), api.tokenKey()]);
    if (this.gone) return;
    const notFound = [meta, chain].some((r) => r.status === "rejected" && r.reason.code === "TOKEN_NOT_FOUND");
    if (notFound) {
      this.body.hidden = true;
      this.missing.hidden = false;
      return;
    }
    if (meta.status === "fulfilled") this.renderMeta(meta.value);
    else setText(this.errorEl, `Couldn't load the token: ${meta.reason.message}`);
    if (chain.status === "rejected") {
      this.show({ state: "unverifiable", title: "Couldn't load the provenance", detail: chain.reason.message });
      return;
    }
    const { records } = chain.value;
    if (key.status === "rejected") {
      this.renderChain(records, []);
      this.renderOwner(records, true);
      this.show({ state: "unverifiable", title: "Couldn't load the exchange's key", detail: key.reason.message });
      return;
    }
    setText(this.keyEl, shortId(key.value.public_key, 10, 6));
    this.keyEl.title = key.value.public_key;
    const result = await verifyChain(id, records, key.value.public_key);
    if (this.gone) return;
    this.renderChain(records, result.problems);
    this.renderOwner(records, result.ok !== false);
    this.show(verdict(result, records.length), result.problems);
    if (result.ok !== true && result.ok !== false) await this.verifyOnServer(id, records.length);
    if (this.gone) return;
    const last = records[records.length - 1];
    if (result.ok !== false && me() && ownerOf(records) === me() && last?.kind !== "redeem") this.offerRedeem();
    const owner = ownerOf(records);
    if (result.ok !== false && owner && owner !== me() && last?.kind !== "redeem") this.offerTrade(owner);
  }

  /** Someone else's card: propose a trade for it (the composer, addressed to its owner). */
  offerTrade(owner) {
    const compose = `#/offers/new?to=${encodeURIComponent(owner)}&want_token=${encodeURIComponent(this.tokenId)}`;
    this.offerSlot.hidden = false;
    this.offerSlot.replaceChildren(
      h("p", { class: "hint" }, "Want this card? Offer its owner a trade: your cards, cash, or both."),
      h("a", { class: "btn btn--primary btn--small", testid: "token-make-offer", href: compose }, "Make an offer"));
  }

  /** No Ed25519 (or no WebCrypto) here: ask the exchange to check the signatures. */
  async verifyOnServer(id, count) {
    let answer;
    try {
      answer = await api.verifyOnServer(id);
    } catch {
      return; // the in-browser verdict stands
    }
    if (this.gone) return;
    this.show(serverVerdict(answer, count), []);
  }

  /** The owner may redeem the card (when it is not listed): its asset is among theirs. */
  async offerRedeem() {
    let asset = null;
    try {
      let cursor = null;
      for (let page = 0; page < 20 && !asset; page += 1) {
        const answer = await api.myAssets(state.session.token, cursor);
        asset = (answer.assets || []).find((a) => a.token_id === this.tokenId) || null;
        cursor = answer.next_cursor;
        if (!cursor) break;
      }
    } catch {
      return; // the page works without it
    }
    if (this.gone || !asset || asset.redeemed) return;
    this.redeemSlot.hidden = false;
    this.redeemSlot.replaceChildren(asset.listed_in
      ? h("p", { class: "hint", testid: "token-listed" }, "Listed in ",
        h("a", { href: href("/auction/:id", { id: asset.listed_in }) }, "an auction"),
        ": it can be redeemed once the listing is cancelled or over.")
      : h("div", null,
        h("p", { class: "hint" }, "You own this card. Redeem it to have it shipped out of the vault."),
        redeemControl(asset, () => {
          this.main.replaceChildren();
          this.gone = false;
          this.mount(this.main);
        })));
  }

  renderMeta(meta) {
    this.title = meta.name;
    document.title = `${meta.name} — ECE`;
    setText(this.nameEl, meta.name);
    this.image.alt = meta.name;
    // The server's rendering (its `image`, asked of this origin: the page may sit behind a proxy).
    this.image.src = `/api/tokens/${encodeURIComponent(this.tokenId)}/image.svg`;
    this.attrs.replaceChildren(...(meta.attributes || []).flatMap(({ trait_type: name, value }) => [
      h("dt", { text: name }), h("dd", { text: String(value) })]));
  }

  /** Who owns it now, per the chain: said only when the chain did not fail verification. */
  renderOwner(records, trusted) {
    const last = records[records.length - 1];
    if (!last) setText(this.ownerEl, "");
    else if (!trusted) setText(this.ownerEl, "Owner unknown: the chain does not verify");
    else if (last.kind === "redeem") setText(this.ownerEl, "Redeemed: the card left the vault");
    else {
      this.ownerEl.replaceChildren("Owned by ", person(ownerOf(records), "—"));
    }
  }

  renderChain(records, problems) {
    const byIndex = new Map();
    for (const p of problems) {
      if (p.index !== null) byIndex.set(p.index, [...(byIndex.get(p.index) || []), p.message]);
    }
    // Newest first: the current owner at the top, the mint at the bottom.
    const items = records.map((raw, index) => {
      const rec = raw !== null && typeof raw === "object" ? raw : {};
      const broken = byIndex.get(index);
      return h("li", { class: `timeline__item${broken ? " timeline__item--broken" : ""}`,
        testid: "provenance-record", dataset: { kind: rec.kind, seq: rec.seq } },
      h("div", { class: "timeline__head" },
        h("span", { class: "timeline__kind", testid: "record-kind", text: KIND_LABEL[rec.kind] || rec.kind }),
        h("span", { class: "timeline__seq", text: `#${rec.seq}` }),
        h("time", { class: "timeline__time", text: dateTime(rec.at) })),
      h("div", { class: "timeline__who", testid: "record-who" },
        person(rec.from, rec.kind === "mint" ? "new" : "—"), " → ",
        person(rec.to, rec.kind === "redeem" ? "out of the vault" : "—")),
      h("div", { class: "timeline__detail" },
        because(rec),
        Number.isInteger(rec.price) ? h("span", { class: "timeline__price", testid: "record-price",
          text: formatCents(rec.price) }) : null),
      h("div", { class: "timeline__hash", title: String(rec.hash) }, "hash ", h("code", { text: shortId(rec.hash, 10, 6) })),
      broken ? h("ul", { class: "timeline__problems" }, broken.map((m) => h("li", { text: m }))) : null);
    });
    this.timeline.replaceChildren(...items.reverse());
    if (!records.length) {
      this.timeline.append(h("li", { class: "history__empty", text: "No records." }));
    }
  }

  show(summary, problems = []) {
    this.badge.dataset.state = summary.state;
    setText(this.badgeTitle, summary.title);
    setText(this.badgeDetail, summary.detail);
    const listed = summary.state === "broken" ? problems : [];
    this.problemsEl.hidden = listed.length === 0;
    this.problemsEl.replaceChildren(...listed.map((p) => h("li", { testid: "verify-problem",
      text: p.index === null ? p.message : `${place(p)}: ${p.message}` })));
  }
}
