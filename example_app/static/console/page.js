/* The page as the server rendered it: its elements and its settings. Nothing here changes after
 * load (what does is in state.js); an element is null where this page has none, as when no room
 * is chosen yet. Module scripts run once the document is parsed, so the lookups find it all. */

const byId = (id) => document.getElementById(id);
const main = byId("main");

export const page = Object.freeze({
  main: main,
  status: byId("status"),
  banNotes: byId("ban-notes"),
  announcer: byId("announce"),

  summary: byId("summary"),
  rows: byId("participant-rows"),
  heading: byId("people-h"),
  autoRefresh: byId("auto-refresh"),
  refreshButton: byId("refresh"),

  roomForm: byId("room-mute"),
  except: byId("except"),
  roomHeading: byId("room-h"),

  banList: byId("ban-list"),
  bansSummary: byId("bans-summary"),
  bansHeading: byId("bans-h"),
  banDialog: byId("ban-dialog"),
  banForm: byId("ban-form"),
  banWho: byId("ban-who"),
  banDuration: byId("ban-duration"),
  banReason: byId("ban-reason"),
  banCount: byId("ban-reason-count"),
  banCancel: byId("ban-cancel"),

  lockSwitch: byId("lock-switch"),
  lockState: byId("lock-state"),
  lobbyList: byId("lobby-list"),
  lobbySummary: byId("lobby-summary"),
  lobbyHeading: byId("lobby-h"),
  admitAll: byId("admit-all"),

  auditLog: byId("audit-log"),
  auditSummary: byId("audit-summary"),
  auditAction: byId("audit-action"),
  confirmDialog: byId("confirm-dialog"),
  confirmTitle: byId("confirm-title"),
  confirmText: byId("confirm-text"),
  confirmButton: byId("confirm-ok"),
  confirmCancel: byId("confirm-cancel"),

  api: main?.dataset.api || "/livekit",
  signin: main?.dataset.signin || "/signin",
  room: main?.dataset.room || "",
});

export const REFRESH_MS = 2000;
export const WATCH_MS = 500; // while a banned participant is in the room
export const STILL_IN_MS = 10000; // then the webhook is not reaching the app: say so
export const NOTES_MAX = 30;
export const AUDIT_PAGE = 50; // entries the audit log shows (the newest)
