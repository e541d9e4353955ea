"""Only tennis_assets.defs imports dagster; tracking and tuning stay importable without it, and
importing them does not pull in the heavy libraries until a function needs them."""

import subprocess
import sys
from pathlib import Path

import tennis_assets


def _loaded(code: str) -> str:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True).stdout.strip()


def test_tracking_and_tuning_import_no_dagster_and_nothing_heavy():
    out = _loaded("import sys, tennis_assets.tracking, tennis_assets.tuning, "
                  "tennis_assets.tracking.mlflow_tracking, tennis_assets.tracking.wandb_tracking, "
                  "tennis_assets.tracking.neptune_tracking; "
                  "print(sorted(m for m in ('dagster', 'mlflow', 'wandb', 'optuna', 'torch', "
                  "'neptune_scale', 'redis') if m in sys.modules))")
    assert out == "[]"


def test_nothing_outside_defs_imports_defs():
    root = Path(tennis_assets.__file__).parent
    offenders = []
    for path in root.rglob("*.py"):
        rel = path.relative_to(root)
        if rel.parts[0] == "defs" or rel.name in ("definitions.py", "pipeline.py"):
            continue
        text = path.read_text()
        if "tennis_assets.defs" in text or "import dagster" in text:
            offenders.append(str(rel))
    assert offenders == []
