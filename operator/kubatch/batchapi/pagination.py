"""Opaque ``nextToken`` pagination over a sorted listing.

Pure. A token records the sort key of the last item returned and a digest of the query it
belongs to, so a page never repeats or skips an item that existed throughout, and a token
replayed with another query (or made up) is a ``ClientException``, not a wrong page.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from kubatch.batchapi.errors import ClientError

T = TypeVar("T")
Key = list[Any]


def query_digest(query: Any) -> str:
    """Pure: a short digest of the query's parameters (without the token and the page size)."""
    text = json.dumps(query, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def encode(key: Key, digest: str) -> str:
    raw = json.dumps({"k": key, "q": digest}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode(token: str, digest: str) -> Key:
    """Pure: the key after which the next page starts; ClientException if not our token."""
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        doc = json.loads(raw)
    except (binascii.Error, ValueError):
        raise ClientError("nextToken is not valid") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("k"), list):
        raise ClientError("nextToken is not valid")
    if doc.get("q") != digest:
        raise ClientError("nextToken belongs to a different request (its filters differ)")
    key: Key = doc["k"]
    return key


def page(
    items: Sequence[T],
    sort_key: Callable[[T], Key],
    *,
    token: str | None,
    limit: int,
    digest: str,
) -> tuple[list[T], str | None]:
    """Pure: one page of ``items`` (in ``sort_key`` order) and the token of the next one."""
    ordered = sorted(items, key=sort_key)
    if token:
        after = decode(token, digest)
        try:
            ordered = [i for i in ordered if sort_key(i) > after]
        except TypeError:
            raise ClientError("nextToken is not valid") from None
    chosen = ordered[:limit]
    more = len(ordered) > limit
    return chosen, (encode(sort_key(chosen[-1]), digest) if more and chosen else None)
