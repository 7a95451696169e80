"""The status of each index: what a :class:`~.snapshot.ServerSnapshot` holds for a schema file,
compared with the file. Pure: no server access."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from pynenc_redis_stack.core.indexes.definition import definition_differences
from pynenc_redis_stack.core.indexes.executor import is_indexing, percent_indexed

if TYPE_CHECKING:
    from pynenc_redis_stack.core.indexes.snapshot import ServerSnapshot
    from pynenc_redis_stack.core.keys import Namespace
    from pynenc_redis_stack.core.schema import IndexSpec


class IndexState(StrEnum):
    """What the server holds for one schema file, compared with the file."""

    OK = "ok"
    MISSING = "missing"
    OUTDATED = "outdated"
    """The alias points to another version (or to an index not named by this package)."""
    DRIFTED = "drifted"
    """The live index has the file's version but another definition."""
    BACKFILLING = "backfilling"
    """The index for the file's version is still indexing the documents already stored."""


@dataclass(frozen=True)
class IndexStatus:
    """What the server holds for one spec. Built by :func:`index_status`.

    :param spec: The schema file's spec.
    :param alias: The alias queries use.
    :param live_index: The physical index the alias points to, or None without an alias.
    :param state: The comparison with the spec.
    :param detail: Why the state is not ``ok`` (or leftovers next to an ``ok`` index).
    :param live_version: Version parsed from the live index name (None if foreign or missing).
    :param num_docs: Documents in the live index (what queries see), if there is one.
    :param failures: The live index's ``hash_indexing_failures``.
    :param percent_indexed: Progress of the backfill when ``state`` is ``backfilling``.
    :param building_index: Index of the file's version being built beside the live one (a
        migration in progress), if any.
    :param versions: Every physical index of this name on the server (this package's naming).
    :param drift: Differences of the live index from the file when it has the file's version.
    """

    spec: IndexSpec
    alias: str
    live_index: str | None
    state: IndexState
    detail: str = ""
    live_version: int | None = None
    num_docs: int | None = None
    failures: int | None = None
    percent_indexed: float | None = None
    building_index: str | None = None
    versions: tuple[str, ...] = ()
    drift: str = ""

    @property
    def file_version(self) -> int:
        """The version in the schema file."""
        return self.spec.version

    @property
    def label(self) -> str:
        """The state as ``index status`` prints it (``backfilling 42%`` while indexing)."""
        if self.state is IndexState.BACKFILLING:
            return f"backfilling {int((self.percent_indexed or 0.0) * 100)}%"
        return self.state.value

    def as_dict(self) -> dict[str, Any]:
        """Return the status as JSON-ready data (``index status --json``)."""
        return {
            "name": self.spec.name,
            "alias": self.alias,
            "index": self.live_index,
            "file_version": self.file_version,
            "live_version": self.live_version,
            "state": self.state.value,
            "label": self.label,
            "percent_indexed": self.percent_indexed,
            "num_docs": self.num_docs,
            "hash_indexing_failures": self.failures,
            "building_index": self.building_index,
            "versions": list(self.versions),
            "detail": self.detail,
        }


def matching_info(
    snapshot: ServerSnapshot, namespace: Namespace, spec: IndexSpec, name: str
) -> Mapping[str, Any] | None:
    """Return ``FT.INFO`` of ``name`` if the snapshot has it and it matches ``spec``, else None."""
    info = snapshot.info(name)
    if info is None or definition_differences(info, namespace, spec):
        return None
    return info


def index_status(snapshot: ServerSnapshot, namespace: Namespace, spec: IndexSpec) -> IndexStatus:
    """Compare what ``snapshot`` holds for ``spec`` with the spec."""
    alias = namespace.alias(spec)
    versions = snapshot.physical_indexes(namespace, spec)
    live = snapshot.aliases.get(alias)
    alias_info = snapshot.info(live)
    # A migration in progress: an index of the file's version, not aliased, still indexing.
    building: str | None = None
    building_percent: float | None = None
    for name in versions:
        parsed = namespace.parse_physical_index(spec, name)
        if name == live or parsed is None or parsed[0] != spec.version:
            continue
        info = matching_info(snapshot, namespace, spec, name)
        if info is not None and is_indexing(info):
            building, building_percent = name, percent_indexed(info)
            break
    common: dict[str, Any] = {"versions": versions, "building_index": building}
    if alias_info is None or live is None:
        if building is not None:
            return IndexStatus(
                spec,
                alias,
                None,
                IndexState.BACKFILLING,
                f"{building} is being built; the alias does not exist yet",
                percent_indexed=building_percent,
                **common,
            )
        return IndexStatus(spec, alias, None, IndexState.MISSING, **common)
    parsed_live = namespace.parse_physical_index(spec, live)
    common.update(
        live_version=parsed_live[0] if parsed_live else None,
        num_docs=int(alias_info.get("num_docs", 0)),
        failures=int(alias_info.get("hash_indexing_failures", 0)),
    )
    drift = ""
    if parsed_live is not None and parsed_live[0] == spec.version:
        drift = "; ".join(definition_differences(alias_info, namespace, spec))
    if building is not None:
        return IndexStatus(
            spec,
            alias,
            live,
            IndexState.BACKFILLING,
            f"{building} is being built; the alias still points to {live}",
            percent_indexed=building_percent,
            drift=drift,
            **common,
        )
    if parsed_live is None or parsed_live[0] != spec.version:
        return IndexStatus(spec, alias, live, IndexState.OUTDATED, f"alias points to {live}", **common)
    if drift:
        return IndexStatus(spec, alias, live, IndexState.DRIFTED, drift, drift=drift, **common)
    if is_indexing(alias_info):
        return IndexStatus(
            spec,
            alias,
            live,
            IndexState.BACKFILLING,
            f"{live} is indexing the documents already stored",
            percent_indexed=percent_indexed(alias_info),
            **common,
        )
    leftovers = [name for name in versions if name != live]
    detail = f"leftover {', '.join(leftovers)} (migrate drops it)" if leftovers else ""
    return IndexStatus(spec, alias, live, IndexState.OK, detail, **common)
