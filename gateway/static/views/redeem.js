// "Redeem": the owner takes the physical card out of the vault. Its token is burned, so the
// card can no longer be listed, offered or transferred: asked twice (a confirm step).

import { api } from "../api.js";
import { h, setText, toast } from "../dom.js";
import { signOut, state } from "../shell.js";

const ERRORS = {
  NOT_OWNER: "You no longer own this card.",
  ASSET_LISTED: "This card is listed in an auction: it can be redeemed once the listing is cancelled or over.",
  ASSET_NOT_FOUND: "This card no longer exists.",
  NOT_FOUND: "Redeeming is not available on this exchange yet.",
};

/**
 * The Redeem button and its confirm step for an asset the signed-in user owns.
 * onDone(asset): called with the asset as the server returned it (`redeemed: true`).
 */
export function redeemControl(asset, onDone) {
  const error = h("p", { class: "feedback", testid: "redeem-error", role: "alert", dataset: { kind: "error" } });
  const start = h("button", { type: "button", class: "btn btn--ghost btn--small", testid: "redeem",
    "aria-controls": `redeem-confirm-${asset.asset_id}` }, "Redeem");
  const confirm = h("button", { type: "button", class: "btn btn--danger btn--small", testid: "redeem-confirm" },
    "Confirm redemption");
  const keep = h("button", { type: "button", class: "btn btn--ghost btn--small", testid: "redeem-cancel" }, "Keep it");
  const ask = h("div", { class: "redeem__confirm", id: `redeem-confirm-${asset.asset_id}`, role: "group",
    "aria-label": "Confirm redemption", hidden: true },
  h("p", { class: "redeem__warning", testid: "redeem-warning" },
    "Redeem this card? It is shipped out of the vault and its token is burned: "
    + "it can no longer be listed, sold or transferred on the exchange. This cannot be undone."),
  h("div", { class: "redeem__actions" }, confirm, keep));
  const el = h("div", { class: "redeem", testid: "redeem-control" }, start, ask, error);

  const show = (asking) => {
    start.hidden = asking;
    ask.hidden = !asking;
    (asking ? keep : start).focus();
  };
  start.addEventListener("click", () => { setText(error, ""); show(true); });
  keep.addEventListener("click", () => show(false));
  confirm.addEventListener("click", async () => {
    if (!state.session) return;
    confirm.disabled = true;
    keep.disabled = true;
    setText(confirm, "Redeeming…");
    try {
      const updated = await api.redeem(state.session.token, asset.asset_id);
      toast("Redeemed: the card leaves the vault and its token is burned", "ok");
      onDone({ ...asset, ...updated, redeemed: true });
    } catch (failure) {
      if (failure.code === "ASSET_REDEEMED") {
        onDone({ ...asset, redeemed: true });
        return;
      }
      if (failure.code === "UNAUTHORIZED") {
        signOut("Your session has expired — please sign in again");
        return;
      }
      setText(error, ERRORS[failure.code] || `Couldn't redeem: ${failure.message}`);
      show(false);
    } finally {
      confirm.disabled = false;
      keep.disabled = false;
      setText(confirm, "Confirm redemption");
    }
  });
  return el;
}
