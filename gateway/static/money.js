// Money in ECE is always an integer number of cents. Nothing here goes through floating
// point: user input is parsed as a string and converted with BigInt, and formatting works on
// the decimal digits of the integer.

export const MAX_CENTS = 2 ** 53; // the server's upper bound (exact in a JS number)

const AMOUNT = /^(?:(\d{1,3}(?:,\d{3})+)|(\d*))(?:\.(\d*))?$/;

function groupThousands(digits) {
  return digits.replace(/\B(?=(\d{3})+(?!\d))/g, ",");
}

function isCents(value) {
  return Number.isInteger(value) && Math.abs(value) <= MAX_CENTS;
}

/** 123456 -> "$1,234.56"; null/undefined -> "—". */
export function formatCents(cents) {
  if (!isCents(cents)) return "—";
  const digits = String(Math.abs(cents)).padStart(3, "0");
  const whole = groupThousands(digits.slice(0, -2));
  return `${cents < 0 ? "-" : ""}$${whole}.${digits.slice(-2)}`;
}

/** 123456 -> "1234.56": the editable form used to prefill inputs. */
export function centsToInput(cents) {
  if (!isCents(cents) || cents < 0) return "";
  const digits = String(cents).padStart(3, "0");
  return `${digits.slice(0, -2)}.${digits.slice(-2)}`;
}

/**
 * Parse what a person typed as a dollar amount into integer cents.
 * Accepts "52", "52.5", "52.50", "$1,052.50", " 52 ", ".75", "52.".
 * Returns {ok: true, cents} or {ok: false, error}.
 */
export function parseDollars(text) {
  let s = String(text ?? "").trim().replace(/\s+/g, "");
  if (s.startsWith("$")) s = s.slice(1);
  if (s === "") return { ok: false, error: "Enter an amount" };
  if (s.startsWith("-")) return { ok: false, error: "The amount must be positive" };
  const match = AMOUNT.exec(s);
  if (!match) return { ok: false, error: "Enter an amount in dollars, like 52.50" };
  const whole = (match[1] ?? match[2] ?? "").replaceAll(",", "");
  const fraction = match[3] ?? "";
  if (whole === "" && fraction === "") {
    return { ok: false, error: "Enter an amount in dollars, like 52.50" };
  }
  if (fraction.length > 2) return { ok: false, error: "Use at most two decimals (cents)" };
  const cents = BigInt(whole || "0") * 100n + BigInt(fraction.padEnd(2, "0"));
  if (cents > BigInt(MAX_CENTS)) return { ok: false, error: "That amount is too large" };
  return { ok: true, cents: Number(cents) };
}

// ---- fees -----------------------------------------------------------------------------------
// The exchange's fees are basis points of a price (500 bps = 5%), in integer cents rounded
// down, as the server computes them: amount * bps // 10000.

export const DEFAULT_SELLER_FEE_BPS = 500;
export const DEFAULT_BUYER_PREMIUM_BPS = 0;

function isBps(value) {
  return Number.isInteger(value) && value >= 0 && value <= 10_000;
}

/** fee(10_050, 500) -> 502: `amount * bps // 10000`, exactly (BigInt, no floating point). */
export function feeCents(amount, bps) {
  if (!isCents(amount) || amount < 0 || !isBps(bps)) return 0;
  return Number((BigInt(amount) * BigInt(bps)) / 10_000n);
}

/** What a winning buyer pays at `price`: {price, premium, total}. */
export function buyerCost(price, premiumBps) {
  const premium = feeCents(price, premiumBps);
  return { price, premium, total: price + premium };
}

/** What a seller receives from a sale at `price`: {price, fee, net}. */
export function sellerProceeds(price, feeBps) {
  const fee = feeCents(price, feeBps);
  return { price, fee, net: price - fee };
}

/**
 * The fee rates of window.ECE_CONFIG. `enabled` when the server has wallets (its config says
 * how deposits work); then a missing or malformed rate takes the server's default. Without
 * wallets nothing is charged.
 */
export function feeRates(config) {
  const cfg = config || {};
  const enabled = typeof cfg.deposits === "string";
  if (!enabled) return { enabled, sellerFeeBps: 0, buyerPremiumBps: 0 };
  return {
    enabled,
    sellerFeeBps: isBps(cfg.seller_fee_bps) ? cfg.seller_fee_bps : DEFAULT_SELLER_FEE_BPS,
    buyerPremiumBps: isBps(cfg.buyer_premium_bps) ? cfg.buyer_premium_bps : DEFAULT_BUYER_PREMIUM_BPS,
  };
}

/** 500 -> "5%", 250 -> "2.5%", 125 -> "1.25%". */
export function percentOfBps(bps) {
  if (!isBps(bps)) return "";
  const whole = Math.floor(bps / 100);
  const rest = String(bps % 100).padStart(2, "0").replace(/0+$/, "");
  return `${whole}${rest ? `.${rest}` : ""}%`;
}

/** A signed amount as a ledger shows it: 1050 -> "+$10.50", -1050 -> "-$10.50". */
export function signedCents(cents) {
  if (!isCents(cents)) return "—";
  return cents > 0 ? `+${formatCents(cents)}` : formatCents(cents);
}
