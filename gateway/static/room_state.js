// The auction room's state and how it evolves: a pure reducer, no DOM, network, timers or
// globals (the caller passes the time when it matters), so it runs unchanged under Node's
// test runner (tests/js/room_state.test.mjs).
//
// State: {view, lastSeq, history, extended}
//   view      the auction as the server presents it (REST body / snapshot.auction), evolved by
//             events; every number in it comes from the server (the min_bid after a bid, a
//             Dutch auction's price and next_drop_at): nothing is recomputed here.
//   lastSeq   the seq of the last event applied to `view`.
//   history   Map seq -> public event: everything seen (the bid history). Entries above
//             lastSeq are waiting for the events before them (a gap) and are not applied yet.
//   extended  {until, by} after a live soft-close extension (shown for a few seconds).
//
// Every function returns {state, ...effects}; the state given is never modified.
//   fetchFrom  a seq: fetch the event log after it (a gap, or history a snapshot skipped).
//   refresh    the view may lack something no event carries: fetch GET /api/auctions/{id}.
//   behind     the server is known to be past lastSeq (an ack or a view with a larger seq).

export const EXTENDED_SHOWN_MS = 5_000;

/** The room's state from the auction view (REST), before any event. */
export function createRoomState(view) {
  return { view: { ...view }, lastSeq: view.seq ?? 0, history: new Map(), extended: null };
}

function result(state, effects = {}) {
  return { state, fetchFrom: null, refresh: false, behind: false, changed: false, ...effects };
}

/**
 * Evolve a view by one event (events carry absolute values, never deltas).
 * Returns {view, refresh, extendedBy}; `view` is a new object.
 */
export function applyEvent(previous, event) {
  const view = { ...previous };
  let refresh = false;
  let extendedBy = null;
  switch (event.type) {
    case "started":
      view.status = "live";
      // The opening price, minimum and (Dutch) next drop are the server's to say.
      refresh = true;
      break;
    case "bid":
      view.bid_count = Number.isInteger(event.bid_count) ? event.bid_count : view.bid_count + 1;
      if (view.type !== "sealed") {
        view.price = event.price;
        view.leader_id = event.leader_id;
      }
      if (view.type === "english") {
        view.buy_now_price = null;
        if ("min_bid" in event) view.min_bid = event.min_bid;
        else refresh = true; // an event logged before bids carried min_bid: ask the server
      }
      // Whether the reserve is met now is not in the event.
      if (view.reserve_met === false) refresh = true;
      break;
    case "raised":
      break; // nothing public changes
    case "extended":
      if (Number.isInteger(view.ends_at) && Number.isInteger(event.ends_at)) {
        extendedBy = event.ends_at - view.ends_at;
      }
      view.ends_at = event.ends_at;
      break;
    case "closed":
      Object.assign(view, {
        status: "closed", winner_id: event.winner_id ?? null,
        final_price: event.final_price ?? null, min_bid: null,
      });
      if ("price" in event) view.price = event.price;
      if ("leader_id" in event) view.leader_id = event.leader_id;
      if (Number.isInteger(event.ends_at)) view.ends_at = event.ends_at;
      if ("next_drop_at" in view) view.next_drop_at = null;
      refresh = true; // the final view: e.g. a sealed auction's reserve_met is revealed now
      break;
    case "cancelled":
      view.status = "cancelled";
      view.min_bid = null;
      if ("next_drop_at" in view) view.next_drop_at = null;
      break;
    default:
      break;
  }
  view.seq = event.seq;
  return { view, refresh, extendedBy };
}

/** Apply, in order, every event in history right after lastSeq. */
function drain(state, now, live) {
  let { view, lastSeq, extended } = state;
  let refresh = false;
  let applied = 0;
  while (state.history.has(lastSeq + 1)) {
    const event = state.history.get(lastSeq + 1);
    const step = applyEvent(view, event);
    view = step.view;
    lastSeq = event.seq;
    refresh = refresh || step.refresh;
    if (live && step.extendedBy !== null) {
      extended = { until: now + EXTENDED_SHOWN_MS, by: step.extendedBy };
    }
    applied += 1;
  }
  return { state: { ...state, view, lastSeq, extended }, refresh, applied };
}

function withEvents(history, events) {
  const copy = new Map(history);
  for (const event of events) {
    if (Number.isInteger(event.seq) && !copy.has(event.seq)) copy.set(event.seq, event);
  }
  return copy;
}

/** Events from the REST log: all go into the history; those next in order are applied. */
export function absorbLog(state, events) {
  if (!events.length) return result(state);
  const next = { ...state, history: withEvents(state.history, events) };
  const drained = drain(next, 0, false);
  return result(drained.state, { refresh: drained.refresh, changed: true });
}

function eventOf(message) {
  const { op: _op, auction_id: _auctionId, req_id: _reqId, ...event } = message;
  return event;
}

/** A message from the live connection: op `snapshot`, `event` or `ack`. `now`: Date.now(). */
export function receive(state, message, now) {
  switch (message.op) {
    case "snapshot":
      return receiveSnapshot(state, message);
    case "event":
      return receiveEvent(state, eventOf(message), now);
    case "ack":
      return receiveAck(state, message);
    default:
      return result(state);
  }
}

function receiveSnapshot(state, message) {
  if (!Number.isInteger(message.seq) || message.seq < state.lastSeq) return result(state);
  const auction = message.auction || {};
  const view = { ...state.view, ...auction, title: auction.title || state.view.title };
  const skipped = message.seq > state.lastSeq ? state.lastSeq : null;
  const next = { ...state, view: { ...view, seq: message.seq }, lastSeq: message.seq };
  // Events already waiting beyond the snapshot apply on top of it.
  const drained = drain(next, 0, false);
  return result(drained.state, { fetchFrom: skipped, refresh: drained.refresh, changed: true });
}

function receiveEvent(state, event, now) {
  if (!Number.isInteger(event.seq) || event.seq <= state.lastSeq) return result(state);
  if (state.history.has(event.seq)) return result(state); // already waiting in a gap
  const next = { ...state, history: withEvents(state.history, [event]) };
  if (event.seq > state.lastSeq + 1) {
    // A gap: hold this event until the ones before it are fetched from the log.
    return result(next, { fetchFrom: state.lastSeq });
  }
  const drained = drain(next, now, true);
  return result(drained.state, { refresh: drained.refresh, changed: true });
}

/** A bid's or a resumed subscription's ack: its seq says how far the server is. */
function receiveAck(state, ack) {
  return result(state, { behind: Number.isInteger(ack.seq) && ack.seq > state.lastSeq });
}

/** A fresh view from REST. Only a view of the same state (same seq) replaces ours. */
export function receiveView(state, fresh) {
  if (!fresh || !Number.isInteger(fresh.seq)) return result(state);
  if (fresh.seq > state.lastSeq) return result(state, { behind: true, fetchFrom: state.lastSeq });
  if (fresh.seq < state.lastSeq) return result(state);
  const view = { ...state.view, ...fresh, title: fresh.title || state.view.title };
  return result({ ...state, view }, { changed: true });
}

/** The public history, newest first: applied events, without `raised` (nothing public). */
export function visibleHistory(state) {
  return [...state.history.values()]
    .filter((event) => event.seq <= state.lastSeq && event.type !== "raised")
    .sort((a, b) => b.seq - a.seq);
}

/** Is a soft-close extension to be shown at `now`? */
export function showsExtended(state, now) {
  return state.extended !== null && state.extended.until > now && state.view.status === "live";
}
