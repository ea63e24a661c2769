"""RoomService handlers: one function per twirp method, LiveKit's order of checks.

Each mirrors livekit/livekit ``pkg/service/roomservice.go`` plus, for a single
node, ``roommanager.go`` and ``localstore.go``.  Grant checks are ``auth.go``'s
``EnsureAdminPermission`` / ``EnsureCreatePermission`` / ``EnsureListPermission``
/ ``EnsureDestRoomPermission``.

Error texts: LiveKit installs ``xtwirp.DefaultServerOptions()`` (livekit/protocol
``utils/xtwirp/errors.go``), whose ``ToError`` rebuilds every non-twirp error (the
psrpc errors of ``pkg/service/errors.go`` and psrpc's own ``ErrNoResponse``) as
``twirp.NewError(code, "twirp error unknown: <text>")``; errors that already are
twirp errors (grant failures, ``twirp.InvalidArgumentError`` limits) keep their text.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

from google.protobuf.message import Message
from livekit.api import VideoGrants
from livekit.protocol import models
from livekit.protocol import room as room_pb

from .state import MAX_NAME_BYTES, EmulatorState, copy_message
from .tokens import ERR_PERMISSION_DENIED
from .twirp import TwirpError

__all__ = ["REQUEST_TYPES", "UNMODELLED", "RoomService", "psrpc_error"]

# LiveKit's default limits (pkg/config/config.go).
MAX_METADATA_SIZE = 512 * 1024
MAX_ATTRIBUTES_SIZE = 64 * 1024
MAX_PARTICIPANT_NAME_LENGTH = 256

#: Request message of each method.
REQUEST_TYPES: dict[str, type[Message]] = {
    "CreateRoom": room_pb.CreateRoomRequest,
    "ListRooms": room_pb.ListRoomsRequest,
    "DeleteRoom": room_pb.DeleteRoomRequest,
    "ListParticipants": room_pb.ListParticipantsRequest,
    "GetParticipant": room_pb.RoomParticipantIdentity,
    "RemoveParticipant": room_pb.RoomParticipantIdentity,
    "MutePublishedTrack": room_pb.MuteRoomTrackRequest,
    "UpdateParticipant": room_pb.UpdateParticipantRequest,
    "UpdateSubscriptions": room_pb.UpdateSubscriptionsRequest,
    "SendData": room_pb.SendDataRequest,
    "UpdateRoomMetadata": room_pb.UpdateRoomMetadataRequest,
    "ForwardParticipant": room_pb.ForwardParticipantRequest,
    "MoveParticipant": room_pb.MoveParticipantRequest,
    "PerformRpc": room_pb.PerformRpcRequest,
}

#: Methods whose success path needs a connected client, which the stand-in does not have.
UNMODELLED: frozenset[str] = frozenset()

Handler = Callable[[Any, "VideoGrants | None"], Message]


def psrpc_error(code: str, text: str, delay: float = 0.0) -> TwirpError:
    """A psrpc error as a client reads it through xtwirp's ToError (see module doc)."""
    return TwirpError(code, f"twirp error unknown: {text}", delay=delay)


def _denied() -> TwirpError:
    # roomservice.go: twirpAuthError(ErrPermissionDenied)
    return TwirpError("unauthenticated", ERR_PERMISSION_DENIED)


def _invalid_argument(argument: str, limit: int | str) -> TwirpError:
    # twirp.InvalidArgumentError(argument, validationMsg): msg "<argument> <validationMsg>"
    return TwirpError("invalid_argument", f"{argument} {limit}", meta={"argument": argument})


def _has_admin(grants: VideoGrants | None, room: str) -> bool:
    # auth.go EnsureAdminPermission: roomAdmin AND exact room match.
    return grants is not None and bool(grants.room_admin) and grants.room == room


def _participant_not_found() -> TwirpError:
    return psrpc_error("not_found", "participant does not exist")  # ErrParticipantNotFound


def _room_not_found() -> TwirpError:
    return psrpc_error("not_found", "requested room does not exist")  # ErrRoomNotFound


#: The RPC wait of a call to a participant/room topic nobody serves: 3 psrpc attempts
#: x the 1 s affinity timeout (livekit/protocol ``rpc/typed_api.go``, psrpc ``client.go``).
DEFAULT_RPC_WAIT = 3.0


class RoomService:
    """The RoomService of one single-node LiveKit server over an :class:`EmulatorState`.

    :param mute_unknown_delay: seconds before a call routed to a participant or room
        topic nobody serves answers ``unavailable`` (psrpc's RPC wait: 3 attempts,
        ``DefaultPSRPCConfig`` MaxAttempts in livekit/protocol ``rpc/typed_api.go``, each
        waiting the 1 s affinity timeout, psrpc ``client.go``; so 3 s by default).
    :param enable_remote_unmute: LiveKit's ``room.enable_remote_unmute``.
    :param shuffle: answer ListRooms / ListParticipants in a random order, as LiveKit's
        Go maps do, so nobody can depend on the order.
    """

    def __init__(
        self,
        state: EmulatorState,
        mute_unknown_delay: float = DEFAULT_RPC_WAIT,
        enable_remote_unmute: bool = False,
        shuffle: bool = False,
    ) -> None:
        self.state = state
        self.mute_unknown_delay = float(mute_unknown_delay)
        self.enable_remote_unmute = enable_remote_unmute
        self.shuffle = shuffle
        self.handlers: dict[str, Handler] = {
            "CreateRoom": self.create_room,
            "ListRooms": self.list_rooms,
            "DeleteRoom": self.delete_room,
            "ListParticipants": self.list_participants,
            "GetParticipant": self.get_participant,
            "RemoveParticipant": self.remove_participant,
            "MutePublishedTrack": self.mute_published_track,
            "UpdateParticipant": self.update_participant,
            "UpdateSubscriptions": self.update_subscriptions,
            "SendData": self.send_data,
            "UpdateRoomMetadata": self.update_room_metadata,
            "ForwardParticipant": self.forward_participant,
            "MoveParticipant": self.move_participant,
            "PerformRpc": self.perform_rpc,
        }

    def _no_response(self) -> TwirpError:
        # The psrpc request goes to a topic nobody serves: psrpc.ErrNoResponse after the wait.
        return psrpc_error("unavailable", "no response from servers", delay=self.mute_unknown_delay)

    def _ordered(self, items: list[Any]) -> list[Any]:
        if self.shuffle:
            random.shuffle(items)
        return items

    def create_room(self, req: room_pb.CreateRoomRequest, grants: VideoGrants | None) -> models.Room:
        """CreateRoom: returns the existing room unchanged when the name is taken."""
        if grants is None or not grants.room_create:
            raise _denied()
        if len(req.name.encode()) > MAX_NAME_BYTES:
            # fmt.Errorf("%w: max length %d", ErrRoomNameExceedsLimits, ...): ToError keeps the
            # whole wrapped text and the psrpc code found by status.FromError.
            raise psrpc_error(
                "invalid_argument", f"room name length exceeds limits: max length {MAX_NAME_BYTES}"
            )
        if len(req.metadata.encode()) > MAX_METADATA_SIZE:
            raise _invalid_argument("metadata size exceeds limits", MAX_METADATA_SIZE)
        with self.state.lock:
            room = self.state.rooms.get(req.name)
            if room is None:
                room = self.state.new_room_locked(
                    req.name, req.metadata, req.empty_timeout, req.departure_timeout, req.max_participants
                )
            return self.state.shown_room_locked(req.name)

    def list_rooms(
        self, req: room_pb.ListRoomsRequest, grants: VideoGrants | None
    ) -> room_pb.ListRoomsResponse:
        """ListRooms: unknown names are simply absent."""
        if grants is None or not grants.room_list:
            raise _denied()
        resp = room_pb.ListRoomsResponse()
        with self.state.lock:
            # localstore.go: the stored room is Room.ToProto(), whose counts lag (room.go
            # roomUpdateInterval); see EmulatorState.shown_room_locked.
            rooms = self.state.rooms
            names = dict.fromkeys(req.names) if req.names else rooms
            wanted = [self.state.shown_room_locked(n) for n in names if n in rooms]
            resp.rooms.extend(self._ordered(wanted))
        return resp

    def delete_room(
        self, req: room_pb.DeleteRoomRequest, grants: VideoGrants | None
    ) -> room_pb.DeleteRoomResponse:
        """DeleteRoom: the store is asked first, so an unknown room is not_found."""
        if grants is None or not grants.room_create:
            raise _denied()
        with self.state.lock:
            if not self.state.delete_room_locked(req.room):
                raise _room_not_found()
        return room_pb.DeleteRoomResponse()

    def list_participants(
        self, req: room_pb.ListParticipantsRequest, grants: VideoGrants | None
    ) -> room_pb.ListParticipantsResponse:
        """ListParticipants: localstore.go answers an unknown room with an empty list."""
        if not _has_admin(grants, req.room):
            raise _denied()
        resp = room_pb.ListParticipantsResponse()
        with self.state.lock:
            resp.participants.extend(self._ordered(list(self.state.participants.get(req.room, {}).values())))
        return resp

    def _known_participant_locked(self, room: str, identity: str) -> models.ParticipantInfo:
        # roomservice.go: the store's LoadParticipant / HasParticipant answer ErrParticipantNotFound.
        p = self.state.participant_locked(room, identity)
        if p is None:
            raise _participant_not_found()
        return p

    def get_participant(
        self, req: room_pb.RoomParticipantIdentity, grants: VideoGrants | None
    ) -> models.ParticipantInfo:
        """GetParticipant: unknown room or identity is not_found."""
        if not _has_admin(grants, req.room):
            raise _denied()
        with self.state.lock:
            return copy_message(self._known_participant_locked(req.room, req.identity))

    def remove_participant(
        self, req: room_pb.RoomParticipantIdentity, grants: VideoGrants | None
    ) -> room_pb.RemoveParticipantResponse:
        """RemoveParticipant: the store's HasParticipant check answers not_found."""
        if not _has_admin(grants, req.room):
            raise _denied()
        with self.state.lock:
            if not self.state.remove_participant_locked(req.room, req.identity, req.revoke_token_ts):
                raise _participant_not_found()
        return room_pb.RemoveParticipantResponse()

    def mute_published_track(
        self, req: room_pb.MuteRoomTrackRequest, grants: VideoGrants | None
    ) -> room_pb.MuteRoomTrackResponse:
        """MutePublishedTrack: routed straight to the participant's topic (no store check)."""
        if not _has_admin(grants, req.room):
            raise _denied()
        with self.state.lock:
            p = self.state.participant_locked(req.room, req.identity)
            if p is None:
                raise self._no_response()
            # roommanager.go checks remote unmute only after finding the participant.
            if not req.muted and not self.enable_remote_unmute:
                raise psrpc_error("failed_precondition", "remote unmute not enabled")
            resp = room_pb.MuteRoomTrackResponse()
            for track in p.tracks:
                if track.sid == req.track_sid:
                    track.muted = req.muted
                    resp.track.CopyFrom(track)
                    break
            return resp

    def update_participant(
        self, req: room_pb.UpdateParticipantRequest, grants: VideoGrants | None
    ) -> models.ParticipantInfo:
        """UpdateParticipant: size limits first, then the grant, then the store."""
        if len(req.name.encode()) > MAX_PARTICIPANT_NAME_LENGTH:
            raise _invalid_argument("name length exceeds limits", MAX_PARTICIPANT_NAME_LENGTH)
        if len(req.metadata.encode()) > MAX_METADATA_SIZE:
            raise _invalid_argument("metadata size exceeds limits", MAX_METADATA_SIZE)
        if sum(len(k.encode()) + len(v.encode()) for k, v in req.attributes.items()) > MAX_ATTRIBUTES_SIZE:
            raise _invalid_argument("attribute size exceeds limits", MAX_ATTRIBUTES_SIZE)
        if not _has_admin(grants, req.room):
            raise _denied()
        with self.state.lock:
            p = self._known_participant_locked(req.room, req.identity)
            changed = False
            # participant.UpdateMetadata: empty name/metadata mean "unchanged".
            if req.name and req.name != p.name:
                p.name, changed = req.name, True
            if req.metadata and req.metadata != p.metadata:
                p.metadata, changed = req.metadata, True
            for k, v in req.attributes.items():
                if v:
                    changed = changed or p.attributes.get(k) != v
                    p.attributes[k] = v
                elif k in p.attributes:
                    del p.attributes[k]
                    changed = True
            if req.HasField("permission"):
                changed = self.state.set_permission_locked(req.room, p, req.permission) or changed
            if changed:  # participant.go maybeIncVersion: only a dirty participant moves on
                p.version += 1
            return copy_message(p)

    def update_subscriptions(
        self, req: room_pb.UpdateSubscriptionsRequest, grants: VideoGrants | None
    ) -> room_pb.UpdateSubscriptionsResponse:
        """UpdateSubscriptions: goes to the participant's topic; a known one answers ``{}``."""
        if not _has_admin(grants, req.room):
            raise _denied()
        with self.state.lock:
            if self.state.participant_locked(req.room, req.identity) is None:
                raise self._no_response()
        return room_pb.UpdateSubscriptionsResponse()

    def send_data(self, req: room_pb.SendDataRequest, grants: VideoGrants | None) -> room_pb.SendDataResponse:
        """SendData: nonce check, then the room's topic; a live room answers ``{}``."""
        if not _has_admin(grants, req.room):
            raise _denied()
        if len(req.nonce) not in (0, 16):
            raise TwirpError(
                "invalid_argument", f"nonce should be 16-bytes or not present, got: {len(req.nonce)} bytes"
            )
        with self.state.lock:
            if req.room not in self.state.rooms:
                raise self._no_response()
        return room_pb.SendDataResponse()

    def update_room_metadata(
        self, req: room_pb.UpdateRoomMetadataRequest, grants: VideoGrants | None
    ) -> models.Room:
        """UpdateRoomMetadata: size limit first, then the grant, then RoomExists."""
        if len(req.metadata.encode()) > MAX_METADATA_SIZE:
            raise _invalid_argument("metadata size exceeds limits", MAX_METADATA_SIZE)
        if not _has_admin(grants, req.room):
            raise _denied()
        with self.state.lock:
            room = self.state.rooms.get(req.room)
            if room is None:
                raise _room_not_found()
            if room.metadata != req.metadata:
                room.metadata = req.metadata
                # room.go SetMetadata: MarkDirty(true), awaited before the answer
                self.state.counts_changed_locked(req.room, immediate=True)
            return self.state.shown_room_locked(req.room)

    def _move(
        self,
        req: room_pb.ForwardParticipantRequest | room_pb.MoveParticipantRequest,
        grants: VideoGrants | None,
    ) -> None:
        # auth.go EnsureDestRoomPermission: roomAdmin, room and destinationRoom all match.
        if (
            grants is None
            or not grants.room_admin
            or grants.room != req.room
            or grants.destination_room != req.destination_room
        ):
            raise _denied()
        if req.room == req.destination_room:
            raise _invalid_argument("destination room cannot be the same as source room", "")
        with self.state.lock:
            if self.state.participant_locked(req.room, req.identity) is None:
                raise self._no_response()
        # roommanager.go: the open-source server answers errors.New("not implemented"),
        # a plain error that psrpc carries with code unknown.
        raise psrpc_error("unknown", "not implemented")

    def forward_participant(
        self, req: room_pb.ForwardParticipantRequest, grants: VideoGrants | None
    ) -> room_pb.ForwardParticipantResponse:
        """ForwardParticipant: not implemented by a single open-source node."""
        self._move(req, grants)
        return room_pb.ForwardParticipantResponse()  # pragma: no cover - _move always raises

    def move_participant(
        self, req: room_pb.MoveParticipantRequest, grants: VideoGrants | None
    ) -> room_pb.MoveParticipantResponse:
        """MoveParticipant: not implemented by a single open-source node."""
        self._move(req, grants)
        return room_pb.MoveParticipantResponse()  # pragma: no cover - _move always raises

    def perform_rpc(
        self, req: room_pb.PerformRpcRequest, grants: VideoGrants | None
    ) -> room_pb.PerformRpcResponse:
        """PerformRpc: the stand-in's participants have no client to answer an RPC."""
        if not _has_admin(grants, req.room):
            raise _denied()
        if not req.destination_identity:
            raise psrpc_error("invalid_argument", "destination identity is required")
        with self.state.lock:
            if self.state.participant_locked(req.room, req.destination_identity) is None:
                raise self._no_response()
        raise TwirpError("unimplemented", "PerformRpc to a participant is not modelled by LiveKitEmulator")
