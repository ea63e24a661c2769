"""The console's lobby and the guest's ``/join`` page, in two real headless Chromium sessions.

The example app runs as ``python -m example_app`` sets it up (its stand-in, the locked demo room
``globex-review`` and its demo guests knocking every 0.3 s here). A guest asks to join from
their own browser; the moderator, signed in as globex in another browser, sees them wait,
admits them, and the guest's page says they are in (and the stand-in has them in the room).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
from collections.abc import Iterator

import pytest
import requests
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver

from example_app import demo
from example_app.__main__ import Running, running
from tests.test_console import CHROMEDRIVER, CHROMIUM, CHROMIUM_ARGS, WIDE, Console

ROOM = demo.LOCKED_ROOM


@pytest.fixture(scope="module")
def example() -> Iterator[Running]:
    with pytest.MonkeyPatch.context() as env:
        for key in list(os.environ):
            if key.startswith(("LIVEKIT_URL", "LIVEKIT_API_", "LIVEKIT_MODERATION_", "AUTH_", "CONSOLE_")):
                env.delenv(key)
        env.delenv("SECRET_KEY", raising=False)
        with running(0, rejoin_interval=0.2, webhook_delay=0.3, knock_interval=0.3) as app:
            thread = threading.Thread(
                target=app.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
            )
            thread.start()
            try:
                yield app
            finally:
                app.server.shutdown()
                thread.join(10)


def chromium() -> Iterator[WebDriver]:
    missing = [path for path in (CHROMIUM, CHROMEDRIVER) if not os.access(path, os.X_OK)]
    if missing:
        pytest.fail(
            f"Chromium or its WebDriver is missing ({', '.join(missing)}): run `bash .ci/deps`", pytrace=False
        )
    profile = tempfile.mkdtemp(prefix="lobby-test-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in [*CHROMIUM_ARGS, f"--user-data-dir={profile}"]:
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    try:
        driver.set_window_size(*WIDE)
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture(scope="module")
def moderator_browser() -> Iterator[WebDriver]:
    yield from chromium()


@pytest.fixture(scope="module")
def guest_browser() -> Iterator[WebDriver]:
    yield from chromium()


def lobby_items(console: Console) -> dict[str, str]:
    """identity -> the item's text, in the page's order."""
    found = console.driver.find_elements(By.CSS_SELECTOR, "#lobby-list li[data-identity]")
    return {item.get_attribute("data-identity") or "": item.text for item in found}


def test_a_guest_knocks_and_the_moderator_admits_them(
    example: Running, moderator_browser: WebDriver, guest_browser: WebDriver
) -> None:
    assert example.emulator is not None and example.knocker is not None
    emulator = example.emulator
    moderator = Console(moderator_browser, example, emulator)
    guest = Console(guest_browser, example, emulator)

    # The moderator opens the locked demo room: the switch is on, the demo guests wait.
    moderator.sign_in("globex")
    moderator_browser.get(f"{example.base_url}/?room={ROOM}")
    switch = moderator.wait(lambda d: d.find_element(By.ID, "lock-switch"), "the lock switch")
    moderator.wait(lambda d: switch.is_selected(), "the room shown locked")
    assert switch.get_attribute("role") == "switch" and switch.get_attribute("aria-checked") == "true"
    moderator.wait(
        lambda d: {"guest-hana", "guest-omar"} <= set(lobby_items(moderator)), "the demo guests wait"
    )

    # A guest asks to join from their own browser, and waits.
    guest_browser.get(f"{example.base_url}/join?room={ROOM}")
    guest_browser.find_element(By.ID, "join-name").send_keys("Zoë Guest")
    guest_browser.find_element(By.ID, "join-submit").click()
    guest.wait(
        lambda d: "Waiting for a moderator" in d.find_element(By.ID, "join-status").text, "guest waiting"
    )

    # The moderator sees them at the bottom of the list (newest last), with how long they waited.
    def zoe() -> str:
        return next(
            (identity for identity, text in lobby_items(moderator).items() if "Zoë Guest" in text), ""
        )

    moderator.wait(lambda d: zoe() != "", "the guest in the lobby")
    identity = zoe()
    assert identity.startswith("guest-zo") and list(lobby_items(moderator))[-1] == identity
    assert "waiting" in lobby_items(moderator)[identity] and " s" in lobby_items(moderator)[identity]
    assert emulator.participant(ROOM, identity) is None
    moderator.click(f"admit:{identity}")
    moderator.wait_status("Admitted Zoë Guest")

    # The guest's page says they are in, and they are in the room (joined with their token).
    guest.wait(
        lambda d: d.find_element(By.ID, "join-status").text == f"You are in {ROOM} as Zoë Guest.",
        "guest admitted",
    )
    moderator.wait(lambda d: emulator.participant(ROOM, identity) is not None, "the guest in the room")
    moderator.wait(lambda d: identity not in lobby_items(moderator), "the guest left the lobby")

    # Deny one demo guest, admit all the others: Hana joins, Omar gives up.
    moderator.click("deny:guest-omar")
    moderator.wait_status("Denied Omar")
    moderator.wait(lambda d: set(lobby_items(moderator)) == {"guest-hana"}, "only Hana waits")
    moderator.click("admit-all")
    moderator.wait_status("Admitted 1 person")
    moderator.wait(lambda d: emulator.participant(ROOM, "guest-hana") is not None, "Hana joins")
    knocker = example.knocker
    moderator.wait(lambda d: "guest-omar" in knocker.given_up, "Omar stops knocking")
    assert emulator.participant(ROOM, "guest-omar") is None
    moderator.wait(
        lambda d: "Nobody is waiting" in d.find_element(By.ID, "lobby-summary").text, "empty lobby"
    )
    moderator.screenshot("lobby-console")

    # Unlock: the switch goes off.
    switch = moderator_browser.find_element(By.ID, "lock-switch")
    switch.click()
    moderator.wait_status(f"Unlocked {ROOM}")
    moderator.wait(lambda d: not d.find_element(By.ID, "lock-switch").is_selected(), "unlocked")
    assert "Unlocked" in moderator_browser.find_element(By.ID, "lock-state").text


def test_the_join_route_takes_json_only_and_checks_its_input(example: Running) -> None:
    url = example.base_url + "/join/knock"
    with requests.Session() as guest:
        assert guest.post(url, data='{"room": "globex-review", "name": "X"}', timeout=10).status_code == 415
        bad = guest.post(url, json={"room": ROOM, "name": " "}, timeout=10)
        assert bad.status_code == 400 and "Pick a name" in bad.json()["error"]
        assert guest.post(url, json={"room": "", "name": "X"}, timeout=10).status_code == 400
        # A room that is not running is not locked: admitted, a token, but nowhere to join.
        answer = guest.post(url, json={"room": "no-such-room", "name": "Ann"}, timeout=10).json()
        assert (answer["status"], answer["joined"]) == ("admitted", False) and answer["token"]
        # The same browser knocking again is the same guest.
        again = guest.post(url, json={"room": "no-such-room", "name": "Ann"}, timeout=10).json()
        assert again["identity"] == answer["identity"]
