"""Authentication of a RoomService call, as LiveKit's ``APIKeyAuthMiddleware`` does it.

Mirrors livekit/livekit ``pkg/service/auth.go`` and livekit/protocol
``auth/verifier.go`` (golang-jwt/jwt v5.3.1, ``errors.go`` / ``validator.go`` for
the texts).  A failure is a plain-text 401, never twirp JSON.
"""

from __future__ import annotations

import time
from typing import Any

import jwt
from livekit.api import VideoGrants

from .state import JoinRefusedError

__all__ = [
    "ERR_INVALID_API_KEY",
    "ERR_INVALID_TOKEN",
    "ERR_MISSING_AUTHORIZATION",
    "ERR_PERMISSION_DENIED",
    "AuthError",
    "TokenChecker",
    "join_token_nbf",
]

# Texts of pkg/service/auth.go; HandleError writes them as the plain-text body.
ERR_MISSING_AUTHORIZATION = "invalid authorization header. Must start with Bearer "
ERR_INVALID_TOKEN = "invalid authorization token"
ERR_INVALID_API_KEY = "invalid API key"
ERR_PERMISSION_DENIED = "permissions denied"

# Signing methods golang-jwt knows; any other "alg" fails ParseAPIToken.
_GO_JWT_ALGS = frozenset(
    "HS256 HS384 HS512 RS256 RS384 RS512 ES256 ES384 ES512 PS256 PS384 PS512 EdDSA none".split()
)
_JWT_LEEWAY = 60.0  # protocol auth/verifier.go tokenLeeway == TokenVerifier's default
_CACHE_LIMIT = 4096


class AuthError(Exception):
    """A plain-text 401 from LiveKit's APIKeyAuthMiddleware; ``str()`` is the body."""


class TokenChecker:
    """Verifies the API token of a call against one API key/secret pair."""

    def __init__(self, api_key: str, api_secret: str) -> None:
        self.api_key = api_key
        self._secret = api_secret
        # livekit-api mints one token per call but the JWT only changes once a
        # second, so most calls present a token already verified.
        self._cache: dict[str, tuple[VideoGrants, float]] = {}

    def authenticate(self, authorization: str, query_token: str) -> VideoGrants | None:
        """Grants of the call; None when no token was sent (the twirp handler then
        answers "permissions denied"); raises :class:`AuthError` otherwise.

        ``query_token`` is the ``access_token`` query parameter (auth.go reads
        ``r.FormValue``, i.e. the query string for protobuf bodies).
        """
        if authorization:
            if not authorization.startswith("Bearer "):
                raise AuthError(ERR_MISSING_AUTHORIZATION)
            token = authorization[7:]
        else:
            token = query_token
        if not token:
            return None
        cached = self._cache.get(token)
        if cached is not None and time.time() < cached[1] + _JWT_LEEWAY:
            return cached[0]
        return self._verify(token)

    def _verify(self, token: str) -> VideoGrants:
        # auth.ParseAPIToken: an unverified parse to learn the API key (iss).
        try:
            header = jwt.get_unverified_header(token)
            unverified = jwt.decode(token, options={"verify_signature": False})
            alg = header.get("alg")
            iss = unverified.get("iss", "")
            if not isinstance(alg, str) or alg not in _GO_JWT_ALGS or not isinstance(iss, str):
                raise ValueError(alg)
            for claim in ("exp", "nbf", "iat"):
                if claim in unverified and not isinstance(unverified[claim], (int, float)):
                    raise ValueError(claim)
        except Exception:
            raise AuthError(ERR_INVALID_TOKEN) from None
        if iss != self.api_key:
            raise AuthError(ERR_INVALID_API_KEY)
        try:
            # auth/verifier.go Verify: HS256 only, leeway 1 min, exp required.  golang-jwt
            # checks iat only WithIssuedAt() and aud only WithAudience(), neither set there.
            claims = jwt.decode(
                token,
                self._secret,
                algorithms=["HS256"],
                leeway=_JWT_LEEWAY,
                options={"require": ["exp"], "verify_aud": False, "verify_iat": False, "verify_iss": False},
            )
        except jwt.InvalidAlgorithmError:
            raise AuthError(
                f"{ERR_INVALID_TOKEN}: token signature is invalid: signing method {alg} is invalid"
            ) from None
        except jwt.InvalidSignatureError:
            raise AuthError(
                f"{ERR_INVALID_TOKEN}: token signature is invalid: signature is invalid"
            ) from None
        except jwt.InvalidTokenError as exc:
            raise AuthError(f"{ERR_INVALID_TOKEN}: {_claims_error(unverified, exc)}") from None
        grants = _video_grants(claims.get("video"))
        if len(self._cache) > _CACHE_LIMIT:
            self._cache.clear()
        self._cache[token] = (grants, float(unverified["exp"]))
        return grants


def _claims_error(claims: dict[str, Any], exc: Exception) -> str:
    """golang-jwt v5.3.1's text for a claims failure (validator.go joins several with ", ")."""
    now = time.time()
    errs = []
    exp = claims.get("exp")
    if exp is None:
        errs.append("token is missing required claim: exp claim is required")
    elif now >= exp + _JWT_LEEWAY:
        errs.append("token is expired")
    nbf = claims.get("nbf")
    if nbf is not None and now < nbf - _JWT_LEEWAY:
        errs.append("token is not valid yet")
    if not errs:  # a PyJWT-only rule (e.g. iat in the future); say what PyJWT said
        errs.append(str(exc))
    return "token has invalid claims: " + ", ".join(errs)


def _camel(snake: str) -> str:
    head, *rest = snake.split("_")
    return head + "".join(part.title() for part in rest)


#: VideoGrant's JSON names (livekit/protocol ``auth/grants.go``), lower-cased as Go's
#: encoding/json matches them (case-insensitively) -> (field, Go type name, Python types).
_GRANT_KEYS: dict[str, tuple[str, str, str]] = {}
for _field in VideoGrants.__dataclass_fields__.values():
    _kind = "string" if _field.name in ("room", "destination_room") else "bool"
    if _field.name == "can_publish_sources":
        _kind = "[]string"
    _GRANT_KEYS[_camel(_field.name).lower()] = (_field.name, _camel(_field.name), _kind)

_JSON_TYPES = {bool: "bool", str: "string", list: "array", dict: "object", int: "number", float: "number"}


def _fits(value: object, kind: str) -> bool:
    if value is None:  # JSON null leaves Go's field unset
        return True
    if kind == "bool":
        return isinstance(value, bool)
    if kind == "string":
        return isinstance(value, str)
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def _video_grants(video: object) -> VideoGrants:
    """The ``video`` claim as Go's encoding/json decodes it into ``VideoGrant``: keys match
    the camelCase names case-insensitively (snake_case keys match nothing and are ignored),
    and a value of the wrong type fails the whole token (plain-text 401)."""
    if video is None:
        return VideoGrants()
    if not isinstance(video, dict):
        raise AuthError(_decode_error(video, "ClaimGrants.video", "auth.VideoGrant"))
    fields = {}
    for key, value in video.items():
        known = _GRANT_KEYS.get(str(key).lower())
        if known is None:
            continue
        name, camel, kind = known
        if not _fits(value, kind):
            raise AuthError(_decode_error(value, f"ClaimGrants.video.{camel}", kind))
        if value is not None:
            fields[name] = value
    return VideoGrants(**fields)


def _decode_error(value: object, where: str, kind: str) -> str:
    got = _JSON_TYPES.get(type(value), "value")
    return (
        f"{ERR_INVALID_TOKEN}: token is malformed: could not JSON decode claim: "
        f"json: cannot unmarshal {got} into Go struct field {where} of type {kind}"
    )


def join_token_nbf(token: str, api_key: str, api_secret: str, room: str, identity: str) -> float:
    """Check a participant's join token as the signal service does (livekit/livekit
    ``pkg/service/rtcservice.go`` validateInternal: the API key's token, a ``roomJoin``
    grant for that room, ``sub`` = the identity) and return its ``nbf`` (``iat`` or now
    when absent).  Raises :class:`JoinRefusedError` naming what is wrong."""
    try:
        claims = jwt.decode(
            token,
            api_secret,
            algorithms=["HS256"],
            leeway=_JWT_LEEWAY,
            options={"require": ["exp"], "verify_aud": False, "verify_iat": False, "verify_iss": False},
        )
    except jwt.InvalidTokenError as exc:
        raise JoinRefusedError(f"{ERR_INVALID_TOKEN}: {exc}") from None
    if claims.get("iss") != api_key:
        raise JoinRefusedError(ERR_INVALID_API_KEY)
    try:
        grants = _video_grants(claims.get("video"))
    except AuthError as exc:
        raise JoinRefusedError(str(exc)) from None
    if not grants.room_join or grants.room != room:
        raise JoinRefusedError(f"{ERR_PERMISSION_DENIED}: the token grants no roomJoin for room {room!r}")
    if claims.get("sub") != identity:
        raise JoinRefusedError(f"{ERR_PERMISSION_DENIED}: the token is for identity {claims.get('sub')!r}")
    nbf = claims.get("nbf", claims.get("iat"))
    return float(nbf) if isinstance(nbf, (int, float)) else time.time()
