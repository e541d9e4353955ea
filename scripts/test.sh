#!/usr/bin/env bash
# The test suite: set up, then run every test. Extra arguments go to pytest.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
cd "$repo"
exec python -m pytest -n 2 --dist loadfile --durations=15 "$@"
