/* The participants' table: a row per participant, their tracks, and the actions on both.
 *
 * Where moderation goes: trackButtons (per track: mute) and PARTICIPANT_ACTIONS (per
 * participant: lock the microphone, ban, remove; a removal is confirmed first, confirm.js); the room-wide form is room.js, the bans'
 * list and dialog bans.js. */

import { actionButton, moderate } from "./actions.js";
import { openBan } from "./bans.js";
import { confirmAction } from "./confirm.js";
import { cell, el, replaceKeepingFocus } from "./dom.js";
import { micAllowed, micChange, publishable } from "./microphone.js";
import { page } from "./page.js";
import { renderExcept } from "./room.js";
import { state } from "./state.js";
import { SOURCE_ORDER, clock, sourceName, sourceWord, when, who } from "./text.js";

/* Buttons per track: mute / unmute. */
function trackButtons(person, track) {
  const verb = track.muted ? "Unmute" : "Mute";
  return [
    actionButton(
      `mute:${person.identity}:${track.sid}`,
      verb,
      `${verb} the ${sourceName(track).toLowerCase()} of ${who(person)}`,
      track.muted ? "" : "warn",
      () =>
        moderate(
          "POST",
          "/participant/mute",
          { room_name: page.room, participant_identity: person.identity, track_sid: track.sid, muted: !track.muted },
          (answer) =>
            `${who(person)}: ${sourceName(track).toLowerCase()} ${answer.muted ? "muted" : "unmuted"} ` +
            `(LiveKit reports muted: ${answer.muted}).`,
        ),
    ),
  ];
}

function micLockButton(person) {
  const allowed = micAllowed(person.permission);
  const verb = allowed ? "Lock" : "Unlock";
  return actionButton(
    `mic-lock:${person.identity}`,
    `${verb} microphone`,
    `${verb} the microphone of ${who(person)}`,
    allowed ? "warn" : "",
    () =>
      moderate(
        "POST",
        "/participant/permissions",
        { room_name: page.room, participant_identity: person.identity, ...micChange(person.permission, !allowed) },
        (answer) => {
          const gone = (answer.unpublished_tracks || []).map((t) => `${sourceWord(t.source)} ${t.track_sid}`);
          const now = micAllowed(answer.permission) ? "unlocked" : "locked";
          let sentence = `${who(person)}: microphone ${now}; LiveKit says they ${publishable(answer.permission)}.`;
          if (gone.length) {
            sentence += ` LiveKit unpublished: ${gone.join(", ")}.`;
          } else if (now === "unlocked") {
            sentence += " Their app can publish the microphone again when they turn it on.";
          }
          return sentence;
        },
      ),
  );
}

function banButton(person) {
  const button = actionButton(`ban:${person.identity}`, "Ban…", `Ban ${who(person)} from the room…`, "danger", () => {
    openBan(person);
  });
  button.setAttribute("aria-haspopup", "dialog");
  return button;
}

/* Buttons per participant; a maker returns null where its action does not apply. */
const PARTICIPANT_ACTIONS = [
  (person) => (person.permission ? micLockButton(person) : null),
  (person) => (page.banDialog ? banButton(person) : null),
  (person) => removeButton(person),
];

function removeButton(person) {
  const key = `remove:${person.identity}`;
  const button = actionButton(key, "Remove", `Remove ${who(person)} from the room`, "danger", async () => {
    const confirmed = await confirmAction({
      title: `Remove ${who(person)}?`,
      text: `They leave ${page.room} now. Their app may rejoin with its token: to keep them out, ban them instead.`,
      confirm: "Remove",
      key: key,
      fallback: page.heading,
    });
    if (!confirmed) {
      return null;
    }
    return moderate(
      "DELETE",
      "/participant",
      { room_name: page.room, participant_identity: person.identity },
      () => `Removed ${who(person)} from ${page.room}.`,
    );
  });
  button.setAttribute("aria-haspopup", "dialog");
  return button;
}

function byJoinThenIdentity(a, b) {
  return (a.joined_at || 0) - (b.joined_at || 0) || (a.identity < b.identity ? -1 : a.identity > b.identity ? 1 : 0);
}

/* Known sources in SOURCE_ORDER, unknown ones last. */
function bySource(a, b) {
  const rank = (t) => (SOURCE_ORDER.indexOf(t.source) + SOURCE_ORDER.length + 1) % (SOURCE_ORDER.length + 1);
  return rank(a) - rank(b) || (a.sid < b.sid ? -1 : 1);
}

function participantRow(person, ban) {
  const row = el("tr", ban ? "banned" : "");
  row.setAttribute("role", "row");
  row.dataset.identity = person.identity;

  const nameCell = cell("th", "Participant", "rowheader");
  nameCell.scope = "row";
  nameCell.append(el("span", "pname", person.name || person.identity));
  nameCell.append(" ", el("code", "identity", person.identity));
  const since = person.joined_at
    ? ` · joined ${new Date(person.joined_at * 1000).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" })}`
    : "";
  nameCell.append(el("span", "pstate", `${person.state}${since}`));
  const badges = el("span", "pbadges");
  if (ban) {
    badges.append(el("span", "badge banned", `banned until ${when(ban.expires_at)}: rejoined`));
  }
  if (person.permission && !micAllowed(person.permission)) {
    badges.append(el("span", "badge locked", "microphone locked"));
  }
  if (badges.childElementCount) {
    nameCell.append(badges);
  }

  const tracksCell = cell("td", "Tracks", "cell");
  const tracks = [...(person.tracks || [])].sort(bySource);
  if (tracks.length === 0) {
    tracksCell.append(el("span", "quiet", "Publishes no track"));
  } else {
    const list = el("ul", "tracks");
    for (const track of tracks) {
      const item = el("li", "track");
      item.dataset.sid = track.sid;
      item.dataset.source = track.source;
      const text = el("span", "track-text");
      text.append(el("span", "source", sourceName(track)), " ", el("span", "kind", track.type), " ");
      text.append(el("span", "badge " + (track.muted ? "muted" : "live"), track.muted ? "muted" : "live"));
      item.append(text, ...trackButtons(person, track));
      list.append(item);
    }
    tracksCell.append(list);
  }

  const actionsCell = cell("td", "Actions", "cell");
  const actions = el("div", "actions");
  for (const make of PARTICIPANT_ACTIONS) {
    const made = make(person);
    if (made) {
      actions.append(made);
    }
  }
  actionsCell.append(actions);

  row.append(nameCell, tracksCell, actionsCell);
  return row;
}

/* The listing's participants, marked where `banned` (identity -> ban) has them. */
export function renderParticipants(participants, banned) {
  const seen = state.participants;
  const people = [...participants].sort(byJoinThenIdentity);
  seen.present = people;
  const count = people.length === 1 ? "1 participant" : `${people.length} participants`;
  seen.summary = `${count} · updated ${clock()}`;
  page.summary.textContent = seen.summary;
  renderExcept(people);
  const signature = JSON.stringify([people, people.map((p) => banned.get(p.identity) || null)]);
  if (signature === seen.shown) {
    return;
  }
  seen.shown = signature;
  const drawn = people.map((person) => participantRow(person, banned.get(person.identity)));
  if (people.length === 0) {
    const row = el("tr");
    const empty = el("td", "quiet", "Nobody is in this room right now.");
    empty.colSpan = 3;
    row.append(empty);
    drawn.push(row);
  }
  replaceKeepingFocus(page.rows, drawn, page.heading);
}

/* The table emptied, with why (a listing refused for good, not one that failed for now). */
export function clearRows(text) {
  state.participants.shown = null;
  const row = el("tr");
  const why = el("td", "quiet", text);
  why.colSpan = 3;
  row.append(why);
  page.rows.replaceChildren(row);
}
