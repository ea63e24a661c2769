/* The moderator console of the example app: one file, no build step, no dependencies.
 *
 * Every call goes to the extension's REST routes (under <main data-api>) with fetch and the
 * session cookie (credentials: "same-origin"): the page holds no token, the app's
 * request_loader maps the signed-in session to the tenant. Writes are sent with
 * "Content-Type: application/json"; the extension refuses any other body with 415 before it
 * looks at the caller, which is what keeps another site's <form> (text/plain, urlencoded,
 * multipart: no CORS preflight) from moderating with the moderator's cookie.
 *
 * Answers and errors are shown in the aria-live #status area as the extension words them
 * (its code and sentence), with an explanation where one helps (HINTS), the Retry-After wait
 * of a 503, and a sign-in link once the session is gone.
 *
 * Where more moderation goes: PARTICIPANT_ACTIONS (buttons per participant), trackButtons
 * (buttons per track), HINTS (explanations per error code) and moderate() (one JSON write,
 * its report and a refresh).
 */
"use strict";

(function () {
  const main = document.getElementById("main");
  const statusArea = document.getElementById("status");
  const historyList = document.getElementById("history");
  if (!main || !statusArea) {
    return;
  }
  const API = main.dataset.api || "/livekit";
  const SIGNIN = main.dataset.signin || "/signin";
  const ROOM = main.dataset.room || "";
  const REFRESH_MS = 2000;
  const HISTORY_MAX = 30;

  /* Explanations shown under the extension's own sentence, by error code. */
  const HINTS = {
    PARTICIPANT_NOT_FOUND:
      "The room does not exist, is not one of your tenant's rooms, or that person is no longer in it. " +
      "The extension answers all three the same way, so no one can find out which rooms other tenants have.",
    TRACK_NOT_FOUND: "The participant unpublished that track in the meantime.",
    REMOTE_UNMUTE_DISABLED:
      "Muting always works; unmuting someone else needs that setting in the LiveKit server's " +
      "configuration file (it is off by default). Until then, ask the participant to unmute themselves.",
    UNSUPPORTED_MEDIA_TYPE:
      "The request was not sent as JSON (Content-Type: application/json), so the extension refused it " +
      "without looking at it. That is what stops other sites from posting forms here with your cookie.",
    MISSING_TOKEN: "Your session has ended (signed out, or the app restarted).",
    UNAUTHORIZED: "Your session has ended (signed out, or the app restarted).",
    FORBIDDEN: "Your account may not moderate this room.",
    LIVEKIT_UNAVAILABLE:
      "LiveKit did not answer in time. An action may still have happened: the list shows what LiveKit reports.",
    LIVEKIT_BUSY: "The app is already waiting on LiveKit for many requests.",
    LIVEKIT_AUTH_FAILED: "The app's LiveKit API key or secret is wrong: the app's operator must fix it.",
    LIVEKIT_NOT_CONFIGURED: "The app has no LiveKit server configured: the app's operator must set it.",
  };

  const SOURCES = {
    microphone: "Microphone",
    camera: "Camera",
    screen_share: "Screen share",
    screen_share_audio: "Screen share audio",
  };
  const SOURCE_ORDER = ["microphone", "camera", "screen_share", "screen_share_audio"];

  /* ------------------------------------------------------------------ reporting */

  function clock(date) {
    return (date || new Date()).toLocaleTimeString();
  }

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) {
      node.className = className;
    }
    if (text !== undefined) {
      node.textContent = text;
    }
    return node;
  }

  /* A report: {kind: "ok" | "error" | "info", code?, sentence, hint?, retry?, signin?}. */
  function report(entry) {
    const box = el("div", "report " + entry.kind);
    const line = el("p", "line");
    if (entry.code) {
      line.append(el("strong", "code", entry.code), ": ");
    }
    line.append(entry.sentence);
    box.append(line);
    if (entry.hint) {
      box.append(el("p", "hint", entry.hint));
    }
    if (entry.retry !== null && entry.retry !== undefined) {
      box.append(el("p", "retry", `LiveKit asks to wait: try again in ${entry.retry} s (Retry-After: ${entry.retry}).`));
    }
    if (entry.signin) {
      const p = el("p", "hint");
      const link = el("a", "", "Sign in again");
      link.href = SIGNIN;
      p.append(link);
      box.append(p);
    }
    statusArea.replaceChildren(box);
    if (historyList) {
      historyList.querySelector(".empty")?.remove();
      // The history keeps the answer itself (code and sentence), not the explanations.
      const item = el("li", "log-" + entry.kind);
      item.append(el("time", "", clock()), " ", line.textContent);
      historyList.prepend(item);
      while (historyList.children.length > HISTORY_MAX) {
        historyList.lastElementChild.remove();
      }
    }
  }

  async function readJson(response) {
    const type = response.headers.get("Content-Type") || "";
    if (!type.includes("json")) {
      return null;
    }
    try {
      return await response.json();
    } catch (error) {
      return null;
    }
  }

  function retryAfter(response) {
    const seconds = Number.parseInt(response.headers.get("Retry-After") || "", 10);
    return Number.isFinite(seconds) && seconds >= 0 ? seconds : null;
  }

  /* The extension's error, as it words it: {code, sentence, hint, retry, signin}. */
  function failure(response, data) {
    const known = data && typeof data.code === "string" && typeof data.error === "string";
    const code = known ? data.code : `HTTP ${response.status}`;
    return {
      kind: "error",
      code: code,
      sentence: known ? data.error : "The app answered without the extension's JSON error body.",
      hint: HINTS[code] || "",
      retry: response.status === 503 ? retryAfter(response) : null,
      signin: response.status === 401,
    };
  }

  function unreachable(error) {
    return {
      kind: "error",
      code: "NETWORK",
      sentence: `The app could not be reached (${error.message || error}).`,
      hint: "Check that the example app is still running.",
    };
  }

  /* ------------------------------------------------------------------ writes */

  /* One JSON write to the extension: reports the outcome, refreshes the list, returns the
   * answer's body on success and null otherwise. `success` words a 200's body. */
  async function moderate(method, path, body, success) {
    let response;
    let data;
    try {
      response = await fetch(API + path, {
        method: method,
        credentials: "same-origin",
        headers: { "Content-Type": "application/json", Accept: "application/json" },
        body: JSON.stringify(body),
      });
      data = await readJson(response);
    } catch (error) {
      report(unreachable(error));
      return null;
    }
    if (response.ok) {
      report({ kind: "ok", sentence: success(data || {}) });
    } else {
      report(failure(response, data));
      if (response.status === 401) {
        stopRefreshing();
      }
    }
    if (ROOM) {
      refresh();
    }
    return response.ok ? data : null;
  }

  /* ------------------------------------------------------------------ buttons */

  const busy = new Set();

  function who(person) {
    return person.name && person.name !== person.identity ? `${person.name} (${person.identity})` : person.identity;
  }

  function sourceName(track) {
    return SOURCES[track.source] || track.name || "Unknown track";
  }

  function markBusy(key, on) {
    for (const button of main.querySelectorAll("button[data-key]")) {
      if (button.dataset.key === key) {
        button.setAttribute("aria-disabled", on ? "true" : "false");
        button.classList.toggle("busy", on);
      }
    }
  }

  /* A real <button>, labelled for screen readers; aria-disabled (not disabled) while its
   * request runs, so keyboard focus stays on it. */
  function actionButton(key, text, label, className, run) {
    const button = el("button", className, text);
    button.type = "button";
    button.dataset.key = key;
    button.setAttribute("aria-label", label);
    if (busy.has(key)) {
      button.setAttribute("aria-disabled", "true");
      button.classList.add("busy");
    }
    button.addEventListener("click", async () => {
      if (busy.has(key)) {
        return;
      }
      busy.add(key);
      markBusy(key, true);
      try {
        await run();
      } finally {
        busy.delete(key);
        markBusy(key, false);
      }
    });
    return button;
  }

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
            { room_name: ROOM, participant_identity: person.identity, track_sid: track.sid, muted: !track.muted },
            (answer) =>
              `${who(person)}: ${sourceName(track).toLowerCase()} ${answer.muted ? "muted" : "unmuted"} ` +
              `(LiveKit reports muted: ${answer.muted}).`,
          ),
      ),
    ];
  }

  /* Buttons per participant. */
  const PARTICIPANT_ACTIONS = [
    (person) =>
      actionButton(`remove:${person.identity}`, "Remove", `Remove ${who(person)} from the room`, "danger", () =>
        moderate(
          "DELETE",
          "/participant",
          { room_name: ROOM, participant_identity: person.identity },
          () => `Removed ${who(person)} from ${ROOM}.`,
        ),
      ),
  ];

  /* ------------------------------------------------------------------ the list */

  const rows = document.getElementById("participant-rows");
  const summary = document.getElementById("summary");
  const heading = document.getElementById("people-h");
  const autoRefresh = document.getElementById("auto-refresh");
  const refreshButton = document.getElementById("refresh");

  function byJoinThenIdentity(a, b) {
    return (a.joined_at || 0) - (b.joined_at || 0) || (a.identity < b.identity ? -1 : a.identity > b.identity ? 1 : 0);
  }

  function bySource(a, b) {
    const rank = (t) => (SOURCE_ORDER.indexOf(t.source) + SOURCE_ORDER.length + 1) % (SOURCE_ORDER.length + 1);
    return rank(a) - rank(b) || (a.sid < b.sid ? -1 : 1);
  }

  function cell(tag, label, role) {
    const node = el(tag);
    node.dataset.label = label;
    node.setAttribute("role", role);
    return node;
  }

  function participantRow(person) {
    const row = el("tr");
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
      actions.append(make(person));
    }
    actionsCell.append(actions);

    row.append(nameCell, tracksCell, actionsCell);
    return row;
  }

  let shown = null; // what the table shows, as JSON: no rebuild when nothing changed
  let lastSummary = "Not loaded yet";

  function render(participants) {
    const people = [...participants].sort(byJoinThenIdentity);
    const count = people.length === 1 ? "1 participant" : `${people.length} participants`;
    lastSummary = `${count} · updated ${clock()}`;
    summary.textContent = lastSummary;
    const signature = JSON.stringify(people);
    if (signature === shown) {
      return;
    }
    shown = signature;
    // Rebuilding would drop keyboard focus: put it back on the same button, or, when its
    // participant is gone, on the section's heading.
    const active = document.activeElement;
    const focusedKey = active && rows.contains(active) ? active.dataset.key : undefined;
    rows.replaceChildren(...people.map(participantRow));
    if (people.length === 0) {
      const row = el("tr");
      const empty = el("td", "quiet", "Nobody is in this room right now.");
      empty.colSpan = 3;
      row.append(empty);
      rows.append(row);
    }
    if (active && rows.contains(active) === false && focusedKey !== undefined) {
      const again = [...rows.querySelectorAll("button[data-key]")].find((b) => b.dataset.key === focusedKey);
      (again || heading).focus();
    }
  }

  function clearRows(text) {
    shown = null;
    const row = el("tr");
    const note = el("td", "quiet", text);
    note.colSpan = 3;
    row.append(note);
    rows.replaceChildren(row);
  }

  let timer = null;
  let inFlight = false;
  let again = false;
  let listError = null; // the code of the listing's last failure, reported once

  function schedule(ms) {
    clearTimeout(timer);
    timer = autoRefresh && autoRefresh.checked ? setTimeout(refresh, ms) : null;
  }

  function stopRefreshing() {
    clearTimeout(timer);
    timer = null;
    if (autoRefresh) {
      autoRefresh.checked = false;
    }
  }

  async function refresh() {
    if (!ROOM || !rows) {
      return;
    }
    if (inFlight) {
      again = true; // one more right after, so an action's effect is never missed
      return;
    }
    inFlight = true;
    clearTimeout(timer);
    let wait = REFRESH_MS;
    try {
      const response = await fetch(`${API}/participants?room_name=${encodeURIComponent(ROOM)}`, {
        credentials: "same-origin",
        headers: { Accept: "application/json" },
        cache: "no-store",
      });
      const data = await readJson(response);
      if (response.ok && data && Array.isArray(data.participants)) {
        render(data.participants);
        if (listError !== null) {
          listError = null;
          report({ kind: "info", sentence: `LiveKit answers again: the list of ${ROOM} is up to date.` });
        }
      } else {
        const problem = failure(response, data);
        if (problem.code !== listError) {
          listError = problem.code;
          report(problem);
        }
        if (response.status === 503) {
          wait = Math.max(REFRESH_MS, (problem.retry || 0) * 1000);
          summary.textContent = `${lastSummary} · LiveKit did not answer; next try in ${wait / 1000} s`;
        } else if ([401, 403, 404].includes(response.status)) {
          clearRows(`No participants shown: ${problem.code}.`);
          summary.textContent = `Not listed (${problem.code}) · automatic refresh stopped; use "Refresh now" to try again`;
          stopRefreshing();
        }
      }
    } catch (error) {
      if (listError !== "NETWORK") {
        listError = "NETWORK";
        report(unreachable(error));
      }
    } finally {
      inFlight = false;
      if (again) {
        again = false;
        refresh();
      } else {
        schedule(wait);
      }
    }
  }

  if (refreshButton) {
    refreshButton.addEventListener("click", () => {
      listError = null; // report the answer again, whatever it is
      refresh();
    });
  }
  if (autoRefresh) {
    autoRefresh.addEventListener("change", () => {
      if (autoRefresh.checked) {
        refresh();
      } else {
        stopRefreshing();
      }
    });
  }
  refresh();
})();
