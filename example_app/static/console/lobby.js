/* The lobby: the room's lock switch, who waits to get in (oldest knock first, newest at the
 * bottom, with how long each has waited), Admit / Deny per person, and "Admit all". Listed with
 * the participants at every poll (poll.js calls refreshLobby); the switch and the buttons are
 * JSON writes through moderate(), like every other action. */

import { actionButton, moderate, wire } from "./actions.js";
import { failure, getJson, unreachable } from "./api.js";
import { el, replaceKeepingFocus } from "./dom.js";
import { page } from "./page.js";
import { report } from "./report.js";
import { state } from "./state.js";
import { clock, plural } from "./text.js";

/* "12 s", "3 min 5 s", "1 h 2 min": how long since `iso`, by the browser's clock. */
export function waited(iso, now = Date.now()) {
  const seconds = Math.max(0, Math.floor((now - Date.parse(iso)) / 1000));
  if (seconds < 60) {
    return `${seconds} s`;
  }
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) {
    return `${minutes} min ${seconds % 60} s`;
  }
  return `${Math.floor(minutes / 60)} h ${minutes % 60} min`;
}

function label(person) {
  return person.name ? `${person.name} (${person.participant_identity})` : person.participant_identity;
}

function decide(what, identities, sentence) {
  return moderate("POST", `/lobby/${what}`, { room_name: page.room, participant_identities: identities }, sentence);
}

function waitingItem(person) {
  const item = el("li", "waiting");
  item.dataset.identity = person.participant_identity;
  const text = el("div", "waiting-text");
  const line = el("p", "waiting-line");
  line.append(el("strong", "waiting-name", person.name || person.participant_identity));
  if (person.name) {
    line.append(" ", el("code", "identity", person.participant_identity));
  }
  text.append(line);
  const since = el("p", "waiting-since small quiet", `waiting ${waited(person.knocked_at)}`);
  since.dataset.since = person.knocked_at;
  text.append(since);
  const admit = actionButton(`admit:${person.participant_identity}`, "Admit", `Admit ${label(person)}`, "", () =>
    decide("admit", [person.participant_identity], () => `Admitted ${label(person)} into ${page.room}.`),
  );
  const deny = actionButton(`deny:${person.participant_identity}`, "Deny", `Deny ${label(person)}`, "danger", () =>
    decide("deny", [person.participant_identity], () => `Denied ${label(person)}: they may not join ${page.room}.`),
  );
  const buttons = el("p", "buttons");
  buttons.append(admit, deny);
  item.append(text, buttons);
  return item;
}

export function renderLobby(data) {
  state.lobby.locked = data.locked;
  state.lobby.waiting = data.waiting;
  page.lockSwitch.checked = data.locked;
  page.lockSwitch.setAttribute("aria-checked", data.locked ? "true" : "false");
  page.lockState.textContent = data.locked
    ? "Locked: only people you admit get in."
    : "Unlocked: anyone who is not banned gets in.";
  page.lobbySummary.textContent = data.locked
    ? `${data.waiting.length ? `${plural(data.waiting.length, "person")}${data.next_cursor ? " (and more)" : ""} waiting` : "Nobody is waiting"} · updated ${clock()}`
    : `Nobody waits while the room is unlocked · updated ${clock()}`;
  page.admitAll.hidden = !data.waiting.length;
  const signature = JSON.stringify(data.waiting);
  if (signature !== state.lobby.shown) {
    state.lobby.shown = signature;
    replaceKeepingFocus(page.lobbyList, data.waiting.map(waitingItem), page.lobbyHeading);
  } else {
    for (const since of page.lobbyList.querySelectorAll("[data-since]")) {
      since.textContent = `waiting ${waited(since.dataset.since)}`;
    }
  }
}

/* Lists the lobby (one page: the first 100 in knock order) and redraws it. */
export async function refreshLobby() {
  if (!page.lobbyList) {
    return;
  }
  try {
    const { response, data } = await getJson("/lobby");
    if (response.ok && data && Array.isArray(data.waiting)) {
      state.lobby.error = null;
      renderLobby(data);
      return;
    }
    const problem = failure(response, data);
    page.lobbySummary.textContent = `Lobby not listed (${problem.code}).`;
    if (problem.code !== state.lobby.error) {
      state.lobby.error = problem.code;
      report(problem);
    }
  } catch (error) {
    state.lobby.error = "NETWORK";
    page.lobbySummary.textContent = `Lobby not listed (${unreachable(error).code}).`;
  }
}

export function wireLobby() {
  if (!page.lockSwitch) {
    return;
  }
  page.lockSwitch.addEventListener("change", async () => {
    const locked = page.lockSwitch.checked;
    page.lockSwitch.disabled = true;
    try {
      await moderate("POST", "/room/lock", { room_name: page.room, locked: locked }, () =>
        locked
          ? `Locked ${page.room}: whoever is in it now may stay; anyone else waits for you to admit them.`
          : `Unlocked ${page.room}: the waiting list is cleared; anyone not banned may join.`,
      );
    } finally {
      page.lockSwitch.disabled = false;
    }
  });
  wire(page.admitAll, "admit-all", () => {
    const identities = state.lobby.waiting.map((person) => person.participant_identity);
    return decide("admit", identities, () => `Admitted ${plural(identities.length, "person")} into ${page.room}.`);
  });
}
