"""Connection exhaustion of the policy server, with real sockets: one client holds three times
the server's connection limit open (idle, or stalled part-way through a request), reopening
each one the server closes, while a well-behaved client keeps asking. The well-behaved client
and the health checks are answered throughout, the server's open connections stay bounded, and
every refusal is JSON."""

from __future__ import annotations

import json
import select
import socket
import threading
import time

import pytest

from tennis_assets_tests.serving.support import Client, Registry, empty_mlflow_db, start_server

LIMIT = 60
ACT = {"observations": [[0.1] * 24, [-0.1] * 24]}
PARTIAL = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: "  # headers never finished


@pytest.fixture
def served(tmp_path, tmp_path_factory):
    registry = Registry(tmp_path, empty_mlflow_db(tmp_path_factory.getbasetemp().parent))
    name = registry.new_name()
    registry.register(name)
    # Long timeouts: only the connection limit may close the hog's connections here.
    server = start_server(registry, name, max_concurrency=LIMIT, idle_timeout_s=600,
                          request_timeout_s=600, drain_timeout_s=2)
    yield server
    server.stop()


class Hog:
    """One client holding ``n`` connections open, half silent, half stalled mid-request,
    reopening each one the server closes (as a client reopening timed-out connections does),
    and keeping what the server sent on the ones it closed."""

    def __init__(self, port: int, n: int) -> None:
        self.port, self.n = port, n
        # socket -> (stalled mid-request, what the server has sent on it)
        self.socks: dict[socket.socket, tuple[bool, bytearray]] = {}
        self.closed_replies: list[bytes] = []
        self.reopened = 0
        self.stop = threading.Event()
        for i in range(n):
            self._open(stalled=i % 2 == 1)
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _open(self, stalled: bool) -> None:
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=10)
        if stalled:
            sock.sendall(PARTIAL)
        sock.setblocking(False)
        self.socks[sock] = (stalled, bytearray())

    def _closed(self, sock: socket.socket) -> bool:
        """Read what the server sent; True once it closed the connection."""
        received = self.socks[sock][1]
        while True:
            try:
                chunk = sock.recv(65536)
            except BlockingIOError:
                return False
            except ConnectionResetError:
                return True
            if not chunk:
                return True
            received += chunk

    def _run(self) -> None:
        while not self.stop.is_set():
            readable, _, _ = select.select(list(self.socks), [], [], 0.05)
            for sock in readable:
                if not self._closed(sock):
                    continue
                stalled, received = self.socks.pop(sock)
                sock.close()
                if stalled:
                    self.closed_replies.append(bytes(received))
                if not self.stop.is_set():
                    self._open(stalled)
                    self.reopened += 1

    def close(self) -> None:
        self.stop.set()
        self.thread.join(10)
        for sock in self.socks:
            sock.close()


def test_a_client_holding_idle_connections_denies_nobody(served):
    # A well-behaved client's kept-alive connection, answered once, then idle throughout.
    keeper = Client(served.url)
    assert keeper.json("GET", "/healthz")[0] == 200
    kept = keeper.conn.sock
    hog = Hog(served.port, 3 * LIMIT)
    try:
        # Long enough for the hog's connections to go idle past SHED_AFTER_IDLE_S (3 s) twice
        # over, so that this client's new connections shed some.
        deadline = time.monotonic() + 8
        answers, open_counts = [], []
        while time.monotonic() < deadline:
            # A new connection per round (as a client whose keep-alive was closed) and then a
            # second request on it.
            client = Client(served.url)
            for method, path, doc in (("GET", "/healthz", None), ("GET", "/readyz", None),
                                      ("POST", "/act", ACT)):
                status, body = client.json(method, path, doc)
                answers.append((path, status, body))
            client.close()
            open_counts.append(len(served.uvicorn.server_state.connections))
        assert hog.reopened >= LIMIT, "the hog's connections were not being shed"
        # Idle far longer than SHED_AFTER_IDLE_S, yet kept: the hog's were closed instead
        # (http.client raises on a connection the server closed; it reopens none by itself).
        assert keeper.json("POST", "/act", ACT)[0] == 200 and keeper.conn.sock is kept
    finally:
        hog.close()

    assert len(answers) >= 30
    bad = [(path, status) for path, status, _ in answers if status != 200]
    assert not bad, bad
    assert all(body["actions"] for path, _, body in answers if path == "/act")
    # Bounded: the limit, plus the connections opened in the last SHED_AFTER_IDLE_S (at most
    # the hog's, which reopens only what was closed, and this client's one).
    assert max(open_counts) <= 3 * LIMIT + 2, open_counts
    # Connections stalled part-way through a request were answered a JSON 503 when shed.
    assert hog.closed_replies
    for reply in hog.closed_replies:
        head, _, body = reply.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 503"), reply[:200]
        assert b"content-type: application/json" in head.lower()
        assert "connection limit" in json.loads(body)["error"]


def test_requests_past_the_limit_get_json_503_and_health_checks_are_still_answered(served):
    # LIMIT requests in progress: each sent its headers and one byte of a 100-byte body.
    stalled = []
    try:
        for _ in range(LIMIT):
            sock = socket.create_connection(("127.0.0.1", served.port), timeout=10)
            sock.sendall(b"POST /act HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                         b"Content-Length: 100\r\n\r\n{")
            stalled.append(sock)
        client = Client(served.url)
        deadline = time.monotonic() + 10
        while (status := client.request("POST", "/act", json.dumps(ACT),
                                        {"Content-Type": "application/json"}))[0] == 200:
            assert time.monotonic() < deadline, "the stalled requests never filled the limit"
            time.sleep(0.05)
        code, headers, body = status
        assert code == 503 and headers["content-type"] == "application/json"
        assert headers["retry-after"] == "1"
        assert "requests in progress" in json.loads(body)["error"]
        for path in ("/healthz", "/readyz"):
            assert client.json("GET", path)[0] == 200, path
    finally:
        for sock in stalled:
            sock.close()
    # The stalled requests gone, the limit frees at once.
    assert Client(served.url).json("POST", "/act", ACT)[0] == 200
