"""The one kubelet endpoint a simulated node serves: container logs (``kubectl logs``).

``kubectl logs`` asks the API server, which asks the pod's node's kubelet
(``https://<node address>:<status.daemonEndpoints.kubeletEndpoint.Port>/containerLogs/...``).
Simulated nodes have no kubelet, so the simulator serves that one path for all of its nodes
on loopback (its nodes advertise ``127.0.0.1`` and this server's port) with a self-signed
certificate (the API server does not verify kubelet certificates unless told to). A
simulated container's log is made up from its pod, so that it says what a real one would
let you check: which attempt and array index it is (the injected ``AWS_BATCH_*``
environment), the command with its ``Ref::`` parameters substituted, the node, then a line
as it runs and how it ended. ``follow`` streams the lines as the container runs.

:func:`simulated_log` is pure; :class:`LogServer` is the aiohttp server around it.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import subprocess
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from aiohttp import web

from kubatch.adapters.kube import NODES, PODS, ApiError, Kube
from kubatch.sim.nodes import kubelet_endpoint
from kubatch.sim.pods import behaviour_of
from kubatch.timefmt import parse_time

HOST = "127.0.0.1"
PREFIX = "[kubatch-sim]"
MAX_PROGRESS_LINES = 20
GetPod = Callable[[str, str], Awaitable[dict[str, Any] | None]]


def _container(pod: dict[str, Any], name: str) -> dict[str, Any] | None:
    for c in (pod.get("spec") or {}).get("containers") or []:
        if c.get("name") == name:
            return dict(c)
    return None


def _state(pod: dict[str, Any], name: str) -> dict[str, Any]:
    for cs in (pod.get("status") or {}).get("containerStatuses") or []:
        if cs.get("name") == name:
            return dict(cs.get("state") or {})
    return {}


def started_at(pod: dict[str, Any], name: str) -> float | None:
    state = _state(pod, name)
    for key in ("running", "terminated"):
        if key in state:
            return parse_time(state[key].get("startedAt"))
    return None


def finished(pod: dict[str, Any], name: str) -> dict[str, Any] | None:
    term = _state(pod, name).get("terminated")
    return dict(term) if term else None


def simulated_log(pod: dict[str, Any], container: str, now: float) -> list[tuple[float, str]]:
    """Pure: the lines (with their times) a simulated container has written by ``now``."""
    c = _container(pod, container)
    start = started_at(pod, container)
    if c is None or start is None:
        return []
    meta, spec = pod.get("metadata") or {}, pod.get("spec") or {}
    env = {str(e.get("name")): str(e.get("value")) for e in c.get("env") or [] if "value" in e}
    batch = [f"{k}={v}" for k, v in env.items() if k.startswith("AWS_BATCH_")]
    command = " ".join(str(x) for x in [*(c.get("command") or []), *(c.get("args") or [])])
    behaviour = behaviour_of(pod)
    lines = [
        (
            start,
            f"{PREFIX} container {container} of pod {meta.get('namespace')}/"
            f"{meta.get('name')} on node {spec.get('nodeName')}",
        ),
        (start, f"{PREFIX} image {c.get('image')}: {command or '(its default command)'}"),
        (start, f"{PREFIX} {' '.join(batch) or 'no AWS_BATCH_* environment'}"),
        (
            start,
            f"{PREFIX} runs {behaviour.duration:g}s, then exits {behaviour.exit_code}"
            + (" (out of memory)" if behaviour.oom else ""),
        ),
    ]
    term = finished(pod, container)
    end = parse_time(term.get("finishedAt")) if term else None
    horizon = min(now, end) if end is not None else now
    step = max(1.0, behaviour.duration / MAX_PROGRESS_LINES)
    t = step
    while start + t <= horizon and t < behaviour.duration:
        lines.append((start + t, f"{PREFIX} working: {t:g}s of {behaviour.duration:g}s"))
        t += step
    if term is not None and end is not None:
        reason = term.get("reason") or ""
        lines.append((end, f"{PREFIX} exit {term.get('exitCode')} {reason}".rstrip()))
    return lines


def render(lines: list[tuple[float, str]], timestamps: bool) -> bytes:
    if not timestamps:
        return "".join(f"{text}\n" for _, text in lines).encode()
    out = []
    for t, text in lines:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t % 1 * 1e9):09d}Z"
        out.append(f"{stamp} {text}\n")
    return "".join(out).encode()


def endpoint_patch(node: dict[str, Any], port: int | None) -> dict[str, Any] | None:
    """Pure: the status patch that points a node of an earlier run at this run's log server
    (``None``: no server, or it already does)."""
    current = ((node.get("status") or {}).get("daemonEndpoints") or {}).get("kubeletEndpoint")
    if port is None or (current or {}).get("Port") == port:
        return None
    name = str((node.get("metadata") or {}).get("name", ""))
    return {"status": kubelet_endpoint(name, port)}


async def adopt(kube: Kube | None, node: dict[str, Any], port: int | None) -> None:
    """Point a node of an earlier run at this run's log server (gone: nothing to do)."""
    body = endpoint_patch(node, port)
    if kube is None or body is None:
        return
    try:
        await kube.patch(NODES, str(node["metadata"]["name"]), body, status=True)
    except ApiError as e:
        if not e.not_found:
            raise


def pod_getter(kube: Callable[[], Kube | None]) -> GetPod:
    """Read a pod through the simulator's client (``None`` when it is gone)."""

    async def get(namespace: str, name: str) -> dict[str, Any] | None:
        client = kube()
        if client is None:
            return None
        try:
            return await client.get(PODS, name, namespace)
        except ApiError as e:
            if e.not_found:
                return None
            raise

    return get


def _self_signed(directory: Path) -> ssl.SSLContext:
    cert, key = directory / "kubelet.crt", directory / "kubelet.key"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "3650",
            "-subj",
            "/CN=kubatch-sim-kubelet",
            "-addext",
            f"subjectAltName=IP:{HOST}",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)
    return ctx


class LogServer:
    """``/containerLogs/{namespace}/{pod}/{container}`` over HTTPS on loopback."""

    def __init__(self, get_pod: GetPod, clock: Callable[[], float] = time.time) -> None:
        self._get_pod = get_pod
        self._clock = clock
        self._runner: web.AppRunner | None = None
        self._dir: tempfile.TemporaryDirectory[str] | None = None
        self.port = 0

    async def start(self, port: int = 0) -> int:
        self._dir = tempfile.TemporaryDirectory(prefix="kubatch-sim-kubelet-")
        ctx = await asyncio.to_thread(_self_signed, Path(self._dir.name))
        app = web.Application()
        app.router.add_get("/containerLogs/{namespace}/{pod}/{container}", self._logs)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, HOST, port, ssl_context=ctx)
        await site.start()
        server = site._server  # the bound socket's port when asked for 0
        assert server is not None
        self.port = int(server.sockets[0].getsockname()[1])  # type: ignore[attr-defined]
        return self.port

    async def serve(self) -> None:
        """Serve until cancelled (the simulator's tasks are), then stop."""
        try:
            await asyncio.Event().wait()
        finally:
            await self.stop()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._dir is not None:
            self._dir.cleanup()
            self._dir = None

    async def _logs(self, request: web.Request) -> web.StreamResponse:
        ns, name = request.match_info["namespace"], request.match_info["pod"]
        container = request.match_info["container"]
        follow = request.query.get("follow") in ("true", "1")
        stamps = request.query.get("timestamps") in ("true", "1")
        tail = request.query.get("tailLines")
        pod = await self._get_pod(ns, name)
        if pod is None:
            raise web.HTTPNotFound(text=f"pod {ns}/{name} not found on this node")
        if _container(pod, container) is None:
            raise web.HTTPNotFound(text=f"container {container} is not in pod {ns}/{name}")
        if started_at(pod, container) is None:
            raise web.HTTPBadRequest(
                text=f'container "{container}" in pod "{name}" is waiting to start'
            )
        lines = simulated_log(pod, container, self._clock())
        shown = lines
        if tail is not None and tail.isdigit():
            shown = lines[-int(tail) :] if int(tail) else []
        resp = web.StreamResponse(headers={"Content-Type": "text/plain"})
        await resp.prepare(request)
        await resp.write(render(shown, stamps))
        sent = len(lines)
        while follow and finished(pod, container) is None:
            await asyncio.sleep(0.5)
            fresh = await self._get_pod(ns, name)
            if fresh is None:
                await resp.write(f"{PREFIX} the pod was deleted\n".encode())
                break
            pod = fresh
            now_lines = simulated_log(pod, container, self._clock())
            if len(now_lines) > sent:
                await resp.write(render(now_lines[sent:], stamps))
                sent = len(now_lines)
        with contextlib.suppress(ConnectionResetError):
            await resp.write_eof()
        return resp
