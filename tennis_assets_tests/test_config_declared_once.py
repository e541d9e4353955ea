"""Configuration is declared once: every user-settable field lives on one core model, and the
Dagster configs, the command line and the profiles take exactly the fields the models declare.

Introspection of the real objects (the models, the derived Dagster classes, the argparse
parsers) plus a scan of the package's source for anything that restates a field by hand."""

from __future__ import annotations

import ast
import importlib
import pkgutil
import re
from collections import Counter
from pathlib import Path

import pytest

import tennis_assets
from tennis_assets.config.model import ConfigModel, Record
from tennis_assets.config.options import settable

PACKAGE = Path(tennis_assets.__file__).parent
# Modules that import an optional extra at module level (they are imported only when a run
# selects them).
OPTIONAL = ("tennis_assets.tracking.neptune_tracking",)


def _import_everything() -> None:
    for info in pkgutil.walk_packages([str(PACKAGE)], "tennis_assets."):
        if info.name not in OPTIONAL:
            importlib.import_module(info.name)


def _subclasses(cls: type) -> set[type]:
    out = set()
    for sub in cls.__subclasses__():
        out |= {sub, *_subclasses(sub)}
    return out


def config_models() -> list[type[ConfigModel]]:
    _import_everything()
    return sorted((m for m in _subclasses(ConfigModel)
                   if not issubclass(m, Record) and m.__module__.startswith("tennis_assets")),
                  key=lambda m: m.__name__)


def _is_section(info) -> bool:
    text = repr(info.annotation)
    return any(m.__name__ in text for m in config_models())


def leaf_fields() -> dict[str, list[str]]:
    """Field name -> the models that declare it (nested model fields are sections, not
    leaves)."""
    owners: dict[str, list[str]] = {}
    for model in config_models():
        for name in settable(model):
            if not _is_section(model.model_fields[name]):
                owners.setdefault(name, []).append(model.__name__)
    return owners


def test_every_leaf_field_is_declared_on_exactly_one_model():
    twice = {name: models for name, models in leaf_fields().items() if len(models) > 1}
    assert not twice, f"fields declared on more than one model: {twice}"
    # The fields the issue counted: each once, on the model of its concern.
    owners = leaf_fields()
    assert owners["num_courts"] == ["TrainConfig"]
    assert owners["actor_lr"] == ["AgentConfig"]
    assert owners["seed"] == ["TrainConfig"]


def test_every_field_has_a_one_line_doc():
    undocumented = [f"{m.__name__}.{n}" for m in config_models()
                    for n, info in m.model_fields.items() if not info.description]
    assert not undocumented


def _class_fields_in_source() -> Counter:
    """Annotated class attributes in the package's source, by name (models, dataclasses,
    Dagster configs)."""
    counts: Counter = Counter()
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef):
                for item in node.body:
                    if isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name):
                        counts[(item.target.id, path.relative_to(PACKAGE).as_posix(),
                                node.name)] += 1
    return counts


def test_no_settings_class_outside_the_models_restates_a_field():
    """No other settings class (a dataclass or Dagster Config named ...Config or ...Settings)
    declares a field of the same name as a model's user-settable field: the Dagster configs
    are generated, not written. (Records and results may carry a value of that name.)"""
    models = {(m.__module__, m.__name__) for m in config_models()}
    settable = set(leaf_fields())
    restated = []
    for (name, path, cls) in _class_fields_in_source():
        module = "tennis_assets." + path.removesuffix(".py").replace("/", ".")
        module = module.removesuffix(".__init__")
        if name in settable and cls.endswith(("Config", "Settings")) \
                and (module, cls) not in models:
            restated.append(f"{path}:{cls}.{name}")
    assert not restated, f"fields restated outside their model: {restated}"


def test_no_command_line_option_is_written_by_hand_for_a_field():
    """The parsers' options for fields come from add_model_options; a literal
    add_argument("--num-courts") (or any field's flag) would restate it."""
    flags = {"--" + name.replace("_", "-") for name in leaf_fields()}
    found = []
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "add_argument":
                for arg in node.args:
                    if isinstance(arg, ast.Constant) and arg.value in flags:
                        found.append(f"{path.relative_to(PACKAGE)}: {arg.value}")
    assert not found


def _dagster_fields(cls) -> set[str]:
    """The leaf fields a derived Dagster Config accepts (sections flattened)."""
    import dagster as dg

    out = set()
    for name, info in cls.model_fields.items():
        kind = info.annotation
        if isinstance(kind, type) and issubclass(kind, dg.Config) and hasattr(kind, "__core__") \
                and kind.__name__.endswith("Overrides"):
            out |= _dagster_fields(kind)
        else:
            out.add(name)
    return out


def _model_leaves(model, only=None) -> set[str]:
    out = set()
    for name in settable(model):
        info = model.model_fields[name]
        if only is not None and name not in only:
            continue
        nested = next((m for m in config_models() if m.__name__ in repr(info.annotation)
                       and m is not model), None)
        if nested is not None and "list[" not in repr(info.annotation):
            out |= _model_leaves(nested)
        else:
            out.add(name)
    return out


def test_dagster_configs_accept_exactly_the_models_fields():
    from tennis_assets.defs import config as defs_config
    from tennis_assets.defs.assets.tuning import TuningWorkerConfig

    classes = [*defs_config.STEP_CONFIGS.values(), defs_config.TuningConfig,
               TuningWorkerConfig]
    for cls in classes:
        expected = set()
        for part in cls.__parts__:
            expected |= _model_leaves(part.model, part.only)
        assert _dagster_fields(cls) == expected, cls.__name__
    # Nothing in the Dagster layer is a Config written by hand.
    source = (PACKAGE / "defs").rglob("*.py")
    hand_written = [f"{p.name}: {m}" for p in source
                    for m in re.findall(r"class (\w+)\((?:dg\.)?Config\)", p.read_text())]
    assert not hand_written


def _cli_fields(command: str, models) -> set[str]:
    """The fields a command's options set: every --flag in its help, less help, --set, the
    --no- forms of booleans and the aliases the models declare."""
    from tennis_assets.cli import build_parser

    usage = build_parser().commands[command].format_help()
    flags = set(re.findall(r"(?<![\w-])--([a-z][a-z0-9-]*)", usage))
    aliases = {alias.removeprefix("--") for m in models for info in m.model_fields.values()
               for alias in (info.json_schema_extra or {}).get("cli_aliases", ())}
    flags -= {"help", "set"} | aliases | {f for f in flags if f.startswith("no-")}
    return {f.replace("-", "_") for f in flags}


def test_the_command_line_accepts_exactly_the_models_fields():
    from tennis_assets.envs import EnvironmentConfig
    from tennis_assets.experiment import experiment_models
    from tennis_assets.sim.rally_config import RallyConfig
    from tennis_assets.workflow.evaluation import EvaluationConfig

    models = experiment_models()
    assert _cli_fields("train", models) == set().union(*(set(settable(m)) for m in models))
    # The learner's sizes are the environment's: no option offers them.
    assert not {"obs_size", "action_size", "num_agents"} & _cli_fields("train", models)
    evaluate = (EvaluationConfig, EnvironmentConfig)
    assert _cli_fields("evaluate", evaluate) == {"eval_episodes", "eval_seed", "env_kwargs"}
    replay = (RallyConfig, EvaluationConfig, EnvironmentConfig)
    assert _cli_fields("replay", replay) == {*RallyConfig.model_fields, "gif_max_frames",
                                             "env_kwargs"}


def test_profiles_are_partial_models_and_name_only_their_fields():
    from tennis_assets.config.partial import Partial
    from tennis_assets.profiles import PROFILE_NAMES, profiles
    from tennis_assets.settings import profile as default_profile

    assert tuple(profiles()) == PROFILE_NAMES
    for name, profile in profiles().items():
        for partial in profile.partials:
            assert isinstance(partial, Partial)
            assert set(partial.values) <= set(partial.model.model_fields), (name, partial)
    assert default_profile() in PROFILE_NAMES
    with pytest.raises(ValueError, match="num_cuorts: unknown field; did you mean num_courts"):
        from tennis_assets.training.config import TrainConfig

        Partial(TrainConfig, num_cuorts=4)


def test_profile_names_are_declared_once():
    """The names live in profiles.ProfileName; the CLI, the Dagster configs, the settings and
    the main command take them from there."""
    literal = re.compile(r"""["']tiny["']\s*,\s*["']quick["']\s*,\s*["']full["']""")
    places = [p.relative_to(PACKAGE).as_posix() for p in PACKAGE.rglob("*.py")
              if literal.search(p.read_text())]
    assert places == ["profiles.py"]


def test_a_bad_value_is_named_by_its_path_wherever_it_is_given(tmp_path):
    """One validation, the same message: the core model names the field; the Dagster layer
    names it by its run-config path; the command line by its option."""
    import subprocess
    import sys

    from tennis_assets.defs.config import check_run_config
    from tennis_assets.training.config import TrainConfig

    with pytest.raises(ValueError, match=r"TrainConfig.num_courts: Input should be greater "
                                         r"than or equal to 1 \(got 0\)"):
        TrainConfig(num_courts=0)
    with pytest.raises(ValueError, match=r"ops.trained_agents.config.train.num_courts: Input "
                                         r"should be greater than or equal to 1 \(got 0\)"):
        check_run_config({"ops": {"trained_agents": {"config": {"train": {"num_courts": 0}}}}})
    out = subprocess.run([sys.executable, "-m", "tennis_assets.cli", "train", "--num-courts",
                          "0", "--out", str(tmp_path / "run")], capture_output=True, text=True,
                         timeout=120, check=False)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert "TrainConfig.num_courts: Input should be greater than or equal to 1 (got 0)" in \
        out.stderr
    assert not (tmp_path / "run").exists()
