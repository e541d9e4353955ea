#!/usr/bin/env bash
# The main job: set up, then materialize the whole asset graph (tune, train and evaluate the
# baseline and tuned candidates, gate, promote) on the built-in simulator.
# Extra arguments go to `python -m tennis_assets.pipeline` (e.g. --profile tiny|quick|full).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
cd "$repo"
exec python -m tennis_assets.pipeline "$@"
