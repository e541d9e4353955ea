""".github/workflows/ci.yml: valid against SchemaStore's GitHub workflow schema, runs the README's
test command after the Debian packages the tests start, and the quick pipeline for the baseline
and tuned candidates as a matrix (its script is executed here with a stand-in pipeline)."""

import inspect
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
WORKFLOW = REPO / ".github" / "workflows" / "ci.yml"
SCHEMA = Path(__file__).with_name("schemas") / "github-workflow.json"


@pytest.fixture(scope="module")
def workflow() -> dict:
    doc = yaml.safe_load(WORKFLOW.read_text())
    # YAML 1.1 reads the key `on` as True.
    doc["on"] = doc.pop(True)
    return doc


def _runs(job: dict) -> list[str]:
    return [step["run"] for step in job["steps"] if "run" in step]


def test_workflow_follows_the_github_schema(workflow):
    schema = json.loads(SCHEMA.read_text())
    assert "draft-07" in schema["$schema"]
    validator = jsonschema.Draft7Validator(schema)
    errors = list(validator.iter_errors(workflow))
    assert not errors, "\n".join(f"{list(e.path)}: {e.message}" for e in errors)
    broken = {**workflow, "jobs": {"tests": {**workflow["jobs"]["tests"], "runs_on": "x"}}}
    assert not validator.is_valid(broken)
    assert {"push", "pull_request"} <= set(workflow["on"])
    assert workflow["env"]["PIP_EXTRA_INDEX_URL"] == "https://download.pytorch.org/whl/cpu"
    for job in workflow["jobs"].values():
        assert job["timeout-minutes"] <= 90
        assert job["container"].startswith("python:3.11-")


def test_runs_the_readme_test_command(workflow):
    readme_command = re.search(r"^(bash scripts/test\.sh)\s", (REPO / "README.md").read_text(),
                               re.M).group(1)
    runs = _runs(workflow["jobs"]["tests"])
    install = next(i for i, r in enumerate(runs) if "apt-get install" in r)
    packages = set(runs[install].split())
    assert {"postgresql", "prometheus", "chromium", "chromium-driver"} <= packages
    # The same packages .ci/run installs.
    ci_run = (REPO / ".ci" / "run").read_text()
    listed = set(re.search(r"packages=\(([^)]*)\)", ci_run).group(1).split())
    assert listed <= packages
    test = runs.index(readme_command)
    assert install < test


def test_quick_pipeline_matrix(workflow):
    from tennis_assets.defs.config import PARTITIONS
    from tennis_assets.pipeline import materialize_all

    job = workflow["jobs"]["pipeline"]
    assert job["strategy"]["matrix"]["configuration"] == list(PARTITIONS) == ["baseline", "tuned"]
    assert job["env"]["CONFIGURATION"] == "${{ matrix.configuration }}"
    runs = _runs(job)
    assert "bash scripts/main.sh --help" in runs  # the setup main.sh does
    assert "partitions" in inspect.signature(materialize_all).parameters


def _pipeline_script(workflow) -> str:
    (script,) = [r for r in _runs(workflow["jobs"]["pipeline"]) if "materialize_all" in r]
    m = re.search(r"<<'PY'\n(.*)\nPY\s*$", script, re.S)
    return m.group(1)


@pytest.mark.parametrize("configuration,ok", [("baseline", True), ("tuned", False)])
def test_pipeline_script_runs_one_candidate(workflow, tmp_path, configuration, ok):
    """The matrix step's script, run with a stand-in tennis_assets.pipeline.materialize_all: it
    asks for the quick profile and this candidate only, and fails when a run failed."""
    stub = tmp_path / "stub"
    stub.mkdir()
    (stub / "sitecustomize.py").write_text(
        "import json, os\n"
        "import tennis_assets.pipeline as p\n"
        "def fake(profile, partitions):\n"
        "    json.dump([profile, list(partitions)], open(os.environ['CALLS'], 'w'))\n"
        "    plan = [('tune', '-'), ('retrain', partitions[0]), ('promote', '-')]\n"
        "    return [p.PipelineRun(job, part, 'r', os.environ['OK'] == '1' or job != 'retrain')\n"
        "            for job, part in plan]\n"
        "p.materialize_all = fake\n")
    calls = tmp_path / "calls.json"
    env = {**os.environ, "CONFIGURATION": configuration, "CALLS": str(calls),
           "OK": "1" if ok else "0",
           "PYTHONPATH": os.pathsep.join([str(stub), str(REPO)])}
    result = subprocess.run([sys.executable, "-c", _pipeline_script(workflow)], env=env,
                            capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert result.returncode == (0 if ok else 1), result.stderr
    assert json.loads(calls.read_text()) == ["quick", [configuration]]
    assert f"retrain  [{configuration}]" in result.stdout
