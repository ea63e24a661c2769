"""The call record: every request the stand-in received on a twirp path."""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import asdict, dataclass
from typing import Any

from google.protobuf import json_format
from google.protobuf.message import Message
from livekit.api import VideoGrants

__all__ = ["CallLog", "CallRecord"]


@dataclass(frozen=True)
class CallRecord:
    """One request the emulator received on a twirp path.

    ``request`` is the decoded protobuf (``None`` when it could not be decoded or
    the call never got that far); ``grants`` the verified ``VideoGrants`` (``None``
    when authentication failed or no token was sent); ``status`` the HTTP status
    sent (``None`` if the connection was dropped or the emulator stopped first);
    ``code`` the twirp error code (``None`` on success and on plain-text 401s);
    ``message`` the twirp ``msg`` or plain-text body of an error; ``fault`` the
    injected fault kind that shaped the answer, if any.  ``started``/``finished``
    are ``time.monotonic()`` when the request arrived and when the answer was
    handed to the socket (simulated latency included).
    """

    method: str
    request: Message | None
    grants: VideoGrants | None
    status: int | None
    code: str | None
    started: float
    finished: float
    message: str = ""
    fault: str | None = None

    @property
    def duration(self) -> float:
        """Seconds the emulator spent on the call."""
        return self.finished - self.started

    @property
    def revoke_token_ts(self) -> int | None:
        """A RemoveParticipant's ``revoke_token_ts`` (Unix seconds), ``None`` when it was not set.

        LiveKit Cloud refuses the identity's tokens whose ``nbf`` is before it (livekit/protocol
        ``livekit_room.proto``); the open-source server, like this stand-in, only receives it.
        ``None`` too for other methods and undecodable requests.
        """
        request = self.request
        if self.method != "RemoveParticipant" or request is None:
            return None
        value = int(getattr(request, "revoke_token_ts", 0))
        return value or None

    def to_json(self) -> dict[str, Any]:
        """JSON-friendly dict (used by the ``/_emulator/calls`` control route)."""
        out = {k: v for k, v in asdict(self).items() if k not in ("request", "grants")}
        out["request"] = (
            None
            if self.request is None
            else json_format.MessageToDict(self.request, preserving_proto_field_name=True)
        )
        out["grants"] = None if self.grants is None else asdict(self.grants)
        out["revoke_token_ts"] = self.revoke_token_ts
        return out


class CallLog:
    """Thread-safe, optionally capped list of :class:`CallRecord` plus uncapped counts."""

    def __init__(self, max_calls: int | None = None) -> None:
        self.max_calls = max_calls
        self._lock = threading.Lock()
        self._calls: list[CallRecord] = []
        self._counts: Counter[str] = Counter()

    def add(self, record: CallRecord) -> None:
        """Record one finished call."""
        with self._lock:
            # Ordered by arrival, so insert before later-started calls that
            # happened to finish first.
            calls = self._calls
            i = len(calls)
            while i and calls[i - 1].started > record.started:
                i -= 1
            calls.insert(i, record)
            self._counts[record.method] += 1
            # Trim in batches so the cap costs O(1) amortised per call.
            cap = self.max_calls
            if cap is not None and len(calls) > cap + max(16, cap // 8):
                del calls[: len(calls) - cap]

    def records(self) -> list[CallRecord]:
        """Copy of the records, in arrival order."""
        with self._lock:
            return list(self._calls)

    def names(self) -> list[str]:
        """Method names of the records, in arrival order."""
        with self._lock:
            return [c.method for c in self._calls]

    def counts(self) -> dict[str, int]:
        """Calls per method since the last :meth:`clear` (never capped)."""
        with self._lock:
            return dict(self._counts)

    def clear(self) -> int:
        """Forget records and counts; returns how many calls were counted."""
        with self._lock:
            n = sum(self._counts.values())
            self._calls.clear()
            self._counts.clear()
            return n
