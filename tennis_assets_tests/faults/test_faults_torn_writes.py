"""Files cut mid-record, as a crash, kill -9 or full disk in the middle of a write leaves them:
the Optuna journal, the append-only logs (drift history, alerts) and the JSON state files
(reports, the champion pointer, the drift result). Each reader names the file and says what it
did (skipped a torn last record) or refuses naming it; no writer appends onto a torn line; what
was whole before the cut is kept."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState

from tennis_assets import tuning
from tennis_assets.defs.config import TuningConfig
from tennis_assets.files import CorruptFileError, append_line, read_json, read_json_lines

REPO = Path(__file__).resolve().parents[2]


def _tune(url: str, n: int) -> None:
    agent, train = TuningConfig(profile="tiny", trial_max_updates=50).build()
    tuning.run_study("torn", url, n, agent, train, params=["tau"], pruner="none")


def _cut_mid_last_record(path: Path) -> int:
    """Cut ``path`` in the middle of its last record; returns the offset where that began."""
    data = path.read_bytes()
    start = data.rstrip(b"\n").rfind(b"\n") + 1
    path.write_bytes(data[:start + (len(data) - start) // 2])
    return start


def _plain_optuna(path: Path) -> list:
    """The study as Optuna's own journal backend reads it (optuna-dashboard reads it so)."""
    return optuna.load_study(study_name="torn", storage=optuna.storages.JournalStorage(
        JournalFileBackend(str(path)))).get_trials()


def test_a_journal_cut_mid_record_is_read_without_it_and_never_appended_onto(tmp_path, caplog):
    path = tmp_path / "optuna.log"
    url = f"journal:{path}"
    _tune(url, 2)
    complete_before = len(_plain_optuna(path))
    start = _cut_mid_last_record(path)
    torn = path.read_bytes()[start:]

    with caplog.at_level(logging.WARNING):
        _tune(url, 2)  # reads past the torn record, then appends after cutting it off
    said = caplog.text
    assert f"Optuna journal {path}: skipped an incomplete last record" in said
    assert f"{path}: removed a torn last record ({len(torn)} bytes after byte {start}" in said

    # Every line is a whole record now, the torn bytes are gone, and the study is readable by
    # plain Optuna and by the next study, which adds its trials.
    lines = path.read_bytes().split(b"\n")
    assert lines[-1] == b"" and all(json.loads(line) for line in lines[:-1])
    assert torn not in path.read_bytes()
    _tune(url, 1)
    trials = _plain_optuna(path)
    assert len(trials) == complete_before + 3
    assert sum(t.state == TrialState.COMPLETE for t in trials) >= 3 + complete_before - 1


def test_a_journal_already_poisoned_is_refused_naming_the_file_and_the_cut(tmp_path):
    path = tmp_path / "optuna.log"
    url = f"journal:{path}"
    _tune(url, 2)
    lines = path.read_bytes().split(b"\n")
    # What Optuna's own writer left before this fix: a torn record with the next appended onto it.
    poisoned = b"\n".join(lines[:4]) + b"\n" + lines[4][:25] + b"\n".join(lines[5:])
    path.write_bytes(poisoned)
    offset = len(b"\n".join(lines[:4]) + b"\n")

    with pytest.raises(CorruptFileError) as err:
        _tune(url, 1)
    message = str(err.value)
    assert str(path) in message and "record 5" in message and "the 4 records before it" in message
    assert f"truncate -s {offset} {path}" in message
    assert path.read_bytes() == poisoned  # refused, nothing written

    # The advice works: the 4 records before it are a readable study.
    subprocess.run(["truncate", "-s", str(offset), str(path)], check=True)
    _tune(url, 1)
    assert _plain_optuna(path)


@pytest.mark.parametrize("writer", ["drift_history", "alert_log"])
def test_an_append_only_log_cut_mid_record_gets_whole_records_after_it(tmp_path, writer,
                                                                       caplog):
    """The real writers: the monitoring workflow's history.jsonl, the alerting resource's log."""
    from tennis_assets.defs.resources import AlertWebhook
    from tennis_assets.workflow.monitoring_file import write_result

    result = {"time": "2026-12-06T12:00:00+00:00", "model_version": "1", "episodes": 10,
              "mean": 1.0, "baseline_mean": 1.1, "p_value": 0.5, "drifted": False}
    hook = AlertWebhook(log_path=str(tmp_path / "alerts.log"))
    if writer == "drift_history":
        path = tmp_path / "history.jsonl"

        def write(i):
            write_result(tmp_path, {**result, "model_version": str(i)})
    else:
        path = tmp_path / "alerts.log"

        def write(i):
            hook.send(f"alert-{i}", f"alert {i}", {})
    write(1)
    write(2)
    _cut_mid_last_record(path)

    with caplog.at_level(logging.WARNING):
        assert len(read_json_lines(path)) == 1  # the torn second one is skipped ...
        write(3)
    assert f"{path}: skipped an incomplete last record" in caplog.text  # ... and said so
    assert f"{path}: removed a torn last record" in caplog.text
    records = read_json_lines(path)
    assert len(records) == 2 and path.read_bytes().endswith(b"\n")
    if writer == "alert_log":
        assert hook.sent_ids() == {"alert-1", "alert-3"}  # alert-2 would be sent again
    else:
        assert [r["model_version"] for r in records] == ["1", "3"]


def test_a_corrupt_record_inside_a_log_is_named(tmp_path):
    path = tmp_path / "history.jsonl"
    for i in range(3):
        append_line(path, json.dumps({"i": i}))
    data = path.read_bytes().split(b"\n")
    path.write_bytes(data[0] + b"\n" + data[1][:4] + data[2] + b"\n")
    with pytest.raises(CorruptFileError, match=rf"{path}: the file: record 2 \(bytes 9-"):
        read_json_lines(path)


@pytest.mark.parametrize("content", [b"", b'{"model_name": "tennis-policy", "vers', b"\x00garbage"],
                         ids=["empty", "truncated", "garbage"])
def test_a_cut_state_file_is_named_with_what_is_wrong(tmp_path, content):
    path = tmp_path / "latest.json"
    path.write_bytes(content)
    with pytest.raises(CorruptFileError) as err:
        read_json(path, "the report", "evaluate again")
    message = str(err.value)
    assert message.startswith(f"{path}: the report ") and message.endswith("; evaluate again")
    if content == b"":
        assert "is empty" in message
    elif b"vers" in content:
        assert "truncated" in message


def test_the_main_command_refuses_a_garbage_champion_pointer_before_any_run(tmp_path):
    pointer = tmp_path / "models" / "production" / "champion.json"
    pointer.parent.mkdir(parents=True)
    pointer.write_bytes(b"\x7fELF not json")
    env = {**os.environ, "TENNIS_ASSETS_HOME": str(tmp_path)}
    for name in ("DAGSTER_HOME", "MLFLOW_TRACKING_URI", "TENNIS_ASSETS_OPTUNA_STORAGE"):
        env.pop(name, None)
    out = subprocess.run([sys.executable, "-m", "tennis_assets.pipeline", "--profile", "tiny"],
                         cwd=REPO, env=env, capture_output=True, text=True, timeout=300,
                         check=False)
    assert out.returncode == 2, out.stderr[-3000:]
    assert "Traceback" not in out.stderr
    last = out.stderr.strip().splitlines()[-1]
    assert last.startswith(f"error: {pointer}: the champion pointer is not valid JSON"), last
    assert "next promotion or rollback" in last
    assert "[pipeline]" not in out.stdout  # refused before any run was launched
    assert pointer.read_bytes() == b"\x7fELF not json"
