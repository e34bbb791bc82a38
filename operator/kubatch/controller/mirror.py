"""The mirror: the cluster as a standby's watches last told it.

A standby replica does not decide, so it keeps no scheduling state; it keeps every object the
operator rebuilds its state from — nodes, namespaces, the four kubatch kinds, kubatch's own
Jobs and pods and the records of array children — as the watches deliver them. When it takes
over, :meth:`kubatch.controller.operator.Operator.rebuild` reads the mirror instead of
listing the API server (``source=mirror``): the new leader's state is built in memory, in
well under a second for thousands of jobs, with no list on the critical path.

Ordering: two feeds write here (kopf's watches and kubatch's own list-then-watch loops) and a
fill lists the API server while events arrive, so an object is only ever replaced by a newer
``resourceVersion`` of itself (etcd revisions: integers), and a deletion leaves a tombstone
that an older listed copy cannot undo. ``managedFields`` are dropped (a third of a pod's size,
never read).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from kubatch.adapters.kube import Resource

log = logging.getLogger("kubatch.mirror")
JsonDict = dict[str, Any]
Key = tuple[str, str]  # (namespace or "", name)


def _version(obj: Mapping[str, Any]) -> int | None:
    raw = (obj.get("metadata") or {}).get("resourceVersion")
    try:
        return int(str(raw))
    except (TypeError, ValueError):
        return None


def newer(incoming: Mapping[str, Any], stored: Mapping[str, Any] | None) -> bool:
    """Pure: does ``incoming`` replace ``stored`` (same object)? Yes unless both carry
    comparable resourceVersions and the stored one is later."""
    if stored is None:
        return True
    a, b = _version(incoming), _version(stored)
    return a is None or b is None or a >= b


def selector(text: str | None) -> dict[str, str | None]:
    """Pure: ``a=b,c`` -> {a: b, c: None} (equality and existence: what kubatch selects by)."""
    out: dict[str, str | None] = {}
    for raw in (text or "").split(","):
        part = raw.strip()
        if part:
            k, sep, v = part.partition("=")
            out[k.strip()] = v.strip().lstrip("=") if sep else None
    return out


def selected(obj: Mapping[str, Any], sel: Mapping[str, str | None]) -> bool:
    """Pure: does ``obj`` carry the labels of ``sel``?"""
    labels = (obj.get("metadata") or {}).get("labels") or {}
    return all((k in labels) if v is None else labels.get(k) == v for k, v in sel.items())


def slim(obj: JsonDict) -> JsonDict:
    """The object without what nobody reads (``metadata.managedFields``); a shallow copy."""
    meta = obj.get("metadata")
    if isinstance(meta, dict) and "managedFields" in meta:
        obj = {**obj, "metadata": {k: v for k, v in meta.items() if k != "managedFields"}}
    return obj


def trim_pod(obj: JsonDict) -> JsonDict:
    """Pure: what kubatch reads of one of its pods — metadata (without ``managedFields``),
    the node it was bound to and its status; the rest of the spec (containers, volumes: most
    of a pod's size) is never read again once the Job is made."""
    out: JsonDict = {"metadata": slim(obj).get("metadata") or {}}
    node = (obj.get("spec") or {}).get("nodeName")
    if node:
        out["spec"] = {"nodeName": node}
    if "status" in obj:
        out["status"] = obj["status"]
    return out


def trim_job(obj: JsonDict) -> JsonDict:
    """Pure: what kubatch reads of one of its Kubernetes Jobs — metadata (without
    ``managedFields``) and status (the spec, with its pod template, kubatch wrote itself)."""
    out: JsonDict = {"metadata": slim(obj).get("metadata") or {}}
    if "status" in obj:
        out["status"] = obj["status"]
    return out


TRIMS: dict[str, Callable[[JsonDict], JsonDict]] = {"pods": trim_pod, "jobs": trim_job}
"""By plural: what kubatch's own watches keep of each object (listed or watched)."""


def _key(obj: Mapping[str, Any]) -> Key:
    meta = obj.get("metadata") or {}
    return (str(meta.get("namespace") or ""), str(meta.get("name") or ""))


class Mirror:
    """Objects by kind, newest version only; a ``KubeApi``-like ``list`` for the rebuild."""

    def __init__(self) -> None:
        self._store: dict[str, dict[Key, JsonDict]] = {}
        self._tombstones: dict[str, dict[Key, int]] = {}
        self._synced: set[str] = set()
        self.events = 0
        """Objects fed (events and listed items) since the mirror was made."""

    @staticmethod
    def kind(res: Resource) -> str:
        return f"{res.group}/{res.plural}"

    # ------------------------------------------------------------------ feeding

    def put(self, res: Resource, obj: JsonDict) -> None:
        """An ADDED/MODIFIED object (or a listed one)."""
        kind, key = self.kind(res), _key(obj)
        self.events += 1
        store = self._store.setdefault(kind, {})
        if not newer(obj, store.get(key)):
            return
        gone = self._tombstones.get(kind, {}).get(key)
        version = _version(obj)
        if gone is not None and version is not None and version <= gone:
            return  # a listed copy older than its deletion
        store[key] = slim(obj)

    def delete(self, res: Resource, obj: JsonDict) -> None:
        """A DELETED object: gone, and a tombstone against older copies."""
        kind, key = self.kind(res), _key(obj)
        self.events += 1
        store = self._store.setdefault(kind, {})
        stored = store.get(key)
        if stored is not None and not newer(obj, stored):
            return  # a deletion older than what is stored (a re-created object)
        store.pop(key, None)
        version = _version(obj)
        if version is not None:
            self._tombstones.setdefault(kind, {})[key] = version

    def feed(self, res: Resource, obj: JsonDict, deleted: bool = False) -> None:
        if deleted:
            self.delete(res, obj)
        else:
            self.put(res, obj)

    def fill(self, res: Resource, items: Iterable[JsonDict]) -> None:
        """Listed objects, merged with what events brought meanwhile (newest wins)."""
        for obj in items:
            self.put(res, obj)

    def replace(
        self,
        res: Resource,
        items: Iterable[JsonDict],
        *,
        namespace: str | None = None,
        labels: str | None = None,
    ) -> None:
        """A complete list from the one watch that feeds this kind (``on_sync``): it is the
        truth for its scope — objects it lacks were deleted while the watch was down."""
        kind = self.kind(res)
        store = self._store.setdefault(kind, {})
        sel = selector(labels)
        for key in [k for k, o in store.items()
                    if (namespace is None or k[0] == namespace) and selected(o, sel)]:  # fmt: skip
            del store[key]
        for obj in items:
            self.put(res, obj)
        self._synced.add(kind)

    def mark_synced(self, res: Resource) -> None:
        self._synced.add(self.kind(res))

    def synced(self, kinds: Iterable[Resource]) -> bool:
        """Whether each of ``kinds`` has had a complete list since the mirror was cleared."""
        return all(self.kind(r) in self._synced for r in kinds)

    def clear(self) -> None:
        """Forget everything (a new leader drops its mirror; a demoted one refills it)."""
        self._store.clear()
        self._tombstones.clear()
        self._synced.clear()

    def drop_tombstones(self) -> None:
        """After a fill: deletions no longer race with listed copies."""
        self._tombstones.clear()

    def count(self, res: Resource | None = None) -> int:
        if res is not None:
            return len(self._store.get(self.kind(res), {}))
        return sum(len(s) for s in self._store.values())

    # ------------------------------------------------------------------ reading

    def get(self, res: Resource, name: str, namespace: str | None = None) -> JsonDict | None:
        """One object as the watches last delivered it (None: not seen, or deleted)."""
        return self._store.get(self.kind(res), {}).get((namespace or "", name))

    async def list(
        self, res: Resource, *, namespace: str | None = None, labels: str | None = None
    ) -> list[JsonDict]:
        """What ``KubeApi.list`` would answer, from memory (for ``Operator.rebuild``)."""
        sel = selector(labels)
        return [
            o
            for (ns, _), o in self._store.get(self.kind(res), {}).items()
            if (namespace is None or not res.namespaced or ns == namespace) and selected(o, sel)
        ]
