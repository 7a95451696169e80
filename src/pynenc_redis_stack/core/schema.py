"""Index schemas: ``schemas/*.yaml`` loaded into typed, immutable specs.

A schema file names the index, the key prefixes it covers, its fields and the values derived
from them. Nothing else in the package lists fields: documents are validated (and their
derived values filled) against these specs, queries check field names against them, and
``FT.CREATE`` arguments are rendered from them. Versions and migrations: docs/lifecycle.md.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from functools import cache, cached_property
from importlib import resources
from pathlib import Path
from typing import Any, Literal, Self, cast

import yaml

from pynenc_redis_stack.core.errors import SchemaError
from pynenc_redis_stack.core.keys import DocumentKind

# libyaml's loader where PyYAML was built with it: it parses the schema files about 8 times
# faster than the pure-Python one, a share of every new process's start (docs/performance.md).
_SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

FieldType = Literal["tag", "numeric"]
_FIELD_TYPES: tuple[FieldType, ...] = ("tag", "numeric")
_KNOWN_ATTRS = {"sortable", "case_sensitive", "lookup"}
DerivedForm = Literal["substring_form"]
_DERIVED_FORMS: tuple[DerivedForm, ...] = ("substring_form",)


@dataclass(frozen=True)
class FieldSpec:
    """One indexed JSON field.

    :param name: Attribute name used in queries (``@name``); also the top-level JSON key.
    :param type: ``tag`` (exact string match) or ``numeric`` (ranges, sorting).
    :param path: JSONPath of the value in the document.
    :param sortable: Keep a sort vector (needed for SORTBY and seek paging).
    :param case_sensitive: Tags match case-sensitively. Defaults to True because ids
        differing only in case are different ids.
    :param lookup: The backend queries this tag by value (the default). Without
        ``INDEXEMPTY`` (RediSearch 2.10 only) the empty string cannot be queried, so a lookup
        field refuses ``""``: a document holding it could never be found by it. A field the
        backend never queries (``lookup: false``) stores ``""`` like any value: the server
        indexes the document, only the empty value is not searchable, which no query needs.
    """

    name: str
    type: FieldType
    path: str
    sortable: bool = False
    case_sensitive: bool = True
    lookup: bool = True

    def create_args(self) -> list[str]:
        """Return this field's ``FT.CREATE ... SCHEMA`` fragment.

        JSON tags get no SEPARATOR: with none, a JSON string is one tag value, so ids
        containing commas stay whole (redis-py's ``TagField`` always sends ``SEPARATOR ,``).
        """
        args = [self.path, "AS", self.name, self.type.upper()]
        if self.type == "tag" and self.case_sensitive:
            args.append("CASESENSITIVE")
        if self.sortable:
            args.append("SORTABLE")
        return args

    def accepts(self, value: object) -> bool:
        """Tell whether RediSearch indexes ``value`` for this field without dropping the document."""
        if value is None:
            return True
        if self.type == "tag":
            # RediSearch cuts tag values at NUL; the empty string cannot be queried (see lookup).
            return isinstance(value, str) and (value != "" or not self.lookup) and "\x00" not in value
        return isinstance(value, int | float) and not isinstance(value, bool)


@dataclass(frozen=True)
class DerivedSpec:
    """A value stored beside an indexed field in every document, computed from it when the
    document is written (:func:`~pynenc_redis_stack.core.codec.validated`), never indexed.

    It adds nothing to ``FT.CREATE``, so declaring one leaves the live index as it is (same
    definition, same version); a query step reads it with ``LOAD`` of its :attr:`path`.

    :param name: Top-level JSON key, and the name a query step loads it as.
    :param source: The indexed field it is computed from.
    :param form: How: ``substring_form`` is :func:`~pynenc_redis_stack.core.query.substring_form`
        of the source, what :func:`~pynenc_redis_stack.core.query.contains` compares.
    """

    name: str
    source: str
    form: DerivedForm

    @property
    def path(self) -> str:
        return f"$.{self.name}"


@dataclass(frozen=True)
class IndexSpec:
    """One RediSearch index over JSON documents.

    :param name: Logical name; the alias is ``<namespace>:<name>``.
    :param version: Schema version; the physical index is ``<namespace>:<name>:v<version>``.
    :param prefixes: The document kinds (:class:`DocumentKind` values) whose keys
        (``<namespace>:<kind>:``) the index covers.
    :param fields: Indexed fields, in file order.
    :param derived: Values every document stores beside its fields, not indexed.
    """

    name: str
    version: int
    prefixes: tuple[str, ...]
    fields: tuple[FieldSpec, ...]
    derived: tuple[DerivedSpec, ...] = ()

    def field(self, name: str) -> FieldSpec:
        """Return the field called ``name``.

        :raises SchemaError: If the index has no such field.
        """
        for field in self.fields:
            if field.name == name:
                return field
        raise SchemaError(
            f"index {self.name!r} has no field {name!r}; indexed fields: "
            f"{', '.join(f.name for f in self.fields)}"
        )

    def derived_from(self, source: str, form: DerivedForm) -> DerivedSpec:
        """Return the derived value holding ``form`` of the field ``source``.

        :raises SchemaError: If the schema declares none.
        """
        for derived in self.derived:
            if derived.source == source and derived.form == form:
                return derived
        raise SchemaError(
            f"index {self.name!r} stores no {form} of {source!r}; declare one under 'derived:' in its "
            "schema file (it changes no index)"
        )

    def schema_args(self) -> list[str]:
        """Return the ``SCHEMA ...`` part of ``FT.CREATE``."""
        args = ["SCHEMA"]
        for field in self.fields:
            args.extend(field.create_args())
        return args

    def invalid_fields(self, document: dict[str, Any]) -> list[str]:
        """Return a description of every indexed value RediSearch would refuse."""
        problems = []
        for field in self.fields:
            value = document.get(field.name)
            if not field.accepts(value):
                if field.type == "numeric":
                    expected = "a number"
                elif field.lookup:
                    expected = "a non-empty string without NUL (looked up by value; '' cannot be)"
                else:
                    expected = "a string without NUL"
                problems.append(f"{field.name}={value!r} (expected {expected} or None)")
        return problems

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "<dict>") -> IndexSpec:
        """Build a spec from the parsed content of a schema file.

        :raises SchemaError: If the content is malformed.
        """
        try:
            index = data["index"]
            version = data["version"]
            raw_fields = data["fields"]
            name = index["name"]
            prefixes = tuple(index["prefixes"])
            storage = index.get("storage_type", "json")
        except (KeyError, TypeError) as exc:
            raise SchemaError(f"{source}: missing key {exc}") from exc
        if storage != "json":
            raise SchemaError(f"{source}: storage_type must be 'json', got {storage!r}")
        if not isinstance(version, int) or version < 1:
            raise SchemaError(f"{source}: version must be a positive integer")
        if not prefixes:
            raise SchemaError(f"{source}: index.prefixes is empty")
        fields: list[FieldSpec] = []
        for raw in raw_fields:
            field_name = raw.get("name")
            field_type = raw.get("type")
            if field_type not in _FIELD_TYPES:
                raise SchemaError(f"{source}: field {field_name!r} has unknown type {field_type!r}")
            attrs = raw.get("attrs") or {}
            unknown = set(attrs) - _KNOWN_ATTRS
            if unknown:
                raise SchemaError(f"{source}: field {field_name!r} has unknown attrs {sorted(unknown)}")
            if any(f.name == field_name for f in fields):
                raise SchemaError(f"{source}: duplicate field {field_name!r}")
            fields.append(
                FieldSpec(
                    name=field_name,
                    type=field_type,
                    path=raw.get("path", f"$.{field_name}"),
                    sortable=bool(attrs.get("sortable", False)),
                    case_sensitive=bool(attrs.get("case_sensitive", True)),
                    lookup=bool(attrs.get("lookup", True)),
                )
            )
        if not any(f.name == "app_id" and f.type == "tag" for f in fields):
            raise SchemaError(f"{source}: every index needs an app_id tag (app isolation)")
        derived = _derived_specs(data.get("derived") or [], fields, source)
        return cls(name=name, version=version, prefixes=prefixes, fields=tuple(fields), derived=derived)


def _derived_specs(raw_entries: list[Any], fields: list[FieldSpec], source: str) -> tuple[DerivedSpec, ...]:
    """Parse a schema file's ``derived:`` entries (``{name, from, form}``).

    :raises SchemaError: If an entry is malformed, names no field of the index, or reuses a name.
    """
    types = {f.name: f.type for f in fields}
    derived: list[DerivedSpec] = []
    for raw in raw_entries:
        name, origin, form = raw.get("name"), raw.get("from"), raw.get("form")
        if not isinstance(name, str) or not name:
            raise SchemaError(f"{source}: a derived entry needs a name")
        if types.get(origin) != "tag":
            raise SchemaError(
                f"{source}: derived {name!r} is computed from {origin!r}, which is no tag field"
            )
        if form not in _DERIVED_FORMS:
            raise SchemaError(
                f"{source}: derived {name!r} has unknown form {form!r}; known: {_DERIVED_FORMS}"
            )
        if name in types or any(d.name == name for d in derived):
            raise SchemaError(f"{source}: duplicate field {name!r}")
        derived.append(DerivedSpec(name=name, source=origin, form=form))
    return tuple(derived)


def schema_dir() -> Path:
    """Return the folder holding the schema files.

    Installed wheels carry them as package data; a source checkout (editable install) reads
    the top-level ``schemas/`` folder.
    """
    packaged = resources.files("pynenc_redis_stack") / "schemas"
    if packaged.is_dir():
        return Path(str(packaged))
    return Path(__file__).resolve().parents[3] / "schemas"


def load_spec(path: Path) -> IndexSpec:
    """Load one schema file."""
    with path.open(encoding="utf-8") as handle:
        data = yaml.load(handle, Loader=_SAFE_LOADER)  # safe: no Python objects
    if not isinstance(data, dict):
        raise SchemaError(f"{path}: not a mapping")
    return IndexSpec.from_dict(data, source=str(path))


class SchemaSet:
    """One component's indexes, by role: a frozen dataclass whose fields are :class:`IndexSpec`
    roles, each read from ``schemas/<file>.yaml`` (the role's name unless the field's
    metadata names the file, see :func:`schema_file`)."""

    @classmethod
    def load(cls, directory: Path | None = None) -> Self:
        """Load every schema file of the set (from ``directory``, default the installed ones).

        :raises SchemaError: If a file is missing or invalid.
        """
        folder = directory or schema_dir()
        specs = {}
        for role in dataclasses.fields(cast(Any, cls)):
            path = folder / f"{role.metadata.get('file', role.name)}.yaml"
            if not path.is_file():
                raise SchemaError(f"schema file {path} is missing")
            specs[role.name] = load_spec(path)
        return cls(**specs)

    def all(self) -> tuple[IndexSpec, ...]:
        """Return every spec of the set, in field order."""
        return tuple(getattr(self, role.name) for role in dataclasses.fields(cast(Any, self)))


def schema_file(stem: str) -> Any:
    """Declare a :class:`SchemaSet` role read from ``schemas/<stem>.yaml``."""
    return dataclasses.field(metadata={"file": stem})


@dataclass(frozen=True)
class Schemas(SchemaSet):
    """The state backend's indexes, by role."""

    invocations: IndexSpec
    history: IndexSpec
    runner_contexts: IndexSpec
    workflow_runs: IndexSpec
    workflow_sub_invocations: IndexSpec
    app_infos: IndexSpec
    payloads: IndexSpec

    def for_kind(self, kind: DocumentKind) -> IndexSpec:
        """Return the spec of the index covering ``kind``'s documents (its ``prefixes``).

        :raises SchemaError: If no schema file covers that kind.
        """
        spec = self._by_kind.get(kind)
        if spec is None:
            raise SchemaError(
                f"no schema in schemas/ covers {kind} documents (add {kind!r} to an index's prefixes)"
            )
        return spec

    @cached_property
    def _by_kind(self) -> dict[str, IndexSpec]:
        return {prefix: spec for spec in self.all() for prefix in spec.prefixes}


@dataclass(frozen=True)
class OrchestratorSchemas(SchemaSet):
    """The orchestrator's indexes (:mod:`pynenc_redis_stack.orchestrator`), by role."""

    invocations: IndexSpec = schema_file("orchestrator_invocations")
    waits: IndexSpec = schema_file("orchestrator_waits")
    heartbeats: IndexSpec = schema_file("runner_heartbeats")
    executions: IndexSpec = schema_file("atomic_service_executions")


@dataclass(frozen=True)
class TriggerSchemas(SchemaSet):
    """The trigger's indexes (:mod:`pynenc_redis_stack.trigger`), by role."""

    events: IndexSpec = schema_file("trigger_events")
    runs: IndexSpec = schema_file("trigger_runs")
    definitions: IndexSpec = schema_file("trigger_definitions")
    conditions: IndexSpec = schema_file("trigger_conditions")


SCHEMA_SETS: tuple[type[SchemaSet], ...] = (Schemas, OrchestratorSchemas, TriggerSchemas)
"""Every schema set the package defines, one per component with indexes. ``index
status/migrate/drop``, prune and purge cover exactly these (:func:`all_specs`); a component's
indexes join by adding its set here, and ``tests/unit/test_schema_and_keys.py`` fails while a
file in ``schemas/`` belongs to no set."""


@cache
def load_schemas(directory: Path | None = None) -> Schemas:
    """Load the state backend's schema files.

    :raises SchemaError: If a file is missing or invalid.
    """
    return load_schema_set(Schemas, directory)


_loaded_sets: dict[tuple[type[SchemaSet], Path | None], SchemaSet] = {}


def load_schema_set[S: SchemaSet](schema_set: type[S], directory: Path | None = None) -> S:
    """Load one component's schema set (once per set and folder).

    :raises SchemaError: If a file is missing or invalid.
    """
    loaded = _loaded_sets.get((schema_set, directory))
    if loaded is None:
        loaded = _loaded_sets[(schema_set, directory)] = schema_set.load(directory)
    return cast(S, loaded)


def all_specs(directory: Path | None = None) -> tuple[IndexSpec, ...]:
    """Return every index spec the package defines (:data:`SCHEMA_SETS`, in order).

    :raises SchemaError: If a file is missing or invalid.
    """
    return tuple(spec for schema_set in SCHEMA_SETS for spec in load_schema_set(schema_set, directory).all())
