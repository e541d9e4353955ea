"""The base of every configuration model and every record that crosses a layer.

pydantic, strict (``True`` is no batch size, ``"5"`` no seed, NaN no learning rate), frozen, and
closed (an unknown key is an error naming it). A field is declared once, on the model of its
concern, with its constraint and its one-line doc (the attribute docstring); the Dagster
configs, the CLI options and the profiles are derived from those declarations.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from typing import Annotated, Any, NamedTuple, Self

from pydantic import BaseModel, BeforeValidator, ConfigDict, ValidationError

from tennis_assets.seeds import check_seed


class FieldError(NamedTuple):
    """One rejected value: the model, the field's path in it, why, and what was given."""

    model: str
    loc: tuple[str, ...]
    message: str
    got: str = ""

    def render(self, prefix: str | None = None) -> str:
        where = ".".join([self.model if prefix is None else prefix, *self.loc])
        return f"{where}: {self.message}{self.got}"


class ConfigError(ValueError):
    """A configuration that cannot be used; each line names ``Model.field`` and the value."""

    def __init__(self, errors: Sequence[FieldError | str]) -> None:
        self.errors = [e if isinstance(e, FieldError) else FieldError("", (), e) for e in errors]
        super().__init__("; ".join(e.render() if e.model else e.message for e in self.errors))

    def lines(self, prefixes: Mapping[str, str] | None = None) -> list[str]:
        """The errors, each model's name replaced by its prefix (e.g. the path of its section
        in a Dagster run config)."""
        prefixes = prefixes or {}
        return [e.render(prefixes.get(e.model)) if e.model else e.message for e in self.errors]


def unknown_name(name: str, known: Sequence[str], what: str = "field") -> str:
    """Why ``name`` is refused: the close matches among ``known``, else all of them where they
    are few."""
    close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
    hint = f"did you mean {' or '.join(close)}? " if close else ""
    return f"unknown {what}; {hint}known: {', '.join(known)}"


def _got(error: Mapping[str, Any]) -> str:
    value = error.get("input")
    if isinstance(value, Mapping) or not error.get("loc"):
        return ""
    return f" (got {value!r})"


def field_errors(exc: ValidationError, model: str,
                 known: Sequence[str] = ()) -> list[FieldError]:
    """pydantic's errors as FieldErrors of ``model`` (whose fields are ``known``); a nested
    model's errors keep their own field paths under the field that holds it."""
    out = []
    for error in exc.errors(include_url=False):
        loc = tuple(map(str, error["loc"]))
        inner = (error.get("ctx") or {}).get("error")
        if isinstance(inner, ConfigError):
            out += [FieldError(model, loc + e.loc, e.message, e.got) for e in inner.errors]
        elif error["type"] == "extra_forbidden" and known:
            out.append(FieldError(model, loc, unknown_name(loc[-1], known)))
        else:
            out.append(FieldError(model, loc, error["msg"].removeprefix("Value error, "),
                                  _got(error)))
    return out


Seed = Annotated[int, BeforeValidator(lambda value: check_seed(value, None))]
"""A seed field: the one seed rule of tennis_assets.seeds."""


class ConfigModel(BaseModel):
    """Strict, frozen, closed; ``replace`` and ``from_dict`` validate like the constructor."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False,
                              use_attribute_docstrings=True, validate_default=True)

    def __init__(self, /, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as exc:
            raise ConfigError(field_errors(exc, type(self).__name__,
                                           tuple(type(self).model_fields))) from None

    @classmethod
    def from_dict(cls, data: Any) -> Self:
        if not isinstance(data, Mapping):
            raise ConfigError([(f"{cls.__name__}: expected a mapping of its fields, got "
                                f"{type(data).__name__}")])
        return cls(**dict(data))

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    def replace(self, **changes: Any) -> Self:
        """A copy with ``changes``, validated as a new instance."""
        return type(self).from_dict({**self.model_dump(), **changes})

    def changes(self) -> dict[str, Any]:
        """The fields whose value differs from the model's default, as JSON values (what a
        person would write to get this configuration)."""
        default = type(self)()
        out: dict[str, Any] = {}
        for name in type(self).model_fields:
            value, base = getattr(self, name), getattr(default, name)
            if isinstance(value, ConfigModel) and isinstance(base, ConfigModel):
                nested = value.changes()
                if nested:
                    out[name] = nested
            elif value != base:
                out[name] = self.model_dump(mode="json", include={name})[name]
        return out

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        return tuple(cls.model_fields)


class Record(ConfigModel):
    """What crosses a layer (a training result, a report, a decision): typed and frozen, one
    serialisation (``to_json``/``from_json``) for files and trackers. Records are not
    user-settable; they only reuse the base's strictness."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=False, allow_inf_nan=True,
                              ser_json_inf_nan="constants", use_attribute_docstrings=True)

    def to_json(self, indent: int | None = 2) -> str:
        return self.model_dump_json(indent=indent)

    @classmethod
    def from_json(cls, text: str | bytes, source: str = "") -> Self:
        try:
            return cls.model_validate_json(text)
        except ValidationError as exc:
            raise ConfigError(field_errors(exc, source or cls.__name__)) from None

    @classmethod
    def read(cls, path: Any, what: str = "the file", fix: str = "") -> Self:
        """The record a JSON file holds; a file that is torn, not JSON or not this record is a
        CorruptFileError naming the file, what is wrong and ``fix``."""
        from tennis_assets.files import CorruptFileError, read_json_object

        data = read_json_object(path, what, fix)
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            problem = "; ".join(e.render(cls.__name__) for e in field_errors(exc, cls.__name__))
            raise CorruptFileError(path, f"{what} is not a {cls.__name__} ({problem})",
                                   fix) from None
