// Following an analytics channel ("market", "card:<card_id>") on the page's one live connection.
// These channels do not resume (no `since`): live.js re-subscribes after every reconnect (or
// sign-in), and each ack after the first means events may have been missed meanwhile, so the
// view re-fetches (onResync).

import { live } from "./shell.js";

/** Follow `channel`; returns stop(). onEvent(message) for each `event`; onResync() after a
 * re-subscribe; onError(message) if the server refuses the channel. */
export function follow(channel, { onEvent, onResync = () => {}, onError = () => {} }) {
  let acks = 0;
  live.subscribeChannel(channel, {
    since: () => null,
    onMessage(message) {
      if (message.op === "ack") {
        acks += 1;
        if (acks > 1) onResync();
      } else if (message.op === "event") {
        onEvent(message);
      }
    },
    onError,
  });
  return () => live.unsubscribeChannel(channel);
}
