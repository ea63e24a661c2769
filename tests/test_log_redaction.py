"""No ``api_key`` value in any log line of werkzeug, gunicorn or the extension (issue 24).

Raw request lines, malformed ones included, are sent over sockets to the example app served
by the real werkzeug dev server (``flask run``) and by real gunicorn (error and access logs to
its output, debug level); what each process wrote is then searched for the tokens.
"""

from __future__ import annotations

import json
import logging
import socket
import sys
import time
from collections.abc import Iterator

import pytest

from benchmarks.processes import StandIn
from flask_livekit_moderation.auth import REDACTED_LOGGERS, QueryTokenRedactor, redact
from tests.served_processes import ServedApp, address_of, flask_run, gunicorn

#: Raw requests, each with a distinct token in it (``{token}``), most of them malformed.
RAW_REQUESTS = {
    # A space inside the query: werkzeug's "Bad request syntax", gunicorn's "Invalid HTTP Version".
    "space in the query": "GET /livekit/participants?room_name=acme standup&api_key={token} HTTP/1.1\r\n"
    "Host: x\r\n\r\n",
    "percent-encoded key": "GET /livekit/participants?room_name=acme standup&api%5Fkey={token} HTTP/1.1\r\n"
    "Host: x\r\n\r\n",
    "bad version": "GET /livekit/participants?api_key={token} HTTP/9.9\r\nHost: x\r\n\r\n",
    "no version": "GET /livekit/participants?room_name=a&api_key={token}\r\n\r\n",
    "bad method": "G@T /livekit/participants?api_key={token} HTTP/1.1\r\nHost: x\r\n\r\n",
    "bad header": "GET /livekit/participants?api_key={token} HTTP/1.1\r\nHost: x\r\nBad Header: y\r\n\r\n",
    "no query mark": "GET /livekit/participants&api_key={token} HTTP/1.1\r\nHost: x\r\n\r\n",
    "a raw quote before it": 'GET /livekit/participants?room_name=a&x="&api_key={token} HTTP/1.1\r\n'
    "Host: x\r\n\r\n",
    "well formed": "GET /livekit/participants?room_name=a&api_key={token} HTTP/1.1\r\nHost: x\r\n"
    "Connection: close\r\n\r\n",
}


def _token(label: str) -> str:
    return f"tok-{abs(hash(label)) % 10**12:012d}-secret"


def _send_all(url: str) -> None:
    address = address_of(url)
    for label, raw in RAW_REQUESTS.items():
        with socket.create_connection(address, timeout=10) as sock:
            sock.sendall(raw.format(token=_token(label)).encode("latin-1"))
            sock.shutdown(socket.SHUT_WR)
            while sock.recv(65536):
                pass


def _logged(app: ServedApp) -> str:
    # The servers write each line once its request is over; the last ones may trail a little.
    time.sleep(0.5)
    app.stop()
    return app.output()


@pytest.fixture(scope="module")
def stand_in() -> Iterator[StandIn]:
    with StandIn() as stand_in:
        yield stand_in


def _assert_redacted(output: str) -> None:
    leaked = [label for label in RAW_REQUESTS if _token(label) in output]
    assert not leaked, (leaked, output[-6000:])
    # The lines were logged, blanked: the test would see a token if one were written.
    assert output.count("=[REDACTED]") >= len(RAW_REQUESTS) - 2, output[-6000:]


def test_werkzeug_logs_no_token_even_for_malformed_request_lines(stand_in):
    with flask_run(stand_in) as app:
        _send_all(app.url)
        output = _logged(app)
    assert "Bad request syntax" in output and "Invalid HTTP version" in output, output
    _assert_redacted(output)


#: A logging configuration for gunicorn's ``--log-config-json``: the loggers write through a
#: handler of the host's, not gunicorn's own (the filter sits on the loggers: it holds either way).
LOG_CONFIG = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(name)s %(levelname)s %(message)s"}},
    "handlers": {
        "out": {"class": "logging.StreamHandler", "stream": "ext://sys.stdout", "formatter": "plain"}
    },
    "root": {"level": "INFO", "handlers": ["out"]},
    "loggers": {
        "gunicorn.error": {"level": "DEBUG", "handlers": ["out"], "propagate": False},
        "gunicorn.access": {"level": "INFO", "handlers": ["out"], "propagate": False},
    },
}


@pytest.mark.parametrize("log_config", [False, True], ids=["log files", "log config json"])
def test_gunicorn_error_and_access_logs_hold_no_token(stand_in, tmp_path, log_config):
    options = ["--access-logfile", "-"]
    if log_config:
        (tmp_path / "logging.json").write_text(json.dumps(LOG_CONFIG))
        options += ["--log-config-json", str(tmp_path / "logging.json")]
    else:
        options += ["--error-logfile", "-", "--log-level", "debug"]
    with gunicorn(stand_in, *options) as app:
        _send_all(app.url)
        output = _logged(app)
    assert "Invalid request from ip=" in output and "Invalid HTTP Version" in output, output
    _assert_redacted(output)


def test_the_filter_sits_on_every_logger_that_can_carry_a_url(tenants):
    # ``tenants`` ran init_app: each logger has exactly one redactor, whatever writes its records.
    for name in REDACTED_LOGGERS:
        assert sum(isinstance(f, QueryTokenRedactor) for f in logging.getLogger(name).filters) == 1
    assert {"werkzeug", "gunicorn.error", "gunicorn.access", "flask_livekit_moderation"} <= set(
        REDACTED_LOGGERS
    )


def test_a_traceback_that_quotes_the_url_is_blanked_too():
    # Built at run time, so the traceback's source lines do not quote it.
    token = "-".join(["tok", "in", "a", "traceback"])
    try:
        raise KeyError(f"/livekit/participants?api_key={token}")
    except KeyError:
        record = logging.makeLogRecord(
            {"msg": "failed %s", "args": ("/p?api_key=tok-arg",), "exc_info": sys.exc_info(), "levelno": 40}
        )
    assert QueryTokenRedactor().filter(record)
    text = logging.Formatter().format(record)
    assert token not in text and "tok-arg" not in text
    assert (
        "failed /p?api_key=[REDACTED]" in text
        and "KeyError: '/livekit/participants?api_key=[REDACTED]" in text
    )


@pytest.mark.parametrize(
    ("logged", "expected"),
    [
        (
            "GET /p?room_name=acme standup&api_key=tok HTTP/1.1",
            "GET /p?room_name=acme standup&api_key=[REDACTED] HTTP/1.1",
        ),
        (
            "Invalid HTTP Version: 'standup&api_key=tok HTTP/1.1'",
            "Invalid HTTP Version: 'standup&api_key=[REDACTED] HTTP/1.1'",
        ),
        ("/p?%61pi%5fkey=tok&b=1", "/p?%61pi%5fkey=[REDACTED]&b=1"),
        ("/p?api_keys=keep&b=1", "/p?api_keys=keep&b=1"),
    ],
)
def test_redact(logged, expected):
    assert redact(logged) == expected
