"""The console's HTTP shell in-process (no cluster): the index is fed directly, the API
server is a stub that answers access reviews and GETs."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp.test_utils import TestClient, TestServer
from tests.unit.console.test_index import bj

from kubatch.adapters.kube import ApiError
from kubatch.console.server import Console


class Stub:
    """A ``Kube`` stand-in: ``readable[user]`` are the namespaces that user may list."""

    def __init__(self, readable: dict[str, set[str]], user: str = "") -> None:
        self.readable = readable
        self.user = user
        self.objects: dict[tuple[str, str], dict[str, Any]] = {}

    def impersonating(self, user: str, *, groups: Any = ()) -> Stub:
        other = Stub(self.readable, user)
        other.objects = self.objects
        return other

    async def request(self, method: str, path: str, **kw: Any) -> dict[str, Any]:
        ns = kw["body"]["spec"]["resourceAttributes"].get("namespace", "")
        allowed = self.readable.get(self.user, set())
        return {"status": {"allowed": ns in allowed or "" in allowed}}

    async def get(self, res: Any, name: str, namespace: str | None = None) -> dict[str, Any]:
        if namespace not in self.readable.get(self.user, set()):
            raise ApiError(403, "Forbidden", "{}")
        if (str(namespace), name) not in self.objects:
            raise ApiError(404, "NotFound", "{}")
        return self.objects[(str(namespace), name)]


def run(test: Callable[[TestClient[Any, Any], Console], Awaitable[None]]) -> None:
    async def go() -> None:
        stub = Stub({"alice": {"a"}, "admin": {""}})
        console = Console(stub, auth="proxy", keepalive=0.5)  # type: ignore[arg-type]
        for ns, name in (("a", "one"), ("b", "two")):
            job = bj(ns, name, phase="Runnable")
            stub.objects[(ns, name)] = job
            console.index.apply("jobs", "ADDED", job)
        console.index.sync("queues", [{"metadata": {"name": "q"}, "spec": {"priority": 1}}])
        console.index.synced.add("jobs")
        async with TestClient(TestServer(console.app())) as client:
            await test(client, console)

    asyncio.run(go())


ALICE = {"X-Forwarded-User": "alice"}


def test_who_is_required_and_headers_are_safe() -> None:
    async def t(client: TestClient[Any, Any], console: Console) -> None:
        resp = await client.get("/jobs")
        assert resp.status == 401
        resp = await client.get("/jobs", headers=ALICE)
        assert resp.status == 200
        assert "script-src 'self'" in resp.headers["Content-Security-Policy"]
        assert resp.headers["X-Frame-Options"] == "DENY"
        body = await resp.text()
        assert ">one</a>" in body
        assert ">two</a>" not in body  # namespace b: alice may not list it
        frag = await (await client.get("/jobs", headers={**ALICE, "X-Fragment": "1"})).text()
        assert "<html" not in frag
        assert ">one</a>" in frag
        resp = await client.get("/ns/b/jobs/two", headers=ALICE)
        assert resp.status == 404
        assert "may not read" in await resp.text()
        resp = await client.get("/ns/a/jobs/one", headers=ALICE)
        assert resp.status == 200
        assert "Terminate" not in await resp.text()  # read-only by default

    run(t)


def test_events_catch_up_then_follow_only_what_the_viewer_may_see() -> None:
    async def t(client: TestClient[Any, Any], console: Console) -> None:
        stale = console.index.version - 1
        resp = await client.get(f"/events?since={stale}", headers=ALICE)
        assert resp.headers["Content-Type"] == "text/event-stream"

        async def next_change() -> dict[str, Any]:
            while True:
                line = (await asyncio.wait_for(resp.content.readline(), 5)).decode()
                if line.startswith("data: "):
                    return dict(json.loads(line[6:]))

        assert (await next_change())["all"] is True  # changed since the page was drawn
        console.index.apply("jobs", "MODIFIED", bj("b", "two", phase="Running"))  # hidden
        console.index.apply("jobs", "MODIFIED", bj("a", "one", phase="Running"))
        change = await next_change()
        assert change == {"keys": ["job/a/one"], "all": False}
        assert console.streams == 1
        resp.close()
        for _ in range(50):
            if not console.index.listeners:
                break
            await asyncio.sleep(0.05)
        assert console.index.listeners == []  # a closed page leaves nothing behind

    run(t)
