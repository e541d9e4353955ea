"""The RL core must stay usable from a notebook without Dagster, MLflow or W&B."""

import subprocess
import sys

CORE_MODULES = [
    "tennis_assets.sim",
    "tennis_assets.agents",
    "tennis_assets.training",
    "tennis_assets.experiment",
    "tennis_assets.unity",
    "tennis_assets.workflow.candidate",
    "tennis_assets.workflow.evaluation",
    "tennis_assets.workflow.promotion",
    "tennis_assets.workflow.monitoring",
    "tennis_assets.workflow.monitoring_file",
]


def test_core_imports_no_orchestration_or_tracking():
    code = (
        "import sys\n"
        + "".join(f"import {m}\n" for m in CORE_MODULES)
        + "bad = sorted(m for m in ('dagster', 'mlflow', 'wandb', 'optuna') if m in sys.modules)\n"
        + "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"the RL core imported {out.stdout.strip()}"


def test_simulator_imports_no_torch():
    # The simulator is a plain environment: learners bring their own framework.
    code = "import sys, tennis_assets.sim; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
