"""A scripted Kubernetes API server on 127.0.0.1 for the adapter's unit tests.

Each request is recorded (method, path, query, headers, body). Answers come from a script:
``api.on(method, path, answer)`` where ``answer(request)`` returns a :class:`Reply` — a JSON
document with a status, or a watch stream (a list of events, then the server closes it).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from multidict import CIMultiDictProxy

from kubatch.adapters.kube import Kube


@dataclass
class Reply:
    status: int = 200
    body: Any = None
    events: list[dict[str, Any]] | None = None
    """A watch stream: one JSON line per event."""


@dataclass
class Seen:
    method: str
    path: str
    query: dict[str, str]
    headers: CIMultiDictProxy[str]
    body: Any


Answer = Callable[[Seen], Reply]


@dataclass
class FakeApi:
    routes: dict[tuple[str, str], Answer] = field(default_factory=dict)
    seen: list[Seen] = field(default_factory=list)
    port: int = 0
    _runner: web.AppRunner | None = None

    def on(self, method: str, path: str, answer: Answer | Reply) -> None:
        self.routes[(method, path)] = answer if callable(answer) else (lambda _s: answer)

    def requests(self, method: str | None = None, path: str | None = None) -> list[Seen]:
        return [
            s
            for s in self.seen
            if (method is None or s.method == method) and (path is None or s.path == path)
        ]

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        seen = Seen(
            request.method,
            request.path,
            dict(request.query),
            request.headers,
            json.loads(raw) if raw else None,
        )
        self.seen.append(seen)
        answer = self.routes.get((request.method, request.path))
        reply = answer(seen) if answer else Reply(404, {"kind": "Status", "code": 404})
        if reply.events is None:
            return web.json_response(reply.body or {}, status=reply.status)
        stream = web.StreamResponse(status=reply.status)
        stream.content_type = "application/json"
        await stream.prepare(request)
        for event in reply.events:
            await stream.write(json.dumps(event).encode() + b"\n")
        await stream.write_eof()
        return stream

    async def start(self) -> str:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert server is not None
        self.port = int(server.sockets[0].getsockname()[1])  # type: ignore[union-attr]
        return f"http://127.0.0.1:{self.port}"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


def config(host: str, token: str = "t0", **extra: Any) -> Any:
    """A kubernetes_asyncio Configuration as a kubeconfig with a static token yields."""
    from kubernetes_asyncio import client

    cfg = client.Configuration(host=host, api_key={"BearerToken": f"Bearer {token}"})
    for key, value in extra.items():
        setattr(cfg, key, value)
    return cfg


def status(code: int, reason: str, message: str) -> dict[str, Any]:
    return {
        "kind": "Status",
        "status": "Failure",
        "code": code,
        "reason": reason,
        "message": message,
    }


def pod(name: str, rv: str, namespace: str = "default") -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": namespace, "resourceVersion": rv}}


def kube_for(host: str, **kw: Any) -> Kube:
    return Kube(config(host), **kw)
