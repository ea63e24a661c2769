"""Audit signals, sent after LiveKit confirmed an action (or after a refusal).

Connect a receiver the Flask way::

    from flask_livekit_moderation import signals

    @signals.participant_removed.connect_via(app)
    def on_removed(sender, **data): ...

Every signal is sent with the app as sender and these keyword arguments:

- ``participant_removed``: ``auth_id``, ``room_name``, ``participant_identity``, ``outcome="removed"``.
- ``track_mute_changed``: ``auth_id``, ``room_name``, ``participant_identity``, ``track_sid``,
  ``muted`` (the state LiveKit reported), ``outcome`` (``"muted"`` or ``"unmuted"``).
- ``moderation_refused``: ``auth_id``, ``action`` (``"remove"``, ``"mute"``, ``"list"``),
  ``room_name``, ``participant_identity``, ``track_sid``, ``muted`` (``None`` where not
  known, e.g. for a 401 answered before the body was read), ``status`` (401 or 404) and
  ``outcome`` (the error code: ``MISSING_TOKEN``, ``UNAUTHORIZED`` or ``PARTICIPANT_NOT_FOUND``).
"""

from blinker import Namespace

_signals = Namespace()

participant_removed = _signals.signal("livekit-moderation.participant-removed")
track_mute_changed = _signals.signal("livekit-moderation.track-mute-changed")
moderation_refused = _signals.signal("livekit-moderation.moderation-refused")

__all__ = ["participant_removed", "track_mute_changed", "moderation_refused"]
