"""The JSON codec every component's documents go through: serialisation with a clear error
for what JSON cannot carry, epoch-microsecond times, and validation against an index spec
(a value RediSearch would refuse is rejected before it is written; the spec's derived values
are filled in)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import orjson

from pynenc_redis_stack.core.errors import InvalidDocumentError, lone_surrogate, lone_surrogate_message
from pynenc_redis_stack.core.query.escaping import substring_form

if TYPE_CHECKING:
    from pynenc_redis_stack.core.schema import IndexSpec

Document = dict[str, Any]


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
MIN_MICROS = -(2**53)
MAX_MICROS = 2**53
"""Bounds of exact integers in RediSearch's double NUMERIC fields."""


def to_micros(moment: datetime) -> int:
    """Return ``moment`` as integer epoch microseconds (naive datetimes are taken as UTC).

    Integers stay exact in RediSearch's double-precision NUMERIC fields until 2**53 µs
    (year 2255), which ``float`` seconds would not.
    """
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return (moment - _EPOCH) // _MICROSECOND


def from_micros(micros: int) -> datetime:
    """Return the UTC datetime of integer epoch microseconds."""
    return _EPOCH + timedelta(microseconds=micros)


def validated(spec: IndexSpec, document: Document) -> Document:
    """Return ``document`` as it is stored: every indexed value checked, and the derived
    values ``spec`` declares added (a copy then; ``document`` is left as it is).

    A wrong-typed value (an object in a tag, a string in a numeric field) would make the
    whole document silently disappear from the index, so it is refused here instead.

    :raises InvalidDocumentError: Naming each offending field.
    """
    problems = spec.invalid_fields(document)
    if problems:
        raise InvalidDocumentError(
            f"refusing to write a {spec.name} document RediSearch would not index: " + "; ".join(problems)
        )
    if not spec.derived:
        return document
    completed = dict(document)
    for derived in spec.derived:
        value = document.get(derived.source)
        if value is not None:  # a missing source, no derived value either
            completed[derived.name] = substring_form(value)  # the one DerivedForm so far
    return completed


def dumps(document: Document) -> str:
    """Serialise a document for ``JSON.SET``.

    :raises InvalidDocumentError: If a value cannot be JSON, naming the field (e.g. a string
        with a lone surrogate, which UTF-8 cannot carry).
    """
    try:
        return orjson.dumps(document).decode()
    except TypeError as exc:
        found = _surrogate_in(document, "")
        if found is None:
            raise InvalidDocumentError(f"document cannot be stored as JSON: {exc}") from exc
        path, text, position = found
        raise InvalidDocumentError(
            "document cannot be stored: " + lone_surrogate_message(f"field {path}", text, position)
        ) from exc


def _surrogate_in(value: Any, path: str) -> tuple[str, str, int] | None:
    """Return ``(path, text, position)`` of the first string (or key) with a lone surrogate."""
    if isinstance(value, str):
        position = lone_surrogate(value)
        return None if position is None else (path or "$", value, position)
    if isinstance(value, dict):
        for key, item in value.items():
            child = f"{path}.{key}" if path else str(key)
            found = _surrogate_in(str(key), f"{child} (a key)") or _surrogate_in(item, child)
            if found is not None:
                return found
    if isinstance(value, list | tuple):
        for n, item in enumerate(value):
            found = _surrogate_in(item, f"{path}[{n}]")
            if found is not None:
                return found
    return None


def loads(raw: str | bytes) -> Any:
    """Parse a JSON document or JSON.GET reply."""
    return orjson.loads(raw)
