"""``PynencBuilder().redis_stack(...)``: registered through the ``pynenc.plugins`` entry points."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pynenc.builder import PynencBuilder

STATE_BACKEND_CLS = "RedisStackStateBackend"
ORCHESTRATOR_CLS = "RedisStackOrchestrator"


class RedisStackBuilderPlugin:
    """Adds ``redis_stack`` to :class:`pynenc.builder.PynencBuilder`."""

    @staticmethod
    def register_builder_methods(builder_class: type[PynencBuilder]) -> None:
        """Register the builder method and the validator that keeps the selection.

        :param builder_class: The PynencBuilder class to extend.
        """
        builder_class.register_plugin_method("redis_stack", redis_stack)
        builder_class.register_plugin_method("redis_stack_orchestrator", redis_stack_orchestrator)
        builder_class.register_plugin_validator(keep_redis_stack_state_backend)
        builder_class.register_plugin_validator(keep_redis_stack_orchestrator)


def redis_stack(
    builder: PynencBuilder,
    url: str | None = None,
    namespace: str | None = None,
    create_indexes: bool | None = None,
) -> PynencBuilder:
    """Use :class:`~pynenc_redis_stack.backend.RedisStackStateBackend` as the state backend.

    Only the state backend changes: the other components stay as other builder calls set
    them (``.sqlite()``, pynenc-redis's ``.redis()``), in whichever order they are called.

    :param builder: The builder.
    :param url: Server URL for this backend (``redis://host:port/0``); stored as
        ``redis_stack_url`` so a pynenc-redis ``redis_url`` may point elsewhere.
    :param namespace: Key and index namespace (default ``pynenc``).
    :param create_indexes: Create missing indexes on first use (default True).
    :return: The builder, for chaining.
    :raises ValueError: If the URL selects a database other than 0.
    """
    if url is not None:
        _check_url(url)
        builder._config["redis_stack_url"] = url
    # pynenc-redis's validator demands a connection setting from any 'Redis*' component;
    # the default host satisfies it without changing where anything connects (URLs win).
    if not builder._config.get("redis_url"):
        builder._config.setdefault("redis_host", "localhost")
    if namespace is not None:
        builder._config["redis_stack_namespace"] = namespace
    if create_indexes is not None:
        builder._config["redis_stack_create_indexes"] = create_indexes
    builder._config["redis_stack_selected"] = True
    builder._config["state_backend_cls"] = STATE_BACKEND_CLS
    return builder


def redis_stack_orchestrator(builder: PynencBuilder) -> PynencBuilder:
    """Use :class:`~pynenc_redis_stack.orchestrator.RedisStackOrchestrator` as the orchestrator.

    It connects with the same settings as the state backend (``.redis_stack(url=...)``, or
    ``redis_url`` / ``redis_stack_url`` and the namespace from the configuration); the other
    components stay as other builder calls set them.

    :param builder: The builder.
    :return: The builder, for chaining.
    """
    if not builder._config.get("redis_url"):
        builder._config.setdefault("redis_host", "localhost")
    builder._config["redis_stack_orchestrator_selected"] = True
    builder._config["orchestrator_cls"] = ORCHESTRATOR_CLS
    return builder


def _check_url(url: str) -> None:
    import redis

    from pynenc_redis_stack.client import redacted_url

    db = redis.ConnectionPool.from_url(url).connection_kwargs.get("db", 0)
    if db not in (None, 0):
        raise ValueError(
            f"redis_stack url {redacted_url(url)!r} selects database {db}; RediSearch indexes exist only in "
            "database 0. Use /0 (or no database) and a distinct namespace to share a server."
        )


def keep_redis_stack_state_backend(config: dict[str, Any]) -> None:
    """Re-select this backend if a later builder call (``.sqlite()``, ``.redis()``) replaced it."""
    if config.get("redis_stack_selected"):
        config["state_backend_cls"] = STATE_BACKEND_CLS


def keep_redis_stack_orchestrator(config: dict[str, Any]) -> None:
    """Re-select this orchestrator if a later builder call (``.sqlite()``, ``.memory()``) replaced it."""
    if config.get("redis_stack_orchestrator_selected"):
        config["orchestrator_cls"] = ORCHESTRATOR_CLS
