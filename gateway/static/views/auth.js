// Sign in / create account.

import { api } from "../api.js";
import { h, setText, toast } from "../dom.js";
import { setSession, state } from "../shell.js";

const USERNAME = /^[A-Za-z0-9_.-]{3,32}$/;

export class AuthView {
  constructor(mode, next) {
    this.mode = mode === "signup" ? "signup" : "signin";
    this.next = next.startsWith("#/signin") || next.startsWith("#/signup") ? "#/" : next;
    this.title = this.mode === "signup" ? "Create account" : "Sign in";
  }

  mount(main) {
    if (state.session) {
      location.hash = this.next;
      return;
    }
    const tab = (mode, label) => h("button", {
      type: "button", role: "tab", class: "tabs__tab", id: `tab-${mode}`, testid: `auth-tab-${mode}`,
      "aria-selected": String(this.mode === mode), "aria-controls": "auth-form",
      onClick: () => { location.hash = `#/${mode}?next=${encodeURIComponent(this.next)}`; },
    }, label);
    const signup = this.mode === "signup";
    this.username = h("input", { id: "auth-username", testid: "auth-username", name: "username",
      autocomplete: "username", required: true, minlength: 3, maxlength: 32, spellcheck: "false",
      autocapitalize: "none", "aria-describedby": signup ? "auth-username-hint" : null });
    this.password = h("input", { id: "auth-password", testid: "auth-password", name: "password",
      type: "password", required: true, minlength: signup ? 10 : null, maxlength: 256,
      autocomplete: signup ? "new-password" : "current-password",
      "aria-describedby": signup ? "auth-password-hint" : null });
    this.error = h("p", { class: "feedback", testid: "auth-error", role: "alert", dataset: { kind: "error" } });
    this.submit = h("button", { type: "submit", class: "btn btn--primary btn--block", testid: "auth-submit" },
      signup ? "Create account" : "Sign in");
    main.append(h("section", { class: "page auth" },
      h("div", { class: "auth__card panel" },
        h("h1", { class: "auth__title", text: signup ? "Join the exchange" : "Welcome back" }),
        h("p", { class: "page__sub", text: signup
          ? "Create an account to bid on and sell graded cards."
          : "Sign in to bid and follow your auctions." }),
        h("div", { class: "tabs", role: "tablist", "aria-label": "Account" },
          tab("signin", "Sign in"), tab("signup", "Create account")),
        h("form", { id: "auth-form", class: "form", testid: "auth-form", novalidate: true,
          role: "tabpanel", "aria-labelledby": `tab-${this.mode}`,
          onSubmit: (event) => { event.preventDefault(); this.send(); } },
        h("div", { class: "field" }, h("label", { for: "auth-username" }, "Username"), this.username,
          signup ? h("p", { class: "hint", id: "auth-username-hint" }, "3–32 letters, digits, “_”, “.” or “-”") : null),
        h("div", { class: "field" }, h("label", { for: "auth-password" }, "Password"), this.password,
          signup ? h("p", { class: "hint", id: "auth-password-hint" }, "At least 10 characters, not a common password") : null),
        this.submit, this.error))));
    this.username.focus();
  }

  async send() {
    const username = this.username.value.trim();
    const password = this.password.value;
    setText(this.error, "");
    if (this.mode === "signup") {
      if (!USERNAME.test(username)) return this.fail("Usernames are 3–32 letters, digits, “_”, “.” or “-”", this.username);
      if (password.length < 10) return this.fail("Passwords need at least 10 characters", this.password);
      if (password.length > 256) return this.fail("Passwords are at most 256 characters", this.password);
    } else if (!username || !password) {
      return this.fail("Enter your username and password", username ? this.password : this.username);
    }
    this.submit.disabled = true;
    setText(this.submit, this.mode === "signup" ? "Creating account…" : "Signing in…");
    try {
      const result = this.mode === "signup"
        ? await api.signUp(username, password) : await api.signIn(username, password);
      setSession(result);
      toast(this.mode === "signup" ? `Welcome to ECE, ${result.username}!` : `Signed in as ${result.username}`, "ok");
      location.hash = this.next;
    } catch (error) {
      const message = error.code === "USERNAME_TAKEN" ? "That username is taken — try another"
        : error.code === "UNAUTHORIZED" ? "Wrong username or password"
          : error.message;
      this.fail(message, error.code === "USERNAME_TAKEN" ? this.username : this.password);
    } finally {
      this.submit.disabled = false;
      setText(this.submit, this.mode === "signup" ? "Create account" : "Sign in");
    }
  }

  fail(message, field) {
    setText(this.error, message);
    field?.focus();
  }

  onSession() {
    if (state.session) location.hash = this.next;
  }
}
