/* Building and redrawing the page's nodes. Everything the server or LiveKit says goes in as
 * text (textContent), never as HTML: a participant's name is theirs to choose. */

import { page } from "./page.js";

export function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) {
    node.className = className;
  }
  if (text !== undefined) {
    node.textContent = text;
  }
  return node;
}

/* A table cell that keeps its column's name (data-label) for the narrow layout, and its ARIA
 * role, since that layout's CSS display would otherwise cost the table its semantics. */
export function cell(tag, label, role) {
  const node = el(tag);
  node.dataset.label = label;
  node.setAttribute("role", role);
  return node;
}

function byKey(root, key) {
  return [...root.querySelectorAll("[data-key]")].find((node) => node.dataset.key === key);
}

/* Focuses the control with `key` (compared as a string: identities may hold any character,
 * which a CSS selector would have to escape), or `fallback` when it is gone. */
export function focusKey(key, fallback) {
  (byKey(page.main, key) || fallback)?.focus();
}

/* Replaces a container's children; keyboard focus stays on the control with the same key,
 * or, when it is gone, moves to `fallback`. */
export function replaceKeepingFocus(container, nodes, fallback) {
  const active = document.activeElement;
  const focusedKey = active && container.contains(active) ? active.dataset.key : undefined;
  const hadFocus = active && container.contains(active);
  container.replaceChildren(...nodes);
  if (hadFocus && !container.contains(document.activeElement)) {
    (byKey(container, focusedKey) || fallback)?.focus();
  }
}
