"""Ctrl-C and SIGTERM as a request to stop training at the next safe point.

The training loop checks ``received`` once per step, so the step in flight completes, the resume
state is saved and the caller is told why training ended. A second signal is not caught: it
interrupts at once, as a user pressing Ctrl-C twice expects.
"""

from __future__ import annotations

import signal
import threading
from types import TracebackType
from typing import Any, Self

_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopSignals:
    def __init__(self) -> None:
        self.received: str | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> Self:
        self.install()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.restore()

    def install(self) -> None:
        # Signal handlers can only be set from the main thread; elsewhere (a thread pool, a
        # notebook's worker) the process's own handling stays as it is.
        if threading.current_thread() is not threading.main_thread():
            return
        for sig in _SIGNALS:
            self._previous[sig] = signal.signal(sig, self._handle)

    def _handle(self, signum: int, frame: Any) -> None:
        self.received = signal.Signals(signum).name
        self.restore()

    def restore(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()
