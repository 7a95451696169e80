"""``PynencBuilder().redis_stack(...)``: registered through the ``pynenc.plugins`` entry points."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from pynenc.builder import PynencBuilder

STATE_BACKEND_CLS = "RedisStackStateBackend"
ORCHESTRATOR_CLS = "RedisStackOrchestrator"

COMPONENTS: dict[str, tuple[str, str]] = {
    "state_backend": ("state_backend_cls", STATE_BACKEND_CLS),
    "broker": ("broker_cls", "RedisStackBroker"),
    "client_data_store": ("client_data_store_cls", "RedisStackClientDataStore"),
    "orchestrator": ("orchestrator_cls", ORCHESTRATOR_CLS),
    "trigger": ("trigger_cls", "RedisStackTrigger"),
}
"""Component name -> (pynenc config key, class name) of every component this package provides."""

STATE_BACKEND_ONLY = ("state_backend",)
"""``components=STATE_BACKEND_ONLY``: this package's state backend with pynenc's defaults (or
whatever other builder calls choose) for every other component."""


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
        builder_class.register_plugin_validator(keep_redis_stack_components)


def redis_stack(
    builder: PynencBuilder,
    url: str | None = None,
    namespace: str | None = None,
    create_indexes: bool | None = None,
    components: Literal["all"] | Iterable[str] | None = None,
) -> PynencBuilder:
    """Use this package's components: by default every one that no other builder call chooses.

    Which components, in one rule whatever the order of the calls:

    - ``components`` not given: the state backend, and every other component of this package
      (:data:`COMPONENTS`) that no other builder call chooses, before or after this one. So
      ``PynencBuilder().redis_stack(url=...)`` alone is a complete distributed app, while
      ``.sqlite().redis_stack(url=...)`` and ``.redis_stack(url=...).sqlite()`` both mean
      this state backend with pynenc's SQLite for the rest (likewise ``.memory()``,
      pynenc-redis's ``.redis()``, ``.custom_config(broker_cls=...)``).
      On pynenc 0.3 it is the state backend alone: the other components implement pynenc
      0.4's contracts (pynenc-redis's ``.redis()`` provides them there).
    - ``components="all"`` or a collection of names (``("state_backend", "broker")``;
      :data:`STATE_BACKEND_ONLY` for the state backend alone): exactly those, kept whatever
      builder calls come after; other calls choose only the rest.

    :param builder: The builder.
    :param url: Server URL for this backend (``redis://host:port/0``); stored as
        ``redis_stack_url`` so a pynenc-redis ``redis_url`` may point elsewhere.
    :param namespace: Key and index namespace (default ``pynenc``).
    :param create_indexes: Create missing indexes on first use (default True).
    :param components: ``"all"`` or names from :data:`COMPONENTS`; not given: as above.
    :return: The builder, for chaining.
    :raises ValueError: If the URL selects a database other than 0, or a component name is
        unknown.
    """
    selected = STATE_BACKEND_ONLY if components is None else _component_names(components)
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
    if "state_backend" in selected:
        builder._config["redis_stack_selected"] = True
    if components is None and _pynenc_04_or_later():
        # Chosen only where no earlier call chose: a later call overwrites them, and the
        # validator does not restore them (it restores only what was named).
        for config_key, class_name in COMPONENTS.values():
            builder._config.setdefault(config_key, class_name)
    # a list, not a tuple: config values are stored as JSON (app info) and must read back equal
    builder._config["redis_stack_components"] = list(
        dict.fromkeys([*builder._config.get("redis_stack_components", ()), *selected])
    )
    keep_redis_stack_components(builder._config)
    return builder


def redis_stack_orchestrator(builder: PynencBuilder) -> PynencBuilder:
    """Use :class:`~pynenc_redis_stack.orchestrator.RedisStackOrchestrator` as the orchestrator:
    ``redis_stack(components=["orchestrator"])``, so it connects with the same settings as the
    other components and stays selected whatever builder calls come after.

    :param builder: The builder.
    :return: The builder, for chaining.
    """
    return redis_stack(builder, components=("orchestrator",))


def _pynenc_04_or_later() -> bool:
    from importlib.metadata import version

    major, minor = (int(part) for part in version("pynenc").split(".")[:2])
    return (major, minor) >= (0, 4)


def _component_names(components: Literal["all"] | Iterable[str]) -> tuple[str, ...]:
    if components == "all":
        return tuple(COMPONENTS)
    if isinstance(components, str):  # a lone name would otherwise iterate as letters
        components = (components,)
    names = tuple(components)
    unknown = [name for name in names if name not in COMPONENTS]
    if unknown or not names:
        raise ValueError(
            f"redis_stack components {names!r}: unknown {unknown!r}. Use 'all' or names from "
            f"{', '.join(COMPONENTS)}."
        )
    return names


def _check_url(url: str) -> None:
    import redis

    from pynenc_redis_stack.core.client import redacted_url
    from pynenc_redis_stack.core.topology import parse_topology

    if parse_topology(url).kind != "server":  # a Sentinel or cluster URL: checked by parsing it
        return
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


def keep_redis_stack_components(config: dict[str, Any]) -> None:
    """Re-select every component ``redis_stack()`` was told to use (without ``components``
    the state backend, with it the components named), whatever builder calls (``.sqlite()``,
    ``.memory()``, ``.redis()``) came after."""
    for name in config.get("redis_stack_components", ()):
        config_key, class_name = COMPONENTS[name]
        config[config_key] = class_name
