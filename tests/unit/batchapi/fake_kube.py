"""A hand-written fake of the Kubernetes adapter (the part the AWS Batch API uses).

Objects live in a dict; ``create`` fills uid, generation, resourceVersion and
creationTimestamp; ``patch`` is an RFC 7386 merge patch that honours a
``metadata.resourceVersion`` precondition (409) and bumps ``generation`` on spec changes,
like the API server.
"""

from __future__ import annotations

import copy
import itertools
import uuid
from datetime import UTC, datetime
from typing import Any

from kubatch.adapters.fake import matches, parse_selector
from kubatch.adapters.kube import ApiError, Resource

JsonDict = dict[str, Any]


def merge(base: Any, patch: Any) -> Any:
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = dict(base) if isinstance(base, dict) else {}
    for k, v in patch.items():
        if v is None:
            out.pop(k, None)
        else:
            out[k] = merge(out.get(k), v)
    return out


class FakeKube:
    def __init__(self) -> None:
        self.objects: dict[tuple[str, str, str], JsonDict] = {}
        self.versions = itertools.count(1)
        self.writes: list[tuple[str, str]] = []
        self.fail_next: ApiError | None = None

    def _key(self, res: Resource, name: str, namespace: str | None) -> tuple[str, str, str]:
        return (res.plural, (namespace or "") if res.namespaced else "", name)

    def _maybe_fail(self) -> None:
        if self.fail_next is not None:
            err, self.fail_next = self.fail_next, None
            raise err

    async def list(
        self, res: Resource, *, namespace: str | None = None, labels: str | None = None
    ) -> list[JsonDict]:
        self._maybe_fail()
        want = parse_selector(labels)
        out = []
        for (plural, ns, _), obj in sorted(self.objects.items()):
            if plural != res.plural or (res.namespaced and namespace and ns != namespace):
                continue
            if matches(obj, want):
                out.append(copy.deepcopy(obj))
        return out

    async def get(self, res: Resource, name: str, namespace: str | None = None) -> JsonDict:
        self._maybe_fail()
        obj = self.objects.get(self._key(res, name, namespace))
        if obj is None:
            raise ApiError(404, "Not Found", '{"message": "not found"}')
        return copy.deepcopy(obj)

    async def create(self, res: Resource, body: JsonDict, namespace: str | None = None) -> JsonDict:
        self._maybe_fail()
        meta = body.get("metadata") or {}
        ns = namespace or meta.get("namespace")
        key = self._key(res, meta["name"], ns)
        if key in self.objects:
            raise ApiError(409, "Conflict", '{"message": "already exists"}')
        obj = copy.deepcopy(body)
        obj["metadata"].update(
            uid=str(uuid.uuid4()),
            generation=1,
            resourceVersion=str(next(self.versions)),
            creationTimestamp=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        )
        if res.namespaced:
            obj["metadata"]["namespace"] = ns
        self.objects[key] = obj
        self.writes.append(("create", res.plural))
        return copy.deepcopy(obj)

    async def patch(
        self,
        res: Resource,
        name: str,
        patch: JsonDict,
        namespace: str | None = None,
        *,
        status: bool = False,
    ) -> JsonDict:
        self._maybe_fail()
        key = self._key(res, name, namespace)
        obj = self.objects.get(key)
        if obj is None:
            raise ApiError(404, "Not Found", '{"message": "not found"}')
        want = (patch.get("metadata") or {}).get("resourceVersion")
        if want is not None and want != obj["metadata"]["resourceVersion"]:
            raise ApiError(409, "Conflict", '{"message": "the object has been modified"}')
        new = merge(obj, patch)
        if new.get("spec") != obj.get("spec"):
            new["metadata"]["generation"] = obj["metadata"]["generation"] + 1
        new["metadata"]["resourceVersion"] = str(next(self.versions))
        self.objects[key] = new
        self.writes.append(("patch", res.plural))
        return copy.deepcopy(new)

    async def delete(
        self, res: Resource, name: str, namespace: str | None = None, *, background: bool = True
    ) -> None:
        self._maybe_fail()
        self.objects.pop(self._key(res, name, namespace), None)
        self.writes.append(("delete", res.plural))

    async def watch(self, *args: Any, **kwargs: Any) -> None:  # the API never watches
        raise AssertionError("the AWS Batch API does not watch")

    async def close(self) -> None:
        return None
