"""Writing files so that a crash, kill -9 or full disk leaves the old version or the new one,
never half of either, and reading them back with an error that names the file.

- Whole files: write a temporary file in the same folder, fsync, then ``os.replace``. A full
  disk (or quota) comes out as ``DiskFullError`` naming the file, the free space and that the
  earlier version is intact; the temporary file is always removed. A folder that cannot be
  written at all (read-only, no permission) is a ``NotWritableError`` naming it.
- Append-only JSON-lines files (``append_line``, ``read_json_lines``): a record counts once its
  newline is written. A writer killed mid-record leaves a torn last line; the next append cuts
  it off first (and says so), so a new record never joins a torn one, and a reader skips it
  (and says so). A bad record anywhere else is a ``CorruptFileError`` naming the file, the
  record and its byte offset.
- ``read_json``: a file that is not valid JSON (truncated, garbage) is a ``CorruptFileError``
  naming the file and where it breaks, never a bare ``JSONDecodeError``."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Self

log = logging.getLogger(__name__)

_FULL = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
# A folder or file the user named that cannot be written: read-only mount, no permission, a
# file where a folder should be.
_NOT_WRITABLE = (errno.EROFS, errno.EACCES, errno.EPERM, errno.ENOTDIR, errno.EISDIR)


class DiskFullError(OSError):
    """No room to write ``path``: the message says how much is free and what was kept."""

    def __init__(self, path: Path, cause: BaseException, note: str = "") -> None:
        try:
            free = f"{shutil.disk_usage(path.parent).free / 2**20:.1f} MiB free"
        except OSError:
            free = "free space unknown"
        kept = (f"the earlier {path.name} is intact" if path.exists()
                else f"no earlier {path.name} existed")
        code = _errno_of(cause) or errno.ENOSPC
        self.message = (f"no space left to write {path} ({free} on its file system; "
                        f"{os.strerror(code)}): {kept}{'; ' + note if note else ''}; free "
                        f"some space or choose another folder")
        super().__init__(code, self.message)
        self.path = path

    def __str__(self) -> str:
        return self.message


def _errno_of(exc: BaseException) -> int | None:
    if isinstance(exc, OSError):
        return exc.errno
    # Rust writers (safetensors) raise their own type; their message keeps the OS error code.
    found = re.search(r"\(os error (\d+)\)", str(exc))
    return int(found.group(1)) if found else None


def is_disk_full(exc: BaseException | None) -> bool:
    return exc is not None and _errno_of(exc) in _FULL


class NotWritableError(PermissionError):
    """``path`` (or the folder it would go in) cannot be written: read-only, no permission, or
    not a folder. A PermissionError, so callers that catch a user's path errors catch it."""

    def __init__(self, path: Path, cause: OSError) -> None:
        self.path = path
        # Named when it is another path (a folder above it), not the temporary file beside it.
        where = cause.filename if cause.filename and Path(cause.filename).absolute().parent \
            not in (path.absolute(), path.absolute().parent) else None
        self.message = (f"cannot write {path}: {os.strerror(cause.errno or errno.EACCES)}"
                        f"{f' ({where})' if where else ''}; choose a folder this process can "
                        "write")
        super().__init__(cause.errno, self.message)

    def __str__(self) -> str:
        return self.message


def _unwritable(path: Path, exc: OSError) -> OSError:
    """The error to raise for ``exc``, met creating a file in the existing folder of ``path``:
    a full disk, or a folder that takes no new files (any other refusal: /proc's is ENOENT)."""
    if is_disk_full(exc):
        return DiskFullError(path, exc)
    return NotWritableError(path, exc)


def _make_folder(path: Path, folder: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except FileExistsError as exc:  # a file where the folder should be
        raise NotWritableError(path, OSError(errno.ENOTDIR, os.strerror(errno.ENOTDIR),
                                             exc.filename)) from None
    except OSError as exc:
        if is_disk_full(exc):
            raise DiskFullError(path, exc) from exc
        if exc.errno in _NOT_WRITABLE:
            raise NotWritableError(path, exc) from None
        raise


def check_writable(folder: str | os.PathLike) -> Path:
    """Create ``folder`` if needed and prove a file can be made in it (created and removed), so
    a run learns before it starts, not after, that its output cannot be saved."""
    folder = Path(folder)
    _make_folder(folder, folder)
    try:
        fd, probe = tempfile.mkstemp(prefix=".write-check.", suffix=".tmp", dir=folder)
    except OSError as exc:
        raise _unwritable(folder, exc) from exc
    os.close(fd)
    os.unlink(probe)
    return folder


def _write_tmp(path: Path, write: Callable[[str], Any]) -> str:
    """``write`` into a fresh temporary file beside ``path``, fsynced; removed on any failure."""
    if path.is_dir():
        raise IsADirectoryError(f"{path} is a folder; name a file to write")
    _make_folder(path, path.parent)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise _unwritable(path, exc) from exc
    os.close(fd)
    try:
        write(tmp)
        # mkstemp (and writers such as safetensors') create 0600; the file should get the
        # permissions any other file in the folder gets.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        # Writers (safetensors, pandas, PIL) report a full disk in their own words; the errno
        # is what says so.
        if not isinstance(exc, DiskFullError):
            for cause in (exc, exc.__cause__, exc.__context__):
                if cause is not None and is_disk_full(cause):
                    raise DiskFullError(path, cause) from exc
        raise
    return tmp


def atomic_write(path: str | os.PathLike, write: Callable[[str], Any]) -> Path:
    """Call ``write(tmp_path)`` and move the result onto ``path`` in one step."""
    path = Path(path)
    tmp = _write_tmp(path, write)
    try:
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


class StagedFile:
    """A file written in full but not yet in place: ``commit`` moves it onto its path (a rename,
    which needs no space), ``discard`` removes it. For changes that must land together with
    something outside the file system, e.g. a registry alias: stage first, so a full disk stops
    the change before anything moved."""

    def __init__(self, path: str | os.PathLike, text: str) -> None:
        self.path = Path(path)
        self._tmp: str | None = _write_tmp(self.path, lambda tmp: Path(tmp).write_text(text))

    def commit(self) -> Path:
        if self._tmp is None:
            raise RuntimeError(f"{self.path}: already committed or discarded")
        os.replace(self._tmp, self.path)
        self._tmp = None
        return self.path

    def discard(self) -> None:
        if self._tmp is not None:
            Path(self._tmp).unlink(missing_ok=True)
            self._tmp = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.discard()


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write(path, lambda tmp: Path(tmp).write_text(text))


def to_json(value: Any, **kwargs: Any) -> str:
    """JSON of plain values, numpy scalars and arrays, and paths; anything else is an error
    (nothing is pickled)."""
    return json.dumps(value, default=_json_default, **kwargs)


def atomic_write_json(path: str | os.PathLike, value: Any) -> Path:
    return atomic_write_text(path, to_json(value, indent=2))


def _json_default(value: Any) -> Any:
    try:
        import numpy as np

        if isinstance(value, np.generic):
            return value.item()
        if isinstance(value, np.ndarray):
            return value.tolist()
    except ImportError:
        pass
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


class LockHeld(RuntimeError):
    """Another live process holds the lock ``path``; ``holder`` is its pid as it wrote it."""

    def __init__(self, path: Path, holder: str) -> None:
        self.path, self.holder = path, holder or "unknown"
        super().__init__(f"{path} is held by process {self.holder}")


@contextlib.contextmanager
def exclusive_lock(path: str | os.PathLike) -> Iterator[Path]:
    """Hold an exclusive lock on the file ``path`` (created, holding this pid, removed on
    release), or raise ``LockHeld`` at once. The kernel drops the lock when its holder dies,
    kill -9 included, so a dead holder never blocks the next."""
    path = Path(path)
    while True:
        handle = open(path, "a+")  # noqa: SIM115 - closed on every path below
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip()
            handle.close()
            raise LockHeld(path, holder) from None
        # Locked the file a releasing holder had just removed: lock the one in place instead.
        try:
            current = os.stat(path).st_ino
        except FileNotFoundError:
            current = None
        if current == os.fstat(handle.fileno()).st_ino:
            break
        handle.close()
    try:
        handle.truncate(0)
        handle.write(str(os.getpid()))
        handle.flush()
        yield path
    finally:
        # Removed while still locked, so nobody can take a lock on a file about to vanish.
        path.unlink(missing_ok=True)
        handle.close()


# ---- reading back ---------------------------------------------------------------------------

class CorruptFileError(ValueError):
    """A file this project wrote cannot be read back: the message names the file, what is wrong
    with it and what to do. A ValueError: bad input, not a bug."""

    def __init__(self, path: str | os.PathLike, problem: str, fix: str = "") -> None:
        self.path = Path(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}{'; ' + fix if fix else ''}")


def _decode_problem(exc: ValueError, data: bytes, what: str) -> str:
    if not data.strip():
        return f"{what} is empty (a write cut short?)"
    # The parser ran out of text (or of a string) before the value ended: cut short.
    if isinstance(exc, json.JSONDecodeError) and (exc.pos >= len(data.rstrip()) or
                                                  exc.msg.startswith("Unterminated string")):
        return (f"{what} ends mid-record after {len(data)} bytes: truncated (a write cut short, "
                f"or a full disk)")
    detail = (f"line {exc.lineno} column {exc.colno}" if isinstance(exc, json.JSONDecodeError)
              else "not UTF-8")
    return f"{what} is not valid JSON ({detail}: {getattr(exc, 'msg', exc)})"


def read_json(path: str | os.PathLike, what: str = "the file", fix: str = "") -> Any:
    """The JSON value in ``path``; a ``CorruptFileError`` naming the file and where it breaks
    when it is not valid JSON. A missing file is FileNotFoundError, as from ``open``."""
    path = Path(path)
    data = path.read_bytes()
    try:
        return json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CorruptFileError(path, _decode_problem(exc, data, what), fix) from None


def read_json_object(path: str | os.PathLike, what: str = "the file", fix: str = "") -> dict:
    """``read_json`` of a file that must hold a JSON object."""
    value = read_json(path, what, fix)
    if not isinstance(value, dict):
        raise CorruptFileError(path, f"{what} holds a JSON {type(value).__name__}, not an "
                               "object", fix)
    return value


def _last_newline_end(handle, size: int, chunk: int = 1 << 16) -> int:
    """The offset just past the last newline of the open binary file (0: none)."""
    end = size
    while end > 0:
        start = max(0, end - chunk)
        handle.seek(start)
        block = handle.read(end - start)
        found = block.rfind(b"\n")
        if found >= 0:
            return start + found + 1
        end = start
    return 0


def cut_torn_tail(handle, path: str | os.PathLike) -> int:
    """Remove a torn last record (bytes after the last newline) from the open, locked binary
    file ``handle``; returns how many bytes were cut (logged with the file's name)."""
    size = os.fstat(handle.fileno()).st_size
    if size == 0:
        return 0
    handle.seek(size - 1)
    if handle.read(1) == b"\n":
        return 0
    keep = _last_newline_end(handle, size)
    os.ftruncate(handle.fileno(), keep)
    os.fsync(handle.fileno())
    log.warning("%s: removed a torn last record (%d bytes after byte %d, written by a process "
                "that died mid-write) before appending; every complete record is kept",
                path, size - keep, keep)
    return size - keep


def append_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Append ``data`` (whole records, each ending in a newline) to ``path`` under an exclusive
    lock: a torn last record is cut off first, and a write that fails part-way (a full disk) is
    cut back, so the file only ever holds whole records plus at most one torn one from a
    process killed mid-write."""
    path = Path(path)
    if not data.endswith(b"\n"):
        raise ValueError(f"append to {path}: a record must end with a newline")
    _make_folder(path, path.parent)
    try:
        handle = open(path, "a+b")  # noqa: SIM115 - closed by the with below
    except OSError as exc:
        raise _unwritable(path, exc) from exc
    with handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            cut_torn_tail(handle, path)
            before = os.fstat(handle.fileno()).st_size
            try:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            except OSError as exc:
                os.ftruncate(handle.fileno(), before)
                if is_disk_full(exc):
                    raise DiskFullError(path, exc, "the record was not added") from exc
                raise
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
    return path


def append_line(path: str | os.PathLike, text: str) -> Path:
    """Append ``text`` (one line, no newline in it) as a record of ``path``."""
    if "\n" in text:
        raise ValueError(f"append to {path}: a record is one line")
    return append_bytes(path, (text + "\n").encode())


def read_json_lines(path: str | os.PathLike, what: str = "the file", fix: str = "",
                    skip_corrupt: bool = False) -> list[Any]:
    """The records of an append-only JSON-lines file. A torn last record (no newline: its
    writer died mid-write, or is writing it now) is skipped with a warning naming the file; a
    record elsewhere that is not JSON is a ``CorruptFileError`` naming the file, the record's
    line and byte offset (``skip_corrupt``: skipped with that warning instead, for a log whose
    reader must keep going). A missing file is FileNotFoundError."""
    path = Path(path)
    records, offset = [], 0
    with open(path, "rb") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.endswith(b"\n"):
                log.warning("%s: skipped an incomplete last record (%d bytes after byte %d: a "
                            "write in progress, or cut short by a crash; the next append "
                            "removes it)", path, len(line), offset)
                break
            if line.strip():
                try:
                    records.append(json.loads(line))
                except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                    problem = (f"{what}: record {number} (bytes {offset}-{offset + len(line)}) "
                               f"is not valid JSON ({getattr(exc, 'msg', exc)})")
                    if not skip_corrupt:
                        raise CorruptFileError(path, f"{problem}; the {len(records)} records "
                                               "before it are intact", fix) from None
                    log.warning("%s: %s; skipped", path, problem)
            offset += len(line)
    return records
