"""Access keys: who a signed request is, and what it may see.

Each access key maps to a namespace (where its jobs and job definitions live), an account id
(used in the ARNs it is shown) and whether it may administer job queues and compute
environments. Keys come from a Kubernetes Secret (one data entry per access key id) and, for
local use and tests, from ``--key AKID:SECRET:NAMESPACE[:admin]`` on the command line.

A Secret entry's value is either the short form ``SECRET:NAMESPACE[:admin]`` or a JSON object
``{"secretAccessKey": …, "namespace": …, "accountId": "123456789012", "admin": false}``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass

_AKID = re.compile(r"[A-Za-z0-9]{4,128}")
_NAMESPACE = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_ACCOUNT = re.compile(r"[0-9]{12}")


class KeyError_(ValueError):
    """A key definition that cannot be used (the message says why)."""


@dataclass(frozen=True, slots=True)
class Identity:
    access_key: str
    secret: str
    namespace: str
    account: str
    admin: bool = False

    def __repr__(self) -> str:  # never print the secret
        return (
            f"Identity({self.access_key!r}, namespace={self.namespace!r}, "
            f"account={self.account!r}, admin={self.admin})"
        )


def account_for(namespace: str) -> str:
    """Pure: the default 12-digit account id of a namespace (stable, distinct per namespace)."""
    digest = int(hashlib.sha256(namespace.encode()).hexdigest(), 16)
    return f"{digest % 10**12:012d}"


def _check(access_key: str, secret: str, namespace: str, account: str) -> None:
    if not _AKID.fullmatch(access_key):
        raise KeyError_(f"access key id {access_key[:40]!r} must be 4-128 letters and digits")
    if not secret or ":" in secret or len(secret) > 256:
        raise KeyError_(f"the secret of {access_key} must be 1-256 characters without ':'")
    if len(namespace) > 63 or not _NAMESPACE.fullmatch(namespace):
        raise KeyError_(f"namespace {namespace[:70]!r} of {access_key} is not a namespace name")
    if not _ACCOUNT.fullmatch(account):
        raise KeyError_(f"account id {account[:20]!r} of {access_key} must be 12 digits")


def parse_short(access_key: str, text: str, default_account: str | None = None) -> Identity:
    """Pure: ``SECRET:NAMESPACE[:admin]`` of ``access_key``."""
    parts = text.strip().split(":")
    if len(parts) not in (2, 3) or (len(parts) == 3 and parts[2] != "admin"):
        raise KeyError_(f"key {access_key}: expected SECRET:NAMESPACE or SECRET:NAMESPACE:admin")
    secret, namespace = parts[0], parts[1]
    account = default_account or account_for(namespace)
    _check(access_key, secret, namespace, account)
    return Identity(access_key, secret, namespace, account, admin=len(parts) == 3)


def parse_key_arg(text: str, default_account: str | None = None) -> Identity:
    """Pure: ``AKID:SECRET:NAMESPACE[:admin]`` (the ``--key`` option)."""
    access_key, sep, rest = text.partition(":")
    if not sep:
        raise KeyError_("--key expects AKID:SECRET:NAMESPACE[:admin]")
    return parse_short(access_key, rest, default_account)


def parse_entry(access_key: str, value: str, default_account: str | None = None) -> Identity:
    """Pure: one Secret entry (short form or JSON object)."""
    text = value.strip()
    if not text.startswith("{"):
        return parse_short(access_key, text, default_account)
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise KeyError_(f"key {access_key}: invalid JSON ({exc.msg})") from None
    if not isinstance(doc, dict):
        raise KeyError_(f"key {access_key}: expected a JSON object")
    secret, namespace = doc.get("secretAccessKey"), doc.get("namespace")
    admin = doc.get("admin", False)
    if not isinstance(secret, str) or not isinstance(namespace, str):
        raise KeyError_(f"key {access_key}: secretAccessKey and namespace are required strings")
    if not isinstance(admin, bool):
        raise KeyError_(f"key {access_key}: admin must be true or false")
    account = doc.get("accountId") or default_account or account_for(namespace)
    if not isinstance(account, str):
        raise KeyError_(f"key {access_key}: accountId must be a string of 12 digits")
    _check(access_key, secret, namespace, account)
    return Identity(access_key, secret, namespace, account, admin)


def parse_secret(
    data: Mapping[str, str], default_account: str | None = None
) -> tuple[dict[str, Identity], list[str]]:
    """Pure: the identities of a Secret's ``data`` (base64 values) and the problems found.

    A bad entry is skipped (and reported) so that one typo does not lock every user out.
    """
    keys: dict[str, Identity] = {}
    problems: list[str] = []
    for access_key, encoded in sorted(data.items()):
        try:
            value = base64.b64decode(encoded, validate=True).decode()
            keys[access_key] = parse_entry(access_key, value, default_account)
        except (binascii.Error, UnicodeDecodeError):
            problems.append(f"key {access_key}: value is not base64 of UTF-8 text")
        except KeyError_ as exc:
            problems.append(str(exc))
    return keys, problems
