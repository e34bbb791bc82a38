"""Job identity and deterministic Kubernetes Job names.

Pure. Keys are ``"<namespace>/<name>"``; array children ``"<namespace>/<name>:<index>"``.
The Kubernetes Job of an attempt has a deterministic DNS-1123 name of at most 63 characters,
so that render/ and the operator agree and a restart never creates a second Job.
"""

from __future__ import annotations

import hashlib
import re

MAX_NAME = 63
_BAD = re.compile(r"[^a-z0-9-]+")


def job_key(namespace: str, name: str) -> str:
    """Pure: ``"<namespace>/<name>"``."""
    return f"{namespace}/{name}"


def child_key(key: str, index: int) -> str:
    """Pure: the key of array child ``index`` of job ``key``."""
    return f"{key}:{index}"


def split_key(key: str) -> tuple[str, str, int | None]:
    """Pure: ``(namespace, name, index or None)`` from a job or child key."""
    ns, _, rest = key.partition("/")
    name, sep, idx = rest.partition(":")
    return ns, name, int(idx) if sep else None


def job_name_for_attempt(batchjob_name: str, token: str, index: int | None, attempt: int) -> str:
    """Pure: the Kubernetes Job name of an attempt (attempt numbers start at 1).

    ``token`` is a uid-ish value of the BatchJob (e.g. its metadata.uid) so that a re-created
    BatchJob with the same name does not collide with old Jobs. Form:
    ``<name>-<hash8>[-<index>]-<attempt>``, the name part truncated to fit 63 characters.
    """
    digest = hashlib.sha256(f"{batchjob_name}/{token}".encode()).hexdigest()[:8]
    suffix = f"-{digest}" + (f"-{index}" if index is not None else "") + f"-{attempt}"
    base = _BAD.sub("-", batchjob_name.lower()).strip("-") or "job"
    base = base[: MAX_NAME - len(suffix)].rstrip("-") or "j"
    return base + suffix
