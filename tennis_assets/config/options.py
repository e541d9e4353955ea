"""Command-line options derived from the configuration models.

Each field of a model becomes ``--field-name`` (plus any ``cli_aliases`` the field declares),
its help the field's doc and default, its choices the field's ``Literal``; a bool becomes
``--name/--no-name``; a nested model (a court) becomes ``--name KEY=VALUE``, repeatable. An
option left out is not in the namespace at all, so "not given" stays distinct from "given the
default" (a resumed run keeps its own values for what the user did not give). Values are only
parsed here (text to JSON values); the model validates them once, with the errors it gives
everywhere else.
"""

from __future__ import annotations

import argparse
import json
import typing
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Literal

from .model import ConfigError, ConfigModel, FieldError, unknown_name

SET_HELP = "set any field above by name, e.g. --set actor_lr=0.002 (repeatable)"


def _leaves(annotation: Any) -> list[Any]:
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Annotated:
        return _leaves(args[0])
    if args and origin is not Literal and origin is not list and origin is not dict:
        return [leaf for a in args for leaf in _leaves(a)]
    return [annotation]


def _choices(annotation: Any) -> tuple[Any, ...] | None:
    literals = [leaf for leaf in _leaves(annotation) if typing.get_origin(leaf) is Literal]
    return tuple(c for leaf in literals for c in typing.get_args(leaf)) or None


def _nested_model(annotation: Any) -> type[ConfigModel] | None:
    for leaf in _leaves(annotation):
        if isinstance(leaf, type) and issubclass(leaf, ConfigModel):
            return leaf
    return None


def parse_value(text: str, annotation: Any) -> Any:
    """Command-line text as the value a field takes: text for a text field, else JSON where
    it parses (numbers, true/false, null, lists), else the text itself for the model to
    judge."""
    leaves = _leaves(annotation)
    if str in leaves and not (text == "null" and type(None) in leaves):
        return text
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _key_values(model: type[ConfigModel], option: str):
    def parse(text: str) -> tuple[str, Any]:
        key, sep, raw = text.partition("=")
        if not sep or not key:
            raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
        if key not in model.model_fields:
            raise argparse.ArgumentTypeError(
                f"{key!r}: {unknown_name(key, tuple(model.model_fields))}")
        return key, parse_value(raw, model.model_fields[key].annotation)
    parse.__name__ = f"{option} NAME=VALUE"
    return parse


def _value_parser(annotation: Any) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        return parse_value(text, annotation)
    return parse


def _help(info: Any) -> str:
    doc = " ".join((info.description or "").split())
    default = info.get_default(call_default_factory=True)
    if isinstance(default, ConfigModel):
        default = default.changes() or "default"
    return f"{doc} (default: {default})".replace("%", "%%")


def _option_names(name: str, info: Any) -> list[str]:
    extra = (info.json_schema_extra or {}) if isinstance(info.json_schema_extra, dict) else {}
    return [f"--{name.replace('_', '-')}", *extra.get("cli_aliases", ())]


def add_model_options(parser: argparse.ArgumentParser, model: type[ConfigModel], *,
                      only: Iterable[str] | None = None, exclude: Iterable[str] = (),
                      title: str | None = None) -> None:
    """One option per field of ``model`` (or ``only`` those, less ``exclude``), in a group."""
    group = parser.add_argument_group(title or f"{model.__name__}: {model.__doc__ or ''}"
                                      .split("\n")[0])
    names = list(only) if only is not None else list(settable(model))
    for name in names:
        if name in exclude:
            continue
        info = model.model_fields[name]
        flags, kind = _option_names(name, info), info.annotation
        common: dict[str, Any] = {"dest": name, "default": argparse.SUPPRESS, "help": _help(info)}
        nested = _nested_model(kind)
        if kind is bool:
            group.add_argument(*flags, action=argparse.BooleanOptionalAction, **common)
        elif nested is not None:
            group.add_argument(*flags, action="append", metavar="NAME=VALUE",
                               type=_key_values(nested, flags[0]), **common)
        else:
            choices = _choices(kind)
            group.add_argument(*flags, type=_value_parser(kind),
                               choices=choices, metavar="{" + ",".join(map(str, choices)) + "}"
                               if choices else name.upper(), **common)


def settable(model: type[ConfigModel]) -> tuple[str, ...]:
    """The fields of ``model`` a person sets (not those another part derives, such as the
    learner's sizes, which are the environment's)."""
    return tuple(name for name, info in model.model_fields.items()
                 if not (isinstance(info.json_schema_extra, dict)
                         and "derived" in info.json_schema_extra))


def given(args: argparse.Namespace, model: type[ConfigModel]) -> dict[str, Any]:
    """The fields of ``model`` given on the command line (nested ones as dicts)."""
    out: dict[str, Any] = {}
    for name in model.model_fields:
        if name in vars(args):
            value = getattr(args, name)
            out[name] = dict(value) if isinstance(value, list) and value and \
                isinstance(value[0], tuple) else value
    return out


def parse_set(pairs: Sequence[str], models: Sequence[type[ConfigModel]]
              ) -> dict[type[ConfigModel], dict[str, Any]]:
    """``--set NAME=VALUE`` pairs, each assigned to the one model that declares NAME."""
    owners = {name: m for m in models for name in settable(m)}
    out: dict[type[ConfigModel], dict[str, Any]] = {m: {} for m in models}
    errors = []
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            errors.append(FieldError("--set", (), f"expected NAME=VALUE, got {pair!r}"))
        elif key not in owners:
            errors.append(FieldError("--set", (key,), unknown_name(key, sorted(owners),
                                                                   "setting")))
        else:
            model = owners[key]
            out[model][key] = parse_value(raw, model.model_fields[key].annotation)
    if errors:
        raise ConfigError(errors)
    return out


def merge_given(args: argparse.Namespace, models: Sequence[type[ConfigModel]]
                ) -> dict[type[ConfigModel], dict[str, Any]]:
    """What the command line gave for each model: ``--set`` pairs, then the options (an option
    and a ``--set`` of the same field must agree)."""
    values = parse_set(getattr(args, "set", None) or [], models)
    for model in models:
        for name, value in given(args, model).items():
            if name in values[model] and values[model][name] != value:
                raise ConfigError([FieldError("--set", (name,), f"{values[model][name]!r} "
                                              f"disagrees with --{name.replace('_', '-')} "
                                              f"{value!r}; give one")])
            values[model][name] = value
    return values
