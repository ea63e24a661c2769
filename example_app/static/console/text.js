/* The console's words: explanations of the extension's error codes, the names of track
 * sources, and how times, counts and people are written. */

/* Explanations shown under the extension's own sentence, by error code. */
export const HINTS = {
  PARTICIPANT_NOT_FOUND:
    "The room does not exist, is not one of your tenant's rooms, or that person is no longer in it. " +
    "The extension answers all three the same way, so no one can find out which rooms other tenants have.",
  ROOM_NOT_FOUND:
    "The room does not exist or is not one of your tenant's rooms. " +
    "The extension answers both the same way, so no one can find out which rooms other tenants have.",
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
  LIVEKIT_UNAVAILABLE: "LiveKit could not be reached or refused to work. Nothing was changed: try again shortly.",
  LIVEKIT_OUTCOME_UNKNOWN:
    "LiveKit received the change but did not answer in time: it may have happened. The list shows what LiveKit reports.",
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
export const TRACK_FAILURES = {
  TRACK_NOT_FOUND: "unpublished in the meantime",
  PARTICIPANT_NOT_FOUND: "left the room in the meantime",
  LIVEKIT_UNAVAILABLE: "LiveKit did not answer for this track; try again",
  REMOTE_UNMUTE_DISABLED: "the LiveKit server does not allow unmuting others",
  MUTE_FAILED: "LiveKit refused",
};

export const SOURCES = {
  microphone: "Microphone",
  camera: "Camera",
  screen_share: "Screen share",
  screen_share_audio: "Screen share audio",
};
export const SOURCE_ORDER = ["microphone", "camera", "screen_share", "screen_share_audio"];

export function clock(date) {
  return (date || new Date()).toLocaleTimeString();
}

export function plural(count, noun) {
  return `${count} ${noun}${count === 1 ? "" : "s"}`;
}

/* A moment the extension answered (RFC 3339) in the moderator's local time. */
export function when(iso) {
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

export function who(person) {
  return person.name && person.name !== person.identity ? `${person.name} (${person.identity})` : person.identity;
}

export function sourceName(track) {
  return SOURCES[track.source] || track.name || "Unknown track";
}

/* A source as a sentence names it ("screen share"), unknown ones as LiveKit sent them. */
export function sourceWord(source) {
  return (SOURCES[source] || source).toLowerCase();
}
