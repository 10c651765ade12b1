// The live list's search box, filters and sort (a form). It reads and shows a filter object of
// list_query.js; the list view puts it in the URL and asks the server.

import { h } from "../dom.js";
import { TYPE_LABEL, duration } from "../format.js";
import {
  CATEGORIES, CATEGORY_LABEL, ENDING_WITHIN, GRADERS, MAX_GRADE, MIN_GRADE, SORTS, TYPES, normalize,
} from "../list_query.js";
import { centsToInput, parseDollars } from "../money.js";

const SEARCH_DELAY_MS = 350;
const GRADE_STEPS = Array.from({ length: (MAX_GRADE - MIN_GRADE) * 2 + 1 }, (_, i) => MIN_GRADE + i / 2);

function field(id, label, control, extra = null) {
  return h("div", { class: "field" }, h("label", { for: id }, label), control, extra);
}

function select(id, options, anyLabel) {
  return h("select", { id, testid: id, name: id.replace(/^f-/, "") },
    anyLabel === null ? null : h("option", { value: "" }, anyLabel),
    options.map(([value, label]) => h("option", { value: String(value) }, label)));
}

function moneyInput(id, placeholder) {
  return h("div", { class: "money-input" }, h("span", { "aria-hidden": "true" }, "$"),
    h("input", { id, testid: id, name: id.replace(/^f-/, ""), inputmode: "decimal", autocomplete: "off",
      placeholder, spellcheck: "false" }));
}

export class ListFilters {
  /** onChange(filters): the person changed the search (typing is debounced). */
  constructor(onChange) {
    this.onChange = onChange;
    const grades = GRADE_STEPS.map((g) => [g, String(g)]);
    this.q = h("input", { id: "f-q", testid: "f-q", name: "q", type: "search", autocomplete: "off",
      placeholder: "Card, set, player or character", maxlength: 200, spellcheck: "false",
      onInput: () => this.changedSoon() });
    this.category = select("f-category", CATEGORIES.map((c) => [c, CATEGORY_LABEL[c]]), "Any");
    this.grader = select("f-grader", GRADERS.map((g) => [g, g === "RAW" ? "Raw (ungraded)" : g]), "Any");
    this.gradeMin = select("f-grade-min", grades, "Any");
    this.gradeMax = select("f-grade-max", grades, "Any");
    this.type = select("f-type", TYPES.map((t) => [t, TYPE_LABEL[t]]), "Any");
    this.priceMin = moneyInput("f-price-min", "0.00");
    this.priceMax = moneyInput("f-price-max", "any");
    this.ending = select("f-ending", ENDING_WITHIN, "Any time");
    this.sort = select("f-sort", SORTS, null);
    this.error = h("p", { class: "feedback", testid: "filters-error", role: "alert", dataset: { kind: "error" } });
    this.clear = h("button", { type: "button", class: "btn btn--ghost btn--small", testid: "filters-clear",
      onClick: () => { this.show(normalize({ sort: this.sort.value })); this.changed(); } }, "Clear filters");
    // The filters fold away on a phone (open when some are set).
    this.active = h("span", { class: "filters__active", testid: "filters-active" });
    this.narrow = window.matchMedia?.("(max-width: 760px)");
    this.widened = (event) => { if (!event.matches) this.more.open = true; }; // no toggle when wide
    this.narrow?.addEventListener?.("change", this.widened);
    this.more = h("details", { class: "filters__more", open: !this.narrow?.matches },
      h("summary", { testid: "filters-toggle" }, "Filters ", this.active),
      h("div", { class: "filters__grid" },
        field("f-category", "Category", this.category),
        field("f-grader", "Grader", this.grader),
        field("f-grade-min", "Min grade", this.gradeMin),
        field("f-grade-max", "Max grade", this.gradeMax),
        field("f-type", "Type", this.type),
        field("f-price-min", "Min price", this.priceMin),
        field("f-price-max", "Max price", this.priceMax),
        field("f-ending", "Ending within", this.ending)));
    this.el = h("form", { class: "filters panel", testid: "filters", role: "search", novalidate: true,
      "aria-label": "Auction filters",
      onSubmit: (event) => { event.preventDefault(); this.changed(); },
      onChange: (event) => { if (event.target !== this.q) this.changed(); } },
    h("div", { class: "filters__search" },
      field("f-q", "Search", this.q),
      field("f-sort", "Sort by", this.sort),
      h("div", { class: "filters__clear" }, this.clear)),
    this.more, this.error);
  }

  input(id) {
    return this.el.querySelector(`#${id}`);
  }

  /** Show a filter object in the form. */
  show(filters) {
    const f = normalize(filters);
    this.q.value = f.q;
    this.category.value = f.category;
    this.grader.value = f.grader;
    this.gradeMin.value = f.grade_min === null ? "" : String(f.grade_min);
    this.gradeMax.value = f.grade_max === null ? "" : String(f.grade_max);
    this.type.value = f.type;
    this.input("f-price-min").value = f.price_min === null ? "" : centsToInput(f.price_min);
    this.input("f-price-max").value = f.price_max === null ? "" : centsToInput(f.price_max);
    // An "ending within" from a shared link that is not one of ours: offered as it is.
    const seconds = f.ending_within === null ? "" : String(f.ending_within);
    if (seconds && ![...this.ending.options].some((o) => o.value === seconds)) {
      this.ending.append(h("option", { value: seconds }, duration(f.ending_within * 1000)));
    }
    this.ending.value = seconds;
    this.sort.value = f.sort;
    for (const id of ["f-price-min", "f-price-max"]) this.input(id).removeAttribute("aria-invalid");
    this.error.textContent = "";
    this.showActive(f);
  }

  /** "(2 set)" beside the folded filters; unfolded when any is set. */
  showActive(filters) {
    const set = Object.entries(filters).filter(([k, v]) => k !== "sort" && k !== "q" && v !== null && v !== "").length;
    this.active.textContent = set ? `(${set} set)` : "";
    this.clear.hidden = set === 0 && filters.q === "";
    if (set) this.more.open = true;
  }

  /** The filters the form shows (a price that does not parse is left out, and said so). */
  read() {
    const problems = [];
    const cents = (id, label) => {
      const el = this.input(id);
      const text = el.value.trim();
      el.removeAttribute("aria-invalid");
      if (text === "") return null;
      const parsed = parseDollars(text);
      if (parsed.ok) return parsed.cents;
      el.setAttribute("aria-invalid", "true");
      problems.push(`${label}: ${parsed.error}`);
      return null;
    };
    const filters = normalize({
      q: this.q.value, category: this.category.value, grader: this.grader.value,
      grade_min: this.gradeMin.value, grade_max: this.gradeMax.value, type: this.type.value,
      price_min: cents("f-price-min", "Min price"), price_max: cents("f-price-max", "Max price"),
      ending_within: this.ending.value, sort: this.sort.value,
    });
    this.error.textContent = problems.join(" · ");
    return filters;
  }

  changedSoon() {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.changed(), SEARCH_DELAY_MS);
  }

  changed() {
    clearTimeout(this.timer);
    const filters = this.read();
    this.showActive(filters);
    this.onChange(filters);
  }

  stop() {
    clearTimeout(this.timer);
    this.narrow?.removeEventListener?.("change", this.widened);
  }
}
