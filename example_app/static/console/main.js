/* The moderator console of the example app: ES modules, no build step, no dependencies.
 *
 * Every call goes to the extension's REST routes (under <main data-api>) with fetch and the
 * session cookie; the page holds no token (api.js says why writes are JSON). Answers and errors
 * are shown in the aria-live #status area as the extension words them (its code and sentence),
 * with an explanation where one helps (text.js HINTS), the Retry-After wait of a 503, and a
 * sign-in link once the session is gone (report.js).
 *
 * Where moderation goes: participants.js (per track: mute; per participant: lock the
 * microphone, ban, remove), room.js (mute everyone's microphone but some), bans.js (the ban
 * dialog, the bans list and its "Lift"), lobby.js (the lock switch and the waiting list),
 * confirm.js (the dialog that asks before a removal or a room-wide mute), actions.js (moderate():
 * one JSON write, its report and
 * a refresh). What the page knows comes from polling (poll.js); a banned participant seen in
 * the room is marked and noted under the bans (intruders.js); who did what, when, is the
 * extension's audit log of the room (audit.js, GET /livekit/audit). All that changes after load is
 * in state.js, the page's elements and settings in page.js.
 */

import { WROTE } from "./actions.js";
import { wireAuditFilter } from "./audit.js";
import { wireBanDialog } from "./bans.js";
import { wireConfirmDialog } from "./confirm.js";
import { wireLobby } from "./lobby.js";
import { page } from "./page.js";
import { refresh, refreshNow, stopRefreshing } from "./poll.js";
import { mountToast } from "./report.js";
import { wireRoomForm } from "./room.js";

function start() {
  mountToast();
  wireRoomForm();
  wireBanDialog();
  wireLobby();
  wireAuditFilter();
  wireConfirmDialog();
  page.refreshButton?.addEventListener("click", refreshNow);
  page.autoRefresh?.addEventListener("change", () => {
    if (page.autoRefresh.checked) {
      refresh();
    } else {
      stopRefreshing();
    }
  });
  // A write's effect shows at once rather than at the next poll. A 401 means the session is
  // gone: polling on would only repeat it.
  page.main.addEventListener(WROTE, (event) => {
    if (event.detail.status === 401) {
      stopRefreshing();
    }
    refresh();
  });
  refresh();
}

if (page.main && page.status) {
  start();
}
