"""The chaos tier's loopback TCP proxy (kubatch.local.faults.Proxy) against an echo server on
127.0.0.1: it forwards, resets, black-holes and heals."""

from __future__ import annotations

import socket
import socketserver
import threading
from collections.abc import Iterator

import pytest

from kubatch.local.faults import Proxy


class Echo(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        while data := self.request.recv(4096):
            self.request.sendall(data)


@pytest.fixture
def proxy() -> Iterator[Proxy]:
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Echo)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    p = Proxy("127.0.0.1", server.server_address[1]).start()
    try:
        yield p
    finally:
        p.stop()
        server.shutdown()
        server.server_close()


def connect(p: Proxy) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", p.port), timeout=2)
    s.settimeout(2)
    return s


def test_forwards_both_ways(proxy: Proxy) -> None:
    with connect(proxy) as s:
        s.sendall(b"hello")
        assert s.recv(100) == b"hello"
    assert proxy.connections == 1


def test_reset_breaks_open_connections_with_a_reset(proxy: Proxy) -> None:
    with connect(proxy) as s:
        s.sendall(b"x")
        assert s.recv(10) == b"x"
        assert proxy.reset() == 1
        with pytest.raises(ConnectionResetError):
            s.recv(10)
    with connect(proxy) as s:  # new connections pass
        s.sendall(b"again")
        assert s.recv(100) == b"again"


def test_blackhole_lets_nothing_through_and_heal_resets_what_it_held(proxy: Proxy) -> None:
    proxy.blackhole()
    s = connect(proxy)  # accepted, but a dead end
    s.settimeout(0.5)
    s.sendall(b"lost")
    with pytest.raises(TimeoutError):
        s.recv(10)
    assert proxy.heal() == 1
    with pytest.raises(ConnectionResetError):
        s.recv(10)
    s.close()
    with connect(proxy) as t:
        t.sendall(b"ok")
        assert t.recv(10) == b"ok", "what entered the black hole was never delivered"
