"""Configuration of this package's components (cistell ``ConfigField`` s).

The connection fields have the same names and defaults as pynenc-redis's ``ConfigRedis``,
so one ``redis_url`` (``PYNENC__REDIS_URL``) can serve both plugins; ``redis_stack_url``
overrides it for this backend alone. Every field is a :class:`Setting`: a value from the
environment, a config file or ``pyproject.toml`` is parsed for its type and checked against
its range, and a bad one is an error naming the field.
"""

import math
import re
from typing import Any

from cistell import ConfigField
from pynenc.conf.config_base import ConfigPynencBase
from pynenc.conf.config_broker import ConfigBroker
from pynenc.conf.config_client_data_store import ConfigClientDataStore
from pynenc.conf.config_orchestrator import ConfigOrchestrator
from pynenc.conf.config_state_backend import ConfigStateBackend
from pynenc.conf.config_trigger import ConfigTrigger

from pynenc_redis_stack.core.errors import ConfigValueError

TRUE_WORDS = frozenset({"true", "1", "yes", "on"})
FALSE_WORDS = frozenset({"false", "0", "no", "off"})
MAX_PAGE = 10_000
"""Redis Stack's ``MAXSEARCHRESULTS`` and ``MAXAGGREGATERESULTS``: the most rows one page asks for
(a server with lower caps is detected and followed, see :mod:`pynenc_redis_stack.core.reads`)."""


class Setting[T](ConfigField[T]):
    """A ``ConfigField`` whose value means what it says, from any source.

    cistell converts a value with its default's type (``bool("false")`` is True); a setting
    parses instead: booleans from ``true/1/yes/on`` and ``false/0/no/off`` (any case), numbers
    from their digits, then checks the range or the choices. Anything else raises
    :class:`ConfigValueError` naming the field and the value.

    :param default: The value when nothing is configured; its type is the field's type.
    :param minimum: Smallest value allowed (numbers).
    :param maximum: Largest value allowed (numbers).
    :param positive: The value must be above 0 (numbers).
    :param choices: The values allowed (strings, compared in lower case).
    :param pattern: A regular expression the whole value must match (strings).
    :param rule: The allowed values in words, for the error message of ``pattern``.
    """

    def __init__(
        self,
        default: T,
        *,
        minimum: float | None = None,
        maximum: float | None = None,
        positive: bool = False,
        choices: tuple[str, ...] = (),
        pattern: str | None = None,
        rule: str = "",
    ) -> None:
        super().__init__(default, self._parse)
        self.name = ""
        self.minimum = minimum
        self.maximum = maximum
        self.positive = positive
        self.choices = choices
        self.pattern = re.compile(pattern) if pattern else None
        self.rule = rule

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def _error(self, value: Any, expected: str) -> ConfigValueError:
        return ConfigValueError(f"config field {self.name}: {value!r} is not {expected}")

    def _parse(self, value: Any, expected_type: type[T]) -> T:
        parsed: Any
        if expected_type is bool:
            parsed = self._boolean(value)
        elif expected_type is int:
            parsed = self._checked(self._integer(value), value)
        elif expected_type is float:
            parsed = self._checked(self._float(value), value)
        else:
            parsed = self._string(value)
        return parsed  # type: ignore[no-any-return]  # parsed is of expected_type by the branch taken

    def _boolean(self, value: Any) -> bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        word = value.strip().lower() if isinstance(value, str) else None
        if word in TRUE_WORDS:
            return True
        if word in FALSE_WORDS:
            return False
        raise self._error(value, "a boolean (true/false, 1/0, yes/no, on/off)")

    def _integer(self, value: Any) -> int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, str):
            try:
                return int(value.strip())
            except ValueError:
                pass
        raise self._error(value, "an integer")

    def _float(self, value: Any) -> float:
        number: float | None = None
        if isinstance(value, int | float) and not isinstance(value, bool):
            number = float(value)
        elif isinstance(value, str):
            try:
                number = float(value.strip())
            except ValueError:
                pass
        if number is None or math.isnan(number):
            raise self._error(value, "a number")
        return number

    def _checked[N: (int, float)](self, number: N, value: Any) -> N:
        if self.positive and number <= 0:
            raise self._error(value, "above 0")
        if self.minimum is not None and number < self.minimum:
            raise self._error(value, f"at least {self.minimum:g}")
        if self.maximum is not None and number > self.maximum:
            raise self._error(value, f"at most {self.maximum:g}")
        return number

    def _string(self, value: Any) -> str:
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise self._error(value, "a string")
        text = str(value)
        if self.choices:
            text = text.strip().lower()
            if text not in self.choices:
                raise self._error(value, f"one of {', '.join(self.choices)}")
        if self.pattern and not self.pattern.fullmatch(text):
            raise self._error(value, self.rule)
        return text


class ConfigRedisStack(ConfigPynencBase):
    """Connection to a Redis Stack (or Redis 8) server.

    :cvar Setting[str] redis_url:
        URL of the server (``redis://[user:password@]host:port/0``). When set it overrides
        host, port, db, username and password. Shared with pynenc-redis.
    :cvar Setting[str] redis_stack_url:
        URL for this backend only; overrides ``redis_url``. Set by ``PynencBuilder.redis_stack``
        so that pynenc-redis components may use another server. Also takes
        ``redis+sentinel://[user:password@]host:port[,host:port...]/<service>`` (a master
        found through Sentinel) and ``redis+cluster://[user:password@]host:port[,...]`` (an
        open-source cluster); ``rediss+...`` for TLS (docs/scale-out.md).
    :cvar Setting[str] redis_host:
        Host name, when no URL is given. Defaults to ``localhost``.
    :cvar Setting[int] redis_port:
        Port, when no URL is given. Defaults to 6379.
    :cvar Setting[int] redis_db:
        Database number. Must be 0: RediSearch indexes only exist in database 0.
    :cvar Setting[str] redis_username:
        ACL user name; empty for none.
    :cvar Setting[str] redis_password:
        Password; empty for none.
    :cvar Setting[bool] redis_ssl:
        Connect with TLS. A ``rediss://`` URL always does; this turns TLS on for a
        ``redis://`` URL and for host/port settings.
    :cvar Setting[str] redis_ssl_ca_certs:
        PEM file of the CA certificates that verify the server's certificate; empty for the
        system's default CAs.
    :cvar Setting[str] redis_ssl_certfile:
        PEM client certificate, for servers that require one (``tls-auth-clients yes``).
    :cvar Setting[str] redis_ssl_keyfile:
        PEM private key of ``redis_ssl_certfile``.
    :cvar Setting[str] redis_ssl_cert_reqs:
        Verification of the server's certificate: ``required`` (default), ``optional`` or
        ``none`` (encryption without authentication of the server: testing only).
    :cvar Setting[bool] redis_ssl_check_hostname:
        Check that the server's certificate names the host connected to. Defaults to True;
        ignored when ``redis_ssl_cert_reqs`` is ``none``.
    :cvar Setting[float] socket_timeout:
        Seconds to wait for a reply before failing.
    :cvar Setting[float] socket_connect_timeout:
        Seconds to wait for a connection before failing.
    :cvar Setting[int] health_check_interval:
        Seconds a pooled connection may idle before it is PINGed on its next use (with
        ``redis_pool_health_check_interval``, the shorter positive one applies; 0 turns it off).
    :cvar Setting[int] max_connection_attempts:
        Attempts in all (with exponential backoff, 0.1 s doubling up to 2 s) for a command
        that is safe to send again after a timeout or a lost connection. Cursor reads are never
        sent again (see :mod:`pynenc_redis_stack.core.client`).
    :cvar Setting[int] redis_pool_max_connections:
        Maximum connections in the pool. Defaults to 100.
    :cvar Setting[float] redis_pool_health_check_interval:
        Same as ``health_check_interval`` (pynenc-redis's name for its pool); the shorter wins.
    :cvar Setting[int] redis_stack_wait_replicas:
        Replicas that must acknowledge each write (``WAIT``) before it returns; 0 (default)
        waits for none. With Sentinel, 1 makes an acknowledged write survive a failover to
        that replica, at the cost of one replica round trip per write, and an error
        (``ReplicaAcknowledgementError``) when fewer replicas answer in time. Not with a
        cluster URL (docs/scale-out.md).
    :cvar Setting[float] redis_stack_wait_replicas_timeout:
        Seconds a write waits for ``redis_stack_wait_replicas`` acknowledgements. Defaults to 1.
    """

    redis_url = Setting("")
    redis_stack_url = Setting("")
    redis_host = Setting("localhost")
    redis_port = Setting(6379, minimum=1, maximum=65535)
    redis_db = Setting(0, minimum=0)
    redis_username = Setting("")
    redis_password = Setting("")
    redis_ssl = Setting(False)
    redis_ssl_ca_certs = Setting("")
    redis_ssl_certfile = Setting("")
    redis_ssl_keyfile = Setting("")
    redis_ssl_cert_reqs = Setting("required", choices=("required", "optional", "none"))
    redis_ssl_check_hostname = Setting(True)
    socket_timeout = Setting(5.0, positive=True)
    socket_connect_timeout = Setting(5.0, positive=True)
    health_check_interval = Setting(30, minimum=0)
    max_connection_attempts = Setting(3, minimum=1)
    redis_pool_max_connections = Setting(100, minimum=1)
    redis_pool_health_check_interval = Setting(30.0, minimum=0)
    # scale-out (docs/scale-out.md)
    redis_stack_wait_replicas = Setting(0, minimum=0)
    redis_stack_wait_replicas_timeout = Setting(1.0, positive=True)


class ConfigRedisStackKeyspace(ConfigRedisStack):
    """Connection plus the keys and indexes every component of this package shares.

    :cvar Setting[str] redis_stack_namespace:
        First segment of every key and index name (``pynenc:invocation:...``). Two
        deployments sharing one server need different namespaces. Letters, digits, ``_ . -``.
    :cvar Setting[bool] redis_stack_create_indexes:
        Create missing indexes on first use. Turn off when indexes are managed by deploys;
        a missing index then raises an error naming the command that creates it.
    :cvar Setting[int] redis_stack_batch_size:
        Rows fetched per round trip by lookups that stream (cursor reads and seek pages).
        At most 10000, Redis Stack's ``MAXAGGREGATERESULTS``.
    """

    redis_stack_namespace = Setting(
        "pynenc", pattern=r"[A-Za-z0-9_.-]+", rule="a namespace (letters, digits, '_', '.' or '-')"
    )
    redis_stack_create_indexes = Setting(True)
    redis_stack_batch_size = Setting(1000, minimum=1, maximum=MAX_PAGE)


class ConfigStateBackendRedisStack(ConfigStateBackend, ConfigRedisStackKeyspace):
    """Configuration of :class:`~pynenc_redis_stack.state_backend.backend.RedisStackStateBackend`.

    :cvar Setting[bool] redis_stack_selected:
        Set by ``PynencBuilder.redis_stack``; keeps this backend selected whatever other
        builder calls come after.
    """

    redis_stack_selected = Setting(False)


class ConfigOrchestratorRedisStack(ConfigOrchestrator, ConfigRedisStackKeyspace):
    """Configuration of :class:`~pynenc_redis_stack.orchestrator.RedisStackOrchestrator`.

    :cvar Setting[float] redis_stack_concurrency_lock_sec:
        Seconds a router or runner may hold one of the locks that make a task's registration
        and running concurrency hold across hosts (look for a registered invocation of the
        call and register one if there is none; check that nothing of the slot runs and start
        the invocation). One that dies holding it delays that task this long at most; one
        waits at most this long for it before failing with an error.
    """

    redis_stack_concurrency_lock_sec = Setting(10.0, positive=True)


class ConfigBrokerRedisStack(ConfigBroker, ConfigRedisStackKeyspace):
    """Configuration of :class:`~pynenc_redis_stack.broker.RedisStackBroker`.

    :cvar Setting[float] redis_stack_broker_lease_sec:
        Seconds a taken invocation stays with its taker before recovery may look at it.
        If by then the orchestrator still has it in a status available for run (nobody
        recorded taking it: the taker died), it goes back to its queue at its old place.
        Longer than any pause between taking an invocation and recording it (a few ms
        normally); shorter brings a dead taker's invocation back sooner.
    :cvar Setting[float] redis_stack_broker_recovery_interval_sec:
        Seconds between two recovery passes of one broker (each pass is one read when nothing
        expired); run by ``retrieve_invocation``, and by ``recover_expired_takes`` on demand.
    """

    redis_stack_broker_lease_sec = Setting(60.0, positive=True)
    redis_stack_broker_recovery_interval_sec = Setting(10.0, positive=True)


class ConfigClientDataStoreRedisStack(ConfigClientDataStore, ConfigRedisStackKeyspace):
    """Configuration of :class:`~pynenc_redis_stack.client_data_store.RedisStackClientDataStore`
    (the namespace and connection settings are the state backend's)."""


class ConfigTriggerRedisStack(ConfigTrigger, ConfigRedisStackKeyspace):
    """Configuration of :class:`~pynenc_redis_stack.trigger.RedisStackTrigger`: pynenc's
    trigger settings (scheduler, event retention and capacities) plus the connection and
    namespace every component of this package shares."""
