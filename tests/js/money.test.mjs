// Fees and the money words (gateway/static/money.js): `node --test tests/js/`.

import assert from "node:assert/strict";
import { test } from "node:test";

import {
  MAX_CENTS, buyerCost, feeCents, feeRates, formatCents, percentOfBps, sellerProceeds, signedCents,
} from "../../gateway/static/money.js";

test("a fee is amount * bps // 10000, rounded down, in integer cents", () => {
  assert.equal(feeCents(10_000, 500), 500);
  assert.equal(feeCents(10_050, 500), 502, "502.5 rounds down");
  assert.equal(feeCents(19, 500), 0);
  assert.equal(feeCents(20, 500), 1);
  assert.equal(feeCents(99_999, 250), 2_499);
  assert.equal(feeCents(12_345, 0), 0);
  assert.equal(feeCents(12_345, 10_000), 12_345);
  assert.equal(feeCents(MAX_CENTS, 500), Number((BigInt(MAX_CENTS) * 500n) / 10_000n), "exact at 2**53");
  for (const [amount, bps] of [[-1, 500], [1.5, 500], [100, -1], [100, 10_001], [100, 2.5], [null, 500]]) {
    assert.equal(feeCents(amount, bps), 0, `${amount} @ ${bps}`);
  }
});

test("fee maths agrees with the integer formula on many values", () => {
  for (let amount = 0; amount < 5_000; amount += 7) {
    for (const bps of [0, 1, 99, 250, 500, 1_250, 9_999]) {
      assert.equal(feeCents(amount, bps), Math.floor((amount * bps) / 10_000));
    }
  }
});

test("the buyer pays price + premium; the seller receives price - fee", () => {
  assert.deepEqual(buyerCost(10_050, 1_000), { price: 10_050, premium: 1_005, total: 11_055 });
  assert.deepEqual(buyerCost(10_050, 0), { price: 10_050, premium: 0, total: 10_050 });
  assert.deepEqual(sellerProceeds(10_050, 500), { price: 10_050, fee: 502, net: 9_548 });
  assert.deepEqual(sellerProceeds(0, 500), { price: 0, fee: 0, net: 0 });
});

test("rates come from the exchange's config, with the server's defaults", () => {
  assert.deepEqual(feeRates({ deposits: "open", seller_fee_bps: 250, buyer_premium_bps: 1_000 }),
    { enabled: true, sellerFeeBps: 250, buyerPremiumBps: 1_000 });
  assert.deepEqual(feeRates({ deposits: "admin" }), { enabled: true, sellerFeeBps: 500, buyerPremiumBps: 0 });
  assert.deepEqual(feeRates({ deposits: "open", seller_fee_bps: "5%", buyer_premium_bps: -3 }),
    { enabled: true, sellerFeeBps: 500, buyerPremiumBps: 0 });
  // A server without wallets charges nothing.
  assert.deepEqual(feeRates({ mint: "all" }), { enabled: false, sellerFeeBps: 0, buyerPremiumBps: 0 });
  assert.deepEqual(feeRates(undefined), { enabled: false, sellerFeeBps: 0, buyerPremiumBps: 0 });
});

test("words: percentages and signed amounts", () => {
  assert.equal(percentOfBps(500), "5%");
  assert.equal(percentOfBps(250), "2.5%");
  assert.equal(percentOfBps(125), "1.25%");
  assert.equal(percentOfBps(0), "0%");
  assert.equal(percentOfBps(10_000), "100%");
  assert.equal(signedCents(100_000), "+$1,000.00");
  assert.equal(signedCents(-502), "-$5.02");
  assert.equal(signedCents(0), "$0.00");
  assert.equal(signedCents(null), "—");
  assert.equal(formatCents(-5), "-$0.05");
});
