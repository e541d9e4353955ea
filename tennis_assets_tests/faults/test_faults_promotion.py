"""Promotions under real faults, on a real MLflow registry (SQLite): several processes promoting
at once, a promotion killed while it holds the lock, and a disk too full for the pointer file.
Each test reads the registry and the pointer file afterwards: one model version per training
run, ``previous`` never a copy of the champion, and the pointer saying what the registry says."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tennis_assets.files import DiskFullError
from tennis_assets.workflow.production import (
    ChampionRecord,
    move_champion,
    promotion_lock,
    read_pointer,
)
from tennis_assets_tests.serving.support import Registry, empty_mlflow_db

# One process of a concurrent promotion: wait for the start file, register the run's model as
# challenger and promote it, print what happened as one JSON line.
WORKER = r"""
import json, sys, time
from pathlib import Path
from tennis_assets.tracking.mlflow_tracking import MlflowTracker
from tennis_assets.workflow import production

db, artifacts, name, run_id, source, pointer, go, locked = sys.argv[1:9]
tracker = MlflowTracker(db, experiment="faults", artifact_root=artifacts)
while not Path(go).exists():
    time.sleep(0.005)
try:
    if locked == "1":
        info = production.register_challenger(tracker, name, Path(pointer).parent, source, run_id)
    else:
        info = tracker.register_challenger(name, source=source, run_id=run_id)
    value = production.move_champion(tracker, name, pointer, version=info.version)
    print(json.dumps({"ok": True, "version": info.version, "value": value.to_dict()}))
except RuntimeError as exc:  # a newer challenger was registered meanwhile: nothing moved
    print(json.dumps({"ok": False, "error": str(exc)}))
"""


@pytest.fixture
def registry(tmp_path, tmp_path_factory) -> Registry:
    return Registry(tmp_path, empty_mlflow_db(tmp_path_factory.getbasetemp().parent))


def _trained_run(registry: Registry, seed: int) -> tuple[str, str]:
    """An MLflow run that logged a policy model: (run id, model source)."""
    from tennis_assets.agents import AgentConfig, make_learner
    from tennis_assets.training import save_checkpoint

    learner = make_learner(AgentConfig(actor_hidden=16, critic_hidden=16, buffer_size=256,
                                       device="cpu"), seed)
    path = save_checkpoint(registry.root / "ckpt" / f"run-{seed}.safetensors", learner,
                           include_buffer=False)
    with registry.tracker.start_run(f"run-{seed}") as run:
        source = run.log_policy_model(path)
    return run.run_id, source


def _with_champion(registry: Registry) -> tuple[str, str]:
    """A model name whose champion is v1 (run seed 100); returns (name, v1's run id)."""
    name = registry.new_name()
    run_id, source = _trained_run(registry, 100)
    registry.tracker.register_champion(name, source, run_id)
    return name, run_id


def _promote_at_once(registry: Registry, name: str, runs: list[tuple[str, str]], pointer: Path,
                     locked: bool = True) -> list[dict]:
    go = registry.root / f"go-{time.monotonic_ns()}"
    procs = [subprocess.Popen(
        [sys.executable, "-c", WORKER, registry.tracker.tracking_uri,
         (registry.root / "artifacts").as_uri(), name, run_id, source, str(pointer), str(go),
         "1" if locked else "0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for run_id, source in runs]
    time.sleep(3.0)  # every worker has imported MLflow and waits for the start
    go.touch()
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        results.append(json.loads(out.strip().splitlines()[-1]))
    return results


def _registry_state(registry: Registry, name: str) -> tuple[dict, list]:
    versions = registry.tracker.client.search_model_versions(f"name='{name}'")
    return registry.tracker.aliases(name), versions


def _assert_pointer_matches_registry(registry: Registry, name: str,
                                     pointer: Path) -> ChampionRecord:
    aliases, versions = _registry_state(registry, name)
    doc = read_pointer(pointer)
    assert doc is not None
    champion = registry.tracker.champion(name)
    assert doc.version == aliases["champion"] == champion.version
    assert doc.previous_version == aliases["previous"]
    assert doc.mlflow_run_id == champion.run_id
    by_version = {str(v.version): v.run_id for v in versions}
    if aliases["previous"] is not None:
        # What a rollback would restore is another model, not a copy of the champion.
        assert by_version[aliases["previous"]] != by_version[aliases["champion"]]
    return doc


@pytest.mark.parametrize("locked", [True, False], ids=["with-lock", "without-lock"])
def test_four_processes_promoting_one_run_leave_one_version(registry, tmp_path, locked):
    name, _first_run = _with_champion(registry)
    run = _trained_run(registry, 1)
    pointer = tmp_path / "production" / "champion.json"
    results = _promote_at_once(registry, name, [run] * 4, pointer, locked=locked)

    aliases, versions = _registry_state(registry, name)
    of_run = [str(v.version) for v in versions if v.run_id == run[0]]
    assert len(of_run) == 1, f"versions of one training run: {of_run}"
    assert aliases["champion"] == of_run[0] and aliases["previous"] == "1"
    assert aliases["challenger"] is None
    assert all(r["ok"] for r in results), results  # idempotent: the later ones change nothing
    assert sum(r["value"]["changed"] for r in results) == 1
    _assert_pointer_matches_registry(registry, name, pointer)
    assert not list(pointer.parent.glob("*.tmp"))


def test_rollback_with_no_previous_champion_changes_nothing_and_says_so(registry, tmp_path):
    name, _ = _with_champion(registry)
    pointer = tmp_path / "production" / "champion.json"
    value = move_champion(registry.tracker, name, pointer, rollback=True)
    assert (value.version, value.changed, value.rollback) == ("1", False, True)
    assert value.outcome() == "nothing to roll back to (no previous champion): v1 stays champion"
    assert _registry_state(registry, name)[0]["champion"] == "1"
    _assert_pointer_matches_registry(registry, name, pointer)
    with pytest.raises(RuntimeError, match="nothing has been promoted yet"):
        move_champion(registry.tracker, registry.new_name(), pointer, rollback=True)


def test_promotions_of_different_runs_at_once_leave_a_consistent_registry(registry, tmp_path):
    name, _ = _with_champion(registry)
    runs = [_trained_run(registry, seed) for seed in (1, 2, 3)]
    pointer = tmp_path / "production" / "champion.json"
    results = _promote_at_once(registry, name, runs, pointer)

    aliases, versions = _registry_state(registry, name)
    for run_id, _ in runs:
        assert len([v for v in versions if v.run_id == run_id]) <= 1
    promoted = [r for r in results if r["ok"]]
    assert promoted, results
    # Those that lost the race were told so and moved nothing; the last promotion stands.
    for r in results:
        if not r["ok"]:
            assert "nothing moved" in r["error"]
    assert aliases["champion"] in {r["version"] for r in promoted}
    doc = _assert_pointer_matches_registry(registry, name, pointer)
    assert doc.changed is True


def test_a_promotion_killed_holding_the_lock_does_not_block_the_next(registry, tmp_path):
    name, _ = _with_champion(registry)
    pointer = tmp_path / "production" / "champion.json"
    holder = subprocess.Popen(
        [sys.executable, "-c", ("import sys, time\n"
          "from tennis_assets.workflow.production import promotion_lock\n"
          "with promotion_lock(sys.argv[1]):\n"
          "    print('held', flush=True)\n"
          "    time.sleep(600)\n"), str(pointer.parent)], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    with (pytest.raises(RuntimeError, match=f"process {holder.pid}"),
          promotion_lock(pointer.parent, timeout_s=0.5)):
        pass
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait(10)

    run_id, source = _trained_run(registry, 1)
    info = registry.tracker.register_challenger(name, source=source, run_id=run_id)
    started = time.monotonic()
    value = move_champion(registry.tracker, name, pointer, version=info.version,
                          lock_timeout_s=10)
    assert time.monotonic() - started < 5
    assert value.version == info.version
    _assert_pointer_matches_registry(registry, name, pointer)


def test_a_disk_too_full_for_the_pointer_stops_the_promotion_before_the_alias(
        registry, small_disk):
    name, _ = _with_champion(registry)
    pointer = small_disk.path / "production" / "champion.json"
    move_champion(registry.tracker, name, pointer, version="1")  # the pointer for v1
    before_pointer = pointer.read_bytes()
    run_id, source = _trained_run(registry, 1)
    info = registry.tracker.register_challenger(name, source=source, run_id=run_id)
    before = registry.tracker.aliases(name)
    small_disk.fill()

    with pytest.raises(DiskFullError, match="champion.json"):
        move_champion(registry.tracker, name, pointer, version=info.version)
    assert registry.tracker.aliases(name) == before  # champion still v1, challenger still set
    assert before["champion"] == "1" and before["challenger"] == info.version
    assert pointer.read_bytes() == before_pointer
    assert small_disk.leftovers() == []

    # With room again the same promotion goes through and the pointer follows.
    (small_disk.path / "filler").unlink()
    value = move_champion(registry.tracker, name, pointer, version=info.version)
    assert value.version == info.version and value.previous_version == "1"
    _assert_pointer_matches_registry(registry, name, pointer)


def test_rollback_swaps_and_the_pointer_follows(registry, tmp_path):
    name, _ = _with_champion(registry)
    pointer = tmp_path / "production" / "champion.json"
    run_id, source = _trained_run(registry, 1)
    info = registry.tracker.register_challenger(name, source=source, run_id=run_id)
    move_champion(registry.tracker, name, pointer, version=info.version)
    value = move_champion(registry.tracker, name, pointer, rollback=True)
    assert value.version == "1" and value.previous_version == info.version
    _assert_pointer_matches_registry(registry, name, pointer)
