"""Starting servers in their own session and stopping all of them by process id."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def as_started_from_a_shell() -> None:
    """A ``preexec_fn``: SIGINT and SIGTERM at their default actions and no signal blocked, as
    a terminal's foreground job has them. A test runner started as a shell's background job
    (`.ci/run &`) passes SIGINT on ignored, and in CI an xdist worker once passed on a state in
    which a child slept on through SIGTERM; a test of how a command answers a signal must not
    inherit either."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_SETMASK, set())


def _stat(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name may hold spaces and parentheses; the fields after it do not.
    return raw[raw.rindex(")") + 2:].split()


def session_members(sid: int) -> set[int]:
    """Live (non-zombie) processes in session ``sid``: what a `start_new_session` child and
    everything it started share, even those that moved to a process group of their own."""
    members = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        fields = _stat(int(entry.name))
        # fields: state, ppid, pgrp, session, ...
        if fields and fields[0] != "Z" and int(fields[3]) == sid:
            members.add(int(entry.name))
    return members


def stop_session(proc: subprocess.Popen, grace_s: float = 10.0) -> set[int]:
    """SIGTERM the process group of ``proc`` (started with ``start_new_session``), wait up to
    ``grace_s``, then SIGKILL the group and any process of its session that is left, each by
    its id. Returns the processes that are still alive afterwards (none, if all went well)."""
    sid = proc.pid
    try:
        os.killpg(sid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline and (proc.poll() is None or session_members(sid)):
        time.sleep(0.2)
    if proc.poll() is None or session_members(sid):
        try:
            os.killpg(sid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        for pid in session_members(sid):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        pass
    deadline = time.monotonic() + 5
    while session_members(sid) and time.monotonic() < deadline:
        time.sleep(0.1)
    return session_members(sid)
