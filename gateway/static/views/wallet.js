// The wallet (#/wallet): balance and available funds, deposits (and one-click demo funds when
// the exchange allows), withdrawals, and the postings, newest first, a page at a time.
// A request's req_id is fresh for each action; retrying an action that got no answer (the
// same kind and amount) sends the same req_id, so the server never moves the money twice.

import { api, newReqId } from "../api.js";
import { h, setText } from "../dom.js";
import { dateTime, shortId } from "../format.js";
import { account, onNotice, onWallet, setWallet, walletsEnabled } from "../header.js";
import { formatCents, parseDollars, signedCents } from "../money.js";
import { CAUSE_LABEL } from "../notices.js";
import { href } from "../router.js";
import { CONFIG, signOut, state } from "../shell.js";

const PAGE = 25;
const DEMO_CENTS = 100_000;

function signInPrompt() {
  return h("div", { class: "empty", testid: "wallet-signin" },
    h("p", { class: "empty__title", text: "Sign in to see your wallet" }),
    h("p", { text: "Deposit funds to bid; sales are paid into your wallet." }),
    h("a", { class: "btn btn--primary", href: `#/signin?next=${encodeURIComponent("#/wallet")}` }, "Sign in"));
}

/** A refused money request in words. */
function moneyError(error, verb) {
  if (error.code === "INSUFFICIENT_FUNDS") {
    const available = error.details?.available;
    return Number.isInteger(available)
      ? `Insufficient funds: you can ${verb} at most ${formatCents(available)} (your available balance).`
      : "Insufficient funds for this amount.";
  }
  if (error.code === "FORBIDDEN") return "Deposits are limited to administrators on this exchange.";
  if (error.code === "NETWORK") return `${error.message}. Try again: the same request is sent, never twice.`;
  if (error.code === "RATE_LIMITED") return "Too many requests — wait a moment and try again.";
  return error.message || error.code;
}

const postingKey = (p) => `${p.entry_id}|${p.version}`;
const retryable = (error) => error.code === "NETWORK" || error.status >= 500 || error.status === 429;

export class WalletView {
  title = "Wallet";
  quietPayments = true; // the header does not toast payments this page shows

  mount(main) {
    this.main = main;
    this.gone = false;
    this.postings = []; // newest first
    this.cursor = null;
    this.pending = null; // {kind, amount, reqId}: an action without a final answer (a retry reuses reqId)
    if (!state.session) {
      main.append(h("section", { class: "page" }, signInPrompt()));
      return;
    }
    if (!walletsEnabled) {
      main.append(h("section", { class: "page" }, h("div", { class: "empty", testid: "wallet-unavailable" },
        h("p", { class: "empty__title", text: "Wallets are not open on this exchange yet" }),
        h("p", { text: "Deposits, withdrawals and payments will show here." }))));
      return;
    }
    this.build(main);
    this.unlisten = [
      onWallet((wallet) => this.renderBalance(wallet)),
      onNotice((event) => { if (event.type === "payment") this.loadNewest(); }),
    ];
    this.renderBalance(account.wallet);
    this.load();
  }

  build(main) {
    const money = (id) => h("div", { class: "money-input" }, h("span", { "aria-hidden": "true" }, "$"),
      h("input", { id, testid: id, name: "amount", inputmode: "decimal", autocomplete: "off", placeholder: "0.00",
        spellcheck: "false" }));
    this.balanceEl = h("dd", { testid: "wallet-balance", text: "…" });
    this.availableEl = h("dd", { testid: "wallet-available", text: "…" });
    this.depositFeedback = h("p", { class: "feedback", testid: "deposit-feedback", role: "status", "aria-live": "polite" });
    this.withdrawFeedback = h("p", { class: "feedback", testid: "withdraw-feedback", role: "status", "aria-live": "polite" });
    this.depositButton = h("button", { type: "submit", class: "btn btn--primary", testid: "deposit-submit" }, "Deposit");
    this.withdrawButton = h("button", { type: "submit", class: "btn btn--ghost", testid: "withdraw-submit" }, "Withdraw");
    this.demoButton = CONFIG.deposits === "open"
      ? h("button", { type: "button", class: "btn btn--gold", testid: "demo-funds",
        onClick: () => this.send("demo", DEMO_CENTS) }, "Add $1,000 demo funds") : null;
    this.rows = h("tbody", { testid: "postings" });
    this.more = h("button", { type: "button", class: "btn btn--ghost btn--small", testid: "postings-more", hidden: true,
      onClick: () => this.loadMore() }, "Load more");
    this.listStatus = h("p", { class: "list-status", role: "status", testid: "postings-status" }, "Loading…");
    const form = (kind, inputId, label, button, feedback, extra) => h("form", {
      class: "panel form wallet__form", testid: `${kind}-form`, novalidate: true,
      onSubmit: (event) => { event.preventDefault(); this.submit(kind, inputId); },
    },
    h("div", { class: "field" }, h("label", { for: inputId }, label), money(inputId)),
    h("div", { class: "form__actions" }, button, kind === "deposit" ? this.demoButton : null),
    extra, feedback);
    main.append(h("section", { class: "page wallet" },
      h("div", { class: "page__head" }, h("div", null,
        h("h1", { class: "page__title", text: "Wallet" }),
        h("p", { class: "page__sub", text: "Money on the exchange, in US dollars. A bid needs its maximum (plus any buyer's premium) available; money moves only when you win." }))),
      h("dl", { class: "stats wallet__stats" },
        h("div", { class: "stat" }, h("dt", null, "Balance"), this.balanceEl),
        h("div", { class: "stat" }, h("dt", null, "Available"), this.availableEl,
          h("span", { class: "stat-sub", text: "what your bids and withdrawals can use" }))),
      h("div", { class: "wallet__forms" },
        form("deposit", "deposit-amount", "Deposit amount", this.depositButton, this.depositFeedback,
          CONFIG.deposits === "admin" ? h("p", { class: "hint", text: "Deposits are limited to administrators on this exchange." }) : null),
        form("withdraw", "withdraw-amount", "Withdrawal amount", this.withdrawButton, this.withdrawFeedback, null)),
      h("section", { class: "wallet__history", "aria-labelledby": "postings-heading" },
        h("div", { class: "card-page__sectionhead" },
          h("h2", { class: "section-title", id: "postings-heading", text: "Activity" }), this.listStatus),
        h("div", { class: "table-wrap" }, h("table", { class: "ledger" },
          h("thead", null, h("tr", null, ["Date", "What", "Reference", "Amount", "Balance"].map((t) =>
            h("th", { scope: "col", class: t === "Amount" || t === "Balance" ? "num" : null }, t)))),
          this.rows)),
        h("div", { class: "wallet__more" }, this.more))));
  }

  unmount() {
    this.gone = true;
    for (const stop of this.unlisten || []) stop();
  }

  renderBalance(wallet) {
    if (!this.balanceEl) return;
    setText(this.balanceEl, wallet && Number.isInteger(wallet.balance) ? formatCents(wallet.balance) : "—");
    setText(this.availableEl, wallet && Number.isInteger(wallet.available) ? formatCents(wallet.available) : "—");
  }

  // ---- postings -------------------------------------------------------------------------------

  async load() {
    try {
      const page = await api.wallet(state.session.token, null, PAGE);
      if (this.gone) return;
      setWallet({ balance: page.balance, available: page.available });
      this.postings = page.postings || [];
      this.cursor = page.next_cursor ?? null;
      this.renderPostings();
    } catch (error) {
      this.failed(error);
    }
  }

  /** A payment arrived: the newest page, merged above what is shown. */
  async loadNewest() {
    if (this.gone) return;
    if (this.fetchingNewest) {
      this.newestAgain = true; // the one in flight may predate what we now know
      return;
    }
    this.fetchingNewest = true;
    this.newestAgain = false;
    try {
      const page = await api.wallet(state.session.token, null, PAGE);
      if (this.gone) return;
      setWallet({ balance: page.balance, available: page.available });
      const newest = page.postings || [];
      const known = new Set(this.postings.map(postingKey));
      const overlap = newest.findIndex((p) => known.has(postingKey(p)));
      if (overlap === -1) {
        // All new (or more than a page arrived): start over from the newest.
        this.postings = newest;
        this.cursor = page.next_cursor ?? null;
      } else {
        this.postings = [...newest.slice(0, overlap), ...this.postings];
      }
      this.renderPostings();
    } catch {
      // the next payment or a reload shows it
    } finally {
      this.fetchingNewest = false;
      if (this.newestAgain && !this.gone) this.loadNewest();
    }
  }

  async loadMore() {
    if (!this.cursor) return;
    this.more.disabled = true;
    try {
      const page = await api.wallet(state.session.token, this.cursor, PAGE);
      if (this.gone) return;
      const seen = new Set(this.postings.map(postingKey));
      this.postings.push(...(page.postings || []).filter((p) => !seen.has(postingKey(p))));
      this.cursor = page.next_cursor ?? null;
      this.renderPostings();
    } catch (error) {
      this.failed(error);
    } finally {
      this.more.disabled = false;
    }
  }

  failed(error) {
    if (this.gone) return;
    if (error.code === "UNAUTHORIZED") {
      signOut("Your session has expired — please sign in again");
      return;
    }
    setText(this.listStatus, error.code === "NETWORK" ? "Offline — try again" : `Couldn't load your wallet: ${error.message}`);
    this.listStatus.classList.add("list-status--error");
  }

  renderPostings() {
    this.listStatus.classList.remove("list-status--error");
    setText(this.listStatus, "");
    this.rows.replaceChildren(...this.postings.map((p) => postingRow(p)));
    if (!this.postings.length) {
      this.rows.append(h("tr", null, h("td", { colspan: 5, class: "ledger__empty", testid: "postings-empty" },
        "No activity yet. Deposit funds to start bidding.")));
    }
    this.more.hidden = !this.cursor;
  }

  // ---- deposits and withdrawals ---------------------------------------------------------------

  submit(kind, inputId) {
    const input = this.main.querySelector(`#${inputId}`);
    const parsed = parseDollars(input.value);
    const feedback = kind === "withdraw" ? this.withdrawFeedback : this.depositFeedback;
    if (!parsed.ok || parsed.cents === 0) {
      this.say(feedback, parsed.ok ? "Enter an amount above zero" : parsed.error, "error");
      input.setAttribute("aria-invalid", "true");
      input.focus();
      return;
    }
    input.removeAttribute("aria-invalid");
    this.send(kind, parsed.cents, input);
  }

  async send(kind, amount, input = null) {
    const withdraw = kind === "withdraw";
    const feedback = withdraw ? this.withdrawFeedback : this.depositFeedback;
    const retry = this.pending && this.pending.kind === kind && this.pending.amount === amount;
    const reqId = retry ? this.pending.reqId : newReqId();
    this.pending = { kind, amount, reqId };
    const buttons = [this.depositButton, this.withdrawButton, this.demoButton].filter(Boolean);
    for (const b of buttons) b.disabled = true;
    this.say(feedback, `${withdraw ? "Withdrawing" : "Depositing"} ${formatCents(amount)}…`, "pending");
    try {
      const token = state.session.token;
      const answer = withdraw ? await api.withdraw(token, amount, reqId) : await api.deposit(token, amount, reqId);
      this.pending = null;
      if (this.gone) return;
      if (input) input.value = "";
      this.say(feedback, `${withdraw ? "Withdrew" : "Deposited"} ${formatCents(Math.abs(answer.amount ?? amount))} — balance ${formatCents(answer.balance)}`, "ok");
      if (account.wallet) {
        const delta = answer.balance - account.wallet.balance;
        setWallet({ balance: answer.balance, available: account.wallet.available + delta });
      }
      this.loadNewest();
    } catch (error) {
      if (!retryable(error)) this.pending = null;
      if (this.gone) return;
      if (error.code === "UNAUTHORIZED") signOut("Your session has expired — please sign in again");
      else this.say(feedback, moneyError(error, withdraw ? "withdraw" : "deposit"), "error");
    } finally {
      for (const b of buttons) b.disabled = false;
    }
  }

  say(el, text, kind) {
    setText(el, text);
    el.dataset.kind = kind;
  }

  onSession() {
    this.unmount();
    this.main.replaceChildren();
    this.mount(this.main);
  }
}

function postingRow(p) {
  const auction = (p.cause === "settlement" || p.cause === "fee") && typeof p.ref === "string" && p.ref.startsWith("a_");
  const offer = p.cause === "offer" && typeof p.ref === "string" && p.ref.startsWith("of_");
  const ref = !p.ref ? h("span", { class: "ledger__none", text: "—" })
    : auction ? h("a", { href: href("/auction/:id", { id: p.ref }), testid: "posting-ref", title: p.ref }, `Auction ${shortId(p.ref, 10, 4)}`)
      : offer ? h("a", { href: href("/offers/:id", { id: p.ref }), testid: "posting-ref", title: p.ref },
        `Offer ${shortId(p.ref, 10, 4)}`)
        : h("code", { title: p.ref, testid: "posting-ref" }, shortId(p.ref, 10, 4));
  return h("tr", { testid: "posting", dataset: { entryId: p.entry_id, cause: p.cause, version: p.version } },
    h("td", { class: "ledger__date", text: dateTime(p.at) }),
    h("td", { testid: "posting-cause", text: CAUSE_LABEL[p.cause] || p.cause }),
    h("td", null, ref),
    h("td", { class: `num ledger__amount ${p.amount > 0 ? "is-credit" : "is-debit"}`, testid: "posting-amount",
      text: signedCents(p.amount) }),
    h("td", { class: "num", testid: "posting-balance", text: formatCents(p.balance) }));
}
