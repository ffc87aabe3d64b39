"""Frozen experiment configurations built from notebook parameters.

Each experiment (simulation, DBNorm evaluation, NeighborRetr training, ...) has one
frozen dataclass whose field names equal its notebook's parameter names.
:func:`from_params` builds it from a mapping and rejects unknown keys and values of
the wrong type early, so a typo in a papermill ``-p`` fails before any work starts.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from typing import Any, TypeVar

T = TypeVar("T")

__all__ = ["from_params", "to_params"]


def _type_ok(value: Any, hint: Any) -> bool:
    origin = typing.get_origin(hint)
    if hint is Any:
        return True
    if origin in (typing.Union, types.UnionType):
        return any(_type_ok(value, h) for h in typing.get_args(hint))
    if hint is type(None):
        return value is None
    if origin in (list, tuple):
        if not isinstance(value, list | tuple):
            return False
        args = [a for a in typing.get_args(hint) if a is not Ellipsis]
        return not args or all(_type_ok(v, args[0]) for v in value)
    if origin is dict:
        return isinstance(value, dict)
    if origin is typing.Literal:
        return value in typing.get_args(hint)
    if hint is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if isinstance(hint, type):
        return isinstance(value, hint)
    return True


def from_params(
    cls: type[T], params: Mapping[str, Any], *, ignore: tuple[str, ...] = ()
) -> T:
    """Build the frozen dataclass ``cls`` from ``params``.

    Unknown keys (other than those in ``ignore``) and values of the wrong type raise
    ``ValueError`` / ``TypeError`` naming the key. Lists become tuples for tuple fields.
    """
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"from_params: `cls` must be a dataclass; got {cls!r}.")
    hints = typing.get_type_hints(cls)
    fields = {f.name for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(params) - fields - set(ignore))
    if unknown:
        raise ValueError(
            f"from_params: `params` must only hold fields of {cls.__name__}; got unknown "
            f"key(s) {unknown}. Known: {sorted(fields)}."
        )
    kwargs = {}
    for name, value in params.items():
        if name not in fields:
            continue
        hint = hints[name]
        if typing.get_origin(hint) is tuple and isinstance(value, list):
            value = tuple(value)
        if not _type_ok(value, hint):
            raise TypeError(
                f"from_params: `{name}` of {cls.__name__} must be of type {hint}; got {value!r}."
            )
        kwargs[name] = value
    return cls(**kwargs)


def to_params(cfg: Any) -> dict[str, Any]:
    """The inverse of :func:`from_params`: a plain dict of literals."""
    return {
        k: list(v) if isinstance(v, tuple) else v
        for k, v in dataclasses.asdict(cfg).items()
    }
