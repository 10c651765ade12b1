// The auction room's bid history: newest first, one row per public event, kept by seq so a
// new event adds one row (and animates only it).

import { h, setText } from "../dom.js";
import { clockTime } from "../format.js";
import { formatCents } from "../money.js";
import { visibleHistory } from "../room_state.js";
import { me, who } from "../shell.js";

const HISTORY_LIMIT = 200;

export function renderHistory(room) {
  const r = room.refs;
  // A leader raising their own hidden maximum ("raised") changes nothing public: not shown.
  const events = visibleHistory(room.room);
  const key = `${events.length}:${events[0]?.seq}:${me()}`;
  if (key === room.renderedHistory) return;
  const rebuild = !room.historyRows || room.historyOwner !== me();
  room.renderedHistory = key;
  if (rebuild) {
    room.historyRows = new Map();
    room.historyOwner = me();
    r.history.replaceChildren();
  }
  const shown = events.slice(0, HISTORY_LIMIT);
  const keep = new Set(shown.map((event) => event.seq));
  for (const [seq, row] of room.historyRows) {
    if (!keep.has(seq)) {
      row.remove();
      room.historyRows.delete(seq);
    }
  }
  shown.forEach((event, index) => {
    let row = room.historyRows.get(event.seq);
    if (!row) {
      row = historyRow(room.view, event);
      if (!rebuild) row.classList.add("history__row--new"); // only later rows animate in
      room.historyRows.set(event.seq, row);
    }
    if (r.history.children[index] !== row) r.history.insertBefore(row, r.history.children[index] || null);
  });
  r.empty ??= h("li", { class: "history__empty", text: "No activity yet" });
  if (shown.length === 0) r.history.append(r.empty);
  else r.empty.remove();
  setText(r.historyNote, events.length > shown.length
    ? `Showing the latest ${shown.length} of ${events.length} events` : "");
}

function historyRow(view, event) {
  let text;
  let detail = "";
  let kind = event.type;
  switch (event.type) {
    case "started":
      text = "Auction opened";
      detail = view.type === "dutch" ? `from ${formatCents(view.start_price)}` : `starting at ${formatCents(view.start_price)}`;
      break;
    case "bid":
      if (view.type === "sealed" || event.bidder_id === null) {
        text = "Sealed bid received";
        detail = `bid #${event.bid_count}`;
      } else if (view.type === "dutch") {
        text = `${who(event.bidder_id)} bought at ${formatCents(event.price)}`;
        if (event.bidder_id === me()) kind = "bid mine";
      } else {
        // The leader's bid shows at the price it set (their maximum stays private).
        text = `${who(event.bidder_id)} bid ${formatCents(event.amount ?? event.price)}`;
        detail = event.leader_id === event.bidder_id
          ? `leads at ${formatCents(event.price)}`
          : `${who(event.leader_id)} ${event.leader_id === me() ? "still lead" : "still leads"} (auto-bid) at ${formatCents(event.price)}`;
        if (event.bidder_id === me()) kind = "bid mine";
      }
      break;
    case "extended":
      text = "Soft close: time extended";
      detail = `now ends ${clockTime(event.ends_at)}`;
      break;
    case "closed":
      if (event.winner_id) {
        text = `Sold to ${who(event.winner_id)} for ${formatCents(event.final_price)}`;
        detail = event.reason === "buy_now" ? "bought now" : "";
      } else {
        text = "Ended without a sale";
      }
      break;
    case "cancelled":
      text = "Cancelled by the seller";
      break;
    default:
      text = event.type;
  }
  return h("li", {
    class: `history__row history__row--${kind.replace(" ", " history__row--")}`,
    testid: "history-row", dataset: { seq: event.seq, type: event.type },
  },
  h("time", { class: "history__time", datetime: new Date(event.at).toISOString(), text: clockTime(event.at) }),
  h("span", { class: "history__text", text }),
  detail ? h("span", { class: "history__detail", text: detail }) : null);
}
