"""``kubatch console``: the web console, an aiohttp shell over insight and the index.

The console lists then watches BatchJobs, job queues and compute environments with its own
login (one list-then-watch each, :mod:`kubatch.adapters.watch`) into an in-memory
:class:`~kubatch.console.index.Index`; the overview and the job list are served from it.
What a page shows of one job (the object, its definition, array records, logs, timeline) is
read as the viewer (:mod:`kubatch.console.identity`), so the API server decides what the
viewer may see. Pages follow changes by server-sent events (``/events``). Read-only unless
started with ``--allow-terminate``, and then the button shows only where the viewer may
patch the job.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import math
import os
import resource
import secrets
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web

from kubatch.adapters.kube import (
    BATCHJOBS,
    COMPUTEENVIRONMENTS,
    CONFIGMAPS,
    JOBDEFINITIONS,
    JOBQUEUES,
    NODES,
    ApiError,
    Kube,
)
from kubatch.adapters.serving import serve_until_signalled
from kubatch.adapters.watch import list_then_watch
from kubatch.api import records
from kubatch.console import pages
from kubatch.console.identity import (
    MODES,
    AccessCache,
    Unauthenticated,
    Who,
    can,
    client_for,
    form_token,
    who_from_headers,
)
from kubatch.console.index import Filters, Index, Key
from kubatch.insight import draw, sources
from kubatch.insight.objects import InsightError
from kubatch.insight.timeline import build_timeline
from kubatch.insight.why import explain

log = logging.getLogger("kubatch.console")
STATIC = Path(__file__).parent / "static"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
HEADERS = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self' "
    "'unsafe-inline'; img-src 'self' data:; frame-ancestors 'none'; form-action 'self'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


@dataclass
class Viewer:
    who: Who
    kube: Kube
    allowed: frozenset[str] | None


class Console:
    """The console's state: its login, the index, the viewers' access, the event streams."""

    def __init__(
        self,
        kube: Kube,
        *,
        auth: str = "none",
        user_header: str = "X-Forwarded-User",
        group_header: str = "X-Forwarded-Groups",
        allow_terminate: bool = False,
        keepalive: float = 15.0,
    ) -> None:
        if auth not in MODES:
            raise ValueError(f"--auth must be one of {', '.join(MODES)}, not {auth!r}")
        self.kube = kube
        self.auth = auth
        self.user_header = user_header
        self.group_header = group_header
        self.allow_terminate = allow_terminate
        self.keepalive = keepalive
        self.index = Index()
        self.access = AccessCache()
        self.secret = secrets.token_bytes(32)
        self.streams = 0  # open server-sent event streams (the soak watches it)
        self._tasks: list[asyncio.Task[None]] = []

    # -- feeding the index ------------------------------------------------------------------

    def start_watches(self) -> None:
        for kind, res in (("queues", JOBQUEUES), ("ces", COMPUTEENVIRONMENTS), ("jobs", BATCHJOBS)):

            def on_event(event: str, obj: dict[str, Any], kind: str = kind) -> None:
                self.index.apply(kind, event, obj)

            def on_sync(items: list[dict[str, Any]], kind: str = kind) -> None:
                self.index.sync(kind, items)

            task = asyncio.create_task(
                list_then_watch(self.kube, res, on_event, on_sync=on_sync), name=f"watch-{kind}"
            )
            self._tasks.append(task)

    async def stop_watches(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()

    # -- the viewer ---------------------------------------------------------------------------

    async def viewer(self, request: web.Request) -> Viewer:
        who = who_from_headers(
            self.auth,
            request.headers,
            user_header=self.user_header,
            group_header=self.group_header,
        )
        kube = client_for(self.kube, who)
        allowed = await self.access.readable(kube, who, self.index.namespaces())
        return Viewer(who, kube, allowed)

    def render(
        self,
        request: web.Request,
        v: Viewer,
        title: str,
        body: str,
        *,
        live: str = "",
        nav: str = "",
        top: str = "",
        status: int = 200,
    ) -> web.Response:
        text = (
            body
            if request.headers.get("X-Fragment") == "1"
            else pages.layout(
                title,
                body,
                viewer=v.who.label,
                live=live,
                nav=nav,
                top=top,
                version=self.index.version,
            )
        )
        return web.Response(text=text, content_type="text/html", status=status)

    # -- pages --------------------------------------------------------------------------------

    async def overview(self, request: web.Request) -> web.StreamResponse:
        v = await self.viewer(request)
        ix = self.index
        body = pages.overview(
            ix.queues, ix.ces, ix.counts_by_queue(v.allowed), loading=not ix.synced >= {"jobs"}
        )
        return self.render(request, v, "Overview", body, live="overview", nav="overview")

    async def jobs(self, request: web.Request) -> web.StreamResponse:
        v = await self.viewer(request)
        q = request.query
        filters = Filters(
            namespace=q.get("namespace", ""),
            queue=q.get("queue", ""),
            phase=q.get("phase", ""),
            reason=q.get("reason", ""),
            name=q.get("name", "").strip(),
        )
        page = self.index.query(filters, v.allowed, _int(q.get("page"), 1), _int(q.get("size"), 50))
        namespaces = self.index.namespaces()
        if v.allowed is not None:
            namespaces &= set(v.allowed)
        body = pages.job_list(
            page, filters, now=time.time(), loading="jobs" not in self.index.synced
        )
        top = ""
        if request.headers.get("X-Fragment") != "1":
            top = pages.filter_form(
                filters,
                namespaces=namespaces,
                queues=sorted(set(self.index.queues) | set(self.index.counts_by_queue(v.allowed))),
                reasons=self.index.reasons(v.allowed),
            )
        return self.render(request, v, "Jobs", body, live="jobs", nav="jobs", top=top)

    async def _job(self, v: Viewer, ns: str, name: str) -> dict[str, Any]:
        try:
            return await v.kube.get(BATCHJOBS, name, ns)
        except ApiError as err:
            if err.not_found:
                raise InsightError(f'batchjob "{name}" not found in namespace "{ns}"') from None
            if err.forbidden:
                raise InsightError(f"you may not read batchjobs in namespace {ns}") from None
            raise

    async def job(self, request: web.Request, notice: str = "") -> web.StreamResponse:
        v = await self.viewer(request)
        ns, name = request.match_info["ns"], request.match_info["name"]
        try:
            job = await self._job(v, ns, name)
        except InsightError as err:
            return self.render(request, v, name, pages.error_page(str(err)), status=404)
        spec, st = job.get("spec") or {}, job.get("status") or {}
        queue = self.index.queues.get(str(spec.get("jobQueue") or ""))
        ces = dict(self.index.ces)
        definition = None
        if not st.get("jobDefinition") and spec.get("jobDefinition"):
            definition = await _quiet(v.kube.get(JOBDEFINITIONS, str(spec["jobDefinition"]), ns))
        unmanaged = any((c.get("spec") or {}).get("type") == "Unmanaged" for c in ces.values())
        nodes = (await _quiet(self.kube.list(NODES)) or []) if unmanaged else []
        why = explain(job, queue, ces, definition, nodes)
        children, chunk, chunks = None, 0, 0
        size = (spec.get("arrayProperties") or {}).get("size")
        if isinstance(size, int) and size > 0:
            chunks = math.ceil(size / records.CHUNK)
            chunk = min(max(0, _int(request.query.get("children"), 0)), chunks - 1)
            cm = await _quiet(v.kube.get(CONFIGMAPS, records.chunk_name(name, chunk), ns))
            text = str(((cm or {}).get("data") or {}).get(records.DATA_KEY, ""))
            children = [r.as_dict() for r in records.parse_rows(text)]
        token = None
        if self.allow_terminate and await can(v.kube, "patch", ns):
            token = form_token(self.secret, v.who, f"terminate/{ns}/{name}")
        body = pages.job_page(
            job,
            why,
            dependents=self.index.dependents(ns, name),
            children=children,
            children_chunk=chunk,
            children_chunks=chunks,
            now=time.time(),
            terminate_token=token,
            notice=notice,
        )
        return self.render(request, v, name, body, live=f"job:{ns}/{name}")

    async def terminate(self, request: web.Request) -> web.StreamResponse:
        v = await self.viewer(request)
        ns, name = request.match_info["ns"], request.match_info["name"]
        form = await request.post()
        expected = form_token(self.secret, v.who, f"terminate/{ns}/{name}")
        if not self.allow_terminate or not secrets.compare_digest(
            str(form.get("token", "")), expected
        ):
            raise web.HTTPForbidden(text="terminate is not allowed here (or the form is stale)")
        reason = str(form.get("reason") or "Terminated from the kubatch console")[:200]
        try:
            await v.kube.patch(BATCHJOBS, name, {"spec": {"terminate": {"reason": reason}}}, ns)
            notice = f"terminate requested: {reason}"
        except ApiError as err:
            notice = f"terminate refused by the API server: {err.status} {err.message}"
        return await self.job(request, notice=notice)

    async def timeline(self, request: web.Request) -> web.StreamResponse:
        v = await self.viewer(request)
        ns, name = request.match_info["ns"], request.match_info.get("name")
        names = (
            [name]
            if name
            else [r.name for r in self.index.query(Filters(namespace=ns), v.allowed, 1, 200).rows]
        )
        try:
            src = await sources.timeline_sources(v.kube, ns, names=names)
        except (InsightError, ApiError) as err:
            msg = err.message if isinstance(err, ApiError) else str(err)
            return self.render(request, v, "Timeline", pages.error_page(msg), status=404)
        title = f"Timeline of {name} in {ns}" if name else f"Timeline of namespace {ns}"
        tl = build_timeline(src, time.time(), title=title)
        back = pages.job_url(ns, name) if name else pages.url("jobs", namespace=ns)
        body = pages.timeline_page(title, draw.timeline_svg(tl), len(tl.lanes), back)
        return self.render(request, v, title, body, live=f"job:{ns}/{name}" if name else "")

    async def logs(self, request: web.Request) -> web.StreamResponse:
        v = await self.viewer(request)
        ns, name = request.match_info["ns"], request.match_info["name"]
        attempt = _opt_int(request.query.get("attempt"))
        index = _opt_int(request.query.get("index"))
        try:
            target = await sources.log_target(v.kube, ns, name, attempt=attempt, index=index)
        except (InsightError, ApiError) as err:
            msg = err.message if isinstance(err, ApiError) else str(err)
            return self.render(request, v, name, pages.error_page(msg), status=404)
        stream = pages.job_url(ns, name, "logs", "stream", attempt=target.attempt, index=index)
        if request.query.get("format") == "text":
            lines = [line async for line in self._log_lines(v, target, follow=False)]
            return web.Response(text="\n".join(lines) + "\n", content_type="text/plain")
        body = pages.logs_page(ns, name, target.what, stream, None)
        return self.render(request, v, f"log of {target.what}", body)

    async def _log_lines(self, v: Viewer, target: Any, *, follow: bool) -> AsyncIterator[str]:
        pod = await sources.log_pod(v.kube, target)
        if follow:
            pod = await sources.wait_started(v.kube, pod)
        async for line in sources.log_lines(v.kube, pod, follow=follow):
            yield line

    async def log_stream(self, request: web.Request) -> web.StreamResponse:
        v = await self.viewer(request)
        ns, name = request.match_info["ns"], request.match_info["name"]
        attempt = _opt_int(request.query.get("attempt"))
        index = _opt_int(request.query.get("index"))
        resp = await self._sse(request)
        try:
            target = await sources.log_target(v.kube, ns, name, attempt=attempt, index=index)
            async for line in self._log_lines(v, target, follow=True):
                await resp.write(_event("line", json.dumps(line)))
            await resp.write(_event("end", "{}"))
        except (InsightError, ApiError) as err:
            msg = err.message if isinstance(err, ApiError) else str(err)
            await resp.write(_event("fail", json.dumps(msg)))
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            self.streams -= 1
        return resp

    # -- live updates -------------------------------------------------------------------------

    async def _sse(self, request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(
            headers={
                "Content-Type": "text/event-stream",
                "Cache-Control": "no-store",
                "X-Accel-Buffering": "no",
            }
        )
        await resp.prepare(request)
        self.streams += 1
        return resp

    async def events(self, request: web.Request) -> web.StreamResponse:
        """Server-sent events: ``change`` with the keys that changed (only those the viewer
        may see), at most every 0.3 s; a comment every ``keepalive`` seconds."""
        v = await self.viewer(request)
        pending: set[Key] = set()
        wake = asyncio.Event()

        def listener(keys: set[Key]) -> None:
            if len(pending) < 1000:
                pending.update(keys)
            wake.set()

        resp = await self._sse(request)
        self.index.listeners.append(listener)
        if _int(request.query.get("since"), -1) != self.index.version:
            listener({("all",)})  # changed since the page was drawn (or a reconnection)
        refreshed = time.monotonic()
        try:
            await resp.write(b"retry: 2000\n\n")
            while True:
                try:
                    await asyncio.wait_for(wake.wait(), self.keepalive)
                except TimeoutError:
                    await resp.write(b": keepalive\n\n")
                    continue
                await asyncio.sleep(0.3)  # coalesce a burst
                wake.clear()
                keys = list(pending)
                pending.clear()
                if time.monotonic() - refreshed > self.access.ttl:
                    try:
                        v = await self.viewer(request)
                    except Unauthenticated:  # the token expired: the page reconnects, gets 401
                        break
                    refreshed = time.monotonic()
                shown = [
                    "/".join(k)
                    for k in keys
                    if k[0] != "job" or v.allowed is None or k[1] in v.allowed
                ]
                if shown:
                    every = len(shown) > 200 or "all" in shown
                    data = {"keys": shown[:200], "all": every}
                    await resp.write(_event("change", json.dumps(data)))
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            self.index.listeners.remove(listener)
            self.streams -= 1
        return resp

    async def health(self, request: web.Request) -> web.StreamResponse:
        """Liveness and the figures the soak follows (RSS, streams, index size)."""
        rss = _rss_bytes()
        return web.json_response(
            {
                "synced": sorted(self.index.synced),
                "jobs": len(self.index.jobs),
                "streams": self.streams,
                "listeners": len(self.index.listeners),
                "rssBytes": rss,
            }
        )

    async def static(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["file"]
        path = STATIC / name
        if name not in {p.name for p in STATIC.iterdir()}:
            raise web.HTTPNotFound()
        kind = "text/css" if name.endswith(".css") else "text/javascript"
        return web.Response(body=path.read_bytes(), content_type=kind)

    # -- the application ----------------------------------------------------------------------

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            resp = await handler(request)
        except Unauthenticated as err:
            resp = web.Response(
                text=f"401 Unauthorized: {err}\n",
                status=401,
                headers={"WWW-Authenticate": "Bearer"},
            )
        if not resp.prepared:
            resp.headers.update(HEADERS)
        return resp

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._middleware], client_max_size=64 * 1024)
        job = "/ns/{ns}/jobs/{name}"
        app.add_routes(
            [
                web.get("/", self.overview),
                web.get("/jobs", self.jobs),
                web.get(job, self.job),
                web.post(job + "/terminate", self.terminate),
                web.get(job + "/timeline", self.timeline),
                web.get("/ns/{ns}/timeline", self.timeline),
                web.get(job + "/logs", self.logs),
                web.get(job + "/logs/stream", self.log_stream),
                web.get("/events", self.events),
                web.get("/healthz", self.health),
                web.get("/static/{file}", self.static),
            ]
        )
        return app


async def _quiet(coro: Awaitable[Any]) -> Any:
    """The answer, or ``None`` when the API server says no (404, 403)."""
    try:
        return await coro
    except ApiError:
        return None


def _int(text: str | None, default: int) -> int:
    try:
        return int(text) if text else default
    except ValueError:
        return default


def _opt_int(text: str | None) -> int | None:
    return _int(text, -1) if text not in (None, "") and _int(text, -1) >= 0 else None


def _event(name: str, data: str) -> bytes:
    return f"event: {name}\ndata: {data}\n\n".encode()


def _rss_bytes() -> int:
    try:
        fields = Path("/proc/self/statm").read_text().split()
        return int(fields[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, IndexError, ValueError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


# --------------------------------------------------------------------------- command


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="kubatch console",
        description="The web console: queues, jobs, why, timeline and logs (read-only by default).",
    )
    p.add_argument("--kubeconfig", help="default: $KUBECONFIG, in-cluster, ~/.kube/config")
    p.add_argument("--context", help="the kubeconfig context")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8090, help="port (0: any free one)")
    p.add_argument(
        "--auth",
        choices=MODES,
        default="none",
        help="none: act as the console's own login; token: as the request's bearer token; "
        "proxy: impersonate the user an authenticating proxy names in headers",
    )
    p.add_argument("--user-header", default="X-Forwarded-User", help="--auth proxy: user")
    p.add_argument("--group-header", default="X-Forwarded-Groups", help="--auth proxy: groups")
    p.add_argument(
        "--allow-terminate",
        action="store_true",
        help="show a terminate button where the viewer's RBAC allows patching the job",
    )
    p.add_argument("--verbose", action="store_true")
    return p


async def serve(args: argparse.Namespace, ready: Callable[[int], None] | None = None) -> None:
    kube = await Kube.from_environment(args.kubeconfig, context=args.context)
    console = Console(
        kube,
        auth=args.auth,
        user_header=args.user_header,
        group_header=args.group_header,
        allow_terminate=args.allow_terminate,
    )
    console.start_watches()

    def started(port: int) -> None:
        log.info("console on http://%s:%s (auth %s)", args.host, port, args.auth)
        if ready is not None:
            ready(port)

    try:
        await serve_until_signalled(console.app(), args.host, args.port, started,
                                    shutdown_timeout=2)  # fmt: skip
    finally:
        await console.stop_watches()
        await kube.close()


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )

    def ready(port: int) -> None:
        print(f"kubatch console: http://{args.host}:{port}/", flush=True)

    asyncio.run(serve(args, ready=ready))
    return 0


if __name__ == "__main__":
    sys.exit(main())
