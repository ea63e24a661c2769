/* Asking before an action that cannot be undone from here (remove, and the room-wide mutes):
 * one modal <dialog>, opened on its Cancel button so that a stray Enter or Space cancels.
 * Escape cancels too (the dialog's own "cancel"); Confirm is the only way to go ahead. */

import { focusKey } from "./dom.js";
import { page } from "./page.js";

let pending = null;

/* Resolves true when the moderator confirms, false when they cancel (Cancel, Escape). Focus
 * then goes back to the control that asked (by its key: the lists may have been redrawn
 * meanwhile), or `fallback` once that is gone. */
export function confirmAction({ title, text, confirm, key, fallback }) {
  const dialog = page.confirmDialog;
  page.confirmTitle.textContent = title;
  page.confirmText.textContent = text;
  page.confirmButton.textContent = confirm;
  dialog.returnValue = "";
  dialog.showModal();
  page.confirmCancel.focus();
  return new Promise((resolve) => {
    pending = { resolve, key, fallback };
  });
}

export function wireConfirmDialog() {
  const dialog = page.confirmDialog;
  if (!dialog) {
    return;
  }
  page.confirmCancel.addEventListener("click", () => dialog.close("cancel"));
  dialog.addEventListener("close", () => {
    const asked = pending;
    pending = null;
    if (!asked) {
      return;
    }
    focusKey(asked.key, asked.fallback);
    asked.resolve(dialog.returnValue === "confirm");
  });
}
