/* The microphone lock: a permission, not a mute. A mute can be undone by the participant; a
 * lock takes away LiveKit's permission to publish the microphone at all. */

import { sourceWord } from "./text.js";

/* The sources a permission can name, in LiveKit's order. */
const ALL_SOURCES = ["camera", "microphone", "screen_share", "screen_share_audio"];

/* Whether LiveKit lets the participant publish a microphone (an empty list: every source). */
export function micAllowed(permission) {
  const listed = permission.can_publish_sources || [];
  return permission.can_publish && (listed.length === 0 || listed.includes("microphone"));
}

/* The permission fields to send so that only the microphone is revoked (allow: false) or
 * granted (allow: true); the route keeps every field not sent. */
export function micChange(permission, allow) {
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

export function publishable(permission) {
  if (!permission.can_publish) {
    return "may publish nothing";
  }
  const listed = permission.can_publish_sources || [];
  if (listed.length === 0) {
    return "may publish every source";
  }
  return "may publish only " + listed.map(sourceWord).join(", ");
}
