"""notebooks/quickstart.ipynb runs top to bottom in a real Jupyter kernel (nbclient), so it cannot
rot: it trains, prints a greedy score and shows the learning curve as a PNG. It uses the RL core
alone (no Dagster), and is stored without outputs."""

import base64
import re
import time
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
NOTEBOOK = REPO / "notebooks" / "quickstart.ipynb"


def _load():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(nb)
    return nb


def test_notebook_is_stored_clean_and_uses_no_dagster():
    nb = _load()
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code, "no code cells"
    for cell in code:
        assert cell.get("outputs") == [] and cell.get("execution_count") is None, \
            "store the notebook without outputs"
        assert not re.search(r"^\s*(import|from)\s+dagster", cell.source, re.MULTILINE), cell.source
    assert NOTEBOOK.stat().st_size < 20_000


def test_quickstart_notebook_runs(tmp_path, monkeypatch):
    # The kernel inherits this environment: its outputs go to a temporary data directory.
    monkeypatch.setenv("TENNIS_ASSETS_HOME", str(tmp_path / "data"))
    nb = _load()
    client = NotebookClient(nb, timeout=120, kernel_name="python3", allow_errors=False,
                            resources={"metadata": {"path": str(tmp_path)}})
    # The native "python3" kernel: jupyter_client starts it with this interpreter
    # (sys.executable), so the kernel sees this environment's tennis_assets and ipykernel.
    started = time.monotonic()
    client.execute()
    elapsed = time.monotonic() - started

    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    text = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    match = re.search(r"greedy mean score: (-?\d+\.\d+) over 100 fresh episodes", text)
    assert match, text
    score = float(match.group(1))
    assert -0.1 <= score <= 3.0
    assert "best greedy mean during training" in text

    pngs = [o["data"]["image/png"] for o in outputs
            if o.output_type == "display_data" and "image/png" in o.get("data", {})]
    assert len(pngs) == 1
    assert base64.b64decode(pngs[0])[:8] == b"\x89PNG\r\n\x1a\n"
    assert (tmp_path / "data" / "notebooks" / "quickstart" / "learning_curve.png").exists()
    # 20 s of training plus kernel start, imports and a 100-episode evaluation.
    assert elapsed < 90, f"notebook took {elapsed:.0f} s"
