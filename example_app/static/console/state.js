/* Everything the console changes after load, in one object, so what the page remembers between
 * two polls can be read in one place. Each part is written by the module named beside it; the
 * others only read it. */

export const state = {
  // report.js: the floating copy of the last report (made at start) and the timer hiding it.
  toast: { node: null, timer: null },

  // actions.js. `started` lets a listing tell whether a write began while it was under way:
  // such a listing may be half before, half after it.
  writes: { running: 0, started: 0 },
  busy: new Set(), // keys of the buttons whose request runs: one request at a time per key

  // participants.js. `shown` is the table as JSON, so a poll that changed nothing rebuilds
  // nothing (and focus, hover and selection survive); `summary` is kept to be marked stale.
  participants: { present: [], shown: null, summary: "Not loaded yet" },

  // room.js. A name ticked in "Except" stays ticked while they are away, for their return.
  except: { spared: new Set(), shown: null },

  // bans.js. `current` is from the last listing that worked (identity -> ban), so a failed one
  // does not unmark the banned; `error` is the code last reported, so it is reported once;
  // `target` is whom the open dialog bans.
  bans: { current: new Map(), shown: null, error: null, target: null },

  // intruders.js. Banned participants seen in the room (identity -> {since, warned, label}),
  // and how often each came back under their current ban.
  intruders: { seen: new Map(), rejoins: new Map() },

  // lobby.js. The last listing: whether the room is locked and who waits (for "Admit all");
  // `shown` as for the participants; `error` the code last reported.
  lobby: { locked: false, waiting: [], shown: null, error: null },
  // audit.js. `shown` is the list as JSON (a poll that changed nothing redraws nothing);
  // `error` is the code last reported, so it is reported once.
  audit: { shown: null, error: null },

  // poll.js. `again` asks for one more listing right after the one in flight, so an action's
  // effect is never missed; `error` is the listing's last failure code, reported once.
  poll: { timer: null, inFlight: false, again: false, error: null },
};
