"""Partial configurations: some fields of one model, checked against it when declared.

A profile is a set of partials (tiny, quick and full size the training, the study and the
evaluations differently); a layer of overrides (a profile, the study's best parameters, what
a user set) is applied on top of a complete configuration with ``apply``. A partial is checked
when it is made, so a misspelt field or a bad value fails at import, naming the model and the
field, not when a run first uses it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Generic, TypeVar

from .model import ConfigError, ConfigModel, FieldError, unknown_name

M = TypeVar("M", bound=ConfigModel)


class Partial(Generic[M]):
    """Some fields of ``model``, validated against it (with the model's defaults for the rest)."""

    def __init__(self, model: type[M], **values: Any) -> None:
        unknown = sorted(set(values) - set(model.model_fields))
        if unknown:
            raise ConfigError([FieldError(model.__name__, (name,),
                                          unknown_name(name, tuple(model.model_fields)))
                               for name in unknown])
        model(**values)  # each value checked in context; the defaults fill the rest
        self.model, self.values = model, dict(values)

    def apply(self, base: M) -> M:
        return base.replace(**self.values) if self.values else base

    def __repr__(self) -> str:
        return f"Partial({self.model.__name__}, {self.values!r})"


def _merge(values: dict[str, Any], layer: Mapping[str, Any]) -> None:
    for key, value in layer.items():
        if isinstance(value, Mapping) and isinstance(values.get(key), dict):
            _merge(values[key], value)  # a nested model: set only the fields the layer names
        else:
            values[key] = value


def layered(base: M, *layers: Mapping[str, Any] | Partial[M] | None) -> M:
    """``base`` with each layer's fields set in turn (a nested model's field by field),
    validated once at the end."""
    values = base.model_dump()
    for layer in layers:
        if layer is not None:
            _merge(values, layer.values if isinstance(layer, Partial) else layer)
    return type(base).from_dict(values)
