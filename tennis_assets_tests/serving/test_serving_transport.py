"""What a hostile or broken client can do over a raw socket: request smuggling is refused, and
clients that send a request too slowly (headers or body) are dropped within the deadline."""

from __future__ import annotations

import json
import socket
import time

import pytest

from .support import start_server
from .test_serving_http import metric_value

SMUGGLED = (b"POST /act HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"0\r\n\r\nGET /nope HTTP/1.1\r\nHost: x\r\n\r\n")


def _connect(server) -> socket.socket:
    host, port = server.url.removeprefix("http://").rsplit(":", 1)
    return socket.create_connection((host, int(port)), timeout=10)


def _read_to_eof(s: socket.socket) -> bytes:
    data = b""
    while chunk := s.recv(65536):
        data += chunk
    return data


def test_content_length_with_transfer_encoding_is_refused_without_a_second_response(server):
    with _connect(server) as s:
        s.sendall(SMUGGLED)
        data = _read_to_eof(s)  # the server closes the connection after its one answer
    assert data.startswith(b"HTTP/1.1 400 ") and data.count(b"HTTP/1.1") == 1, data
    body = data.partition(b"\r\n\r\n")[2]
    assert "Content-Length" in json.loads(body)["error"]


@pytest.fixture(scope="module")
def strict_server(registry, champion):
    srv = start_server(registry, champion[0], request_timeout_s=1.0)
    try:
        yield srv
    finally:
        srv.stop()


def _trickle(server, head: bytes, rest: bytes, interval: float = 0.1) -> tuple[bytes, float]:
    """Send ``head`` at once, then ``rest`` one byte per ``interval`` (each read the server does
    succeeds, so only a deadline on the whole request stops it); returns what came back and
    the seconds from the first byte until the server closed the connection."""
    with _connect(server) as s:
        started = time.monotonic()
        s.sendall(head)
        s.settimeout(interval)
        data = b""
        for byte in rest:
            try:
                s.sendall(bytes([byte]))
            except OSError:  # closed by the server
                break
            try:
                chunk = s.recv(65536)
            except TimeoutError:
                continue
            except ConnectionResetError:
                break
            data += chunk
            if not chunk:
                break
        s.settimeout(10)
        try:
            data += _read_to_eof(s)
        except OSError:
            pass
        return data, time.monotonic() - started


@pytest.mark.parametrize("part", ["headers", "body"])
def test_a_slow_client_is_dropped_within_the_request_timeout(strict_server, part):
    before = metric_value(strict_server, "tennis_policy_requests_total", endpoint="other",
                          outcome="timeout")
    body = json.dumps({"observations": [[0.1] * 24] * 2}).encode()
    headers = (b"POST /act HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
               b"Content-Length: %d\r\n\r\n" % len(body))
    if part == "headers":
        data, seconds = _trickle(strict_server, b"", headers + body)
    else:
        data, seconds = _trickle(strict_server, headers, body)
    assert data.startswith(b"HTTP/1.1 408 "), data
    assert "within 1 s" in json.loads(data.partition(b"\r\n\r\n")[2])["error"]
    assert 0.9 < seconds < 3.0, seconds  # timeout 1 s; the rest is a busy machine's slack
    assert metric_value(strict_server, "tennis_policy_requests_total", endpoint="other",
                        outcome="timeout") == before + 1
