"""Hypothesis strategies for adversarial identifiers, payloads and timestamps.

Identifiers are never empty (the backend refuses ``""`` as an indexed value) and never
contain NUL or surrogate code points; everything else is fair game: RediSearch query
syntax, key separators, glob characters, whitespace at either end, unicode, 2 KiB ids.
"""

from __future__ import annotations

import string
from datetime import UTC, datetime, timedelta, timezone

from hypothesis import strategies as st

SPECIALS = "-.:,{}[]|@*?()\"'\\~!$%^&=+<>;/`# \t\n\r"
"""Every character RediSearch's query syntax, Redis keys, globs or the backend's substring
search form (``~``, ``^``, backtick) give a meaning to, and whitespace."""

UNICODE = "éÉßΩω日本😀🚀İıÅå\u00a0\u200b"
"""Unicode with case pairs, non-BMP code points, a no-break and a zero-width space."""

_ALPHANUMERIC = string.ascii_letters + string.digits

identifier_char = st.one_of(
    st.sampled_from(SPECIALS),
    st.sampled_from(_ALPHANUMERIC),
    st.sampled_from(UNICODE),
    st.characters(exclude_categories=["Cs"], exclude_characters="\x00"),
)

_short_identifiers = st.text(identifier_char, min_size=1, max_size=12)


def _stretch(pair: tuple[str, int]) -> str:
    seed, length = pair
    return (seed * (length // len(seed) + 1))[:length]


long_identifiers = st.tuples(_short_identifiers, st.integers(200, 2048)).map(_stretch)
"""Identifiers of 200 to 2048 characters (a short identifier repeated)."""

identifiers = st.one_of(
    _short_identifiers,
    _short_identifiers,
    _short_identifiers,
    st.sampled_from(["a", "A", "*", "?", "-", "|", " ", "\t", ".", ":", "\\", "{", "}"]),
    long_identifiers,
)
"""Non-empty identifiers, mostly short (so they collide), sometimes 2 KiB long."""

module_names = st.lists(identifiers, min_size=1, max_size=3).map(".".join)
"""Task modules: dotted paths whose parts are adversarial identifiers."""

func_names = identifiers.map(lambda s: s.replace(".", "_"))
"""Task function names: no '.', which ``TaskId.from_key`` could not split back."""

payloads = st.one_of(
    st.just(""),
    st.text(st.characters(exclude_categories=["Cs"]), max_size=30),
    st.text(identifier_char, max_size=30),
)
"""Serialized values: anything UTF-8 can carry, the empty string included."""

workflow_values = st.recursive(
    st.one_of(
        payloads,
        st.integers(),
        st.integers(min_value=-(2**70), max_value=2**70),
    ),
    lambda inner: st.lists(inner, max_size=4),
    max_leaves=8,
)
"""Workflow data values: strings, ints and (nested) lists of them."""


def variants(value: str) -> list[str]:
    """Near misses of ``value``: another case, extra or trimmed whitespace, a prefix."""
    out = [
        value.upper(),
        value.lower(),
        value.swapcase(),
        value.strip(),
        " " + value,
        value + " ",
        value + "\t",
        value + "*",
        value[:-1],
        value[1:],
    ]
    return [v for v in out if v and v != value]


BASE_TIME = datetime(2024, 2, 29, 23, 59, 59, 999_999, tzinfo=UTC)
ZONES = [
    UTC,
    timezone(timedelta(hours=5, minutes=30)),
    timezone(timedelta(hours=-11)),
]

timestamps = st.one_of(
    st.builds(
        lambda offset, zone: (BASE_TIME + timedelta(microseconds=offset)).astimezone(zone),
        st.one_of(
            st.integers(0, 5),  # dense: equal timestamps are common
            st.integers(-3_000_000, 3_000_000),
            st.integers(-(10**12), 10**12),
        ),
        st.sampled_from(ZONES),
    ),
    st.datetimes(  # before the epoch up to near the 2**53 microseconds limit (year 2255)
        min_value=datetime(1900, 1, 2),
        max_value=datetime(2250, 1, 1),
        timezones=st.sampled_from(ZONES),
    ),
)
"""Timezone-aware instants with microseconds, many of them equal."""

range_bounds = st.sampled_from([datetime.min.replace(tzinfo=UTC), datetime.max.replace(tzinfo=UTC)])
"""Open-ended range bounds."""
