"""Audit signals, sent after LiveKit confirmed an action (or after a refusal).

Connect a receiver the Flask way::

    from flask_livekit_moderation import signals

    @signals.participant_removed.connect_via(app)
    def on_removed(sender, **data): ...

Receivers run in the request thread before the answer is sent. One that raises is logged
and skipped: the caller still gets the answer that matches what LiveKit did.

Every signal is sent with the app as sender and these keyword arguments. Every signal of a
moderator's request (all but ``livekit_breaker_changed``, ``banned_participant_removed``,
``livekit_webhook_received`` and ``bans_reconciled``) also carries ``actor``: the acting
moderator, i.e. the credential's ``"actor"`` (or the ``AuthContext``'s), else its auth id
(``None`` for neither; ``docs/scopes.md``).

- ``participant_removed``: ``auth_id``, ``room_name``, ``participant_identity``, ``outcome="removed"``.
- ``track_mute_changed``: ``auth_id``, ``room_name``, ``participant_identity``, ``track_sid``,
  ``muted`` (the state LiveKit reported), ``outcome`` (``"muted"`` or ``"unmuted"``).
- ``moderation_refused``: ``auth_id``, ``action`` (``"remove"``, ``"mute"``, ``"list"``),
  ``room_name``, ``participant_identity``, ``track_sid``, ``muted`` (``None`` where not
  known, e.g. for a 401 answered before the body was read), ``status`` (401 or 404) and
  ``outcome`` (the error code: ``MISSING_TOKEN``, ``UNAUTHORIZED``, ``FORBIDDEN``,
  ``PARTICIPANT_NOT_FOUND`` or ``ROOM_NOT_FOUND``).
- ``moderation_finished``: once for every request that reached a moderation route, whatever
  its outcome (success, 400, 401, 403, 404, 413, 415, 5xx): ``action``, ``auth_id``,
  ``room_name``, ``participant_identity``, ``track_sid`` (``None`` where not known),
  ``outcome`` (the error code, or ``"removed"``, ``"muted"``, ``"unmuted"``, ``"listed"``),
  ``livekit_calls`` (the LiveKit methods called, in order), ``duration_ms`` and ``status``
  (the HTTP status answered). The audit log record carries the same fields as attributes
  named ``moderation_<field>``. Use it for metrics.
- ``livekit_breaker_changed``: a LiveKit circuit breaker changed state in this process:
  ``state`` and ``previous`` (``"closed"``, ``"open"``, ``"half_open"``), ``failures``
  (consecutive unavailable outcomes), ``retry_after`` (seconds, when open), ``scope``
  (``"livekit"``: the app's breaker, opened by failures that show LiveKit down;
  ``"caller"``: one caller's, opened by its own requests passing the deadline) and
  ``auth_id`` (the caller's, for ``"caller"``; ``None`` otherwise).
- ``participant_permissions_changed``: LiveKit accepted a permission update: ``auth_id``,
  ``room_name``, ``participant_identity``, ``permission`` (the permission LiveKit now holds,
  as the route answers it), ``previous`` (the one it held before, same form),
  ``unpublished_tracks`` (``[{"track_sid", "source"}]`` LiveKit unpublished for it) and
  ``outcome="permissions_updated"``.
- ``room_mute_finished``: a room mute was answered 200: ``auth_id``, ``room_name``,
  ``muted``, ``sources``, ``except_identities``, ``tracks`` and ``failed`` (as the route
  answers them) and ``outcome`` (``"muted"`` or ``"unmuted"``).

The two routes of permissions and room mute have ``action`` ``"permissions"`` and
``"room_mute"`` in ``moderation_refused`` and ``moderation_finished``; their ``outcome`` there is
``"permissions_updated"``, ``"muted"`` or ``"unmuted"`` (or the error code).

Bans and LiveKit's webhooks:

- ``participant_banned`` (POST /livekit/bans, after the ban is recorded and LiveKit answered):
  ``auth_id`` (the caller), ``room_name``, ``participant_identity``, ``room_owner`` (the
  room's auth_id, None for a room with no owner), ``expires_at`` (aware UTC datetime),
  ``reason``, ``removed`` (bool) and ``outcome="banned"``.
- ``ban_lifted`` (DELETE /livekit/bans), once per active ban deleted: ``auth_id``,
  ``room_name``, ``participant_identity``, ``room_owner``, ``outcome="lifted"``.
- ``banned_participant_removed`` (the webhook route, or the reconciler, removed a banned
  participant who joined): ``room_owner``, ``room_name``, ``participant_identity``,
  ``participant_sid``, ``event_id`` (``None`` from the reconciler), ``expires_at``, ``reason``,
  ``source`` (``"webhook"`` or ``"reconciler"``), ``outcome="removed"``. No caller:
  ``auth_id`` is absent.
- ``bans_reconciled``: one reconciler pass over bans and locked rooms ended (in the process that
  held the reconciler's lease, or a ``flask livekit-moderation reconcile`` run): ``rooms`` (rooms
  with an active ban or a lock, as (owner, room) pairs), ``rooms_checked`` (rooms whose
  participants were listed: running and still that owner's), ``livekit_calls`` (the LiveKit
  methods called, in order; ``[]`` when no ban is active), ``removed`` (``[{"room_owner",
  "room_name", "participant_identity", "participant_sid"}]``), ``unadmitted`` (the same, for those
  removed from a locked room that had not admitted them), ``duration_ms`` and ``outcome``
  (``"reconciled"``, or the error code that stopped the pass, e.g. ``LIVEKIT_UNAVAILABLE``,
  ``BAN_STORE_UNAVAILABLE``). Sent with the app as sender, from the reconciler's thread, inside an
  app context.
- ``livekit_webhook_received``: every verified LiveKit webhook the route answered 200:
  ``event`` (its name, e.g. ``"participant_joined"``), ``event_id``, ``room_name``,
  ``participant_identity`` (None when the event names no participant), ``webhook_event``
  (the livekit.protocol ``WebhookEvent``) and ``removed`` (bool). LiveKit may deliver an
  event more than once: deduplicate on ``event_id``.

The lobby (locked rooms). Each carries ``room_owner`` (the lobby's owner: the room's auth_id,
None for a room with no owner) and ``auth_id`` (the acting caller: the moderator, None for a
caller for all rooms; for a knock, None: the participant acts, named by ``participant_identity``):

- ``room_locked`` / ``room_unlocked`` (POST /livekit/room/lock): ``auth_id``, ``room_owner``,
  ``room_name``, ``outcome`` (``"locked"`` / ``"unlocked"``); ``room_locked`` also
  ``admitted`` (the identities present at the lock, admitted by it) and ``locked_at`` (aware
  UTC datetime; the first lock's when the room was already locked).
- ``lobby_knocked`` (``moderation.knock()``, only in a locked room): ``auth_id`` (None),
  ``room_owner``, ``room_name``, ``participant_identity``, ``name``, ``status``
  (``"waiting"``, ``"admitted"`` or ``"denied"``), ``knocked_at`` (aware UTC datetime or None),
  ``outcome="knocked"``.
- ``lobby_admitted`` / ``lobby_denied`` (POST /livekit/lobby/admit, /deny): ``auth_id``,
  ``room_owner``, ``room_name``, ``participant_identities`` (list), ``outcome``
  (``"admitted"`` / ``"denied"``).
- ``unadmitted_participant_removed`` (the webhook route, or the reconciler, removed someone who
  joined a locked room without being admitted): ``room_owner``, ``room_name``,
  ``participant_identity``, ``participant_sid``, ``event_id`` (None from the reconciler),
  ``source`` (``"webhook"`` or ``"reconciler"``), ``outcome="removed"``. No caller: ``auth_id``
  is absent.
"""

import logging
from typing import Any

from blinker import NamedSignal, Namespace
from flask import current_app

logger = logging.getLogger("flask_livekit_moderation")

_signals = Namespace()

participant_removed = _signals.signal("livekit-moderation.participant-removed")
track_mute_changed = _signals.signal("livekit-moderation.track-mute-changed")
moderation_refused = _signals.signal("livekit-moderation.moderation-refused")
moderation_finished = _signals.signal("livekit-moderation.moderation-finished")
livekit_breaker_changed = _signals.signal("livekit-moderation.livekit-breaker-changed")
participant_permissions_changed = _signals.signal("livekit-moderation.participant-permissions-changed")
room_mute_finished = _signals.signal("livekit-moderation.room-mute-finished")
participant_banned = _signals.signal("livekit-moderation.participant-banned")
ban_lifted = _signals.signal("livekit-moderation.ban-lifted")
banned_participant_removed = _signals.signal("livekit-moderation.banned-participant-removed")
livekit_webhook_received = _signals.signal("livekit-moderation.livekit-webhook-received")
bans_reconciled = _signals.signal("livekit-moderation.bans-reconciled")
room_locked = _signals.signal("livekit-moderation.room-locked")
room_unlocked = _signals.signal("livekit-moderation.room-unlocked")
lobby_knocked = _signals.signal("livekit-moderation.lobby-knocked")
lobby_admitted = _signals.signal("livekit-moderation.lobby-admitted")
lobby_denied = _signals.signal("livekit-moderation.lobby-denied")
unadmitted_participant_removed = _signals.signal("livekit-moderation.unadmitted-participant-removed")


def notify(signal: NamedSignal, **data: Any) -> None:
    """Send ``signal`` from the current app to each receiver, isolating their failures.

    The action is already done when a signal goes out, so a receiver that raises is
    logged and the caller still gets the answer that matches what LiveKit did.
    """
    if not signal.receivers:  # the common case: nobody listens
        return
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    for receiver in signal.receivers_for(app):
        try:
            receiver(app, **data)
        except Exception:  # noqa: BLE001 - a host receiver must not turn a done action into a 500
            logger.exception("receiver of %s raised", signal.name)


__all__ = [
    "ban_lifted",
    "bans_reconciled",
    "banned_participant_removed",
    "livekit_breaker_changed",
    "livekit_webhook_received",
    "lobby_admitted",
    "lobby_denied",
    "lobby_knocked",
    "moderation_finished",
    "moderation_refused",
    "participant_banned",
    "participant_permissions_changed",
    "participant_removed",
    "room_locked",
    "room_mute_finished",
    "room_unlocked",
    "track_mute_changed",
    "unadmitted_participant_removed",
]
