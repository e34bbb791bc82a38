"""FakeKube: an in-memory Kubernetes API for component tests (cosmicpython's fake repository,
controller-runtime's fake client).

It implements ``KubeApi`` with the API server's behaviour that kubatch relies on: names are
unique per namespace (``409`` on a second create), ``metadata.generation`` moves only when the
spec changes, the ``status`` subresource is patched on its own (JSON merge patch; ``null``
removes a field), deleting an object deletes what it owns (garbage collection, simplified),
list and watch take equality label selectors. It also lets a test

- see every write (``writes``) and count them per object,
- make chosen writes fail (``fail``: an ``ApiError`` or ``OSError`` for matching calls),
- hold watch events and deliver them later, in any order (``hold`` / ``deliver``),
- check calls against a declared table of allowed (verb, resource) pairs (``allowed``: see
  :mod:`kubatch.adapters.calls`; anything else raises ``UndeclaredCall``).
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import itertools
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from kubatch.adapters.calls import UndeclaredCall
from kubatch.adapters.kube import ApiError, Resource
from kubatch.adapters.protocol import Listed, OnEvent, OnSync, Trim

JsonDict = dict[str, Any]
Key = tuple[str, str | None, str]  # (resource path key, namespace, name)


@dataclass(frozen=True, slots=True)
class Write:
    """One write the code under test made (failed ones too: each one costs a request)."""

    verb: str  # create | patch | delete
    resource: str  # plural, "/status" for the status subresource
    namespace: str | None
    name: str
    body: JsonDict | None


@dataclass(slots=True)
class Failure:
    """Make matching calls fail: ``times`` of them (``None``: all), with ``error``."""

    verb: str
    resource: str
    error: Exception
    name: str | None = None
    times: int | None = 1


@dataclass(slots=True)
class _Watcher:
    res: Resource
    namespace: str | None
    labels: dict[str, str]
    on_event: OnEvent
    on_sync: OnSync | None = None


@dataclass(slots=True)
class _Held:
    res: Resource
    kind: str
    obj: JsonDict
    targets: list[OnEvent] = field(default_factory=list)


def _trimmed(
    on_event: OnEvent, on_sync: OnSync | None, trim: Trim
) -> tuple[OnEvent, OnSync | None]:
    def event(kind: str, obj: JsonDict) -> None:
        on_event(kind, trim(obj))

    def sync(items: list[JsonDict]) -> None:
        assert on_sync is not None
        on_sync([trim(o) for o in items])

    return event, (sync if on_sync is not None else None)


def parse_selector(text: str | None) -> dict[str, str]:
    """``a=b,c=d`` (equality only; ``k`` alone means "has the label")."""
    out: dict[str, str] = {}
    for raw in (text or "").split(","):
        part = raw.strip()
        if not part:
            continue
        k, sep, v = part.partition("=")
        out[k.strip()] = v.strip().lstrip("=") if sep else "\0any"
    return out


def matches(obj: Mapping[str, Any], selector: Mapping[str, str]) -> bool:
    labels = (obj.get("metadata") or {}).get("labels") or {}
    return all((k in labels) if v == "\0any" else labels.get(k) == v for k, v in selector.items())


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, Mapping):
        return copy.deepcopy(patch)
    out = dict(target) if isinstance(target, Mapping) else {}
    for k, v in patch.items():
        if v is None:
            out.pop(k, None)
        else:
            out[k] = merge_patch(out.get(k), v)
    return out


def _res_key(res: Resource) -> str:
    return f"{res.group}/{res.plural}"


class FakeKube:
    """An in-memory API server implementing ``KubeApi``."""

    def __init__(
        self,
        *,
        clock: Callable[[], str] | None = None,
        allowed: Iterable[tuple[str, str]] | None = None,
    ) -> None:
        self.objects: dict[Key, JsonDict] = {}
        self.writes: list[Write] = []
        self.failures: list[Failure] = []
        self.allowed = set(allowed) if allowed is not None else None
        self.calls: list[tuple[str, str]] = []
        self._watchers: list[_Watcher] = []
        self._rv = itertools.count(1)
        self.version = 0
        """The latest resourceVersion given out (what a list is "at")."""
        self._clock = clock or (lambda: "2026-01-01T00:00:00Z")
        self.holding = False
        self.held: list[_Held] = []

    # ------------------------------------------------------------------ test controls

    def fail(
        self,
        verb: str,
        resource: str,
        *,
        status: int = 500,
        name: str | None = None,
        times: int | None = 1,
        error: Exception | None = None,
    ) -> None:
        """The next ``times`` matching calls fail (HTTP ``status``, or ``error``)."""
        err = error or ApiError(status, "injected", f"injected failure of {verb} {resource}")
        self.failures.append(Failure(verb, resource, err, name, times))

    def hold(self) -> None:
        """Keep watch events until ``deliver``."""
        self.holding = True

    def deliver(self, order: Callable[[list[_Held]], Iterable[_Held]] | None = None) -> int:
        """Deliver held events (in ``order(events)``, default as they happened); returns how
        many were delivered. Events stay held no longer."""
        self.holding = False
        batch, self.held = self.held, []
        n = 0
        for h in order(batch) if order else batch:
            for cb in h.targets:
                cb(h.kind, copy.deepcopy(h.obj))
            n += 1
        return n

    def writes_to(self, name: str, resource: str | None = None) -> list[Write]:
        return [w for w in self.writes if w.name == name and (resource in (None, w.resource))]

    def get_object(self, res: Resource, name: str, namespace: str | None = None) -> JsonDict | None:
        obj = self.objects.get((_res_key(res), namespace if res.namespaced else None, name))
        return copy.deepcopy(obj) if obj is not None else None

    def stored(self, res: Resource, name: str, namespace: str | None = None) -> JsonDict:
        """The stored object itself, for a test that plays another writer: what it changes
        in place is seen by the next read, by no watcher (``KeyError`` when absent)."""
        return self.objects[(_res_key(res), namespace if res.namespaced else None, name)]

    def all(self, res: Resource, namespace: str | None = None) -> list[JsonDict]:
        return [
            copy.deepcopy(o)
            for (rk, ns, _), o in sorted(self.objects.items(), key=lambda kv: kv[0])
            if rk == _res_key(res) and (namespace is None or ns == namespace)
        ]

    def put(self, res: Resource, obj: JsonDict) -> JsonDict:
        """What ``kubectl apply`` does: create or update (spec changes bump the generation);
        not counted as a write of the code under test."""
        ns = obj.get("metadata", {}).get("namespace") if res.namespaced else None
        name = obj["metadata"]["name"]
        key = (_res_key(res), ns, name)
        old = self.objects.get(key)
        if old is None:
            return self._create(res, obj, ns)
        new = copy.deepcopy(old)
        for part in ("spec", "data"):
            if part in obj:
                new[part] = copy.deepcopy(obj[part])
        meta = new["metadata"]
        for mk in ("labels", "annotations"):
            if mk in obj["metadata"]:
                meta[mk] = copy.deepcopy(obj["metadata"][mk])
        if "status" in obj:
            new["status"] = copy.deepcopy(obj["status"])
        if new.get("spec") != old.get("spec"):
            meta["generation"] = int(meta.get("generation", 1)) + 1
        return self._store(res, key, new, "MODIFIED")

    def remove(self, res: Resource, name: str, namespace: str | None = None) -> None:
        """What ``kubectl delete`` does (not counted as a write of the code under test)."""
        self._delete(res, name, namespace if res.namespaced else None)

    # ------------------------------------------------------------------ KubeApi

    async def list(
        self,
        res: Resource,
        *,
        namespace: str | None = None,
        labels: str | None = None,
        cached: bool = False,
    ) -> list[JsonDict]:
        self._call("list", res)
        await asyncio.sleep(0)
        self._maybe_fail("list", res.plural, "")
        sel = parse_selector(labels)
        return [o for o in self.all(res, namespace) if matches(o, sel)]

    async def list_with_version(
        self,
        res: Resource,
        *,
        namespace: str | None = None,
        labels: str | None = None,
        cached: bool = False,
        trim: Callable[[JsonDict], JsonDict] | None = None,
    ) -> Listed:
        items = await self.list(res, namespace=namespace, labels=labels, cached=cached)
        return (items if trim is None else [trim(x) for x in items]), str(self.version)

    async def catch_up(
        self,
        res: Resource,
        resource_version: str,
        on_event: OnEvent,
        *,
        namespace: str | None = None,
        seconds: int = 1,
    ) -> None:
        """Nothing to catch up with: the fake's watches see every change as it happens."""
        self._call("watch", res)
        await asyncio.sleep(0)

    async def get(self, res: Resource, name: str, namespace: str | None = None) -> JsonDict:
        self._call("get", res)
        await asyncio.sleep(0)
        self._maybe_fail("get", res.plural, name)
        obj = self.get_object(res, name, namespace)
        if obj is None:
            raise ApiError(404, "Not Found", f"{res.plural} {name!r} not found")
        return obj

    async def create(self, res: Resource, body: JsonDict, namespace: str | None = None) -> JsonDict:
        self._call("create", res)
        await asyncio.sleep(0)
        ns = (namespace or body.get("metadata", {}).get("namespace")) if res.namespaced else None
        meta = body.get("metadata") or {}
        name = meta.get("name") or f"{meta.get('generateName', 'obj-')}{uuid.uuid4().hex[:5]}"
        self.writes.append(Write("create", res.plural, ns, name, copy.deepcopy(body)))
        self._maybe_fail("create", res.plural, name)
        if (_res_key(res), ns, name) in self.objects:
            raise ApiError(409, "Conflict", f"{res.plural} {name!r} already exists")
        obj = copy.deepcopy(body)
        obj.setdefault("metadata", {})["name"] = name
        return self._create(res, obj, ns)

    async def patch(
        self,
        res: Resource,
        name: str,
        patch: JsonDict,
        namespace: str | None = None,
        *,
        status: bool = False,
    ) -> JsonDict:
        plural = res.plural + ("/status" if status else "")
        self._call("patch", res, sub="status" if status else "")
        await asyncio.sleep(0)
        ns = namespace if res.namespaced else None
        self.writes.append(Write("patch", plural, ns, name, copy.deepcopy(patch)))
        self._maybe_fail("patch", plural, name)
        key = (_res_key(res), ns, name)
        old = self.objects.get(key)
        if old is None:
            raise ApiError(404, "Not Found", f"{res.plural} {name!r} not found")
        want = (patch.get("metadata") or {}).get("resourceVersion")
        if want is not None and str(want) != str(old["metadata"].get("resourceVersion")):
            # a precondition, as the API server takes it: the object changed meanwhile
            raise ApiError(409, "Conflict", f"{res.plural} {name!r}: the object has been "
                           "modified; please apply your changes to the latest version")  # fmt: skip
        if status:
            bad = _empty_or_null_in_lists(patch.get("status"))
            if bad:  # what a 1.20 API server does with "" and null there (checked on one)
                raise ApiError(422, "Unprocessable Entity", f"status.{bad}: Invalid value: null")
            new = copy.deepcopy(old)
            st = merge_patch(old.get("status") or {}, patch.get("status") or {})
            new["status"] = st
        else:
            new = merge_patch(old, {k: v for k, v in patch.items() if k != "status"})
            if new.get("spec") != old.get("spec"):
                new["metadata"]["generation"] = int(old["metadata"].get("generation", 1)) + 1
        return copy.deepcopy(self._store(res, key, new, "MODIFIED"))

    async def delete(
        self, res: Resource, name: str, namespace: str | None = None, *, background: bool = True
    ) -> None:
        self._call("delete", res)
        await asyncio.sleep(0)
        ns = namespace if res.namespaced else None
        self.writes.append(Write("delete", res.plural, ns, name, None))
        self._maybe_fail("delete", res.plural, name)
        self._delete(res, name, ns)

    async def watch(
        self,
        res: Resource,
        on_event: OnEvent,
        *,
        namespace: str | None = None,
        labels: str | None = None,
        timeout_seconds: int = 300,
        on_sync: OnSync | None = None,
        trim: Trim | None = None,
    ) -> None:
        self._call("watch", res)
        sel = parse_selector(labels)
        if trim is not None:  # as the real watch: each object shaped before it is handed over
            on_event, on_sync = _trimmed(on_event, on_sync, trim)
        watcher = _Watcher(res, namespace, sel, on_event, on_sync)
        self._list_to(watcher)
        self._watchers.append(watcher)
        try:
            await asyncio.Event().wait()  # until cancelled
        finally:
            with contextlib.suppress(ValueError):
                self._watchers.remove(watcher)

    def _list_to(self, w: _Watcher) -> None:
        items = [o for o in self.all(w.res, w.namespace) if matches(o, w.labels)]
        if w.on_sync is not None:
            w.on_sync(items)
        else:
            for obj in items:
                w.on_event("ADDED", obj)

    def relist(self) -> int:
        """What a watch does after it was down (e.g. ``410 Gone``): every watch that takes
        complete lists (``on_sync``) gets one now; events held meanwhile are dropped (the
        watch was not there to see them). Returns how many watches relisted."""
        self.held = [h for h in self.held if not any(
            w.on_sync is not None and w.on_event in h.targets for w in self._watchers)]  # fmt: skip
        n = 0
        for w in list(self._watchers):
            if w.on_sync is not None:
                self._list_to(w)
                n += 1
        return n

    def subscribe(self, res: Resource, on_event: OnEvent, *, namespace: str | None = None) -> None:
        """A synchronous watch without the initial list (what the kopf layer does for the
        operator's own kinds in component tests)."""
        self._watchers.append(_Watcher(res, namespace, {}, on_event))

    async def close(self) -> None:
        return None

    # ------------------------------------------------------------------ internals

    def _call(self, verb: str, res: Resource, sub: str = "") -> None:
        plural = res.plural + (f"/{sub}" if sub else "")
        self.calls.append((verb, plural))
        if self.allowed is not None and (verb, plural) not in self.allowed:
            raise UndeclaredCall(f"undeclared API call: {verb} {plural}")

    def _maybe_fail(self, verb: str, resource: str, name: str) -> None:
        for f in self.failures:
            if f.verb == verb and f.resource == resource and f.name in (None, name):
                if f.times is not None:
                    f.times -= 1
                    if f.times <= 0:
                        self.failures.remove(f)
                raise f.error

    def _create(self, res: Resource, obj: JsonDict, ns: str | None) -> JsonDict:
        obj = copy.deepcopy(obj)
        meta = obj.setdefault("metadata", {})
        if ns is not None:
            meta["namespace"] = ns
        meta.setdefault("uid", str(uuid.uuid4()))
        meta.setdefault("creationTimestamp", self._clock())
        meta["generation"] = 1
        key = (_res_key(res), ns, meta["name"])
        return copy.deepcopy(self._store(res, key, obj, "ADDED"))

    def _store(self, res: Resource, key: Key, obj: JsonDict, kind: str) -> JsonDict:
        self.version = next(self._rv)
        obj["metadata"]["resourceVersion"] = str(self.version)
        self.objects[key] = obj
        self._emit(res, kind, obj)
        return obj

    def _delete(self, res: Resource, name: str, ns: str | None) -> None:
        obj = self.objects.pop((_res_key(res), ns, name), None)
        if obj is None:
            return
        self._emit(res, "DELETED", obj)
        uid = obj["metadata"].get("uid")
        owned = [
            k
            for k, o in self.objects.items()
            if any(r.get("uid") == uid for r in o["metadata"].get("ownerReferences") or [])
        ]
        for rk, ons, oname in owned:
            dependent = self.objects.get((rk, ons, oname))
            if dependent is not None:
                group, plural = rk.split("/", 1)
                self._delete(_by_key(group, plural), oname, ons)

    def _emit(self, res: Resource, kind: str, obj: JsonDict) -> None:
        ns = obj["metadata"].get("namespace")
        targets = [
            w.on_event
            for w in self._watchers
            if _res_key(w.res) == _res_key(res)
            and (w.namespace is None or w.namespace == ns)
            and matches(obj, w.labels)
        ]
        if not targets:
            return
        if self.holding:
            self.held.append(_Held(res, kind, copy.deepcopy(obj), targets))
            return
        for cb in targets:
            cb(kind, copy.deepcopy(obj))


def _empty_or_null_in_lists(value: Any, path: str = "") -> str | None:
    """The first field an API server would reject: an empty string anywhere (it becomes
    ``null``), or a ``null`` inside a list's objects."""
    if value == "":
        return path or "(root)"
    if isinstance(value, Mapping):
        for k, v in value.items():
            found = _empty_or_null_in_lists(v, f"{path}.{k}" if path else str(k))
            if found:
                return found
    if isinstance(value, list):
        for i, item in enumerate(value):
            if isinstance(item, Mapping) and any(v is None for v in item.values()):
                return f"{path}[{i}]"
            found = _empty_or_null_in_lists(item, f"{path}[{i}]")
            if found:
                return found
    return None


def _by_key(group: str, plural: str) -> Resource:
    from kubatch.adapters import kube

    for value in vars(kube).values():
        if isinstance(value, Resource) and value.group == group and value.plural == plural:
            return value
    return Resource(group, "v1", plural)
