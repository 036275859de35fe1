"""YAML data -> typed dataclasses, strictly: an unknown key or a wrong type is a DataError naming it.

The checking behind recipes (`algos.recipe`), algorithm configs and saved runs
(`algos.base.load_algorithm`): it knows dataclasses and type hints only, nothing about
algorithms, so every module above it can use it. A Config may list keys it renamed in `RENAMED`
(old name -> new dotted name): an old key is then refused with its new name rather than as
merely unknown.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from typing import Any, Literal, Union

from ildata.episode import DataError


def plain_data(value: Any) -> Any:
    """A (nested) dataclass as plain YAML-able data: the inverse of `build_dataclass`."""
    if dataclasses.is_dataclass(value):
        return {f.name: plain_data(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, (list, tuple)):
        return [plain_data(v) for v in value]
    return value


def _type_name(hint: Any) -> str:
    if isinstance(hint, type):
        return hint.__name__
    return str(hint).replace("typing.", "")


def _tagged_union(hint: Any) -> tuple[str, dict[Any, type]] | None:
    """(tag field, tag value -> class) when every option of `hint` is a dataclass with the same
    field typed as a one-value Literal (`algo: Literal["ppo"]`); None otherwise."""
    options = typing.get_args(hint)
    if not options or not all(isinstance(o, type) and dataclasses.is_dataclass(o) for o in options):
        return None
    tags = [
        {
            n: typing.get_args(h)[0]
            for n, h in typing.get_type_hints(o).items()
            if typing.get_origin(h) is Literal and len(typing.get_args(h)) == 1
        }
        for o in options
    ]
    for name in tags[0]:
        if all(name in t for t in tags):
            return name, {t[name]: o for t, o in zip(tags, options, strict=True)}
    return None


def coerce(value: Any, hint: Any, key: str) -> Any:
    """Check `value` against a type hint (converting lists to tuples and ints to floats)."""
    origin = typing.get_origin(hint)
    if origin in (Union, types.UnionType):
        tagged = _tagged_union(hint)
        if tagged is not None and isinstance(value, Mapping):
            # A discriminated union of dataclasses (e.g. `learner: PPOConfig | SACConfig`): the
            # tag (their one shared single-value Literal field) picks the class, so errors name
            # that class's keys; no tag: the first class. Its errors name keys from the field on
            # (`config.learner.n_steps was renamed to learner.rollout_steps`).
            tag, classes = tagged
            chosen = value.get(tag, next(iter(classes)))
            if chosen not in classes:
                raise DataError(f"{key}.{tag}: must be one of {', '.join(map(repr, classes))}, got {chosen!r}")
            parent, _, name = key.rpartition(".")
            try:
                return build_dataclass(classes[chosen], value, name)
            except DataError as exc:
                raise DataError(f"{parent}.{exc}" if parent else str(exc)) from None
        errors = []
        for option in typing.get_args(hint):
            try:
                return coerce(value, option, key)
            except DataError as exc:
                errors.append(exc)
        raise DataError(f"{key}: expected {_type_name(hint)}, got {value!r}")
    if origin is Literal:
        if value not in typing.get_args(hint):
            choices = ", ".join(repr(c) for c in typing.get_args(hint))
            raise DataError(f"{key}: must be one of {choices}, got {value!r}")
        return value
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise DataError(f"{key}: expected a list, got {value!r}")
        args = typing.get_args(hint)
        item = args[0] if args else Any
        items = [coerce(v, item, f"{key}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, Mapping):
            raise DataError(f"{key}: expected a mapping, got {value!r}")
        _, item = typing.get_args(hint) or (str, Any)
        return {str(k): coerce(v, item, f"{key}.{k}") for k, v in value.items()}
    if hint is Any:
        return value
    if hint is type(None):
        if value is not None:
            raise DataError(f"{key}: expected null, got {value!r}")
        return None
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return build_dataclass(hint, value, key)
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint is float and isinstance(value, str):
        # YAML 1.1 (PyYAML) reads `3e-4` as a string: accept what Python reads as a number.
        try:
            return float(value)
        except ValueError:
            pass
    if (hint is int and isinstance(value, bool)) or not isinstance(value, hint):
        raise DataError(f"{key}: expected {_type_name(hint)}, got {value!r} ({type(value).__name__})")
    return value


def build_dataclass(cls: type, data: Any, prefix: str = "") -> Any:
    """`cls(**data)` with every key known and every value of its declared type."""
    where = prefix or "recipe"
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise DataError(f"{where}: expected a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init and f.metadata.get("yaml", True)}
    renamed: Mapping[str, str] = getattr(cls, "RENAMED", {})
    for key in data:
        if key in renamed and key not in fields:
            where_ = f"{prefix}." if prefix else ""
            raise DataError(f"{where_}{key} was renamed to {where_}{renamed[key]}")
        if key not in fields:
            known = ", ".join(sorted(fields))
            raise DataError(f"{prefix + '.' if prefix else ''}{key}: unknown key (known: {known})")
    kwargs = {}
    for name, value in data.items():
        kwargs[name] = coerce(value, hints[name], f"{prefix + '.' if prefix else ''}{name}")
    missing = [
        name
        for name, f in fields.items()
        if name not in kwargs and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        raise DataError(f"{prefix + '.' if prefix else ''}{missing[0]}: required key is missing")
    try:
        return cls(**kwargs)
    except DataError as exc:  # a Config's own range checks name the bare field: prefix it
        raise DataError(f"{prefix + '.' if prefix else ''}{exc}") from None
