"""What is kept of a request sent with an ``Idempotency-Key``, and how a retry is recognised."""

from __future__ import annotations

import enum
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from flask import Response

#: The request header naming a retryable request (IETF draft ``httpapi-idempotency-key-header``).
HEADER = "Idempotency-Key"
#: The answer header saying the answer is the kept answer of an earlier request with the key.
REPLAYED_HEADER = "Idempotent-Replayed"
#: Longest key accepted, in characters.
MAX_KEY_LENGTH = 255
#: Seconds a completed answer (and the "outcome unknown" mark of a write) is kept: 24 hours.
KEEP_SECONDS = 24 * 3600.0
#: Seconds a claim may outlive the longest a request can take (LiveKit's deadline and the wait
#: for a place): the store calls of the request, and slack. A worker that died mid-request
#: holds its keys no longer than that.
CLAIM_MARGIN = 10.0
#: The answer headers kept and replayed besides the body (the others are the host's, added again
#: to the replayed answer by its own hooks, or the server's).
KEPT_HEADERS = ("Content-Type", "Retry-After", "WWW-Authenticate", "Location")


class State(str, enum.Enum):
    """Where a key stands in the store."""

    #: A request with the key is being answered (until its claim expires).
    RUNNING = "running"
    #: The first completed answer (2xx or 4xx) is kept.
    DONE = "done"
    #: An attempt sent a write to LiveKit and got no answer (``LIVEKIT_OUTCOME_UNKNOWN``); the
    #: next attempt runs again, knowing that.
    UNKNOWN = "unknown"


class Verdict(str, enum.Enum):
    """What :meth:`~.store.Records.begin` decided for a request."""

    #: The request holds the key now: it runs.
    CLAIMED = "claimed"
    #: The key's first request was answered: replay that answer.
    REPLAY = "replay"
    #: The key was used for a different request: 422.
    REUSED = "reused"
    #: The key's first request is still running: 409.
    RUNNING = "running"


@dataclass(frozen=True)
class Kept:
    """A completed answer, as it is replayed: status, body and the headers that matter."""

    status: int
    body: str
    headers: tuple[tuple[str, str], ...]
    #: The outcome the first request logged (``"removed"``, ``"PARTICIPANT_NOT_FOUND"``).
    outcome: str | None

    @classmethod
    def of(cls, response: Response, outcome: str | None) -> Kept:
        """What to keep of ``response``."""
        headers = tuple((name, response.headers[name]) for name in KEPT_HEADERS if name in response.headers)
        return cls(response.status_code, response.get_data(as_text=True), headers, outcome)

    def dumps(self) -> str:
        """As one JSON text, for a store."""
        return json.dumps(
            {"status": self.status, "body": self.body, "headers": self.headers, "outcome": self.outcome},
            ensure_ascii=False,
            separators=(",", ":"),
        )

    @classmethod
    def loads(cls, text: str) -> Kept:
        """What :meth:`dumps` gave."""
        data = json.loads(text)
        headers = tuple((str(name), str(value)) for name, value in data["headers"])
        return cls(int(data["status"]), str(data["body"]), headers, data["outcome"])

    def replay(self) -> Response:
        """The answer again, marked ``Idempotent-Replayed: true``."""
        response = Response(self.body, status=self.status)
        for name, value in self.headers:
            response.headers[name] = value
        response.headers[REPLAYED_HEADER] = "true"
        return response


@dataclass(frozen=True)
class Begun:
    """What :meth:`~.store.Records.begin` decided, with the kept answer to replay."""

    verdict: Verdict
    kept: Kept | None = None
    #: The request claimed a key whose last attempt ended ``LIVEKIT_OUTCOME_UNKNOWN``.
    after_unknown: bool = False


def valid_key(value: str) -> bool:
    """1 to :data:`MAX_KEY_LENGTH` printable ASCII characters (space to ``~``)."""
    return 0 < len(value) <= MAX_KEY_LENGTH and all(" " <= char <= "~" for char in value)


def scope_of(auth_id: str | None) -> str:
    """The namespace of a caller's keys: its auth id (callers without one share one namespace)."""
    return "*" if auth_id is None else "id:" + auth_id


def fingerprint(method: str, path: str, body: Mapping[str, Any]) -> str:
    """The SHA-256 of the canonical request: method, path and the JSON body with sorted keys.

    Two bodies that differ only in key order or spacing are the same request; any other change
    (a value, a key added, another path) is another request.
    """
    canonical = json.dumps(
        [method.upper(), path, body], sort_keys=True, ensure_ascii=False, separators=(",", ":")
    )
    return hashlib.sha256(canonical.encode("utf-8", "surrogatepass")).hexdigest()
