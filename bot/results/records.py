"""JSON <-> the result dataclasses: a field becomes a key of the same name (None values are left out); keys a
reader does not know are kept in `extra` and written back, so a newer file survives an older bot."""

from __future__ import annotations

import dataclasses
import functools
import types
import typing
from typing import Any, TypeVar

R = TypeVar("R", bound="Record")


def _encode(value: Any) -> Any:
    if isinstance(value, Record):
        return value.to_json()
    if isinstance(value, list | tuple):
        return [_encode(v) for v in value]
    if isinstance(value, dict):
        return {k: _encode(v) for k, v in value.items()}
    return value


def _decode(hint: Any, value: Any) -> Any:
    """value (parsed JSON) as the type `hint` names: Records, lists and dicts of them, optionals."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None:
            return None
        inner = [a for a in typing.get_args(hint) if a is not type(None)]
        return _decode(inner[0], value) if len(inner) == 1 else value
    if origin is list and isinstance(value, list):
        (item,) = typing.get_args(hint)
        return [_decode(item, v) for v in value]
    if origin is dict and isinstance(value, dict):
        _, item = typing.get_args(hint)
        return {k: _decode(item, v) for k, v in value.items()}
    if isinstance(hint, type) and issubclass(hint, Record) and isinstance(value, dict):
        return hint.from_json(value)
    return value


def _has_record(hint: Any) -> bool:
    """Whether a value of this type holds a Record somewhere (else JSON already is the value)."""
    if isinstance(hint, type) and issubclass(hint, Record):
        return True
    return any(_has_record(a) for a in typing.get_args(hint))


@functools.cache
def _schema(cls: type) -> tuple[dict[str, Any], frozenset[str]]:
    """A Record class's JSON field names and, of those holding Records, their types; worked out once per class
    (get_type_hints is slow, and the dashboard reads thousands of result files)."""
    names = frozenset(f.name for f in dataclasses.fields(cls) if f.metadata.get("json", True))
    hints = {k: h for k, h in typing.get_type_hints(cls).items() if _has_record(h)}
    return hints, names


class Record:
    """Mixin for result dataclasses: to_json/from_json by field name, unknown keys kept in `extra`.

    A field with metadata {"json": False} is in memory only (e.g. ApplyResult.base, stored at the top).
    """

    extra: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            if f.name != "extra" and value is not None and f.metadata.get("json", True):
                out[f.name] = _encode(value)
        return out | getattr(self, "extra", {})

    @classmethod
    def from_json(cls: type[R], data: dict[str, Any]) -> R:
        hints, names = _schema(cls)  # type: ignore[arg-type]
        kwargs = {k: _decode(hints[k], v) if k in hints else v
                  for k, v in data.items() if k in names and k != "extra"}
        obj = cls(**kwargs)
        if "extra" in names:
            obj.extra = {k: v for k, v in data.items() if k not in names}
        return obj
