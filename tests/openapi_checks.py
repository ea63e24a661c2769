"""What the OpenAPI test modules share: read the document, and compare it with the answers.

Each route's test provokes every status and code it can answer over HTTP; these helpers turn
the document and the answers into comparable (status, code) sets and check each answer
against the schema documented for its status.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import requests
from flask import Flask
from openapi_schema_validator import OAS31Validator
from werkzeug.exceptions import Forbidden

from flask_livekit_moderation import LiveKitModeration
from flask_livekit_moderation.testing import LiveKitEmulator
from tests.helpers import ServedApp, livekit_config


def openapi_document(served: ServedApp, prefix: str = "") -> dict[str, Any]:
    """The app's OpenAPI document, as its route serves it."""
    answer = served.request("GET", prefix + "/livekit/openapi.json")
    assert answer.status_code == 200
    assert answer.headers["Content-Type"] == "application/json"
    document: dict[str, Any] = answer.json()
    return document


def reached_components(document: dict[str, Any], paths: list[str]) -> set[str]:
    """Every component the operations of ``paths`` use, as ``schemas/Name`` or ``securitySchemes/Name``.

    References are followed through the components they reach, so a component an extension
    schema nests is in the set too; so are the security schemes the operations require.
    """
    reached: set[str] = set()
    pending: list[Any] = [document["paths"][path] for path in paths]
    for item in pending[:]:
        for operation in item.values():
            if isinstance(operation, dict):
                reached |= {
                    f"securitySchemes/{name}" for option in operation.get("security", []) for name in option
                }
    while pending:
        node = pending.pop()
        if isinstance(node, list):
            pending += node
        elif isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str):
                _, components, section, name = ref.split("/")
                assert components == "components", ref
                if f"{section}/{name}" not in reached:
                    reached.add(f"{section}/{name}")
                    pending.append(document["components"][section][name])
            pending += node.values()
    return reached


def documented(document: dict[str, Any], path: str, method: str) -> set[tuple[int, str | None]]:
    """(status, code) pairs the document lists for one operation; code None for a success."""
    pairs: set[tuple[int, str | None]] = set()
    for status, response in document["paths"][path][method]["responses"].items():
        if status.startswith("2"):
            pairs.add((int(status), None))
            continue
        content = response["content"]["application/json"]
        codes = content["schema"]["allOf"][1]["properties"]["code"]["enum"]
        # The same codes as examples and in the prose.
        assert sorted(content["examples"]) == sorted(codes)
        assert all(code in response["description"] for code in codes)
        pairs |= {(int(status), code) for code in codes}
    return pairs


def observed(answers: list[requests.Response]) -> set[tuple[int, str | None]]:
    """(status, code) pairs of the answers; code None for a success."""
    return {(a.status_code, None if a.status_code < 300 else a.json()["code"]) for a in answers}


def validate_answer(document: dict[str, Any], path: str, method: str, answer: requests.Response) -> None:
    """The answer's body matches the schema the document gives for its status."""
    response = document["paths"][path][method]["responses"][str(answer.status_code)]
    schema = response["content"]["application/json"]["schema"]
    # The schema's "#/components/..." references resolve against this root.
    OAS31Validator({**schema, "components": document["components"]}).validate(answer.json())
    assert answer.headers["Content-Type"] == "application/json"


#: An app with one place in each LiveKit lane that waits 50 ms at most for it: LIVEKIT_BUSY
#: while another request holds it, however long LiveKit usually takes.
ONE_SLOT = {
    "LIVEKIT_MODERATION_MAX_CONCURRENCY": 1,
    "LIVEKIT_MODERATION_ENFORCEMENT_CONCURRENCY": 1,
    "LIVEKIT_MODERATION_QUEUE_TIMEOUT": 0.05,
}


def while_busy(emu: LiveKitEmulator, send: Callable[[], requests.Response]) -> requests.Response:
    """``send`` while another request holds the only place of a :data:`ONE_SLOT` app: LIVEKIT_BUSY."""
    emu.set_latency(0.5)
    try:
        with ThreadPoolExecutor(1) as pool:
            holder = pool.submit(send)
            time.sleep(0.2)
            refused = send()
            assert holder.result().status_code != 503
    finally:
        emu.set_latency(0)
    return refused


def failing_resolver_app(emulator: LiveKitEmulator, **config: Any) -> Flask:
    """A host app whose auth resolver raises: the ways to reach INTERNAL_ERROR and FORBIDDEN."""
    app = Flask("failing_resolver")
    app.config.update(livekit_config(emulator), LIVEKIT_MODERATION_AUTH_REQUIRED=True, **config)

    def resolver(token: str) -> str | None:
        if token == "forbidden":
            raise Forbidden()
        raise RuntimeError("the host's token store is down")

    LiveKitModeration(app, auth_resolver=resolver)
    return app


#: An app's settings for :func:`retried`: keys in memory, a short LiveKit deadline.
KEYED = {"LIVEKIT_MODERATION_BAN_STORE": "memory://", "LIVEKIT_MODERATION_TIMEOUT": 0.5}


def retried(
    keyed: ServedApp,
    broken_store: ServedApp,
    emu: LiveKitEmulator,
    method: str,
    path: str,
    bodies: tuple[dict[str, Any], dict[str, Any]],
    write: str | None,
) -> list[requests.Response]:
    """The answers an ``Idempotency-Key`` adds to a route, each provoked for real.

    ``keyed`` is an app with :data:`KEYED`; ``bodies`` two different requests of the route (the
    first is sent, the second only to reuse its key); ``write`` the LiveKit method that changes
    something (``None``: the route calls none). A replay of the first answer; 422
    ``IDEMPOTENCY_KEY_REUSED``; 409 ``IDEMPOTENCY_KEY_IN_USE`` (the key claimed in the app's own
    store, as a worker handling it does); 503 ``BAN_STORE_UNAVAILABLE`` from ``broken_store``;
    and 503 ``LIVEKIT_OUTCOME_UNKNOWN`` (``write`` answered after the deadline).
    """
    from flask_livekit_moderation.idempotency import records_for
    from flask_livekit_moderation.idempotency.model import fingerprint, scope_of
    from flask_livekit_moderation.state import app_states

    def send(served: ServedApp, key: str, body: dict[str, Any]) -> requests.Response:
        # Keys of their own per route: one app serves several routes' provocations.
        return served.request(method, path, json=body, headers={"Idempotency-Key": f"{method} {path} {key}"})

    first = send(keyed, "key-1", bodies[0])
    replay = send(keyed, "key-1", bodies[0])
    assert (replay.status_code, replay.content) == (first.status_code, first.content), first.text
    assert replay.headers.get("Idempotent-Replayed") == "true", first.text
    answers = [first, replay, send(keyed, "key-1", bodies[1])]
    assert answers[-1].status_code == 422, answers[-1].text
    (state,) = app_states(keyed.app)
    held = fingerprint(method, path, bodies[0])
    claimed = records_for(state.bans).begin(
        scope_of(None), f"{method} {path} key-2", held, "another-worker", 60
    )
    assert claimed.verdict.value == "claimed"
    answers.append(send(keyed, "key-2", bodies[0]))
    assert answers[-1].status_code == 409, answers[-1].text
    answers.append(send(broken_store, "key-3", bodies[0]))
    if write is not None:
        emu.set_latency(1.0, method=write)
        try:
            answers.append(send(keyed, "key-4", bodies[0]))
        finally:
            emu.set_latency(0, method=write)
        assert answers[-1].json()["code"] == "LIVEKIT_OUTCOME_UNKNOWN", answers[-1].text
        assert emu.wait_idle(5)  # the late write landed
    return answers
