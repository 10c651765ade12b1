// Small DOM helpers. Every piece of user-supplied text goes through textContent (never
// innerHTML).

/** h("div", {class, testid, text, dataset, onClick, ...attributes}, ...children) */
export function h(tag, props, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(props || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") el.className = value;
    else if (key === "testid") el.dataset.testid = value;
    else if (key === "text") el.textContent = value;
    else if (key === "dataset") Object.assign(el.dataset, value);
    else if (key.startsWith("on") && typeof value === "function") {
      el.addEventListener(key.slice(2).toLowerCase(), value);
    } else if (value === true) el.setAttribute(key, "");
    else el.setAttribute(key, String(value));
  }
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : String(child));
  }
  return el;
}

/** Set an element's text only when it changes (no needless DOM writes or announcements). */
export function setText(el, text) {
  const value = String(text);
  if (el.textContent !== value) el.textContent = value;
}

export function flash(el) {
  el.classList.remove("flash");
  void el.offsetWidth; // restart the animation
  el.classList.add("flash");
}

export function toast(message, kind = "info") {
  const host = document.getElementById("toasts");
  const el = h("div", { class: `toast toast--${kind}`, role: kind === "error" ? "alert" : "status" },
    message);
  host.append(el);
  setTimeout(() => el.classList.add("toast--out"), 4_500);
  setTimeout(() => el.remove(), 5_000);
}
