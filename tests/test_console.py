"""The moderator console of the example app, driven in a real headless Chromium.

The example app runs in this process exactly as ``python -m example_app`` sets it up
(:func:`example_app.__main__.running`: the stand-in, its demo rooms, the app, the bound
server), served on a thread, so the test checks each action's effect in the stand-in itself.
Banned participants' apps rejoin every 0.2 s here, and the stand-in holds its webhooks back
0.6 s (the demo: 6 s and 2.5 s), so a rejoin shows up and is kicked quickly.
One browser session serves the whole module; each test reseeds the stand-in, lifts every ban
and signs in afresh. Screenshots go to ``tests/artifacts/`` (and, when missing or with
``UPDATE_DOCS_SCREENSHOT=1``, the README's ``docs/console.png``).

Chromium and its WebDriver are Debian's (``bash .ci/deps`` installs them); the test fails,
never skips, without them. Selenium is pointed at both binaries, so Selenium Manager (which
would download drivers) never runs.
"""

from __future__ import annotations

import math
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar, cast

import pytest
from livekit.protocol.models import TrackSource
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException, TimeoutException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import Select, WebDriverWait

from example_app import demo
from example_app.__main__ import Running, running
from example_app.signin import reset_throttle
from flask_livekit_moderation import errors, room_owner, signals
from flask_livekit_moderation.bans import Ban, BanStore, rfc3339
from flask_livekit_moderation.testing import LiveKitEmulator, PublishNotAllowedError

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "tests" / "artifacts"
DOCS_SCREENSHOT = ROOT / "docs" / "console.png"
CHROMIUM = os.environ.get("CHROMIUM_BINARY", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("CHROMEDRIVER", "/usr/bin/chromedriver")
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
WIDE = (1100, 860)
WAIT = 10.0
#: Seconds between a banned participant's attempts to rejoin, and each webhook's delay.
REJOIN_INTERVAL = 0.2
WEBHOOK_DELAY = 0.6

T = TypeVar("T")


@pytest.fixture(scope="module")
def example() -> Iterator[Running]:
    """The example app with its in-process stand-in, served on a free port."""
    with pytest.MonkeyPatch.context() as env:
        # What python -m example_app would see on a clean shell: no LiveKit server given.
        for key in list(os.environ):
            if key.startswith(("LIVEKIT_URL", "LIVEKIT_API_", "LIVEKIT_MODERATION_", "AUTH_", "CONSOLE_")):
                env.delenv(key)
        env.delenv("SECRET_KEY", raising=False)
        # No reconciler: its pass every 30 s lists the locked demo room (ListRooms and
        # ListParticipants, bans or not), and the tests check that the console alone called
        # nothing (a pass landing in such a check failed it). Its removals are tested elsewhere.
        env.setenv("LIVEKIT_MODERATION_RECONCILE_INTERVAL", "0")
        with running(0, rejoin_interval=REJOIN_INTERVAL, webhook_delay=WEBHOOK_DELAY) as app:
            assert app.emulator is not None and app.rejoiner is not None
            thread = threading.Thread(
                target=app.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
            )
            thread.start()
            try:
                yield app
            finally:
                app.server.shutdown()
                thread.join(10)


@pytest.fixture(scope="module")
def browser() -> Iterator[WebDriver]:
    """One headless Chromium for the module, with a throw-away profile."""
    missing = [path for path in (CHROMIUM, CHROMEDRIVER) if not os.access(path, os.X_OK)]
    if missing:
        pytest.fail(
            f"Chromium or its WebDriver is missing ({', '.join(missing)}): run `bash .ci/deps` "
            "(it apt-get installs chromium and chromium-driver), or set CHROMIUM_BINARY / CHROMEDRIVER.",
            pytrace=False,
        )
    profile = tempfile.mkdtemp(prefix="console-test-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    # The browser's console messages, where Chromium reports what a CSP blocked.
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    for argument in [*CHROMIUM_ARGS, f"--user-data-dir={profile}"]:
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    try:
        driver.set_window_size(*WIDE)
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


@dataclass
class Console:
    """The browser on the console, and the stand-in behind it."""

    driver: WebDriver
    example: Running
    emulator: LiveKitEmulator

    @property
    def url(self) -> str:
        return self.example.base_url

    def wait(self, condition: Callable[[WebDriver], T], message: str = "", timeout: float = WAIT) -> T:
        def attempt(driver: WebDriver) -> T:
            try:
                return condition(driver)
            except StaleElementReferenceException:  # the list was redrawn meanwhile
                return False  # type: ignore[return-value]

        try:
            return WebDriverWait(self.driver, timeout, poll_frequency=0.05).until(attempt)
        except TimeoutException:
            self.screenshot("timeout")
            raise AssertionError(f"timed out waiting: {message}\nstatus: {self.status()!r}") from None

    def sign_in(self, tenant: str, password: str | None = None) -> None:
        self.driver.get(self.url + "/signin")
        self.driver.find_element(By.ID, "tenant-field").send_keys(tenant)
        field = self.driver.find_element(By.ID, "password-field")
        field.send_keys(password if password is not None else demo.DEMO_PASSWORDS[tenant])
        field.submit()

    def confirm(self) -> None:
        """Confirm in the dialog the last click opened."""
        dialog = self.driver.find_element(By.ID, "confirm-dialog")
        self.wait(lambda d: dialog.is_displayed(), "the confirmation dialog opens")
        self.driver.find_element(By.ID, "confirm-ok").click()
        self.wait(lambda d: not dialog.is_displayed(), "the confirmation dialog closes")

    def rows(self) -> dict[str, WebElement]:
        found = self.driver.find_elements(By.CSS_SELECTOR, "#participant-rows tr[data-identity]")
        return {row.get_attribute("data-identity") or "": row for row in found}

    def wait_people(self, identities: set[str], message: str = "") -> dict[str, WebElement]:
        self.wait(lambda d: set(self.rows()) == identities, message or f"rows {sorted(identities)}")
        return self.rows()

    def button(self, key: str) -> WebElement:
        return self.wait(
            lambda d: d.find_element(By.CSS_SELECTOR, f'button[data-key="{key}"]'), f"button {key}"
        )

    def click(self, key: str) -> None:
        for _ in range(5):
            try:
                self.button(key).click()
                return
            except StaleElementReferenceException:
                continue
        raise AssertionError(f"button {key} kept being redrawn")

    def status(self) -> str:
        try:
            return self.driver.find_element(By.ID, "status").text
        except Exception:  # noqa: BLE001 - for failure messages only
            return ""

    def wait_status(self, *parts: str) -> str:
        self.wait(lambda d: all(part in self.status() for part in parts), f"status with {parts}")
        return self.status()

    def active_key(self) -> Any:
        return self.driver.execute_script("return document.activeElement.dataset.key || null;")

    def track_sid(self, room: str, identity: str, source: str) -> str:
        return next(t.sid for t in self.participant_tracks(room, identity) if _source(t.source) == source)

    def participant_tracks(self, room: str, identity: str) -> list[Any]:
        info = self.emulator.participant(room, identity)
        assert info is not None, f"{identity} is not in {room}"
        return list(info.tracks)

    def screenshot(self, name: str, docs: bool = False, full: bool = False) -> None:
        """The window (``full``: the whole page, the window stretched to its height)."""
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        size = self.driver.get_window_size()
        if full:
            height, chrome = self.driver.execute_script(
                "return [document.documentElement.scrollHeight, window.outerHeight - window.innerHeight];"
            )
            self.driver.set_window_size(size["width"], height + chrome)
        try:
            self.driver.save_screenshot(str(ARTIFACTS / f"{name}.png"))
            if docs and (os.environ.get("UPDATE_DOCS_SCREENSHOT") == "1" or not DOCS_SCREENSHOT.exists()):
                DOCS_SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
                self.driver.save_screenshot(str(DOCS_SCREENSHOT))
        finally:
            if full:
                self.driver.set_window_size(size["width"], size["height"])

    @property
    def bans(self) -> BanStore:
        store = self.example.app.extensions["livekit_moderation"].bans
        assert store is not None
        return store

    def notes(self) -> str:
        """What the page saw by itself (a banned participant back), under the bans."""
        return self.driver.find_element(By.ID, "ban-notes").text

    def wait_notes(self, part: str) -> None:
        self.wait(lambda d: part in self.notes(), f"notes with {part!r}")

    def audit_log(self) -> list[str]:
        """The lines of the room's audit log panel, newest first."""
        return [item.text for item in self.driver.find_elements(By.CSS_SELECTOR, "#audit-log li[data-id]")]

    def wait_audit(self, part: str) -> list[str]:
        def found(driver: WebDriver) -> list[str]:
            lines = self.audit_log()
            return lines if any(part in line for line in lines) else []

        return self.wait(found, f"the audit log with {part!r}")

    def ban_items(self) -> dict[str, WebElement]:
        found = self.driver.find_elements(By.CSS_SELECTOR, "#ban-list li[data-identity]")
        return {item.get_attribute("data-identity") or "": item for item in found}

    def track(self, room: str, identity: str, source: str) -> Any:
        return next(t for t in self.participant_tracks(room, identity) if _source(t.source) == source)


def _source(value: int) -> str:
    return TrackSource.Name(value).lower()


@pytest.fixture
def console(example: Running, browser: WebDriver) -> Iterator[Console]:
    """The demo rooms as seeded, a signed-out browser at the default window size."""
    emulator, rejoiner = example.emulator, example.rejoiner
    assert emulator is not None and rejoiner is not None
    rejoiner.pause()
    store = example.app.extensions["livekit_moderation"].bans
    for room in example.rooms:
        for ban in store.list_bans(None, room.name):
            store.lift(None, room.name, ban.participant_identity)
    rejoiner.forget()
    emulator.clear()
    emulator.clear_faults()
    emulator.enable_remote_unmute = True
    webhooks, emulator.webhook_urls = emulator.webhook_urls, []
    demo.seed(emulator)  # no events: none of them is late for the next test
    emulator.webhook_urls = webhooks
    emulator.clear_calls()
    emulator.clear_webhook_deliveries()
    rejoiner.resume()
    reset_throttle(example.app)
    browser.set_window_size(*WIDE)
    browser.get(example.base_url + "/healthz")
    browser.delete_all_cookies()
    yield Console(browser, example, emulator)
    browser.get(example.base_url + "/healthz")  # stop the page's refreshing


def _owned(emulator: LiveKitEmulator, tenant: str) -> list[str]:
    return sorted(room.name for room in emulator.rooms() if room_owner(room.metadata) == tenant)


def test_sign_in_pick_a_room_and_see_its_participants(console):
    driver = console.driver
    assert any(line.startswith(f"Moderator console: {console.url}/") for line in console.example.banner)

    driver.get(console.url + "/")
    console.wait(lambda d: d.current_url == console.url + "/signin", "redirect to sign-in")
    demo_box = driver.find_element(By.CSS_SELECTOR, ".demo").text
    assert all(password in demo_box for password in demo.DEMO_PASSWORDS.values())

    console.sign_in("acme", "not-the-password")
    error = driver.find_element(By.ID, "signin-error")
    assert error.text == "Wrong tenant or password." and error.get_attribute("role") == "alert"
    console.screenshot("01-sign-in-refused")

    console.sign_in("acme")
    console.wait(lambda d: d.current_url == console.url + "/", "the console after sign-in")
    assert driver.find_element(By.ID, "tenant").text == "acme"

    # The picker: acme's rooms from ListRooms, by their auth_id; nobody else's.
    picker = Select(driver.find_element(By.ID, "room-select"))
    offered = [option.get_attribute("value") for option in picker.options]
    assert offered == _owned(console.emulator, "acme") == ["acme-standup", "acme-support"]
    assert picker.first_selected_option.get_attribute("value") == "acme-standup"

    rows = console.wait_people({"alice", "bob"}, "the seeded participants of acme-standup")
    for identity, row in rows.items():
        shown = {
            item.get_attribute("data-sid"): item.text
            for item in row.find_elements(By.CSS_SELECTOR, "li.track")
        }
        in_stand_in = {t.sid: _source(t.source) for t in console.participant_tracks("acme-standup", identity)}
        assert set(shown) == set(in_stand_in)
        for sid, text in shown.items():
            kind = {"microphone": "audio", "camera": "video"}[in_stand_in[sid]]
            assert text.split() == [in_stand_in[sid].capitalize(), kind, "live", "Mute"]
        remove = row.find_element(By.CSS_SELECTOR, f'button[data-key="remove:{identity}"]')
        assert remove.tag_name == "button" and remove.text == "Remove"
        assert (
            remove.get_attribute("aria-label") == f"Remove {identity.capitalize()} ({identity}) from the room"
        )
    console.screenshot("02-console-acme-standup")

    # No token anywhere the page's scripts can reach; the session cookie is HttpOnly.
    modules = sorted((ROOT / "example_app" / "static").rglob("*.js"))
    assert ROOT / "example_app" / "static" / "console" / "main.js" in modules
    assert driver.find_elements(By.CSS_SELECTOR, 'script[type="module"][src$="/console/main.js"]')
    script = "".join(module.read_text() for module in modules)
    for tenant in demo.DEMO_TENANTS:
        assert tenant["secret"] not in driver.page_source and tenant["secret"] not in script
    assert driver.execute_script("return document.cookie;") == ""
    cookies = driver.get_cookies()
    assert [c["name"] for c in cookies] == ["session"] and cookies[0]["httpOnly"] is True

    # The other room of acme's, with a screen share; a name is shown as text, never as HTML.
    picker.select_by_value("acme-support")
    driver.find_element(By.CSS_SELECTOR, "form.row button[type=submit]").click()
    console.wait_people({"erin", "frank"}, "acme-support's participants")
    hostile = '<img src=x onerror="window.__pwned=1">'
    console.emulator.join("acme-support", "mallory", name=hostile)
    rows = console.wait_people({"erin", "frank", "mallory"}, "a participant joining shows up")
    assert rows["mallory"].find_element(By.CSS_SELECTOR, ".pname").text == hostile
    assert driver.execute_script("return window.__pwned === undefined;") is True
    sources = [
        li.get_attribute("data-source") for li in rows["erin"].find_elements(By.CSS_SELECTOR, "li.track")
    ]
    assert sources == ["microphone", "camera", "screen_share"]


def test_mute_a_microphone_see_it_muted_in_livekit_and_unmute_it_from_the_keyboard(console):
    console.sign_in("acme")
    console.wait_people({"alice", "bob"})
    mic = console.track_sid("acme-standup", "alice", "microphone")
    key = f"mute:alice:{mic}"
    assert console.button(key).get_attribute("aria-label") == "Mute the microphone of Alice (alice)"

    console.click(key)
    console.wait_status("Alice (alice): microphone muted (LiveKit reports muted: true).")
    track = next(t for t in console.participant_tracks("acme-standup", "alice") if t.sid == mic)
    assert track.muted is True
    console.wait(lambda d: console.button(key).text == "Unmute", "the button turns into Unmute")
    badge = console.rows()["alice"].find_element(By.CSS_SELECTOR, f'li[data-sid="{mic}"] .badge')
    assert badge.text == "muted"
    # The list was redrawn, and keyboard focus stayed on the same button.
    assert console.active_key() == key
    assert console.driver.find_element(By.ID, "status").get_attribute("aria-live") == "polite"
    console.screenshot("03-alice-microphone-muted")

    console.driver.switch_to.active_element.send_keys(Keys.ENTER)
    console.wait_status("Alice (alice): microphone unmuted (LiveKit reports muted: false).")
    track = next(t for t in console.participant_tracks("acme-standup", "alice") if t.sid == mic)
    assert track.muted is False
    console.wait(lambda d: console.button(key).text == "Mute", "the button turns back into Mute")

    # A LiveKit server without remote unmute: the extension's words, then what to configure.
    console.emulator.enable_remote_unmute = False
    console.click(key)
    console.wait_status("microphone muted")
    console.wait(lambda d: console.button(key).text == "Unmute", "muted again")
    console.click(key)
    text = console.wait_status(errors.REMOTE_UNMUTE_DISABLED.code)
    assert f"{errors.REMOTE_UNMUTE_DISABLED.code}: {errors.REMOTE_UNMUTE_DISABLED.message}" in text
    assert "enable_remote_unmute: true" in text and "ask the participant to unmute themselves" in text
    track = next(t for t in console.participant_tracks("acme-standup", "alice") if t.sid == mic)
    assert track.muted is True
    console.screenshot("04-remote-unmute-disabled")


def test_remove_a_participant_and_see_the_row_go(console):
    console.sign_in("acme")
    console.wait_people({"alice", "bob"})

    console.click("remove:bob")
    console.confirm()
    console.wait_status("Removed Bob (bob) from acme-standup.")
    console.wait_people({"alice"}, "bob's row goes")
    assert console.emulator.participant("acme-standup", "bob") is None
    assert console.active_key() is None  # his button is gone: focus moved to the list's heading
    assert console.driver.execute_script("return document.activeElement.id;") == "people-h"
    console.screenshot("05-bob-removed")

    # Another moderator was quicker: the extension's masked 404, and the row goes too.
    console.driver.find_element(By.ID, "auto-refresh").click()  # pause: the row stays drawn
    assert console.emulator.leave("acme-standup", "alice")
    console.click("remove:alice")
    console.confirm()
    text = console.wait_status(errors.PARTICIPANT_NOT_FOUND.code)
    assert f"{errors.PARTICIPANT_NOT_FOUND.code}: {errors.PARTICIPANT_NOT_FOUND.message}" in text
    console.wait_people(set(), "alice's row goes after the refresh the action triggers")
    assert "Nobody is in this room right now." in console.driver.find_element(By.ID, "participants").text
    # The demo room outlives its last participant, as a scheduled meeting's room does
    # (LiveKit's default would close it 20 s after the last one left).
    room = console.emulator.room("acme-standup")
    assert room is not None and room.departure_timeout == math.ceil(demo.ROOM_LIFETIME)
    # The room's audit log, as the extension keeps it: who did what, refusals too, newest first.
    lines = console.wait_audit(f"acme removed alice: refused or failed, {errors.PARTICIPANT_NOT_FOUND.code}.")
    assert lines[0].endswith(f"acme removed alice: refused or failed, {errors.PARTICIPANT_NOT_FOUND.code}.")
    assert lines[1].endswith("acme removed bob: removed.")
    items = console.driver.find_elements(By.CSS_SELECTOR, "#audit-log li[data-id]")
    assert "log-error" in (items[0].get_attribute("class") or "")
    stamp = items[1].find_element(By.TAG_NAME, "time").get_attribute("datetime") or ""
    assert (
        stamp.endswith("Z")
        and abs(datetime.fromisoformat(stamp[:-1] + "+00:00").timestamp() - time.time()) < 60
    )
    assert not console.driver.find_elements(By.ID, "history")  # no page-local list any more


def test_another_tenants_room_is_refused_with_the_masked_404(console):
    driver = console.driver
    console.sign_in("acme")
    console.wait_people({"alice", "bob"})
    offered = [o.get_attribute("value") for o in Select(driver.find_element(By.ID, "room-select")).options]
    assert "globex-review" not in offered and demo.UNOWNED_ROOM not in offered

    statuses = {}
    for room in ("globex-review", demo.UNOWNED_ROOM, "no-such-room"):
        field = driver.find_element(By.ID, "room-name")
        field.clear()
        field.send_keys(room, Keys.ENTER)
        console.wait(lambda d, room=room: d.current_url.endswith(f"?room={room}"), f"open {room}")
        statuses[room] = console.wait_status(errors.ROOM_NOT_FOUND.code)
        summary = driver.find_element(By.ID, "summary").text
        assert "automatic refresh stopped" in summary and console.rows() == {}
        if room == "globex-review":
            console.screenshot("06-foreign-room-refused")
    # One answer for all three: nothing tells another tenant's room from no room.
    assert len(set(statuses.values())) == 1
    refused = errors.ROOM_NOT_FOUND
    assert statuses["globex-review"].startswith(f"{refused.code}: {refused.message}")
    assert {p.identity for p in console.emulator.participants("globex-review")} == {"carol", "dave"}
    assert set(console.emulator.call_names()) <= {"ListRooms", "ListParticipants"}

    # globex sees its own room only; once signed out, the cookie moderates nothing.
    driver.find_element(By.CSS_SELECTOR, ".signout button").click()
    console.wait(lambda d: d.current_url == console.url + "/signin", "signed out")
    console.sign_in("globex")
    console.wait_people({"carol", "dave"})
    offered = [o.get_attribute("value") for o in Select(driver.find_element(By.ID, "room-select")).options]
    assert offered == _owned(console.emulator, "globex") == ["globex-review"]
    driver.find_element(By.CSS_SELECTOR, ".signout button").click()
    console.wait(lambda d: d.current_url == console.url + "/signin", "signed out")
    answer = driver.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "fetch('/livekit/participants?room_name=globex-review', {credentials: 'same-origin'})"
        ".then(r => r.json().then(body => done([r.status, body.code])));"
    )
    assert answer == [401, errors.MISSING_TOKEN.code]


def test_a_livekit_outage_shows_the_503_and_its_retry_after_then_recovers(console):
    console.sign_in("acme")
    console.wait_people({"alice", "bob"})
    with console.emulator.down():
        text = console.wait_status(errors.LIVEKIT_UNAVAILABLE.code)
        assert f"{errors.LIVEKIT_UNAVAILABLE.code}: {errors.LIVEKIT_UNAVAILABLE.message}" in text
        assert "try again in 1 s (Retry-After: 1)" in text
        console.wait(
            lambda d: "LiveKit did not answer" in d.find_element(By.ID, "summary").text, "stale list marked"
        )
        assert set(console.rows()) == {"alice", "bob"}  # the last list stays visible
        console.screenshot("07-livekit-unavailable")
    console.wait_status("LiveKit answers again")


def test_narrow_screen_and_keyboard_only(console):
    driver = console.driver
    driver.set_window_size(360, 780)
    console.sign_in("acme")
    console.wait_people({"alice", "bob"})
    console.example.rejoiner.pause()  # the troll's app stays away
    console.bans.put(
        Ban.starting_now("acme", "acme-standup", "a-rather-long-identity-of-a-troll", 300, "x" * 80)
    )
    driver.find_element(By.ID, "refresh").click()
    console.wait(lambda d: console.ban_items(), "the ban listed")
    width = driver.execute_script("return window.innerWidth;")
    assert width <= 360
    assert driver.execute_script("return document.documentElement.scrollWidth;") <= width
    controls = driver.find_elements(
        By.CSS_SELECTOR, "#participant-rows button, #room-mute button, #room-mute label, #ban-list button"
    )
    assert len(controls) >= 2 * 5 + 2 + 2 + 1
    for control in controls:
        box = driver.execute_script(
            "const r = arguments[0].getBoundingClientRect(); return [r.left, r.right];", control
        )
        assert 0 <= box[0] and box[1] <= width, control.get_attribute("aria-label") or control.text
    console.screenshot("08-narrow-360px", full=True)

    # The ban dialog from the keyboard: Enter opens it on the duration, Escape closes it and
    # gives focus back to the button that opened it.
    console.button("ban:alice").send_keys(Keys.ENTER)
    dialog = driver.find_element(By.ID, "ban-dialog")
    console.wait(lambda d: dialog.is_displayed(), "the ban dialog opens")
    assert driver.switch_to.active_element.get_attribute("id") == "ban-duration"
    box = driver.execute_script(
        "const r = arguments[0].getBoundingClientRect(); return [r.left, r.right];", dialog
    )
    assert 0 <= box[0] and box[1] <= width
    console.screenshot("09-narrow-ban-dialog")
    driver.switch_to.active_element.send_keys(Keys.ESCAPE)
    console.wait(lambda d: not dialog.is_displayed(), "Escape closes it")
    assert console.active_key() == "ban:alice"
    assert console.emulator.participant("acme-standup", "alice") is not None

    # Tab from the top of the page to alice's microphone, and mute it with the space bar.
    mic = console.track_sid("acme-standup", "alice", "microphone")
    key = f"mute:alice:{mic}"
    driver.execute_script("document.activeElement.blur(); window.scrollTo(0, 0);")  # focus: the page
    for _ in range(40):
        driver.switch_to.active_element.send_keys(Keys.TAB)
        if console.active_key() == key:
            break
    assert console.active_key() == key, "alice's microphone button is not reachable with Tab"
    driver.switch_to.active_element.send_keys(Keys.SPACE)
    console.wait_status("Alice (alice): microphone muted")
    assert next(t for t in console.participant_tracks("acme-standup", "alice") if t.sid == mic).muted


def test_ban_with_a_reason_the_rejoin_is_kicked_then_lift_it(console):
    driver, emulator, rejoiner = console.driver, console.emulator, console.example.rejoiner
    assert rejoiner is not None
    rejoiner.pause()  # bob's app tries again once the test says so
    console.sign_in("acme")
    console.wait_people({"alice", "bob"})
    console.wait(lambda d: "Nobody is banned" in d.find_element(By.ID, "bans-summary").text, "no bans yet")

    # "Ban…" opens a dialog: how long, and why.
    ban_button = console.button("ban:bob")
    assert ban_button.get_attribute("aria-label") == "Ban Bob (bob) from the room…"
    assert ban_button.get_attribute("aria-haspopup") == "dialog"
    console.click("ban:bob")
    dialog = driver.find_element(By.ID, "ban-dialog")
    console.wait(lambda d: dialog.is_displayed(), "the ban dialog opens")
    assert "Ban Bob (bob)" in dialog.text
    assert driver.switch_to.active_element.get_attribute("id") == "ban-duration"
    durations = Select(driver.find_element(By.ID, "ban-duration"))
    assert [o.text for o in durations.options] == ["5 minutes", "1 hour", "1 day", "1 week"]
    durations.select_by_visible_text("1 hour")
    reason = driver.find_element(By.ID, "ban-reason")
    assert reason.get_attribute("maxlength") == "512"
    reason.send_keys("Spamming the chat")
    assert driver.find_element(By.ID, "ban-reason-count").text == "17 of 512 characters"
    before = time.time()
    driver.find_element(By.ID, "ban-submit").click()

    text = console.wait_status("Banned Bob (bob) from acme-standup until ")
    assert "removed from the room: yes. Reason: Spamming the chat" in text
    ban = console.bans.get("acme", "acme-standup", "bob")
    assert ban is not None and ban.reason == "Spamming the chat"
    assert before + 3600 - 1 <= ban.expires_at.timestamp() <= time.time() + 3600
    console.wait_people({"alice"}, "bob's row goes")
    assert emulator.participant("acme-standup", "bob") is None
    item = console.wait(lambda d: console.ban_items().get("bob"), "bob in the list of bans")
    assert "Reason: Spamming the chat" in item.text
    assert item.find_element(By.TAG_NAME, "time").get_attribute("datetime") == rfc3339(ban.expires_at)
    assert driver.find_element(By.ID, "bans-summary").text.startswith("1 active ban")

    # Bob's app rejoins with its still-valid token; LiveKit's webhook has him removed again.
    emulator.clear_calls()
    emulator.clear_webhook_deliveries()
    kicked: list[dict[str, Any]] = []

    def removed(sender: Any, **data: Any) -> None:
        kicked.append(data)

    with signals.banned_participant_removed.connected_to(removed, console.example.app):
        rejoiner.resume()
        console.wait(lambda d: emulator.participant("acme-standup", "bob") is not None, "bob rejoins")
        rejoiner.pause()  # this one attempt only
        driver.find_element(By.ID, "refresh").click()  # rather than wait up to 2 s for the next poll
        row = console.wait(lambda d: console.rows().get("bob"), "bob's row while he is back")
        assert "banned until" in row.find_element(By.CSS_SELECTOR, ".badge.banned").text
        console.wait_notes("Bob (bob) rejoined acme-standup although banned until ")
        console.screenshot("10-banned-bob-rejoined")
        console.wait_people({"alice"}, "the webhook has bob removed, and the console sees him go")
        console.wait_notes(", and is out again: the ban keeps them out.")
        assert console.notes().count("Bob (bob) rejoined acme-standup although banned until") == 1
        console.wait(lambda d: kicked, "the extension's banned_participant_removed signal")
        assert emulator.wait_webhooks(5)
    assert [(k["room_name"], k["participant_identity"]) for k in kicked] == [("acme-standup", "bob")]
    joined = next(d for d in emulator.webhook_deliveries() if d.id == kicked[0]["event_id"])
    assert (joined.event, joined.room, joined.status, joined.delivered) == (
        "participant_joined",
        "acme-standup",
        200,
        True,
    )
    # The room check, then the removal: the console itself only listed.
    calls = [(c.method, getattr(c.request, "identity", "")) for c in emulator.calls]
    assert [c for c in calls if c[0] not in ("ListRooms", "ListParticipants")] == [
        ("RemoveParticipant", "bob")
    ]
    assert calls.index(("RemoveParticipant", "bob")) > 0
    assert emulator.participant("acme-standup", "bob") is None and "bob" not in console.rows()

    # The README's picture: a ban listed with its reason, the rejoin in the history, a locked mic.
    emulator.join("acme-standup", "dan", name="Dan")
    driver.find_element(By.ID, "refresh").click()
    console.wait_people({"alice", "dan"})
    console.click("mic-lock:alice")
    console.wait_status("Alice (alice): microphone locked")
    console.wait(lambda d: console.button("mic-lock:alice").text == "Unlock microphone", "alice locked")
    console.screenshot("11-console-with-ban-and-locked-mic", docs=True, full=True)

    # Lift the ban: the list empties, and bob's next attempt gets in and stays.
    console.click("lift:bob")
    console.wait_status("Lifted the ban of bob in acme-standup: they may join again.")
    console.wait(lambda d: console.ban_items() == {}, "the list of bans empties")
    assert "Nobody is banned" in driver.find_element(By.ID, "bans-summary").text
    assert console.bans.get("acme", "acme-standup", "bob") is None
    emulator.clear_calls()
    rejoiner.resume()
    console.wait(lambda d: emulator.participant("acme-standup", "bob") is not None, "bob's next attempt")
    driver.find_element(By.ID, "refresh").click()
    console.wait_people({"alice", "bob", "dan"}, "bob is back")
    assert emulator.wait_webhooks(5)  # his participant_joined reached the app, which let him be
    assert emulator.participant("acme-standup", "bob") is not None
    assert "RemoveParticipant" not in emulator.call_names()
    assert console.rows()["bob"].find_elements(By.CSS_SELECTOR, ".badge.banned") == []

    # The room's audit log has it all, newest first: the ban, LiveKit's webhook enforcing it, the
    # lift; and it filters by action.
    lines = console.wait_audit("acme lifted the ban of bob: lifted.")
    assert lines[0].endswith("acme lifted the ban of bob: lifted.")
    banned_at = next(
        n
        for n, line in enumerate(lines)
        if "acme banned bob for 1 hour (reason: Spamming the chat): banned." in line
    )
    enforced = next(
        n
        for n, line in enumerate(lines)
        if line.endswith("LiveKit's webhook removed bob, who is banned: removed.")
    )
    assert 0 < enforced < banned_at
    Select(driver.find_element(By.ID, "audit-action")).select_by_value("ban")
    console.wait(
        lambda d: (shown := console.audit_log()) and all(" banned " in line for line in shown),
        "only the bans",
    )
    assert driver.find_element(By.ID, "audit-summary").text == "1 entry (bans), newest first"
    Select(driver.find_element(By.ID, "audit-action")).select_by_value("")
    console.wait(lambda d: len(console.audit_log()) == len(lines), "every action again")

    # A lift nobody needs any more: the masked 404, explained for a ban.
    console.driver.find_element(By.ID, "auto-refresh").click()
    console.bans.put(Ban.starting_now("acme", "acme-standup", "ghost", 60, None, console.bans.clock))
    driver.find_element(By.ID, "refresh").click()
    console.wait(lambda d: "ghost" in console.ban_items(), "ghost's ban listed")
    console.bans.lift("acme", "acme-standup", "ghost")
    console.click("lift:ghost")
    text = console.wait_status(errors.PARTICIPANT_NOT_FOUND.code)
    assert "it ended or was lifted already" in text


def test_lock_and_unlock_a_microphone(console):
    emulator = console.emulator
    console.sign_in("acme")
    console.wait_people({"alice", "bob"})
    mic = console.track_sid("acme-standup", "bob", "microphone")
    camera = console.track_sid("acme-standup", "bob", "camera")
    key = "mic-lock:bob"
    assert console.button(key).text == "Lock microphone"
    assert console.button(key).get_attribute("aria-label") == "Lock the microphone of Bob (bob)"

    console.click(key)
    text = console.wait_status("Bob (bob): microphone locked; LiveKit says they may publish only ")
    assert "may publish only camera, screen share, screen share audio." in text
    assert f"LiveKit unpublished: microphone {mic}." in text
    info = emulator.participant("acme-standup", "bob")
    assert info is not None and [t.sid for t in info.tracks] == [camera]
    permission = info.permission
    assert [TrackSource.Name(s) for s in permission.can_publish_sources] == [
        "CAMERA",
        "SCREEN_SHARE",
        "SCREEN_SHARE_AUDIO",
    ]
    assert permission.can_publish and permission.can_subscribe and permission.can_publish_data
    with pytest.raises(PublishNotAllowedError):
        emulator.publish_track("acme-standup", "bob", "audio", "microphone")
    console.wait(lambda d: console.button(key).text == "Unlock microphone", "the button turns into Unlock")
    row = console.rows()["bob"]
    assert row.find_element(By.CSS_SELECTOR, ".badge.locked").text == "microphone locked"
    assert [li.get_attribute("data-sid") for li in row.find_elements(By.CSS_SELECTOR, "li.track")] == [camera]
    assert console.active_key() == key  # the row was redrawn; focus stayed
    console.screenshot("12-bob-microphone-locked")

    console.click(key)
    console.wait_status("Bob (bob): microphone unlocked; LiveKit says they may publish every source.")
    info = emulator.participant("acme-standup", "bob")
    assert info is not None and list(info.permission.can_publish_sources) == []
    # His app publishes the microphone again when he turns it on.
    again = emulator.publish_track("acme-standup", "bob", "audio", "microphone", name="microphone")
    console.driver.find_element(By.ID, "refresh").click()
    console.wait(lambda d: console.button(key).text == "Lock microphone", "the button turns back into Lock")
    row = console.wait(
        lambda d: (
            (r := console.rows()["bob"]).find_elements(By.CSS_SELECTOR, f'li[data-sid="{again.sid}"]') and r
        ),
        "bob's new microphone track",
    )
    assert row.find_elements(By.CSS_SELECTOR, ".badge.locked") == []


def test_mute_everyones_microphone_except_one(console):
    driver, emulator = console.driver, console.emulator
    emulator.join("acme-standup", "dan", name="Dan")
    console.sign_in("acme")
    console.wait_people({"alice", "bob", "dan"})
    spare = console.wait(
        lambda d: d.find_element(By.CSS_SELECTOR, 'input[type=checkbox][data-key="except:alice"]'),
        "alice in the room form's exceptions",
    )
    assert spare.find_element(By.XPATH, "..").text == "Alice (alice)"
    spare.click()

    console.click("room-mute")
    console.confirm()
    console.wait_status(
        "Muted 2 microphones in acme-standup, leaving alice as they are (LiveKit reports 2 muted)."
    )
    assert console.track("acme-standup", "alice", "microphone").muted is False
    for identity in ("bob", "dan"):
        assert console.track("acme-standup", identity, "microphone").muted is True
        assert console.track("acme-standup", identity, "camera").muted is False
    console.wait(
        lambda d: all(
            console.rows()[who].find_element(By.CSS_SELECTOR, 'li[data-source="microphone"] .badge').text
            == state
            for who, state in (("alice", "live"), ("bob", "muted"), ("dan", "muted"))
        ),
        "the badges follow",
    )
    # The tick survives the list's redraws.
    assert driver.find_element(By.CSS_SELECTOR, 'input[data-key="except:alice"]').is_selected()
    console.screenshot("13-room-muted-except-alice")

    # Unmute everyone but alice; LiveKit fails one of the two: its code is shown.
    emulator.fail_next("MutePublishedTrack", code="not_found", msg="participant does not exist")
    console.click("room-unmute")
    console.confirm()
    text = console.wait_status("Unmuted 1 microphone in acme-standup, leaving alice as they are")
    assert "1 microphone could not be changed:" in text
    assert "microphone TR_" in text and "PARTICIPANT_NOT_FOUND (left the room in the meantime)" in text

    # A server that refuses remote unmute: the extension's words, then what to configure.
    emulator.enable_remote_unmute = False
    console.click("room-unmute")
    console.confirm()
    text = console.wait_status(errors.REMOTE_UNMUTE_DISABLED.code)
    assert f"{errors.REMOTE_UNMUTE_DISABLED.code}: {errors.REMOTE_UNMUTE_DISABLED.message}" in text
    assert "enable_remote_unmute: true" in text
    console.screenshot("14-room-unmute-refused")


@contextmanager
def other_site_page(html: str) -> Iterator[str]:
    """A page of another origin on the same site (127.0.0.1, another port): its URL."""

    class Page(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            body = html.encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Page)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/"
    finally:
        server.shutdown()
        thread.join(5)
        server.server_close()


def _csp_reports(driver: WebDriver) -> list[str]:
    """What Chromium logged about its CSP since the last call (the log is drained)."""
    entries = cast(webdriver.Chrome, driver).get_log("browser")
    return [entry["message"] for entry in entries if "Content Security Policy" in entry["message"]]


def test_the_cookie_is_samesite_lax_and_the_console_runs_under_its_csp(console):
    driver = console.driver
    driver.get(console.url + "/signin")
    field = driver.find_element(By.ID, "tenant-field")
    assert field.tag_name == "input" and field.get_attribute("type") == "text"
    assert driver.find_elements(By.CSS_SELECTOR, "select, datalist") == []
    console.sign_in("acme")
    console.wait(lambda d: d.current_url == console.url + "/", "the console after sign-in")
    cookies = driver.get_cookies()
    assert [(c["name"], c["sameSite"], c["httpOnly"]) for c in cookies] == [("session", "Lax", True)]
    # The console's modules and styles all work under the CSP: nothing was blocked.
    console.wait_people({"alice", "bob"})
    console.click("mic-lock:alice")
    console.wait_status("Alice (alice): microphone locked")
    assert _csp_reports(driver) == []


def test_no_page_can_frame_the_signed_in_console(console):
    driver = console.driver
    console.sign_in("acme")
    console.wait(lambda d: d.current_url == console.url + "/", "the console after sign-in")
    _csp_reports(driver)  # drain the log

    # A page of the same site frames the signed-in console (the Lax cookie goes along):
    # the browser refuses to show it, so nothing in it can be clicked.
    framing = (
        "<!doctype html><title>prize</title>"
        f'<iframe id="victim" src="{console.url}/?room=acme-standup" width="800" height="600"></iframe>'
    )
    with other_site_page(framing) as page:
        driver.get(page)  # returns once the page and its frame have loaded
        frame = driver.find_element(By.ID, "victim")
        driver.switch_to.frame(frame)
        try:
            assert driver.find_elements(By.ID, "tenant") == []
            assert driver.find_elements(By.CSS_SELECTOR, "#participants, .signout") == []
            assert not driver.execute_script("return location.href;").startswith(console.url)
        finally:
            driver.switch_to.default_content()
        reports = _csp_reports(driver)
        assert any("frame-ancestors" in report for report in reports), reports
    assert console.emulator.participant("acme-standup", "bob") is not None


def test_sign_out_ends_the_session_for_every_copy_of_the_cookie(console):
    driver = console.driver
    console.sign_in("acme")
    console.wait_people({"alice", "bob"})
    copy = driver.get_cookie("session")
    assert copy is not None
    driver.find_element(By.CSS_SELECTOR, ".signout button").click()
    console.wait(lambda d: d.current_url == console.url + "/signin", "signed out")

    # The cookie as it was before signing out, put back (as a stolen copy would be sent).
    driver.delete_all_cookies()
    driver.add_cookie({k: copy[k] for k in ("name", "value", "path", "httpOnly", "sameSite")})
    answer = driver.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "fetch('/livekit/participants?room_name=acme-standup', {credentials: 'same-origin'})"
        ".then(r => r.json().then(body => done([r.status, body.code])));"
    )
    assert answer == [401, errors.MISSING_TOKEN.code]
    driver.get(console.url + "/")
    console.wait(lambda d: d.current_url == console.url + "/signin", "the old cookie is sent to sign in")
    assert driver.find_elements(By.ID, "tenant") == []


def _dialog_open(console: Console) -> bool:
    return bool(console.driver.execute_script("return document.getElementById('confirm-dialog').open;"))


def test_remove_and_room_wide_mutes_ask_first_and_cancel_calls_nothing(console):
    driver, emulator = console.driver, console.emulator
    console.sign_in("acme")
    console.wait_people({"alice", "bob"})
    driver.find_element(By.ID, "auto-refresh").click()  # no polling: the stand-in sees only actions
    time.sleep(0.3)  # a listing already under way ends
    emulator.clear_calls()

    def nothing_happened() -> None:
        time.sleep(0.5)  # time for a call that should not be made
        assert emulator.calls == [], emulator.call_names()
        assert {p.identity for p in emulator.participants("acme-standup")} == {"alice", "bob"}

    # Remove, then Cancel: the dialog names who, opens on Cancel, and nothing is called.
    assert console.button("remove:bob").get_attribute("aria-haspopup") == "dialog"
    console.click("remove:bob")
    console.wait(lambda d: _dialog_open(console), "the confirmation opens")
    dialog = driver.find_element(By.ID, "confirm-dialog")
    assert "Remove Bob (bob)?" in dialog.text
    assert driver.switch_to.active_element.get_attribute("id") == "confirm-cancel"
    console.screenshot("15-confirm-remove")
    driver.find_element(By.ID, "confirm-cancel").click()
    console.wait(lambda d: not _dialog_open(console), "Cancel closes it")
    assert console.active_key() == "remove:bob"  # focus back on the button that asked
    nothing_happened()

    # From the keyboard: Enter on Cancel (where it opens) cancels, and so does Escape.
    for key in (Keys.ENTER, Keys.ESCAPE):
        console.button("remove:bob").send_keys(Keys.ENTER)
        console.wait(lambda d: _dialog_open(console), "the confirmation opens from the keyboard")
        assert driver.switch_to.active_element.get_attribute("id") == "confirm-cancel"
        driver.switch_to.active_element.send_keys(key)
        console.wait(lambda d: not _dialog_open(console), f"{key!r} cancels")
        nothing_happened()

    # The ban dialog is the ban's confirmation: Cancel bans nobody and removes nobody.
    console.click("ban:alice")
    console.wait(lambda d: driver.find_element(By.ID, "ban-dialog").is_displayed(), "the ban dialog")
    driver.find_element(By.ID, "ban-cancel").click()
    nothing_happened()
    assert console.bans.list_bans("acme", "acme-standup") == []

    # Room-wide: Mute everyone, then Cancel; Unmute everyone, then Escape.
    console.click("room-mute")
    console.wait(lambda d: _dialog_open(console), "the room-wide confirmation")
    assert "Mute everyone's microphone in acme-standup?" in dialog.text
    driver.find_element(By.ID, "confirm-cancel").click()
    nothing_happened()
    console.click("room-unmute")
    console.wait(lambda d: _dialog_open(console), "the room-wide confirmation")
    driver.switch_to.active_element.send_keys(Keys.ESCAPE)
    nothing_happened()

    # Confirm with the space bar (Shift+Tab from Cancel): bob is removed.
    console.button("remove:bob").send_keys(Keys.ENTER)
    console.wait(lambda d: _dialog_open(console), "the confirmation opens")
    driver.switch_to.active_element.send_keys(Keys.SHIFT, Keys.TAB)
    assert driver.switch_to.active_element.get_attribute("id") == "confirm-ok"
    assert driver.switch_to.active_element.text == "Remove"
    driver.switch_to.active_element.send_keys(Keys.SPACE)
    console.wait_status("Removed Bob (bob) from acme-standup.")
    assert emulator.participant("acme-standup", "bob") is None
    calls = [(c.method, getattr(c.request, "identity", "")) for c in emulator.calls]
    moderated = [c for c in calls if c[0] not in ("ListRooms", "ListParticipants")]
    assert moderated == [("RemoveParticipant", "bob")]

    # Mute everyone, confirmed with Enter on Confirm.
    console.click("room-mute")
    console.wait(lambda d: _dialog_open(console), "the room-wide confirmation")
    driver.find_element(By.ID, "confirm-ok").send_keys(Keys.ENTER)
    console.wait_status("Muted 1 microphone in acme-standup")
    assert console.track("acme-standup", "alice", "microphone").muted is True
