"""LiveKit over TLS: ``https://`` and ``wss://`` URLs (LiveKit Cloud gives ``wss://``).

The stand-in speaks plain HTTP, so a TLS terminator in this process (a real TLS server on a
loopback port, forwarding each connection's bytes) stands in front of it with a certificate
made for the test by ``openssl``. The transport must verify that certificate against the
trust store (``SSL_CERT_FILE`` points OpenSSL's default store at it) and refuse it otherwise.
"""

from __future__ import annotations

import asyncio
import ssl
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from werkzeug.test import TestResponse

from flask_livekit_moderation import errors, room_metadata
from flask_livekit_moderation.testing import LiveKitEmulator
from tests.helpers import TENANTS, TOKEN_A, host_app

REMOVE = {"room_name": "room-a", "participant_identity": "alice"}


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory with a self-signed ``cert.pem`` and its ``key.pem`` for localhost."""
    directory = tmp_path_factory.mktemp("tls")
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2"]
        + ["-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"]
        + ["-keyout", str(directory / "key.pem"), "-out", str(directory / "cert.pem")],
        check=True,
        capture_output=True,
    )
    return directory


@contextmanager
def tls_in_front_of(url: str, certificate: Path) -> Iterator[int]:
    """A TLS server on a free loopback port whose connections are piped to ``url``'s host and
    port; yields its port."""
    host, port = url.split("//", 1)[1].rsplit(":", 1)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(certificate / "cert.pem", certificate / "key.pem")
    loop = asyncio.new_event_loop()

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, ssl.SSLError):
            pass
        finally:
            writer.close()

    async def forward(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream_reader, upstream_writer = await asyncio.open_connection(host, int(port))
        await asyncio.gather(pipe(reader, upstream_writer), pipe(upstream_reader, writer))

    server = loop.run_until_complete(asyncio.start_server(forward, "127.0.0.1", 0, ssl=context))
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        yield server.sockets[0].getsockname()[1]
    finally:

        async def shut_down() -> None:
            server.close()
            pipes = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
            for task in pipes:
                task.cancel()
            await asyncio.gather(*pipes, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(shut_down(), loop).result(5)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        loop.close()


def remove_over_tls(room: LiveKitEmulator, certificate: Path, scheme: str) -> TestResponse:
    """Tenant A removes alice through an app whose LIVEKIT_URL is ``scheme``://localhost, a TLS
    server in front of the stand-in."""
    with tls_in_front_of(room.url, certificate) as port:
        app = host_app(
            room,
            LIVEKIT_URL=f"{scheme}://localhost:{port}",
            LIVEKIT_MODERATION_AUTH_REQUIRED=True,
            LIVEKIT_MODERATION_API_SECRETS=TENANTS,
        )
        return app.test_client().delete(
            "/livekit/participant", json=REMOVE, headers={"Authorization": f"Bearer {TOKEN_A}"}
        )


@pytest.fixture
def room(livekit_emulator: LiveKitEmulator) -> LiveKitEmulator:
    livekit_emulator.add_room("room-a", metadata=room_metadata("tenant-a"))
    livekit_emulator.add_participant("room-a", "alice")
    return livekit_emulator


@pytest.mark.parametrize("scheme", ["https", "wss"])
def test_a_livekit_url_over_tls_is_verified_and_served(
    room: LiveKitEmulator, certificate: Path, monkeypatch: pytest.MonkeyPatch, scheme: str
) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", str(certificate / "cert.pem"))
    answer = remove_over_tls(room, certificate, scheme)
    assert answer.status_code == 200, answer.get_data(as_text=True)
    assert answer.get_json() == {"status": "removed", **REMOVE}
    assert [call.method for call in room.calls] == ["ListRooms", "RemoveParticipant"]
    assert room.participant("room-a", "alice") is None


def test_a_certificate_nobody_trusts_is_refused_and_livekit_hears_nothing(
    room: LiveKitEmulator, certificate: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)  # the system's trust store only
    answer = remove_over_tls(room, certificate, "wss")
    assert answer.status_code == 503
    assert answer.get_json() == {"error": errors.LIVEKIT_UNAVAILABLE.message, "code": "LIVEKIT_UNAVAILABLE"}
    assert room.calls == []
    assert room.participant("room-a", "alice") is not None
