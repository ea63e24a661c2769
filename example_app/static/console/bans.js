/* Bans: the dialog that bans a participant (how long, why), and the room's active bans, each
 * with its "Lift" button. */

import { actionButton, moderate } from "./actions.js";
import { el, focusKey, replaceKeepingFocus } from "./dom.js";
import { page } from "./page.js";
import { report } from "./report.js";
import { state } from "./state.js";
import { clock, plural, when, who } from "./text.js";

const LIFT_HINTS = {
  PARTICIPANT_NOT_FOUND:
    "There is no active ban of theirs here any more: it ended or was lifted already (or the room is not yours).",
};

/* ---- the dialog */

function countReason() {
  page.banCount.textContent = `${page.banReason.value.length} of ${page.banReason.maxLength} characters`;
}

export function openBan(person) {
  state.bans.target = person;
  page.banWho.textContent = who(person);
  page.banDuration.selectedIndex = 0;
  page.banReason.value = "";
  countReason();
  page.banDialog.showModal();
  page.banDuration.focus();
}

function submitBan() {
  const person = state.bans.target;
  const reason = page.banReason.value.trim();
  page.banDialog.close("ban");
  return moderate(
    "POST",
    "/bans",
    {
      room_name: page.room,
      participant_identity: person.identity,
      duration_seconds: Number.parseInt(page.banDuration.value, 10),
      reason: reason || null,
    },
    (answer) =>
      `Banned ${who(person)} from ${page.room} until ${when(answer.expires_at)}; ` +
      `removed from the room: ${answer.removed ? "yes" : "no, they were not in it"}.` +
      (answer.reason ? ` Reason: ${answer.reason}` : ""),
  );
}

export function wireBanDialog() {
  const dialog = page.banDialog;
  if (!dialog || !page.banForm) {
    return;
  }
  page.banReason.addEventListener("input", countReason);
  page.banForm.addEventListener("submit", (event) => {
    event.preventDefault();
    if (state.bans.target && dialog.open) {
      submitBan();
    }
  });
  page.banCancel.addEventListener("click", () => dialog.close("cancel"));
  // Focus goes back to the participant's "Ban…" button; once their row is gone (banned),
  // the list's redraw moves it to the list's heading, as for a removal.
  dialog.addEventListener("close", () => {
    if (state.bans.target) {
      focusKey(`ban:${state.bans.target.identity}`, page.heading);
    }
  });
}

/* ---- the list */

function banItem(ban) {
  const item = el("li", "ban");
  item.dataset.identity = ban.participant_identity;
  const text = el("div", "ban-text");
  const line = el("p", "ban-line");
  line.append(el("code", "identity", ban.participant_identity), " until ");
  const until = el("time", "", when(ban.expires_at));
  until.dateTime = ban.expires_at;
  line.append(until);
  text.append(line);
  text.append(el("p", "ban-reason", ban.reason ? `Reason: ${ban.reason}` : "No reason given."));
  text.append(el("p", "ban-since small quiet", `Banned at ${when(ban.banned_at)}`));
  const lift = actionButton(
    `lift:${ban.participant_identity}`,
    "Lift",
    `Lift the ban of ${ban.participant_identity}`,
    "",
    () =>
      moderate(
        "DELETE",
        "/bans",
        { room_name: page.room, participant_identity: ban.participant_identity },
        () => `Lifted the ban of ${ban.participant_identity} in ${page.room}: they may join again.`,
        LIFT_HINTS,
      ),
  );
  item.append(text, lift);
  return item;
}

export function renderBans(bans) {
  page.bansSummary.textContent = bans.length
    ? `${plural(bans.length, "active ban")} · updated ${clock()}`
    : `Nobody is banned from ${page.room} · updated ${clock()}`;
  const signature = JSON.stringify(bans);
  if (signature === state.bans.shown) {
    return;
  }
  state.bans.shown = signature;
  replaceKeepingFocus(page.banList, bans.map(banItem), page.bansHeading);
}

/* The bans could not be listed: `listed` says whether the participants could (when they
 * could not either, that listing has already reported the room's problem). */
export function bansFailed(problem, listed) {
  state.bans.shown = null;
  page.banList.replaceChildren();
  page.bansSummary.textContent = `Bans not listed (${problem.code}).`;
  if (listed && problem.code !== state.bans.error) {
    report(problem); // once per code, not at every poll
  }
  state.bans.error = problem.code;
}
