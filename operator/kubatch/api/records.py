"""The record of an array's children: its format, shared by the operator (which writes it)
and the kubectl plugin and other readers.

Pure. Each ConfigMap ``<job>-children-<k>`` (owned by the BatchJob, labels
``kubatch.io/array-record`` and ``kubatch.io/batchjob=<job>``) holds children ``k*1000`` to
``k*1000+999`` as tab-separated rows under the key ``children.tsv``, one per child, with the
columns of ``COLUMNS``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from kubatch.core.lifecycle import Phase

CHUNK = 1000
"""Children per record ConfigMap."""
NO_EXIT = -(2**31)
COLUMNS = (
    "index", "phase", "attempts", "failures", "interruptions", "exitCode", "reason", "node",
    "computeEnvironment", "message",
)  # fmt: skip
HEADER = "\t".join(COLUMNS)
DATA_KEY = "children.tsv"
PHASES = tuple(Phase)


def chunk_name(job_name: str, chunk: int) -> str:
    """Pure: the ConfigMap holding children ``chunk*1000`` to ``chunk*1000+999``."""
    suffix = f"-children-{chunk}"
    return job_name[: 253 - len(suffix)] + suffix


def clean(text: str | None) -> str:
    return (text or "").replace("\t", " ").replace("\n", " ")[:300]


@dataclass(frozen=True, slots=True)
class ChildRow:
    """One child as its record says."""

    index: int
    phase: Phase
    attempts: int
    failures: int
    interruptions: int
    exit_code: int | None
    reason: str
    node: str
    compute_environment: str
    message: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "phase": str(self.phase),
            "attempts": self.attempts,
            "exitCode": self.exit_code,
            "reason": self.reason or None,
            "node": self.node or None,
            "computeEnvironment": self.compute_environment or None,
            "message": self.message or None,
        }


def parse_rows(text: str) -> Iterator[ChildRow]:
    """Pure: the rows of one chunk (malformed rows are skipped)."""
    for line in text.splitlines()[1:]:
        cols = line.split("\t")
        if len(cols) != len(COLUMNS):
            continue
        try:
            yield ChildRow(
                index=int(cols[0]),
                phase=Phase(cols[1]),
                attempts=int(cols[2]),
                failures=int(cols[3]),
                interruptions=int(cols[4]),
                exit_code=int(cols[5]) if cols[5] else None,
                reason=cols[6],
                node=cols[7],
                compute_environment=cols[8],
                message=cols[9],
            )
        except ValueError:
            continue


def configmap(
    namespace: str, job_name: str, uid: str, chunk: int, text: str, labels: Mapping[str, str]
) -> dict[str, Any]:
    """Pure: the ConfigMap of one chunk, owned by its BatchJob."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": chunk_name(job_name, chunk),
            "namespace": namespace,
            "labels": dict(labels),
            "ownerReferences": [
                {
                    "apiVersion": "kubatch.io/v1alpha1",
                    "kind": "BatchJob",
                    "name": job_name,
                    "uid": uid,
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "data": {DATA_KEY: text},
    }
