"""AWS names and ARNs <-> Kubernetes names, and the annotation and label keys of the API.

Pure. AWS names allow upper case and ``_`` (up to 128 characters); Kubernetes names are lower
case DNS labels, and queue and compute environment names also end up in label values (at most
63 characters). :func:`kube_name` maps an AWS name to a Kubernetes name deterministically and
injectively: a name that already is a valid Kubernetes name is kept; any other gets a lower
cased, shortened form plus a hash of the original, and the original is kept in the
``batchapi.kubatch.io/name`` annotation, which is what the API returns. Lookups check that
annotation, so two AWS names never share an object.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from kubatch.batchapi.errors import ClientError

PREFIX: Final = "batchapi.kubatch.io"
# Annotations (on the objects the API creates or changes).
NAME: Final = f"{PREFIX}/name"
"""The AWS name of a queue, compute environment or job definition; a job's ``jobName``."""
TAGS: Final = f"{PREFIX}/tags"
"""JSON object of the resource's AWS tags."""
AWS: Final = f"{PREFIX}/aws"
"""JSON of AWS-only fields kept and returned unchanged (no Kubernetes meaning)."""
PROPERTIES: Final = f"{PREFIX}/properties"
"""On a job definition revision: the registered document (containerProperties, …) as JSON."""
STATUS: Final = f"{PREFIX}/status"
"""On a job definition revision: ``ACTIVE`` or ``INACTIVE`` (deregistered)."""
DEFINITION: Final = f"{PREFIX}/job-definition"
"""On a job: the AWS ``name:revision`` of the definition it was submitted with."""
CREATED_AT: Final = f"{PREFIX}/created-at"
"""On a job: submission time in epoch milliseconds (Kubernetes keeps seconds)."""
STOPPED: Final = f"{PREFIX}/stopped-by"
"""On a job: ``CancelJob`` or ``TerminateJob``, whichever the API was asked."""
STYLE: Final = f"{PREFIX}/style"
"""On a job and a definition revision: ``container`` or ``eks`` (which AWS shape to show)."""
# Labels (selectable).
DEFINITION_LABEL: Final = f"{PREFIX}/definition"
"""On a job definition revision: the Kubernetes form of its AWS name."""
REVISION_LABEL: Final = f"{PREFIX}/revision"
"""On a job definition revision: its revision number."""

AWS_NAME = re.compile(r"[A-Za-z0-9_-]{1,128}")
JOB_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,127}")
NAME_RULE = "up to 128 letters, digits, hyphens and underscores"
JOB_NAME_RULE = NAME_RULE + ", starting with a letter or digit"
_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_NOT_DNS = re.compile(r"[^a-z0-9-]+")
MAX_LABEL = 63
HASH = 8


def kube_name(aws_name: str) -> str:
    """Pure: the Kubernetes name of an AWS name (a DNS label of at most 63 characters)."""
    if len(aws_name) <= MAX_LABEL and _DNS_LABEL.fullmatch(aws_name):
        return aws_name
    digest = hashlib.sha256(aws_name.encode()).hexdigest()[:HASH]
    base = _NOT_DNS.sub("-", aws_name.lower().replace("_", "-")).strip("-")
    base = base[: MAX_LABEL - HASH - 1].rstrip("-") or "x"
    return f"{base}-{digest}"


def aws_name(obj: Mapping[str, Any]) -> str:
    """Pure: the AWS name of an object (its annotation, else its Kubernetes name)."""
    meta = obj.get("metadata") or {}
    return str((meta.get("annotations") or {}).get(NAME) or meta.get("name", ""))


def owns(obj: Mapping[str, Any], name: str) -> bool:
    """Pure: whether ``obj`` is the object of AWS name ``name`` (not another name's)."""
    return aws_name(obj) == name


def revision_object(aws: str, revision: int) -> str:
    """Pure: the JobDefinition object holding revision ``revision`` of AWS name ``aws``.

    The dot cannot occur in an AWS name, so no AWS name maps onto a revision object.
    """
    return f"{kube_name(aws)}.{revision}"


# --------------------------------------------------------------------------- ARNs


@dataclass(frozen=True, slots=True)
class Arn:
    region: str
    account: str
    kind: str
    """``job``, ``job-definition``, ``job-queue`` or ``compute-environment``."""
    resource: str

    def __str__(self) -> str:
        return f"arn:aws:batch:{self.region}:{self.account}:{self.kind}/{self.resource}"


KINDS = ("job", "job-definition", "job-queue", "compute-environment", "consumable-resource")


def parse_arn(text: str, where: str = "resourceArn") -> Arn:
    """Pure: an AWS Batch ARN, else a ClientException."""
    parts = text.split(":", 5)
    if len(parts) != 6 or parts[0] != "arn" or parts[2] != "batch":
        raise ClientError(f"{where}: {text[:200]!r} is not an AWS Batch ARN")
    kind, sep, resource = parts[5].partition("/")
    if not sep or kind not in KINDS or not resource:
        raise ClientError(
            f"{where}: {text[:200]!r} names no job, job definition, job queue, compute "
            "environment or consumable resource"
        )
    return Arn(parts[3], parts[4], kind, resource)


def is_arn(text: str) -> bool:
    return text.startswith("arn:")


@dataclass(frozen=True, slots=True)
class DefinitionRef:
    """``name`` (latest active revision) or ``name:revision``."""

    name: str
    revision: int | None

    def __str__(self) -> str:
        return self.name if self.revision is None else f"{self.name}:{self.revision}"


def parse_definition_ref(text: str, where: str = "jobDefinition") -> DefinitionRef:
    """Pure: ``name``, ``name:revision`` or a job definition ARN."""
    if is_arn(text):
        arn = parse_arn(text, where)
        if arn.kind != "job-definition":
            raise ClientError(f"{where}: {text[:200]!r} is not a job definition ARN")
        text = arn.resource
    name, sep, rev = text.partition(":")
    if not AWS_NAME.fullmatch(name):
        raise ClientError(f"{where}: {name[:140]!r} is not a job definition name ({NAME_RULE})")
    if not sep:
        return DefinitionRef(name, None)
    if not rev.isdigit() or not 1 <= int(rev) <= 10**9:
        raise ClientError(f"{where}: revision {rev[:20]!r} is not a positive integer")
    return DefinitionRef(name, int(rev))


@dataclass(frozen=True, slots=True)
class JobRef:
    """A job id: the BatchJob's name, with ``index`` for an array child ``<id>:<index>`` or
    ``node`` for a node of a multi-node job ``<id>#<node>`` (AWS's ids)."""

    name: str
    index: int | None = None
    node: int | None = None

    def __str__(self) -> str:
        if self.node is not None:
            return f"{self.name}#{self.node}"
        return self.name if self.index is None else f"{self.name}:{self.index}"


_OBJECT_NAME = re.compile(r"[a-z0-9]([-a-z0-9.]*[a-z0-9])?")


def parse_job_id(
    text: str, region: str, account: str, where: str = "jobId", namespace: str | None = None
) -> JobRef | None:
    """Pure: a job id or job ARN; ``None`` when it cannot name a job of this caller.

    ``<namespace>/<id>`` (the value of ``AWS_BATCH_JOB_ID`` inside kubatch's pods) is accepted
    for the caller's own ``namespace``.
    """
    if namespace is not None and text.startswith(f"{namespace}/"):
        text = text[len(namespace) + 1 :]
    if is_arn(text):
        try:
            arn = parse_arn(text, where)
        except ClientError:
            return None
        if arn.kind != "job" or arn.region != region or arn.account != account:
            return None
        text = arn.resource
    base, hash_sep, node = text.partition("#")
    if hash_sep:
        if not node.isdigit() or len(node) > 4:
            return None
        parent = parse_job_id(base, region, account, where)
        if parent is None or parent.index is not None:
            return None
        return JobRef(parent.name, None, int(node))
    name, sep, idx = text.partition(":")
    if len(name) > 253 or not _OBJECT_NAME.fullmatch(name):
        return None
    if not sep:
        return JobRef(name)
    if not idx.isdigit() or len(idx) > 5:
        return None
    return JobRef(name, int(idx))


def resource_name(text: str, kind: str, region: str, account: str, where: str) -> str:
    """Pure: the AWS name in a name-or-ARN argument of ``kind`` (queue, CE)."""
    if is_arn(text):
        arn = parse_arn(text, where)
        if arn.kind != kind:
            raise ClientError(f"{where}: {text[:200]!r} is not a {kind} ARN")
        if arn.region != region or arn.account != account:
            raise ClientError(f"{where}: {text[:200]!r} belongs to another region or account")
        text = arn.resource
    if not AWS_NAME.fullmatch(text):
        raise ClientError(f"{where}: {text[:140]!r} is not a valid name ({NAME_RULE})")
    return text
