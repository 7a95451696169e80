"""An index's definition: the ``FT.CREATE`` command of a schema file, and how the ``FT.INFO``
of a live index differs from it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pynenc_redis_stack.core.keys import Namespace
    from pynenc_redis_stack.core.schema import IndexSpec


def create_command(namespace: Namespace, spec: IndexSpec, index: str | None = None) -> list[str]:
    """Return the ``FT.CREATE`` command of ``spec``'s physical index.

    :param index: Physical name; ``namespace.physical_index(spec)`` by default.
    """
    prefixes = namespace.prefixes(spec)
    return [
        "FT.CREATE",
        index or namespace.physical_index(spec),
        "ON",
        "JSON",
        "PREFIX",
        str(len(prefixes)),
        *prefixes,
        *spec.schema_args(),
    ]


type _Attribute = tuple[str, str, str, frozenset[str]]


def _expected_attributes(spec: IndexSpec) -> list[_Attribute]:
    expected = []
    for spec_field in spec.fields:
        flags = set()
        if spec_field.type == "tag" and spec_field.case_sensitive:
            flags.add("CASESENSITIVE")
        if spec_field.sortable:
            flags.add("SORTABLE")
        expected.append((spec_field.path, spec_field.name, spec_field.type.upper(), frozenset(flags)))
    return expected


def _live_attributes(raw: list[list[Any]]) -> list[_Attribute]:
    live = []
    for attribute in raw:
        info: dict[str, Any] = {}
        flags = set()
        items = list(attribute)
        position = 0
        while position < len(items):
            token = items[position]
            if token in ("identifier", "attribute", "type", "SEPARATOR") and position + 1 < len(items):
                info[token] = items[position + 1]
                position += 2
                continue
            flags.add(str(token))
            position += 1
        if info.get("SEPARATOR", "") != "":
            flags.add(f"SEPARATOR={info['SEPARATOR']}")
        flags.discard("UNF")  # implied by SORTABLE on JSON since RediSearch 2.6
        live.append(
            (
                str(info.get("identifier")),
                str(info.get("attribute")),
                str(info.get("type")),
                frozenset(flags),
            )
        )
    return live


def definition_differences(info: Mapping[str, Any], namespace: Namespace, spec: IndexSpec) -> list[str]:
    """Return how the index described by ``FT.INFO`` differs from ``spec`` (empty if it matches)."""
    raw_definition = list(info.get("index_definition") or [])
    definition = dict(zip(raw_definition[::2], raw_definition[1::2], strict=False))
    differences = []
    if str(definition.get("key_type")) != "JSON":
        differences.append(f"key type {definition.get('key_type')} instead of JSON")
    if list(definition.get("prefixes", [])) != namespace.prefixes(spec):
        differences.append(f"prefixes {definition.get('prefixes')} instead of {namespace.prefixes(spec)}")
    live = {attribute[1]: attribute for attribute in _live_attributes(info.get("attributes") or [])}
    expected = {attribute[1]: attribute for attribute in _expected_attributes(spec)}
    missing = [name for name in expected if name not in live]
    unexpected = [name for name in live if name not in expected]
    if missing:
        differences.append(f"missing fields {', '.join(missing)}")
    if unexpected:
        differences.append(f"unexpected fields {', '.join(unexpected)}")
    for name in expected:
        if name in live and live[name] != expected[name]:
            differences.append(
                f"field {name} is {_describe(live[name])} instead of {_describe(expected[name])}"
            )
    return differences


def _describe(attribute: _Attribute) -> str:
    path, _name, kind, flags = attribute
    return " ".join([path, kind, *sorted(flags)])
