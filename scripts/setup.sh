#!/usr/bin/env bash
# Creates .venv with Python 3.11 and installs the package with its pinned dependencies.
# Sourced by main.sh and test.sh so that each README command works on a fresh machine.
# Re-running is cheap: the install is skipped while pyproject.toml is unchanged.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$repo/.venv"

pick_python() {
    for candidate in "${PYTHON:-}" python3.11 python3; do
        [ -n "$candidate" ] || continue
        if command -v "$candidate" >/dev/null 2>&1 &&
            "$candidate" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' 2>/dev/null; then
            echo "$candidate"; return 0
        fi
    done
    echo "tennis-assets needs Python 3.11 (set PYTHON=/path/to/python3.11)" >&2
    return 1
}

if [ ! -x "$venv/bin/python" ]; then
    python="$(pick_python)"
    echo "[setup] creating $venv with $($python --version)"
    "$python" -m venv "$venv"
fi

stamp="$venv/.tennis-assets-installed"
wanted="$(sha256sum "$repo/pyproject.toml" | cut -d' ' -f1)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$wanted" ]; then
    echo "[setup] installing tennis-assets and its pinned dependencies (first time: a few minutes)"
    "$venv/bin/python" -m pip install --quiet --upgrade pip
    # torch==2.13.0 is pinned in pyproject.toml; naming it first keeps pip on the CPU build.
    "$venv/bin/python" -m pip install --quiet "torch==2.13.0"
    "$venv/bin/python" -m pip install --quiet -e "$repo[test]"
    echo "$wanted" > "$stamp"
fi
export PATH="$venv/bin:$PATH"
