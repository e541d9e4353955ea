"""A real, size-limited file system for full-disk faults: a tmpfs mounted on a temporary folder
(root is needed to mount; without it the tests skip on a developer's machine and fail in CI,
where `.ci/run` runs as root)."""

from __future__ import annotations

import contextlib
import os
import subprocess
from pathlib import Path

import pytest

from tennis_assets_tests.system_services import REQUIRE_ENV


class SmallDisk:
    def __init__(self, path: Path) -> None:
        self.path = path

    def fill(self, leave_bytes: int = 0) -> Path:
        """Take all of the free space but ``leave_bytes`` with one file (returned)."""
        filler = self.path / "filler"
        with open(filler, "ab") as f:
            while True:
                free = os.statvfs(self.path).f_bavail * os.statvfs(self.path).f_frsize
                if free <= leave_bytes:
                    break
                try:
                    f.write(b"\0" * min(free - leave_bytes, 1 << 20))
                    f.flush()
                except OSError:
                    break
        return filler

    def leftovers(self) -> list[str]:
        """Temporary files a writer left behind (atomic writes name theirs ``.<name>.*.tmp``)."""
        return sorted(str(p.relative_to(self.path)) for p in self.path.rglob("*.tmp"))


@contextlib.contextmanager
def tmpfs(mount: Path, options: str):
    """A tmpfs mounted on ``mount`` (created) with ``options``, unmounted afterwards."""
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(mount)],
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        message = f"cannot mount a tmpfs ({options}; needs root): {done.stderr.strip()}"
        if os.environ.get(REQUIRE_ENV) == "1":
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


@pytest.fixture
def small_disk(tmp_path):
    """A 4 MiB tmpfs."""
    with tmpfs(tmp_path / "small-disk", "size=4m") as mount:
        yield SmallDisk(mount)


@pytest.fixture
def read_only_folder(tmp_path):
    """A read-only tmpfs: permission bits do not stop root (the tests run as root in CI), a
    read-only mount does."""
    with tmpfs(tmp_path / "read-only", "size=1m,ro") as mount:
        yield mount
