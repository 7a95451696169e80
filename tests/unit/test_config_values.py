"""Every configuration field of this package means what it says, from every source: the
environment (``PYNENC__<FIELD>``), a YAML config file and ``pyproject.toml`` ``[tool.pynenc]``.

Booleans read ``true/1/yes/on`` and ``false/0/no/off`` in any case; anything else, a
non-number for a number, or a number out of range is a one-line error naming the field and
the value.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from cistell import ConfigBase

from pynenc_redis_stack.core import conf
from pynenc_redis_stack.core.connection import _tls_options
from pynenc_redis_stack.core.errors import ConfigValueError

CONFIG_CLASSES: tuple[type[ConfigBase], ...] = (
    conf.ConfigStateBackendRedisStack,
    conf.ConfigOrchestratorRedisStack,
    conf.ConfigBrokerRedisStack,
    conf.ConfigClientDataStoreRedisStack,
    conf.ConfigTriggerRedisStack,
)
"""Every component configuration of this package."""


def _package_fields() -> dict[str, tuple[type[ConfigBase], conf.Setting[Any]]]:
    """Field name -> (a component configuration holding it, its descriptor), for every field
    declared in :mod:`pynenc_redis_stack.core.conf`."""
    fields: dict[str, tuple[type[ConfigBase], conf.Setting[Any]]] = {}
    for config_cls in CONFIG_CLASSES:
        for owner in config_cls.__mro__:
            if owner.__module__ != conf.__name__:
                continue
            for name, value in vars(owner).items():
                if name in fields or not hasattr(value, "_default_value"):
                    continue
                fields[name] = (config_cls, value)
    return fields


FIELDS = _package_fields()
BOOLEANS = sorted(name for name, (_, f) in FIELDS.items() if isinstance(f._default_value, bool))
NUMBERS = sorted(
    name
    for name, (_, f) in FIELDS.items()
    if isinstance(f._default_value, int | float) and not isinstance(f._default_value, bool)
)
STRINGS = sorted(name for name, (_, f) in FIELDS.items() if isinstance(f._default_value, str))

TRUE_WORDS = ["true", "1", "yes", "on", "TRUE", "Yes", "On"]
FALSE_WORDS = ["false", "0", "no", "off", "FALSE", "No", "Off"]


@pytest.fixture(autouse=True)
def _no_outside_configuration(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Only what a test writes is configured: no PYNENC__ variable of the caller, no
    pyproject.toml of the checkout (cistell reads the one in the current directory)."""
    for name in list(os.environ):
        if name.startswith("PYNENC__"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


def _from_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, name: str, raw: str) -> Callable[[], Any]:
    monkeypatch.setenv(f"PYNENC__{name.upper()}", raw)
    return lambda: FIELDS[name][0]()


def _from_yaml(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, name: str, raw: str) -> Callable[[], Any]:
    path = tmp_path / "pynenc.yaml"
    path.write_text(f"{name}: {raw}\n")  # written as a user would: unquoted
    return lambda: FIELDS[name][0](config_filepath=str(path))


def _from_pyproject(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, name: str, raw: str
) -> Callable[[], Any]:
    # TOML has native booleans and numbers; anything else must be a quoted string.
    native = raw in ("true", "false") or _is_number(raw)
    (tmp_path / "pyproject.toml").write_text(f"[tool.pynenc]\n{name} = {raw if native else repr(raw)}\n")
    return lambda: FIELDS[name][0]()


def _is_number(raw: str) -> bool:
    try:
        float(raw)
    except ValueError:
        return False
    return True


SOURCES = {"env": _from_env, "yaml": _from_yaml, "pyproject": _from_pyproject}


def _configured(
    source: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, name: str, raw: str
) -> Callable[[], Any]:
    return SOURCES[source](monkeypatch, tmp_path, name, raw)


def _assert_refused(build: Callable[[], Any], name: str, raw: str) -> None:
    with pytest.raises(ConfigValueError) as refused:
        build()
    message = str(refused.value)
    assert "\n" not in message
    assert name in message
    assert raw in message


def test_every_field_of_the_package_is_a_setting() -> None:
    plain = [name for name, (_, field) in FIELDS.items() if not isinstance(field, conf.Setting)]
    assert FIELDS and not plain, f"plain ConfigFields parse 'false' as True: {plain}"


@pytest.mark.parametrize("source", SOURCES)
@pytest.mark.parametrize("name", BOOLEANS)
@pytest.mark.parametrize(("words", "expected"), [(TRUE_WORDS, True), (FALSE_WORDS, False)])
def test_booleans(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, source: str, name: str, words: list[str], expected: bool
) -> None:
    for raw in words:
        if source == "pyproject" and raw.lower() in ("true", "false"):
            raw = raw.lower()  # TOML's booleans are lower case; "True" would be a string below
        config = _configured(source, monkeypatch, tmp_path, name, raw)()
        assert getattr(config, name) is expected, f"{source} {name}={raw!r}"


@pytest.mark.parametrize("source", SOURCES)
@pytest.mark.parametrize("name", BOOLEANS)
def test_a_boolean_that_is_not_one_is_an_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, source: str, name: str
) -> None:
    _assert_refused(_configured(source, monkeypatch, tmp_path, name, "maybe"), name, "maybe")


def _in_range(field: conf.Setting[Any]) -> str:
    """A value of ``field`` other than its default, within its range."""
    low = field.minimum if field.minimum is not None else 1
    value = low + 1 if field.maximum is None or low + 1 <= field.maximum else low
    return str(int(value)) if isinstance(field._default_value, int) else f"{value + 0.5}"


def _out_of_range(field: conf.Setting[Any]) -> Iterator[str]:
    if field.positive:
        yield "0"
    if field.minimum is not None:
        yield str(int(field.minimum) - 1)
    if field.maximum is not None:
        yield str(int(field.maximum) + 1)


@pytest.mark.parametrize("source", SOURCES)
@pytest.mark.parametrize("name", NUMBERS)
def test_numbers(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, source: str, name: str) -> None:
    field = FIELDS[name][1]
    raw = _in_range(field)
    value = getattr(_configured(source, monkeypatch, tmp_path, name, raw)(), name)
    assert value == type(field._default_value)(raw) and type(value) is type(field._default_value)


@pytest.mark.parametrize("source", SOURCES)
@pytest.mark.parametrize("name", NUMBERS)
def test_a_number_that_is_not_one_is_an_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, source: str, name: str
) -> None:
    _assert_refused(_configured(source, monkeypatch, tmp_path, name, "twelve"), name, "twelve")


@pytest.mark.parametrize("source", SOURCES)
@pytest.mark.parametrize("name", [name for name in NUMBERS if list(_out_of_range(FIELDS[name][1]))])
def test_a_number_out_of_range_is_an_error_not_a_clamp(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, source: str, name: str
) -> None:
    for raw in _out_of_range(FIELDS[name][1]):
        _assert_refused(_configured(source, monkeypatch, tmp_path, name, raw), name, raw)


def test_every_number_has_a_range() -> None:
    unbounded = [name for name in NUMBERS if not list(_out_of_range(FIELDS[name][1]))]
    assert not unbounded


STRING_VALUES = {
    "redis_ssl_cert_reqs": ("optional", "optional"),
    "redis_stack_namespace": ("team-a.prod_1", "team-a.prod_1"),
    "redis_url": ("redis://example.org:6380/0", "redis://example.org:6380/0"),
    "redis_stack_url": ("rediss://example.org:6380/0", "rediss://example.org:6380/0"),
}


@pytest.mark.parametrize("source", SOURCES)
@pytest.mark.parametrize("name", STRINGS)
def test_strings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, source: str, name: str) -> None:
    raw, expected = STRING_VALUES.get(name, ("some-value", "some-value"))
    assert getattr(_configured(source, monkeypatch, tmp_path, name, raw)(), name) == expected


@pytest.mark.parametrize("source", SOURCES)
@pytest.mark.parametrize(
    ("name", "raw"), [("redis_ssl_cert_reqs", "sometimes"), ("redis_stack_namespace", "a*b")]
)
def test_a_string_outside_its_choices_is_an_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, source: str, name: str, raw: str
) -> None:
    _assert_refused(_configured(source, monkeypatch, tmp_path, name, raw), name, raw)


@pytest.mark.parametrize("source", SOURCES)
@pytest.mark.parametrize("raw", ["false", "0", "no", "off", "False", "OFF"])
def test_tls_is_never_turned_on_by_a_false_value(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, source: str, raw: str
) -> None:
    if source == "pyproject" and raw.lower() == "false":
        raw = "false"
    monkeypatch.setenv("PYNENC__REDIS_STACK_URL", "redis://localhost:6379/0")
    config = _configured(source, monkeypatch, tmp_path, "redis_ssl", raw)()
    assert config.redis_ssl is False
    assert _tls_options(config) == {}


def test_values_set_in_code_are_checked_too() -> None:
    config = conf.ConfigStateBackendRedisStack(config_values={"redis_stack_batch_size": 500})
    assert config.redis_stack_batch_size == 500
    with pytest.raises(ConfigValueError, match="redis_stack_batch_size: 20000 is not at most 10000"):
        conf.ConfigStateBackendRedisStack(config_values={"redis_stack_batch_size": 20_000})
    with pytest.raises(ConfigValueError, match="redis_ssl: 'flase'"):
        config.redis_ssl = "flase"
