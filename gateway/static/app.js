// ECE web UI: sign in, browse live auctions, bid in a room that updates over the WebSocket.
// Plain ES modules, no build step. This file only assembles: the table of routes, the header
// and the clock that ticks the current view.
//
//   dom.js, format.js, money.js   DOM helpers; wording of times, prices; money in cents
//   api.js, live.js               REST client and clock; the one live WebSocket
//   router.js                     hash routes -> views (the table below)
//   shell.js                      session, live connection, header (shared by all views)
//   header.js, notices.js         the header's wallet balance and notifications ("me" channel)
//   list_query.js, catalog.js     the live list's search <-> URL; the catalog's vocabulary
//   room_state.js                 the auction room's pure event reducer
//   offers_model.js               trade offers' pure rules and words (offers_live.js: REST, badge)
//   provenance.js                 a token's chain checked in the browser (WebCrypto)
//   analytics_model.js            prices, indexes, movers: the pure part (activity_model.js: bidding)
//   analytics_live.js, charts.js  the analytics channels; charts (vendor/lightweight-charts)
//   portfolio_model.js            the portfolio's pure part: values in words, today's change, sorting
//   views/                        one module per page

import { clock } from "./api.js";
import { account, startHeader } from "./header.js";
import { startOffersBadge } from "./offers_live.js";
import { Router } from "./router.js";
import {
  live, renderAccount, renderConnection, state, verifySession, watchOtherTabs,
} from "./shell.js";
import { ActivityView } from "./views/activity.js";
import { AuthView } from "./views/auth.js";
import { CardView } from "./views/card.js";
import { ListView } from "./views/list.js";
import { MarketView } from "./views/market.js";
import { MyCardsView } from "./views/my_cards.js";
import { OfferComposerView } from "./views/offer_composer.js";
import { OfferView, OffersView } from "./views/offers.js";
import { PortfolioView } from "./views/portfolio.js";
import { PublicPortfolioView } from "./views/public_portfolio.js";
import { RoomView } from "./views/room.js";
import { SellView } from "./views/sell.js";
import { TokenView } from "./views/token.js";
import { WalletView } from "./views/wallet.js";

/**
 * The pages. `name` is matched against the nav links' data-nav; the last route is the
 * fallback. A next page is one line.
 */
const ROUTES = [
  { name: "room", path: "/auction/:id", view: ({ id }) => new RoomView(id) },
  { name: "sell", path: "/sell", view: () => new SellView() },
  { name: "my-cards", path: "/me/cards", view: () => new MyCardsView() },
  { name: "activity", path: "/me/activity", view: () => new ActivityView() },
  { name: "portfolio", path: "/portfolio", view: () => new PortfolioView() },
  { name: "public-portfolio", path: "/users/:id/portfolio", view: ({ id }) => new PublicPortfolioView(id) },
  { name: "market", path: "/market", view: () => new MarketView() },
  { name: "token", path: "/token/:id", view: ({ id }) => new TokenView(id) },
  { name: "card", path: "/card/:id", view: ({ id }) => new CardView(id) },
  { name: "wallet", path: "/wallet", view: () => new WalletView() },
  { name: "offers", path: "/offers", view: (_, query) => new OffersView(query) },
  { name: "offers", path: "/offers/new", view: (_, query) => new OfferComposerView({ query }) },
  { name: "offers", path: "/offers/:id", view: ({ id }) => new OfferView(id) },
  { name: "offers", path: "/offers/:id/counter", view: ({ id }) => new OfferComposerView({ counterOf: id }) },
  { name: "auth", path: "/signin", view: (_, query) => new AuthView("signin", query.get("next") || "#/") },
  { name: "auth", path: "/signup", view: (_, query) => new AuthView("signup", query.get("next") || "#/") },
  { name: "list", path: "*", view: (_, query) => new ListView(query) },
];

function tick() {
  const now = clock.now();
  state.view?.tick?.(now);
  if (live.state === "reconnecting") renderConnection();
}

function boot() {
  const router = new Router({
    table: ROUTES,
    main: document.getElementById("main"),
    onChange(view) {
      state.view = view;
      renderAccount();
    },
  });
  renderAccount();
  renderConnection();
  startHeader();
  startOffersBadge();
  watchOtherTabs();
  router.start();
  live.start();
  verifySession();
  setInterval(tick, 250);
  // A handle for manual checks and the browser test (simulating a dropped connection, or a
  // notice: ECE.live.route({op: "event", channel: "me", seq, type, ...})).
  window.ECE = { live, state, router, account };
}

boot();
