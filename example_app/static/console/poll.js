/* What the page knows comes from polling the routes: GET participants (tracks and each
 * participant's permission), GET bans and GET lobby, together every 2 s, and sooner while a banned
 * participant is in the room. */

import { failure, getJson, unreachable } from "./api.js";
import { refreshAudit } from "./audit.js";
import { bansFailed, renderBans } from "./bans.js";
import { watchIntruders, watching } from "./intruders.js";
import { refreshLobby } from "./lobby.js";
import { REFRESH_MS, WATCH_MS, page } from "./page.js";
import { clearRows, renderParticipants } from "./participants.js";
import { report } from "./report.js";
import { state } from "./state.js";

function schedule(ms) {
  clearTimeout(state.poll.timer);
  state.poll.timer = page.autoRefresh && page.autoRefresh.checked ? setTimeout(refresh, ms) : null;
}

export function stopRefreshing() {
  clearTimeout(state.poll.timer);
  state.poll.timer = null;
  if (page.autoRefresh) {
    page.autoRefresh.checked = false;
  }
}

/* Lists both again now (or right after the listing in flight) and schedules the next poll. */
export async function refresh() {
  const poll = state.poll;
  if (!page.room || !page.rows) {
    return;
  }
  if (poll.inFlight) {
    poll.again = true;
    return;
  }
  poll.inFlight = true;
  clearTimeout(poll.timer);
  let wait = REFRESH_MS;
  // Both lists at once; a write finishing in between could show one before, one after it,
  // so only a listing taken with no write under way or begun is compared for intruders.
  const epoch = state.writes.started;
  const quiet = state.writes.running === 0;
  const bansAnswer = page.banList ? getJson("/bans").catch((error) => ({ error: error })) : null;
  const lobbyListed = refreshLobby();
  const audited = refreshAudit(); // never throws: it says what went wrong in its own panel
  try {
    const { response, data } = await getJson("/participants");
    const listed = response.ok && data && Array.isArray(data.participants);
    let bansKnown = false;
    if (bansAnswer) {
      const answer = await bansAnswer;
      if (answer.error) {
        bansFailed(unreachable(answer.error), listed);
      } else if (answer.response.ok && answer.data && Array.isArray(answer.data.bans)) {
        state.bans.error = null;
        bansKnown = true;
        state.bans.current = new Map(answer.data.bans.map((ban) => [ban.participant_identity, ban]));
        renderBans(answer.data.bans);
      } else {
        bansFailed(failure(answer.response, answer.data), listed);
      }
    }
    if (listed) {
      renderParticipants(data.participants, state.bans.current);
      if (bansKnown && quiet && epoch === state.writes.started) {
        watchIntruders(state.bans.current);
      }
      if (watching()) {
        wait = WATCH_MS; // until they are out, or the page has said the webhook is not working
      }
      if (poll.error !== null) {
        poll.error = null;
        report({ kind: "info", sentence: `LiveKit answers again: the list of ${page.room} is up to date.` });
      }
    } else {
      const problem = failure(response, data);
      if (problem.code !== poll.error) {
        poll.error = problem.code;
        report(problem);
      }
      if (response.status === 503) {
        // The last list stays, marked stale; the next try waits as long as LiveKit asked.
        wait = Math.max(REFRESH_MS, (problem.retry || 0) * 1000);
        page.summary.textContent = `${state.participants.summary} · LiveKit did not answer; next try in ${wait / 1000} s`;
      } else if ([401, 403, 404].includes(response.status)) {
        // Asking again would get the same answer: only the moderator's "Refresh now" does.
        clearRows(`No participants shown: ${problem.code}.`);
        page.summary.textContent = `Not listed (${problem.code}) · automatic refresh stopped; use "Refresh now" to try again`;
        stopRefreshing();
      }
    }
  } catch (error) {
    if (poll.error !== "NETWORK") {
      poll.error = "NETWORK";
      report(unreachable(error));
    }
  } finally {
    await lobbyListed;
    await audited;
    poll.inFlight = false;
    if (poll.again) {
      poll.again = false;
      refresh();
    } else {
      schedule(wait);
    }
  }
}

/* "Refresh now": lists at once and reports the answer again, whatever it is. */
export function refreshNow() {
  state.poll.error = null;
  state.bans.error = null;
  refresh();
}
