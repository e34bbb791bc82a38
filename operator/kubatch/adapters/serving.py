"""Serve an aiohttp application until SIGTERM or SIGINT (the console, the AWS Batch API)."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable

from aiohttp import web


async def serve_until_signalled(
    app: web.Application,
    host: str,
    port: int,
    started: Callable[[int], None],
    *,
    shutdown_timeout: float = 60.0,
) -> None:
    """Serve ``app`` on ``host:port`` (0: any free port); ``started`` gets the port bound.
    Returns after SIGTERM or SIGINT, once the server has stopped."""
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=shutdown_timeout)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    started(int(runner.addresses[0][1]) if runner.addresses else port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()
