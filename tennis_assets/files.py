"""Writing files so that a crash, kill -9 or full disk leaves the old version or the new one,
never half of either: write a temporary file in the same folder, fsync, then ``os.replace``.

A full disk (or quota) comes out as ``DiskFullError`` naming the file, the free space and that
the earlier version is intact; the temporary file is always removed."""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable


_FULL = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


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


def _write_tmp(path: Path, write: Callable[[str], Any]) -> str:
    """``write`` into a fresh temporary file beside ``path``, fsynced; removed on any failure."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        if is_disk_full(exc):
            raise DiskFullError(path, exc) from exc
        raise
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
                if is_disk_full(cause):
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

    def __enter__(self) -> "StagedFile":
        return self

    def __exit__(self, *exc: Any) -> None:
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
