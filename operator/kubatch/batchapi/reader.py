"""Typed, checked access to a request's JSON body.

Pure. botocore checks only required members and types on the client side, and other clients
(curl, other SDKs, a fuzzer) check nothing: every value is checked here, and every mistake
becomes a ``ClientException`` naming the field (``containerOverrides.resourceRequirements[1]
.value``) and what is wrong. Members the protocol does not know are rejected too.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterator, Mapping
from typing import Any

from kubatch.batchapi.errors import ClientError

MAX_STRING = 262_144


class Reader:
    """A JSON object of the request at ``path`` (``""`` for the body itself)."""

    def __init__(self, data: Any, path: str = "") -> None:
        if not isinstance(data, Mapping):
            where = path or "the request body"
            raise ClientError(f"{where} must be a JSON object")
        self.data: Mapping[str, Any] = data
        self.path = path

    def field(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def has(self, key: str) -> bool:
        return self.data.get(key) is not None

    def keys(self) -> Iterator[str]:
        return (k for k, v in self.data.items() if v is not None)

    def only(self, known: Collection[str]) -> None:
        """Reject members not in ``known``."""
        for key in self.keys():
            if key not in known:
                raise ClientError(f"{self.field(key)}: unknown field")

    def _get(self, key: str, required: bool) -> Any:
        value = self.data.get(key)
        if value is None and required:
            raise ClientError(f"{self.field(key)} is required")
        return value

    def string(
        self,
        key: str,
        *,
        required: bool = False,
        max_len: int = MAX_STRING,
        min_len: int = 0,
        pattern: re.Pattern[str] | None = None,
        enum: Collection[str] | None = None,
        what: str = "",
    ) -> str | None:
        value = self._get(key, required)
        if value is None:
            return None
        return check_str(
            value,
            self.field(key),
            max_len=max_len,
            min_len=min_len,
            pattern=pattern,
            enum=enum,
            what=what,
        )

    def req_str(self, key: str, **kw: Any) -> str:
        value = self.string(key, required=True, **kw)
        assert value is not None
        return value

    def integer(
        self, key: str, *, required: bool = False, lo: int | None = None, hi: int | None = None
    ) -> int | None:
        value = self._get(key, required)
        if value is None:
            return None
        return check_int(value, self.field(key), lo=lo, hi=hi)

    def boolean(self, key: str) -> bool | None:
        value = self.data.get(key)
        if value is None:
            return None
        if not isinstance(value, bool):
            raise ClientError(f"{self.field(key)} must be a boolean")
        return value

    def strings(
        self,
        key: str,
        *,
        required: bool = False,
        max_items: int = 10_000,
        max_len: int = MAX_STRING,
        enum: Collection[str] | None = None,
    ) -> list[str] | None:
        value = self._get(key, required)
        if value is None:
            return None
        items = check_list(value, self.field(key), max_items)
        return [
            check_str(v, f"{self.field(key)}[{i}]", max_len=max_len, enum=enum)
            for i, v in enumerate(items)
        ]

    def struct(self, key: str, *, required: bool = False) -> Reader | None:
        value = self._get(key, required)
        return None if value is None else Reader(value, self.field(key))

    def structs(
        self, key: str, *, required: bool = False, max_items: int = 10_000
    ) -> list[Reader] | None:
        value = self._get(key, required)
        if value is None:
            return None
        items = check_list(value, self.field(key), max_items)
        return [Reader(v, f"{self.field(key)}[{i}]") for i, v in enumerate(items)]

    def str_map(
        self,
        key: str,
        *,
        required: bool = False,
        max_items: int = 10_000,
        max_key: int = MAX_STRING,
        max_value: int = MAX_STRING,
    ) -> dict[str, str] | None:
        value = self._get(key, required)
        if value is None:
            return None
        if not isinstance(value, Mapping):
            raise ClientError(f"{self.field(key)} must be a map of strings")
        if len(value) > max_items:
            raise ClientError(f"{self.field(key)} has more than {max_items} entries")
        out: dict[str, str] = {}
        for k, v in value.items():
            where = f"{self.field(key)}.{k}"
            check_str(k, f"{self.field(key)} key", max_len=max_key, min_len=1)
            out[str(k)] = check_str(v, where, max_len=max_value)
        return out


def check_str(
    value: Any,
    where: str,
    *,
    max_len: int = MAX_STRING,
    min_len: int = 0,
    pattern: re.Pattern[str] | None = None,
    enum: Collection[str] | None = None,
    what: str = "",
) -> str:
    """Pure: ``value`` as a string meeting the limits, else a ClientException."""
    if not isinstance(value, str):
        raise ClientError(f"{where} must be a string")
    if len(value) > max_len:
        raise ClientError(f"{where} is longer than {max_len} characters")
    if len(value) < min_len:
        raise ClientError(f"{where} must not be empty" if min_len == 1 else f"{where} is too short")
    if enum is not None and value not in enum:
        raise ClientError(f"{where}: {value[:64]!r} is not one of {', '.join(sorted(enum))}")
    if pattern is not None and not pattern.fullmatch(value):
        raise ClientError(f"{where}: {value[:140]!r} is not valid" + (f": {what}" if what else ""))
    return value


def check_int(value: Any, where: str, *, lo: int | None = None, hi: int | None = None) -> int:
    """Pure: ``value`` as an integer within ``[lo, hi]``, else a ClientException."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ClientError(f"{where} must be an integer")
    if lo is not None and value < lo:
        raise ClientError(f"{where} must be at least {lo} (got {value})")
    if hi is not None and value > hi:
        raise ClientError(f"{where} must be at most {hi} (got {value})")
    return value


def check_list(value: Any, where: str, max_items: int) -> list[Any]:
    if not isinstance(value, list):
        raise ClientError(f"{where} must be a list")
    if len(value) > max_items:
        raise ClientError(f"{where} has more than {max_items} items")
    return value
