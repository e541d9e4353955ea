#!/usr/bin/env bash
# The main job: set up, then train and evaluate a team on the built-in simulator.
# Extra arguments go to `tennis-assets train` (try --help).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
cd "$repo"
exec tennis-assets train "$@"
