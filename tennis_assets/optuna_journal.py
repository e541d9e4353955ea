"""Optuna's journal file, safe against torn writes.

Optuna 5.0's ``JournalFileBackend`` appends each batch of records under its lock file and reads
the file line by line. A writer killed mid-record (kill -9, power loss, a full disk) leaves a
last line without its newline. Optuna's reader skips such a line, but its writer appends the
next record straight onto it: the joined line is not JSON, and from then on every reader fails
with a bare ``JSONDecodeError`` that names no file, so every later study on that file fails.

``JournalFile`` is that backend with the same file format and the same lock file (so plain
Optuna processes, optuna-dashboard included, share the file with it), through the public
backend interface (``read_logs``, ``append_logs``):

- appending cuts a torn last record off first (logged with the file's name and the byte count:
  that record's write never completed, and no reader ever applied it), so a new record never
  joins a torn one; a write that fails part-way (a full disk) is cut back;
- reading skips a torn last record and says so (once per file size), and refuses a bad record
  anywhere else (a journal damaged before this fix) with a ``CorruptFileError`` naming the
  file, the record, its byte offset and how to keep the records before it.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Generator
from pathlib import Path
from typing import Any

from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock

from tennis_assets.files import CorruptFileError, append_bytes

log = logging.getLogger(__name__)


class JournalFile(JournalFileBackend):
    """A journal file for ``optuna.storages.JournalStorage`` (see the module docstring)."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        # The open-lock works on every filesystem (the default symlink lock does not on some
        # mounts); the same lock file plain Optuna uses with it.
        self.lock = JournalFileOpenLock(str(self.path))
        super().__init__(str(self.path), lock_obj=self.lock)
        # Byte offset of each record read so far: a reader that asks for the records from
        # number n starts there instead of at the top of the file.
        self._offsets: dict[int, int] = {0: 0}
        self._reported_torn: int | None = None

    def read_logs(self, log_number_from: int) -> Generator[dict[str, Any], None, None]:
        start = max(n for n in self._offsets if n <= log_number_from)
        offset = self._offsets[start]
        with open(self.path, "rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            handle.seek(offset)
            for number, line in enumerate(handle, start=start):
                if offset + len(line) > size:
                    break  # appended while this read: the next read gets it whole
                if not line.endswith(b"\n"):
                    self._torn(offset, len(line), size)
                    break
                try:
                    record = json.loads(line)
                except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                    raise self._corrupt(number, offset, len(line), exc) from None
                offset += len(line)
                self._offsets[number + 1] = offset
                if number >= log_number_from:
                    yield record

    def append_logs(self, logs: list[dict[str, Any]]) -> None:
        data = "".join(json.dumps(entry, separators=(",", ":")) + "\n" for entry in logs)
        self.lock.acquire()
        try:
            append_bytes(self.path, data.encode("utf-8"))
        finally:
            self.lock.release()

    def _torn(self, offset: int, length: int, size: int) -> None:
        # Every storage call reads the journal: say it once per state of the file.
        if self._reported_torn != size:
            self._reported_torn = size
            log.warning("Optuna journal %s: skipped an incomplete last record (%d bytes after "
                        "byte %d: a write in progress, or cut short by a crash; the next write "
                        "removes it)", self.path, length, offset)

    def _corrupt(self, number: int, offset: int, length: int, exc: Exception
                 ) -> CorruptFileError:
        return CorruptFileError(
            self.path,
            f"Optuna journal record {number + 1} (bytes {offset}-{offset + length}) is not "
            f"valid JSON ({getattr(exc, 'msg', exc)}): a record cut short by a crash had "
            f"another appended onto it (by a version before this check); the {number} records "
            f"before it are intact",
            f"keep them with `truncate -s {offset} {self.path}` (the records from there on "
            "are lost), or start a new study in another file")
