"""RoomService handlers: one function per twirp method, LiveKit's order of checks.

Each mirrors livekit/livekit ``pkg/service/roomservice.go`` plus, for a single
node, ``roommanager.go`` and ``localstore.go``.  Grant checks are ``auth.go``'s
``EnsureAdminPermission`` / ``EnsureCreatePermission`` / ``EnsureListPermission``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from google.protobuf.message import Message
from livekit.api import VideoGrants
from livekit.protocol import models
from livekit.protocol import room as room_pb

from .state import MAX_NAME_BYTES, EmulatorState, copy_message
from .tokens import ERR_PERMISSION_DENIED
from .twirp import TwirpError

__all__ = ["REQUEST_TYPES", "UNMODELLED", "RoomService"]

# LiveKit's default limits (pkg/config/config.go).
MAX_METADATA_SIZE = 512 * 1024
MAX_ATTRIBUTES_SIZE = 64 * 1024
MAX_PARTICIPANT_NAME_LENGTH = 256

#: Request message of each modelled method.
REQUEST_TYPES: dict[str, type[Message]] = {
    "CreateRoom": room_pb.CreateRoomRequest,
    "ListRooms": room_pb.ListRoomsRequest,
    "DeleteRoom": room_pb.DeleteRoomRequest,
    "ListParticipants": room_pb.ListParticipantsRequest,
    "GetParticipant": room_pb.RoomParticipantIdentity,
    "RemoveParticipant": room_pb.RoomParticipantIdentity,
    "MutePublishedTrack": room_pb.MuteRoomTrackRequest,
    "UpdateParticipant": room_pb.UpdateParticipantRequest,
    "UpdateRoomMetadata": room_pb.UpdateRoomMetadataRequest,
}

#: RoomService methods a real server has but this stand-in does not model.
UNMODELLED = frozenset(
    {"UpdateSubscriptions", "SendData", "ForwardParticipant", "MoveParticipant", "PerformRpc"}
)

Handler = Callable[[Any, "VideoGrants | None"], Message]


def _denied() -> TwirpError:
    # roomservice.go: twirpAuthError(ErrPermissionDenied)
    return TwirpError("unauthenticated", ERR_PERMISSION_DENIED)


def _invalid_argument(argument: str, limit: int) -> TwirpError:
    # twirp.InvalidArgumentError(argument, validationMsg): msg "<argument> <validationMsg>"
    return TwirpError("invalid_argument", f"{argument} {limit}", meta={"argument": argument})


def _has_admin(grants: VideoGrants | None, room: str) -> bool:
    # auth.go EnsureAdminPermission: roomAdmin AND exact room match.
    return grants is not None and bool(grants.room_admin) and grants.room == room


class RoomService:
    """The RoomService of one single-node LiveKit server over an :class:`EmulatorState`.

    :param mute_unknown_delay: seconds before a call routed to a participant nobody
        serves answers ``unavailable`` (psrpc's RPC wait).
    :param enable_remote_unmute: LiveKit's ``room.enable_remote_unmute``.
    """

    def __init__(
        self, state: EmulatorState, mute_unknown_delay: float = 1.0, enable_remote_unmute: bool = False
    ) -> None:
        self.state = state
        self.mute_unknown_delay = float(mute_unknown_delay)
        self.enable_remote_unmute = enable_remote_unmute
        self.handlers: dict[str, Handler] = {
            "CreateRoom": self.create_room,
            "ListRooms": self.list_rooms,
            "DeleteRoom": self.delete_room,
            "ListParticipants": self.list_participants,
            "GetParticipant": self.get_participant,
            "RemoveParticipant": self.remove_participant,
            "MutePublishedTrack": self.mute_published_track,
            "UpdateParticipant": self.update_participant,
            "UpdateRoomMetadata": self.update_room_metadata,
        }

    def create_room(self, req: room_pb.CreateRoomRequest, grants: VideoGrants | None) -> models.Room:
        """CreateRoom: returns the existing room unchanged when the name is taken."""
        if grants is None or not grants.room_create:
            raise _denied()
        if len(req.name.encode()) > MAX_NAME_BYTES:
            # fmt.Errorf("%w: max length %d", ErrRoomNameExceedsLimits, ...) reaches twirp
            # through psrpcError.As, which keeps only the psrpc message.
            raise TwirpError("invalid_argument", "room name length exceeds limits")
        if len(req.metadata.encode()) > MAX_METADATA_SIZE:
            raise _invalid_argument("metadata size exceeds limits", MAX_METADATA_SIZE)
        with self.state.lock:
            room = self.state.rooms.get(req.name)
            if room is None:
                room = self.state.new_room_locked(
                    req.name, req.metadata, req.empty_timeout, req.departure_timeout, req.max_participants
                )
            return copy_message(room)

    def list_rooms(
        self, req: room_pb.ListRoomsRequest, grants: VideoGrants | None
    ) -> room_pb.ListRoomsResponse:
        """ListRooms: unknown names are simply absent."""
        if grants is None or not grants.room_list:
            raise _denied()
        resp = room_pb.ListRoomsResponse()
        with self.state.lock:
            rooms = self.state.rooms
            if req.names:
                wanted = [rooms[n] for n in dict.fromkeys(req.names) if n in rooms]
            else:
                wanted = list(rooms.values())
            resp.rooms.extend(wanted)  # copies
        return resp

    def delete_room(
        self, req: room_pb.DeleteRoomRequest, grants: VideoGrants | None
    ) -> room_pb.DeleteRoomResponse:
        """DeleteRoom: the store is asked first, so an unknown room is not_found."""
        if grants is None or not grants.room_create:
            raise _denied()
        with self.state.lock:
            if not self.state.delete_room_locked(req.room):
                raise TwirpError("not_found", "requested room does not exist")
        return room_pb.DeleteRoomResponse()

    def list_participants(
        self, req: room_pb.ListParticipantsRequest, grants: VideoGrants | None
    ) -> room_pb.ListParticipantsResponse:
        """ListParticipants: localstore.go answers an unknown room with an empty list."""
        if not _has_admin(grants, req.room):
            raise _denied()
        resp = room_pb.ListParticipantsResponse()
        with self.state.lock:
            resp.participants.extend(self.state.participants.get(req.room, {}).values())
        return resp

    def _known_participant_locked(self, room: str, identity: str) -> models.ParticipantInfo:
        # roomservice.go: GetParticipant / UpdateParticipant answer ErrParticipantNotFound.
        p = self.state.participant_locked(room, identity)
        if p is None:
            raise TwirpError("not_found", "participant does not exist")
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
            if not self.state.remove_participant_locked(req.room, req.identity):
                raise TwirpError("not_found", "participant does not exist")
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
                # The psrpc request goes to a participant topic nobody serves.
                raise TwirpError("unavailable", "no response from servers", delay=self.mute_unknown_delay)
            # roommanager.go checks remote unmute only after finding the participant.
            if not req.muted and not self.enable_remote_unmute:
                raise TwirpError("failed_precondition", "remote unmute not enabled")
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
            # participant.UpdateMetadata: empty name/metadata mean "unchanged".
            if req.name:
                p.name = req.name
            if req.metadata:
                p.metadata = req.metadata
            for k, v in req.attributes.items():
                if v:
                    p.attributes[k] = v
                else:
                    p.attributes.pop(k, None)
            if req.HasField("permission"):
                p.permission.CopyFrom(req.permission)
            p.version += 1
            return copy_message(p)

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
                raise TwirpError("not_found", "requested room does not exist")
            room.metadata = req.metadata
            return copy_message(room)
