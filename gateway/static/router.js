// Hash routes ("#/auction/<id>?x=y") to views. The table of routes is given by the caller, so a
// new page is one more entry: {name, path: "/wallet", view: (params, query) => new WalletView()}.
// Path segments starting with ":" capture (URI-decoded); "*" matches anything: end the table
// with a "*" route (the fallback page).
//
// A view is an object with mount(main) and optionally: title, unmount(), tick(now),
// onConnection(), onSession(). `name` is matched against the nav links' data-nav.

/** "#/auction/a%2Fb?next=x" -> {parts: ["auction", "a/b"], query: URLSearchParams}; null if malformed. */
export function parseHash(hash) {
  const raw = String(hash || "").replace(/^#/, "") || "/";
  const at = raw.indexOf("?");
  const path = at < 0 ? raw : raw.slice(0, at);
  const query = new URLSearchParams(at < 0 ? "" : raw.slice(at + 1));
  try {
    return { parts: path.split("/").filter(Boolean).map(decodeURIComponent), query };
  } catch {
    return null; // a malformed %-escape
  }
}

function matchPath(pattern, parts) {
  if (pattern === "*") return {};
  const want = pattern.split("/").filter(Boolean);
  if (want.length !== parts.length) return null;
  const params = {};
  for (let i = 0; i < want.length; i += 1) {
    if (want[i].startsWith(":")) {
      if (!parts[i]) return null;
      params[want[i].slice(1)] = parts[i];
    } else if (want[i] !== parts[i]) {
      return null;
    }
  }
  return params;
}

/** The first route of `table` that matches `hash`: {route, params, query}, or null. */
export function matchRoute(table, hash) {
  const parsed = parseHash(hash);
  const parts = parsed ? parsed.parts : [];
  const query = parsed ? parsed.query : new URLSearchParams();
  for (const route of table) {
    const params = parsed || route.path === "*" ? matchPath(route.path, parts) : null;
    if (params) return { route, params, query };
  }
  return null;
}

/** The link to a route, e.g. href("/auction/:id", {id}) -> "#/auction/<id>". */
export function href(pattern, params = {}) {
  const path = pattern.split("/").filter(Boolean)
    .map((part) => (part.startsWith(":") ? encodeURIComponent(params[part.slice(1)]) : part));
  return `#/${path.join("/")}`;
}

export class Router {
  /**
   * table: the routes; main: the element views mount into; onChange(view, match): called
   * after the new view is created and before it mounts (e.g. to update the header).
   */
  constructor({ table, main, onChange = () => {} }) {
    this.table = table;
    this.main = main;
    this.onChange = onChange;
    this.view = null;
    this.match = null;
  }

  start() {
    window.addEventListener("hashchange", () => this.go());
    this.go();
  }

  /** Show the view for the current location. */
  go() {
    const match = matchRoute(this.table, location.hash);
    this.view?.unmount?.();
    this.main.replaceChildren();
    const view = match.route.view(match.params, match.query);
    this.view = view;
    this.match = match;
    for (const link of document.querySelectorAll("[data-nav]")) {
      if (link.dataset.nav === match.route.name) link.setAttribute("aria-current", "page");
      else link.removeAttribute("aria-current");
    }
    this.onChange(view, match);
    view.mount(this.main);
    document.title = view.title ? `${view.title} — ECE` : "ECE — Elite Card Exchange";
  }
}
