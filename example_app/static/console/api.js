/* The extension's REST routes, called with fetch and the session cookie (credentials:
 * "same-origin"): the page holds no token, the app's request_loader maps the signed-in session
 * to the tenant. Writes are sent with "Content-Type: application/json"; the extension refuses
 * any other body with 415 before it looks at the caller, which is what keeps another site's
 * <form> (text/plain, urlencoded, multipart: no CORS preflight) from moderating with the
 * moderator's cookie. */

import { page } from "./page.js";
import { HINTS } from "./text.js";

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

/* A listing of the room (`params`: more of its query string): {response, data}; throws when
 * the app cannot be reached. */
export async function getJson(path, params) {
  const query = new URLSearchParams({ room_name: page.room, ...(params || {}) });
  const response = await fetch(`${page.api}${path}?${query}`, {
    credentials: "same-origin",
    headers: { Accept: "application/json" },
    cache: "no-store",
  });
  return { response: response, data: await readJson(response) };
}

/* One JSON write: {response, data}; throws when the app cannot be reached. */
export async function sendJson(method, path, body) {
  const response = await fetch(page.api + path, {
    method: method,
    credentials: "same-origin",
    headers: { "Content-Type": "application/json", Accept: "application/json" },
    body: JSON.stringify(body),
  });
  return { response: response, data: await readJson(response) };
}

/* The extension's error, as it words it: {code, sentence, details, hint, retry, signin}.
 * `hints` words a code for this action where the general HINTS would mislead. */
export function failure(response, data, hints) {
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

export function unreachable(error) {
  return {
    kind: "error",
    code: "NETWORK",
    sentence: `The app could not be reached (${error.message || error}).`,
    hint: "Check that the example app is still running.",
  };
}
