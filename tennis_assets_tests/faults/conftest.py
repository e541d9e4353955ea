"""A real, size-limited file system for full-disk faults: a tmpfs mounted on a temporary folder
(root is needed to mount; without it the tests skip on a developer's machine and fail in CI,
where `.ci/run` runs as root)."""

from __future__ import annotations

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


@pytest.fixture
def small_disk(tmp_path):
    """A 4 MiB tmpfs, unmounted afterwards."""
    mount = tmp_path / "small-disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        message = f"cannot mount a tmpfs (needs root): {done.stderr.strip()}"
        if os.environ.get(REQUIRE_ENV) == "1":
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    try:
        yield SmallDisk(mount)
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)
