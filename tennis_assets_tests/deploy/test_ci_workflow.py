""".github/workflows/ci.yml: valid against SchemaStore's GitHub workflow schema, runs the README's
test command after the Debian packages the tests start, and the quick pipeline for the baseline
and tuned candidates as a matrix (its script is executed here with a stand-in pipeline)."""

import json
import re
import shlex
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
                               re.MULTILINE).group(1)
    runs = _runs(workflow["jobs"]["tests"])
    install = next(i for i, r in enumerate(runs) if "apt-get install" in r)
    packages = set(runs[install].split())
    assert {"postgresql", "prometheus", "redis-server", "chromium", "chromium-driver"} <= packages
    # The same packages .ci/run installs.
    ci_run = (REPO / ".ci" / "run").read_text()
    listed = set(re.search(r"packages=\(([^)]*)\)", ci_run).group(1).split())
    assert listed <= packages
    test = runs.index(readme_command)
    assert install < test


def test_quick_pipeline_matrix(workflow):
    from tennis_assets.defs.config import PARTITIONS

    job = workflow["jobs"]["pipeline"]
    assert job["strategy"]["matrix"]["configuration"] == list(PARTITIONS) == ["baseline", "tuned"]
    assert job["env"]["CONFIGURATION"] == "${{ matrix.configuration }}"
    (command,) = [r for r in _runs(job) if "scripts/main.sh" in r]
    assert command == 'bash scripts/main.sh --profile quick --candidate "$CONFIGURATION"'


@pytest.mark.parametrize("configuration", ["baseline", "tuned"])
def test_pipeline_arguments_select_one_candidate(workflow, monkeypatch, tmp_path, configuration):
    """The arguments the matrix step passes (scripts/main.sh hands them to
    `python -m tennis_assets.pipeline`), parsed by the real main with a stand-in pipeline: the
    quick profile and this candidate only."""
    from tennis_assets import pipeline

    (command,) = [r for r in _runs(workflow["jobs"]["pipeline"]) if "scripts/main.sh" in r]
    argv = shlex.split(command.replace('"$CONFIGURATION"', configuration))[2:]
    calls = []

    def fake(profile, partitions, extra_config=None):
        calls.append((profile, partitions))
        return []

    monkeypatch.setattr(pipeline, "materialize_all", fake)
    monkeypatch.setenv("TENNIS_ASSETS_HOME", str(tmp_path / "data"))
    # main() writes DAGSTER_HOME into os.environ; setenv here restores it afterwards.
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster"))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert pipeline.main(argv) == 1  # no runs, no champion: the step fails
    assert calls == [("quick", (configuration,))]
