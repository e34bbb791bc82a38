"""What the controller needs of the Kubernetes API: a small protocol.

``kubatch.adapters.kube.Kube`` (raw JSON over aiohttp) implements it against a real API
server; ``kubatch.adapters.fake.FakeKube`` implements it in memory for component tests.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from kubatch.adapters.kube import Resource

JsonDict = dict[str, Any]
Listed = tuple[list[JsonDict], str]
"""A list's objects and its resourceVersion."""
OnEvent = Callable[[str, JsonDict], None]
"""``on_event(type, object)`` with type ADDED, MODIFIED or DELETED."""
OnSync = Callable[[list[JsonDict]], None]
"""``on_sync(items)``: a complete list (the first, and every relist after the watch was down)."""
Trim = Callable[[JsonDict], JsonDict]
"""``trim(object)``: the part of an object a watcher keeps (applied to each listed object as
its page arrives, and to each event), so that a large list is never held whole."""


class KubeApi(Protocol):
    """The verbs kubatch uses. Errors are ``kubatch.adapters.kube.ApiError`` (HTTP status),
    ``OSError`` or ``TimeoutError`` (the connection)."""

    async def list(
        self,
        res: Resource,
        *,
        namespace: str | None = None,
        labels: str | None = None,
        cached: bool = False,
    ) -> list[JsonDict]:
        """``cached``: the list may be a moment old (served from the API server's watch
        cache); see ``Kube.list_with_version``."""
        ...

    async def get(self, res: Resource, name: str, namespace: str | None = None) -> JsonDict: ...

    async def create(
        self, res: Resource, body: JsonDict, namespace: str | None = None
    ) -> JsonDict: ...

    async def patch(
        self,
        res: Resource,
        name: str,
        patch: JsonDict,
        namespace: str | None = None,
        *,
        status: bool = False,
    ) -> JsonDict: ...

    async def delete(
        self, res: Resource, name: str, namespace: str | None = None, *, background: bool = True
    ) -> None: ...

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
    ) -> None: ...

    async def list_with_version(
        self,
        res: Resource,
        *,
        namespace: str | None = None,
        labels: str | None = None,
        cached: bool = False,
        trim: Callable[[JsonDict], JsonDict] | None = None,
    ) -> Listed:
        """``list`` and the list's resourceVersion (where a watch, or ``catch_up``, resumes);
        ``trim``: what is kept of each object (applied as each is decoded)."""
        ...

    async def catch_up(
        self,
        res: Resource,
        resource_version: str,
        on_event: OnEvent,
        *,
        namespace: str | None = None,
        seconds: int = 1,
    ) -> None:
        """The events of ``res`` since ``resource_version`` (a list's), handed to
        ``on_event`` as they come, for about ``seconds``: what changed between a list and a
        watch that starts later. Raises like ``list``."""
        ...

    async def close(self) -> None: ...
