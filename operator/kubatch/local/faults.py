"""Faults to inject into a local plane (the chaos tier): etcd compaction, and a TCP proxy on
loopback that cuts a client off the API server.

Restarting a component (SIGKILL, same command line, etcd keeps its data) is
:meth:`kubatch.local.plane.LocalPlane.restart`.

**Compaction** goes through etcd's v3 HTTP gateway: the current revision, then a physical
compaction to it. It does not break an open watch (SEMANTICS §8); a watch that later resumes
from an older resourceVersion gets ``410 Gone`` — from etcd itself when the API server runs
without its watch cache (``--watch-cache=false``), which is how the chaos plane runs.

**The proxy** (:class:`Proxy`) forwards loopback TCP connections to the API server, in a thread
of its own. A client configured to reach the API server through it can be cut off:

- :meth:`Proxy.reset`: every open connection is closed with a TCP RST, both ways (requests in
  flight fail at once, as when a middlebox or the server restarts);
- :meth:`Proxy.blackhole`: open connections are reset, and from then on nothing gets
  through: new connections are accepted but whatever they send is dropped and nothing comes
  back — the client's requests hang until its own timeouts, as behind a dead link. Bytes that
  enter the black hole are never delivered later (a connection that never completed);
- :meth:`Proxy.heal`: the black-holed connections are reset, new connections pass again.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import socket
import struct
import threading
import urllib.request
from collections.abc import Coroutine
from concurrent.futures import Future
from typing import Any, TypeVar

T = TypeVar("T")
HOST = "127.0.0.1"


class FaultError(RuntimeError):
    """A fault could not be injected (the message says why)."""


# ---------------------------------------------------------------------------- etcd


def _etcd(port: int, path: str, body: dict[str, Any], timeout: float = 10.0) -> dict[str, Any]:
    req = urllib.request.Request(
        f"http://{HOST}:{port}{path}",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            doc: dict[str, Any] = json.loads(resp.read() or b"{}")
            return doc
    except OSError as exc:
        raise FaultError(f"etcd at {HOST}:{port}{path}: {exc}") from exc


def etcd_revision(port: int) -> int:
    """The etcd cluster's current revision (= the newest Kubernetes resourceVersion)."""
    doc = _etcd(port, "/v3/kv/range", {"key": base64.b64encode(b"/").decode(), "limit": 1})
    return int((doc.get("header") or {}).get("revision") or 0)


def compact_etcd(port: int) -> int:
    """Compact etcd's history up to its current revision (physically); returns it. Every
    resourceVersion before it is gone: a watch resuming from one gets ``410 Gone``."""
    rev = etcd_revision(port)
    if rev <= 0:
        raise FaultError(f"etcd at {HOST}:{port} answered no revision")
    try:
        _etcd(port, "/v3/kv/compaction", {"revision": str(rev), "physical": True}, timeout=60)
    except FaultError as exc:
        if "compacted" not in str(exc):  # already compacted at least that far
            raise
    return rev


# ---------------------------------------------------------------------------- the proxy


def _rst(writer: asyncio.StreamWriter) -> None:
    """Close with a TCP RST (SO_LINGER 0): the peer sees 'connection reset'."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with contextlib.suppress(Exception):
        writer.transport.abort()


class _Conn:
    def __init__(self, client: asyncio.StreamWriter) -> None:
        self.client = client
        self.upstream: asyncio.StreamWriter | None = None
        self.tasks: list[asyncio.Task[None]] = []
        self.blackholed = False

    def reset(self) -> None:
        for t in self.tasks:
            t.cancel()
        _rst(self.client)
        if self.upstream is not None:
            _rst(self.upstream)


class Proxy:
    """A loopback TCP proxy to ``target`` that can reset and black-hole its connections.

    Runs its own event loop in a daemon thread; every method is safe to call from any
    thread. ``port`` is where clients connect (chosen free when 0)."""

    def __init__(self, target_host: str, target_port: int, *, port: int = 0) -> None:
        self.target = (target_host, target_port)
        self.port = port
        self.mode = "pass"
        self.connections = 0
        """Connections accepted so far."""
        self.resets = 0
        """Connections reset by the proxy (reset, black-hole and heal)."""
        self._conns: set[_Conn] = set()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="kubatch-proxy",
                                        daemon=True)  # fmt: skip
        self._server: asyncio.Server | None = None

    # -- control (any thread) ----------------------------------------------------------------

    def start(self) -> Proxy:
        self._thread.start()
        self._call(self._start())
        return self

    def stop(self) -> None:
        if not self._thread.is_alive():
            return
        with contextlib.suppress(Exception):
            self._call(self._stop(), timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)

    def reset(self) -> int:
        """Reset every open connection; returns how many."""
        return self._call(self._reset_all())

    def blackhole(self) -> int:
        """Reset every open connection, then let nothing through; returns how many."""
        return self._call(self._set_mode("blackhole"))

    def heal(self) -> int:
        """Reset the black-holed connections and let new ones through; returns how many."""
        return self._call(self._set_mode("pass"))

    def __enter__(self) -> Proxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _call(self, coro: Coroutine[Any, Any, T], timeout: float = 30) -> T:
        fut: Future[T] = asyncio.run_coroutine_threadsafe(coro, self._loop)
        return fut.result(timeout)

    # -- the loop's side ------------------------------------------------------------------------

    async def _start(self) -> None:
        self._server = await asyncio.start_server(self._accept, HOST, self.port, backlog=256)
        self.port = int(self._server.sockets[0].getsockname()[1])

    async def _stop(self) -> None:
        if self._server is not None:
            self._server.close()
        await self._reset_all()

    async def _reset_all(self) -> int:
        conns = list(self._conns)
        for c in conns:
            c.reset()
        self._conns.clear()
        self.resets += len(conns)
        return len(conns)

    async def _set_mode(self, mode: str) -> int:
        self.mode = mode
        return await self._reset_all()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        conn = _Conn(writer)
        self._conns.add(conn)
        try:
            if self.mode == "blackhole":
                conn.blackholed = True
                while await reader.read(65536):  # dropped: nothing gets through
                    pass
                return
            try:
                up_reader, up_writer = await asyncio.open_connection(*self.target)
            except OSError:
                _rst(writer)
                return
            conn.upstream = up_writer
            conn.tasks = [
                asyncio.ensure_future(self._pump(reader, up_writer)),
                asyncio.ensure_future(self._pump(up_reader, writer)),
            ]
            await asyncio.gather(*conn.tasks, return_exceptions=True)
        except (OSError, asyncio.CancelledError):
            pass
        finally:
            self._conns.discard(conn)
            for w in (writer, conn.upstream):
                if w is not None:
                    with contextlib.suppress(Exception):
                        w.close()

    @staticmethod
    async def _pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        try:
            while data := await src.read(65536):
                dst.write(data)
                await dst.drain()
        except (OSError, asyncio.CancelledError):
            pass
        finally:
            with contextlib.suppress(Exception):
                if dst.can_write_eof():
                    dst.write_eof()
