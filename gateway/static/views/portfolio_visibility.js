// The portfolio page's opt-in switch: "Public: show my collection at <link>". Its state comes
// from GET /api/portfolio/visibility; flipping it PUTs the new state (the switch stays as it
// was, with the error said, when that fails). The link is the public page, #/users/:id/portfolio.

import { api } from "../api.js";
import { h, setText } from "../dom.js";
import { href } from "../router.js";

/** The switch for the signed-in `session` ({token, user_id}). */
export function visibilitySwitch(session) {
  const link = href("/users/:id/portfolio", { id: session.user_id });
  const input = h("input", { type: "checkbox", role: "switch", class: "visibility__input",
    testid: "portfolio-public", disabled: true, "aria-describedby": "visibility-status",
    onChange: () => save(input.checked) });
  const status = h("span", { class: "hint visibility__status", id: "visibility-status", testid: "portfolio-public-status",
    role: "status" }, "Loading…");
  const el = h("div", { class: "visibility", testid: "portfolio-visibility" },
    h("label", { class: "visibility__label" }, input, " Public: show my collection at ",
      h("a", { href: link, testid: "portfolio-public-link" }, `${location.origin}${location.pathname}${link}`)),
    status);

  function show(isPublic) {
    input.checked = isPublic;
    input.disabled = false;
    el.dataset.public = String(isPublic);
    setText(status, isPublic ? "Anyone with the link sees your cards and their values — never what you paid or made."
      : "Private: only you see your portfolio.");
  }

  async function save(isPublic) {
    input.disabled = true;
    try {
      show((await api.setPortfolioVisibility(session.token, isPublic)).public);
    } catch (error) {
      show(!isPublic);
      setText(status, `Couldn't change it: ${error.message}`);
    }
  }

  api.portfolioVisibility(session.token).then((answer) => show(answer.public), (error) => {
    setText(status, `Couldn't load whether it is public: ${error.message}`);
  });
  return el;
}
