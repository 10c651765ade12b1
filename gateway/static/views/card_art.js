// The generated artwork of a card: a hue from its id, its initial, title, set and grade.

import { h } from "../dom.js";
import { TYPE_LABEL, gradeLabel } from "../format.js";

function hueOf(text) {
  let hash = 0;
  for (const ch of String(text)) hash = (hash * 31 + ch.codePointAt(0)) >>> 0;
  return hash % 360;
}

export function cardArt(view, asset, size = "large") {
  const hue = hueOf(view.asset_id || view.auction_id);
  const title = view.title || asset?.title || "Untitled card";
  const meta = [asset?.set, gradeLabel(asset)].filter((x) => typeof x === "string" && x).join(" · ");
  return h("div", { class: `card-art card-art--${size}`, style: `--hue:${hue}`, "aria-hidden": "true" },
    h("div", { class: "card-art__frame" },
      h("div", { class: "card-art__badge", text: view.badge ?? (TYPE_LABEL[view.type] || view.type) }),
      h("div", { class: "card-art__glyph", text: title.trim().charAt(0).toUpperCase() || "?" }),
      h("div", { class: "card-art__title", text: title }),
      meta ? h("div", { class: "card-art__meta", text: meta }) : null));
}
