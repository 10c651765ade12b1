// The auction room's money words: what a bid costs with the buyer's premium ("You pay $X"),
// and a sale's premium, seller fee and proceeds. The rates are the exchange's (/config.js);
// the arithmetic is money.js's (integer cents, fees rounded down as the server does).

import { h, setText } from "../dom.js";
import {
  buyerCost, feeRates, formatCents, parseDollars, percentOfBps, sellerProceeds,
} from "../money.js";
import { CONFIG } from "../shell.js";

export const rates = feeRates(CONFIG);

/** Under the bid amount: "You pay $10.50 — $10.00 + $0.50 buyer's premium (5%)". */
export function youPayText(view, amountText, maxText = "") {
  const parsed = parseDollars(amountText);
  if (!parsed.ok) return "";
  let amount = parsed.cents;
  // A Dutch offer at or above the price buys at the price.
  if (view.type === "dutch" && Number.isInteger(view.price) && amount >= view.price) amount = view.price;
  const bps = rates.buyerPremiumBps;
  const cost = buyerCost(amount, bps);
  const prefix = view.type === "sealed" ? "You pay at most" : "You pay";
  let text = cost.premium > 0
    ? `${prefix} ${formatCents(cost.total)} — ${formatCents(amount)} + ${formatCents(cost.premium)} buyer's premium (${percentOfBps(bps)})`
    : `${prefix} ${formatCents(cost.total)}${rates.enabled ? " — no buyer's premium" : ""}`;
  const max = view.type === "english" && String(maxText).trim() !== "" ? parseDollars(maxText) : null;
  if (max?.ok && max.cents > amount) {
    text += `; up to ${formatCents(buyerCost(max.cents, bps).total)} if auto-bidding reaches your maximum`;
  }
  return text;
}

export function renderYouPay(room) {
  const r = room.refs;
  if (!r?.youPay || !room.view) return;
  setText(r.youPay, youPayText(room.view, r.amount.value, r.max.value));
}

/** The sale's money facts (<div><dt><dd></div>) beyond the final price, for the result panel. */
export function saleFacts(view, mine) {
  if (!rates.enabled || !Number.isInteger(view.final_price)) return [];
  const fact = (label, testid, cents) => h("div", null, h("dt", null, label),
    h("dd", { testid, text: formatCents(cents) }));
  const buyer = buyerCost(view.final_price, rates.buyerPremiumBps);
  const facts = [];
  facts.push(fact(`Buyer's premium (${percentOfBps(rates.buyerPremiumBps)})`, "sale-premium", buyer.premium));
  if (buyer.premium > 0) facts.push(fact(view.winner_id === mine ? "You pay" : "Buyer pays", "sale-total", buyer.total));
  if (mine && view.seller_id === mine) {
    const seller = sellerProceeds(view.final_price, rates.sellerFeeBps);
    facts.push(fact(`Seller fee (${percentOfBps(rates.sellerFeeBps)})`, "sale-fee", seller.fee),
      fact("You receive", "sale-net", seller.net));
  }
  return facts;
}
