"""The lifecycle lock: one ``index migrate`` or ``index drop`` at a time per namespace.

redis-py's :class:`redis.lock.Lock` does the work (``SET NX PX``, token-checked release and
TTL reset in Lua). Around it, what redis-py's lock cannot do and the command needs:

- a notice naming the holder while waiting (redis-py's blocking acquire only sleeps): the
  token is ``host:pid:uuid``, read back with ``GET`` when the first attempt fails;
- a TTL reset cheap enough for every poll of a long wait (``reacquire`` is one script call;
  :meth:`LifecycleLock.refresh` sends it at most every third of the TTL);
- this package's errors: :class:`LockTimeoutError` and :class:`LockLostError`, whose messages
  say that nothing (more) was changed and what to do.
"""

from __future__ import annotations

import os
import socket
import time
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING

import redis
from redis.exceptions import LockError, LockNotOwnedError
from redis.lock import Lock

from pynenc_redis_stack.core.client import run
from pynenc_redis_stack.core.errors import LockLostError, LockTimeoutError
from pynenc_redis_stack.core.indexes.executor import DEFAULT_POLL_INTERVAL

if TYPE_CHECKING:
    from pynenc_redis_stack.core.keys import Namespace


class LifecycleLock:
    """A lease on the namespace's index lifecycle (key :meth:`Namespace.lifecycle_lock`).

    :param client: The connection.
    :param namespace: The namespace whose indexes are changed.
    :param ttl: Seconds the lease lasts without refresh; a killed holder blocks others this long.
    :param poll_interval: Seconds between two attempts while waiting.
    """

    def __init__(
        self,
        client: redis.Redis,
        namespace: Namespace,
        ttl: float = 30.0,
        poll_interval: float = DEFAULT_POLL_INTERVAL,
    ) -> None:
        self.client = client
        self.key = namespace.lifecycle_lock()
        self.ttl = ttl
        self.token = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex}"
        # thread_local=False: the token must survive a refresh from another thread (a heartbeat).
        self._lock = Lock(client, self.key, timeout=ttl, sleep=poll_interval, thread_local=False)
        self._refreshed = 0.0

    def acquire(self, timeout: float, on_wait: Callable[[str], None] | None = None) -> float:
        """Take the lock, waiting up to ``timeout`` seconds for the current holder.

        :param on_wait: Called once with the holder's token when the lock is busy.
        :return: Seconds spent waiting.
        :raises LockTimeoutError: If the lock is still held at the deadline.
        """
        start = time.monotonic()
        if not self._lock.acquire(blocking=False, token=self.token):
            if on_wait is not None:
                on_wait(self._holder())
            if not self._lock.acquire(blocking=True, blocking_timeout=timeout, token=self.token):
                raise LockTimeoutError(
                    f"{self.key} is still held by {self._holder()} after {timeout:g} s (another "
                    "`index migrate` or `index drop` is running); nothing was changed. Run it again "
                    "once that one is done."
                )
        self._refreshed = time.monotonic()
        return self._refreshed - start

    def _holder(self) -> str:
        return str(run(self.client, "GET", self.key) or "nobody (it was just released)")

    def refresh(self) -> None:
        """Reset the lease to its full TTL; cheap enough to call at every poll (it only writes
        every ttl/3).

        :raises LockLostError: If the lease expired or another process holds the lock.
        """
        now = time.monotonic()
        if now - self._refreshed < self.ttl / 3:
            return
        try:
            self._lock.reacquire()
        except LockError as exc:  # LockNotOwnedError included
            raise LockLostError(
                f"lost {self.key} (expired or taken by another process); stopped before changing "
                "more. Run migrate again: it resumes where this run stopped."
            ) from exc
        self._refreshed = now

    def release(self) -> bool:
        """Release the lock if this process still holds it.

        :return: True if it was released, False if it had already expired or changed hands.
        """
        try:
            self._lock.release()
        except LockNotOwnedError:
            return False
        return True
