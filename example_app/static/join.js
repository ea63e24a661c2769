/* The guest's page: knock on the room (POST /join/knock, the host's own route), every 2 s while
 * waiting, until a moderator admits (then the app gives the LiveKit token) or denies. */

const form = document.getElementById("join-form");
const status = document.getElementById("join-status");
const waitedLine = document.getElementById("join-waited");
const KNOCK_MS = 2000;
let timer = null;
let since = null;

function say(text, state) {
  status.textContent = text;
  status.dataset.state = state;
}

async function knock(room, name) {
  let response;
  let data = null;
  try {
    response = await fetch("/join/knock", {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", Accept: "application/json" },
      body: JSON.stringify({ room: room, name: name }),
    });
    data = await response.json();
  } catch (error) {
    say("The app could not be reached; trying again…", "error");
    timer = setTimeout(() => knock(room, name), KNOCK_MS);
    return;
  }
  if (!response.ok) {
    say(data && data.error ? data.error : `The app answered ${response.status}.`, "error");
    form.querySelector("button").disabled = false;
    return;
  }
  if (data.status === "waiting") {
    since = since || Date.now();
    say(`Waiting for a moderator to let you into ${data.room}…`, "waiting");
    waitedLine.textContent = `You have waited ${Math.round((Date.now() - since) / 1000)} s.`;
    timer = setTimeout(() => knock(room, name), KNOCK_MS);
  } else if (data.status === "admitted") {
    waitedLine.textContent = "";
    say(
      data.joined
        ? `You are in ${data.room} as ${data.name}.`
        : `You were let into ${data.room}: your LiveKit token is ready.`,
      "admitted",
    );
  } else if (data.status === "banned") {
    waitedLine.textContent = "";
    say(`You may not join ${data.room}.`, "denied");
  } else {
    waitedLine.textContent = "";
    say(`A moderator did not let you into ${data.room}.`, "denied");
  }
}

form.addEventListener("submit", (event) => {
  event.preventDefault();
  clearTimeout(timer);
  since = null;
  const room = form.elements.room.value.trim();
  const name = form.elements.name.value.trim();
  if (!room || !name) {
    say("Pick a room and a name.", "error");
    return;
  }
  form.querySelector("button").disabled = true;
  say("Knocking…", "knocking");
  knock(room, name);
});
