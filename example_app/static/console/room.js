/* The whole room: mute or unmute everyone's microphone, but for those ticked in "Except";
 * confirmed first (confirm.js). */

import { moderate, wire } from "./actions.js";
import { confirmAction } from "./confirm.js";
import { el, replaceKeepingFocus } from "./dom.js";
import { page } from "./page.js";
import { state } from "./state.js";
import { HINTS, TRACK_FAILURES, plural, sourceWord, who } from "./text.js";

/* A checkbox per participant, redrawn only when who is in the room changed. */
export function renderExcept(people) {
  if (!page.except) {
    return;
  }
  const except = state.except;
  const signature = JSON.stringify(people.map((p) => [p.identity, p.name]));
  if (signature === except.shown) {
    return;
  }
  except.shown = signature;
  const boxes = people.map((person) => {
    const label = el("label", "check");
    const box = el("input");
    box.type = "checkbox";
    box.name = "except";
    box.value = person.identity;
    box.dataset.key = `except:${person.identity}`;
    box.checked = except.spared.has(person.identity);
    box.addEventListener("change", () => {
      if (box.checked) {
        except.spared.add(person.identity);
      } else {
        except.spared.delete(person.identity);
      }
    });
    label.append(box, " ", who(person));
    return label;
  });
  if (boxes.length === 0) {
    boxes.push(el("p", "quiet", "Nobody is in the room."));
  }
  replaceKeepingFocus(page.except, boxes, page.roomHeading);
}

function roomMuteReport(answer, muted, except) {
  const verb = muted ? "Muted" : "Unmuted";
  const done = answer.tracks || [];
  const failed = answer.failed || [];
  const confirmed = done.filter((t) => t.muted === muted).length;
  const alone = except.length ? `, leaving ${except.join(", ")} as they are` : "";
  let sentence;
  if (done.length === 0 && failed.length === 0) {
    sentence = `No microphone to ${muted ? "mute" : "unmute"} in ${page.room}${alone}.`;
  } else {
    sentence = `${verb} ${plural(done.length, "microphone")} in ${page.room}${alone} (LiveKit reports ${confirmed} ${muted ? "muted" : "unmuted"}).`;
  }
  if (failed.length === 0) {
    return sentence;
  }
  return {
    kind: "error",
    sentence: `${sentence} ${plural(failed.length, "microphone")} could not be changed:`,
    details: failed.map(
      (f) =>
        `${f.participant_identity} · ${sourceWord(f.source)} ${f.track_sid}: ` +
        `${f.code}${TRACK_FAILURES[f.code] ? ` (${TRACK_FAILURES[f.code]})` : ""}`,
    ),
    hint: failed.some((f) => f.code === "REMOTE_UNMUTE_DISABLED") ? HINTS.REMOTE_UNMUTE_DISABLED : "",
  };
}

/* Only those still in the room: a name ticked before they left is kept for their return. */
function sparedHere() {
  const here = new Set(state.participants.present.map((p) => p.identity));
  return [...state.except.spared].filter((identity) => here.has(identity)).sort();
}

function muteRoom(muted) {
  const except = sparedHere();
  return moderate(
    "POST",
    "/room/mute",
    { room_name: page.room, muted: muted, sources: ["microphone"], except_identities: except },
    (answer) => roomMuteReport(answer, muted, except),
  );
}

/* A room-wide change reaches everyone at once: asked first. */
function confirmed(muted) {
  const verb = muted ? "Mute" : "Unmute";
  const spared = sparedHere();
  return confirmAction({
    title: `${verb} everyone's microphone in ${page.room}?`,
    text:
      `Every microphone in the room is ${muted ? "muted" : "unmuted"}` +
      (spared.length ? `, but those of ${spared.join(", ")}.` : "."),
    confirm: `${verb} everyone`,
    key: muted ? "room-mute" : "room-unmute",
    fallback: page.roomHeading,
  });
}

export function wireRoomForm() {
  if (!page.roomForm) {
    return;
  }
  const [muteAll, unmuteAll] = page.roomForm.querySelectorAll("#room-actions button");
  wire(muteAll, "room-mute", () => confirmed(true).then((yes) => yes && muteRoom(true)));
  wire(unmuteAll, "room-unmute", () => confirmed(false).then((yes) => yes && muteRoom(false)));
  muteAll.setAttribute("aria-haspopup", "dialog");
  unmuteAll.setAttribute("aria-haspopup", "dialog");
  // The buttons act through fetch; Enter in the form must not reload the page.
  page.roomForm.addEventListener("submit", (event) => event.preventDefault());
}
