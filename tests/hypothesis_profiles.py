"""Hypothesis settings for the hostile-input suite: a quick default run and a long soak.

The default run keeps ``tests/test_hostile_input.py`` within the suite's time budget. For a
long run, load this module as a plugin so the profile exists when pytest reads the option::

    python -m pytest -p tests.hypothesis_profiles --hypothesis-profile=soak tests/test_hostile_input.py

``HOSTILE_SOAK_EXAMPLES`` (an environment variable) changes the soak's examples per test.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

#: The app and the stand-in are served once per test function and reset between examples;
#: every example is a real HTTP round trip, so there is no per-example deadline.
_QUICK = settings(
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    print_blob=True,
)

settings.register_profile("hostile", _QUICK)
settings.register_profile("soak", _QUICK, max_examples=int(os.environ.get("HOSTILE_SOAK_EXAMPLES", "3000")))


def hostile(max_examples: int) -> settings:
    """Settings for one property test: ``max_examples`` by default, the soak's under ``soak``."""
    if settings.get_current_profile_name() == "soak":
        return settings(settings.get_profile("soak"))
    return settings(settings.get_profile("hostile"), max_examples=max_examples)
