"""Importing the server costs no Dagster, MLflow or torch until a model is loaded."""

from __future__ import annotations

import subprocess
import sys


def test_serving_imports_no_dagster_mlflow_or_torch_until_used():
    code = ("import sys, tennis_assets.serving, tennis_assets.serving.server, "
            "tennis_assets.serving.app, tennis_assets.serving.metrics, "
            "tennis_assets.serving.monitoring; "
            "print(sorted(m for m in ('dagster', 'mlflow', 'torch') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "[]"
