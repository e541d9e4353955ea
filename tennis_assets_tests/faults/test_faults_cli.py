"""Every `tennis-assets` command against bad values and interrupts, black-box: the commands and
their options are read from the command's own --help (so an option added later is walked too),
each option is given each value a hostile user types, and every outcome must be a documented
exit code (0, 2 bad input, 3 trained but unsolved, 130 Ctrl-C) with, on failure, exactly one
`error:` line and no traceback. Then the cases found by hand, each naming what is wrong, Ctrl-C
at moments through the first seconds of `train`, and two trainings started on one --out."""

from __future__ import annotations

import io
import json
import os
import re
import signal
import subprocess
import sys
import time
import traceback
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import pytest

from tennis_assets.cli import main
from tennis_assets.training.checkpoints import read_metadata
from tennis_assets_tests.services.processes import as_started_from_a_shell

EXIT_CODES = {0, 2, 3}
BAD_VALUES = ["-1", "0", "abc", "", "nan", "inf", "1e400", "99999999999999999999", "x=1",
              "/proc/nope/x", "\x00"]
# A training run that, should a value turn out valid, ends in a second or two.
TINY_TRAIN = ["--no-gif", "--no-progress", "--eval-episodes", "2", "--courts", "2",
              "--set", "buffer_size=64", "--set", "learning_starts=8", "--set", "batch_size=8",
              "--set", "max_updates=5", "--set", "eval_every_updates=5",
              "--set", "eval_episodes=2"]


def run_main(*argv: str) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of ``main(argv)`` in this process; an exception escaping
    it is a failure of the command, reported with its traceback."""
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        try:
            code = main(list(argv))
        except SystemExit as exc:  # argparse's own errors and --help
            code = exc.code if isinstance(exc.code, int) else 2
        except BaseException:  # noqa: BLE001 - the finding
            pytest.fail(f"tennis-assets {' '.join(map(repr, argv))} raised:\n"
                        f"{traceback.format_exc()}")
    return code, out.getvalue(), err.getvalue()


def assert_one_error(code: int, stderr: str, argv) -> str:
    assert code in EXIT_CODES, (argv, code, stderr[-2000:])
    assert "Traceback" not in stderr, (argv, stderr[-2000:])
    errors = [line for line in stderr.splitlines() if "error:" in line]
    if code == 2:
        assert len(errors) == 1, (argv, stderr[-2000:])
        return errors[0]
    assert not errors, (argv, stderr[-2000:])
    return ""


def commands() -> list[str]:
    _, out, _ = run_main("--help")
    return re.search(r"\{([\w,-]+)\}", out).group(1).split(",")


def options(command: str) -> tuple[list[str], list[str]]:
    """(options, positionals) of ``command`` as its --help lists them."""
    _, out, _ = run_main(command, "--help")
    opts = [o for o in re.findall(r"\[(--[\w-]+)", out) if o != "--help"]
    section = out.split("positional arguments:", 1)
    positionals = re.findall(r"^  (\w+)", section[1].split("\n\n")[0], re.MULTILINE) \
        if len(section) == 2 else []
    return opts, positionals


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    from tennis_assets.agents import AgentConfig, make_learner
    from tennis_assets.training import save_checkpoint

    learner = make_learner(AgentConfig(actor_hidden=16, critic_hidden=16, buffer_size=256,
                                       device="cpu"))
    return save_checkpoint(tmp_path_factory.mktemp("ckpt") / "policy.safetensors", learner,
                           include_buffer=False)


def _base(command: str, checkpoint: Path, tmp_path: Path) -> list[str]:
    """Arguments under which a valid value finishes quickly and nothing runs forever."""
    return {"train": TINY_TRAIN,
            "evaluate": [str(checkpoint), "--episodes", "3"],
            "replay": ["scripted", "--out", str(tmp_path / "rally.gif")],
            # No registry there: once its own values pass, serve stops at the registry.
            "serve": ["--tracking-uri", f"sqlite:///{tmp_path / 'no-registry.db'}"],
            # No study journal there: once its own values pass, dashboard stops at the storage.
            "dashboard": ["--storage", str(tmp_path / "no-study" / "journal.log")]}[command]


def test_every_option_of_every_command_with_bad_values(tmp_path, checkpoint, monkeypatch):
    monkeypatch.setenv("TENNIS_ASSETS_HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    walked = {}
    for command in commands():
        opts, positionals = options(command)
        assert opts, command
        base = _base(command, checkpoint, tmp_path)
        for option in opts:
            for value in BAD_VALUES:
                argv = [command, *base, option, value]
                code, _, stderr = run_main(*argv)
                assert_one_error(code, stderr, argv)
                walked[command] = walked.get(command, 0) + 1
        for index, _ in enumerate(positionals):
            for value in BAD_VALUES:
                argv = [command, *base]
                argv[1 + index] = value
                code, _, stderr = run_main(*argv)
                assert_one_error(code, stderr, argv)
    assert set(walked) == {"train", "evaluate", "replay", "serve", "dashboard"}
    assert sum(walked.values()) >= 30 * len(BAD_VALUES)


@pytest.mark.parametrize("argv, named", [
    (["serve", "--port", "70000"], ["port=70000", "[0, 65535]"]),
    (["serve", "--port", "-1"], ["port=-1"]),
    (["serve", "--request-timeout", "inf"], ["request_timeout_s=inf", "86400"]),
    (["evaluate", "{checkpoint}", "--env-kwargs", '{{"foo": 1}}'], ["env_kwargs.foo", "known",
                                                                   "gravity"]),
    (["replay", "scripted", "--env-kwargs", "gravity"], ["env_kwargs", "'gravity'",
                                                          "dictionary"]),
    (["evaluate", "{checkpoint}", "--episodes", str(10**12)],
     ["episodes=1,000,000,000,000", "available", "episodes <="]),
    (["train", "--eval-episodes", str(10**12)], ["eval", "available"]),
    (["train", "--out", ""], ["out_dir is empty"]),
    (["replay", "scripted", "--out", "{tmp}"], ["is a folder"]),
    (["replay", "scripted", "--out", "/proc/nope.gif"], ["cannot write /proc/nope.gif"]),
])
def test_bad_values_found_by_hand_are_named(argv, named, tmp_path, checkpoint, monkeypatch):
    monkeypatch.setenv("TENNIS_ASSETS_HOME", str(tmp_path / "home"))
    argv = [a.format(checkpoint=checkpoint, tmp=tmp_path) for a in argv]
    code, _, stderr = run_main(*argv)
    line = assert_one_error(code, stderr, argv)
    assert code == 2, stderr
    for part in named:
        assert part in line, (part, line)
    assert not (tmp_path / "home").exists()  # refused before anything was made


def test_an_unwritable_output_is_refused_before_any_work(read_only_folder, tmp_path,
                                                         monkeypatch):
    monkeypatch.setenv("TENNIS_ASSETS_HOME", str(read_only_folder / "home"))
    cases = [["train", *TINY_TRAIN, "--out", str(read_only_folder / "run")],
             ["train", *TINY_TRAIN],  # the default folder under the data directory
             ["replay", "scripted", "--out", str(read_only_folder / "rally.gif")]]
    for argv in cases:
        started = time.monotonic()
        code, stdout, stderr = run_main(*argv)
        line = assert_one_error(code, stderr, argv)
        assert code == 2 and "cannot write" in line and str(read_only_folder) in line, line
        assert "Read-only file system" in line
        assert "trained" not in stdout and time.monotonic() - started < 30
    assert list(read_only_folder.iterdir()) == []


def test_the_simulators_seed_errors_name_the_seed():
    from tennis_assets.sim import VecTennis

    for seed in (-1, 2**40, 1.5, "7", True):
        with pytest.raises(ValueError, match=r"seed must be a whole number in \[0, 4294967295\]"):
            VecTennis(num_courts=2, seed=seed)
    env = VecTennis(num_courts=2, seed=0)
    with pytest.raises(ValueError, match="seed must be a whole number"):
        env.reset(seed=-5)


def _env(home: Path) -> dict[str, str]:
    return {**os.environ, "TENNIS_ASSETS_HOME": str(home)}


# Through the first seconds of the command's own code: its imports (numpy, torch, ...), the
# configs and checks, the folder, the first updates. Measured from the moment numpy is loaded
# (the command has started: the interpreter's own start, about 0.1-0.25 s here, is before any
# of the project's code runs, and a Ctrl-C there ends as Python ends it).
CTRL_C_AT_S = [0.0, 0.3, 1.0, 2.0, 3.5, 5.5]


def _wait_for_numpy(proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + 60
    while "_multiarray_umath" not in Path(f"/proc/{proc.pid}/maps").read_text():
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.005)


@pytest.mark.parametrize("delay", CTRL_C_AT_S)
def test_ctrl_c_in_the_first_seconds_of_train(tmp_path, delay):
    out = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "tennis_assets.cli", "train", "--seconds",
                             "30", "--no-gif", "--no-progress", "--out", str(out)],
                            env=_env(tmp_path / "home"), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            preexec_fn=as_started_from_a_shell)  # noqa: PLW1509 - one call
    _wait_for_numpy(proc)
    time.sleep(delay)
    proc.send_signal(signal.SIGINT)
    _stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, (delay, proc.returncode, stderr[-2000:])
    assert "Traceback" not in stderr, (delay, stderr[-3000:])
    lines = stderr.strip().splitlines()
    interrupted = [line for line in lines if line.startswith("error: interrupted")]
    resumable = [line for line in lines if line.startswith("continue with: tennis-assets "
                                                           "train")]
    assert len(interrupted) + len(resumable) == 1, (delay, stderr[-2000:])
    if resumable:  # training had started: its state is saved where the message says
        assert (out / "resume.safetensors").is_file()
        assert read_metadata(out / "resume.safetensors")["progress"]["updates"] >= 0
    else:  # before training: nothing half-made is left
        assert not out.exists() or not [p for p in out.iterdir() if p.suffix == ".tmp"]
        assert not (out / ".run.lock").exists()


def test_two_trainings_on_one_out_folder_keep_one_run_whole(tmp_path):
    out = tmp_path / "same"
    args = [sys.executable, "-m", "tennis_assets.cli", "train", *TINY_TRAIN,
            "--set", "max_updates=200", "--out", str(out)]
    procs = {seed: subprocess.Popen([*args, "--seed", str(seed)], env=_env(tmp_path / "home"),
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for seed in (1, 2)}
    done = {seed: (p, *p.communicate(timeout=300)) for seed, p in procs.items()}
    ran = [seed for seed, (p, _, _) in done.items() if p.returncode in (0, 3)]
    refused = [seed for seed, (p, _, _) in done.items() if p.returncode == 2]
    assert len(ran) == 1 and len(refused) == 1, {s: (p.returncode, e[-1500:])
                                                 for s, (p, _, e) in done.items()}
    winner, loser = ran[0], refused[0]
    line = assert_one_error(2, done[loser][2], "loser")
    assert str(out) in line
    assert "in use by another run (process" in line or "already holds a run's results" in line
    assert f"results in {out}" in done[winner][1] and "results in" not in done[loser][1]
    report = json.loads((out / "report.json").read_text())
    assert report["seed"] == winner and report["training"]["updates"] == 200
    assert read_metadata(out / "resume.safetensors")["train_config"]["seed"] == winner
    assert not (out / ".run.lock").exists()
