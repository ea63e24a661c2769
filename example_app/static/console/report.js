/* Telling the moderator what happened: the aria-live #status area (the answer to their last
 * action, as the extension words it), a floating copy of it, and the notes of what the page
 * saw by itself (a banned participant back in the room). What was done, by whom, is the
 * extension's audit log (audit.js), not a list kept by this page. */

import { el } from "./dom.js";
import { NOTES_MAX, page } from "./page.js";
import { state } from "./state.js";
import { clock } from "./text.js";

/* One line on top of the notes; a line with `key` replaces the earlier line of that key
 * (a story that goes on, such as a banned participant's rejoins), so it does not flood. */
function addNote(kind, text, key) {
  const list = page.banNotes;
  if (!list) {
    return;
  }
  list.querySelector(".empty")?.remove();
  if (key) {
    [...list.children].find((item) => item.dataset.key === key)?.remove();
  }
  const item = el("li", "log-" + kind);
  if (key) {
    item.dataset.key = key;
  }
  item.append(el("time", "", clock()), " ", text);
  list.prepend(item);
  while (list.children.length > NOTES_MAX) {
    list.lastElementChild.remove();
  }
}

/* Something the page saw happen by itself (not an answer to the moderator's action): into
 * the notes, without replacing the last action's report; read out when `loud`. */
export function note(kind, text, key, loud) {
  addNote(kind, text, key);
  if (page.announcer && loud) {
    page.announcer.textContent = text;
  }
}

/* The report of an action far down the page (a long list, the room's form, the bans) would
 * be out of view at the top: a copy floats at the bottom of the window for a few seconds.
 * It is for the eyes only (the status area above is what screen readers hear), and clicks go
 * through it, so it never hides a control. */
export function mountToast() {
  const toast = el("div", "toast");
  toast.setAttribute("aria-hidden", "true");
  toast.hidden = true;
  document.body.append(toast);
  state.toast.node = toast;
  window.addEventListener(
    "scroll",
    () => {
      if (!toast.hidden && statusInView()) {
        hideToast();
      }
    },
    { passive: true },
  );
}

function statusInView() {
  const box = page.status.getBoundingClientRect();
  return box.bottom > 0 && box.top < window.innerHeight;
}

function hideToast() {
  clearTimeout(state.toast.timer);
  state.toast.node.hidden = true;
}

function echo(box, kind) {
  if (statusInView()) {
    hideToast();
    return;
  }
  const copy = box.cloneNode(true);
  copy.querySelectorAll("a").forEach((link) => link.replaceWith(link.textContent));
  state.toast.node.replaceChildren(copy);
  state.toast.node.hidden = false;
  clearTimeout(state.toast.timer);
  state.toast.timer = setTimeout(hideToast, kind === "error" ? 12000 : 6000);
}

/* A report: {kind: "ok" | "error" | "info", code?, sentence, hint?, details?, retry?, signin?}. */
export function report(entry) {
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
    link.href = page.signin;
    p.append(link);
    box.append(p);
  }
  page.status.replaceChildren(box);
  echo(box, entry.kind);
}
