/* The room's audit log, as the extension keeps it (GET /livekit/audit): who did what, when, and
 * what came of it, refusals and failures too; the newest AUDIT_PAGE entries, filtered by action.
 * Listed with the other lists at every poll, and right after each write. */

import { failure, getJson, unreachable } from "./api.js";
import { el, replaceKeepingFocus } from "./dom.js";
import { AUDIT_PAGE, page } from "./page.js";
import { state } from "./state.js";
import { plural, when } from "./text.js";

/* What an entry says was done, by action; `d` is the entry's details, `p` its participant. */
const DONE = {
  remove: (p) => `removed ${p}`,
  mute: (p, d) => `${d.muted === false ? "unmuted" : "muted"} a track of ${p}` + (d.track_sid ? ` (${d.track_sid})` : ""),
  room_mute: (p, d) =>
    `${d.muted === false ? "unmuted" : "muted"} everyone's ${(d.sources || ["microphone"]).join(", ")}` +
    (d.tracks !== undefined ? ` (${plural(d.tracks, "track")} changed, ${d.failed || 0} failed)` : ""),
  permissions: (p) => `changed what ${p} may publish`,
  ban: (p, d) =>
    `banned ${p}` + (d.duration_seconds ? ` for ${duration(d.duration_seconds)}` : "") +
    (d.reason ? ` (reason: ${d.reason})` : ""),
  lift_ban: (p) => `lifted the ban of ${p}`,
  enforce_ban: (p) => `removed ${p}, who is banned`,
  lock: (p, d) => (d.locked === false ? "unlocked the room" : "locked the room"),
  admit: (p, d) => `admitted ${(d.participant_identities || [p]).join(", ")}`,
  deny: (p, d) => `denied ${(d.participant_identities || [p]).join(", ")}`,
  enforce_lock: (p) => `removed ${p}, who joined the locked room unadmitted`,
};

function duration(seconds) {
  const units = [[604800, "week"], [86400, "day"], [3600, "hour"], [60, "minute"]];
  for (const [size, name] of units) {
    if (seconds % size === 0) {
      return plural(seconds / size, name);
    }
  }
  return plural(seconds, "second");
}

/* Who acted: the moderator the extension names, or what enforced a ban. */
function actor(entry) {
  if (entry.actor) {
    return entry.actor;
  }
  const source = entry.details && entry.details.source;
  if (entry.action === "enforce_ban" || entry.action === "enforce_lock") {
    return source === "reconciler" ? "The reconciler" : "LiveKit's webhook";
  }
  return "A caller for all rooms";
}

function entryItem(entry) {
  const failed = entry.status === null ? false : entry.status >= 400;
  const item = el("li", failed ? "log-error" : "log-ok");
  item.dataset.id = entry.id;
  item.dataset.action = entry.action;
  const time = el("time", "", when(entry.at));
  time.dateTime = entry.at;
  const target = entry.participant_identity || "someone";
  const said = (DONE[entry.action] || ((p) => `${entry.action} ${p}`))(target, entry.details || {});
  const outcome = failed ? `: refused or failed, ${entry.outcome}` : `: ${entry.outcome}`;
  item.append(time, " ", el("strong", "actor", actor(entry)), ` ${said}${outcome}.`);
  return item;
}

function render(entries) {
  const json = JSON.stringify(entries);
  if (json === state.audit.shown) {
    return;
  }
  state.audit.shown = json;
  const items = entries.map(entryItem);
  if (!items.length) {
    items.push(el("li", "empty", page.auditAction.value ? "No such entry yet." : "Nothing yet."));
  }
  replaceKeepingFocus(page.auditLog, items);
  const filter = page.auditAction.value ? ` (${page.auditAction.selectedOptions[0].textContent})` : "";
  const count = `${entries.length} ${entries.length === 1 ? "entry" : "entries"}`;
  page.auditSummary.textContent = `${count}${filter}, newest first`;
}

function problem(said) {
  if (said.code !== state.audit.error) {
    state.audit.error = said.code;
    page.auditSummary.textContent = `The audit log could not be read: ${said.code}: ${said.sentence}`;
  }
}

/* Lists the room's audit log again; never throws. */
export async function refreshAudit() {
  if (!page.auditLog || !page.room) {
    return;
  }
  const params = { limit: String(AUDIT_PAGE) };
  if (page.auditAction.value) {
    params.action = page.auditAction.value;
  }
  try {
    const { response, data } = await getJson("/audit", params);
    if (response.ok && data && Array.isArray(data.entries)) {
      state.audit.error = null;
      render(data.entries);
    } else {
      problem(failure(response, data));
    }
  } catch (error) {
    problem(unreachable(error));
  }
}

export function wireAuditFilter() {
  page.auditAction?.addEventListener("change", () => {
    state.audit.shown = null;
    refreshAudit();
  });
}
