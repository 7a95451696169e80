"""The query string: a conjunction of clauses over one index, with its ``PARAMS``.

Values never enter the string: each becomes a ``$p<n>`` parameter (tag values in their
:func:`~pynenc_redis_stack.core.query.escaping.tag_param` form); field names are checked against
the index spec.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal

from pynenc_redis_stack.core.errors import QueryError
from pynenc_redis_stack.core.query.escaping import tag_param
from pynenc_redis_stack.core.schema import IndexSpec


@dataclass
class Filter:
    """A conjunction of clauses over one index; renders to a query string plus ``PARAMS``.

    A filter with an empty tag value can match nothing (empty strings are never indexed), so
    it is marked :attr:`matches_nothing` and never sent.
    """

    spec: IndexSpec
    clauses: list[str] = field(default_factory=list)
    params: dict[str, str] = field(default_factory=dict)
    matches_nothing: bool = False

    def _param(self, value: str) -> str:
        name = f"p{len(self.params)}"
        self.params[name] = value
        return f"${name}"

    def _field(self, name: str, expected: Literal["tag", "numeric"]) -> str:
        spec_field = self.spec.field(name)
        if spec_field.type != expected:
            raise QueryError(
                f"field {name!r} of index {self.spec.name!r} is {spec_field.type}, not {expected}"
            )
        if not spec_field.lookup:
            raise QueryError(
                f"field {name!r} of index {self.spec.name!r} is declared 'lookup: false': it may "
                "hold empty strings, which no query can find; remove that attribute from the "
                "schema file (empty values are then refused at write time) to query it"
            )
        return name

    def tag(self, name: str, value: str) -> Filter:
        """Require ``@name`` to equal ``value`` exactly (case-sensitive)."""
        field_name = self._field(name, "tag")
        if not isinstance(value, str):
            raise QueryError(f"value for {name!r} must be a string, got {type(value).__name__}")
        if value == "":
            self.matches_nothing = True
            return self
        self.clauses.append(f"@{field_name}:{{{self._param(tag_param(value))}}}")
        return self

    def between(self, name: str, low: int, high: int) -> Filter:
        """Require ``low <= @name <= high``."""
        field_name = self._field(name, "numeric")
        if low > high:
            self.matches_nothing = True
            return self
        self.clauses.append(f"@{field_name}:[{self._param(str(low))} {self._param(str(high))}]")
        return self

    def after(self, primary: str, secondary: str, position: tuple[int, int]) -> Filter:
        """Require ``(@primary, @secondary)`` to sort strictly after ``position``."""
        first = self._field(primary, "numeric")
        second = self._field(secondary, "numeric")
        p, s = self._param(str(position[0])), self._param(str(position[1]))
        self.clauses.append(f"(@{first}:[({p} +inf] | (@{first}:[{p} {p}] @{second}:[({s} +inf]))")
        return self

    def tag_in(self, name: str, values: Iterable[str]) -> Filter:
        """Require ``@name`` to equal one of ``values`` exactly (``(@name:{$p0 | $p1 ...})``)."""
        return self.any_tag_in((name,), values)

    def any_tag_in(self, names: Sequence[str], values: Iterable[str]) -> Filter:
        """Require at least one of the tag fields ``names`` to equal one of ``values``.

        One set of parameters serves every field: ``(@a:{$p0 | $p1} | @b:{$p0 | $p1})``. Empty
        values can never match and are dropped; with none left the filter matches nothing.
        """
        fields = [self._field(name, "tag") for name in names]
        params = self._tag_params(values)
        if not fields or not params:
            self.matches_nothing = True
            return self
        union = " | ".join(params)
        self.clauses.append("(" + " | ".join(f"@{f}:{{{union}}}" for f in fields) + ")")
        return self

    def at_most(self, name: str, bound: int) -> Filter:
        """Require ``@name <= bound``."""
        field_name = self._field(name, "numeric")
        self.clauses.append(f"@{field_name}:[-inf {self._param(str(bound))}]")
        return self

    def at_least(self, name: str, bound: int) -> Filter:
        """Require ``@name >= bound``."""
        field_name = self._field(name, "numeric")
        self.clauses.append(f"@{field_name}:[{self._param(str(bound))} +inf]")
        return self

    def either(self, *builds: Callable[[Filter], Filter]) -> Filter:
        """Require that the clauses of at least one of ``builds`` all hold: ``((a b) | (c))``.

        Alternatives that match nothing are dropped; with none left the filter matches nothing.
        """
        alternatives = []
        for build in builds:
            inner = Filter(self.spec, params=self.params)  # shares the $p numbering
            build(inner)
            if inner.matches_nothing:
                continue
            alternatives.append("(" + (" ".join(inner.clauses) or "*") + ")")
        if not alternatives:
            self.matches_nothing = True
            return self
        self.clauses.append("(" + " | ".join(alternatives) + ")")
        return self

    def before(self, name: str, bound: int) -> Filter:
        """Require ``@name < bound`` (documents without the field do not match)."""
        field_name = self._field(name, "numeric")
        self.clauses.append(f"@{field_name}:[-inf ({self._param(str(bound))}]")
        return self

    def excluding(self, build: Callable[[Filter], Filter]) -> Filter:
        """Require that the clauses ``build`` adds do not all hold: ``-(clause clause ...)``.

        Example: ``f.excluding(lambda g: g.before("status_ts", t).tag_in("status", finals))``
        keeps what is not (old and final), documents without those fields included.
        """
        inner = Filter(self.spec, params=self.params)  # shares the $p numbering
        build(inner)
        if inner.matches_nothing:
            return self  # excluding nothing
        if not inner.clauses:
            self.matches_nothing = True  # excluding everything
            return self
        self.clauses.append("-(" + " ".join(inner.clauses) + ")")
        return self

    def _tag_params(self, values: Iterable[str]) -> list[str]:
        names = []
        for value in dict.fromkeys(values):  # ordered and without repeats
            if not isinstance(value, str):
                raise QueryError(f"tag values must be strings, got {type(value).__name__}")
            if value:
                names.append(self._param(tag_param(value)))
        return names

    def copy(self) -> Filter:
        """Return an independent copy (further clauses leave this filter unchanged)."""
        return Filter(self.spec, list(self.clauses), dict(self.params), self.matches_nothing)

    def query_string(self) -> str:
        """Return the query string (``*`` when there is no clause)."""
        return " ".join(self.clauses) if self.clauses else "*"

    def params_args(self) -> list[str]:
        """Return the ``PARAMS`` arguments (empty when there are none)."""
        if not self.params:
            return []
        args = ["PARAMS", str(2 * len(self.params))]
        for name, value in self.params.items():
            args.extend((name, value))
        return args


def where(spec: IndexSpec, app_id: str, **tags: str) -> Filter:
    """Start a filter scoped to one app, with exact tag matches on ``tags``."""
    result = Filter(spec).tag("app_id", app_id)
    for name, value in tags.items():
        result.tag(name, value)
    return result
