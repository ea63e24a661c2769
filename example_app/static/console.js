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
 * Where moderation goes: PARTICIPANT_ACTIONS (buttons per participant: lock the microphone,
 * ban, remove), trackButtons (buttons per track: mute), the room-wide form (mute everyone's
 * microphone but some), the bans list (lift), HINTS (explanations per error code) and
 * moderate() (one JSON write, its report and a refresh).
 *
 * What the page knows comes from polling the routes: GET participants (tracks and each
 * participant's permission) and GET bans, together every 2 s. A banned participant seen in
 * the room (their app rejoined with a still-valid token) is marked and noted in the history;
 * LiveKit's webhook to the extension should have them removed at once, and the page checks
 * again sooner while one is in.
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
  const WATCH_MS = 500; // while a banned participant is in the room
  const STILL_IN_MS = 10000; // then the webhook is not reaching the app: say so
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
    BAN_STORE_UNAVAILABLE:
      "The app could not read or write its bans (its SQLite file or Redis). Nothing was done: try again shortly.",
    PERMISSION_UPDATE_FAILED: "LiveKit refused the change of permission; the participant's permission is unchanged.",
    ROOM_MUTE_FAILED: "LiveKit did not list the room's participants, so nobody was muted or unmuted.",
    PAYLOAD_TOO_LARGE: "The request was too large (over 64 KiB).",
  };

  /* Why one track of a room mute could not be changed (the answer's failed[].code). */
  const TRACK_FAILURES = {
    TRACK_NOT_FOUND: "unpublished in the meantime",
    PARTICIPANT_NOT_FOUND: "left the room in the meantime",
    LIVEKIT_UNAVAILABLE: "LiveKit did not answer for this track; try again",
    REMOTE_UNMUTE_DISABLED: "the LiveKit server does not allow unmuting others",
    MUTE_FAILED: "LiveKit refused",
  };

  const SOURCES = {
    microphone: "Microphone",
    camera: "Camera",
    screen_share: "Screen share",
    screen_share_audio: "Screen share audio",
  };
  const SOURCE_ORDER = ["microphone", "camera", "screen_share", "screen_share_audio"];
  /* The sources a permission can name, in LiveKit's order. */
  const ALL_SOURCES = ["camera", "microphone", "screen_share", "screen_share_audio"];

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

  function plural(count, noun) {
    return `${count} ${noun}${count === 1 ? "" : "s"}`;
  }

  /* A moment the extension answered (RFC 3339) in the moderator's local time. */
  function when(iso) {
    const date = new Date(iso);
    if (Number.isNaN(date.getTime())) {
      return iso;
    }
    const time = date.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" });
    if (date.toDateString() === new Date().toDateString()) {
      return time;
    }
    return `${date.toLocaleDateString([], { weekday: "short", day: "numeric", month: "short" })} ${time}`;
  }

  /* One line on top of the history; a line with `key` replaces the earlier line of that key
   * (a story that goes on, such as a banned participant's rejoins), so it does not flood. */
  function addToHistory(kind, text, key) {
    if (!historyList) {
      return;
    }
    historyList.querySelector(".empty")?.remove();
    if (key) {
      [...historyList.children].find((item) => item.dataset.key === key)?.remove();
    }
    const item = el("li", "log-" + kind);
    if (key) {
      item.dataset.key = key;
    }
    item.append(el("time", "", clock()), " ", text);
    historyList.prepend(item);
    while (historyList.children.length > HISTORY_MAX) {
      historyList.lastElementChild.remove();
    }
  }

  /* Something the page saw happen by itself (not an answer to the moderator's action): into
   * the history, without replacing the last action's report; read out when `loud`. */
  const announcer = document.getElementById("announce");
  function note(kind, text, key, loud) {
    addToHistory(kind, text, key);
    if (announcer && loud) {
      announcer.textContent = text;
    }
  }

  /* The report of an action far down the page (a long list, the room's form, the bans) would
   * be out of view at the top: a copy floats at the bottom of the window for a few seconds.
   * It is for the eyes only (the status area above is what screen readers hear), and clicks go
   * through it, so it never hides a control. */
  const toast = el("div", "toast");
  toast.setAttribute("aria-hidden", "true");
  toast.hidden = true;
  document.body.append(toast);
  let toastTimer = null;

  function statusInView() {
    const box = statusArea.getBoundingClientRect();
    return box.bottom > 0 && box.top < window.innerHeight;
  }

  function hideToast() {
    clearTimeout(toastTimer);
    toast.hidden = true;
  }

  function echo(box, kind) {
    if (statusInView()) {
      hideToast();
      return;
    }
    const copy = box.cloneNode(true);
    copy.querySelectorAll("a").forEach((link) => link.replaceWith(link.textContent));
    toast.replaceChildren(copy);
    toast.hidden = false;
    clearTimeout(toastTimer);
    toastTimer = setTimeout(hideToast, kind === "error" ? 12000 : 6000);
  }

  window.addEventListener(
    "scroll",
    () => {
      if (!toast.hidden && statusInView()) {
        hideToast();
      }
    },
    { passive: true },
  );

  /* A report: {kind: "ok" | "error" | "info", code?, sentence, hint?, details?, retry?, signin?}. */
  function report(entry) {
    const box = el("div", "report " + entry.kind);
    const line = el("p", "line");
    if (entry.code) {
      line.append(el("strong", "code", entry.code), ": ");
    }
    line.append(entry.sentence);
    box.append(line);
    if (entry.details && entry.details.length) {
      const list = el("ul", "details");
      for (const detail of entry.details) {
        list.append(el("li", "", detail));
      }
      box.append(list);
    }
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
    echo(box, entry.kind);
    // The history keeps the answer itself (code and sentence), not the explanations.
    addToHistory(entry.kind, line.textContent);
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

  /* The extension's error, as it words it: {code, sentence, details, hint, retry, signin}.
   * `hints` words a code for this action where the general HINTS would mislead. */
  function failure(response, data, hints) {
    const known = data && typeof data.code === "string" && typeof data.error === "string";
    const code = known ? data.code : `HTTP ${response.status}`;
    const details = [];
    if (known && data.details && typeof data.details === "object") {
      for (const [field, messages] of Object.entries(data.details)) {
        details.push(`${field}: ${[].concat(messages).join(" ")}`);
      }
    }
    return {
      kind: "error",
      code: code,
      sentence: known ? data.error : "The app answered without the extension's JSON error body.",
      details: details,
      hint: (hints && hints[code]) || HINTS[code] || "",
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

  let writing = 0; // writes under way
  let writes = 0; // writes started so far: a listing taken meanwhile may be half before, half after

  /* One JSON write to the extension: reports the outcome, refreshes the lists, returns the
   * answer's body on success and null otherwise. `success` words a 2xx's body: a sentence,
   * or {sentence, details?, kind?}. `hints` explain codes the way this action means them. */
  async function moderate(method, path, body, success, hints) {
    writing += 1;
    writes += 1;
    let answer;
    try {
      answer = await write(method, path, body, success, hints);
    } finally {
      writing -= 1;
    }
    if (ROOM) {
      refresh();
    }
    return answer;
  }

  async function write(method, path, body, success, hints) {
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
      const said = success(data || {});
      report(typeof said === "string" ? { kind: "ok", sentence: said } : { kind: "ok", ...said });
    } else {
      report(failure(response, data, hints));
      if (response.status === 401) {
        stopRefreshing();
      }
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

  /* Runs `run` on a click of `button`, once at a time per key; aria-disabled (not disabled)
   * while its request runs, so keyboard focus stays on it. */
  function wire(button, key, run) {
    button.dataset.key = key;
    if (busy.has(key)) {
      button.setAttribute("aria-disabled", "true");
      button.classList.add("busy");
    }
    button.addEventListener("click", async (event) => {
      event.preventDefault();
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

  /* A real <button>, labelled for screen readers. */
  function actionButton(key, text, label, className, run) {
    const button = el("button", className, text);
    button.type = "button";
    button.setAttribute("aria-label", label);
    return wire(button, key, run);
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

  /* ---- the microphone lock: a permission, not a mute */

  /* Whether LiveKit lets the participant publish a microphone (an empty list: every source). */
  function micAllowed(permission) {
    const listed = permission.can_publish_sources || [];
    return permission.can_publish && (listed.length === 0 || listed.includes("microphone"));
  }

  /* The permission fields to send so that only the microphone is revoked (allow: false) or
   * granted (allow: true); the route keeps every field not sent. */
  function micChange(permission, allow) {
    const listed = (permission.can_publish_sources || []).filter((s) => ALL_SOURCES.includes(s));
    if (!allow) {
      const rest = (listed.length ? listed : ALL_SOURCES).filter((s) => s !== "microphone");
      // An empty list would mean "every source" again: when the microphone is the only source
      // allowed, stopping publishing is what takes it away.
      return rest.length ? { can_publish_sources: rest } : { can_publish: false };
    }
    if (!permission.can_publish) {
      return { can_publish: true, can_publish_sources: ["microphone"] };
    }
    const more = ALL_SOURCES.filter((s) => s === "microphone" || listed.includes(s));
    // Every source named again: back to the empty list, what a join token grants (and what a
    // lock from it took away, tracks of unknown source included).
    return { can_publish_sources: more.length === ALL_SOURCES.length ? [] : more };
  }

  function publishable(permission) {
    if (!permission.can_publish) {
      return "may publish nothing";
    }
    const listed = permission.can_publish_sources || [];
    if (listed.length === 0) {
      return "may publish every source";
    }
    return "may publish only " + listed.map((s) => (SOURCES[s] || s).toLowerCase()).join(", ");
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
          { room_name: ROOM, participant_identity: person.identity, ...micChange(person.permission, !allowed) },
          (answer) => {
            const gone = (answer.unpublished_tracks || []).map(
              (t) => `${(SOURCES[t.source] || t.source).toLowerCase()} ${t.track_sid}`,
            );
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

  /* ---- bans */

  const banDialog = document.getElementById("ban-dialog");
  const banForm = document.getElementById("ban-form");
  const banWho = document.getElementById("ban-who");
  const banDuration = document.getElementById("ban-duration");
  const banReason = document.getElementById("ban-reason");
  const banCount = document.getElementById("ban-reason-count");
  const bansHeading = document.getElementById("bans-h");
  let banTarget = null;

  function countReason() {
    banCount.textContent = `${banReason.value.length} of ${banReason.maxLength} characters`;
  }

  function focusKey(key, fallback) {
    const target = [...main.querySelectorAll("[data-key]")].find((node) => node.dataset.key === key);
    (target || fallback)?.focus();
  }

  function openBan(person) {
    banTarget = person;
    banWho.textContent = who(person);
    banDuration.selectedIndex = 0;
    banReason.value = "";
    countReason();
    banDialog.showModal();
    banDuration.focus();
  }

  function submitBan() {
    const person = banTarget;
    const reason = banReason.value.trim();
    banDialog.close("ban");
    return moderate(
      "POST",
      "/bans",
      {
        room_name: ROOM,
        participant_identity: person.identity,
        duration_seconds: Number.parseInt(banDuration.value, 10),
        reason: reason || null,
      },
      (answer) =>
        `Banned ${who(person)} from ${ROOM} until ${when(answer.expires_at)}; ` +
        `removed from the room: ${answer.removed ? "yes" : "no, they were not in it"}.` +
        (answer.reason ? ` Reason: ${answer.reason}` : ""),
    );
  }

  if (banDialog && banForm) {
    banReason.addEventListener("input", countReason);
    banForm.addEventListener("submit", (event) => {
      event.preventDefault();
      if (banTarget && banDialog.open) {
        submitBan();
      }
    });
    document.getElementById("ban-cancel").addEventListener("click", () => banDialog.close("cancel"));
    // Focus goes back to the participant's "Ban…" button; once their row is gone (banned),
    // the list's redraw moves it to the list's heading, as for a removal.
    banDialog.addEventListener("close", () => {
      if (banTarget) {
        focusKey(`ban:${banTarget.identity}`, heading);
      }
    });
  }

  function banButton(person) {
    const button = actionButton(`ban:${person.identity}`, "Ban…", `Ban ${who(person)} from the room…`, "danger", () => {
      openBan(person);
    });
    button.setAttribute("aria-haspopup", "dialog");
    return button;
  }

  /* Buttons per participant. */
  const PARTICIPANT_ACTIONS = [
    (person) => (person.permission ? micLockButton(person) : null),
    (person) => (banDialog ? banButton(person) : null),
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

  /* Replaces a container's children; keyboard focus stays on the control with the same key,
   * or, when it is gone, moves to `fallback`. */
  function replaceKeepingFocus(container, nodes, fallback) {
    const active = document.activeElement;
    const focusedKey = active && container.contains(active) ? active.dataset.key : undefined;
    const hadFocus = active && container.contains(active);
    container.replaceChildren(...nodes);
    if (hadFocus && !container.contains(document.activeElement)) {
      const again = [...container.querySelectorAll("[data-key]")].find((n) => n.dataset.key === focusedKey);
      (again || fallback)?.focus();
    }
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

  let shown = null; // what the table shows, as JSON: no rebuild when nothing changed
  let lastSummary = "Not loaded yet";
  let present = []; // the participants of the last listing

  function render(participants, banned) {
    const people = [...participants].sort(byJoinThenIdentity);
    present = people;
    const count = people.length === 1 ? "1 participant" : `${people.length} participants`;
    lastSummary = `${count} · updated ${clock()}`;
    summary.textContent = lastSummary;
    renderExcept(people);
    const signature = JSON.stringify([people, people.map((p) => banned.get(p.identity) || null)]);
    if (signature === shown) {
      return;
    }
    shown = signature;
    const drawn = people.map((person) => participantRow(person, banned.get(person.identity)));
    if (people.length === 0) {
      const row = el("tr");
      const empty = el("td", "quiet", "Nobody is in this room right now.");
      empty.colSpan = 3;
      row.append(empty);
      drawn.push(row);
    }
    replaceKeepingFocus(rows, drawn, heading);
  }

  function clearRows(text) {
    shown = null;
    const row = el("tr");
    const note = el("td", "quiet", text);
    note.colSpan = 3;
    row.append(note);
    rows.replaceChildren(row);
  }

  /* ------------------------------------------------------------------ the whole room */

  const roomForm = document.getElementById("room-mute");
  const exceptBox = document.getElementById("except");
  const spared = new Set(); // identities ticked in "Except"; kept while they are away
  let exceptShown = null;

  function renderExcept(people) {
    if (!exceptBox) {
      return;
    }
    const signature = JSON.stringify(people.map((p) => [p.identity, p.name]));
    if (signature === exceptShown) {
      return;
    }
    exceptShown = signature;
    const boxes = people.map((person) => {
      const label = el("label", "check");
      const box = el("input");
      box.type = "checkbox";
      box.name = "except";
      box.value = person.identity;
      box.dataset.key = `except:${person.identity}`;
      box.checked = spared.has(person.identity);
      box.addEventListener("change", () => {
        if (box.checked) {
          spared.add(person.identity);
        } else {
          spared.delete(person.identity);
        }
      });
      label.append(box, " ", who(person));
      return label;
    });
    if (boxes.length === 0) {
      boxes.push(el("p", "quiet", "Nobody is in the room."));
    }
    replaceKeepingFocus(exceptBox, boxes, document.getElementById("room-h"));
  }

  function roomMuteReport(answer, muted, except) {
    const verb = muted ? "Muted" : "Unmuted";
    const done = answer.tracks || [];
    const failed = answer.failed || [];
    const confirmed = done.filter((t) => t.muted === muted).length;
    const alone = except.length ? `, leaving ${except.join(", ")} as they are` : "";
    let sentence;
    if (done.length === 0 && failed.length === 0) {
      sentence = `No microphone to ${muted ? "mute" : "unmute"} in ${ROOM}${alone}.`;
    } else {
      sentence = `${verb} ${plural(done.length, "microphone")} in ${ROOM}${alone} (LiveKit reports ${confirmed} ${muted ? "muted" : "unmuted"}).`;
    }
    if (failed.length === 0) {
      return sentence;
    }
    return {
      kind: "error",
      sentence: `${sentence} ${plural(failed.length, "microphone")} could not be changed:`,
      details: failed.map(
        (f) =>
          `${f.participant_identity} · ${(SOURCES[f.source] || f.source).toLowerCase()} ${f.track_sid}: ` +
          `${f.code}${TRACK_FAILURES[f.code] ? ` (${TRACK_FAILURES[f.code]})` : ""}`,
      ),
      hint: failed.some((f) => f.code === "REMOTE_UNMUTE_DISABLED") ? HINTS.REMOTE_UNMUTE_DISABLED : "",
    };
  }

  function muteRoom(muted) {
    // Only those still in the room: a name ticked before they left is kept for their return.
    const here = new Set(present.map((p) => p.identity));
    const except = [...spared].filter((identity) => here.has(identity)).sort();
    return moderate(
      "POST",
      "/room/mute",
      { room_name: ROOM, muted: muted, sources: ["microphone"], except_identities: except },
      (answer) => roomMuteReport(answer, muted, except),
    );
  }

  if (roomForm) {
    const [muteAll, unmuteAll] = roomForm.querySelectorAll("#room-actions button");
    wire(muteAll, "room-mute", () => muteRoom(true));
    wire(unmuteAll, "room-unmute", () => muteRoom(false));
    roomForm.addEventListener("submit", (event) => event.preventDefault());
  }

  /* ------------------------------------------------------------------ bans */

  const banList = document.getElementById("ban-list");
  const bansSummary = document.getElementById("bans-summary");
  let bansShown = null;
  let bansError = null;

  const LIFT_HINTS = {
    PARTICIPANT_NOT_FOUND:
      "There is no active ban of theirs here any more: it ended or was lifted already (or the room is not yours).",
  };

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
          { room_name: ROOM, participant_identity: ban.participant_identity },
          () => `Lifted the ban of ${ban.participant_identity} in ${ROOM}: they may join again.`,
          LIFT_HINTS,
        ),
    );
    item.append(text, lift);
    return item;
  }

  function renderBans(bans) {
    bansSummary.textContent = bans.length
      ? `${plural(bans.length, "active ban")} · updated ${clock()}`
      : `Nobody is banned from ${ROOM} · updated ${clock()}`;
    const signature = JSON.stringify(bans);
    if (signature === bansShown) {
      return;
    }
    bansShown = signature;
    replaceKeepingFocus(banList, bans.map(banItem), bansHeading);
  }

  function bansFailed(problem, listed) {
    bansShown = null;
    banList.replaceChildren();
    bansSummary.textContent = `Bans not listed (${problem.code}).`;
    // Reported once; not when the participants' listing already reported the room's problem.
    if (listed && problem.code !== bansError) {
      report(problem);
    }
    bansError = problem.code;
  }

  /* Banned participants seen in the room: identity -> {since, warned, label}; and how often
   * each came back under their current ban. */
  const intruders = new Map();
  const rejoins = new Map();

  function watchIntruders(banned) {
    const here = new Map(present.map((p) => [p.identity, p]));
    for (const [identity, person] of here) {
      const ban = banned.get(identity);
      if (ban && !intruders.has(identity)) {
        const count = (rejoins.get(identity) || 0) + 1;
        rejoins.set(identity, count);
        intruders.set(identity, { since: Date.now(), warned: false, label: who(person) });
        const times = count === 1 ? "" : ` again (${count} times)`;
        note(
          "error",
          `${who(person)} rejoined ${ROOM}${times} although banned until ${when(ban.expires_at)}: ` +
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
          `${seen.label} rejoined ${ROOM}${times} although banned until ${when(ban.expires_at)}, and is out ` +
            `again${count === 1 ? "" : " each time"}: the ban keeps them out.`,
          `rejoin:${identity}`,
          count === 1,
        );
      } else if (!seen.warned && Date.now() - seen.since > STILL_IN_MS) {
        seen.warned = true;
        note(
          "error",
          `${seen.label} is still in ${ROOM} although banned. LiveKit's webhook does not seem to reach ` +
            `this app (${API}/webhook): remove them by hand, and check LiveKit's webhook settings.`,
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

  /* ------------------------------------------------------------------ polling */

  let timer = null;
  let inFlight = false;
  let again = false;
  let listError = null; // the code of the listing's last failure, reported once
  let lastBans = new Map(); // identity -> ban, from the last bans listing that worked

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

  async function getJson(path) {
    const response = await fetch(`${API}${path}?room_name=${encodeURIComponent(ROOM)}`, {
      credentials: "same-origin",
      headers: { Accept: "application/json" },
      cache: "no-store",
    });
    return { response: response, data: await readJson(response) };
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
    // Both lists at once; a write finishing in between could show one before, one after it.
    const epoch = writes;
    const quiet = writing === 0;
    const bansAnswer = banList ? getJson("/bans").catch((error) => ({ error: error })) : null;
    try {
      const { response, data } = await getJson("/participants");
      const listed = response.ok && data && Array.isArray(data.participants);
      let bansKnown = false;
      if (bansAnswer) {
        const answer = await bansAnswer;
        if (answer.error) {
          bansFailed(unreachable(answer.error), listed);
        } else if (answer.response.ok && answer.data && Array.isArray(answer.data.bans)) {
          bansError = null;
          bansKnown = true;
          lastBans = new Map(answer.data.bans.map((ban) => [ban.participant_identity, ban]));
          renderBans(answer.data.bans);
        } else {
          bansFailed(failure(answer.response, answer.data), listed);
        }
      }
      if (listed) {
        render(data.participants, lastBans);
        if (bansKnown && quiet && epoch === writes) {
          watchIntruders(lastBans);
        }
        if ([...intruders.values()].some((seen) => !seen.warned)) {
          wait = WATCH_MS; // until they are out, or the page has said the webhook is not working
        }
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
      bansError = null;
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
