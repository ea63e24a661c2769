/* The moderator's actions: one JSON write each, its report, and buttons that run one. */

import { failure, sendJson, unreachable } from "./api.js";
import { el } from "./dom.js";
import { page } from "./page.js";
import { report } from "./report.js";
import { state } from "./state.js";

/* Fired on <main> once a write has ended, with detail {status} (null when the app could not be
 * reached); main.js refreshes the lists on it. An event rather than a call into poll.js, since
 * the lists' redraw is what builds the buttons that write: a call would make a loop of imports. */
export const WROTE = "console:wrote";

/* One JSON write to the extension: reports the outcome, has the lists refreshed, returns the
 * answer's body on success and null otherwise. `success` words a 2xx's body: a sentence,
 * or {sentence, details?, kind?}. `hints` explain codes the way this action means them. */
export async function moderate(method, path, body, success, hints) {
  state.writes.running += 1;
  state.writes.started += 1;
  let outcome;
  try {
    outcome = await write(method, path, body, success, hints);
  } finally {
    state.writes.running -= 1;
  }
  page.main.dispatchEvent(new CustomEvent(WROTE, { detail: { status: outcome.status } }));
  return outcome.answer;
}

async function write(method, path, body, success, hints) {
  let response;
  let data;
  try {
    ({ response, data } = await sendJson(method, path, body));
  } catch (error) {
    report(unreachable(error));
    return { status: null, answer: null };
  }
  if (response.ok) {
    const said = success(data || {});
    report(typeof said === "string" ? { kind: "ok", sentence: said } : { kind: "ok", ...said });
  } else {
    report(failure(response, data, hints));
  }
  return { status: response.status, answer: response.ok ? data : null };
}

function markBusy(key, on) {
  for (const button of page.main.querySelectorAll("button[data-key]")) {
    if (button.dataset.key === key) {
      button.setAttribute("aria-disabled", on ? "true" : "false");
      button.classList.toggle("busy", on);
    }
  }
}

/* Runs `run` on a click of `button`, once at a time per key; aria-disabled (not disabled)
 * while its request runs, so keyboard focus stays on it. A button drawn anew while its key's
 * request runs (the lists redraw meanwhile) starts out busy too. */
export function wire(button, key, run) {
  button.dataset.key = key;
  if (state.busy.has(key)) {
    button.setAttribute("aria-disabled", "true");
    button.classList.add("busy");
  }
  button.addEventListener("click", async (event) => {
    event.preventDefault();
    if (state.busy.has(key)) {
      return;
    }
    state.busy.add(key);
    markBusy(key, true);
    try {
      await run();
    } finally {
      state.busy.delete(key);
      markBusy(key, false);
    }
  });
  return button;
}

/* A real <button>, labelled for screen readers. */
export function actionButton(key, text, label, className, run) {
  const button = el("button", className, text);
  button.type = "button";
  button.setAttribute("aria-label", label);
  return wire(button, key, run);
}
