"""The Dockerfiles, read as data (no Docker engine here): base images pinned by tag, a command in
every stage, no secret, torch 2.13.0 from PyTorch's CPU index before the package, the same
versions as pyproject.toml, packages installed by one pinned uv, and every COPY source present
in the build context and not excluded by the Dockerfile's own .dockerignore."""

import json
import re
import tomllib
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
DOCKER = REPO / "docker"
DOCKERFILES = sorted(p for p in DOCKER.glob("Dockerfile.*") if p.suffix != ".dockerignore")
SECRET_NAME = re.compile(r"PASSWORD|SECRET|TOKEN|API_KEY|ACCESS_KEY|PRIVATE_KEY|CREDENTIAL",
                         re.IGNORECASE)


def parse(path: Path) -> list[dict]:
    """Stages: {"name", "base", "instructions": [(KEYWORD, args)]}; comments and line
    continuations handled as Docker does."""
    lines, current = [], ""
    for raw in path.read_text().splitlines():
        stripped = raw.strip()
        if stripped.startswith("#") or (not stripped and not current):
            continue
        if stripped.endswith("\\"):
            current += stripped[:-1] + " "
            continue
        lines.append(current + stripped)
        current = ""
    assert not current, f"{path.name}: dangling line continuation"
    stages: list[dict] = []
    for line in lines:
        keyword, _, args = line.partition(" ")
        keyword, args = keyword.upper(), args.strip()
        if keyword == "FROM":
            m = re.fullmatch(r"(\S+)(?:\s+AS\s+(\S+))?", args, re.IGNORECASE)
            assert m, line
            stages.append({"base": m.group(1), "name": m.group(2), "instructions": []})
        else:
            assert stages, f"{path.name}: {keyword} before FROM"
            stages[-1]["instructions"].append((keyword, args))
    return stages


def _pyproject_pins() -> dict[str, str]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    deps = project["dependencies"] + [d for extra in project["optional-dependencies"].values()
                                      for d in extra]
    return {m.group(1).lower(): m.group(2) for d in deps
            if (m := re.fullmatch(r"([A-Za-z0-9_.-]+)==([^\s;]+)", d))}


def _runs(stage: dict) -> list[str]:
    return [args for keyword, args in stage["instructions"] if keyword == "RUN"]


def _instructions(stages: list[dict], keyword: str) -> list[str]:
    return [args for s in stages for k, args in s["instructions"] if k == keyword]


def test_the_expected_dockerfiles_exist():
    assert {p.name for p in DOCKERFILES} == {
        "Dockerfile.user_code", "Dockerfile.dagster", "Dockerfile.optuna_dashboard"}


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.name)
def test_bases_pinned_and_every_stage_has_a_command(path):
    stages = parse(path)
    names = set()
    for stage in stages:
        base = stage["base"]
        if base not in names:  # an earlier stage needs no tag
            m = re.fullmatch(r"[a-z0-9./_-]+:([A-Za-z0-9._-]+)", base)
            assert m and m.group(1) != "latest", f"{path.name}: {base} is not pinned by tag"
        if stage["name"]:
            names.add(stage["name"])
        commands = [args for keyword, args in stage["instructions"]
                    if keyword in ("CMD", "ENTRYPOINT")]
        assert commands, f"{path.name}: stage {stage['name'] or base} has no CMD/ENTRYPOINT"
        assert isinstance(json.loads(commands[-1]), list), "exec form (JSON array)"
        assert _instructions([stage], "EXPOSE"), f"{path.name}: no EXPOSE"


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.name)
def test_no_secret_in_the_image(path):
    stages = parse(path)
    for keyword in ("ENV", "ARG", "LABEL"):
        for args in _instructions(stages, keyword):
            for name in re.findall(r"([A-Za-z_][A-Za-z0-9_]*)=", args) or [args.split()[0]]:
                assert not SECRET_NAME.search(name), f"{path.name}: {keyword} {args}"
    for args in _instructions(stages, "COPY") + _instructions(stages, "ADD"):
        assert ".env" not in args.split(), args
    for run in _runs({"instructions": [(k, a) for s in stages for k, a in s["instructions"]]}):
        assert not re.search(r"(password|token|secret)\s*=", run, re.IGNORECASE), run


def test_user_code_installs_cpu_torch_then_the_package():
    stages = {s["name"]: s for s in parse(DOCKER / "Dockerfile.user_code")}
    assert set(stages) == {"user_code", "jupyter"}
    assert stages["user_code"]["base"] == "python:3.11-slim"
    assert stages["jupyter"]["base"] == "user_code"
    (arg,) = [a for k, a in stages["user_code"]["instructions"]
              if k == "ARG" and a.startswith("TORCH_INDEX_URL")]
    assert arg == "TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu"
    runs = _runs(stages["user_code"])
    torch_pin = _pyproject_pins()["torch"]
    assert torch_pin == "2.13.0"
    torch_run = [i for i, r in enumerate(runs) if f'"torch=={torch_pin}"' in r]
    assert len(torch_run) == 1
    assert '--index-url "${TORCH_INDEX_URL}"' in runs[torch_run[0]]
    package_run = [i for i, r in enumerate(runs) if re.search(r'pip install "\.\[k8s\]"$', r)]
    assert package_run and torch_run[0] < package_run[0], "torch first, then the package"
    assert any('pip install ".[notebook]"' in r for r in _runs(stages["jupyter"]))
    # Non-root in both roles; the instance file is the production one.
    for stage in stages.values():
        users = [a for k, a in stage["instructions"] if k == "USER"]
        assert users[-1] == "tennis"
    copies = _instructions(list(stages.values()), "COPY")
    assert "docker/dagster.yaml /opt/dagster/dagster_home/dagster.yaml" in copies
    envs = " ".join(_instructions(list(stages.values()), "ENV"))
    assert "DAGSTER_HOME=/opt/dagster/dagster_home" in envs and "TENNIS_ASSETS_HOME=/data" in envs


def test_images_pin_the_versions_of_pyproject():
    pins = _pyproject_pins()
    dagster_runs = " ".join(_runs(parse(DOCKER / "Dockerfile.dagster")[0]))
    for name in ("dagster", "dagster-webserver", "dagster-postgres", "dagster-docker",
                 "dagster-k8s", "psycopg2-binary"):
        assert f'"{name}=={pins[name]}"' in dagster_runs, name
    optuna_runs = " ".join(_runs(parse(DOCKER / "Dockerfile.optuna_dashboard")[0]))
    for name in ("optuna", "psycopg2-binary"):
        assert f'"{name}=={pins[name]}"' in optuna_runs, name
    assert re.search(r'"optuna-dashboard==[\d.]+"', optuna_runs)


def test_every_image_installs_its_packages_with_pyprojects_uv():
    pins = set()
    for path in DOCKERFILES:
        runs = [r for stage in parse(path) for r in _runs(stage)]
        installs = [i for i, r in enumerate(runs) if re.search(r"\bpip install\b", r)]
        assert installs, path.name
        first = re.fullmatch(r'pip install "uv==([\d.]+)"', runs[installs[0]])
        assert first, f"{path.name}: uv is installed first, pinned: {runs[installs[0]]}"
        pins.add(first.group(1))
        for i in installs[1:]:
            assert runs[i].startswith("uv pip install "), f"{path.name}: {runs[i]}"
        envs = " ".join(a for s in parse(path) for k, a in s["instructions"] if k == "ENV")
        # No cache left in a layer, and the image's own Python (the official image's is not
        # a virtual environment).
        assert "UV_NO_CACHE=1" in envs and "UV_SYSTEM_PYTHON=1" in envs, path.name
    # The version pyproject.toml pins (the package needs uv for its models' environments).
    assert pins == {_pyproject_pins()["uv"]}, f"one uv version for every image: {pins}"


def test_commands_match_the_compose_services():
    compose = yaml.safe_load((DOCKER / "docker-compose.yml").read_text())["services"]
    user_code = parse(DOCKER / "Dockerfile.user_code")
    assert json.loads(_instructions(user_code[:1], "CMD")[-1]) == compose["user_code"]["command"]
    assert _instructions(user_code[:1], "EXPOSE") == ["4000"]
    assert _instructions(user_code[1:], "EXPOSE") == ["8888"]
    dagster = parse(DOCKER / "Dockerfile.dagster")
    assert json.loads(_instructions(dagster, "CMD")[-1]) == compose["webserver"]["command"]
    dashboard = parse(DOCKER / "Dockerfile.optuna_dashboard")
    # The start script reads $OPTUNA_STORAGE, creates Optuna's schema, then runs the dashboard.
    start = json.loads(_instructions(dashboard, "CMD")[-1])[-1]
    assert f"docker/optuna_dashboard_start.py {start}" in _instructions(dashboard, "COPY")
    assert 'os.environ["OPTUNA_STORAGE"]' in (DOCKER / "optuna_dashboard_start.py").read_text()
    assert "OPTUNA_STORAGE" in compose["optuna-dashboard"]["environment"]


def _ignored(rel: str, patterns: list[str]) -> bool:
    """.dockerignore semantics: the last matching pattern wins; `!` re-includes; a pattern that
    matches a folder covers what is inside it."""
    ignored = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        body = pattern[1:] if negate else pattern
        regex = re.escape(body.strip("/")).replace(r"\*\*", "\0").replace(r"\*", "[^/]*") \
            .replace(r"\?", "[^/]").replace("\0", ".*")
        if re.fullmatch(rf"{regex}(/.*)?", rel):
            ignored = not negate
    return ignored


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.name)
def test_copy_sources_exist_and_reach_the_build(path):
    ignore_file = path.with_name(path.name + ".dockerignore")
    assert ignore_file.exists(), "the context is the repository root: keep .venv and data out"
    patterns = [ln.strip() for ln in ignore_file.read_text().splitlines()
                if ln.strip() and not ln.strip().startswith("#")]
    assert _ignored(".venv/bin/python", patterns) and _ignored(".git/HEAD", patterns)
    assert _ignored("docker/.env", patterns)
    for args in _instructions(parse(path), "COPY"):
        parts = [p for p in args.split() if not p.startswith("--")]
        for source in parts[:-1]:
            src = REPO / source
            assert src.exists(), f"{path.name}: COPY {source} (missing)"
            files = [src] if src.is_file() else [
                f for f in src.rglob("*") if f.is_file() and "__pycache__" not in f.parts]
            assert files, source
            for f in files:
                rel = f.relative_to(REPO).as_posix()
                assert not _ignored(rel, patterns), f"{path.name}: {rel} excluded by .dockerignore"
