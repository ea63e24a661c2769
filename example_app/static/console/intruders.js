/* Banned participants seen in the room: their app rejoined with a still-valid token. LiveKit's
 * webhook to the extension should have them removed at once (the audit log then lists that
 * enforcement); the page notes each such story under the bans (one line per participant, updated
 * as it goes on) and says so when the webhook does not seem to arrive. */

import { STILL_IN_MS, page } from "./page.js";
import { note } from "./report.js";
import { state } from "./state.js";
import { when, who } from "./text.js";

/* Compares the last listing's participants with `banned` (identity -> ban). */
export function watchIntruders(banned) {
  const { seen: intruders, rejoins } = state.intruders;
  const here = new Map(state.participants.present.map((p) => [p.identity, p]));
  for (const [identity, person] of here) {
    const ban = banned.get(identity);
    if (ban && !intruders.has(identity)) {
      const count = (rejoins.get(identity) || 0) + 1;
      rejoins.set(identity, count);
      intruders.set(identity, { since: Date.now(), warned: false, label: who(person) });
      const times = count === 1 ? "" : ` again (${count} times)`;
      note(
        "error",
        `${who(person)} rejoined ${page.room}${times} although banned until ${when(ban.expires_at)}: ` +
          "LiveKit's webhook should have them removed at once.",
        `rejoin:${identity}`,
        count === 1,
      );
    }
  }
  for (const [identity, seen] of intruders) {
    const ban = banned.get(identity);
    if (!ban) {
      intruders.delete(identity); // lifted (or ended): they may stay
    } else if (!here.has(identity)) {
      intruders.delete(identity);
      const count = rejoins.get(identity) || 1;
      const times = count === 1 ? "" : ` ${count} times`;
      note(
        "ok",
        `${seen.label} rejoined ${page.room}${times} although banned until ${when(ban.expires_at)}, and is out ` +
          `again${count === 1 ? "" : " each time"}: the ban keeps them out.`,
        `rejoin:${identity}`,
        count === 1,
      );
    } else if (!seen.warned && Date.now() - seen.since > STILL_IN_MS) {
      seen.warned = true;
      note(
        "error",
        `${seen.label} is still in ${page.room} although banned. LiveKit's webhook does not seem to reach ` +
          `this app (${page.api}/webhook): remove them by hand, and check LiveKit's webhook settings.`,
        `rejoin:${identity}`,
        true,
      );
    }
  }
  for (const identity of rejoins.keys()) {
    if (!banned.has(identity)) {
      rejoins.delete(identity); // a new ban counts afresh
    }
  }
}

/* Whether the page should look again sooner: someone banned is in, and the page has not yet
 * said the webhook is not working. */
export function watching() {
  return [...state.intruders.seen.values()].some((seen) => !seen.warned);
}
