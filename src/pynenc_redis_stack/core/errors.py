"""Errors raised by pynenc-redis-stack.

Hierarchy::

    RedisStackError
    ├── ConfigValueError          a configuration value is not of its field's type or range
    ├── ServerNotSupportedError   the server lacks the search or JSON module, or db != 0
    ├── MissingPermissionError    the ACL user may not run a command or touch a key it needs
    ├── SchemaError               a schema file in schemas/ is invalid
    ├── IndexDefinitionMismatchError  a live index differs from its schema file
    ├── InvalidDocumentError      a value would silently drop a document from an index
    ├── QueryError                a query could not be built or its answer would be incomplete
    ├── CursorReadError           a streamed answer was cut by a connection failure
    ├── ServerOutOfMemoryError    the server refused a write: maxmemory reached (noeviction)
    ├── LifecycleError            index migrate/drop could not complete
    │   ├── BackfillError, DrainTimeoutError, LockTimeoutError, LockLostError
    │   └── ForeignIndexError     index drop refused: an alias points to an index not ours
    ├── PruneRefusedError         a retention cutoff would delete everything
    ├── RedisImportError          import-redis cannot start
    ├── UnknownAppError           a command was given an app id that has no data
    ├── AppImportError            --app does not name an importable pynenc app
    └── EmbeddedServerError       the embedded Redis Stack could not start or stop
        └── ServerDependencyError the ``server`` extra is not installed
"""

from redis.exceptions import ResponseError


class RedisStackError(Exception):
    """Base class of every error of this package."""


class ConfigValueError(RedisStackError, ValueError):
    """A configuration value (environment, config file, ``pyproject.toml`` or code) is not of
    its field's type, or out of its range; the message names the field and the value."""


class ServerNotSupportedError(RedisStackError):
    """The Redis server cannot host this backend (missing module, database other than 0)."""


class MissingPermissionError(RedisStackError):
    """The connected ACL user lacks a command or key pattern the backend needs; the message
    names what was refused and the least-privilege rule to grant."""


class SchemaError(RedisStackError):
    """A schema file is malformed or inconsistent."""


class IndexDefinitionMismatchError(RedisStackError):
    """A live RediSearch index does not match the definition in ``schemas/``."""


class InvalidDocumentError(RedisStackError, ValueError):
    """A document value has a type or content RediSearch would silently refuse to index."""


class QueryError(RedisStackError, ValueError):
    """A query was given an unknown field or a value it cannot express."""


class CursorReadError(RedisStackError):
    """A connection failure interrupted a streamed answer after some rows were returned.

    The cursor read is not retried: the server may have consumed that batch already, and a
    retry would return the next one, silently skipping rows.
    """


class ServerOutOfMemoryError(RedisStackError):
    """The server refused a write because it reached ``maxmemory`` (policy ``noeviction``)."""


class ReplicaAcknowledgementError(RedisStackError):
    """A write was applied on the master but fewer replicas than ``redis_stack_wait_replicas``
    acknowledged it in time: a failover could still lose it."""


class EmbeddedServerError(RedisStackError):
    """The embedded Redis Stack server could not be started, reached or stopped."""


class LifecycleError(RedisStackError):
    """An index lifecycle operation (migrate, drop) could not complete."""


class BackfillError(LifecycleError):
    """A new index did not finish indexing in time, vanished, or failed documents the old one took."""


class DrainTimeoutError(LifecycleError):
    """Cursors were still open on an index that is about to be dropped when the deadline passed."""


class LockTimeoutError(LifecycleError):
    """Another migrate or drop held the lifecycle lock for longer than the wait allowed."""


class LockLostError(LifecycleError):
    """The lifecycle lock expired or was taken over while this process held it."""


class ConcurrencyLockTimeoutError(RedisStackError):
    """Another router or runner held a task's concurrency lock longer than the wait allowed."""

    def __init__(self, lock_key: str, seconds: float) -> None:
        super().__init__(
            f"concurrency lock {lock_key} stayed held for {seconds:g} s: another router or runner "
            "is routing or starting the same task (or died holding the lock, which then expires "
            "by itself). Retry; if that is slow on this server, raise "
            "redis_stack_concurrency_lock_sec (PYNENC__ORCHESTRATOR__REDIS_STACK_CONCURRENCY_LOCK_SEC)."
        )


class ForeignIndexError(LifecycleError):
    """``index drop`` was asked to drop an index this package did not create (nothing dropped)."""


class PruneRefusedError(RedisStackError, ValueError):
    """The cutoff would select every invocation (now or in the future) and ``allow_all`` is off."""


class RedisImportError(RedisStackError):
    """The import cannot start (bad app id, unreachable server)."""


class UnknownAppError(RedisStackError):
    """An app id given to a command has no data where the command looks; the message lists
    the apps that do."""

    def __init__(self, app_id: str, where: str, existing: list[str]) -> None:
        apps = ", ".join(repr(app) for app in existing) if existing else "none"
        super().__init__(f"app {app_id!r} has no data {where}; apps there: {apps}. Give one with --app-id.")


class AppImportError(RedisStackError):
    """``--app`` does not name an importable pynenc app."""


class ServerDependencyError(EmbeddedServerError):
    """Raised when the optional ``server`` extra (binary wheels) is not installed."""


def lone_surrogate(text: str) -> int | None:
    """Return the position of the first lone surrogate in ``text``, or None if there is none.

    Lone surrogates (``'\\udcff'``, what ``errors='surrogateescape'`` makes of undecodable
    bytes) are not valid Unicode: UTF-8, and so Redis, cannot carry them.
    """
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        return exc.start
    return None


def lone_surrogate_message(what: str, text: str, position: int) -> str:
    """Describe a lone surrogate in ``text`` and how to avoid it."""
    shown = text if len(text) <= 80 else text[:80] + "..."
    return (
        f"{what} {shown!r} contains a lone surrogate ({text[position]!r} at position {position}), "
        "which is not valid Unicode: UTF-8, and so Redis, cannot carry it. Decode bytes with "
        "errors='replace' or 'backslashreplace' (or keep binary data base64-encoded) first."
    )


def check_batch_size(batch_size: int) -> None:
    """Refuse a batch size that could never make progress.

    :raises ValueError: If ``batch_size`` is below 1, naming the value.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1 (items per round trip), got {batch_size}")


_MISSING_INDEX_WORDINGS = ("unknown index name", "no such index", "not found")


def is_missing_index_error(error: BaseException) -> bool:
    """Tell whether a server error means the index or alias does not exist."""
    message = str(error).lower()
    return isinstance(error, ResponseError) and any(w in message for w in _MISSING_INDEX_WORDINGS)
