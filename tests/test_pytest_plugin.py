"""The ``livekit_emulator`` pytest plugin is opt-in: installing the package adds nothing to a
host app's test run; ``pytest_plugins`` in its ``conftest.py`` or ``-p`` on the command line
brings the fixture in.

Each test runs a tiny host suite with ``pytester`` in a fresh directory, against what is
installed: a leftover ``pytest11`` entry point from an older install shows up here (reinstall
the package).
"""

from __future__ import annotations

import pytest

PLUGIN = "flask_livekit_moderation.testing.pytest_plugin"

#: A host app's test of the stand-in: started for the test on a free port.
HOST_TEST = """
def test_the_stand_in_is_there(livekit_emulator):
    livekit_emulator.add_room("room-1")
    assert livekit_emulator.running and livekit_emulator.url.startswith("http://127.0.0.1:")
    assert [room.name for room in livekit_emulator.rooms()] == ["room-1"]
"""


@pytest.fixture
def host(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makepyfile(test_host=HOST_TEST)
    return pytester


def test_a_host_suite_that_does_not_opt_in_has_no_livekit_emulator_fixture(host: pytest.Pytester) -> None:
    result = host.runpytest()

    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*fixture 'livekit_emulator' not found*"])
    loaded = host.parseconfig().pluginmanager.list_name_plugin()
    assert PLUGIN not in {getattr(plugin, "__name__", None) for _, plugin in loaded}


def test_pytest_plugins_in_the_host_conftest_opts_in(host: pytest.Pytester) -> None:
    host.makeconftest(f"pytest_plugins = [{PLUGIN!r}]")

    host.runpytest().assert_outcomes(passed=1)


def test_dash_p_opts_in_for_one_run(host: pytest.Pytester) -> None:
    host.runpytest("-p", PLUGIN).assert_outcomes(passed=1)
