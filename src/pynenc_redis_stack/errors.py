"""Errors raised by pynenc-redis-stack.

Hierarchy::

    RedisStackError
    ├── ServerNotSupportedError   the server lacks the search or JSON module, or db != 0
    ├── SchemaError               a schema file in schemas/ is invalid
    ├── IndexDefinitionMismatchError  a live index differs from its schema file
    ├── InvalidDocumentError      a value would silently drop a document from an index
    ├── QueryError                a query could not be built or its answer would be incomplete
    └── EmbeddedServerError       the embedded Redis Stack could not start or stop
"""


class RedisStackError(Exception):
    """Base class of every error of this package."""


class ServerNotSupportedError(RedisStackError):
    """The Redis server cannot host this backend (missing module, database other than 0)."""


class SchemaError(RedisStackError):
    """A schema file is malformed or inconsistent."""


class IndexDefinitionMismatchError(RedisStackError):
    """A live RediSearch index does not match the definition in ``schemas/``."""


class InvalidDocumentError(RedisStackError, ValueError):
    """A document value has a type or content RediSearch would silently refuse to index."""


class QueryError(RedisStackError, ValueError):
    """A query was given an unknown field or a value it cannot express."""


class EmbeddedServerError(RedisStackError):
    """The embedded Redis Stack server could not be started, reached or stopped."""
