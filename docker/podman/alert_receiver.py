"""The alert webhook of scripts/stack-test.sh: a Slack-compatible incoming webhook that keeps
what it receives. Dagster's alerts and Alertmanager's post to the same URL
($TENNIS_ASSETS_ALERT_WEBHOOK); scripts/stack_drive.py reads them back with GET /received.
Python's standard library only, run in the user-code image. Never part of a real deployment.

    python alert_receiver.py PORT
"""

import json
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

received: list[dict] = []
lock = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        try:
            body = json.loads(raw)
        except ValueError:
            body = {"unparsed": raw.decode(errors="replace")}
        with lock:
            received.append({"time": time.time(), "path": self.path,
                             "user_agent": self.headers.get("User-Agent", ""), "body": body})
        self._answer(200, b"ok", "text/plain")

    def do_GET(self) -> None:
        if self.path == "/healthz":
            self._answer(200, b"ok", "text/plain")
        elif self.path == "/received":
            with lock:
                self._answer(200, json.dumps(received).encode(), "application/json")
        else:
            self._answer(404, b"not found", "text/plain")

    def _answer(self, status: int, body: bytes, ctype: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass  # the webhook's path is its credential: not in the container's log


if __name__ == "__main__":
    # PID 1 of its container: without a handler SIGTERM would be ignored until podman kills it.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    ThreadingHTTPServer(("0.0.0.0", int(sys.argv[1])), Handler).serve_forever()
