"""The sim's thin Kubernetes client: aiohttp against the kubeconfig's server, raw JSON dicts.

Why not ``kubernetes_asyncio``: the sim handles thousands of objects per second on a 2-core
machine; deserialising every pod into generated model classes and back costs more CPU and
memory than the sim's whole logic. This client only does what the sim needs (list with
pagination, watch with bookmarks, create, merge-patch, delete) and counts its writes.
"""

from __future__ import annotations

import base64
import json
import os
import ssl
import tempfile
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import yaml

MERGE_PATCH = "application/merge-patch+json"


class KubeError(Exception):
    """A non-2xx answer from the API server."""

    def __init__(self, status: int, body: str, what: str) -> None:
        super().__init__(f"{what}: HTTP {status}: {body[:300]}")
        self.status = status


class WatchExpired(Exception):
    """The watch's resourceVersion is too old (410 Gone): relist."""


@dataclass
class KubeConfig:
    server: str
    token: str | None = None
    ssl: ssl.SSLContext | bool = True
    headers: dict[str, str] = field(default_factory=dict)


def _materialise(data_b64: str | None, path: str | None, base: Path) -> str | None:
    if data_b64:
        f = tempfile.NamedTemporaryFile(delete=False, suffix=".pem")  # noqa: SIM115
        f.write(base64.b64decode(data_b64))
        f.close()
        return f.name
    if path:
        return str((base / path) if not os.path.isabs(path) else Path(path))
    return None


def load_kubeconfig(path: Path | None = None, context: str | None = None) -> KubeConfig:
    """Read server, credentials and TLS settings of a kubeconfig context (default: current)."""
    if path is None:
        env = os.environ.get("KUBECONFIG", "")
        path = Path(env.split(os.pathsep)[0]) if env else Path.home() / ".kube" / "config"
    doc = yaml.safe_load(path.read_text())
    ctx_name = context or doc.get("current-context")
    ctx = next(c["context"] for c in doc["contexts"] if c["name"] == ctx_name)
    cluster = next(c["cluster"] for c in doc["clusters"] if c["name"] == ctx["cluster"])
    user: dict[str, Any] = next(
        (u["user"] for u in doc.get("users") or [] if u["name"] == ctx.get("user")), {}
    )
    base = path.parent
    ssl_ctx: ssl.SSLContext | bool
    if cluster.get("insecure-skip-tls-verify"):
        ssl_ctx = False
    else:
        ca = _materialise(
            cluster.get("certificate-authority-data"), cluster.get("certificate-authority"), base
        )
        ssl_ctx = ssl.create_default_context(cafile=ca) if ca else ssl.create_default_context()
    cert = _materialise(user.get("client-certificate-data"), user.get("client-certificate"), base)
    key = _materialise(user.get("client-key-data"), user.get("client-key"), base)
    if cert and key:
        if not isinstance(ssl_ctx, ssl.SSLContext):
            ssl_ctx = ssl.create_default_context()
            ssl_ctx.check_hostname = False
            ssl_ctx.verify_mode = ssl.CERT_NONE
        ssl_ctx.load_cert_chain(cert, key)
    token = user.get("token")
    if not token and user.get("tokenFile"):
        token = Path(user["tokenFile"]).read_text().strip()
    return KubeConfig(server=str(cluster["server"]).rstrip("/"), token=token, ssl=ssl_ctx)


class Kube:
    """Async raw-JSON client. Create inside a running event loop; ``await close()`` at the end."""

    def __init__(self, config: KubeConfig, max_connections: int = 32) -> None:
        self.config = config
        headers = {"Accept": "application/json", **config.headers}
        if config.token:
            headers["Authorization"] = f"Bearer {config.token}"
        self._session = aiohttp.ClientSession(
            headers=headers,
            connector=aiohttp.TCPConnector(limit=max_connections, ssl=config.ssl),
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=10),
            read_bufsize=2**20,
        )
        self.writes = 0
        self.reads = 0

    async def close(self) -> None:
        await self._session.close()

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        body: Any = None,
        content_type: str = "application/json",
        ok_missing: bool = False,
    ) -> dict[str, Any]:
        """One API call; returns the decoded body. ``ok_missing``: a 404 returns ``{}``."""
        if method != "GET":
            self.writes += 1
        else:
            self.reads += 1
        data = None if body is None else json.dumps(body, separators=(",", ":"))
        headers = {"Content-Type": content_type} if data is not None else None
        async with self._session.request(
            method, self.config.server + path, params=params, data=data, headers=headers
        ) as resp:
            raw = await resp.read()
            if resp.status == 404 and ok_missing:
                return {}
            if resp.status >= 300:
                raise KubeError(resp.status, raw.decode(errors="replace"), f"{method} {path}")
            return json.loads(raw) if raw else {}

    async def get(self, path: str, ok_missing: bool = False) -> dict[str, Any]:
        return await self.request("GET", path, ok_missing=ok_missing)

    async def create(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        return await self.request("POST", path, body=body)

    async def patch(
        self, path: str, body: dict[str, Any], ok_missing: bool = True
    ) -> dict[str, Any]:
        """JSON merge patch (a missing object is not an error by default)."""
        return await self.request(
            "PATCH", path, body=body, content_type=MERGE_PATCH, ok_missing=ok_missing
        )

    async def delete(
        self, path: str, grace_period: int | None = None, ok_missing: bool = True
    ) -> dict[str, Any]:
        body = None
        if grace_period is not None:
            body = {"kind": "DeleteOptions", "apiVersion": "v1", "gracePeriodSeconds": grace_period}
        return await self.request("DELETE", path, body=body, ok_missing=ok_missing)

    async def list(
        self, path: str, params: Mapping[str, str] | None = None, page: int = 500
    ) -> tuple[list[dict[str, Any]], str]:
        """All items of a collection (paginated) and the list's resourceVersion."""
        items: list[dict[str, Any]] = []
        cont = ""
        while True:
            q = {**(params or {}), "limit": str(page)}
            if cont:
                q["continue"] = cont
            doc = await self.request("GET", path, params=q)
            items.extend(doc.get("items") or [])
            meta = doc.get("metadata") or {}
            cont = meta.get("continue") or ""
            if not cont:
                return items, str(meta.get("resourceVersion", ""))

    async def watch(
        self, path: str, resource_version: str, params: Mapping[str, str] | None = None
    ) -> AsyncIterator[tuple[str, dict[str, Any]]]:
        """Stream ``(type, object)`` events from ``resource_version`` until the server closes the
        watch (BOOKMARKs included: they carry the latest resourceVersion). Raises
        :class:`WatchExpired` on 410 Gone."""
        q = {
            **(params or {}),
            "watch": "1",
            "resourceVersion": resource_version,
            "allowWatchBookmarks": "true",
            "timeoutSeconds": "300",
        }
        self.reads += 1
        async with self._session.get(self.config.server + path, params=q) as resp:
            if resp.status == 410:
                raise WatchExpired(path)
            if resp.status >= 300:
                raise KubeError(resp.status, (await resp.read()).decode(errors="replace"), path)
            async for line in resp.content:
                if not line.strip():
                    continue
                ev = json.loads(line)
                etype = ev.get("type", "")
                obj = ev.get("object") or {}
                if etype == "ERROR":
                    if obj.get("code") == 410:
                        raise WatchExpired(path)
                    raise KubeError(int(obj.get("code", 500)), json.dumps(obj), path)
                yield etype, obj
