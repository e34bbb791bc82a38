"""List-then-watch: the one informer loop of kubatch (operator, simulator, demo, benchmarks).

``list_then_watch`` lists a kind, hands the objects over, then watches from the list's
resourceVersion for ever:

- **resume**: every event (and every BOOKMARK, requested with ``allowWatchBookmarks``) moves
  the resourceVersion on; a watch the server ends (``timeoutSeconds``) or a dropped
  connection resumes from there, not from a new list;
- **410 Gone** (the version is older than the server keeps, as an HTTP answer or an
  ``ERROR`` event): list again, at once;
- **errors** (connection refused, 5xx, 403 while RBAC is being set up, a torn JSON line, a
  bug in a handler): logged, then a retry after an exponential backoff with jitter; a
  handler's exception or an unreadable stream starts over with a list (handlers are
  idempotent); nothing ends the loop but cancellation — it never dies silently.

After a relist, objects deleted while the watch was down are not reported as ``DELETED``:
pass ``on_sync`` to receive each complete list and reconcile against it.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NoReturn

import aiohttp

from kubatch.adapters.kube import ApiError, JsonDict, Resource

if TYPE_CHECKING:
    from kubatch.adapters.kube import Kube

log = logging.getLogger("kubatch.watch")

OnEvent = Callable[[str, JsonDict], None]
OnSync = Callable[[list[JsonDict]], None]
Sleep = Callable[[float], Awaitable[Any]]


@dataclass(frozen=True)
class Backoff:
    """Delays between failed attempts: ``first * factor**(n-1)`` capped, ± ``jitter``."""

    first: float = 0.5
    factor: float = 2.0
    cap: float = 16.0
    jitter: float = 0.2

    def delay(self, failures: int, rng: random.Random | None = None) -> float:
        """Pure given ``rng``: the pause after the ``failures``-th failure in a row (≥ 1)."""
        base = min(self.cap, self.first * self.factor ** max(0, failures - 1))
        spread = (rng or random).uniform(-self.jitter, self.jitter)
        return max(0.0, base * (1.0 + spread))


@dataclass
class WatchStats:
    """What one list-then-watch loop did (for tests, logs and benchmarks)."""

    lists: int = 0  # complete lists: the first one and every relist
    expired: int = 0  # 410 Gone answers (the resourceVersion was too old); a relist followed
    watches: int = 0  # watch requests: the first after a list, and every resume
    events: int = 0  # ADDED/MODIFIED/DELETED handed over (listed objects not counted)
    bookmarks: int = 0
    failures: int = 0  # errors that cost a backoff
    resource_version: str = ""  # where the loop would resume now


async def list_then_watch(
    kube: Kube,
    res: Resource,
    on_event: OnEvent,
    *,
    namespace: str | None = None,
    labels: str | None = None,
    fields: str | None = None,
    on_sync: OnSync | None = None,
    trim: Callable[[JsonDict], JsonDict] | None = None,
    resource_version: str = "",
    timeout_seconds: int = 300,
    backoff: Backoff | None = None,
    stats: WatchStats | None = None,
    sleep: Sleep = asyncio.sleep,
) -> NoReturn:
    """List ``res`` then watch it for ever, calling ``on_event(type, object)``.

    Listed objects go to ``on_sync(items)`` when given, else to ``on_event("ADDED", obj)``
    one by one; ``trim`` shapes each object first (a listed one as its page arrives), so
    that a watcher that keeps a few fields never holds a large list whole.
    ``resource_version``: resume a watch from there instead of listing first (a
    version the server no longer has costs a 410 and a list). Returns only by cancellation.
    """
    backoff = backoff or Backoff()
    stats = stats if stats is not None else WatchStats()
    stats.resource_version = resource_version
    failures = 0
    what = res.plural + (f" in {namespace}" if namespace else "")
    while True:
        relist = False
        try:
            if not stats.resource_version:
                items, version = await kube.list_with_version(
                    res,
                    namespace=namespace,
                    labels=labels,
                    fields=fields,
                    trim=trim,
                    cached=True,  # the watch resumes from the list's version: nothing missed
                )
                stats.lists += 1
                if on_sync is not None:
                    on_sync(items)
                else:
                    for item in items:
                        on_event("ADDED", item)
                stats.resource_version = version
            stats.watches += 1
            async for kind, obj in kube.stream(
                res,
                stats.resource_version,
                namespace=namespace,
                labels=labels,
                fields=fields,
                timeout_seconds=timeout_seconds,
            ):
                version = str((obj.get("metadata") or {}).get("resourceVersion") or "")
                if kind == "BOOKMARK":
                    stats.bookmarks += 1
                else:
                    on_event(kind, obj if trim is None else trim(obj))
                    stats.events += 1
                stats.resource_version = version or stats.resource_version
                failures = 0
            failures = 0  # the server ended the watch (timeoutSeconds): resume at once
            continue
        except asyncio.CancelledError:
            raise
        except ApiError as exc:
            if exc.gone:
                stats.expired += 1
                log.info("watch of %s: resourceVersion %s is gone; listing again", what,
                         stats.resource_version or "-")  # fmt: skip
                stats.resource_version = ""
                failures += 1
                if failures == 1:
                    continue  # the first 410 in a row relists at once
            else:
                failures += 1
                log.warning("watch of %s: %s %s; retrying", what, exc.status, exc.message[:300])
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            failures += 1
            log.warning("watch of %s interrupted (%r); resuming", what, exc)
        except Exception:
            # A torn line, an unexpected answer, a bug in a handler: list again (handlers
            # are idempotent) after a pause, and say so loudly.
            failures += 1
            relist = True
            log.exception("watch of %s failed; listing again", what)
        if relist:
            stats.resource_version = ""
        stats.failures += 1
        await sleep(backoff.delay(failures))
