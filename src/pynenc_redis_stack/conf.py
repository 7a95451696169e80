"""Configuration of the Redis Stack state backend (cistell ``ConfigField`` s).

The connection fields have the same names and defaults as pynenc-redis's ``ConfigRedis``,
so one ``redis_url`` (``PYNENC__REDIS_URL``) can serve both plugins; ``redis_stack_url``
overrides it for this backend alone.
"""

from cistell import ConfigField
from pynenc.conf.config_base import ConfigPynencBase
from pynenc.conf.config_broker import ConfigBroker
from pynenc.conf.config_client_data_store import ConfigClientDataStore
from pynenc.conf.config_orchestrator import ConfigOrchestrator
from pynenc.conf.config_state_backend import ConfigStateBackend
from pynenc.conf.config_trigger import ConfigTrigger


class ConfigRedisStack(ConfigPynencBase):
    """Connection to a Redis Stack (or Redis 8) server.

    :cvar ConfigField[str] redis_url:
        URL of the server (``redis://[user:password@]host:port/0``). When set it overrides
        host, port, db, username and password. Shared with pynenc-redis.
    :cvar ConfigField[str] redis_stack_url:
        URL for this backend only; overrides ``redis_url``. Set by ``PynencBuilder.redis_stack``
        so that pynenc-redis components may use another server. Also takes
        ``redis+sentinel://[user:password@]host:port[,host:port...]/<service>`` (a master
        found through Sentinel) and ``redis+cluster://[user:password@]host:port[,...]`` (an
        open-source cluster); ``rediss+...`` for TLS (docs/scale-out.md).
    :cvar ConfigField[str] redis_host:
        Host name, when no URL is given. Defaults to ``localhost``.
    :cvar ConfigField[int] redis_port:
        Port, when no URL is given. Defaults to 6379.
    :cvar ConfigField[int] redis_db:
        Database number. Must be 0: RediSearch indexes only exist in database 0.
    :cvar ConfigField[str] redis_username:
        ACL user name; empty for none.
    :cvar ConfigField[str] redis_password:
        Password; empty for none.
    :cvar ConfigField[bool] redis_ssl:
        Connect with TLS. A ``rediss://`` URL always does; this turns TLS on for a
        ``redis://`` URL and for host/port settings.
    :cvar ConfigField[str] redis_ssl_ca_certs:
        PEM file of the CA certificates that verify the server's certificate; empty for the
        system's default CAs.
    :cvar ConfigField[str] redis_ssl_certfile:
        PEM client certificate, for servers that require one (``tls-auth-clients yes``).
    :cvar ConfigField[str] redis_ssl_keyfile:
        PEM private key of ``redis_ssl_certfile``.
    :cvar ConfigField[str] redis_ssl_cert_reqs:
        Verification of the server's certificate: ``required`` (default), ``optional`` or
        ``none`` (encryption without authentication of the server: testing only).
    :cvar ConfigField[bool] redis_ssl_check_hostname:
        Check that the server's certificate names the host connected to. Defaults to True;
        ignored when ``redis_ssl_cert_reqs`` is ``none``.
    :cvar ConfigField[float] socket_timeout:
        Seconds to wait for a reply before failing.
    :cvar ConfigField[float] socket_connect_timeout:
        Seconds to wait for a connection before failing.
    :cvar ConfigField[int] health_check_interval:
        Seconds a pooled connection may idle before it is PINGed on its next use (with
        ``redis_pool_health_check_interval``, the shorter positive one applies; 0 turns it off).
    :cvar ConfigField[int] max_connection_attempts:
        Attempts in all (with exponential backoff, 0.1 s doubling up to 2 s) for a command
        that is safe to send again after a timeout or a lost connection. Cursor reads are never
        sent again (see :mod:`pynenc_redis_stack.client`).
    :cvar ConfigField[int] redis_pool_max_connections:
        Maximum connections in the pool. Defaults to 100.
    :cvar ConfigField[float] redis_pool_health_check_interval:
        Same as ``health_check_interval`` (pynenc-redis's name for its pool); the shorter wins.
    :cvar ConfigField[int] redis_stack_wait_replicas:
        Replicas that must acknowledge each write (``WAIT``) before it returns; 0 (default)
        waits for none. With Sentinel, 1 makes an acknowledged write survive a failover to
        that replica, at the cost of one replica round trip per write, and an error
        (``ReplicaAcknowledgementError``) when fewer replicas answer in time. Not with a
        cluster URL (docs/scale-out.md).
    :cvar ConfigField[float] redis_stack_wait_replicas_timeout:
        Seconds a write waits for ``redis_stack_wait_replicas`` acknowledgements. Defaults to 1.
    """

    redis_url = ConfigField("")
    redis_stack_url = ConfigField("")
    redis_host = ConfigField("localhost")
    redis_port = ConfigField(6379)
    redis_db = ConfigField(0)
    redis_username = ConfigField("")
    redis_password = ConfigField("")
    redis_ssl = ConfigField(False)
    redis_ssl_ca_certs = ConfigField("")
    redis_ssl_certfile = ConfigField("")
    redis_ssl_keyfile = ConfigField("")
    redis_ssl_cert_reqs = ConfigField("required")
    redis_ssl_check_hostname = ConfigField(True)
    socket_timeout = ConfigField(5.0)
    socket_connect_timeout = ConfigField(5.0)
    health_check_interval = ConfigField(30)
    max_connection_attempts = ConfigField(3)
    redis_pool_max_connections = ConfigField(100)
    redis_pool_health_check_interval = ConfigField(30.0)
    # scale-out (docs/scale-out.md)
    redis_stack_wait_replicas = ConfigField(0)
    redis_stack_wait_replicas_timeout = ConfigField(1.0)


class ConfigRedisStackKeyspace(ConfigRedisStack):
    """Connection plus the keys and indexes every component of this package shares.

    :cvar ConfigField[str] redis_stack_namespace:
        First segment of every key and index name (``pynenc:invocation:...``). Two
        deployments sharing one server need different namespaces. Letters, digits, ``_ . -``.
    :cvar ConfigField[bool] redis_stack_create_indexes:
        Create missing indexes on first use. Turn off when indexes are managed by deploys;
        a missing index then raises an error naming the command that creates it.
    :cvar ConfigField[int] redis_stack_batch_size:
        Rows fetched per round trip by lookups that stream (cursor reads and seek pages).
        At most 10000, Redis Stack's ``MAXAGGREGATERESULTS``.
    """

    redis_stack_namespace = ConfigField("pynenc")
    redis_stack_create_indexes = ConfigField(True)
    redis_stack_batch_size = ConfigField(1000)


class ConfigStateBackendRedisStack(ConfigStateBackend, ConfigRedisStackKeyspace):
    """Configuration of :class:`~pynenc_redis_stack.backend.RedisStackStateBackend`.

    :cvar ConfigField[bool] redis_stack_selected:
        Set by ``PynencBuilder.redis_stack``; keeps this backend selected whatever other
        builder calls come after.
    """

    redis_stack_selected = ConfigField(False)


class ConfigOrchestratorRedisStack(ConfigOrchestrator, ConfigRedisStackKeyspace):
    """Configuration of :class:`~pynenc_redis_stack.orchestrator.RedisStackOrchestrator`.

    :cvar ConfigField[float] redis_stack_concurrency_lock_sec:
        Seconds a router or runner may hold one of the locks that make a task's registration
        and running concurrency hold across hosts (look for a registered invocation of the
        call and register one if there is none; check that nothing of the slot runs and start
        the invocation). One that dies holding it delays that task this long at most; one
        waits at most this long for it before failing with an error.
    """

    redis_stack_concurrency_lock_sec = ConfigField(10.0)


class ConfigBrokerRedisStack(ConfigBroker, ConfigRedisStackKeyspace):
    """Configuration of :class:`~pynenc_redis_stack.broker.RedisStackBroker`.

    :cvar ConfigField[float] redis_stack_broker_lease_sec:
        Seconds a taken invocation stays with its taker before recovery may look at it.
        If by then the orchestrator still has it in a status available for run (nobody
        recorded taking it: the taker died), it goes back to its queue at its old place.
        Longer than any pause between taking an invocation and recording it (a few ms
        normally); shorter brings a dead taker's invocation back sooner.
    :cvar ConfigField[float] redis_stack_broker_recovery_interval_sec:
        Seconds between two recovery passes of one broker (each pass is one read when nothing
        expired); run by ``retrieve_invocation``, and by ``recover_expired_takes`` on demand.
    """

    redis_stack_broker_lease_sec = ConfigField(60.0)
    redis_stack_broker_recovery_interval_sec = ConfigField(10.0)


class ConfigClientDataStoreRedisStack(ConfigClientDataStore, ConfigRedisStackKeyspace):
    """Configuration of :class:`~pynenc_redis_stack.client_data_store.RedisStackClientDataStore`
    (the namespace and connection settings are the state backend's)."""


class ConfigTriggerRedisStack(ConfigTrigger, ConfigRedisStackKeyspace):
    """Configuration of :class:`~pynenc_redis_stack.trigger.RedisStackTrigger`: pynenc's
    trigger settings (scheduler, event retention and capacities) plus the connection and
    namespace every component of this package shares."""
