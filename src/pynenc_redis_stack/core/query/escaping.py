"""How a value is written into a query so that the server reads it literally: the only
escaping of the package.

Tag values travel as ``PARAMS`` (:func:`tag_param`); the substring of a ``FILTER
contains(...)`` travels as a string literal of the expression language (:func:`string_literal`
of its :func:`substring_form`), because ``PARAMS`` are not accepted there.
"""

from __future__ import annotations

from pynenc_redis_stack.core.errors import QueryError, lone_surrogate, lone_surrogate_message


def tag_param(value: str) -> str:
    """Return the ``PARAMS`` form of a tag value.

    The server unescapes backslashes in tag parameters (``a\\\\b`` would match ``a\\b``),
    so each backslash is doubled; every other character is taken literally.

    :raises QueryError: If ``value`` holds a lone surrogate (it cannot be sent, nor stored).
    """
    require_unicode("lookup value", value)
    return value.replace("\\", "\\\\")


def require_unicode(what: str, value: str) -> None:
    """Refuse a value that cannot be sent: one holding a lone surrogate (invalid UTF-8).

    :raises QueryError: Naming ``what`` and the position.
    """
    position = lone_surrogate(value)
    if position is not None:
        raise QueryError(lone_surrogate_message(what, value, position))


# The expression language's string literals cannot carry a newline (syntax error) or two
# backslashes in a row (runs collapse to one), and PARAMS are not accepted there. Substring
# search therefore runs over a substring form of the value in which those characters never
# occur: each character of SUBSTRING_ESCAPED becomes SUBSTRING_ESCAPE plus a fixed-width code
# over SUBSTRING_CODE_DIGITS. The escape and the code digits are themselves escaped, so an encoded
# needle can only match an encoded haystack at character boundaries: ``needle in value``
# exactly when ``substring_form(needle) in substring_form(value)``.
SUBSTRING_ESCAPE = "~"
SUBSTRING_CODE_DIGITS = "^`"
SUBSTRING_CODE_WIDTH = 6
SUBSTRING_ESCAPED = SUBSTRING_ESCAPE + SUBSTRING_CODE_DIGITS + "\\" + "".join(map(chr, range(32))) + "\x7f"


def _substring_code(index: int) -> str:
    digits = []
    for _ in range(SUBSTRING_CODE_WIDTH):
        index, digit = divmod(index, len(SUBSTRING_CODE_DIGITS))
        digits.append(SUBSTRING_CODE_DIGITS[digit])
    return SUBSTRING_ESCAPE + "".join(reversed(digits))


_SUBSTRING_TABLE = str.maketrans({char: _substring_code(i) for i, char in enumerate(SUBSTRING_ESCAPED)})


def substring_form(value: str) -> str:
    """Return the form of ``value`` that substring search compares (see SUBSTRING_ESCAPED)."""
    return value.translate(_SUBSTRING_TABLE)


def string_literal(value: str) -> str:
    """Return ``value`` as a double-quoted literal of the aggregation expression language.

    Only for values in :func:`substring_form`, which holds no backslash or control character;
    the double quote is escaped.
    """
    if any(char in value for char in "\\\n\r"):
        raise QueryError("string literals cannot carry backslashes or line breaks; use substring_form()")
    return '"' + value.replace('"', '\\"') + '"'
