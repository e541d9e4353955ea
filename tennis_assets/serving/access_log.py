"""Access lines: one JSON object per answered request, written in batches.

A line per request through the logging module (a record, a lock, a formatted message and a
write system call each) cost about a quarter of the server's CPU per request at 2,000 requests
a second (bench/bench_policy_server.py, servers new and new-quiet). Here each line is a
``json.dumps`` into a buffer, and the event loop writes the buffer out at most every
``interval_s`` (and at shutdown) in one write: a log collector still reads one JSON object per
line, at most a fraction of a second late.
"""

from __future__ import annotations

import asyncio
import json
import os
import select
import sys
from typing import IO


class AccessLog:
    def __init__(self, stream: IO[bytes] | None = None, interval_s: float = 0.2,
                 shared: bool = False) -> None:
        """shared: other processes write to the same stderr (several workers). A pipe keeps a
        write whole only up to PIPE_BUF bytes; a longer one can be split where the pipe is
        full and another worker's bytes land in the middle of a line. Then the lines go out
        in writes of whole lines of at most PIPE_BUF bytes each."""
        self.stream = stream
        self.interval_s = interval_s
        self.shared = shared
        self._lines: list[str] = []
        self._scheduled = False

    def write(self, doc: dict) -> None:
        """Called on the event loop (every endpoint is async)."""
        self._lines.append(json.dumps(doc))
        if not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_later(self.interval_s, self.flush)

    def flush(self) -> None:
        self._scheduled = False
        if not self._lines:
            return
        data = ("\n".join(self._lines) + "\n").encode()
        self._lines.clear()
        stream = self.stream or sys.stderr.buffer
        try:
            if self.shared:
                stream.flush()
                _write_whole_lines(stream.fileno(), data)
            else:
                stream.write(data)
                stream.flush()
        except (OSError, ValueError):  # a closed or full stderr must not stop the answers
            pass


def _write_whole_lines(fd: int, data: bytes, limit: int = select.PIPE_BUF) -> None:
    start = 0
    while start < len(data):
        end = start + limit
        if end < len(data):
            cut = data.rfind(b"\n", start, end)
            # A line longer than PIPE_BUF cannot go out whole: it goes out alone.
            end = cut + 1 if cut >= start else data.find(b"\n", end) + 1 or len(data)
        view = memoryview(data)[start:end]
        while view:
            view = view[os.write(fd, view):]
        start = end

