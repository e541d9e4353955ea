"""The tables of quality gates in README.md and docs/dagster.md, and the instance files'
comments, against the definitions the UI shows: every check listed once, on its asset, blocking
exactly when its spec blocks, with the severity its results carry (gates.SEVERITY); a
non-blocking check is never called blocking in dagster.yaml."""

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
HEADER = "| check | on | severity | blocks | a failure means |"


def check_specs() -> dict:
    from tennis_assets.definitions import defs

    specs = {}
    for definition in [*(defs.assets or []), *(defs.asset_checks or [])]:
        for spec in getattr(definition, "check_specs", []):
            specs[spec.name] = spec
    return specs


def table_rows(text: str) -> dict[str, dict[str, str]]:
    """check name -> its row's cells, from the table under HEADER."""
    lines = text[text.index(HEADER):].splitlines()[2:]
    rows = {}
    for line in lines:
        if not line.startswith("|"):
            break
        first, on, severity, blocks, means = (c.strip() for c in line.strip("|").split("|"))
        names = re.findall(r"`([a-z_]+)`", first.split("(")[0])
        for name in names:
            assert name not in rows, f"{name} listed twice"
            rows[name] = {"on": on, "severity": severity, "blocks": blocks, "means": means}
    return rows


@pytest.mark.parametrize("doc", ["README.md", "docs/dagster.md"])
def test_the_table_of_checks_says_what_the_definitions_do(doc):
    from tennis_assets.defs.gates import DECISION_CHECKS, SEVERITY

    specs = check_specs()
    rows = table_rows((REPO / doc).read_text())
    assert set(rows) == set(specs), (doc, set(rows) ^ set(specs))
    assert set(SEVERITY) == set(specs)
    for name, spec in specs.items():
        row = rows[name]
        assert row["on"].split("[")[0] == spec.asset_key.to_user_string(), (doc, name)
        assert row["blocks"].startswith("yes") == spec.blocking, (doc, name, row["blocks"])
        said = set(re.findall(r"\b(ERROR|WARN)\b", row["severity"]))
        assert said == {s.value for s in SEVERITY[name]}, (doc, name, row["severity"])
        if name in DECISION_CHECKS:
            assert "no alert" in row["means"], (doc, name)


def test_instance_files_never_call_a_non_blocking_check_blocking():
    blocking = {name for name, spec in check_specs().items() if spec.blocking}
    for path in (REPO / "dagster.yaml", REPO / "docker" / "dagster.yaml"):
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if "blocking" in line.lower():
                named = set(re.findall(r"\b([a-z]+(?:_[a-z]+)+)\b", line)) & set(check_specs())
                assert named <= blocking, f"{path.name}:{number}: {line.strip()}"
