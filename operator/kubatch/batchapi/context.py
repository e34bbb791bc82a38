"""What every operation works with: the caller, the Kubernetes adapter (``KubeApi``), the clock.

Kubernetes errors become protocol errors here: an object the API server refuses (422, 400)
is the client's mistake (``ClientException`` with the server's message); anything else that
fails (a 5xx, a lost connection, a permission the server's ServiceAccount lacks) is ours
(``ServerException``, which the SDKs retry).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from kubatch.adapters.kube import ApiError, Resource
from kubatch.adapters.protocol import KubeApi
from kubatch.batchapi.errors import AuthError, BatchApiError, ClientError, ServerError
from kubatch.batchapi.identity import Identity

JsonDict = dict[str, Any]


def kube_message(exc: ApiError) -> str:
    """Pure: the API server's own message of an error answer."""
    try:
        doc = json.loads(exc.body)
    except (ValueError, TypeError):
        return exc.body[:500]
    if isinstance(doc, dict) and doc.get("message"):
        return str(doc["message"])[:2000]
    return exc.body[:500]


def translate(exc: Exception, what: str) -> BatchApiError:
    """Pure: a Kubernetes failure as the error the client gets."""
    if isinstance(exc, ApiError):
        if exc.status in (400, 422):
            return ClientError(f"{what}: {kube_message(exc)}")
        if exc.status == 409:
            return ClientError(f"{what}: {kube_message(exc)}")
        return ServerError(f"{what}: Kubernetes answered {exc.status} {kube_message(exc)[:300]}")
    return ServerError(f"{what}: Kubernetes is unreachable ({type(exc).__name__})")


KUBE_ERRORS = (ApiError, aiohttp.ClientError, TimeoutError, OSError)


@dataclass
class Context:
    kube: KubeApi
    who: Identity
    region: str
    clock: Callable[[], float] = time.time
    cache: dict[str, Any] = field(default_factory=dict)
    """Per-request memo (queue names, parsed definitions, array children)."""

    @property
    def namespace(self) -> str:
        return self.who.namespace

    @property
    def account(self) -> str:
        return self.who.account

    def require_admin(self, operation: str) -> None:
        if not self.who.admin:
            raise AuthError(
                f"User: {self.who.access_key} is not authorized to perform: batch:{operation} "
                "(an admin key is needed for job queues and compute environments)",
                code="AccessDeniedException",
            )

    async def get(self, res: Resource, name: str, namespace: str | None = None) -> JsonDict | None:
        """The object, or ``None`` when it does not exist."""
        try:
            return await self.kube.get(res, name, namespace)
        except ApiError as exc:
            if exc.status == 404:
                return None
            raise translate(exc, f"reading {res.plural}/{name}") from exc
        except KUBE_ERRORS as exc:
            raise translate(exc, f"reading {res.plural}/{name}") from exc

    async def list(
        self, res: Resource, namespace: str | None = None, labels: str | None = None
    ) -> list[JsonDict]:
        try:
            return await self.kube.list(res, namespace=namespace, labels=labels)
        except KUBE_ERRORS as exc:
            raise translate(exc, f"listing {res.plural}") from exc

    async def create(self, res: Resource, body: JsonDict, namespace: str | None = None) -> JsonDict:
        try:
            return await self.kube.create(res, body, namespace)
        except KUBE_ERRORS as exc:
            raise translate(exc, f"creating {res.plural}") from exc

    async def patch(
        self, res: Resource, name: str, patch: JsonDict, namespace: str | None = None
    ) -> JsonDict:
        try:
            return await self.kube.patch(res, name, patch, namespace)
        except KUBE_ERRORS as exc:
            raise translate(exc, f"changing {res.plural}/{name}") from exc

    async def delete(self, res: Resource, name: str, namespace: str | None = None) -> None:
        try:
            await self.kube.delete(res, name, namespace)
        except KUBE_ERRORS as exc:
            raise translate(exc, f"deleting {res.plural}/{name}") from exc
