"""Safe retries: the ``Idempotency-Key`` header of every POST and DELETE moderation route.

``model`` is what is kept (a completed answer, the state of a key) and how a request is
compared with the first one; ``store`` where keys are kept (the same store as bans: memory,
SQLite, PostgreSQL, Redis, so every worker and host agrees); ``retries`` the step of
:func:`~..pipeline.dispatch` that claims a key, replays a kept answer, and keeps or releases
the key once the request is answered. See ``docs/retries.md``.
"""

from .model import HEADER, KEEP_SECONDS, REPLAYED_HEADER, Kept
from .retries import Claim, applies, begin, end
from .store import Records, records_for

__all__ = [
    "HEADER",
    "KEEP_SECONDS",
    "REPLAYED_HEADER",
    "Claim",
    "Kept",
    "Records",
    "applies",
    "begin",
    "end",
    "records_for",
]
