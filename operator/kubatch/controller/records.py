"""What the controller keeps per object beyond the scheduling cache.

``JobRecord``: what the effects need of one BatchJob (its resolved pod template, attempts,
the status fields written and those staged for the next write). ``JobBook`` holds the records
and the set of jobs with staged status: every status change is *staged* here and written by
one function (``Effects.flush``, with the pure ``status.patch_for``). ``EventLog`` collects
the Kubernetes Events a user must notice.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from kubatch.core.lifecycle import Phase

JsonDict = dict[str, Any]


def intern_json(value: Any) -> str:
    """Compact JSON, interned: thousands of jobs with equal templates or specs share one
    string instead of each keeping a tree of dicts."""
    return sys.intern(json.dumps(value, sort_keys=True, separators=(",", ":")))


SHARED_CONDITIONS_MAX = 10_000
"""Distinct conditions kept for sharing before the table starts afresh."""


@dataclass(slots=True)
class JobRecord:
    """What the effects need of one BatchJob (the cache holds what the scheduler needs)."""

    namespace: str
    name: str
    uid: str
    generation: int | None
    queue: str
    template_json: str  # the resolved pod template, as interned JSON
    array_size: int | None
    created_at: float
    timeout_seconds: int | None
    spec_json: str = "{}"  # the submitted spec's immutable part, as interned JSON
    attempts: list[JsonDict] = field(default_factory=list)
    written: JsonDict = field(default_factory=dict)  # status fields as last written
    pending: JsonDict = field(default_factory=dict)  # status fields to write next flush
    conditions: list[JsonDict] = field(default_factory=list)
    phase: Phase = Phase.SUBMITTED
    admitted_at: float | None = None
    started_at: float | None = None
    finished: bool = False
    finished_at: float | None = None  # for the queue's retention of finished jobs
    cost: float = 0.0  # estimated dollars of the attempts so far
    notice: str | None = None  # an ignored edit, shown as condition SpecChangeIgnored
    indices: tuple[int, ...] = ()  # a re-run: the original index of each child
    rerun_of: str | None = None
    nodes_json: str = ""  # a multi-node job: its resolved nodeProperties, as interned JSON
    hold_until: float = 0.0  # its Starting status waits for Running until then (Timings)
    refusals: int = 0  # Job creates refused in a row (a quota, RBAC, a namespace being deleted)

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    @property
    def template(self) -> JsonDict:
        """A fresh copy of the resolved pod template."""
        out: JsonDict = json.loads(self.template_json)
        return out

    def ref(self) -> JsonDict:
        """The object reference used for Events."""
        return {
            "apiVersion": "kubatch.io/v1alpha1",
            "kind": "BatchJob",
            "metadata": {"name": self.name, "namespace": self.namespace, "uid": self.uid},
        }

    def attempt(self, number: int) -> JsonDict | None:
        for a in self.attempts:
            if a.get("number") == number:
                return a
        return None


@dataclass(slots=True)
class ObjectNote:
    """A queue's, CE's or definition's validity as last reported (conditions written once
    per change)."""

    generation: int | None
    problems: tuple[str, ...]
    conditions: list[JsonDict] = field(default_factory=list)
    written: bool = False


@dataclass(frozen=True, slots=True)
class EventNote:
    """A Kubernetes Event to post (for what a user must notice)."""

    ref: JsonDict
    type: str
    reason: str
    message: str


class JobBook:
    """The records of the BatchJobs the operator knows, and the staged status changes."""

    __slots__ = ("_conditions", "dirty", "records")

    def __init__(self) -> None:
        self.records: dict[str, JobRecord] = {}
        self.dirty: set[str] = set()
        self._conditions: dict[tuple[tuple[str, Any], ...], JsonDict] = {}

    def shared_conditions(self, conditions: list[JsonDict]) -> list[JsonDict]:
        """The same conditions, each an instance shared by every record with an equal one
        (thousands of waiting jobs written in one second carry equal conditions). Records
        never change a condition in place; they replace the list."""
        if len(self._conditions) > SHARED_CONDITIONS_MAX:
            self._conditions.clear()
        out = []
        for c in conditions:
            try:
                key = tuple(sorted(c.items()))
                out.append(self._conditions.setdefault(key, c))
            except TypeError:  # an unhashable value: kept as it is
                out.append(c)
        return out

    def get(self, key: str) -> JobRecord | None:
        return self.records.get(key)

    def add(self, rec: JobRecord) -> JobRecord:
        self.records[rec.key] = rec
        return rec

    def remove(self, key: str) -> None:
        self.records.pop(key, None)
        self.dirty.discard(key)

    def stage(self, rec: JobRecord, fields: Mapping[str, Any]) -> None:
        """Stage status fields of ``rec`` for the next write (later values win)."""
        rec.pending.update(fields)
        self.dirty.add(rec.key)

    def take_dirty(self) -> set[str]:
        keys, self.dirty = self.dirty, set()
        return keys

    def __len__(self) -> int:
        return len(self.records)


class EventLog:
    """Kubernetes Events waiting to be posted."""

    __slots__ = ("notes",)

    def __init__(self) -> None:
        self.notes: list[EventNote] = []

    def warn(self, ref: JsonDict, reason: str, message: str) -> None:
        self.notes.append(EventNote(ref, "Warning", reason, message))

    def note(self, ref: JsonDict, reason: str, message: str) -> None:
        self.notes.append(EventNote(ref, "Normal", reason, message))

    def take(self, n: int) -> list[EventNote]:
        batch, self.notes = self.notes[:n], self.notes[n:]
        return batch

    def __len__(self) -> int:
        return len(self.notes)


def object_ref(body: Mapping[str, Any]) -> JsonDict:
    """The Event reference of any object."""
    meta = body.get("metadata") or {}
    ref: JsonDict = {
        "apiVersion": body.get("apiVersion", "kubatch.io/v1alpha1"),
        "kind": body.get("kind", ""),
        "metadata": {"name": meta.get("name"), "uid": meta.get("uid")},
    }
    if meta.get("namespace"):
        ref["metadata"]["namespace"] = meta["namespace"]
    return ref
