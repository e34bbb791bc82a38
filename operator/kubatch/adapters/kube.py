"""The Kubernetes API behind a small async interface: raw JSON over one aiohttp session.

Why not the generated client models: the operator moves thousands of small objects per
second and keeps only what it needs of them; parsing every response into generated model
classes costs CPU and memory for nothing. Configuration (kubeconfig or in-cluster, tokens,
certificates, exec plugins) still comes from ``kubernetes_asyncio.config``, so every way of
logging in that kubectl supports works. See docs/decisions/0003-kubernetes-client.md.
"""

from __future__ import annotations

import asyncio
import json
import logging
import ssl
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

import aiohttp

log = logging.getLogger("kubatch.kube")
JsonDict = dict[str, Any]
WriteHook = Callable[[str, str], None]

MERGE_PATCH = "application/merge-patch+json"
VERBS = {"POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}
"""HTTP method -> Kubernetes verb (the ``verb`` label of the API-writes counter)."""


class ApiError(RuntimeError):
    """A non-2xx answer from the API server."""

    def __init__(self, status: int, reason: str, body: str) -> None:
        super().__init__(f"{status} {reason}: {body[:500]}")
        self.status = status
        self.reason = reason
        self.body = body

    @property
    def not_found(self) -> bool:
        return self.status == 404

    @property
    def conflict(self) -> bool:
        return self.status == 409


@dataclass(frozen=True)
class Resource:
    """A resource's URL parts: ``group`` '' for the core API."""

    group: str
    version: str
    plural: str
    namespaced: bool = True

    def path(self, namespace: str | None = None, name: str | None = None, sub: str = "") -> str:
        base = f"/api/{self.version}" if not self.group else f"/apis/{self.group}/{self.version}"
        if self.namespaced and namespace:
            base += f"/namespaces/{quote(namespace)}"
        base += f"/{self.plural}"
        if name:
            base += f"/{quote(name)}"
        if sub:
            base += f"/{sub}"
        return base


JOBS = Resource("batch", "v1", "jobs")
PODS = Resource("", "v1", "pods")
NODES = Resource("", "v1", "nodes", namespaced=False)
NAMESPACES = Resource("", "v1", "namespaces", namespaced=False)
EVENTS = Resource("", "v1", "events")
CONFIGMAPS = Resource("", "v1", "configmaps")
BATCHJOBS = Resource("kubatch.io", "v1alpha1", "batchjobs")
JOBDEFINITIONS = Resource("kubatch.io", "v1alpha1", "jobdefinitions")
JOBQUEUES = Resource("kubatch.io", "v1alpha1", "jobqueues", namespaced=False)
COMPUTEENVIRONMENTS = Resource("kubatch.io", "v1alpha1", "computeenvironments", namespaced=False)


class Kube:
    """One connection pool to the API server; every write is counted through ``on_write``."""

    def __init__(self, config: Any, *, on_write: WriteHook | None = None, limit: int = 64) -> None:
        self._config = config
        self._on_write = on_write
        self._limit = limit
        self._session: aiohttp.ClientSession | None = None
        self.host: str = str(config.host).rstrip("/")

    @classmethod
    async def from_environment(
        cls, kubeconfig: str | None = None, *, on_write: WriteHook | None = None
    ) -> Kube:
        """Log in like kubectl: in-cluster service account, else the kubeconfig."""
        from kubernetes_asyncio import client, config

        cfg = client.Configuration()
        try:
            if kubeconfig:
                raise config.ConfigException("kubeconfig given")
            config.load_incluster_config(client_configuration=cfg)  # type: ignore[no-untyped-call]
        except config.ConfigException:
            await config.load_kube_config(config_file=kubeconfig, client_configuration=cfg)
        return cls(cfg, on_write=on_write)

    def _ssl(self) -> ssl.SSLContext | bool:
        cfg = self._config
        if not self.host.startswith("https"):
            return False
        ctx = ssl.create_default_context(cafile=cfg.ssl_ca_cert or None)
        if cfg.cert_file:
            ctx.load_cert_chain(cfg.cert_file, cfg.key_file)
        if not cfg.verify_ssl:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        return ctx

    async def _headers(self) -> dict[str, str]:
        cfg = self._config
        hook = getattr(cfg, "refresh_api_key_hook", None)
        if hook is not None:
            result = hook(cfg)
            if asyncio.iscoroutine(result):
                await result
        headers = {"Accept": "application/json"}
        token = None
        for name in ("BearerToken", "authorization"):
            value = cfg.get_api_key_with_prefix(name)
            if asyncio.iscoroutine(value):
                value = await value
            if value:
                token = str(value)
                break
        if token:
            headers["Authorization"] = token if " " in token else f"Bearer {token}"
        return headers

    async def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(limit=self._limit, ssl=self._ssl())
            self._session = aiohttp.ClientSession(
                connector=connector,
                timeout=aiohttp.ClientTimeout(total=60),
                read_bufsize=2**22,  # watch events are one JSON line each
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def request(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        params: Mapping[str, str] | None = None,
        content_type: str = "application/json",
        resource: str = "",
    ) -> JsonDict:
        session = await self.session()
        url = self.host + path + (f"?{urlencode(params)}" if params else "")
        headers = await self._headers()
        data = None
        if body is not None:
            headers["Content-Type"] = content_type
            data = json.dumps(body, separators=(",", ":"))
        if method != "GET" and self._on_write is not None:
            self._on_write(VERBS.get(method, method.lower()), resource or path.rsplit("/", 2)[-2])
        async with session.request(method, url, data=data, headers=headers) as resp:
            text = await resp.text()
            if resp.status >= 400:
                raise ApiError(resp.status, resp.reason or "", text)
            return json.loads(text) if text else {}

    # -- conveniences ----------------------------------------------------------------------

    async def list(
        self, res: Resource, *, namespace: str | None = None, labels: str | None = None
    ) -> list[JsonDict]:
        """Every object of a kind (paginated), as raw dicts with kind/apiVersion filled."""
        items: list[JsonDict] = []
        params: dict[str, str] = {"limit": "500"}
        if labels:
            params["labelSelector"] = labels
        while True:
            page = await self.request("GET", res.path(namespace), params=params)
            items.extend(page.get("items") or [])
            token = (page.get("metadata") or {}).get("continue")
            if not token:
                return items
            params["continue"] = token

    async def watch(
        self,
        res: Resource,
        on_event: Callable[[str, JsonDict], None],
        *,
        namespace: str | None = None,
        labels: str | None = None,
        timeout_seconds: int = 300,
    ) -> None:
        """List, then watch ``res`` for ever (server-side ``labelSelector``), calling
        ``on_event(type, object)``; re-lists when the server says the version is gone (410).

        Unlike a client-side filter, objects that do not match never cross the wire.
        """
        base: dict[str, str] = {}
        if labels:
            base["labelSelector"] = labels
        while True:
            try:
                version = await self._list_into(res, namespace, base, on_event)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("listing %s failed; retrying", res.plural)
                await asyncio.sleep(2.0)
                continue
            while version:
                params = {
                    **base,
                    "watch": "1",
                    "resourceVersion": version,
                    "allowWatchBookmarks": "true",
                    "timeoutSeconds": str(timeout_seconds),
                }
                try:
                    version = await self._watch_once(res, namespace, params, on_event)
                except (aiohttp.ClientError, TimeoutError) as exc:
                    log.info("watch of %s interrupted (%s); resuming", res.plural, exc)
                    await asyncio.sleep(1.0)
                except asyncio.CancelledError:
                    raise
                except Exception:
                    # A torn line, a 5xx, a handler bug: never let the watch die silently;
                    # list again (the handlers are idempotent).
                    log.exception("watch of %s failed; listing again", res.plural)
                    await asyncio.sleep(1.0)
                    version = ""

    async def _list_into(
        self,
        res: Resource,
        namespace: str | None,
        base: Mapping[str, str],
        on_event: Callable[[str, JsonDict], None],
    ) -> str:
        params = {**base, "limit": "500"}
        version = ""
        while True:
            try:
                page = await self.request("GET", res.path(namespace), params=params)
            except (ApiError, aiohttp.ClientError, TimeoutError) as exc:
                log.warning("listing %s failed (%s); retrying", res.plural, exc)
                await asyncio.sleep(2.0)
                continue
            for item in page.get("items") or []:
                on_event("ADDED", item)
            meta = page.get("metadata") or {}
            version = str(meta.get("resourceVersion") or version)
            if not meta.get("continue"):
                return version
            params["continue"] = str(meta["continue"])

    async def _watch_once(
        self,
        res: Resource,
        namespace: str | None,
        params: Mapping[str, str],
        on_event: Callable[[str, JsonDict], None],
    ) -> str:
        """One watch request; returns the version to resume from ('' to re-list)."""
        session = await self.session()
        url = self.host + res.path(namespace) + f"?{urlencode(params)}"
        version = params["resourceVersion"]
        timeout = aiohttp.ClientTimeout(total=None, sock_read=int(params["timeoutSeconds"]) + 30)
        async with session.get(url, headers=await self._headers(), timeout=timeout) as resp:
            if resp.status == 410:
                return ""
            if resp.status >= 400:
                raise ApiError(resp.status, resp.reason or "", await resp.text())
            while True:
                line = await resp.content.readline()
                if not line:
                    return version
                if not line.strip():
                    continue
                event = json.loads(line)
                kind = event.get("type")
                obj = event.get("object") or {}
                if kind == "ERROR":
                    return "" if obj.get("code") == 410 else version
                version = str((obj.get("metadata") or {}).get("resourceVersion") or version)
                if kind != "BOOKMARK":
                    on_event(str(kind), obj)

    async def get(self, res: Resource, name: str, namespace: str | None = None) -> JsonDict:
        return await self.request("GET", res.path(namespace, name))

    async def create(self, res: Resource, body: JsonDict, namespace: str | None = None) -> JsonDict:
        return await self.request("POST", res.path(namespace), body=body, resource=res.plural)

    async def delete(
        self, res: Resource, name: str, namespace: str | None = None, *, background: bool = True
    ) -> None:
        body = {"propagationPolicy": "Background" if background else "Foreground"}
        try:
            await self.request("DELETE", res.path(namespace, name), body=body, resource=res.plural)
        except ApiError as exc:
            if not exc.not_found:
                raise

    async def patch(
        self,
        res: Resource,
        name: str,
        patch: JsonDict,
        namespace: str | None = None,
        *,
        status: bool = False,
    ) -> JsonDict:
        return await self.request(
            "PATCH",
            res.path(namespace, name, "status" if status else ""),
            body=patch,
            content_type=MERGE_PATCH,
            resource=res.plural + ("/status" if status else ""),
        )
